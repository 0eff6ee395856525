//! Kernel side of tracer: uprobes on the Go runtime's scheduling points.
//!
//! Every program reads the Go registers (ABIInternal: arguments in RAX, RBX, RCX, RDI,
//! ...; the current `g` in R14) straight from `pt_regs`, does the least work that lets
//! userspace rebuild the picture, and writes at most one fixed-size record. Records
//! are written without waking the reader (`BPF_RB_NO_WAKEUP`): the agent polls on a
//! timer, which is several microseconds cheaper per record than a wakeup.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{pt_regs, BPF_F_USER_STACK, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{tracing::StackIdContext, ProbeContext},
    Global,
};
use tracer_common::{counter, kind, Event, ParkState};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// goid -> the park it is in. Lets a wake compute the exact parked time in the kernel,
/// and lets the agent list what is parked without a record per park.
#[map]
static PARKED: LruHashMap<u64, ParkState> = LruHashMap::with_max_entries(1 << 18, 0);

/// goid -> semaphore it is about to sleep on (set by semacquire1, taken by gopark).
#[map]
static PENDING_SEMA: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 16, 0);

#[unsafe(no_mangle)]
static G_GOID: Global<u64> = Global::new(152);
#[unsafe(no_mangle)]
static G_GOPC: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static G_STARTPC: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static G_PARENT_GOID: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static G_M: Global<u64> = Global::new(48);
#[unsafe(no_mangle)]
static M_CURG: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static VERBOSE: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static WANT_STACKS: Global<u64> = Global::new(1);

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &pt_regs {
    // SAFETY: the context of a uprobe is the user register file.
    unsafe { &*ctx.regs }
}

#[inline(always)]
fn read_u64(addr: u64) -> u64 {
    // SAFETY: bpf_probe_read_user tolerates any address.
    match unsafe { bpf_probe_read_user(addr as *const u64) } {
        Ok(v) => v,
        Err(_) => {
            count(counter::READ_ERRORS);
            0
        }
    }
}

#[inline(always)]
fn goid_of(g: u64) -> u64 {
    if g == 0 {
        return 0;
    }
    read_u64(g + G_GOID.load())
}

/// The goroutine running on this thread. Scheduler code runs on g0 (goid 0): then
/// the user goroutine it works for is `g.m.curg`.
#[inline(always)]
fn current_goid(r: &pt_regs) -> u64 {
    let g = r.r14;
    let id = goid_of(g);
    if id != 0 || M_CURG.load() == 0 {
        return id;
    }
    let m = read_u64(g + G_M.load());
    if m == 0 {
        return 0;
    }
    goid_of(read_u64(m + M_CURG.load()))
}

#[inline(always)]
fn event(kind: u32, r: &pt_regs) -> Event {
    Event {
        kind,
        // SAFETY: plain helper calls.
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_ns() },
        // The probe sits before `push rbp`: the return address is at the stack top.
        pc: read_u64(r.rsp),
        stack_id: -1,
        ..Event::default()
    }
}

#[inline(always)]
fn emit(ev: &Event) {
    match EVENTS.output(ev, BPF_RB_NO_WAKEUP as u64) {
        Ok(()) => count(counter::RECORDS),
        Err(_) => count(counter::DROPS),
    }
}

/// `gopark(unlockf, lock, reason waitReason, traceReason, traceskip)`.
#[uprobe]
pub fn go_park(ctx: ProbeContext) -> u32 {
    count(kind::PARK);
    let r = regs(&ctx);
    let g = r.r14;
    let goid = goid_of(g);
    if goid == 0 {
        aya_log_ebpf::warn!(&ctx, "gopark: no goid readable from g {:x}", g);
    }
    let mut ev = event(kind::PARK, r);
    ev.goid = goid;
    ev.obj = r.rbx;
    ev.arg = r.rcx & 0xff;
    // SAFETY: map lookups with keys on the stack.
    if let Some(sema) = unsafe { PENDING_SEMA.get(&goid) } {
        ev.obj2 = *sema;
        let _ = PENDING_SEMA.remove(&goid);
    }
    let off = G_GOPC.load();
    if off != 0 {
        ev.gopc = read_u64(g + off);
    }
    let off = G_STARTPC.load();
    if off != 0 {
        ev.startpc = read_u64(g + off);
    }
    let off = G_PARENT_GOID.load();
    if off != 0 {
        ev.peer_goid = read_u64(g + off);
    }
    if WANT_STACKS.load() != 0 {
        match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
            Ok(id) => ev.stack_id = id,
            Err(_) => count(counter::STACK_ERRORS),
        }
    }
    let state = ParkState {
        since_ns: ev.ts_ns,
        reason: ev.arg,
        obj: if ev.obj2 != 0 { ev.obj2 } else { ev.obj },
    };
    let _ = PARKED.insert(&goid, &state, 0);
    emit(&ev);
    0
}

/// `ready(gp *g, traceskip int, next bool)`: runs on g0; gp is in RAX.
#[uprobe]
pub fn go_ready(ctx: ProbeContext) -> u32 {
    count(kind::READY);
    let r = regs(&ctx);
    let goid = goid_of(r.rax);
    let mut ev = event(kind::READY, r);
    ev.goid = goid;
    ev.peer_goid = current_goid(r);
    // SAFETY: map lookup with a key on the stack.
    if let Some(state) = unsafe { PARKED.get(&goid) } {
        ev.arg = ev.ts_ns.saturating_sub(state.since_ns);
        ev.obj = state.reason;
        ev.obj2 = state.obj;
        let _ = PARKED.remove(&goid);
    }
    emit(&ev);
    0
}

/// `execute(gp *g, inheritTime bool)`: runs on g0; gp is in RAX.
#[uprobe]
pub fn go_execute(ctx: ProbeContext) -> u32 {
    count(kind::EXECUTE);
    if VERBOSE.load() == 0 {
        return 0;
    }
    let r = regs(&ctx);
    let mut ev = event(kind::EXECUTE, r);
    ev.goid = goid_of(r.rax);
    emit(&ev);
    0
}

/// `goexit0(gp *g)`: runs on g0; gp is in RAX.
#[uprobe]
pub fn go_exit(ctx: ProbeContext) -> u32 {
    count(kind::EXIT);
    let r = regs(&ctx);
    let goid = goid_of(r.rax);
    let _ = PARKED.remove(&goid);
    let mut ev = event(kind::EXIT, r);
    ev.goid = goid;
    emit(&ev);
    0
}

#[inline(always)]
fn chan_op(ctx: &ProbeContext, which: u32) -> u32 {
    count(which);
    if VERBOSE.load() == 0 {
        return 0;
    }
    let r = regs(ctx);
    let mut ev = event(which, r);
    ev.goid = goid_of(r.r14);
    ev.obj = r.rax;
    ev.arg = r.rcx & 0xff;
    emit(&ev);
    0
}

/// `chansend(c *hchan, ep unsafe.Pointer, block bool, callerpc uintptr)`.
#[uprobe]
pub fn go_chansend(ctx: ProbeContext) -> u32 {
    chan_op(&ctx, kind::CHAN_SEND)
}

/// `chanrecv(c *hchan, ep unsafe.Pointer, block bool)`.
#[uprobe]
pub fn go_chanrecv(ctx: ProbeContext) -> u32 {
    chan_op(&ctx, kind::CHAN_RECV)
}

/// `selectgo(cas0, order0, pc0, nsends, nrecvs int, block bool)`.
#[uprobe]
pub fn go_select(ctx: ProbeContext) -> u32 {
    count(kind::SELECT);
    if VERBOSE.load() == 0 {
        return 0;
    }
    let r = regs(&ctx);
    let mut ev = event(kind::SELECT, r);
    ev.goid = goid_of(r.r14);
    ev.arg = r.rdi.wrapping_add(r.rsi);
    ev.obj = r.r8 & 0xff;
    emit(&ev);
    0
}

/// `lockSlow(m *Mutex)`: the contended path of `sync.Mutex.Lock`.
#[uprobe]
pub fn go_lock_slow(ctx: ProbeContext) -> u32 {
    count(kind::LOCK_SLOW);
    let r = regs(&ctx);
    let mut ev = event(kind::LOCK_SLOW, r);
    ev.goid = goid_of(r.r14);
    ev.obj = r.rax;
    emit(&ev);
    0
}

/// `semacquire1(addr *uint32, lifo bool, profile, skipframes int, reason)`: the
/// semaphore a mutex, RWMutex or WaitGroup sleeps on. Remembered so that the park
/// that follows can name the object.
#[uprobe]
pub fn go_semacquire(ctx: ProbeContext) -> u32 {
    count(kind::SEMACQUIRE);
    let r = regs(&ctx);
    let goid = goid_of(r.r14);
    let addr = r.rax;
    let _ = PENDING_SEMA.insert(&goid, &addr, 0);
    if VERBOSE.load() != 0 {
        let mut ev = event(kind::SEMACQUIRE, r);
        ev.goid = goid;
        ev.obj = addr;
        emit(&ev);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

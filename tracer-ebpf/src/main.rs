//! Kernel side of tracer: uprobes on the Go runtime's scheduling points.
//!
//! Every program reads the Go registers (ABIInternal: arguments in RAX, RBX, RCX, RDI,
//! ...; the current `g` in R14) straight from `pt_regs`, does the least work that lets
//! userspace rebuild the picture, and writes at most one fixed-size record. Records
//! are written without waking the reader (`BPF_RB_NO_WAKEUP`): the agent polls on a
//! timer, which is several microseconds cheaper per record than a wakeup. The one
//! exception is the record that says the lock sites' budget is spent.
#![no_std]
#![no_main]
// An atomic add: the bpf target's `AtomicU64` has loads and stores only.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::{pt_regs, BPF_F_USER_STACK, BPF_NOEXIST, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_attach_cookie, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::{map, uprobe},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{tracing::StackIdContext, ProbeContext},
    Global,
};
use tracer_common::{
    counter, exit_hold, kind, lockop, EdgeKey, Event, HeldLocks, LockCaller, LockSiteInfo,
    ParkState, ReleaseKey, CALLER_IGNORED, HOLD_HIST_BUCKETS, HOLD_HIST_SITES, MAX_HELD,
    SEQ_UNKNOWN,
};

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

/// Innermost return addresses of a park -> its stack id (see `park_stack`).
#[map]
static STACK_CACHE: LruHashMap<[u64; 4], i64> = LruHashMap::with_max_entries(1 << 14, 0);

/// goid -> semaphore it is about to sleep on (set by semacquire1, taken by gopark).
#[map]
static PENDING_SEMA: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 16, 0);

/// The exit hold (`tracer_common::exit_hold`): when `go_exiting` stopped the target,
/// and the agent's heartbeat. A map, not a record: a full ring buffer must not leave
/// the target stopped with nobody told.
#[map]
static EXIT_HOLD: Array<u64> = Array::with_max_entries(exit_hold::SLOTS, 0);

/// Hits the lock sites may still take on this CPU before the budget's credit is
/// spent: the agent sets it every tick while they are on (left at 0, it never
/// wakes anyone: no budget). The hit that takes it from 1 to 0 writes a record
/// with a wakeup, and the agent detaches the sites at once: under a burst they
/// would otherwise trap at full cost until its next tick and through a detach.
#[map]
static LOCK_ALLOWANCE: PerCpuArray<i64> = PerCpuArray::with_max_entries(1, 0);

/// Lock sites, indexed by the attach cookie (the agent fills it before attaching).
#[map]
static LOCK_SITES: Array<LockSiteInfo> = Array::with_max_entries(1 << 16, 0);

/// Who called an entry-probed lock method (see `tracer_common::LockCaller`): the
/// site index that names the hit, or `CALLER_IGNORED` for `sync`'s own calls.
#[map]
static LOCK_CALLERS: HashMap<LockCaller, u32> = HashMap::with_max_entries(1 << 16, 0);

/// goid -> the locks it holds now.
#[map]
static HELD: LruHashMap<u64, HeldLocks> = LruHashMap::with_max_entries(1 << 16, 0);

/// Holds released by another goroutine, not yet taken off their owner's set
/// (see `tracer_common::HeldLocks`): the owner applies them at its next lock,
/// the agent when it reads the sets.
#[map]
static RELEASED: LruHashMap<ReleaseKey, u64> = LruHashMap::with_max_entries(1 << 16, 0);

/// When the agent last switched the lock sites (`CLOCK_MONOTONIC` ns): holds
/// taken before then are void, since their Unlock may have gone unseen (and a
/// lock left "held" would invent order edges). The agent cannot rewrite a held
/// set without racing its owner, so the owner drops them at its next lock.
#[map]
static PURGED_AT: Array<u64> = Array::with_max_entries(1, 0);

/// mutex -> goroutine holding it for writing. Go allows unlocking from another
/// goroutine; this finds whose held set the unlock clears.
#[map]
static HOLDER: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 18, 0);

/// RWMutex -> the goroutine that last read-locked it: a read lock released by
/// another goroutine (`database/sql` releases a Tx's read lock from its
/// context's watcher) is taken off that reader's held set, else its later locks
/// would make edges from a lock it no longer holds. With several readers at
/// once it may name the wrong one; the held sets then catch up as they unlock.
#[map]
static READER: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 18, 0);

/// Hold times per acquisition site, log2 buckets (`site * BUCKETS + bucket`).
#[map]
static HOLD_HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(HOLD_HIST_SITES * HOLD_HIST_BUCKETS, 0);

/// Lock-order edges already reported: each is sent to userspace once. LRU: a full
/// plain hash map refused new keys, and every edge was then sent again each time.
#[map]
static EDGES: LruHashMap<EdgeKey, u32> = LruHashMap::with_max_entries(1 << 16, 0);

/// Instance edges reported per pair of acquisition sites (`held site << 32 | site`).
/// Objects made per request (a mutex in each request's struct) would otherwise send
/// a new edge, with a stack, for every request; past [`MAX_EDGES_PER_CLASS`] the
/// class edge is known and further instances are counted, not sent.
#[map]
static CLASS_EDGES: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1 << 14, 0);
const MAX_EDGES_PER_CLASS: u32 = 64;

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
static G_TRACKING_SEQ: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static VERBOSE: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static WANT_STACKS: Global<u64> = Global::new(1);
#[unsafe(no_mangle)]
static STOP_AT_EXIT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static BENCH_COPIES: Global<u64> = Global::new(1);
const MAX_BENCH_COPIES: u64 = 16;
/// Benchmarks only: non-zero, the park, ready and lock-site programs return
/// right after counting the hit, so that the trap's cost can be told from the
/// record's.
#[unsafe(no_mangle)]
static BENCH_TRAP_ONLY: Global<u64> = Global::new(0);
/// Bit n set: wait reason n is how healthy programs idle (IO wait, sleep): such
/// parks are remembered in `PARKED` but cost no record and no stack.
#[unsafe(no_mangle)]
static IDLE_REASONS: Global<u64> = Global::new(0);

#[inline(always)]
fn idle(reason: u64) -> bool {
    reason < 64 && IDLE_REASONS.load() & (1 << reason) != 0
}

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

/// `g.trackingSeq` (a byte), or [`SEQ_UNKNOWN`].
#[inline(always)]
fn tracking_seq(g: u64) -> u64 {
    let off = G_TRACKING_SEQ.load();
    if off == 0 || g == 0 {
        return SEQ_UNKNOWN;
    }
    read_u64(g + off) & 0xff
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
    // The probe sits before `push rbp`: the return address is at the stack top.
    event_at(kind, read_u64(r.rsp))
}

/// An event whose probed function returns to `pc`.
#[inline(always)]
fn event_at(kind: u32, pc: u64) -> Event {
    Event {
        kind,
        // SAFETY: plain helper calls.
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pc,
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
///
/// At gopark's entry: the `--events` view, which wants every park (`go_park_call`
/// otherwise). A multi-uprobe link, like `go_ready`, although it has one site: the
/// budget detaches it, and a perf-event uprobe's breakpoint stayed in the target's
/// text for 100-250 ms after the detach (the target trapping at full cost, the
/// program no longer counting), where a multi link's goes at once.
#[uprobe(multi)]
pub fn go_park(ctx: ProbeContext) -> u32 {
    let r = regs(&ctx);
    // The probe sits before `push rbp`: the return address is at the stack top.
    park(&ctx, r, read_u64(r.rsp))
}

/// The same park, probed on a `call runtime.gopark` (5 bytes) instead of at its
/// entry, so that the callers whose parks are all idle waits (the network poller,
/// `time.Sleep`) do not trap. The arguments are already in their registers; the
/// return address is the one the call is about to push.
#[uprobe(multi)]
pub fn go_park_call(ctx: ProbeContext) -> u32 {
    let r = regs(&ctx);
    park(&ctx, r, r.rip + CALL_LEN)
}

const CALL_LEN: u64 = 5;

/// A park, `ret` being gopark's return address (in its caller).
#[inline(always)]
fn park(ctx: &ProbeContext, r: &pt_regs, ret: u64) -> u32 {
    count(kind::PARK);
    if BENCH_TRAP_ONLY.load() != 0 {
        return 0;
    }
    let g = r.r14;
    let goid = goid_of(g);
    if goid == 0 {
        aya_log_ebpf::warn!(ctx, "gopark: no goid readable from g {:x}", g);
    }
    if idle(r.rcx & 0xff) {
        // Idle waits: the agent reads who is parked from memory; the kernel only
        // keeps the exact park time.
        let state = ParkState {
            // SAFETY: plain helper call.
            since_ns: unsafe { bpf_ktime_get_ns() },
            reason: r.rcx & 0xff,
            obj: r.rbx,
            seq: parked_seq(g),
        };
        let _ = PARKED.insert(&goid, &state, 0);
        return 0;
    }
    let mut ev = event_at(kind::PARK, ret);
    ev.goid = goid;
    ev.obj = r.rbx;
    ev.arg = r.rcx & 0xff;
    // SAFETY: map lookups with keys on the stack.
    // The entry stays: the agent's memory reads name the mutex of a goroutine
    // parked while the park probes were off from it too (the next semacquire1 of
    // the goroutine overwrites it).
    if let Some(sema) = unsafe { PENDING_SEMA.get(&goid) } {
        ev.obj2 = *sema;
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
        ev.stack_id = park_stack(ctx, r, ret);
    }
    let state = ParkState {
        since_ns: ev.ts_ns,
        reason: ev.arg,
        obj: if ev.obj2 != 0 { ev.obj2 } else { ev.obj },
        seq: parked_seq(g),
    };
    let _ = PARKED.insert(&goid, &state, 0);
    emit(&ev);
    // Benchmarks only: the same record again, so the agent's drain rate can be
    // measured beyond the rate at which the target can trap.
    let copies = BENCH_COPIES.load();
    for i in 1..MAX_BENCH_COPIES {
        if i >= copies {
            break;
        }
        emit(&ev);
    }
    0
}

/// The goroutine's `trackingSeq` once this park takes effect: gopark runs before
/// the switch out of `_Grunning`, which bumps it once.
#[inline(always)]
fn parked_seq(g: u64) -> u64 {
    match tracking_seq(g) {
        SEQ_UNKNOWN => SEQ_UNKNOWN,
        s => (s + 1) & 0xff,
    }
}

/// A cheap key for a park's stack: the innermost return addresses, read through the
/// frame pointers (the caller of gopark, then three frames up: through the runtime's
/// wrappers into user code).
#[inline(always)]
fn stack_key(r: &pt_regs, ret: u64) -> [u64; 4] {
    let mut key = [0u64; 4];
    key[0] = ret;
    let mut bp = r.rbp;
    for slot in key.iter_mut().skip(1) {
        if bp == 0 {
            break;
        }
        *slot = read_u64(bp + 8);
        bp = read_u64(bp);
    }
    key
}

/// The user stack of a park. A full walk costs about 2 µs; parks at the same place
/// share their innermost frames, so the id found for those frames is reused.
#[inline(always)]
fn park_stack(ctx: &ProbeContext, r: &pt_regs, ret: u64) -> i64 {
    let key = stack_key(r, ret);
    // SAFETY: lookup with a key on the stack.
    if let Some(id) = unsafe { STACK_CACHE.get(&key) } {
        return *id;
    }
    match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => {
            let _ = STACK_CACHE.insert(&key, &id, 0);
            id
        }
        Err(_) => {
            count(counter::STACK_ERRORS);
            -1
        }
    }
}

/// `ready(gp *g, traceskip int, next bool)`: runs on g0; gp is in RAX.
#[uprobe(multi)]
pub fn go_ready(ctx: ProbeContext) -> u32 {
    count(kind::READY);
    if BENCH_TRAP_ONLY.load() != 0 {
        return 0;
    }
    let r = regs(&ctx);
    let goid = goid_of(r.rax);
    let mut ev = event(kind::READY, r);
    ev.goid = goid;
    ev.peer_goid = current_goid(r);
    // SAFETY: map lookup with a key on the stack.
    if let Some(state) = unsafe { PARKED.get(&goid) } {
        if state.seq != SEQ_UNKNOWN && state.seq != tracking_seq(r.rax) {
            // That park ended while the park probes were off (budget): this wake
            // ends a park that was never seen.
            let _ = PARKED.remove(&goid);
            emit(&ev);
            return 0;
        }
        if idle(state.reason) {
            let _ = PARKED.remove(&goid);
            return 0;
        }
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

/// `runtime.exit(code)`: the process is about to end. Stopping it here (SIGSTOP,
/// delivered as the probe returns) lets the agent read which goroutines are still
/// parked while its memory exists; the agent sends SIGCONT right after. Only an
/// agent that beat its heartbeat recently gets the hold: one that is stopped,
/// stalled on output or dead could not end it (its guardian would, after
/// `MAX_HOLD_NS`, but a service's shutdown should not wait for that).
#[uprobe]
pub fn go_exiting(ctx: ProbeContext) -> u32 {
    count(kind::EXITING);
    let r = regs(&ctx);
    let mut ev = event(kind::EXITING, r);
    ev.goid = current_goid(r);
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let beat = EXIT_HOLD.get(exit_hold::HEARTBEAT).copied().unwrap_or(0);
    let agent_alive = beat != 0 && now.wrapping_sub(beat) < exit_hold::HEARTBEAT_MAX_NS;
    if STOP_AT_EXIT.load() != 0 && agent_alive {
        // SAFETY: plain helper call; signals the current process.
        if unsafe { aya_ebpf::helpers::bpf_send_signal(19) } == 0 {
            ev.arg = 1;
            if let Some(slot) = EXIT_HOLD.get_ptr_mut(exit_hold::HELD_SINCE) {
                // SAFETY: a valid slot of the array.
                unsafe { *slot = now.max(1) };
            }
        }
    }
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

/// A register of `pt_regs` by its index (r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax
/// rcx rdx rsi rdi orig_rax rip cs eflags rsp). Context fields need constant offsets,
/// hence the match.
#[inline(always)]
fn reg(r: &pt_regs, index: u32) -> u64 {
    match index {
        0 => r.r15,
        1 => r.r14,
        2 => r.r13,
        3 => r.r12,
        4 => r.rbp,
        5 => r.rbx,
        6 => r.r11,
        7 => r.r10,
        8 => r.r9,
        9 => r.r8,
        10 => r.rax,
        11 => r.rcx,
        12 => r.rdx,
        13 => r.rsi,
        14 => r.rdi,
        16 => r.rip,
        19 => r.rsp,
        _ => 0,
    }
}

const EFLAGS_ZF: u64 = 1 << 6;

/// Every Lock/Unlock/RLock/RUnlock/TryLock site, inlined or not. Keeps each
/// goroutine's held set in the kernel and sends userspace only what it cannot
/// derive: a lock-order edge the first time it is seen, and re-acquisitions of a
/// held lock. A multi-uprobe program: all sites are one link, cheap to attach and
/// to detach.
#[uprobe(multi)]
pub fn go_lock(ctx: ProbeContext) -> u32 {
    // SAFETY: the context pointer is the helper's argument.
    let site = unsafe { bpf_get_attach_cookie(ctx.regs.cast()) } as u32;
    let Some(info) = LOCK_SITES.get(site) else {
        return 0;
    };
    count(counter::LOCK_SITE_HITS);
    spend_allowance();
    if BENCH_TRAP_ONLY.load() != 0 {
        return 0;
    }
    let r = regs(&ctx);
    if info.if_zf != 0 && r.eflags & EFLAGS_ZF == 0 {
        return 0;
    }
    let mut site = site;
    if info.by_caller != 0 {
        // Relative to the probe (the kernel sets rip to the probed address), so
        // the same in a PIE wherever it is loaded.
        let key = LockCaller {
            site: site as u64,
            ret: read_u64(r.rsp).wrapping_sub(r.rip),
        };
        // SAFETY: lookup with a key on the stack.
        match unsafe { LOCK_CALLERS.get(&key) }.copied() {
            Some(CALLER_IGNORED) => return 0,
            Some(by) => site = by,
            None => {}
        }
    }
    let m = reg(r, info.reg).wrapping_add(info.adjust as u64);
    let goid = current_goid(r);
    if VERBOSE.load() != 0 {
        let mut ev = event(kind::LOCK_OP, r);
        // Mid-function probe: the stack top is not a return address.
        ev.pc = 0;
        ev.goid = goid;
        ev.obj = m;
        ev.arg = site as u64;
        emit(&ev);
    }
    match info.op {
        lockop::UNLOCK | lockop::RUNLOCK => release(goid, m, info.op == lockop::UNLOCK),
        _ => acquire(&ctx, r, goid, m, site, info.op),
    }
    0
}

/// One hit off this CPU's allowance; the hit that spends it wakes the agent.
#[inline(always)]
fn spend_allowance() {
    let Some(left) = LOCK_ALLOWANCE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU (the agent's
    // update may race one hit: the allowance is approximate by a hit).
    let spent = unsafe {
        *left -= 1;
        *left == 0
    };
    if spent {
        let ev = event_at(kind::BUDGET_SPENT, 0);
        match EVENTS.output(&ev, BPF_RB_FORCE_WAKEUP as u64) {
            Ok(()) => count(counter::RECORDS),
            Err(_) => count(counter::DROPS),
        }
    }
}

#[inline(always)]
fn acquire(ctx: &ProbeContext, r: &pt_regs, goid: u64, m: u64, site: u32, op: u32) {
    let read = op == lockop::RLOCK || op == lockop::TRY_RLOCK;
    let empty = HeldLocks::default();
    if HELD.get_ptr_mut(&goid).is_none() {
        let _ = HELD.insert(&goid, &empty, 0);
    }
    let Some(held) = HELD.get_ptr_mut(&goid) else {
        return;
    };
    // SAFETY: map value pointer, valid for this program run.
    let held = unsafe { &mut *held };
    tidy(goid, held);
    let n = (held.n as usize).min(MAX_HELD);
    for i in 0..MAX_HELD {
        if i >= n {
            break;
        }
        let h = held.locks[i];
        if h == m {
            let both_read = read && held.read & (1 << i) != 0;
            let mut ev = event(kind::LOCK_SELF, r);
            ev.pc = 0;
            ev.goid = goid;
            ev.obj = m;
            ev.obj2 = u64::from(both_read);
            ev.arg = site as u64;
            stack(ctx, &mut ev);
            emit(&ev);
            continue;
        }
        let key = EdgeKey { from: h, to: m };
        // SAFETY: lookup with a key on the stack.
        if unsafe { EDGES.get(&key) }.is_some() {
            continue;
        }
        let class = (u64::from(held.sites[i]) << 32) | site as u64;
        // SAFETY: lookup with a key on the stack.
        let sent = unsafe { CLASS_EDGES.get(&class) }.copied().unwrap_or(0);
        if sent >= MAX_EDGES_PER_CLASS {
            count(counter::EDGES_CAPPED);
            continue;
        }
        let _ = CLASS_EDGES.insert(&class, &(sent + 1), 0);
        let _ = EDGES.insert(&key, &1, 0);
        let mut ev = event(kind::LOCK_EDGE, r);
        ev.pc = 0;
        ev.goid = goid;
        ev.obj = h;
        ev.obj2 = m;
        ev.arg = (u64::from(held.sites[i]) << 32) | site as u64;
        ev.peer_goid = u64::from(held.read & (1 << i) != 0) | (u64::from(read) << 1);
        stack(ctx, &mut ev);
        emit(&ev);
    }
    if n < MAX_HELD {
        held.locks[n] = m;
        held.sites[n] = site;
        // SAFETY: plain helper call.
        held.since[n] = unsafe { bpf_ktime_get_ns() };
        if read {
            held.read |= 1 << n;
        } else {
            held.read &= !(1 << n);
        }
        held.n = n as u32 + 1;
    } else {
        count(counter::HELD_OVERFLOW);
    }
    if read {
        let _ = READER.insert(&m, &goid, 0);
    } else {
        let _ = HOLDER.insert(&m, &goid, 0);
    }
}

#[inline(always)]
fn stack(ctx: &ProbeContext, ev: &mut Event) {
    match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => ev.stack_id = id,
        Err(_) => count(counter::STACK_ERRORS),
    }
}

/// Takes `m` off the held set of whoever holds it. Usually the caller; Go also
/// allows another goroutine to unlock, and then `HOLDER` (`READER` for a read
/// lock) names the owner. `HOLDER` is last-writer-wins (a contended Lock's
/// attempt overwrites it), so it is only cleared by the goroutine it names.
#[inline(always)]
fn release(goid: u64, m: u64, write: bool) {
    if remove_held(goid, m, write) {
        // SAFETY: lookup with a key on the stack.
        if write && unsafe { HOLDER.get(&m) }.is_some_and(|h| *h == goid) {
            let _ = HOLDER.remove(&m);
        }
        return;
    }
    if write {
        // SAFETY: lookup with a key on the stack.
        if let Some(owner) = unsafe { HOLDER.get(&m) }.copied() {
            release_for(owner, goid, m, false);
            let _ = HOLDER.remove(&m);
        }
        return;
    }
    // Kept: the same reader may hold it twice, both released by another.
    // SAFETY: lookup with a key on the stack.
    if let Some(owner) = unsafe { READER.get(&m) }.copied() {
        release_for(owner, goid, m, true);
    }
}

/// Another goroutine's release of `owner`'s hold of `m`: counted for the owner
/// to apply (it alone edits its set). Only when the set shows such a hold, so a
/// count never waits to cancel a later hold it did not match.
#[inline(always)]
fn release_for(owner: u64, goid: u64, m: u64, read: bool) {
    if owner == goid {
        return;
    }
    let Some(held) = HELD.get_ptr_mut(&owner) else {
        return;
    };
    // SAFETY: map value pointer, valid for this program run; read only, but for
    // `released`, which is only ever added to atomically.
    if !unsafe { &*held }.holds(m, read) {
        return;
    }
    let key = ReleaseKey {
        goid: owner,
        lock: m | u64::from(read),
    };
    // SAFETY: lookups with a key on the stack; the counts are only added to
    // atomically here and taken from by their owner.
    unsafe {
        match RELEASED.get_ptr_mut(&key) {
            Some(c) => add_u64(c, 1),
            None => {
                if RELEASED.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                    // Another goroutine inserted it first.
                    match RELEASED.get_ptr_mut(&key) {
                        Some(c) => add_u64(c, 1),
                        None => return,
                    }
                }
            }
        }
        add_u64(core::ptr::addr_of_mut!((*held).released), 1);
    }
}

/// An atomic add (a locked add instruction), for counts other CPUs add to.
///
/// # Safety
/// `p` is a valid, aligned map value field.
#[inline(always)]
unsafe fn add_u64(p: *mut u64, v: u64) {
    // SAFETY: per the contract. The result is unused: a plain locked add.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

/// The owner's tidy-up before it reads its set: applies the releases other
/// goroutines counted for it, and drops holds taken before the agent last
/// switched the lock sites, by the rule of `HeldLocks::gone` (which the
/// agent's reads call). Their hold times are not known, so not in `HOLD_HIST`.
#[inline(always)]
fn tidy(goid: u64, held: &mut HeldLocks) {
    // SAFETY: an aligned field of the map value; other CPUs add to it atomically.
    let released = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(held.released)) };
    let purged = PURGED_AT.get(0).copied().unwrap_or(0);
    let n = (held.n as usize).min(MAX_HELD);
    if n == 0 {
        held.applied = released;
        return;
    }
    let mut drop: u32 = 0;
    for j in 0..MAX_HELD {
        let i = MAX_HELD - 1 - j;
        if i >= n {
            continue;
        }
        if held.since[i] <= purged {
            drop |= 1 << i;
        }
        if released == held.applied {
            continue;
        }
        // A void hold takes its count too, so the count cannot cancel a later
        // hold of the same lock.
        let key = ReleaseKey {
            goid,
            lock: held.locks[i] | u64::from((held.read >> i) & 1),
        };
        if let Some(c) = RELEASED.get_ptr_mut(&key) {
            // SAFETY: map value pointer; only the owner takes from the count,
            // so it cannot go below zero.
            unsafe {
                if core::ptr::read_volatile(c) > 0 {
                    add_u64(c, u64::MAX);
                    drop |= 1 << i;
                }
            }
        }
    }
    held.applied = released;
    if drop == 0 {
        return;
    }
    let mut k = 0;
    let mut read = 0;
    for i in 0..MAX_HELD {
        if i >= n || k >= MAX_HELD {
            break;
        }
        if drop & (1 << i) != 0 {
            continue;
        }
        held.locks[k] = held.locks[i];
        held.sites[k] = held.sites[i];
        held.since[k] = held.since[i];
        read |= ((held.read >> i) & 1) << k;
        k += 1;
    }
    held.n = k as u32;
    held.read = read;
}

#[inline(always)]
fn remove_held(goid: u64, m: u64, write: bool) -> bool {
    let Some(held) = HELD.get_ptr_mut(&goid) else {
        return false;
    };
    // SAFETY: map value pointer, valid for this program run.
    let held = unsafe { &mut *held };
    let n = (held.n as usize).min(MAX_HELD);
    // The most recent acquisition of `m` of the same kind is released (an
    // Unlock never ends a read hold: another goroutine's unlock of the write
    // lock must not take off the read lock its holder is waiting for next):
    // search from the top.
    let want_read = u32::from(!write);
    let mut found = MAX_HELD;
    for j in 0..MAX_HELD {
        let i = MAX_HELD - 1 - j;
        if i < n && held.locks[i] == m && (held.read >> i) & 1 == want_read {
            found = i;
            break;
        }
    }
    if found == MAX_HELD {
        return false;
    }
    let site = held.sites[found];
    if site < HOLD_HIST_SITES {
        // SAFETY: plain helper call.
        let hold = unsafe { bpf_ktime_get_ns() }.saturating_sub(held.since[found]);
        let bucket = (64 - hold.leading_zeros()).min(HOLD_HIST_BUCKETS - 1);
        if let Some(slot) = HOLD_HIST.get_ptr_mut(site * HOLD_HIST_BUCKETS + bucket) {
            // SAFETY: per-CPU slot.
            unsafe { *slot += 1 };
        }
    }
    for i in 0..MAX_HELD - 1 {
        if i >= found && i + 1 < n {
            held.locks[i] = held.locks[i + 1];
            held.sites[i] = held.sites[i + 1];
            held.since[i] = held.since[i + 1];
            let bit = (held.read >> (i + 1)) & 1;
            held.read = (held.read & !(1 << i)) | (bit << i);
        }
    }
    held.n = n as u32 - 1;
    held.read &= (1u32 << held.n) - 1;
    true
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

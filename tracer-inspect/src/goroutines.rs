//! Reads every goroutine from the target's memory (`runtime.allgs`): the snapshot
//! that shows goroutines parked long before the tracer attached, at zero cost to the
//! target. The target keeps running while this reads, so each g is read in one copy
//! and checked for consistency; a goroutine that changed under us is skipped, not
//! misreported.
use crate::memory::Memory;
use crate::target::TargetInfo;
use std::collections::HashMap;

/// `_Gwaiting`; the `_Gscan` bit (0x1000) may be set while the GC looks at it.
const G_WAITING: u32 = 4;
const G_DEAD: u32 = 6;
/// `_Gleaked` (Go 1.26 with `GOEXPERIMENT=goroutineleakprofile`, Go 1.27): a
/// waiting goroutine the GC proved unreachable when the `goroutineleak` profile
/// was taken. It never runs again. Unused before Go 1.26.
const G_LEAKED: u32 = 10;
/// `_Gdeadextra` (Go 1.26): a dead g kept for an extra M (cgo callbacks).
const G_DEAD_EXTRA: u32 = 11;
const G_SCAN: u32 = 0x1000;
const MAX_FRAMES: usize = 64;
/// How much of a parked goroutine's stack is copied in one read for the frame walk.
const STACK_CHUNK: usize = 4096;
/// Goroutines read per block: 1,024 g structs and stack chunks are about 5 MB.
const BLOCK: usize = 1024;

/// One goroutine as the runtime describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGoroutine {
    pub goid: u64,
    pub status: u32,
    pub wait_reason: u8,
    /// `g.waitsince` (nanotime, CLOCK_MONOTONIC); 0 when the runtime has not set it
    /// (it does so lazily, at the first GC after the park).
    pub wait_since: i64,
    pub gopc: u64,
    pub startpc: u64,
    pub parent_goid: u64,
    /// Run-time PCs of the parked stack, innermost first, all return addresses:
    /// the first, `g.sched.pc`, is where gopark's call to `mcall` returns.
    pub pcs: Vec<u64>,
    /// For channel waits: the channel of the first sudog (`g.waiting.c`).
    pub waiting_chan: u64,
    /// `g.trackingSeq`: bumped by the runtime each time the goroutine stops running
    /// (Go 1.17+). Unchanged between two reads of a parked goroutine means it has
    /// not run in between: the same park, without a probe (mod 256).
    pub tracking_seq: Option<u8>,
    /// `g.sched.pc`: where the park left off; with `tracking_seq`, a park's
    /// identity (not `sched.sp`: the GC may move a parked goroutine's stack).
    pub sched_pc: u64,
    /// The earliest firing time (nanotime) of the timers whose channels the
    /// goroutine waits on (its `g.waiting` sudogs, one per select case, whose
    /// `hchan.timer` is set: Go 1.23+): the runtime will wake it by then. None:
    /// no timer channel among them, or a stopped timer (`when` 0).
    pub timer_when: Option<i64>,
    /// The channels the goroutine waits on (its `g.waiting` sudogs) with their
    /// element type descriptors (`hchan.elemtype`, run-time addresses), for parks
    /// the caller did not know yet: names them with [`crate::typenames`].
    pub waiting_chans: Vec<(u64, u64)>,
}

impl RawGoroutine {
    /// Parked: waiting, or leaked (waiting for good, as the GC proved).
    pub fn is_waiting(&self) -> bool {
        parked_status(self.status)
    }

    /// The GC proved it can never be woken (`_Gleaked`).
    pub fn is_leaked(&self) -> bool {
        self.status & !G_SCAN == G_LEAKED
    }
}

fn parked_status(status: u32) -> bool {
    matches!(status & !G_SCAN, G_WAITING | G_LEAKED)
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub goroutines: Vec<RawGoroutine>,
    /// All live (not dead) goroutines.
    pub live: u64,
    /// The goid of each of them, whether or not its read held (a goroutine
    /// that woke while its stack was read is left out of `goroutines`, yet
    /// is alive: one taken for gone would look like it ended holding locks).
    pub alive: Vec<u64>,
    /// g structs that could not be read or changed while being read.
    pub skipped: u64,
    /// `runtime.work.tstart` when the read began: when the last GC cycle's mark
    /// termination started (nanotime), the value the next cycle's stack scans
    /// stamp into `g.waitsince`. None when it could not be read.
    pub gc_tstart: Option<i64>,
}

/// Reads all goroutines, walking the stack of each parked one.
pub fn snapshot(target: &TargetInfo, mem: &Memory) -> Option<Snapshot> {
    snapshot_with(target, mem, |_| false)
}

/// Reads all goroutines; `known` says which parked ones the caller already has the
/// stack of (the same park as in its last read): their walk is skipped and `pcs`
/// left empty. With 100,000 parked goroutines the walks are most of a read.
pub fn snapshot_with(
    target: &TargetInfo,
    mem: &Memory,
    known: impl Fn(&RawGoroutine) -> bool,
) -> Option<Snapshot> {
    // A PIE's data moves with its load bias, unknown until it runs (`tracer
    // run`'s child before its exec): nothing to read yet.
    let bias = target.load_bias()?;
    let allgs = target.data.get("runtime.allgs")?;
    let off = |n: &str| target.offsets.get(n);
    let goid_off = off("runtime.g.goid")?;
    let status_off = off("runtime.g.atomicstatus")?;
    let fields = [
        goid_off,
        status_off,
        off("runtime.g.waitreason").unwrap_or(0),
        off("runtime.g.waitsince").unwrap_or(0),
        off("runtime.g.gopc").unwrap_or(0),
        off("runtime.g.startpc").unwrap_or(0),
        off("runtime.g.parentGoid").unwrap_or(0),
        off("runtime.g.sched.pc").unwrap_or(0),
        off("runtime.g.sched.sp").unwrap_or(0),
        off("runtime.g.sched.bp").unwrap_or(0),
        off("runtime.g.waiting").unwrap_or(0),
        off("runtime.g.trackingSeq").unwrap_or(0),
        off("runtime.g.stack.hi").unwrap_or(8),
    ];
    let g_size = (*fields.iter().max()? + 8) as usize;
    // allgs is a slice: (ptr, len, cap).
    let base = allgs.addr + bias;
    let ptr = mem.u64(base).ok()?;
    let len = mem.u64(base + 8).ok()? as usize;
    if len > 50_000_000 {
        return None;
    }
    let mut gptrs = vec![0u8; len * 8];
    mem.read(ptr, &mut gptrs).ok()?;
    let gptrs: Vec<u64> = gptrs
        .as_chunks::<8>()
        .0
        .iter()
        .map(|c| u64::from_le_bytes(*c))
        .collect();
    let sudog_c = off("runtime.sudog.c");
    let timer = off("runtime.hchan.timer");
    let sudogs = SudogOffsets {
        sudog_c: sudog_c.unwrap_or(0),
        waitlink: off("runtime.sudog.waitlink"),
        timer,
        when: off("runtime.timer.when"),
        elemtype: off("runtime.hchan.elemtype"),
        heap_timers: std::cell::OnceCell::new(),
        heap_source: (target, bias),
    };

    let mut snap = Snapshot {
        gc_tstart: gc_tstart(target, mem, bias),
        ..Snapshot::default()
    };
    // In blocks, each read batched (see `Memory::read_each`), so that the buffers
    // stay small with 100,000 goroutines; allocated once (fresh pages for each block
    // were a fifth of a read).
    let mut gbuf = vec![0u8; BLOCK * g_size];
    let mut stacks = vec![0u8; BLOCK * STACK_CHUNK];
    let mut chans = vec![0u8; BLOCK * 8];
    for block in gptrs.chunks(BLOCK) {
        let read = mem.read_each(block, g_size, &mut gbuf);
        // Parked goroutines of the block: (raw, g, sp, bp, g.waiting, g.stack.hi).
        let mut parked: Vec<(RawGoroutine, u64, u64, u64, u64, u64)> = Vec::new();
        for (k, &g) in block.iter().enumerate() {
            if !read[k] {
                snap.skipped += 1;
                continue;
            }
            let buf = &gbuf[k * g_size..(k + 1) * g_size];
            let status = le32(buf, status_off);
            let base_status = status & !G_SCAN;
            if matches!(base_status, G_DEAD | G_DEAD_EXTRA | 0) {
                continue;
            }
            snap.live += 1;
            snap.alive.push(le64(buf, goid_off));
            let mut raw = RawGoroutine {
                goid: le64(buf, goid_off),
                status,
                wait_reason: buf[fields[2] as usize],
                wait_since: le64(buf, fields[3]) as i64,
                gopc: le64(buf, fields[4]),
                startpc: le64(buf, fields[5]),
                parent_goid: if fields[6] != 0 {
                    le64(buf, fields[6])
                } else {
                    0
                },
                pcs: Vec::new(),
                waiting_chan: 0,
                timer_when: None,
                waiting_chans: Vec::new(),
                tracking_seq: (fields[11] != 0).then(|| buf[fields[11] as usize]),
                sched_pc: 0,
            };
            if !raw.is_waiting() {
                snap.goroutines.push(raw);
                continue;
            }
            raw.sched_pc = le64(buf, fields[7]);
            let (sp, bp, w, hi) = (
                le64(buf, fields[8]),
                le64(buf, fields[9]),
                le64(buf, fields[10]),
                le64(buf, fields[12]),
            );
            parked.push((raw, g, sp, bp, w, hi));
        }
        // Stacks of the parks the caller does not know yet: one chunk each, not
        // beyond the stack's top (reading memory the target never touched would
        // make the kernel give it pages).
        let walk: Vec<bool> = parked.iter().map(|p| !known(&p.0)).collect();
        let chunks: Vec<(u64, usize)> = parked
            .iter()
            .zip(&walk)
            .map(|(p, w)| {
                let len = (p.5.saturating_sub(p.2) as usize).min(STACK_CHUNK);
                if *w {
                    (p.2, len)
                } else {
                    (0, 0)
                }
            })
            .collect();
        let have = mem.read_pieces(&chunks, STACK_CHUNK, &mut stacks);
        for (k, p) in parked.iter_mut().enumerate() {
            if walk[k] {
                let chunk = &stacks[k * STACK_CHUNK..k * STACK_CHUNK + chunks[k].1];
                p.0.pcs = walk_stack(mem, p.0.sched_pc, p.2, p.3, have[k].then_some(chunk));
            }
        }
        if let Some(c_off) = sudog_c {
            let addrs: Vec<u64> = parked
                .iter()
                .map(|p| if p.4 != 0 { p.4 + c_off } else { 0 })
                .collect();
            let ok = mem.read_each(&addrs, 8, &mut chans);
            for (k, p) in parked.iter_mut().enumerate() {
                if ok[k] {
                    p.0.waiting_chan = le64(&chans[k * 8..], 0);
                }
                // Only for parks the caller does not know yet: a timer's `when`
                // moves only when it fires, which ends the park.
                if walk[k] && p.4 != 0 && p.0.waiting_chan != 0 {
                    (p.0.timer_when, p.0.waiting_chans) = sudogs.walk(mem, p.4);
                }
            }
        }
        // Re-validate: each must still be the same goroutine, still in the same park.
        let gs: Vec<u64> = parked.iter().map(|p| p.1).collect();
        let again = mem.read_each(&gs, g_size, &mut gbuf);
        for (k, (raw, ..)) in parked.into_iter().enumerate() {
            let buf = &gbuf[k * g_size..(k + 1) * g_size];
            if !again[k]
                || le64(buf, goid_off) != raw.goid
                || !parked_status(le32(buf, status_off))
                || (fields[11] != 0 && Some(buf[fields[11] as usize]) != raw.tracking_seq)
            {
                snap.skipped += 1;
                continue;
            }
            snap.goroutines.push(raw);
        }
    }
    Some(snap)
}

/// `runtime.work.tstart`, if the binary names `runtime.work` and its layout.
fn gc_tstart(target: &TargetInfo, mem: &Memory, bias: u64) -> Option<i64> {
    let work = target.data.get("runtime.work")?;
    let off = target.offsets.get("runtime.workType.tstart")?;
    mem.u64(work.addr + bias + off).ok().map(|v| v as i64)
}

/// Where the channels a goroutine waits on, their timers and element types are
/// found.
struct SudogOffsets<'t> {
    sudog_c: u64,
    waitlink: Option<u64>,
    timer: Option<u64>,
    when: Option<u64>,
    elemtype: Option<u64>,
    /// For channels that do not point to their timer (before Go 1.23, or
    /// `asynctimerchan=1`): the earliest `when` of the timers in the Ps'
    /// heaps, by the channel they send to (their `arg`); read once a snapshot,
    /// when a new park on such a channel first needs it.
    heap_timers: std::cell::OnceCell<HashMap<u64, i64>>,
    /// Where to read them from: the target and its load bias.
    heap_source: (&'t TargetInfo, u64),
}

/// Timers read from the Ps' heaps at most (a service with more still gets its
/// first ones).
const MAX_HEAP_TIMERS: usize = 10_000;

/// The timers in the Ps' heaps: `p.timers`, a `[]*timer` before Go 1.23, a
/// `timers` struct whose `heap` is a `[]timerWhen` (the `*timer` first, 16
/// bytes each) from it. A ticker's or `time.After`'s timer sends on the
/// channel in its `arg` (an `any`: type word, then the `*hchan`). Returns
/// channel -> earliest `when`; None when the binary lacks a symbol or field
/// for it (a stripped binary).
fn heap_timers(target: &TargetInfo, mem: &Memory, bias: u64) -> Option<HashMap<u64, i64>> {
    let allp = target.data.get("runtime.allp")?;
    let heap_in = target.offsets.get("runtime.timers.heap");
    let timers = target.offsets.get("runtime.p.timers")? + heap_in.unwrap_or(0);
    let stride = if heap_in.is_some() { 16 } else { 8 };
    let when = target.offsets.get("runtime.timer.when")?;
    let arg = target.offsets.get("runtime.timer.arg")?;
    let ptr = mem.u64(allp.addr + bias).ok()?;
    let len = (mem.u64(allp.addr + bias + 8).ok()? as usize).min(4096);
    let mut out: HashMap<u64, i64> = HashMap::new();
    let mut left = MAX_HEAP_TIMERS;
    for i in 0..len {
        let Ok(p) = mem.u64(ptr + 8 * i as u64) else {
            continue;
        };
        if p == 0 {
            continue;
        }
        let (Ok(heap), Ok(n)) = (mem.u64(p + timers), mem.u64(p + timers + 8)) else {
            continue;
        };
        let n = (n as usize).min(left);
        left -= n;
        if heap == 0 || n == 0 {
            continue;
        }
        let mut tptrs = vec![0u8; n * stride];
        if mem.read(heap, &mut tptrs).is_err() {
            continue;
        }
        let ts: Vec<u64> = (0..n).map(|k| le64(&tptrs, (k * stride) as u64)).collect();
        // Each timer's `when` and its `arg`'s data word, a batched read each.
        let mut whens = vec![0u8; n * 8];
        let mut chans = vec![0u8; n * 8];
        let at = |off: u64| {
            ts.iter()
                .map(|&t| if t != 0 { t + off } else { 0 })
                .collect::<Vec<_>>()
        };
        let ok_w = mem.read_each(&at(when), 8, &mut whens);
        let ok_c = mem.read_each(&at(arg + 8), 8, &mut chans);
        for k in 0..n {
            if !(ok_w[k] && ok_c[k]) {
                continue;
            }
            let w = le64(&whens, 8 * k as u64) as i64;
            let c = le64(&chans, 8 * k as u64);
            if w > 0 && c != 0 {
                let e = out.entry(c).or_insert(w);
                *e = (*e).min(w);
            }
        }
    }
    Some(out)
}

/// Sudogs (select cases) followed at most: a timer among the first ones still
/// wakes the goroutine.
const MAX_SUDOGS: usize = 64;

impl SudogOffsets<'_> {
    /// The earliest pending `when` among the timer channels of the sudog list
    /// starting at `sudog`, and each channel with its element type. Best
    /// effort: the target runs on, so a torn read gives less, or values the
    /// caller's re-validation (same park) discards.
    fn walk(&self, mem: &Memory, mut sudog: u64) -> (Option<i64>, Vec<(u64, u64)>) {
        let mut best: Option<i64> = None;
        let mut chans = Vec::new();
        for _ in 0..MAX_SUDOGS {
            if sudog == 0 {
                break;
            }
            let Ok(c) = mem.u64(sudog + self.sudog_c) else {
                break;
            };
            if c != 0 {
                let elem = self.elemtype.and_then(|o| mem.u64(c + o).ok());
                chans.push((c, elem.unwrap_or(0)));
                let linked = match (self.timer, self.when) {
                    (Some(timer), Some(when)) => match mem.u64(c + timer).unwrap_or(0) {
                        0 => None,
                        t => Some(mem.u64(t + when).unwrap_or(0) as i64),
                    },
                    _ => None,
                };
                let w = linked.unwrap_or_else(|| {
                    let (target, bias) = self.heap_source;
                    self.heap_timers
                        .get_or_init(|| heap_timers(target, mem, bias).unwrap_or_default())
                        .get(&c)
                        .copied()
                        .unwrap_or(0)
                });
                if w > 0 {
                    best = Some(best.map_or(w, |b| b.min(w)));
                }
            }
            let Some(link) = self.waitlink else { break };
            match mem.u64(sudog + link) {
                Ok(next) => sudog = next,
                Err(_) => break,
            }
        }
        (best, chans)
    }
}

fn le64(buf: &[u8], off: u64) -> u64 {
    let o = off as usize;
    buf.get(o..o + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .unwrap_or(0)
}

fn le32(buf: &[u8], off: u64) -> u32 {
    let o = off as usize;
    buf.get(o..o + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        .unwrap_or(0)
}

/// Frame-pointer walk from a parked goroutine's saved registers, inside `stack`
/// (the chunk read from `sp`, when it could be read), reading more only when a frame
/// lies beyond.
fn walk_stack(mem: &Memory, pc: u64, sp: u64, mut bp: u64, stack: Option<&[u8]>) -> Vec<u64> {
    let mut pcs = vec![pc];
    let stack = stack.unwrap_or(&[]);
    let read = |addr: u64| -> Option<u64> {
        if addr >= sp && addr + 8 <= sp + stack.len() as u64 {
            let o = (addr - sp) as usize;
            Some(u64::from_le_bytes(stack[o..o + 8].try_into().ok()?))
        } else {
            mem.u64(addr).ok()
        }
    };
    while bp != 0 && pcs.len() < MAX_FRAMES {
        let Some(ret) = read(bp + 8) else { break };
        let Some(next) = read(bp) else { break };
        if ret == 0 {
            break;
        }
        pcs.push(ret);
        if next <= bp {
            break;
        }
        bp = next;
    }
    pcs
}

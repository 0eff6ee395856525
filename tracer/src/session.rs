//! The async shell: read the ring buffer, feed the views, stop on Ctrl-C, SIGTERM,
//! SIGHUP, `--duration`, the target's exit or `exec`, or a closed output. Findings
//! go to the output thread ([`crate::output`]), never straight to a stream, so a
//! slow reader cannot stall the loop. Everything else is plain functions.
use crate::attach::Attached;
use crate::cli::{Format, TraceOpts};
use crate::events::{self, LiveEvent, Symbolizer};
use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf, StackTraceMap};
use std::io::Write as _;
use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracer_analysis::lockgraph::{LockEdge, LockFinding, LockGraph, WaitLink};
use tracer_analysis::{Analyzer, Frame, Input, Object, Parked};
use tracer_common::{counter, kind};
use tracer_inspect::lines::SourceFrame;
use tracer_inspect::TargetInfo;

/// Why tracing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Snapshot mode: one read, nothing to wait for.
    Snapshot,
    Interrupted,
    Duration,
    TargetExited,
    /// The target replaced its program (`exec`): its goroutines are gone.
    Exec,
    /// The output's reader went away (a closed pipe).
    OutputClosed,
}

impl Stop {
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Snapshot => "snapshot taken",
            Stop::Interrupted => "interrupted",
            Stop::Duration => "duration reached",
            Stop::TargetExited => "target exited",
            Stop::Exec => "target exec'd another program",
            Stop::OutputClosed => "output closed",
        }
    }
}

/// Waits that are how a healthy program idles, not how it leaks: a server blocked in
/// accept/read, a goroutine in `time.Sleep`. They are left out of the model.
pub fn is_idle_wait(reason: &str) -> bool {
    matches!(reason, "IO wait" | "sleep")
}

/// How often the target's goroutines are read in live modes, at most.
pub const SNAPSHOT_INTERVAL_NS: u64 = 1_000_000_000;
/// A read may take at most this share of the agent's time: with 100,000 parked
/// goroutines a read takes about a second, and is then done every 20 s.
const SNAPSHOT_DUTY: u32 = 20;

/// A parked goroutine as the last read found it: only what identifies the park
/// (16 bytes; the model holds the rest).
#[derive(Clone, Copy)]
struct PrevPark {
    seq: Option<u8>,
    pc: u64,
    reason: u8,
}

impl PrevPark {
    /// Still in the same park: it has not run since (the runtime bumps
    /// `trackingSeq` whenever a goroutine stops running).
    fn same_park(&self, g: &tracer_inspect::goroutines::RawGoroutine) -> bool {
        self.seq.is_some()
            && g.tracking_seq == self.seq
            && g.sched_pc == self.pc
            && g.wait_reason == self.reason
            && g.is_waiting()
    }
}

/// How long locks of one class were held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HoldTimes {
    pub kind: &'static str,
    pub class: String,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl HoldTimes {
    fn from_buckets(class: String, buckets: &[u64]) -> Self {
        let count: u64 = buckets.iter().sum();
        // Bucket b holds [2^(b-1), 2^b): report its upper bound.
        let upper = |b: usize| 1u64 << b.min(63);
        let quantile = |q: f64| {
            let target = (count as f64 * q).ceil() as u64;
            let mut seen = 0;
            for (b, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= target.max(1) {
                    return upper(b);
                }
            }
            0
        };
        let max = buckets.iter().rposition(|n| *n > 0).map_or(0, upper);
        Self {
            kind: "lock_hold",
            class,
            count,
            p50_ns: quantile(0.5),
            p99_ns: quantile(0.99),
            max_ns: max,
        }
    }
}

/// Counters read back from the kernel side.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub hits: Vec<(String, u64)>,
    pub records: u64,
    pub drops: u64,
    pub stack_errors: u64,
    pub read_errors: u64,
}

pub struct Session<'t> {
    pub target: &'t TargetInfo,
    /// None in snapshot mode: no probes at all.
    pub attached: Option<Attached>,
    pub opts: TraceOpts,
    ring: Option<RingBuf<MapData>>,
    stacks: Option<StackTraceMap<MapData>>,
    symbolizer: Symbolizer<'t>,
    t0: u64,
    pub events_seen: u64,
    pub analyzer: Analyzer,
    last_tick: u64,
    signals: Option<[Signal; 3]>,
    /// Source position of each lock site, by site index (locks mode).
    lock_sites: Vec<Frame>,
    pid: u32,
    pub locks: LockGraph,
    pub lock_findings: Vec<LockFinding>,
    /// Lock sites (locks mode).
    pub budget: Option<crate::budget::Budget>,
    /// The park probes (parks and locks modes).
    pub park_budget: Option<crate::budget::Budget>,
    last_budget: u64,
    /// One shared copy of each stack for the model (see `Parked::frames`).
    frames: events::FastMap<(i64, u64), tracer_analysis::input::Frames>,
    object_offsets: events::ObjectOffsets,
    pidfd: Option<std::io::Result<OwnedFd>>,
    /// A second handle on the target's pidfd, for SIGCONT: never a PID that may
    /// have been reused.
    signal_fd: Option<OwnedFd>,
    /// Resumes a held target when the agent cannot (see `guard.rs`). The exit
    /// hold is given only while it runs.
    guardian: Option<crate::guard::Guardian>,
    /// Where findings and events go while tracing.
    pub out: crate::output::Output,
    /// The target's executable as (device, inode): a change means it exec'd.
    exe_id: Option<(u64, u64)>,
    /// The target exec'd another program (its path), seen by [`Session::tick_now`].
    pub execed: Option<std::path::PathBuf>,
    /// The target was held at `runtime.exit` during this session.
    pub exit_held: bool,
    /// The kernel's counters as they were when the probes were detached.
    detached_counters: Option<Counters>,
    /// `tracer run`: the program was started by the tracer.
    pub run_mode: bool,
    /// Parked goroutines of the last read, by goid.
    prev_parks: std::collections::HashMap<u64, PrevPark>,
    last_snapshot: Option<u64>,
    snapshot_cost: Duration,
    /// Time spent reading and applying records, for the budget.
    drain_ns: u64,
    /// Being read at exit: resumed by `resume_target`, whatever happens.
    stopped_pending: bool,
    /// Recent times (monotonic ns, from..to) when the lock sites were switched.
    lock_switches: Vec<(u64, u64)>,
    /// Held sets as they were when the lock sites last went off (goid -> when,
    /// locks): the switch purges the kernel's, yet a goroutine parked since then
    /// has not run, so it still holds exactly these. A deadlock that formed while
    /// the sites were on stays visible after they go off.
    frozen_held: std::collections::HashMap<u64, (u64, tracer_common::HeldLocks)>,
    /// Lock records dropped because they were written during a switch.
    pub lock_events_skipped: u64,
}

/// Whatever ends the session, a target held at exit is let go, the probes are
/// detached, and only then is the guardian told it may go.
impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.resume_target();
        self.detach();
        if let Some(g) = self.guardian.take() {
            g.finish();
        }
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl<'t> Session<'t> {
    pub fn new(
        target: &'t TargetInfo,
        mut attached: Option<Attached>,
        opts: TraceOpts,
        analyzer: Analyzer,
        lock_sites: Vec<Frame>,
        pid: u32,
        out: crate::output::Output,
    ) -> Result<Self> {
        let (mut ring, mut stacks) = (None, None);
        let pidfd = pidfd_open(pid);
        let signal_fd = pidfd.as_ref().ok().and_then(|f| f.try_clone().ok());
        let guardian = match (&attached, &signal_fd) {
            (Some(a), Some(fd)) => match a.ebpf.map("EXIT_HOLD") {
                Some(aya::maps::Map::Array(map)) => {
                    match crate::guard::Guardian::start(fd.as_fd(), map.fd(), pid) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            say!(
                                "tracer: warning: no exit hold ({e:#}): goroutines parked at the target's exit are those of the last read"
                            );
                            None
                        }
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(a) = attached.as_mut() {
            ring = Some(RingBuf::try_from(
                a.ebpf.take_map("EVENTS").context("EVENTS map missing")?,
            )?);
            stacks = Some(StackTraceMap::try_from(
                a.ebpf.take_map("STACKS").context("STACKS map missing")?,
            )?);
        }
        Ok(Self {
            target,
            attached,
            opts,
            ring,
            stacks,
            symbolizer: Symbolizer::new(target),
            t0: monotonic_ns(),
            events_seen: 0,
            analyzer,
            last_tick: 0,
            signals: None,
            lock_sites,
            pid,
            locks: LockGraph::new(),
            lock_findings: Vec::new(),
            budget: None,
            park_budget: None,
            last_budget: 0,
            frames: Default::default(),
            object_offsets: events::ObjectOffsets::new(target),
            pidfd: Some(pidfd),
            signal_fd,
            guardian,
            out,
            exe_id: file_id(&target.exe),
            execed: None,
            exit_held: false,
            run_mode: false,
            detached_counters: None,
            prev_parks: Default::default(),
            last_snapshot: None,
            snapshot_cost: Duration::ZERO,
            drain_ns: 0,
            stopped_pending: false,
            lock_switches: Vec::new(),
            frozen_held: Default::default(),
            lock_events_skipped: 0,
        })
    }

    fn site_frame(&self, index: u64) -> Frame {
        self.lock_sites
            .get(index as usize)
            .cloned()
            .unwrap_or_else(|| Frame::new("?", "?", 0))
    }

    fn report_lock(&mut self, finding: LockFinding) {
        let mut out = Vec::new();
        let _ = match self.opts.format {
            Format::Text => tracer_analysis::report::locks::write_text(&finding, &mut out),
            Format::Json => tracer_analysis::report::locks::write_json(&finding, &mut out),
        };
        self.out.stream(out);
        self.lock_findings.push(finding);
    }

    /// The writer parked waiting for `lock`, if any (for the recursive read lock).
    fn waiting_writer(&self, lock: u64) -> Option<u64> {
        self.analyzer.model().parked().find_map(|p| {
            let waits = matches!(p.parked.object, Object::RwMutex { addr } if addr == lock);
            (waits && &*p.parked.wait_reason == "sync.RWMutex.Lock").then_some(p.goid())
        })
    }

    fn lock_event(&mut self, ev: &tracer_common::Event) {
        if self
            .lock_switches
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&ev.ts_ns))
        {
            // Written while the lock sites were being switched: a Lock whose
            // Unlock probe was not in (yet, or any more) leaves a stale hold, so
            // what was derived from the held set then is not trusted. The edge
            // is forgotten by the kernel too, so it is sent again when next seen.
            self.lock_events_skipped += 1;
            if ev.kind == kind::LOCK_EDGE {
                if let Some(map) = self.attached.as_mut().and_then(|a| a.ebpf.map_mut("EDGES")) {
                    if let Ok(mut edges) =
                        aya::maps::HashMap::<_, tracer_common::EdgeKey, u32>::try_from(map)
                    {
                        let _ = edges.remove(&tracer_common::EdgeKey {
                            from: ev.obj,
                            to: ev.obj2,
                        });
                    }
                }
            }
            return;
        }
        let frames: Vec<Frame> = self.park_frames(ev).iter().map(to_frame).collect();
        match ev.kind {
            kind::LOCK_EDGE => {
                let edge = LockEdge {
                    from: ev.obj,
                    to: ev.obj2,
                    held_at: self.site_frame(ev.arg >> 32),
                    acquired_at: self.site_frame(ev.arg & 0xffff_ffff),
                    goid: ev.goid,
                    stack: frames,
                    from_read: ev.peer_goid & 1 != 0,
                    to_read: ev.peer_goid & 2 != 0,
                };
                if let Some(f) = self.locks.add_edge(edge) {
                    self.report_lock(f);
                }
            }
            kind::LOCK_SELF => {
                let read = ev.obj2 != 0;
                let writer = if read {
                    self.waiting_writer(ev.obj)
                } else {
                    None
                };
                let site = self.site_frame(ev.arg);
                if let Some(f) = self
                    .locks
                    .self_acquire(ev.goid, ev.obj, read, site, frames, writer)
                {
                    self.report_lock(f);
                }
            }
            _ => {}
        }
    }

    /// Wait-for links among parked goroutines: each blocked in a lock, with a
    /// goroutine that holds that lock (from the kernel's held sets).
    fn wait_links(&self) -> Vec<WaitLink> {
        let mut sets = self.held_sets();
        // Frozen sets count for goroutines parked since before their freeze, as
        // a read has just confirmed (a read ends every park it does not list).
        let fresh = self
            .last_snapshot
            .is_some_and(|t| monotonic_ns().saturating_sub(t) < 100_000_000);
        if fresh {
            for (goid, (at, h)) in &self.frozen_held {
                let still = self
                    .analyzer
                    .model()
                    .goroutine(*goid)
                    .is_some_and(|p| p.parked.since_ns <= *at);
                if still && !sets.contains_key(goid) {
                    sets.insert(*goid, *h);
                }
            }
        }
        // lock -> [(goid, read)]
        let mut holders: std::collections::HashMap<u64, Vec<(u64, bool)>> = Default::default();
        for (goid, h) in sets {
            for i in 0..(h.n as usize).min(tracer_common::MAX_HELD) {
                holders
                    .entry(h.locks[i])
                    .or_default()
                    .push((goid, h.read & (1 << i) != 0));
            }
        }
        let mut waiting: std::collections::HashMap<u64, u64> = Default::default();
        let mut parked = Vec::new();
        for p in self.analyzer.model().parked() {
            let lock = match p.parked.object {
                Object::Mutex { addr } | Object::RwMutex { addr } => addr,
                _ => continue,
            };
            waiting.insert(p.goid(), lock);
            parked.push((
                p.goid(),
                lock,
                p.parked.wait_reason.clone(),
                p.parked.frames.to_vec(),
            ));
        }
        let mut links = Vec::new();
        for (goid, lock, reason, frames) in parked {
            // A reader waits for the writer; a writer for anyone holding the lock.
            let holder = holders.get(&lock).and_then(|hs| {
                hs.iter().find_map(|&(g, read)| {
                    let ok = g != goid
                        && waiting.get(&g) != Some(&lock)
                        && !(&*reason == "sync.RWMutex.RLock" && read);
                    ok.then_some(g)
                })
            });
            if let Some(holder) = holder {
                links.push(WaitLink {
                    goid,
                    wait_reason: reason,
                    lock,
                    holder,
                    frames,
                });
            }
        }
        links
    }

    /// The kernel's held sets, by goid.
    fn held_sets(&self) -> std::collections::HashMap<u64, tracer_common::HeldLocks> {
        let Some(map) = self.attached.as_ref().and_then(|a| a.ebpf.map("HELD")) else {
            return Default::default();
        };
        let Ok(held) = aya::maps::HashMap::<_, u64, tracer_common::HeldLocks>::try_from(map) else {
            return Default::default();
        };
        held.iter().filter_map(Result::ok).collect()
    }

    /// Before the lock sites go off (and the kernel's held sets are purged): looks
    /// for deadlocks with the sets as they are, and keeps them for the goroutines
    /// that stay parked.
    fn freeze_held(&mut self) {
        self.check_deadlocks();
        let now = monotonic_ns();
        // Older freezes stand for goroutines parked since; the rest are dropped.
        let model = self.analyzer.model();
        self.frozen_held.retain(|goid, (at, _)| {
            model
                .goroutine(*goid)
                .is_some_and(|p| p.parked.since_ns <= *at)
        });
        for (goid, h) in self.held_sets() {
            if h.n > 0 {
                self.frozen_held.insert(goid, (now, h));
            }
        }
    }

    /// Measures probe hits against the target's CPU time and turns probes off or
    /// on as the budgets say. Lock sites come first (lock-order findings depend on
    /// which stay on); the park probes get what the lock sites and the agent leave.
    fn apply_budget(&mut self) {
        if self.budget.is_none() && self.park_budget.is_none() {
            return;
        }
        let Some(cpu) = crate::budget::process_cpu_ns(self.pid) else {
            return;
        };
        let now = std::time::Instant::now();
        let lock_total = self.attached.as_ref().map_or(0, lock_site_hits);
        let lock_switch = self
            .budget
            .as_mut()
            .and_then(|b| b.tick(lock_total, cpu, 0, now));
        if lock_switch == Some(crate::budget::Switch::Off) {
            self.freeze_held();
        }
        let Some(attached) = self.attached.as_mut() else {
            return;
        };
        if let Some(switch) = lock_switch {
            let from = monotonic_ns();
            let on = switch == crate::budget::Switch::On;
            if let Err(e) = attached.set_active(vec![on; attached.lock_sites()]) {
                log::warn!("budget: switching the lock sites failed: {e}");
            }
            // Records of the switch may still be in the ring buffer for a while:
            // windows are kept for 10 s.
            let to = monotonic_ns();
            self.lock_switches
                .retain(|(_, end)| to - end < 10_000_000_000);
            self.lock_switches.push((from, to));
        }
        let Some(budget) = self.park_budget.as_mut() else {
            return;
        };
        let Some(arr) = attached
            .ebpf
            .map("COUNTERS")
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
        else {
            return;
        };
        let sum = |i: u32| -> u64 { arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        let hits = sum(kind::PARK) + sum(kind::READY);
        let lock_cost = lock_total as f64 * crate::budget::LOCK_HIT_NS;
        let fixed = self.drain_ns + lock_cost as u64;
        if let Some(switch) = budget.tick(hits, cpu, fixed, now) {
            if let Err(e) = attached.set_parks(switch == crate::budget::Switch::On) {
                log::warn!("budget: switching the park probes failed: {e}");
            }
        }
    }

    /// Hold-time histograms per lock class (acquisition site), from the kernel's
    /// log2 buckets: (class, count, p50, p99, max) with each figure the upper bound
    /// of its bucket, in ns.
    pub fn hold_times(&self) -> Vec<HoldTimes> {
        use tracer_common::{HOLD_HIST_BUCKETS, HOLD_HIST_SITES};
        let Some(map) = self.attached.as_ref().and_then(|a| a.ebpf.map("HOLD_HIST")) else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return Vec::new();
        };
        let mut by_class: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for (site, frame) in self
            .lock_sites
            .iter()
            .enumerate()
            .take(HOLD_HIST_SITES as usize)
        {
            let mut buckets = vec![0u64; HOLD_HIST_BUCKETS as usize];
            let mut any = false;
            for (b, slot) in buckets.iter_mut().enumerate() {
                let i = site as u32 * HOLD_HIST_BUCKETS + b as u32;
                *slot = arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0);
                any |= *slot > 0;
            }
            if !any {
                continue;
            }
            let class = tracer_analysis::lockgraph::class_of(frame);
            let acc = by_class
                .entry(class)
                .or_insert_with(|| vec![0; buckets.len()]);
            for (a, b) in acc.iter_mut().zip(&buckets) {
                *a += b;
            }
        }
        by_class
            .into_iter()
            .map(|(class, buckets)| HoldTimes::from_buckets(class, &buckets))
            .collect()
    }

    /// Looks for deadlock cycles among the goroutines parked in locks.
    pub fn check_deadlocks(&mut self) {
        if self.lock_sites.is_empty() {
            return;
        }
        let links = self.wait_links();
        for f in self.locks.deadlocks(&links) {
            self.report_lock(f);
        }
    }

    /// Takes over SIGINT, SIGTERM and SIGHUP (a closed terminal or an ssh session
    /// that dropped: the report is still written). Must run inside the runtime,
    /// before anyone is told the tracer is attached, so an early signal still
    /// stops it cleanly.
    pub fn install_signals(&mut self) -> Result<()> {
        self.signals = Some([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ]);
        Ok(())
    }

    /// Feeds the goroutines parked right now, read from the target's memory: those
    /// parked long before the tracer came are found too. Read again every second in
    /// every live mode: a read tells which goroutines are still in the same park
    /// (`g.trackingSeq` unchanged), which resumed and which exited, with no probe.
    pub fn snapshot(&mut self, pid: u32) -> Option<usize> {
        // Events already in the ring buffer are older than the snapshot: apply them
        // first, or the model would drop them as stale (a wake lost that way leaves
        // a goroutine "parked" forever). The snapshot is stamped before the read, so
        // events during the read count as newer.
        self.drain();
        let now = monotonic_ns();
        let started = std::time::Instant::now();
        let mem = tracer_inspect::memory::Memory::new(pid);
        let prev = std::mem::take(&mut self.prev_parks);
        let snap = tracer_inspect::goroutines::snapshot_with(self.target, &mem, |g| {
            prev.get(&g.goid).is_some_and(|p| p.same_park(g))
        })?;
        let parked_map = self
            .attached
            .as_ref()
            .and_then(|a| a.ebpf.map("PARKED"))
            .and_then(|m| aya::maps::HashMap::<_, u64, tracer_common::ParkState>::try_from(m).ok());
        let pending_sema = self
            .attached
            .as_ref()
            .and_then(|a| a.ebpf.map("PENDING_SEMA"))
            .and_then(|m| aya::maps::HashMap::<_, u64, u64>::try_from(m).ok());
        let first = self.last_snapshot.is_none();
        let mut parked = Vec::new();
        let live = snap.live;
        let mut alive = Vec::with_capacity(snap.goroutines.len());
        let mut still_parked = Vec::new();
        // Consumed as it goes: with 100,000 goroutines the raw copies and the model's
        // would otherwise be in memory together.
        for g in snap.goroutines.into_iter() {
            alive.push(g.goid);
            if !g.is_waiting() {
                continue;
            }
            let reason = self.target.wait_reason(u64::from(g.wait_reason));
            if is_idle_wait(&reason) {
                continue;
            }
            if let Some(p) = prev.get(&g.goid).filter(|p| p.same_park(&g)) {
                // The same park as at the last read: nothing to walk or symbolize.
                still_parked.push(g.goid);
                self.prev_parks.insert(g.goid, *p);
                continue;
            }
            let frames = self.symbolizer.pcs(&g.pcs);
            let shared = shared_frames(&mut self.frames, (-2, events::pcs_key(&g.pcs)), &frames);
            // The semaphore a sync wait sleeps on, announced by semacquire1 (probed
            // in every budget state, as it is hit only when a goroutine will sleep).
            let sync_wait = reason.starts_with("sync.") || &*reason == "semacquire";
            let sema = pending_sema
                .as_ref()
                .filter(|_| sync_wait)
                .and_then(|m| m.get(&g.goid, 0).ok())
                .unwrap_or(0);
            let mut object = events::object_of(&self.object_offsets, &reason, 0, sema);
            if let tracer_analysis::Object::None = object {
                if g.waiting_chan != 0 && reason.starts_with("chan") {
                    object = tracer_analysis::Object::Channel {
                        addr: g.waiting_chan,
                        elem_type: None,
                    };
                }
            }
            let kernel = parked_map.as_ref().and_then(|m| m.get(&g.goid, 0).ok());
            let (since, exact) = match (kernel, self.last_snapshot) {
                (Some(k), _)
                    if k.reason == u64::from(g.wait_reason)
                        && k.since_ns <= now
                        && (k.seq == tracer_common::SEQ_UNKNOWN
                            || g.tracking_seq.map(u64::from) == Some(k.seq)) =>
                {
                    (k.since_ns, true)
                }
                // Not in this park at the last read: it parked in between, maybe
                // just now. Counted from now, so an age is never overstated (and
                // understated by at most the interval).
                (_, Some(last)) if now - last <= 2 * SNAPSHOT_INTERVAL_NS => (now, true),
                _ if g.wait_since > 0 && (g.wait_since as u64) <= now => {
                    (g.wait_since as u64, false)
                }
                _ => (now, false),
            };
            let p = Parked {
                goid: g.goid,
                wait_reason: reason,
                since_ns: since,
                exact,
                object,
                frames: shared,
                start_function: self.symbolizer.function(g.startpc),
                created_by: self.symbolizer.pc(g.gopc, true).as_ref().map(to_frame),
                parent_goid: (g.parent_goid != 0).then_some(g.parent_goid),
            };
            if self.opts.events && first {
                let live = LiveEvent {
                    kind: "event",
                    event: "parked",
                    ts_ns: now,
                    goid: p.goid,
                    wait_reason: Some(p.wait_reason.clone()),
                    object: Some(p.object.clone()),
                    site: events::site(&frames),
                    frames,
                    parked_ns: None,
                    waker_goid: None,
                    may_block: None,
                    start_function: p.start_function.clone(),
                    created_by: self.symbolizer.pc(g.gopc, true),
                };
                self.print_live(&live);
            }
            if g.tracking_seq.is_some() {
                self.prev_parks.insert(
                    g.goid,
                    PrevPark {
                        seq: g.tracking_seq,
                        pc: g.sched_pc,
                        reason: g.wait_reason,
                    },
                );
            }
            parked.push(p);
        }
        drop(prev);
        alive.sort_unstable();
        let n = parked.len() + still_parked.len();
        self.analyzer.apply(Input::Snapshot {
            ts_ns: now,
            parked,
            total_goroutines: live,
            alive: Some(alive),
            still_parked,
        });
        self.last_snapshot = Some(now);
        self.snapshot_cost = started.elapsed();
        Some(n)
    }

    fn print_live(&self, live: &LiveEvent) {
        let mut out = Vec::new();
        let _ = match self.opts.format {
            Format::Text => writeln!(out, "{}", live.text(self.t0)),
            Format::Json => writeln!(out, "{}", serde_json::to_string(live).unwrap_or_default()),
        };
        self.out.stream(out);
    }

    /// The lock sites' first attach is a switch too: records written before it
    /// was complete are not trusted, and the held sets start empty.
    pub fn lock_sites_attached(&mut self) {
        if let Some(a) = self.attached.as_mut() {
            if a.lock_sites() > 0 {
                a.purge_all_held();
                self.lock_switches.push((0, monotonic_ns()));
            }
        }
    }

    /// Run mode: the target starts after the tracer, so every park happens after
    /// `t0`, as if a read had found nothing parked then.
    pub fn fresh_start(&mut self) {
        self.last_snapshot = Some(self.t0);
        self.run_mode = true;
        // A program may exit within milliseconds of its start: the exit hold must
        // be there from the first instruction.
        self.beat();
    }

    /// Runs the detectors and prints what newly fired (at most once a second); the
    /// budget is checked every 20 ms, so hot probes are detached fast.
    pub fn tick(&mut self) {
        let now = monotonic_ns();
        if now.saturating_sub(self.last_budget) >= crate::budget::TICK.as_nanos() as u64 {
            self.last_budget = now;
            self.apply_budget();
        }
        if now.saturating_sub(self.last_tick) < 1_000_000_000 {
            return;
        }
        self.tick_now();
    }

    pub fn tick_now(&mut self) {
        let now = monotonic_ns();
        self.last_tick = now;
        let due = self.last_snapshot.is_some_and(|last| {
            // Not before the first read (attach) or `fresh_start` (run).
            let every = (SNAPSHOT_INTERVAL_NS as u128)
                .max(self.snapshot_cost.as_nanos() * u128::from(SNAPSHOT_DUTY));
            u128::from(now.saturating_sub(last)) + 10_000_000 >= every
        });
        if due && self.opts.mode != crate::cli::Mode::Snapshot {
            // Before the read: after an exec, `allgs` is another program's memory.
            self.check_exec();
            if self.execed.is_some() {
                return;
            }
            let _ = self.snapshot(self.pid);
        }
        self.check_deadlocks();
        let fresh = self.analyzer.tick(now);
        if fresh.is_empty() {
            return;
        }
        let mut out = Vec::new();
        let _ = match self.opts.format {
            Format::Text => tracer_analysis::report::text::write_findings(&fresh, &mut out),
            Format::Json => tracer_analysis::report::json::write_findings(&fresh, &mut out),
        };
        self.out.stream(out);
    }

    /// Runs until a stop condition; `pid` is watched through a pidfd.
    pub async fn run(&mut self) -> Result<Stop> {
        let pid = self.pid;
        let pidfd = match self.pidfd.take() {
            Some(Ok(fd)) => {
                // SAFETY: the AsyncFd owns the descriptor, which nothing else closes.
                unsafe { AsyncFd::register(fd) }.ok()
            }
            // The process was gone before tracing began.
            Some(Err(_)) if !crate::session::alive(pid) => return Ok(Stop::TargetExited),
            _ => None,
        };
        // Records are polled (the kernel writes them without a wakeup). Watch mode
        // has no records but the exit's and no budget to check every 20 ms: the
        // agent wakes 20 times a second instead of 100, as on a busy host each
        // wake preempts the target (an exit is held up to 50 ms).
        let every = if self.opts.mode == crate::cli::Mode::Watch {
            50
        } else {
            10
        };
        let mut tick = tokio::time::interval(Duration::from_millis(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = self.opts.duration;
        let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(sleep);
        if self.signals.is_none() {
            self.install_signals()?;
        }
        let [mut int, mut term, mut hup] = self.signals.take().expect("installed above");
        let exited = async {
            match &pidfd {
                Some(fd) => {
                    let _ = fd.readable().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(exited);
        let mut after_exec = false;
        let stop = loop {
            tokio::select! {
                // The target's own exit wins a tie with the deadline: its last
                // state is what `tracer run` reports.
                biased;
                _ = &mut exited => break Stop::TargetExited,
                _ = tick.tick(), if !after_exec => {
                    self.drain();
                    self.tick();
                    if self.out.closed() {
                        break Stop::OutputClosed;
                    }
                    if self.execed.is_some() {
                        if !self.run_mode {
                            break Stop::Exec;
                        }
                        // `tracer run`: the program goes on as another image; its
                        // end (or the deadline) still ends the run.
                        self.detach();
                        after_exec = true;
                    }
                }
                _ = int.recv() => break Stop::Interrupted,
                _ = term.recv() => break Stop::Interrupted,
                _ = hup.recv() => break Stop::Interrupted,
                _ = &mut sleep, if deadline.is_some() => break Stop::Duration,
            }
        };
        // Whatever the kernel wrote before the stop is still reported, and a
        // target that reached its exit as the deadline came has exited: its
        // goroutines parked at exit are what a run reports.
        self.drain();
        let gone = pidfd.as_ref().is_some_and(|fd| readable_now(fd.get_ref()));
        if matches!(stop, Stop::Duration | Stop::Interrupted) && (self.exit_held || gone) {
            return Ok(Stop::TargetExited);
        }
        Ok(stop)
    }

    /// The model, for the final report (the session is dropped first, so the
    /// target is let go before anything waits on the output).
    pub fn take_analyzer(&mut self) -> Analyzer {
        let empty = Analyzer::new(tracer_analysis::Config::default()).expect("default config");
        std::mem::replace(&mut self.analyzer, empty)
    }

    /// Detaches every probe (the target exec'd, or the session is over). The
    /// maps go with them; counters are read before.
    pub fn detach(&mut self) {
        if self.attached.is_some() {
            self.detached_counters = Some(self.counters());
        }
        self.ring = None;
        self.stacks = None;
        self.attached = None;
    }

    pub fn drain(&mut self) {
        self.beat();
        let started = std::time::Instant::now();
        self.drain_inner();
        self.drain_ns += started.elapsed().as_nanos() as u64;
        if !self.exit_held && self.exit_hold_pending() {
            // Held at exit: its final state, read while its memory is still there,
            // then let it go (also if the read fails).
            self.exit_held = true;
            self.stopped_pending = true;
            let _ = self.snapshot(self.pid);
            self.resume_target();
        }
    }

    /// Tells the kernel the agent is alive, so it may hold the target at exit:
    /// only while the guardian runs, which ends a hold the agent cannot.
    pub fn beat(&mut self) {
        let guarded = self.guardian.as_mut().is_some_and(|g| g.alive());
        let Some(map) = self
            .attached
            .as_mut()
            .and_then(|a| a.ebpf.map_mut("EXIT_HOLD"))
        else {
            return;
        };
        if let Ok(mut arr) = aya::maps::Array::<_, u64>::try_from(map) {
            let beat = if guarded { monotonic_ns() } else { 0 };
            let _ = arr.set(tracer_common::exit_hold::HEARTBEAT, &beat, 0);
        }
    }

    /// Whether the kernel has stopped the target at `runtime.exit` and the hold
    /// is not ended yet. The slot is cleared only once the target is resumed: a
    /// guardian that finds it set after the agent died resumes the target.
    fn exit_hold_pending(&self) -> bool {
        let Some(map) = self.attached.as_ref().and_then(|a| a.ebpf.map("EXIT_HOLD")) else {
            return false;
        };
        let Ok(arr) = aya::maps::Array::<_, u64>::try_from(map) else {
            return false;
        };
        arr.get(&tracer_common::exit_hold::HELD_SINCE, 0)
            .unwrap_or(0)
            != 0
    }

    fn clear_exit_hold(&mut self) {
        let Some(map) = self
            .attached
            .as_mut()
            .and_then(|a| a.ebpf.map_mut("EXIT_HOLD"))
        else {
            return;
        };
        if let Ok(mut arr) = aya::maps::Array::<_, u64>::try_from(map) {
            let _ = arr.set(tracer_common::exit_hold::HELD_SINCE, &0, 0);
        }
    }

    /// Resumes a target the kernel stopped at exit.
    fn resume_target(&mut self) {
        if std::mem::take(&mut self.stopped_pending) {
            if let Some(fd) = &self.signal_fd {
                crate::guard::resume(fd);
            }
            self.clear_exit_hold();
        }
    }

    /// Whether the target replaced its program since the last call: its
    /// executable is no longer the one traced (nor, in run mode, the tracer's own
    /// image, which the held child has until it execs).
    fn check_exec(&mut self) {
        if self.execed.is_some() {
            return;
        }
        let proc_exe = format!("/proc/{}/exe", self.pid);
        let Some(now) = file_id(std::path::Path::new(&proc_exe)) else {
            return;
        };
        let Some(was) = self.exe_id else {
            return;
        };
        if now == was
            || (self.run_mode && file_id(std::path::Path::new("/proc/self/exe")) == Some(now))
        {
            return;
        }
        let new = std::fs::read_link(&proc_exe).unwrap_or_default();
        say!(
            "tracer: PID {} exec'd {}: the goroutines traced so far are gone{}",
            self.pid,
            new.display(),
            if self.run_mode {
                "; waiting for the program to end"
            } else {
                "; stopping (attach again to trace the new program)"
            }
        );
        // The old image's goroutines ended with it: none is parked any more.
        self.analyzer.apply(Input::Snapshot {
            ts_ns: monotonic_ns(),
            parked: Vec::new(),
            total_goroutines: 0,
            alive: Some(Vec::new()),
            still_parked: Vec::new(),
        });
        self.execed = Some(new);
    }

    fn drain_inner(&mut self) {
        let mut batch = Vec::new();
        if let Some(ring) = self.ring.as_mut() {
            while let Some(item) = ring.next() {
                if let Some(ev) = events::decode(&item) {
                    batch.push(ev);
                }
            }
        }
        let mut out = Vec::new();
        for ev in batch {
            self.events_seen += 1;
            self.feed(&ev);
            if self.opts.events {
                let live = self.live(&ev);
                let _ = match self.opts.format {
                    Format::Text => writeln!(out, "{}", live.text(self.t0)),
                    Format::Json => {
                        writeln!(out, "{}", serde_json::to_string(&live).unwrap_or_default())
                    }
                };
            }
        }
        self.out.stream(out);
    }

    /// Turns a kernel record into model input.
    fn feed(&mut self, ev: &tracer_common::Event) {
        let input = match ev.kind {
            kind::LOCK_EDGE | kind::LOCK_SELF => {
                self.lock_event(ev);
                return;
            }
            kind::PARK => {
                let reason = self.target.wait_reason(ev.arg);
                if is_idle_wait(&reason) {
                    return;
                }
                // The model's shared copy first: most parks happen at known places,
                // and a fresh Vec<SourceFrame> per park was most of a record's cost.
                let key = (ev.stack_id, ev.pc);
                let shared = match self.frames.get(&key).filter(|_| ev.stack_id != -1) {
                    Some(f) => f.clone(),
                    None => {
                        let frames = self.park_frames(ev);
                        shared_frames(&mut self.frames, key, &frames)
                    }
                };
                Input::Park {
                    ts_ns: ev.ts_ns,
                    parked: Parked {
                        goid: ev.goid,
                        object: events::object_of(&self.object_offsets, &reason, ev.obj, ev.obj2),
                        wait_reason: reason,
                        since_ns: ev.ts_ns,
                        exact: true,
                        frames: shared,
                        start_function: self.symbolizer.function(ev.startpc),
                        created_by: self.symbolizer.pc(ev.gopc, true).as_ref().map(to_frame),
                        parent_goid: (ev.peer_goid != 0).then_some(ev.peer_goid),
                    },
                }
            }
            kind::READY => Input::Ready {
                ts_ns: ev.ts_ns,
                goid: ev.goid,
                waker_goid: (ev.peer_goid != 0).then_some(ev.peer_goid),
                parked_ns: (ev.arg != 0).then_some(ev.arg),
            },
            // Whether the kernel stopped the target is read from EXIT_HOLD.
            kind::EXITING => return,
            kind::EXIT => Input::Exit {
                ts_ns: ev.ts_ns,
                goid: ev.goid,
            },
            _ => return,
        };
        self.analyzer.apply(input);
    }

    fn park_frames(&mut self, ev: &tracer_common::Event) -> Vec<SourceFrame> {
        // Stack ids are stable (no BPF_F_REUSE_STACKID): read the map once per id.
        if let Some(frames) = self.symbolizer.cached(ev.stack_id, ev.pc) {
            return frames;
        }
        let ips: Vec<u64> = match (&self.stacks, ev.stack_id >= 0) {
            (Some(stacks), true) => stacks
                .get(&(ev.stack_id as u32), 0)
                .map(|s| s.frames().iter().map(|f| f.ip).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.symbolizer.stack(ev.stack_id, &ips, ev.pc)
    }

    fn live(&mut self, ev: &tracer_common::Event) -> LiveEvent {
        let mut live = LiveEvent {
            kind: "event",
            event: events::event_name(ev.kind),
            ts_ns: ev.ts_ns,
            goid: ev.goid,
            wait_reason: None,
            object: None,
            site: None,
            frames: Vec::new(),
            parked_ns: None,
            waker_goid: None,
            may_block: None,
            start_function: None,
            created_by: None,
        };
        match ev.kind {
            kind::PARK => {
                let reason = self.target.wait_reason(ev.arg);
                live.object = Some(events::object_of(
                    &self.object_offsets,
                    &reason,
                    ev.obj,
                    ev.obj2,
                ));
                live.wait_reason = Some(reason);
                live.frames = self.park_frames(ev);
                live.site = events::site(&live.frames);
                live.start_function = self.symbolizer.function(ev.startpc);
                live.created_by = self.symbolizer.pc(ev.gopc, true);
            }
            kind::READY => {
                live.parked_ns = (ev.arg != 0).then_some(ev.arg);
                live.waker_goid = (ev.peer_goid != 0).then_some(ev.peer_goid);
                if ev.arg != 0 {
                    live.wait_reason = Some(self.target.wait_reason(ev.obj));
                }
            }
            kind::CHAN_SEND | kind::CHAN_RECV => {
                live.object = Some(if ev.obj == 0 {
                    tracer_analysis::Object::NilChannel
                } else {
                    tracer_analysis::Object::Channel {
                        addr: ev.obj,
                        elem_type: None,
                    }
                });
                live.may_block = Some(ev.arg != 0);
                live.site = self.caller_site(ev.pc);
            }
            kind::LOCK_SLOW => {
                live.object = Some(tracer_analysis::Object::Mutex { addr: ev.obj });
                live.site = self.caller_site(ev.pc);
            }
            kind::SEMACQUIRE => {
                live.object = Some(tracer_analysis::Object::Semaphore { addr: ev.obj });
            }
            kind::SELECT => {
                live.site = self.caller_site(ev.pc);
            }
            _ => {}
        }
        live
    }

    /// The user-code frame that called a runtime function, from its return address.
    fn caller_site(&self, pc: u64) -> Option<tracer_inspect::lines::SourceFrame> {
        // For chansend1/chanrecv1 this names the runtime wrapper: the user frame is
        // one further up, which only a stack (taken at parks) has.
        self.symbolizer.pc(pc, true)
    }

    pub fn counters(&self) -> Counters {
        if let (None, Some(c)) = (&self.attached, &self.detached_counters) {
            return c.clone();
        }
        let mut c = Counters::default();
        let Some(map) = self.attached.as_ref().and_then(|a| a.ebpf.map("COUNTERS")) else {
            return c;
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return c;
        };
        let sum = |i: u32| -> u64 { arr.get(&i, 0).map(|v| v.iter().copied().sum()).unwrap_or(0) };
        for k in 1..kind::COUNT {
            let n = sum(k);
            if n > 0 {
                c.hits.push((events::event_name(k).to_string(), n));
            }
        }
        for (name, i) in [
            ("lock_edges_capped", counter::EDGES_CAPPED),
            ("held_overflow", counter::HELD_OVERFLOW),
        ] {
            let n = sum(i);
            if n > 0 {
                c.hits.push((name.to_string(), n));
            }
        }
        let lock_hits = self.attached.as_ref().map_or(0, lock_site_hits);
        if lock_hits > 0 {
            c.hits.push(("lock_sites".to_string(), lock_hits));
        }
        c.records = sum(counter::RECORDS);
        c.drops = sum(counter::DROPS);
        c.stack_errors = sum(counter::STACK_ERRORS);
        c.read_errors = sum(counter::READ_ERRORS);
        c
    }
}

/// The model's copy of a stack, shared by every goroutine parked with it. Stacks
/// without an id (-1) are not cached.
fn shared_frames(
    cache: &mut events::FastMap<(i64, u64), tracer_analysis::input::Frames>,
    key: (i64, u64),
    frames: &[SourceFrame],
) -> tracer_analysis::input::Frames {
    if key.0 == -1 {
        return frames.iter().map(to_frame).collect();
    }
    cache
        .entry(key)
        .or_insert_with(|| frames.iter().map(to_frame).collect())
        .clone()
}

fn to_frame(f: &SourceFrame) -> Frame {
    Frame::new(f.function.clone(), f.file.clone(), f.line)
}

/// Cumulative hits of the lock sites, all together.
fn lock_site_hits(attached: &Attached) -> u64 {
    attached
        .ebpf
        .map("COUNTERS")
        .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
        .and_then(|arr| arr.get(&counter::LOCK_SITE_HITS, 0).ok())
        .map_or(0, |v| v.iter().sum())
}

/// (device, inode) of a file, following links.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a pidfd says its process has exited, without waiting.
fn readable_now(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// A pidfd becomes readable when the process exits: no polling of /proc.
fn alive(pid: u32) -> bool {
    tracer_inspect::process::alive(pid)
}

/// Opened when the session is created, before anyone is told the tracer is
/// attached: a target that dies after that point is still seen to exit. `Err` means
/// the process is already gone.
fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

//! One target's trace, as an async loop: every 20 ms (50 in watch mode) drain the
//! kernel's records, beat the heartbeat, check the budget (also at once when the
//! kernel says the lock sites' allowance is spent); every second read the
//! parked goroutines from memory and tick the detectors; stop on Ctrl-C, SIGTERM,
//! SIGHUP, `--duration`, the target's exit or `exec`, or a closed output. It owns
//! the pieces and moves data between them in one direction (probes -> decode ->
//! model and lock watch -> output); it never touches aya (`probes`), translates a
//! record (`decode`), analyses (`tracer-analysis`) or formats (`output`). Several
//! sessions can run in one process: nothing here is global.
mod hold;
mod records;
mod sampling;
mod views;

use hold::{file_id, pidfd_open, readable_now};
use records::note_system;
use views::metric_labels;

use crate::budget::{self, Budget};
use crate::cli::{Mode, TraceOpts};
use crate::clock::monotonic_ns;
use crate::decode::{self, Decoder, ParkDating};
use crate::guard::Guardian;
use crate::output::Output;
use crate::probes::{Counters, Probes};
use anyhow::Result;
use std::os::fd::{AsFd as _, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracer_analysis::lockwatch::LockWatch;
use tracer_analysis::{Analyzer, Input};
use tracer_inspect::goroutines::RawGoroutine;
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
    /// The model was told the GC proved this park leaked.
    leaked: bool,
}

impl PrevPark {
    /// Still in the same park: it has not run since (the runtime bumps
    /// `trackingSeq` whenever a goroutine stops running). A park the GC proved
    /// leaked in between is the same park (`_Gwaiting` to `_Gleaked`).
    fn same_park(&self, g: &RawGoroutine) -> bool {
        self.seq.is_some()
            && g.tracking_seq == self.seq
            && g.sched_pc == self.pc
            && g.wait_reason == self.reason
            && g.is_waiting()
    }
}

pub struct Session<'t> {
    target: &'t TargetInfo,
    /// None in snapshot mode, and once detached (after an exec).
    probes: Option<Probes>,
    opts: TraceOpts,
    decoder: Decoder<'t>,
    pub analyzer: Analyzer,
    pub locks: LockWatch,
    /// Lock sites (locks mode).
    pub budget: Option<Budget>,
    /// The park probes (parks and locks modes).
    pub park_budget: Option<Budget>,
    /// Where findings and events go while tracing.
    out: Output,
    pid: u32,
    pub events_seen: u64,
    last_tick: u64,
    last_budget: u64,
    signals: Option<[Signal; 3]>,
    pidfd: Option<std::io::Result<OwnedFd>>,
    /// A second handle on the target's pidfd, for SIGCONT: never a PID that may
    /// have been reused.
    signal_fd: Option<OwnedFd>,
    /// Resumes a held target when the agent cannot (see `guard.rs`). The exit
    /// hold is given only while it runs.
    guardian: Option<Guardian>,
    /// The target's executable as (device, inode): a change means it exec'd.
    exe_id: Option<(u64, u64)>,
    /// The target exec'd another program (its path), seen by [`Session::tick_now`].
    pub execed: Option<std::path::PathBuf>,
    /// The target was held at `runtime.exit` during this session.
    pub exit_held: bool,
    /// Being read at exit: resumed by `resume_target`, whatever happens.
    stopped_pending: bool,
    /// The kernel's counters as they were when the probes were detached.
    detached_counters: Option<Counters>,
    /// `tracer run`: the program was started by the tracer.
    run_mode: bool,
    /// Parked goroutines of the last read, by goid.
    prev_parks: std::collections::HashMap<u64, PrevPark>,
    /// Time spent reading and applying records, for the budget.
    drain_ns: u64,
    /// The agent's time on the probes (records, switches) at the last budget
    /// tick, and what the budget was charged for it so far (see `sampling`).
    agent_spent_ns: u64,
    agent_charged_ns: u64,
    host_load: crate::budget::HostLoad,
    /// Names of the channel element types seen in reads (`chan os.Signal`).
    type_names: tracer_inspect::typenames::TypeNames,
    last_snapshot: Option<u64>,
    snapshot_cost: Duration,
    /// `--listen`: Prometheus scrapes.
    metrics: Option<crate::metrics::Server>,
    /// Labels of every metric series: which process this is.
    metric_labels: Vec<(String, String)>,
    /// `tracer agent`: the board this target's metrics go to, its pprof requests
    /// and the agent's stop.
    fleet: Option<crate::fleet::Link>,
    /// Which `--events` lines to print.
    event_filter: decode::EventFilter,
    /// Goroutines known to be the runtime's own (by their start function), left
    /// out of `--events` unless asked for.
    system_goids: std::collections::HashSet<u64>,
    /// The goids of the last read, sorted (locks mode: who ended holding a lock).
    last_alive: Vec<u64>,
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

impl<'t> Session<'t> {
    pub fn new(
        target: &'t TargetInfo,
        probes: Option<Probes>,
        opts: TraceOpts,
        analyzer: Analyzer,
        decoder: Decoder<'t>,
        pid: u32,
        out: Output,
    ) -> Result<Self> {
        let pidfd = pidfd_open(pid);
        let signal_fd = pidfd.as_ref().ok().and_then(|f| f.try_clone().ok());
        let map = probes.as_ref().and_then(Probes::exit_hold_fd);
        let guardian = match (map, &signal_fd) {
            (Some(map), Some(fd)) => match Guardian::start(fd.as_fd(), map, pid) {
                Ok(g) => Some(g),
                Err(e) => {
                    say!(
                        "tracer: warning: no exit hold ({e:#}): goroutines parked at the target's exit are those of the last read"
                    );
                    None
                }
            },
            _ => None,
        };
        let event_filter = decode::EventFilter {
            goids: opts.event_goids.clone(),
            reason: opts.event_reason.clone(),
            site: opts.event_site.clone(),
            runtime: opts.runtime_events,
        };
        let mut session = Self {
            target,
            probes,
            opts,
            decoder,
            analyzer,
            locks: LockWatch::new(),
            budget: None,
            park_budget: None,
            out,
            pid,
            events_seen: 0,
            last_tick: 0,
            last_budget: 0,
            signals: None,
            pidfd: Some(pidfd),
            signal_fd,
            guardian,
            exe_id: file_id(&target.exe),
            execed: None,
            exit_held: false,
            stopped_pending: false,
            detached_counters: None,
            run_mode: false,
            prev_parks: Default::default(),
            type_names: Default::default(),
            drain_ns: 0,
            agent_spent_ns: 0,
            agent_charged_ns: 0,
            host_load: Default::default(),
            last_snapshot: None,
            snapshot_cost: Duration::ZERO,
            metrics: None,
            metric_labels: metric_labels(target, pid),
            fleet: None,
            event_filter,
            system_goids: Default::default(),
            last_alive: Vec::new(),
        };
        session.lock_sites_attached();
        Ok(session)
    }

    pub fn probes(&self) -> Option<&Probes> {
        self.probes.as_ref()
    }

    /// The lock sites' first attach is a switch too: records written before it
    /// was complete are not trusted, and the held sets start empty.
    fn lock_sites_attached(&mut self) {
        if let Some(p) = self.probes.as_mut() {
            if p.lock_sites() > 0 {
                p.purge_all_held();
                self.locks.switched(0, monotonic_ns());
            }
        }
    }

    /// Run mode: the target starts after the tracer, so every park happens after
    /// now, as if a read had found nothing parked then.
    pub fn fresh_start(&mut self) {
        self.last_snapshot = Some(monotonic_ns());
        self.run_mode = true;
        // A program may exit within milliseconds of its start: the exit hold must
        // be there from the first instruction.
        self.beat();
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

    /// Runs until a stop condition; the target is watched through a pidfd.
    pub async fn run(&mut self) -> Result<Stop> {
        let pidfd = match self.pidfd.take() {
            Some(Ok(fd)) => {
                // SAFETY: the AsyncFd owns the descriptor, which nothing else closes.
                unsafe { AsyncFd::register(fd) }.ok()
            }
            // The process was gone before tracing began.
            Some(Err(_)) if !tracer_inspect::process::alive(self.pid) => {
                return Ok(Stop::TargetExited)
            }
            _ => None,
        };
        // Records are polled (the kernel writes them without a wakeup), on the
        // budget's tick: on a busy host each wake preempts the target, and the
        // 8 MiB ring holds 20 ms of the fastest drain measured many times over.
        // Watch mode has no records but the exit's and no budget: the agent
        // wakes 20 times a second (an exit is held up to 50 ms).
        let every = if self.opts.mode == Mode::Watch {
            50
        } else {
            budget::TICK.as_millis() as u64
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
        // Readable only when a record asks for a wakeup: the lock sites'
        // allowance is spent, and the budget detaches them now, not at its tick.
        let ring = match (&self.budget, &self.probes) {
            (Some(_), Some(p)) => p.ring_fd().ok().and_then(|fd| {
                // SAFETY: the descriptor is the AsyncFd's own (a duplicate).
                unsafe { AsyncFd::register(fd) }.ok()
            }),
            _ => None,
        };
        let metrics = self.metrics.take();
        let mut pprof_rx = self.fleet.as_mut().and_then(|l| l.pprof.take());
        let mut stop_rx = self.fleet.as_mut().and_then(|l| l.stop.take());
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
                _ = async {
                    match &ring {
                        Some(fd) => match fd.readable().await {
                            Ok(mut ready) => ready.clear_ready(),
                            Err(_) => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                }, if !after_exec => {
                    self.drain();
                    self.last_budget = monotonic_ns();
                    self.apply_budget();
                }
                Some(stream) = async {
                    match &metrics {
                        Some(m) => m.accept().await,
                        None => std::future::pending().await,
                    }
                } => crate::metrics::answer(stream, self.render_metrics()),
                Some(reply) = async {
                    match &mut pprof_rx {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let _ = reply.send(self.render_pprof());
                }
                _ = async {
                    match &mut stop_rx {
                        Some(rx) => {
                            let _ = rx.wait_for(|stop| *stop).await;
                        }
                        None => std::future::pending().await,
                    }
                } => break Stop::Interrupted,
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

    /// Applies the kernel's records, then, if the target is held at exit, reads
    /// its final state and lets it go.
    pub fn drain(&mut self) {
        self.beat();
        let started = std::time::Instant::now();
        self.drain_records();
        self.drain_ns += started.elapsed().as_nanos() as u64;
        let held = self.probes.as_mut().is_some_and(Probes::exit_hold_pending);
        if !self.exit_held && held {
            // Held at exit: its final state, read while its memory is still there,
            // then let it go (also if the read fails).
            self.exit_held = true;
            self.stopped_pending = true;
            let read = self.snapshot();
            self.resume_target();
            if read.is_some() {
                self.check_exited_holding(true);
            }
        }
    }

    /// Detaches every probe (the target exec'd, or the session is over); the
    /// counters are kept for the report.
    pub fn detach(&mut self) {
        if let Some(p) = self.probes.take() {
            self.detached_counters = Some(p.counters());
        }
    }

    pub fn counters(&self) -> Counters {
        match (&self.probes, &self.detached_counters) {
            (Some(p), _) => p.counters(),
            (None, Some(c)) => c.clone(),
            (None, None) => Counters::default(),
        }
    }

    /// The model, for the final report (the session is dropped first, so the
    /// target is let go before anything waits on the output).
    pub fn take_analyzer(&mut self) -> Analyzer {
        let empty = Analyzer::new(tracer_analysis::Config::default()).expect("default config");
        std::mem::replace(&mut self.analyzer, empty)
    }

    /// Runs the detectors and prints what newly fired (at most once a second); the
    /// budget is checked every 20 ms, so hot probes are detached fast.
    pub fn tick(&mut self) {
        let now = monotonic_ns();
        if now.saturating_sub(self.last_budget) >= budget::TICK.as_nanos() as u64 {
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
            let every = (decode::SNAPSHOT_INTERVAL_NS as u128)
                .max(self.snapshot_cost.as_nanos() * u128::from(SNAPSHOT_DUTY));
            u128::from(now.saturating_sub(last)) + 10_000_000 >= every
        });
        if due && self.opts.mode != Mode::Snapshot {
            // Before the read: after an exec, `allgs` is another program's memory.
            self.check_exec();
            if self.execed.is_some() {
                return;
            }
            if self.snapshot().is_some() {
                self.check_exited_holding(false);
            }
        }
        self.check_deadlocks();
        self.check_self_deadlocks(false);
        let fresh = self.analyzer.tick(now);
        self.out.findings(&fresh);
        if let Some(link) = &self.fleet {
            link.board.publish(self.pid, self.metric_families());
        }
    }

    /// Feeds the goroutines parked right now, read from the target's memory: those
    /// parked long before the tracer came are found too. Read again every second in
    /// every live mode: a read tells which goroutines are still in the same park
    /// (`g.trackingSeq` unchanged), which resumed and which exited, with no probe.
    pub fn snapshot(&mut self) -> Option<usize> {
        // Events already in the ring buffer are older than the snapshot: apply them
        // first, or the model would drop them as stale (a wake lost that way leaves
        // a goroutine "parked" forever). The snapshot is stamped before the read, so
        // events during the read count as newer.
        self.drain();
        let now = monotonic_ns();
        let started = std::time::Instant::now();
        let mem = tracer_inspect::memory::Memory::new(self.pid);
        let prev = std::mem::take(&mut self.prev_parks);
        let mut snap = tracer_inspect::goroutines::snapshot_with(self.target, &mem, |g| {
            prev.get(&g.goid).is_some_and(|p| p.same_park(g))
        })?;
        let kernel = self.probes.as_ref().map(Probes::parks);
        let first = self.last_snapshot.is_none();
        let mut parked = Vec::new();
        let mut live = Vec::new();
        let total = snap.live;
        // Every live goroutine, those whose park changed during the read too.
        let mut alive = std::mem::take(&mut snap.alive);
        let mut still_parked = Vec::new();
        // Parks the GC proved leaked since the model was last told.
        let mut leaked = Vec::new();
        // Consumed as it goes: with 100,000 goroutines the raw copies and the model's
        // would otherwise be in memory together.
        for g in snap.goroutines.into_iter() {
            if !g.is_waiting() {
                continue;
            }
            let reason = self.decoder.wait_reason(u64::from(g.wait_reason));
            if decode::is_idle_wait(&reason) {
                continue;
            }
            if let Some(p) = prev.get(&g.goid).filter(|p| p.same_park(&g)) {
                // The same park as at the last read: nothing to walk or symbolize.
                still_parked.push(g.goid);
                let mut p = *p;
                if g.is_leaked() && !p.leaked {
                    p.leaked = true;
                    leaked.push(g.goid);
                }
                self.prev_parks.insert(g.goid, p);
                continue;
            }
            // The semaphore a sync wait sleeps on, announced by semacquire1 (probed
            // in every budget state, as it is hit only when a goroutine will sleep).
            let sync_wait = reason.starts_with("sync.") || &*reason == "semacquire";
            let dating = ParkDating {
                now,
                last_read: self.last_snapshot,
                kernel: kernel.as_ref().and_then(|k| k.park(g.goid)),
                sema: kernel
                    .as_ref()
                    .filter(|_| sync_wait)
                    .and_then(|k| k.sema(g.goid))
                    .unwrap_or(0),
                gc_tstart: snap.gc_tstart,
            };
            let target = self.target;
            let chan_types: Vec<_> = g
                .waiting_chans
                .iter()
                .map(|&(c, t)| (c, self.type_names.name(target, &mem, t)))
                .collect();
            let read = self.decoder.parked(&g, reason, dating, &chan_types);
            if self.opts.events {
                let ev = read.live(now);
                note_system(&mut self.system_goids, &ev);
                let system = &self.system_goids;
                if first && self.event_filter.keep(&ev, |g| system.contains(&g)) {
                    live.push(ev);
                }
            }
            if g.is_leaked() {
                leaked.push(g.goid);
            }
            if g.tracking_seq.is_some() {
                self.prev_parks.insert(
                    g.goid,
                    PrevPark {
                        seq: g.tracking_seq,
                        pc: g.sched_pc,
                        reason: g.wait_reason,
                        leaked: g.is_leaked(),
                    },
                );
            }
            parked.push(read.parked);
        }
        drop(prev);
        self.out.events(&live);
        alive.sort_unstable();
        if self.probes.as_ref().is_some_and(|p| p.lock_sites() > 0) {
            self.last_alive.clone_from(&alive);
        }
        let n = parked.len() + still_parked.len();
        self.analyzer.apply(Input::Snapshot {
            ts_ns: now,
            parked,
            total_goroutines: total,
            alive: Some(alive),
            still_parked,
        });
        if !leaked.is_empty() {
            self.analyzer.apply(Input::Leaked {
                ts_ns: now,
                goids: leaked,
            });
        }
        self.last_snapshot = Some(now);
        self.snapshot_cost = started.elapsed();
        Some(n)
    }
}

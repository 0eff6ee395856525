//! One trace from start to report: plan the probes, attach them, run a session until
//! it stops, then write the report once the target is let go. Shared by `attach`
//! and `run`; `run` adds its program through [`Program`].
use crate::cli::{Mode, TraceOpts};
use crate::clock::monotonic_ns;
use crate::decode::Decoder;
use crate::output::{FinalReport, Writer};
use crate::probes::Probes;
use crate::{budget, plan, probes, session};
use anyhow::{Context as _, Result};
use std::io::Write as _;
use tracer_analysis::{should_fail, Analyzer, Config, FailOn, Input, SummaryInputs};
use tracer_inspect::TargetInfo;

/// What `tracer run` adds to a trace: the held child to release once the probes
/// are in, and how to end it and learn how it ended.
pub trait Program {
    /// Lets the held child `exec`.
    fn release(&mut self) -> Result<()>;
    /// Called when tracing has stopped: the child's end, stopping it first when
    /// tracing ended before it did.
    fn end(&mut self, stop: session::Stop) -> tracer_analysis::ProgramEnd;
}

/// How a trace ended.
pub struct Traced {
    /// A finding matched `--fail-on`.
    pub fail: bool,
    /// The output's reader went away before the report was written.
    pub output_closed: bool,
    /// `tracer run`: how the program ended.
    pub program: Option<tracer_analysis::ProgramEnd>,
}

/// Which probes each mode cannot do without: the run is refused when one fails,
/// rather than going on blind with a note at the end.
fn required_programs(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Snapshot => &[],
        Mode::Watch => &["go_exiting"],
        Mode::Parks => &["go_exiting", "go_park", "go_park_call", "go_ready"],
        Mode::Locks => &[
            "go_exiting",
            "go_park",
            "go_park_call",
            "go_ready",
            probes::LOCK_PROGRAM,
        ],
    }
}

/// Attaches the probes to `pid` and traces until a stop condition. `program` is
/// released once the probes are in place (run mode lets its child exec then; there
/// is then nothing to snapshot yet).
pub fn trace(
    target: &TargetInfo,
    pid: u32,
    opts: TraceOpts,
    mut program: Option<&mut dyn Program>,
    fleet: Option<&crate::fleet::Fleet>,
) -> Result<Traced> {
    let run_mode = program.is_some();
    // `lock` (any lock finding) is the tracer's own; the rest are goroutine rules.
    let fail_on_lock = opts.fail_on.iter().any(|s| s.trim() == "lock");
    let fail_on = opts
        .fail_on
        .iter()
        .filter(|s| s.trim() != "lock")
        .map(|s| {
            s.parse::<FailOn>()
                .map_err(|e| anyhow::anyhow!("--fail-on: {e} (or: lock)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let config = Config {
        park_threshold: opts.park_threshold,
        leak_window: opts.leak_window,
        ignore: opts.ignore.clone(),
        ..Config::default()
    };
    let analyzer = Analyzer::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if run_mode && opts.mode == Mode::Snapshot {
        anyhow::bail!("--mode snapshot reads a running process: use it with `tracer attach`");
    }
    // The agent's targets share its output and its metrics server.
    let (writer, out) = match fleet {
        Some(f) => (None, f.out.tagged(pid)),
        None => {
            let w = Writer::new(
                opts.output.as_deref(),
                opts.format,
                opts.verbose,
                monotonic_ns(),
            )?;
            let out = w.handle();
            (Some(w), out)
        }
    };
    let listener = match fleet {
        Some(_) => None,
        None => opts.listen.map(crate::metrics::bind).transpose()?,
    };
    // Created now, so a path that cannot be written is said before tracing.
    let pprof = opts
        .pprof
        .as_ref()
        .map(|p| {
            std::fs::File::create(p)
                .with_context(|| format!("--pprof {}: cannot create it", p.display()))
        })
        .transpose()?;
    let mut plan = plan::plan(target, opts.mode, opts.events, !opts.no_stacks);
    if opts.bench_copies > 1 {
        plan.globals
            .push((tracer_common::globals::BENCH_COPIES, opts.bench_copies));
    }
    if opts.bench_trap_only {
        plan.globals
            .push((tracer_common::globals::BENCH_TRAP_ONLY, 1));
    }
    // Snapshot mode reads the target's memory only: nothing to load.
    let probes = if opts.mode == Mode::Snapshot {
        None
    } else {
        Some(Probes::attach(&plan, &target.exe, pid, opts.bpf_log)?)
    };
    if let Some(p) = &probes {
        let required = required_programs(opts.mode);
        let unmet: Vec<&String> = p
            .failed()
            .iter()
            .zip(p.failed_programs())
            .filter(|(_, prog)| required.contains(prog))
            .map(|(f, _)| f)
            .collect();
        if let Some(first) = unmet.first() {
            anyhow::bail!(
                "--mode {}: a probe it needs could not attach ({first}); run as root, or use a mode that needs fewer probes (--mode watch reads memory only, --mode snapshot needs no probe)",
                format!("{:?}", opts.mode).to_lowercase()
            );
        }
        for f in p.failed() {
            say!("tracer: warning: probe not attached: {f}");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let numbered = plan.numbered_lock_sites();
    let try_sites: Vec<u64> = numbered
        .iter()
        .enumerate()
        .filter(|(_, l)| l.try_lock)
        .map(|(i, _)| i as u64)
        .collect();
    let lock_classes = numbered
        .iter()
        .map(|l| l.class.as_deref().map(std::sync::Arc::from))
        .collect();
    let lock_sites = numbered
        .into_iter()
        .map(|l| tracer_analysis::Frame::new(l.caller, l.file, l.line))
        .collect();
    let mut session = session::Session::new(
        target,
        probes,
        opts.clone(),
        analyzer,
        Decoder::new(target, lock_sites)
            .with_try_sites(try_sites)
            .with_lock_classes(lock_classes),
        pid,
        out.clone(),
    )?;
    {
        let _guard = rt.enter();
        session.install_signals()?;
        if let Some(l) = listener {
            session.serve_metrics(l)?;
        }
        if let Some(f) = fleet {
            session.join_fleet(f.board.join(pid, f.stop.clone()));
        }
    }
    // The --events view asks for every event: no sampling there.
    if matches!(opts.mode, Mode::Parks | Mode::Locks) && !opts.events {
        // Lock sites go off and on all together: a Lock seen without its Unlock
        // (the two in different functions, one of them off) left the lock "held"
        // and invented self-deadlocks and inversions.
        if !plan.locks.is_empty() {
            session.budget = Some(budget::Budget::new(
                opts.budget,
                budget::Unit {
                    name: "lock sites",
                    kernel_allowance: true,
                    cost_ns: budget::LOCK_HIT_NS,
                    min_off: budget::LOCK_MIN_OFF,
                    min_on: budget::LOCK_MIN_ON,
                    switch_ns: budget::switch_estimate_ns(plan.locks.len()),
                },
            ));
        }
        // The park probes have a budget of their own: lock-order findings depend on
        // which lock sites stay on, and the park probes must not crowd them out.
        session.park_budget = Some(budget::Budget::new(
            opts.budget,
            budget::Unit {
                name: "park probes",
                kernel_allowance: false,
                cost_ns: budget::PARK_HIT_NS,
                min_off: budget::PARK_MIN_OFF,
                min_on: budget::PARK_MIN_ON,
                switch_ns: budget::switch_estimate_ns(4),
            },
        ));
        session.start_units();
    }
    if let Some(p) = session.probes() {
        say!(
            "tracer: attached {} probes to PID {pid} ({}, {}, mode {:?}); Ctrl-C to stop",
            p.attached().len(),
            target.go_version,
            target.exe.display(),
            opts.mode
        );
    }
    match program.as_deref_mut() {
        Some(program) => {
            session.fresh_start();
            program.release()?
        }
        None => {
            session.beat();
            let started = std::time::Instant::now();
            match session.snapshot() {
                Some(n) => say!(
                    "tracer: snapshot: {n} goroutines parked now in PID {pid} (read in {:.1?})",
                    started.elapsed()
                ),
                None => {
                    say!("tracer: snapshot of PID {pid} unavailable (runtime.allgs not readable)")
                }
            }
            session.tick_now();
        }
    }
    let stop = if opts.mode == Mode::Snapshot {
        session::Stop::Snapshot
    } else {
        rt.block_on(session.run())?
    };
    let now = monotonic_ns();
    if run_mode && stop == session::Stop::TargetExited && session.execed.is_none() {
        session.analyzer.apply(Input::TargetExit { ts_ns: now });
    }
    let mut counters: probes::Counters = session.counters();
    if session.locks.skipped > 0 {
        counters
            .hits
            .push(("lock_records_skipped".to_string(), session.locks.skipped));
    }
    if session.locks.by_protocol > 0 {
        counters.hits.push((
            "lock_edges_safe_by_protocol".to_string(),
            session.locks.by_protocol,
        ));
    }
    let mut missing = plan.missing.clone();
    missing.extend(target.missing.iter().cloned());
    session.check_deadlocks();
    // A goroutine the target exited with, parked on a lock it holds, hung
    // there; at a detach, one parked so for under a second may yet be let go.
    session.check_self_deadlocks(stop == session::Stop::TargetExited);
    let (attached_n, failed) = session
        .probes()
        .map(|p| (p.attached().len() as u32, p.failed().to_vec()))
        .unwrap_or_default();
    let budget = session.park_budget.as_ref().map(|parks| {
        let locks = session.budget.as_ref().map(|b| b.report());
        (parks.report(), locks)
    });
    let holds = session.hold_times();
    let lock_counts = (opts.mode == Mode::Locks).then(|| {
        (
            session.locks.findings.len(),
            session.locks.graph.edge_count(),
        )
    });
    let lock_fail = !session.locks.findings.is_empty()
        && (fail_on_lock || fail_on.iter().any(|f| matches!(f, FailOn::Any)));
    // The target is let go and the probes detached before anything waits for the
    // output's reader; `tracer run` then ends its program, so the summary can say
    // how it ended.
    drop(rt);
    let events_seen = session.events_seen;
    let analyzer = session.take_analyzer();
    drop(session);
    // The agent's other targets go on; it restores nothing of its process.
    if fleet.is_none() {
        restore_default_signals();
    }
    let program_end = program.map(|p| p.end(stop));
    if let Some(end) = &program_end {
        say!("tracer: program {end}");
    }
    let inputs = SummaryInputs {
        events: events_seen,
        drops: counters.drops,
        probes_attached: attached_n,
        probes_failed: failed.clone(),
        symbols_missing: missing,
        probe_hits: counters.hits.clone(),
        stop: stop.describe().to_string(),
        program: program_end.clone(),
        output_lines_dropped: out.dropped_lines(),
    };
    let report = analyzer.report(now, inputs);
    if let Some(file) = pprof {
        let wall = crate::clock::wall_ns();
        let mut file = std::io::BufWriter::new(file);
        let program = target.exe.to_string_lossy();
        tracer_analysis::report::pprof::write(analyzer.model(), now, wall, &program, &mut file)
            .context("writing the --pprof profile")?;
        file.flush().context("writing the --pprof profile")?;
    }
    out.report(&FinalReport {
        report: &report,
        budget,
        lock_sites: plan.locks.len(),
        holds: &holds,
        locks: lock_counts,
    })?;
    let dropped = out.dropped_lines();
    let delivered = match writer {
        Some(w) => {
            drop(out);
            w.finish()?
        }
        None => !out.closed(),
    };
    if fleet.is_some() {
        say!("tracer: PID {pid} stopped ({})", stop.describe());
    } else {
        say!("tracer: stopped ({})", stop.describe());
    }
    // Nothing silent: what was lost says so where a person looks, even when the
    // report went to a file or to /dev/null.
    let mut losses = Vec::new();
    if counters.drops > 0 {
        losses.push(format!("{} events lost (ring buffer full)", counters.drops));
    }
    if dropped > 0 {
        losses.push(format!(
            "{dropped} streamed lines dropped (the output's reader was too slow)"
        ));
    }
    if !failed.is_empty() {
        losses.push(format!(
            "{} probes not attached ({})",
            failed.len(),
            failed.join("; ")
        ));
    }
    if !losses.is_empty() {
        say!("tracer: warning: {}", losses.join("; "));
    }
    Ok(Traced {
        fail: should_fail(&report.findings, &fail_on) || lock_fail,
        output_closed: !delivered || stop == session::Stop::OutputClosed,
        program: program_end,
    })
}

/// Once tracing is over, Ctrl-C ends the tracer at once again (a final report
/// waiting for a stalled reader must not make it unkillable but by SIGKILL).
fn restore_default_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: resetting a signal's disposition.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

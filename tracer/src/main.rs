//! `tracer`: a live eBPF tracer for Go programs. Thin glue: target -> plan -> probes
//! -> events -> model -> detectors -> reports, each in its own module or crate.
/// One line on stderr. Not `eprintln!`, which panics when stderr is a pipe whose
/// reader went away.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod attach;
mod budget;
mod cli;
mod duration;
mod events;
mod guard;
mod output;
mod plan;
mod privileges;
mod report_fmt;
mod run;
mod session;

use anyhow::Result;
use clap::Parser as _;
use cli::{Cli, Command, Format, Mode, TraceOpts};
use std::io::Write as _;
use std::process::ExitCode;
use tracer_analysis::{report, should_fail, Analyzer, Config, FailOn, Input, SummaryInputs};
use tracer_inspect::TargetInfo;

/// Exit code for bad input or a setup failure; 1 is reserved for `--fail-on`.
const EXIT_ERROR: u8 = 2;
/// The output's reader went away: what a shell reports for a program SIGPIPE
/// ended (128 + 13), without the noise.
const EXIT_CLOSED_OUTPUT: u8 = 141;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == guard::GUARD_ARG) {
        let pid = args.get(2).and_then(|p| p.to_str()).unwrap_or("?");
        return ExitCode::from(guard::main(pid));
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_closed_output(&e) => ExitCode::from(EXIT_CLOSED_OUTPUT),
        Err(e) => {
            say!("tracer: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A write to a reader that went away (`tracer plan | head -1`).
fn is_closed_output(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Errors print as one line: the outermost message, then its causes.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn real_main(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Plan {
            pid,
            exe,
            mode,
            events,
        } => {
            let target = match (pid, exe) {
                (Some(pid), _) => TargetInfo::from_pid(pid)?,
                (None, Some(exe)) => TargetInfo::from_path(&exe)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let mut out = std::io::stdout().lock();
            write!(out, "{}", plan::plan(&target, mode, events, true))?;
            out.flush()?;
            Ok(0)
        }
        Command::Attach { pid, opts } => {
            privileges::check_for(opts.mode, privileges::Target::Pid(pid))?;
            warn_odd(&opts);
            let target = TargetInfo::from_pid(pid)?;
            let traced = trace(&target, pid, opts, None)?;
            Ok(if traced.output_closed {
                EXIT_CLOSED_OUTPUT
            } else {
                u8::from(traced.fail)
            })
        }
        Command::Run { opts, command } => {
            privileges::check_for(opts.mode, privileges::Target::Child)?;
            warn_odd(&opts);
            run::run(&command, opts)
        }
    }
}

/// Odd but legal flag values: said once, then the trace goes on.
fn warn_odd(opts: &TraceOpts) {
    for w in cli::warnings(opts) {
        say!("tracer: warning: {w}");
    }
}

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
            attach::LOCK_PROGRAM,
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
        ..Config::default()
    };
    let analyzer = Analyzer::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if run_mode && opts.mode == Mode::Snapshot {
        anyhow::bail!("--mode snapshot reads a running process: use it with `tracer attach`");
    }
    let writer = output::Writer::new(opts.output.as_deref())?;
    let mut plan = plan::plan(target, opts.mode, opts.events, !opts.no_stacks);
    if opts.bench_copies > 1 {
        plan.globals
            .push((tracer_common::globals::BENCH_COPIES, opts.bench_copies));
    }
    // Snapshot mode reads the target's memory only: nothing to load.
    let attached = if opts.mode == Mode::Snapshot {
        None
    } else {
        Some(attach::attach(&plan, &target.exe, pid, opts.bpf_log)?)
    };
    if let Some(a) = &attached {
        let required = required_programs(opts.mode);
        let unmet: Vec<&String> = a
            .failed
            .iter()
            .zip(&a.failed_programs)
            .filter(|(_, p)| required.contains(p))
            .map(|(f, _)| f)
            .collect();
        if let Some(first) = unmet.first() {
            anyhow::bail!(
                "--mode {}: a probe it needs could not attach ({first}); run as root, or use a mode that needs fewer probes (--mode watch reads memory only, --mode snapshot needs no probe)",
                format!("{:?}", opts.mode).to_lowercase()
            );
        }
        for f in &a.failed {
            say!("tracer: warning: probe not attached: {f}");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lock_sites = plan
        .locks
        .iter()
        .map(|l| tracer_analysis::Frame::new(l.caller.clone(), l.file.clone(), l.line))
        .collect();
    let out = writer.handle();
    let mut session = session::Session::new(
        target,
        attached,
        opts.clone(),
        analyzer,
        lock_sites,
        pid,
        out.clone(),
    )?;
    session.lock_sites_attached();
    {
        let _guard = rt.enter();
        session.install_signals()?;
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
                    cost_ns: budget::LOCK_HIT_NS,
                    min_off: budget::LOCK_MIN_OFF,
                    min_on: budget::LOCK_MIN_ON,
                },
            ));
        }
        // The park probes have a budget of their own: lock-order findings depend on
        // which lock sites stay on, and the park probes must not crowd them out.
        session.park_budget = Some(budget::Budget::new(
            opts.budget,
            budget::Unit {
                name: "park probes",
                cost_ns: budget::PARK_HIT_NS,
                min_off: budget::PARK_MIN_OFF,
                min_on: budget::PARK_MIN_ON,
            },
        ));
    }
    if let Some(a) = &session.attached {
        say!(
            "tracer: attached {} probes to PID {pid} ({}, {}, mode {:?}); Ctrl-C to stop",
            a.attached.len(),
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
            match session.snapshot(pid) {
                Some(n) => say!(
                    "tracer: snapshot: {n} goroutines parked now (read in {:.1?})",
                    started.elapsed()
                ),
                None => say!("tracer: snapshot unavailable (runtime.allgs not readable)"),
            }
            session.tick_now();
        }
    }
    let stop = if opts.mode == Mode::Snapshot {
        session::Stop::Snapshot
    } else {
        rt.block_on(session.run())?
    };
    let now = session::monotonic_ns();
    if run_mode && stop == session::Stop::TargetExited && session.execed.is_none() {
        session.analyzer.apply(Input::TargetExit { ts_ns: now });
    }
    let mut counters = session.counters();
    if session.lock_events_skipped > 0 {
        counters.hits.push((
            "lock_records_skipped".to_string(),
            session.lock_events_skipped,
        ));
    }
    let mut missing = plan.missing.clone();
    missing.extend(target.missing.iter().cloned());
    session.check_deadlocks();
    let (attached_n, failed) = session
        .attached
        .as_ref()
        .map(|a| (a.attached.len() as u32, a.failed.clone()))
        .unwrap_or_default();
    let budget_lines = session.park_budget.as_ref().map(|parks| {
        let locks = session.budget.as_ref().map(|b| b.report());
        (parks.report(), locks)
    });
    let holds = session.hold_times();
    let lock_count = (session.lock_findings.len(), session.locks.edge_count());
    let lock_fail = !session.lock_findings.is_empty()
        && (fail_on_lock || fail_on.iter().any(|f| matches!(f, FailOn::Any)));
    // The target is let go and the probes detached before anything waits for the
    // output's reader; `tracer run` then ends its program, so the summary can say
    // how it ended.
    drop(rt);
    let events_seen = session.events_seen;
    let analyzer = session.take_analyzer();
    drop(session);
    restore_default_signals();
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
    let mut buf = Vec::new();
    // Before the report: in JSON its summary line is always the last.
    if let Some((parks, locks)) = &budget_lines {
        write_budget(parks, locks.as_ref(), &plan, opts.format, &mut buf)?;
    }
    for h in &holds {
        if opts.format == Format::Json {
            writeln!(buf, "{}", serde_json::to_string(h)?)?;
        }
    }
    if opts.format == Format::Text && !holds.is_empty() {
        writeln!(
            buf,
            "lock hold times by class (upper bounds of log2 buckets):"
        )?;
        for h in &holds {
            writeln!(
                buf,
                "  {}: {} holds, p50 < {}, p99 < {}, max < {}",
                h.class,
                h.count,
                report_fmt::human_ns(h.p50_ns),
                report_fmt::human_ns(h.p99_ns),
                report_fmt::human_ns(h.max_ns)
            )?;
        }
        writeln!(buf)?;
    }
    if opts.mode == Mode::Locks && opts.format == Format::Text {
        writeln!(
            buf,
            "lock findings: {} ({} lock-order edges seen)\n",
            lock_count.0, lock_count.1
        )?;
    }
    match opts.format {
        Format::Text => report::text::write(&report, &mut buf)?,
        Format::Json => report::json::write(&report, &mut buf)?,
    }
    out.write(buf);
    let dropped = out.dropped_lines();
    drop(out);
    let delivered = writer.finish()?;
    say!("tracer: stopped ({})", stop.describe());
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

/// The budget's account: what was sampled, for what share of the time.
fn write_budget(
    parks: &budget::BudgetReport,
    locks: Option<&budget::BudgetReport>,
    plan: &plan::ProbePlan,
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let locks_on = locks.map(|l| l.on_fraction);
    // The park budget's estimate counts the lock sites and the agent too.
    let peak = parks
        .peak_estimate_percent
        .max(locks.map_or(0.0, |l| l.peak_estimate_percent));
    if format == Format::Json {
        let line = serde_json::json!({
            "kind": "budget",
            "budget_percent": parks.budget_percent,
            "peak_estimate_percent": peak,
            "park_probes_on": parks.on_fraction,
            "park_probes_switched_off": parks.switches_off,
            "lock_sites": plan.locks.len(),
            "lock_sites_on": locks_on,
            "lock_sites_switched_off": locks.map(|l| l.switches_off),
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }
    write!(
        out,
        "probe budget {}%: peak estimated probe cost {:.1}%; park probes on {:.0}% of the time",
        parks.budget_percent,
        peak,
        parks.on_fraction * 100.0,
    )?;
    if let Some(on) = locks_on {
        write!(
            out,
            "; {} lock sites on {:.0}% of the time",
            plan.locks.len(),
            on * 100.0
        )?;
    }
    writeln!(out)?;
    Ok(())
}

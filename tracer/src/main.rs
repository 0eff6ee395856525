//! `tracer`: a live eBPF tracer for Go programs. Thin glue: target -> plan -> probes
//! -> events -> model -> detectors -> reports, each in its own module or crate.
mod attach;
mod budget;
mod cli;
mod duration;
mod events;
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tracer: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
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
            print!("{}", plan::plan(&target, mode, events, true));
            Ok(0)
        }
        Command::Attach { pid, opts } => {
            privileges::check()?;
            let target = TargetInfo::from_pid(pid)?;
            trace(&target, pid, opts, None)
        }
        Command::Run { opts, command } => {
            privileges::check()?;
            run::run(&command, opts)
        }
    }
}

/// Attaches the probes to `pid` and traces until a stop condition. `release` is
/// called once the probes are in place (run mode lets its child exec then; there is
/// then nothing to snapshot yet).
pub fn trace(
    target: &TargetInfo,
    pid: u32,
    opts: TraceOpts,
    release: Option<Box<dyn FnOnce() -> Result<()>>>,
) -> Result<u8> {
    let run_mode = release.is_some();
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lock_sites = plan
        .locks
        .iter()
        .map(|l| tracer_analysis::Frame::new(l.caller.clone(), l.file.clone(), l.line))
        .collect();
    let mut session =
        session::Session::new(target, attached, opts.clone(), analyzer, lock_sites, pid)?;
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
        eprintln!(
            "tracer: attached {} probes to PID {pid} ({}, {}, mode {:?}); Ctrl-C to stop",
            a.attached.len(),
            target.go_version,
            target.exe.display(),
            opts.mode
        );
    }
    match release {
        Some(release) => {
            session.fresh_start();
            release()?
        }
        None => {
            let started = std::time::Instant::now();
            match session.snapshot(pid) {
                Some(n) => eprintln!(
                    "tracer: snapshot: {n} goroutines parked now (read in {:.1?})",
                    started.elapsed()
                ),
                None => eprintln!("tracer: snapshot unavailable (runtime.allgs not readable)"),
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
    if run_mode && stop == session::Stop::TargetExited {
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
    let inputs = SummaryInputs {
        events: session.events_seen,
        drops: counters.drops,
        probes_attached: attached_n,
        probes_failed: failed,
        symbols_missing: missing,
        probe_hits: counters.hits.clone(),
    };
    let report = session.analyzer.report(now, inputs);
    let mut out = std::io::stdout().lock();
    // Before the report: in JSON its summary line is always the last.
    if let Some(parks) = &session.park_budget {
        let locks = session.budget.as_ref().map(|b| b.report());
        write_budget(
            &parks.report(),
            locks.as_ref(),
            &plan,
            opts.format,
            &mut out,
        )?;
    }
    let holds = session.hold_times();
    for h in &holds {
        if opts.format == Format::Json {
            writeln!(out, "{}", serde_json::to_string(h)?)?;
        }
    }
    if opts.format == Format::Text && !holds.is_empty() {
        writeln!(
            out,
            "lock hold times by class (upper bounds of log2 buckets):"
        )?;
        for h in &holds {
            writeln!(
                out,
                "  {}: {} holds, p50 < {}, p99 < {}, max < {}",
                h.class,
                h.count,
                report_fmt::human_ns(h.p50_ns),
                report_fmt::human_ns(h.p99_ns),
                report_fmt::human_ns(h.max_ns)
            )?;
        }
        writeln!(out)?;
    }
    if opts.mode == Mode::Locks && opts.format == Format::Text {
        writeln!(
            out,
            "lock findings: {} ({} lock-order edges seen)\n",
            session.lock_findings.len(),
            session.locks.edge_count()
        )?;
    }
    match opts.format {
        Format::Text => report::text::write(&report, &mut out)?,
        Format::Json => report::json::write(&report, &mut out)?,
    }
    drop(out);
    eprintln!("tracer: stopped ({})", stop.describe());
    let lock_fail = !session.lock_findings.is_empty()
        && (fail_on_lock || fail_on.iter().any(|f| matches!(f, FailOn::Any)));
    Ok(u8::from(
        should_fail(&report.findings, &fail_on) || lock_fail,
    ))
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

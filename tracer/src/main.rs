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

mod agent;
mod budget;
mod cli;
mod clock;
mod decode;
mod duration;
mod fleet;
mod guard;
mod metrics;
mod output;
mod plan;
mod privileges;
mod probes;
mod report_fmt;
mod run;
mod session;
mod trace;

use anyhow::Result;
use cli::{Cli, Command, TraceOpts};
use std::io::Write as _;
use std::process::ExitCode;
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
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The agent's default mode is watch (no probe cost), not parks.
    let default_mode = matches
        .subcommand_matches("agent")
        .and_then(|m| m.value_source("mode"))
        == Some(clap::parser::ValueSource::DefaultValue);
    match real_main(cli, default_mode) {
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
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn real_main(cli: Cli, agent_default_mode: bool) -> Result<u8> {
    match cli.command {
        Command::Agent {
            pids,
            exes,
            cgroups,
            all_go,
            scan_interval,
            mut opts,
        } => {
            if agent_default_mode {
                opts.mode = cli::Mode::Watch;
            }
            privileges::check_for(opts.mode, privileges::Target::Child)?;
            warn_odd(&opts);
            let sel = agent::Selector {
                pids,
                exes,
                cgroups,
                all_go,
            };
            agent::agent(sel, opts, scan_interval)
        }
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
        Command::Diff {
            baseline,
            canary,
            format,
        } => diff(&baseline, &canary, format),
        Command::Attach { pid, opts } => {
            privileges::check_for(opts.mode, privileges::Target::Pid(pid))?;
            warn_odd(&opts);
            let target = TargetInfo::from_pid(pid)?;
            let traced = trace::trace(&target, pid, opts, None, None)?;
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

/// `tracer diff`: exit 1 when the canary regressed.
fn diff(baseline: &std::path::Path, canary: &std::path::Path, format: cli::Format) -> Result<u8> {
    use anyhow::Context as _;
    use tracer_analysis::diff;
    let read = |p: &std::path::Path| -> Result<diff::Digest> {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read it", p.display()))?;
        diff::digest(&text).with_context(|| p.display().to_string())
    };
    let changes = diff::compare(&read(baseline)?, &read(canary)?);
    let mut out = std::io::stdout().lock();
    match format {
        cli::Format::Text if changes.is_empty() => writeln!(
            out,
            "no regression: {} has no stuck site, growth, slower site or lock finding that {} lacks",
            canary.display(),
            baseline.display()
        )?,
        cli::Format::Text => {
            writeln!(out, "{} regressions in {}:", changes.len(), canary.display())?;
            for c in &changes {
                writeln!(out, "  {c}")?;
            }
        }
        cli::Format::Json => {
            for c in &changes {
                let mut v = serde_json::to_value(c)?;
                v["kind"] = "regression".into();
                v["text"] = c.to_string().into();
                writeln!(out, "{v}")?;
            }
            writeln!(
                out,
                "{}",
                serde_json::json!({"kind": "diff", "regressions": changes.len()})
            )?;
        }
    }
    out.flush()?;
    Ok(u8::from(!changes.is_empty()))
}

/// Odd but legal flag values: said once, then the trace goes on.
fn warn_odd(opts: &TraceOpts) {
    for w in cli::warnings(opts) {
        say!("tracer: warning: {w}");
    }
}

//! `cargo xtask bench [--quick]`: what tracing costs a Go program, and what the agent
//! itself can take.
//!
//! Target side: every workload of `tests/fixtures/bench` runs untraced, under the
//! tracer in each mode, and under Go's own block+mutex profiler and runtime/trace.
//! Runs alternate (untraced, config 1, config 2, ..., untraced, config 1, ...), and
//! the tables quote the median of the per-round ratios against the untraced run of
//! the same round, never an absolute time alone. Each run's size is calibrated so it
//! lasts about the same time under every configuration (ops/s is a rate, so sizes may
//! differ). The realistic workload is the net/http JSON service driven by
//! `tests/fixtures/loadgen` on 127.0.0.1, in requests/s, and the same service with
//! 3,000 generated lock sites; the judged modes' HTTP rows run until their
//! medians are known to within 1%, and the report flags any over its budget.
//!
//! Agent side: the highest event rate drained without a drop (flood workload), what
//! happens beyond it, the agent's CPU time (utime+stime from `/proc/PID/stat`, read
//! once it is a zombie and before it is reaped) and peak RSS (`VmHWM`, sampled while
//! it runs), attach time on a ~100 MB generated Go binary (`tests/fixtures/bigbin`
//! plus generated packages, cached under `build/bench/`), and snapshot time and RSS
//! with 100,000 parked goroutines (`tests/fixtures/many`), and `tracer agent`'s
//! memory and CPU with 50 targets (`tests/fixtures/exits`).
//!
//! Writes `build/bench/results.md` and `build/bench/results.json`, also when a section
//! failed (the task then fails after writing them). `--quick` is the one-iteration
//! smoke run `cargo xtask test` does (tiny sizes, a small generated binary, 1 s HTTP
//! runs): it fails only on real errors (a run that crashes or prints no result),
//! never because a target was missed.
//!
//! Layout: `configs` and `params` say what is measured and how much; `runner` runs
//! one process and measures it; `workloads` holds one file per family of
//! measurement, each a sequence of rounds on the runner; `samples` and `stats` hold
//! what the runs measured and the figures combined from them; `report` turns those
//! into the two results files. This file only sequences the sections and writes the
//! results: a section that fails becomes an error in the results, never a reason to
//! skip the sections after it.
mod configs;
mod params;
mod report;
mod runner;
mod samples;
mod stats;
mod workloads;

use crate::build::{build, go_command};
use crate::setup::{build_dir, root, run, DEFAULT_GO};
use anyhow::{bail, Result};
use params::Params;
use report::Report;
use runner::process::clock_ticks;
use runner::Ctx;
use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::time::Instant;
use workloads::bigbin::bigbin;
use workloads::locksites::locksites_bin;
use workloads::micro::WORKLOADS;

pub fn bench(args: &[String]) -> Result<()> {
    let mut quick = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            other => bail!("bench: unknown argument {other} (usage: cargo xtask bench [--quick])"),
        }
    }
    let started = Instant::now();
    let tracer = build()?;
    let dir = build_dir().join("bench");
    let tmp = dir.join("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let mut bins = Vec::new();
    for name in ["bench", "loadgen", "many", "exits"] {
        let out = dir.join(name);
        run(go_command(DEFAULT_GO)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(root().join("tests/fixtures").join(name)))?;
        bins.push(out);
    }
    let help = ["run", "attach"]
        .iter()
        .filter_map(|sub| Command::new(&tracer).args([sub, "--help"]).output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let mut ctx = Ctx {
        p: Params::new(quick),
        tracer,
        bench: bins[0].clone(),
        loadgen: bins[1].clone(),
        many: bins[2].clone(),
        exits: bins[3].clone(),
        tmp: tmp.clone(),
        seq: 0,
        help,
        na: HashMap::new(),
        slow: HashMap::new(),
        clk_tck: clock_ticks(),
    };

    // A failed section is reported in the results, which are written anyway.
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (w, _, base_n) in WORKLOADS {
        let r = ctx.workload(w, *base_n);
        rows.extend(keep(&mut errors, w, r).unwrap_or_default());
    }
    let sites = keep(&mut errors, "lock-sites service build", locksites_bin());
    let r = ctx.http(sites);
    let http = keep(&mut errors, "httpservice", r).unwrap_or_default();
    let r = ctx.flood();
    let flood = keep(&mut errors, "flood", r).unwrap_or_default();
    let size = ctx.p.bigbin;
    let bin = keep(&mut errors, "large binary build", bigbin(&size));
    let mut attach = Vec::new();
    if let Some(bin) = &bin {
        let r = ctx.attach_times(bin);
        attach = keep(&mut errors, "attach time", r).unwrap_or_default();
    }
    let r = ctx.snapshot();
    let snapshot = keep(&mut errors, "snapshot", r).unwrap_or_default();
    let r = ctx.fleet();
    let fleet = keep(&mut errors, "agent with many targets", r);

    let elapsed = started.elapsed();
    let report = Report {
        ctx: &ctx,
        rows: &rows,
        http: &http.saturated,
        http_rate: &http.fixed,
        sites: &http.sites,
        flood: &flood,
        bin: bin.as_ref(),
        attach: &attach,
        snapshot: &snapshot,
        fleet: fleet.as_ref(),
        errors: &errors,
        elapsed,
    };
    let md = report.markdown();
    fs::write(dir.join("results.md"), &md)?;
    fs::write(dir.join("results.json"), report.json().render() + "\n")?;
    if errors.is_empty() {
        let _ = fs::remove_dir_all(&tmp);
    }
    print!("{md}");
    eprintln!(
        "bench: wrote {} and results.json in {:.0?}",
        dir.join("results.md").display(),
        elapsed
    );
    if !errors.is_empty() {
        bail!(
            "bench: {} section(s) failed (results written without them):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    Ok(())
}

fn keep<T>(errors: &mut Vec<String>, section: &str, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("bench: {section} FAILED: {e:#}");
            errors.push(format!("{section}: {e:#}"));
            None
        }
    }
}

//! `cargo xtask bench`: each workload untraced and traced, runs alternated (A B A B),
//! median ratios against the untraced run of the same bench; a Markdown table and a
//! JSON file under `build/bench/`. `--quick` is the one-iteration smoke run the test
//! suite does so the bench never rots.
use crate::setup::{build_dir, DEFAULT_GO};
use crate::tasks::{build, go_command};
use anyhow::{bail, Context as _, Result};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// (workload, iterations for a full run)
const WORKLOADS: &[(&str, u64)] = &[
    ("pingpong", 300_000),
    ("pipeline", 300_000),
    ("mutex", 5_000_000),
    ("contended", 1_000_000),
    ("select", 200_000),
];

/// How the workload runs: untraced, under the tracer, or with Go's own tools.
const CONFIGS: &[(&str, &[&str])] = &[
    ("untraced", &[]),
    ("tracer parks", &[]),
    ("block+mutex profile", &["-blockprofile"]),
    ("runtime/trace", &["-trace"]),
];

fn ops_per_sec(out: &str) -> Option<f64> {
    out.lines()
        .filter(|l| l.starts_with("result "))
        .find_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("ops_per_sec=")))
        .and_then(|v| v.parse().ok())
}

fn run_once(
    tracer: &Path,
    bench: &Path,
    config: &str,
    flags: &[&str],
    w: &str,
    n: u64,
) -> Result<f64> {
    let n = n.to_string();
    let mut args: Vec<&str> = vec!["-workload", w, "-n", &n];
    args.extend(flags);
    let out = if config.starts_with("tracer") {
        Command::new(tracer)
            .args(["run", "--format", "json", "--"])
            .arg(bench)
            .args(&args)
            .stderr(Stdio::null())
            .output()?
    } else {
        Command::new(bench).args(&args).output()?
    };
    let text = String::from_utf8_lossy(&out.stdout);
    ops_per_sec(&text).with_context(|| format!("{w} ({config}) printed no result: {text}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Snapshot time with many parked goroutines, read from the tracer's own report.
fn snapshot_time(tracer: &Path, many: &Path, n: u64) -> Result<String> {
    let mut child = Command::new(many)
        .args(["-n", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let mut ready = false;
    for line in BufReader::new(out).lines() {
        if line?.starts_with("ready") {
            ready = true;
            break;
        }
    }
    if !ready {
        bail!("many-goroutine fixture never got ready");
    }
    let start = Instant::now();
    let out = Command::new(tracer)
        .args([
            "attach",
            &child.id().to_string(),
            "--format",
            "json",
            "--duration",
            "0s",
        ])
        .output()?;
    let total = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    let snap = err
        .lines()
        .find(|l| l.contains("snapshot:"))
        .unwrap_or("no snapshot line")
        .trim_start_matches("tracer: ")
        .to_string();
    Ok(format!("{snap}; whole attach+report {total:.2?}"))
}

pub fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 5 };
    let tracer = build()?;
    let dir = build_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let bench_bin = dir.join("bench");
    let many_bin = dir.join("many");
    for (src, out) in [
        ("tests/fixtures/bench", &bench_bin),
        ("tests/fixtures/many", &many_bin),
    ] {
        crate::setup::run(
            go_command(DEFAULT_GO)
                .args(["build", "-o"])
                .arg(out)
                .arg(".")
                .current_dir(crate::setup::root().join(src)),
        )?;
    }
    let mut md = String::from(
        "| workload | config | median ops/s | ratio vs untraced |\n|---|---|---:|---:|\n",
    );
    let mut json = Vec::new();
    for (w, full_n) in WORKLOADS {
        let n = if quick { full_n / 100 } else { *full_n };
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
        for _ in 0..reps {
            for (i, (config, flags)) in CONFIGS.iter().enumerate() {
                samples[i].push(run_once(&tracer, &bench_bin, config, flags, w, n)?);
            }
        }
        let base = median(&mut samples[0].clone());
        for (i, (config, _)) in CONFIGS.iter().enumerate() {
            let m = median(&mut samples[i]);
            let ratio = m / base;
            md.push_str(&format!("| {w} | {config} | {m:.0} | {ratio:.3} |\n"));
            json.push(format!(
                "{{\"workload\":\"{w}\",\"config\":\"{config}\",\"ops_per_sec\":{m:.0},\"ratio\":{ratio:.4}}}"
            ));
        }
    }
    let n = if quick { 10_000 } else { 100_000 };
    let snap = snapshot_time(&tracer, &many_bin, n)?;
    md.push_str(&format!("\nSnapshot with {n} parked goroutines: {snap}\n"));
    json.push(format!(
        "{{\"snapshot_goroutines\":{n},\"snapshot\":\"{}\"}}",
        snap.replace('"', "'")
    ));
    std::fs::write(dir.join("results.md"), &md)?;
    let mut f = std::fs::File::create(dir.join("results.json"))?;
    writeln!(f, "[\n  {}\n]", json.join(",\n  "))?;
    print!("{md}");
    eprintln!("bench: wrote {}", dir.join("results.md").display());
    Ok(())
}

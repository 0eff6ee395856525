//! The tasks the README names, each a thin sequence of commands.
use crate::build::{build, cargo, go_command};
use crate::setup::{self, build_dir, go_bin, root, run, DEFAULT_GO, NEWEST_GO, OLDEST_GO};
use anyhow::{bail, Context as _, Result};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn go_build(version: &str, dir: &str, out: &PathBuf) -> Result<()> {
    run(go_command(version)
        .args(["build", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(root().join(dir)))
}

/// Builds the demo service, starts it, attaches the tracer for a few seconds and
/// shows what it sees, then stops the demo.
pub fn demo(args: &[String]) -> Result<()> {
    let tracer = build()?;
    let demo_bin = build_dir().join("demo");
    go_build(DEFAULT_GO, "xtask/demo", &demo_bin)?;
    let mut child = Command::new(&demo_bin)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo service")?;
    let pid = child.id();
    // Wait for the demo to say it is serving, then give it time to leak a little.
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
    std::thread::sleep(Duration::from_secs(2));
    let duration = args.first().cloned().unwrap_or_else(|| "5s".into());
    eprintln!("demo: service running as PID {pid}; tracing it for {duration}\n");
    let status = Command::new(&tracer)
        .args([
            "attach",
            &pid.to_string(),
            "--events",
            "--duration",
            &duration,
        ])
        .args(["--park-threshold", "1s", "--leak-window", "3s"])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let status = status.context("running the tracer")?;
    if !status.success() && status.code() != Some(1) {
        bail!("tracer exited with {status}");
    }
    Ok(())
}

/// The whole suite: unit tests, end-to-end tests against real Go programs on every
/// supported Go version, and a one-iteration smoke run of the benchmark.
pub fn test(args: &[String]) -> Result<()> {
    let start = Instant::now();
    setup::setup(&[
        "--go".into(),
        OLDEST_GO.into(),
        "--go".into(),
        NEWEST_GO.into(),
    ])?;
    let tracer = build()?;
    run(cargo()
        .args(["test", "--release"])
        .args(args)
        .env("TRACER_BIN", &tracer)
        .env("TRACER_GO", go_bin(DEFAULT_GO))
        .env("TRACER_GO_OLDEST", go_bin(OLDEST_GO))
        .env("TRACER_GO_NEWEST", go_bin(NEWEST_GO))
        .env("TRACER_BUILD_DIR", build_dir().join("fixtures"))
        .env("GOCACHE", build_dir().join("gocache"))
        .env("GOPATH", build_dir().join("gopath")))?;
    if args.is_empty() {
        bench(&["--quick".into()])?;
    }
    eprintln!("xtask test: done in {:.0?}", start.elapsed());
    Ok(())
}

pub fn bench(args: &[String]) -> Result<()> {
    crate::bench::bench(args)
}

pub fn lint() -> Result<()> {
    setup::setup(&[])?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        // The eBPF crate is built for the BPF target by the agent's build script;
        // built for the host it has no panic handler to lint.
        "--exclude",
        "tracer-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(())
}

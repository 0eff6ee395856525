//! The tasks the README names, each a thin sequence of commands.
use crate::setup::{self, build_dir, go_bin, root, run, DEFAULT_GO, HOST_TOOLCHAIN, OLDEST_GO};
use anyhow::{bail, Context as _, Result};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo +<pinned>` with bpf-linker on PATH, for every build of the agent.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{HOST_TOOLCHAIN}")).current_dir(root());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![setup::tools_bin()];
    paths.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(paths).expect("PATH"));
    cmd
}

/// Environment for building Go programs: everything inside the build tree, no
/// network, no toolchain switching.
pub fn go_command(version: &str) -> Command {
    let mut cmd = Command::new(go_bin(version));
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", build_dir().join("gocache"))
        .env("GOPATH", build_dir().join("gopath"))
        .env("GOPROXY", "off");
    cmd
}

pub fn tracer_bin() -> PathBuf {
    root().join("target").join("release").join("tracer")
}

pub fn build() -> Result<PathBuf> {
    setup::setup(&[])?;
    run(cargo().args(["build", "--release", "-p", "tracer"]))?;
    Ok(tracer_bin())
}

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
    setup::setup(&["--go".into(), OLDEST_GO.into()])?;
    let tracer = build()?;
    run(cargo()
        .args(["test", "--release"])
        .args(args)
        .env("TRACER_BIN", &tracer)
        .env("TRACER_GO", go_bin(DEFAULT_GO))
        .env("TRACER_GO_OLDEST", go_bin(OLDEST_GO))
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

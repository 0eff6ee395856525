//! Builds shared by the tasks and the bench: the agent with the pinned toolchain
//! and bpf-linker, and Go programs inside the build tree. Nothing here runs what it
//! builds, and it depends on `setup` alone, so that `tasks` and `bench` can both use
//! it while `bench` never reaches back into `tasks`.
use crate::setup::{self, build_dir, go_bin, root, run, HOST_TOOLCHAIN};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

/// `cargo +<pinned>` with bpf-linker on PATH, for every build of the agent.
pub fn cargo() -> Command {
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

//! `cargo xtask layouts [VERSION...]`: installs each Go (default: one per supported
//! minor), builds the reference program of `tracer-inspect/src/layouts.rs` with it
//! and writes the offsets, statuses and wait reasons its DWARF and data give into
//! `tracer-inspect/src/layouts.txt`, the table used for binaries without DWARF.
use crate::build::{cargo, go_command};
use crate::setup::{self, go_bin, root, run};
use anyhow::Result;

/// One Go per minor the tracer supports, newest patch release of each.
pub const GO_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

pub fn layouts(args: &[String]) -> Result<()> {
    let versions: Vec<String> = if args.is_empty() {
        GO_VERSIONS.iter().map(|v| v.to_string()).collect()
    } else {
        args.to_vec()
    };
    let mut setup_args = Vec::new();
    for v in &versions {
        setup_args.extend(["--go".to_string(), v.clone()]);
    }
    setup::setup(&setup_args)?;
    // The same environment as every Go build of the tasks (offline, caches in build/).
    let go_env = go_command(&versions[0]);
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "tracer-inspect",
        "--example",
        "layouts",
        "--",
    ])
    .arg(root().join("tracer-inspect/src/layouts.txt"));
    for v in &versions {
        cmd.arg(go_bin(v));
    }
    for (k, v) in go_env.get_envs().filter_map(|(k, v)| Some((k, v?))) {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

//! Builds the kernel programs (`tracer-ebpf`) with the pinned nightly and bpf-linker,
//! so the agent can embed the object file. `cargo xtask setup` installs both.
use anyhow::{anyhow, Context as _};

/// The nightly that builds the eBPF crate; `xtask` installs the same one.
const EBPF_TOOLCHAIN: &str = "nightly-2026-10-25";

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest)
        .parent()
        .ok_or_else(|| anyhow!("no workspace root"))?
        .join("tracer-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    println!("cargo::rerun-if-changed=../tracer-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
}

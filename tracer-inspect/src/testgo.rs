//! Test support: building real Go programs with the project's toolchains.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Go a test builds with by default: `TRACER_GO`, else the pinned one in the
/// build tree.
pub fn default_go() -> PathBuf {
    std::env::var_os("TRACER_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/go-1.26.6/bin/go"))
}

/// The oldest supported Go: `TRACER_GO_OLDEST`, else the one in the build tree.
pub fn oldest_go() -> PathBuf {
    std::env::var_os("TRACER_GO_OLDEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/go-1.21.13/bin/go"))
}

/// Every toolchain to test with: the default one and, when present, the oldest.
pub fn go_paths() -> Vec<PathBuf> {
    let mut v = vec![default_go()];
    let oldest = oldest_go();
    if oldest.exists() && !v.contains(&oldest) {
        v.push(oldest);
    }
    v
}

/// `go` in `dir`, offline, with caches outside the source tree unless set.
pub fn go_cmd(go: &Path, dir: &Path) -> Command {
    let mut c = Command::new(go);
    let cache_root = std::env::temp_dir().join("tracer-inspect-go");
    c.current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "on");
    if std::env::var_os("GOCACHE").is_none() {
        c.env("GOCACHE", cache_root.join("cache"));
    }
    if std::env::var_os("GOPATH").is_none() {
        c.env("GOPATH", cache_root.join("gopath"));
    }
    c
}

/// A fresh directory for this test process under the temp dir. Fixtures live in
/// statics that are never dropped, so directories left by earlier runs (whose
/// process is gone) are removed here.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
                continue;
            };
            let pid = rest.trim_start_matches('-').split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = tmp.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}

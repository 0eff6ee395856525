//! Go's own standard-library test suites (`go test -c`) under `--mode locks`
//! with every lock site on: correct code that locks in every way the standard
//! library does (the fork lock, RWMutexes, sync.Cond, pools, contexts). No lock
//! finding may come out of them: each would be a false alarm.
//!
//! All but `context` are ignored for now (cargo test's `--ignored` runs them): `context` is
//! clean; `sync` has one true finding (TestRLocker read-locks twice through
//! RLocker on purpose), `os/exec` exits 1 under the tracer, and `database/sql`
//! and `net/http` take over 4 minutes each with every lock site on.
use std::path::PathBuf;
use std::time::Duration;
use tracer_tests::*;

/// `go test -c` of a standard-library package with the default Go.
fn std_test_binary(pkg: &str) -> PathBuf {
    let name = pkg.replace('/', "_");
    let out = std::env::temp_dir().join(format!("std-{name}-{}.test", std::process::id()));
    let status = std::process::Command::new(Go::Default.bin())
        .args(["test", "-c", "-o"])
        .arg(&out)
        .arg(pkg)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("go test -c");
    assert!(status.success(), "go test -c {pkg}");
    out
}

/// Runs the package's tests (`-test.short`, those matching `run`) under
/// `tracer run --mode locks --budget 0` and checks that it reports no lock
/// finding and that the tests passed.
fn no_lock_finding(pkg: &str, run: &str) {
    let bin = std_test_binary(pkg);
    let bin_s = bin.to_str().unwrap();
    let mut args = vec![
        "run",
        "--mode",
        "locks",
        "--budget",
        "0",
        "--format",
        "json",
        "--",
        bin_s,
        "-test.short",
        "-test.count",
        "1",
    ];
    if !run.is_empty() {
        args.extend(["-test.run", run]);
    }
    let (code, out, err) = run_tracer(&args, Duration::from_secs(240));
    let _ = std::fs::remove_file(&bin);
    assert_eq!(
        code, 0,
        "{pkg}: the tests failed under the tracer: {err}\n{out}"
    );
    let locks: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "lock")
        .collect();
    assert!(locks.is_empty(), "{pkg}: false lock findings: {locks:?}");
    let summary = json_line(&out, "summary");
    assert!(
        summary["probe_hits"]["lock_sites"].as_u64() > Some(0),
        "{pkg}: no lock site was hit: {summary}"
    );
}

#[test]
#[ignore = "TestRLocker read-locks recursively on purpose"]
fn sync_tests_have_no_lock_finding() {
    no_lock_finding("sync", "");
}

#[test]
fn context_tests_have_no_lock_finding() {
    no_lock_finding("context", "");
}

#[test]
#[ignore = "the suite exits 1 under the tracer: not investigated yet"]
fn os_exec_tests_have_no_lock_finding() {
    no_lock_finding("os/exec", "");
}

#[test]
#[ignore = "over 4 minutes with every lock site on"]
fn database_sql_tests_have_no_lock_finding() {
    no_lock_finding("database/sql", "");
}

#[test]
#[ignore = "over 4 minutes with every lock site on"]
fn net_http_tests_have_no_lock_finding() {
    // The client and server tests (the whole suite takes minutes under -short).
    no_lock_finding("net/http", "^Test(Client|Server|Transport)");
}

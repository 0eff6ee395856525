//! Go's own standard-library test suites (`go test -c`, run in the package's
//! source directory as `go test` runs them) under `--mode locks` with every
//! lock site on: code that locks in every way the standard library does (the
//! fork lock, RWMutexes, sync.Cond, pools, contexts, locks released by another
//! goroutine). Each suite must pass under the tracer and give only its true
//! leftovers, each named here with why it is true; anything else would be a
//! false alarm.
use std::path::PathBuf;
use std::time::Duration;
use tracer_tests::*;

/// `go test -c` of a standard-library package with the default Go, and the
/// package's source directory (its tests read their testdata from there).
fn std_test_binary(pkg: &str) -> (PathBuf, PathBuf) {
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
    let goroot = std::process::Command::new(Go::Default.bin())
        .args(["env", "GOROOT"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go env GOROOT");
    let goroot = String::from_utf8_lossy(&goroot.stdout).trim().to_string();
    (out, PathBuf::from(goroot).join("src").join(pkg))
}

/// Runs the package's tests (`-test.short`, those matching `run`) under
/// `tracer run --mode locks --budget 0`, checks that they passed and that lock
/// sites were hit, and returns the lock findings.
fn lock_findings(pkg: &str, run: &str) -> Vec<serde_json::Value> {
    lock_findings_n(pkg, run, 1)
}

/// [`lock_findings`] with each test run `count` times.
fn lock_findings_n(pkg: &str, run: &str, count: u32) -> Vec<serde_json::Value> {
    let (bin, dir) = std_test_binary(pkg);
    let count = count.to_string();
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
        &count,
    ];
    if !run.is_empty() {
        args.extend(["-test.run", run]);
    }
    let (code, out, err) = finish(
        tracer().args(&args).current_dir(&dir).env("PWD", &dir),
        Duration::from_secs(300),
    );
    let _ = std::fs::remove_file(&bin);
    assert_eq!(
        code, 0,
        "{pkg}: the tests failed under the tracer: {err}\n{out}"
    );
    let summary = json_line(&out, "summary");
    assert!(
        summary["probe_hits"]["lock_sites"].as_u64() > Some(0),
        "{pkg}: no lock site was hit: {summary}"
    );
    json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "lock")
        .collect()
}

fn site_function(f: &serde_json::Value) -> &str {
    f["site"]["function"].as_str().unwrap_or("")
}

fn classes(f: &serde_json::Value) -> Vec<&str> {
    f["classes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn context_tests_have_no_lock_finding() {
    let found = lock_findings("context", "");
    assert!(found.is_empty(), "false lock findings: {found:#?}");
}

#[test]
fn os_exec_tests_have_no_lock_finding() {
    // The fork lock's protocol (its write lock shared by concurrent forks).
    let found = lock_findings("os/exec", "");
    assert!(found.is_empty(), "false lock findings: {found:#?}");
}

#[test]
fn sync_tests_give_only_the_recursive_read_lock_of_test_rlocker() {
    // TestRLocker read-locks twice through RLocker, on purpose: a recursive
    // read lock, which the sync docs forbid.
    let found = lock_findings("sync", "");
    assert!(!found.is_empty(), "TestRLocker's recursive RLock not seen");
    for f in &found {
        assert!(
            f["rule"] == "self_deadlock"
                && f["read"] == true
                && site_function(f).starts_with("sync_test.TestRLocker"),
            "a finding besides TestRLocker's: {f}"
        );
    }
}

#[test]
fn a_write_lock_unlocked_by_another_goroutine_while_its_owner_locks_again_is_released() {
    // TestRLocker's goroutine read-locks the RWMutex again while the test
    // unlocks the write lock it took: two goroutines' edits of one held set at
    // once. When both wrote the set, a few percent of the runs left the write
    // hold in it, reported as a missing Unlock.
    let found = lock_findings_n("sync", "^TestRLocker$", 1000);
    let other: Vec<_> = found
        .iter()
        .filter(|f| f["rule"] != "self_deadlock")
        .collect();
    assert!(
        other.is_empty(),
        "{} false findings, first: {}",
        other.len(),
        other[0]
    );
    assert_eq!(found.len(), 1000, "one recursive RLock per run");
}

#[test]
fn net_http_tests_give_only_the_locks_their_tests_never_unlock() {
    // testTransportDialTLS, ...DialTLSContext and ...DialContext end with
    // `mu.Lock()` and no Unlock: each ends holding the lock.
    let found = lock_findings("net/http", "");
    assert!(!found.is_empty(), "the tests' unreleased locks not seen");
    for f in &found {
        assert!(
            f["rule"] == "exited_holding_lock"
                && site_function(f).starts_with("net/http_test.testTransportDial"),
            "a finding besides the dial tests' locks: {f}"
        );
    }
}

#[test]
fn database_sql_tests_give_only_its_true_lock_orders() {
    // database/sql's own lock orders, each a real cycle or recursion that a
    // protocol keeps from hanging:
    // - Stmt.mu -> DB.mu -> driverConn -> Stmt.mu (finalClose/connStmt, then
    //   noteUnusedDriverStatement, then prepareOnConnLocked under withLock(dc)):
    //   noteUnusedDriverStatement locks the conn only when it is not in use;
    // - Tx.closemu (read) -> Tx.stmts -> Stmt.closemu -> Tx.closemu (read), and
    //   the same through Conn.closemu;
    // - Tx.closemu and Conn.closemu read-locked again by one goroutine with two
    //   open Rows (grabConn): a writer (Rollback) cancels the Rows first.
    // A Tx rolled back while its goroutine's read lock is released by the
    // context's watcher goroutine is no self-deadlock (it never hangs).
    let own = [
        "database/sql.Stmt.mu",
        "database/sql.DB.mu",
        "database/sql.driverConn.Mutex",
        "database/sql.Stmt.closemu",
        "database/sql.Tx.closemu",
        "database/sql.Conn.closemu",
        "database/sql.Tx.stmts.Mutex",
    ];
    let found = lock_findings("database/sql", "");
    assert!(!found.is_empty(), "database/sql's lock orders not seen");
    for f in &found {
        let known = match f["rule"].as_str() {
            Some("lock_order_inversion") => classes(f).iter().all(|c| own.contains(c)),
            Some("self_deadlock") => f["read"] == true && site_function(f).ends_with(").grabConn"),
            _ => false,
        };
        assert!(known, "a finding besides database/sql's own: {f}");
    }
    // One report per shape of cycle, not one per statement object.
    let inversions = found
        .iter()
        .filter(|f| f["rule"] == "lock_order_inversion")
        .count();
    assert!(inversions <= 6, "{inversions} inversions: {found:#?}");
}

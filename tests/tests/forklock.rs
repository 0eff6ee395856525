//! The standard library's fork lock (`syscall.acquireForkLock` /
//! `releaseForkLock`) takes its two locks in both orders and shares a write lock
//! between goroutines, safely: a program that starts subprocesses concurrently
//! gets no lock finding, and the edges left out are counted.
use tracer_tests::*;

fn execuser_is_clean_under_locks_mode(go: Go) {
    let bin = build_fixture("execuser", go, &[]);
    for _ in 0..3 {
        let (code, out, err) = run_locks_mode(&bin, &[]);
        let locks: Vec<_> = json_lines(&out)
            .into_iter()
            .filter(|v| v["kind"] == "lock")
            .collect();
        assert!(locks.is_empty(), "{locks:?}");
        assert_eq!(code, 0, "{err}");
        let summary = json_line(&out, "summary");
        assert!(
            summary["probe_hits"]["lock_edges_safe_by_protocol"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "the fork lock was never seen: {summary}"
        );
    }
}

#[test]
fn fork_lock_is_no_lock_bug_default_go() {
    execuser_is_clean_under_locks_mode(Go::Default);
}

#[test]
fn fork_lock_is_no_lock_bug_oldest_go() {
    execuser_is_clean_under_locks_mode(Go::Oldest);
}

//! A recursive read lock is a deadlock waiting for a writer: reported when it
//! happens, with no writer waiting. One taken with TryRLock, which never
//! blocks, is not.
use tracer_tests::*;

fn recursive_rlock_is_reported(go: Go, flags: &[&str]) {
    let bin = build_fixture("rlocktwice", go, flags);
    let (code, out, err) = run_locks_mode(&bin, &[]);
    assert_eq!(code, 1, "{err}{out}");
    let found: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "lock" && v["rule"] == "self_deadlock")
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one self_deadlock (get's), none for peek's TryRLock: {out}"
    );
    let finding = &found[0];
    assert_eq!(finding["read"], true, "{finding}");
    assert_eq!(
        finding["waiting_writer"],
        serde_json::Value::Null,
        "{finding}"
    );
    let in_get = finding["stack"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["function"] == "main.(*cache).get");
    assert!(in_get, "{finding}");
}

#[test]
fn recursive_rlock_default_go() {
    recursive_rlock_is_reported(Go::Default, &[]);
}

#[test]
fn recursive_rlock_oldest_go() {
    recursive_rlock_is_reported(Go::Oldest, &[]);
}

#[test]
fn recursive_rlock_oldest_go_without_inlining() {
    recursive_rlock_is_reported(Go::Oldest, &["-gcflags=all=-l"]);
}

#[test]
fn recursive_rlock_newest_go() {
    recursive_rlock_is_reported(Go::Newest, &[]);
}

#[test]
fn recursive_rlock_newest_go_without_inlining() {
    recursive_rlock_is_reported(Go::Newest, &["-gcflags=all=-l"]);
}

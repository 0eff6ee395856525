//! A goroutine that returns without its Unlock: reported with where it took the
//! lock, once it is gone.
use tracer_tests::*;

fn missing_unlock_is_reported(go: Go, flags: &[&str]) {
    let bin = build_fixture("lockleak", go, flags);
    let (code, out, err) = run_locks_mode(&bin, &["-run", "3s"]);
    assert_eq!(code, 1, "{err}{out}");
    let finding = json_lines(&out)
        .into_iter()
        .find(|v| v["kind"] == "lock" && v["rule"] == "exited_holding_lock")
        .unwrap_or_else(|| panic!("no exited_holding_lock in {out}"));
    assert_eq!(finding["read"], false, "{finding}");
    assert_eq!(
        finding["site"]["function"], "main.(*store).put",
        "{finding}"
    );
    assert!(
        finding["site"]["file"]
            .as_str()
            .unwrap()
            .ends_with("lockleak/main.go"),
        "{finding}"
    );
}

#[test]
fn missing_unlock_default_go() {
    missing_unlock_is_reported(Go::Default, &[]);
}

#[test]
fn missing_unlock_oldest_go() {
    missing_unlock_is_reported(Go::Oldest, &[]);
}

#[test]
fn missing_unlock_oldest_go_without_inlining() {
    missing_unlock_is_reported(Go::Oldest, &["-gcflags=all=-l"]);
}

#[test]
fn missing_unlock_newest_go() {
    missing_unlock_is_reported(Go::Newest, &[]);
}

#[test]
fn missing_unlock_newest_go_without_inlining() {
    missing_unlock_is_reported(Go::Newest, &["-gcflags=all=-l"]);
}

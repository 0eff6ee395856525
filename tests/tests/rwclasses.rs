//! RWMutex write locks are named by the user's call sites: `RWMutex.Lock` is
//! never inlined (nor is any lock method with `-gcflags=all=-l`), and its
//! probe's own line in `sync` would make every RWMutex one lock class, and, on
//! Go 1.21 without inlining, its inner `w.Lock()` a self-deadlock. And lock
//! classes are the mutex's field in its type where the code says it, so two
//! types locked in both orders on different objects are an inversion.
use std::path::Path;
use tracer_tests::*;

/// The line of `main.go` marked `// site:NAME` in the fixture.
fn marked_line(name: &str) -> u64 {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rwclasses/main.go"),
    )
    .expect("reading the fixture");
    let mark = format!("// site:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&mark))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no {mark} in the fixture"))
}

fn lock_findings(out: &str) -> Vec<serde_json::Value> {
    json_lines(out)
        .into_iter()
        .filter(|v| v["kind"] == "lock")
        .collect()
}

fn at(frame: &serde_json::Value) -> (String, u64) {
    let file = frame["file"].as_str().unwrap_or("");
    let file = file.rsplit('/').next().unwrap_or(file).to_string();
    (file, frame["line"].as_u64().unwrap_or(0))
}

/// The one lock finding of a fixture case that must fail `--fail-on lock`.
fn the_finding(bin: &Path, case: &str, ctx: &str) -> serde_json::Value {
    let (code, out, err) = run_locks_mode(bin, &["-case", case]);
    assert_eq!(code, 1, "{ctx}: --fail-on lock must fail: {err}\n{out}");
    let mut findings = lock_findings(&out);
    assert_eq!(findings.len(), 1, "{ctx}: {findings:#?}");
    findings.remove(0)
}

/// Each edge's (held at, acquired at), sorted.
fn edge_sites(f: &serde_json::Value) -> Vec<((String, u64), (String, u64))> {
    let mut edges: Vec<_> = f["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| (at(&e["held_at"]), at(&e["acquired_at"])))
        .collect();
    edges.sort();
    edges
}

/// The finding's lock classes, sorted.
fn classes(f: &serde_json::Value) -> Vec<&str> {
    let mut classes: Vec<&str> = f["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    classes.sort();
    classes
}

fn rwmutex_sites_are_user_sites(go: Go, flags: &[&str]) {
    let bin = build_fixture("rwclasses", go, flags);
    let ctx = format!("{go:?} {flags:?}");

    // Two unrelated RWMutexes in one order, on two code paths: nothing.
    let (code, out, err) = run_locks_mode(&bin, &["-case", "consistent"]);
    assert_eq!(
        lock_findings(&out),
        Vec::<serde_json::Value>::new(),
        "{ctx}"
    );
    assert_eq!(code, 0, "{ctx}: {err}");

    // A real RWMutex/Mutex inversion: found, at the user's lines.
    let f = the_finding(&bin, "inversion", &ctx);
    assert_eq!(f["rule"], "lock_order_inversion", "{ctx}: {f}");
    let site = |name| ("main.go".to_string(), marked_line(name));
    let mut want = vec![
        (site("write-store"), site("write-journal")),
        (site("flush-journal"), site("flush-store")),
    ];
    want.sort();
    assert_eq!(edge_sites(&f), want, "{ctx}: {f}");
    let names = classes(&f);
    assert!(
        names.iter().all(|c| c.starts_with("main.")),
        "{ctx}: a class in sync: {names:?}"
    );

    // Account then Ledger in debit, Ledger then Account in audit, on other
    // objects: one class-level inversion named by the two fields.
    let f = the_finding(&bin, "types", &ctx);
    assert_eq!(
        (&f["rule"], &f["level"]),
        (&"lock_order_inversion".into(), &"class".into()),
        "{ctx}: {f}"
    );
    assert_eq!(
        classes(&f),
        ["main.Account.mu", "main.Ledger.mu"],
        "{ctx}: {f}"
    );
    let mut want = vec![
        (site("debit-account"), site("debit-ledger")),
        (site("audit-ledger"), site("audit-account")),
    ];
    want.sort();
    assert_eq!(edge_sites(&f), want, "{ctx}: {f}");
}

#[test]
fn rwmutex_sites_default_go() {
    rwmutex_sites_are_user_sites(Go::Default, &[]);
}

#[test]
fn rwmutex_sites_default_go_without_inlining() {
    rwmutex_sites_are_user_sites(Go::Default, &["-gcflags=all=-l"]);
}

#[test]
fn rwmutex_sites_newest_go() {
    rwmutex_sites_are_user_sites(Go::Newest, &[]);
}

#[test]
fn rwmutex_sites_newest_go_without_inlining() {
    rwmutex_sites_are_user_sites(Go::Newest, &["-gcflags=all=-l"]);
}

#[test]
fn rwmutex_sites_oldest_go() {
    rwmutex_sites_are_user_sites(Go::Oldest, &[]);
}

#[test]
fn rwmutex_sites_oldest_go_without_inlining() {
    rwmutex_sites_are_user_sites(Go::Oldest, &["-gcflags=all=-l"]);
}

#[test]
fn rwmutex_sites_oldest_go_debug_build() {
    // -N -l: no optimisation either; every lock method is a call.
    rwmutex_sites_are_user_sites(Go::Oldest, &["-gcflags=all=-N -l"]);
}

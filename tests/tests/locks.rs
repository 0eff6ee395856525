//! Lock scenarios (`tests/fixtures/locks`) through `tracer run --mode locks`: each
//! bug is reported with the right locks, and the negative cases stay silent.
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tracer_tests::*;

/// Runs the fixture under the tracer; returns the fixture's case summaries (by
/// name) and the tracer's lock findings.
fn run_locks(
    go: Go,
    build_flags: &[&str],
    only: &str,
) -> (HashMap<String, Record>, Vec<serde_json::Value>) {
    let (cases, findings, _) = run_locks_budget(go, build_flags, only, "5");
    (cases, findings)
}

/// Also returns the `budget` line.
fn run_locks_budget(
    go: Go,
    build_flags: &[&str],
    only: &str,
    budget: &str,
) -> (
    HashMap<String, Record>,
    Vec<serde_json::Value>,
    serde_json::Value,
) {
    let bin = build_fixture("locks", go, build_flags);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--mode",
            "locks",
            "--lock-budget",
            budget,
            "--format",
            "json",
            "--",
            bin.to_str().unwrap(),
            "-only",
            only,
            "-exit-after",
            "500ms",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "{err}");
    let cases = out
        .lines()
        .filter(|l| l.starts_with("lockcase ") && l.contains("kind=summary"))
        .map(parse_record)
        .map(|r| (r.get("name").to_string(), r))
        .collect();
    let findings = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "lock")
        .collect();
    (cases, findings, json_line(&out, "budget"))
}

fn addr(r: &Record, key: &str) -> u64 {
    u64::from_str_radix(r.get(key).trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("{key} in {r:?}"))
}

fn locks_of(f: &serde_json::Value) -> BTreeSet<u64> {
    f["locks"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default()
}

fn inversion<'a>(
    findings: &'a [serde_json::Value],
    level: &str,
    locks: &BTreeSet<u64>,
) -> Option<&'a serde_json::Value> {
    findings.iter().find(|f| {
        f["rule"] == "lock_order_inversion"
            && f["level"] == level
            && (level == "class" || &locks_of(f) == locks)
    })
}

fn check_all(go: Go, build_flags: &[&str], class_level: bool, budget: &str) {
    let (cases, findings, budget_line) = run_locks_budget(
        go,
        build_flags,
        "abba,abba_deadlock,three,class,double,rwrecursive,negative",
        budget,
    );
    let case = |n: &str| {
        cases
            .get(n)
            .unwrap_or_else(|| panic!("no summary for {n}: {cases:?}"))
    };
    let ctx = serde_json::to_string_pretty(&findings).unwrap();
    if budget != "0" {
        // The negative cases lock in loops: the budget turns the lock sites off
        // after the deadlock has formed, and the deadlock must still be reported
        // (from the held sets kept at the switch).
        assert!(
            budget_line["lock_sites_switched_off"].as_u64().unwrap_or(0) > 0,
            "the lock sites were never switched off: {budget_line}"
        );
    }

    let abba = case("abba");
    let ab = BTreeSet::from([addr(abba, "mutexA"), addr(abba, "mutexB")]);
    let f =
        inversion(&findings, "instance", &ab).unwrap_or_else(|| panic!("abba not reported: {ctx}"));
    assert_eq!(f["edges"].as_array().unwrap().len(), 2);
    assert!(
        f["edges"][0]["stack"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "edge without a stack: {f}"
    );

    let dl = case("abba_deadlock");
    let ab = BTreeSet::from([addr(dl, "mutexA"), addr(dl, "mutexB")]);
    assert!(
        inversion(&findings, "instance", &ab).is_some(),
        "abba_deadlock inversion: {ctx}"
    );
    let goids: BTreeSet<u64> = dl
        .get("goids")
        .split(',')
        .map(|g| g.parse().unwrap())
        .collect();
    let deadlock = findings
        .iter()
        .find(|f| f["rule"] == "deadlock")
        .unwrap_or_else(|| panic!("no deadlock finding: {ctx}"));
    let in_cycle: BTreeSet<u64> = deadlock["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["goid"].as_u64().unwrap())
        .collect();
    assert_eq!(in_cycle, goids, "{deadlock}");
    let locks: BTreeSet<u64> = deadlock["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lock"].as_u64().unwrap())
        .collect();
    assert_eq!(locks, ab, "{deadlock}");

    let three = case("three");
    let abc = BTreeSet::from([
        addr(three, "mutexA"),
        addr(three, "mutexB"),
        addr(three, "mutexC"),
    ]);
    assert!(
        inversion(&findings, "instance", &abc).is_some(),
        "three-lock cycle: {ctx}"
    );

    if class_level {
        let f = inversion(&findings, "class", &BTreeSet::new())
            .unwrap_or_else(|| panic!("no class inversion: {ctx}"));
        let mut classes: Vec<&str> = f["classes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        classes.sort();
        if build_flags.iter().any(|f| f.contains("-w")) {
            // Without DWARF, no field names: the acquisition sites.
            assert!(
                classes.iter().any(|c| c.contains("(*X)"))
                    && classes.iter().any(|c| c.contains("(*Y)")),
                "{f}"
            );
        } else {
            // Named by the mutexes' fields in their types.
            assert_eq!(classes, ["main.X.mu", "main.Y.mu"], "{f}");
        }
    }

    let m = addr(case("double"), "mutexM");
    assert!(
        findings.iter().any(|f| f["rule"] == "self_deadlock"
            && f["lock"].as_u64() == Some(m)
            && f["read"] == false),
        "double Lock not reported: {ctx}"
    );
    let rw = addr(case("rwrecursive"), "mutexRW");
    assert!(
        findings.iter().any(|f| f["rule"] == "self_deadlock"
            && f["lock"].as_u64() == Some(rw)
            && f["read"] == true),
        "recursive RLock not reported: {ctx}"
    );

    // Nothing is reported from the negative cases' code. (Addresses are not
    // compared: the GC may give a negative case's mutex the address of an earlier
    // case's.)
    for f in &findings {
        let text = f.to_string();
        assert!(
            !text.contains("negativeCase") && !text.contains("main.lockPair"),
            "false report on a negative case: {f}"
        );
    }
}

#[test]
fn lock_bugs_found_default_go() {
    check_all(Go::Default, &[], true, "5");
}

#[test]
fn lock_bugs_found_oldest_go() {
    check_all(Go::Oldest, &[], true, "5");
}

#[test]
fn lock_bugs_found_without_inlining() {
    // Out-of-line Lock methods are probed at their entry, and each hit is named by
    // the call that made it: class names are the callers', as when inlined. Every
    // acquisition goes through the one out-of-line Lock method, which the budget
    // can only turn off as a whole: run without a budget.
    check_all(Go::Default, &["-gcflags=-l"], true, "0");
}

#[test]
fn lock_bugs_found_without_dwarf() {
    // -ldflags=-w: lock sites from the pclntab's inline trees, mutex layouts from
    // the table of Go minors (the budget's switching is the default build's, and
    // tested there: every site stays on).
    check_all(Go::Default, &["-ldflags=-w"], true, "0");
    // -ldflags='-s -w': go:func.* from the module data too.
    check_all(Go::Default, &["-ldflags=-s -w"], true, "0");
}

#[test]
fn lock_bugs_found_without_dwarf_oldest_go() {
    check_all(Go::Oldest, &["-ldflags=-w"], true, "0");
    check_all(Go::Oldest, &["-ldflags=-s -w"], true, "0");
}

#[test]
fn non_overlapping_abba_is_caught_every_run() {
    for run in 0..10 {
        let (cases, findings) = run_locks(Go::Default, &[], "abba");
        let abba = &cases["abba"];
        let ab = BTreeSet::from([addr(abba, "mutexA"), addr(abba, "mutexB")]);
        assert!(
            inversion(&findings, "instance", &ab).is_some(),
            "run {run}: {findings:?}"
        );
    }
}

#[test]
fn sampled_lock_sites_report_nothing_on_a_correct_service() {
    // The bench's net/http service locks correctly; under load, with a budget that
    // switches the lock sites off and on, any lock finding would be invented by a
    // switch (a Lock seen without its Unlock).
    let svc_bin = build_fixture("bench", Go::Default, &[]);
    let lg_bin = build_fixture("loadgen", Go::Default, &[]);
    let mut svc = start_fixture(&svc_bin, &["-workload", "httpservice"]);
    let listen = svc
        .wait_line(Duration::from_secs(30), |l| l.starts_with("listen "))
        .expect("listen line");
    let addr = parse_record(&listen).get("addr").to_string();
    let mut load = std::process::Command::new(&lg_bin)
        .args(["-addr", &addr, "-duration", "8s", "-conns", "8"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting loadgen");
    let pid = svc.pid().to_string();
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--mode",
            "locks",
            "--format",
            "json",
            "--duration",
            "5s",
            "--budget",
            "2",
        ],
        Duration::from_secs(60),
    );
    let _ = load.kill();
    let _ = load.wait();
    assert_eq!(code, 0, "{err}");
    let lines = json_lines(&out);
    let findings: Vec<&serde_json::Value> = lines.iter().filter(|v| v["kind"] == "lock").collect();
    assert!(findings.is_empty(), "invented lock findings: {findings:?}");
    let budget = json_line(&out, "budget");
    assert!(
        budget["lock_sites_switched_off"].as_u64().unwrap() > 0,
        "the lock sites were never switched: {budget}"
    );
}

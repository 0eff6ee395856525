//! Stuck-goroutine scenarios, in attach mode and in run mode, checked through the
//! JSON report against what each fixture says about itself.
use std::time::Duration;
use tracer_tests::*;

fn summary(out: &str) -> serde_json::Value {
    json_line(out, "summary")
}

fn attach_mode(go: Go, only: &str, delay: bool) {
    attach_in(go, only, delay, "parks");
}

fn attach_in(go: Go, only: &str, delay: bool, mode: &str) -> String {
    attach_with(go, only, delay, mode, &[])
}

fn attach_with(go: Go, only: &str, delay: bool, mode: &str, extra: &[&str]) -> String {
    let bin = build_fixture("scenarios", go, &[]);
    let mut args = vec!["-only", only];
    if delay {
        args.extend(["-delay", "1s"]);
    }
    let mut fixture = start_fixture(&bin, &args);
    let pid = fixture.pid().to_string();
    // Attached before the goroutines block (probes) or after (snapshot).
    let mut tracer_args = vec![
        "attach",
        &pid,
        "--format",
        "json",
        "--verbose",
        "--duration",
        "4s",
        "--park-threshold",
        "500ms",
        "--mode",
        mode,
    ];
    tracer_args.extend_from_slice(extra);
    let (records, (code, out, err)) = if delay {
        let handle = std::thread::spawn({
            let a: Vec<String> = tracer_args.iter().map(|s| s.to_string()).collect();
            move || {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                run_tracer(&a, Duration::from_secs(60))
            }
        });
        let records = fixture.until_ready();
        (records, handle.join().unwrap())
    } else {
        let records = fixture.until_ready();
        (records, run_tracer(&tracer_args, Duration::from_secs(60)))
    };
    assert_eq!(code, 0, "{err}");
    check_expectations(&records, &out, "long_parked");
    assert_eq!(summary(&out)["drops"].as_u64(), Some(0));
    out
}

fn budget_line(out: &str) -> serde_json::Value {
    json_line(out, "budget")
}

#[test]
fn scenarios_found_with_the_park_probes_sampled() {
    // A budget no probe fits in: the park probes are off after their first 300 ms,
    // and every leak is still found, from the memory reads.
    let out = attach_with(Go::Default, ALL, true, "parks", &["--budget", "0.001"]);
    let on = budget_line(&out)["park_probes_on"].as_f64().unwrap();
    assert!(on < 0.5, "park probes on {on} of the time: {out}");
}

const ALL: &str = "send,recv,wgfanout,rangeopen,circular,nilchan,timeout,panicrecover";

#[test]
fn scenarios_found_live_by_probes() {
    attach_mode(Go::Default, ALL, true);
}

#[test]
fn scenarios_found_by_snapshot_when_stuck_before_attach() {
    attach_mode(Go::Default, ALL, false);
}

#[test]
fn scenarios_found_in_watch_mode() {
    // One probe per park, goroutines read from memory every second.
    attach_in(Go::Default, ALL, true, "watch");
}

#[test]
fn scenarios_found_by_snapshot_mode_alone() {
    let bin = build_fixture("scenarios", Go::Default, &[]);
    let mut fixture = start_fixture(&bin, &["-only", ALL]);
    let records = fixture.until_ready();
    let pid = fixture.pid().to_string();
    // No probes: the threshold is met by the runtime's own notion of time parked
    // only once measured, so use 0s.
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--mode",
            "snapshot",
            "--format",
            "json",
            "--verbose",
            "--park-threshold",
            "0s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    check_expectations(&records, &out, "long_parked");
    assert_eq!(summary(&out)["probes_attached"].as_u64(), Some(0), "{out}");
}

#[test]
fn scenarios_found_on_oldest_go() {
    attach_mode(Go::Oldest, ALL, true);
}

#[test]
fn scenarios_reported_parked_at_exit_in_run_mode() {
    let bin = build_fixture("scenarios", Go::Default, &[]);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--fail-on",
            "leak",
            "--",
            bin.to_str().unwrap(),
            "-only",
            ALL,
            "-exit-after",
            "300ms",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "--fail-on leak must fail: {err}");
    check_expectations(&program_records(&out), &out, "parked_at_exit");
}

#[test]
fn early_leak_is_caught_in_run_mode() {
    let bin = build_fixture("early", Go::Default, &[]);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--",
            bin.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    check_expectations(&program_records(&out), &out, "parked_at_exit");
}

#[test]
fn growing_group_is_a_leak_and_the_idle_pool_is_not() {
    let bin = build_fixture("scenarios", Go::Default, &[]);
    let mut fixture = start_fixture(&bin, &["-only", "growing"]);
    let records = fixture.until_ready();
    let pid = fixture.pid().to_string();
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--format",
            "json",
            "--verbose",
            "--duration",
            "5s",
            "--leak-window",
            "3s",
            "--fail-on",
            "leak",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{err}\n{out}");
    let e = records
        .iter()
        .find(|r| r.get("rule") == "growing")
        .expect("growing expect line");
    let groups: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "group" && v["rule"] == "growing")
        .collect();
    assert!(
        groups
            .iter()
            .any(|g| g["site"]["line"].as_u64() == Some(e.u64("line"))
                && g["site"]["function"] == e.get("func")),
        "no growing group at {e:?}: {out}"
    );
    let idle_line = records
        .iter()
        .find(|r| r.kind == "idle")
        .map(|r| r.u64("line"))
        .unwrap();
    assert!(
        !groups
            .iter()
            .any(|g| g["site"]["line"].as_u64() == Some(idle_line)),
        "idle pool called a leak: {out}"
    );
}

#[test]
fn clean_program_has_no_findings() {
    let bin = build_fixture("clean", Go::Default, &[]);
    let mut fixture = start_fixture(&bin, &[]);
    fixture.until_ready();
    let pid = fixture.pid().to_string();
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--format",
            "json",
            "--verbose",
            "--duration",
            "3s",
            "--park-threshold",
            "1s",
            "--fail-on",
            "any",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
    assert!(summary(&out)["events"].as_u64().unwrap() > 0, "{out}");
    drop(fixture);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--fail-on",
            "any",
            "--",
            bin.to_str().unwrap(),
            "-exit-after",
            "1s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
}

#[test]
fn workers_woken_at_shutdown_are_not_parked_at_exit_when_sampled() {
    // The pool's workers sleep in `range jobs` until main closes it just before
    // returning. With the park probes off, only the read taken while the target is
    // held at runtime.exit can tell that they left.
    let bin = build_fixture("clean", Go::Default, &[]);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--budget",
            "0.001",
            "--fail-on",
            "any",
            "--",
            bin.to_str().unwrap(),
            "-exit-after",
            "1500ms",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
    let on = budget_line(&out)["park_probes_on"].as_f64().unwrap();
    assert!(on < 0.5, "park probes on {on} of the time: {out}");
    assert_eq!(summary(&out)["probe_hits"]["exiting"], 1, "{out}");
}

#[test]
fn goroutines_the_go_gc_proved_leaked_are_reported_as_leaked() {
    // The fixture takes its own goroutineleak profile (Go 1.27): its GC marks
    // the goroutines blocked on channels nothing else can reach `_Gleaked`.
    let bin = build_fixture("gcleak", Go::Newest, &[]);
    let mut fixture = start_fixture(&bin, &[]);
    let records = fixture.until_ready();
    let pid = fixture.pid().to_string();
    let idle: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == "idle")
        .map(|r| r.u64("goid"))
        .collect();
    assert_eq!(idle.len(), 1, "{records:?}");
    for mode in ["snapshot", "watch", "parks"] {
        let mut args = vec![
            "attach",
            &pid,
            "--format",
            "json",
            "--verbose",
            "--mode",
            mode,
            "--park-threshold",
            "1h",
            "--fail-on",
            "leak",
        ];
        if mode != "snapshot" {
            args.extend(["--duration", "2s"]);
        }
        let (code, out, err) = run_tracer(&args, Duration::from_secs(60));
        assert_eq!(code, 1, "{mode}: --fail-on leak must fail: {err}\n{out}");
        // Exactly the goroutines Go's own dump shows as leaked.
        let leaked = check_expectations(&records, &out, "leaked");
        assert_eq!(finding_goids(&out, "leaked"), leaked, "{mode}\n{out}");
        assert!(!leaked.contains(&idle[0]));
        for f in goroutine_findings(&out) {
            assert_eq!(f["rule"], "leaked", "{mode}: {f}");
            assert_eq!(f["gc_proved_leak"], true, "{mode}: {f}");
        }
    }
    // The text report words it as Go's dump does.
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--mode",
            "snapshot",
            "--park-threshold",
            "1h",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[chan send (leaked), "), "{out}");
    assert!(
        out.contains("— rule leaked (proved unreachable by the Go GC)"),
        "{out}"
    );
    assert!(fixture.alive());
}

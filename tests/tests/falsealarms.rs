//! Healthy programs get no finding: goroutines parked before attach are not
//! older than they are, and waits a timer will end are not stuck.
use std::time::Duration;
use tracer_tests::*;

#[test]
fn pollers_attached_after_an_idle_stretch_and_a_gc_burst_have_no_finding() {
    // The fixture idles 12 s without a GC, then runs three: each parked poller's
    // g.waitsince is stamped with the mark termination before the stretch. Its
    // pollers wait 3 to 12 s on tickers and time.After timeouts.
    let bin = build_fixture("idlepoll", Go::Default, &[]);
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
            "15s",
            "--fail-on",
            "any",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
    assert!(fixture.alive(), "the fixture died under the tracer");
}

#[test]
fn a_program_exiting_during_timed_waits_has_nothing_parked_at_exit() {
    // Eight goroutines in a select with time.After(5ms) when main returns, and
    // the pollers on their tickers: a timer would have woken every one.
    let bin = build_fixture("idlepoll", Go::Default, &[]);
    for mode in ["watch", "parks"] {
        let (code, out, err) = run_tracer(
            &[
                "run",
                "--mode",
                mode,
                "--format",
                "json",
                "--verbose",
                "--fail-on",
                "any",
                "--",
                bin.to_str().unwrap(),
                "-idle",
                "0s",
                "-exit-after",
                "200ms",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(code, 0, "{mode}: {err}\n{out}");
        assert!(goroutine_findings(&out).is_empty(), "{mode}: {out}");
        assert_eq!(
            json_line(&out, "summary")["stop"],
            "target exited",
            "{mode}: {out}"
        );
    }
}

#[test]
fn an_idle_service_has_no_finding_but_what_it_is_told_to_ignore() {
    // main waits on a signal.Notify channel, four workers on an empty job
    // queue, an http.Client's keep-alive connection idles (persistConn's
    // writeLoop in a select), two handlers wait for signals (a range and a
    // select over `chan os.Signal`), and an event loop waits for events: only
    // the event loop is a long park the tracer cannot tell from a stuck one.
    let bin = build_fixture("idleservice", Go::Default, &[]);
    let mut fixture = start_fixture(&bin, &[]);
    fixture.until_ready();
    let pid = fixture.pid().to_string();
    let attach = |extra: &[&str]| {
        let mut args = vec![
            "attach",
            &pid,
            "--format",
            "json",
            "--verbose",
            "--duration",
            "3s",
            "--park-threshold",
            "1s",
        ];
        args.extend_from_slice(extra);
        run_tracer(&args, Duration::from_secs(60))
    };
    let (code, out, err) = attach(&[]);
    assert_eq!(code, 0, "{err}\n{out}");
    let sites: Vec<String> = goroutine_findings(&out)
        .iter()
        .map(|f| f["site"]["function"].as_str().unwrap().to_string())
        .collect();
    assert!(!sites.is_empty(), "{out}");
    assert!(
        sites.iter().all(|s| s == "main.eventLoop"),
        "{sites:?}\n{out}"
    );
    let (code, out, err) = attach(&["--ignore", "main.eventLoop", "--fail-on", "any"]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
    assert!(fixture.alive(), "the fixture died under the tracer");
}

#[test]
fn parallel_tests_waiting_for_serial_ones_have_no_finding() {
    // Two t.Parallel tests wait 2.5 s in testing.(*T).Parallel, and main in
    // testing.(*T).Run, past a 1 s threshold.
    let bin = std::env::temp_dir().join(format!("paralleltest-{}.test", std::process::id()));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/paralleltest");
    let status = std::process::Command::new(Go::Default.bin())
        .args(["test", "-c", "-o"])
        .arg(&bin)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("go test -c");
    assert!(status.success());
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--park-threshold",
            "1s",
            "--fail-on",
            "any",
            "--",
            bin.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let _ = std::fs::remove_file(&bin);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{out}");
}

//! Healthy programs get no finding: goroutines parked before attach are not
//! older than they are, and waits a timer will end are not stuck.
use std::time::Duration;
use tracer_tests::*;

/// The timer channels, as each Go keeps them: linked to their timer (Go 1.23+),
/// or found from the timer in the Ps' heaps (Go 1.21-1.22's `[]*timer`, and Go
/// 1.23+'s `timerWhen` heap for a module older than go 1.23).
const TIMERS: &[(Go, &str)] = &[
    (Go::Default, "asynctimerchan=0"),
    (Go::Default, "asynctimerchan=1"),
    (Go::Oldest, ""),
];

fn pollers_after_an_idle_stretch(go: Go, godebug: &str) {
    // The fixture idles 12 s without a GC, then runs three: each parked poller's
    // g.waitsince is stamped with the mark termination before the stretch. Its
    // pollers wait 3 to 12 s on tickers and time.After timeouts.
    let bin = build_fixture("idlepoll", go, &[]);
    let mut fixture = Proc::spawn(std::process::Command::new(&bin).env("GODEBUG", godebug));
    fixture
        .wait_line(Duration::from_secs(30), |l| l.starts_with("pid "))
        .expect("fixture printed no pid line");
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
    let ctx = format!("{go:?} GODEBUG={godebug}");
    assert_eq!(code, 0, "{ctx}: {err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{ctx}: {out}");
    assert!(fixture.alive(), "{ctx}: the fixture died under the tracer");
}

#[test]
fn pollers_attached_after_an_idle_stretch_and_a_gc_burst_have_no_finding() {
    let (go, godebug) = TIMERS[0];
    pollers_after_an_idle_stretch(go, godebug);
}

#[test]
fn pollers_on_unlinked_timer_channels_have_no_finding() {
    let (go, godebug) = TIMERS[1];
    pollers_after_an_idle_stretch(go, godebug);
}

#[test]
fn pollers_on_the_oldest_gos_timers_have_no_finding() {
    let (go, godebug) = TIMERS[2];
    pollers_after_an_idle_stretch(go, godebug);
}

#[test]
fn a_program_exiting_during_timed_waits_has_nothing_parked_at_exit() {
    // Eight goroutines in a select with time.After(5ms) when main returns, and
    // the pollers on their tickers: a timer would have woken every one.
    for &(go, godebug) in TIMERS {
        let bin = build_fixture("idlepoll", go, &[]);
        for mode in ["watch", "parks"] {
            timed_waits_at_exit(&bin, mode, godebug);
        }
    }
}

fn timed_waits_at_exit(bin: &std::path::Path, mode: &str, godebug: &str) {
    let (code, out, err) = finish(
        tracer().env("GODEBUG", godebug).args([
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
        ]),
        Duration::from_secs(60),
    );
    let ctx = format!("{mode} GODEBUG={godebug} {}", bin.display());
    assert_eq!(code, 0, "{ctx}: {err}\n{out}");
    assert!(goroutine_findings(&out).is_empty(), "{ctx}: {out}");
    assert_eq!(
        json_line(&out, "summary")["stop"],
        "target exited",
        "{ctx}: {out}"
    );
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

//! The binaries production ships, besides `go build`'s default: position
//! independent (`-buildmode=pie`, linked by Go's own linker, and by the system's
//! with cgo). Each is traced as the default build is.
use std::path::PathBuf;
use std::time::Duration;
use tracer_tests::*;

const ALL: &str = "send,recv,wgfanout,rangeopen,circular,nilchan,timeout,panicrecover";

fn pie_internal() -> PathBuf {
    build_fixture_env(
        "scenarios",
        Go::Default,
        &["-buildmode=pie", "-ldflags=-linkmode=internal"],
        &[("CGO_ENABLED", "0")],
    )
}

fn pie_external() -> PathBuf {
    build_fixture_env(
        "scenarios",
        Go::Default,
        &["-buildmode=pie", "-ldflags=-linkmode=external"],
        &[("CGO_ENABLED", "1")],
    )
}

/// The default build and both PIE builds of the scenarios.
fn builds() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("default", build_fixture("scenarios", Go::Default, &[])),
        ("pie (internal linking)", pie_internal()),
        ("pie (external linking, cgo)", pie_external()),
    ]
}

#[test]
fn pie_builds_report_the_leaks_of_the_default_build_under_run() {
    for (build, bin) in builds() {
        for mode in ["parks", "watch"] {
            let (code, out, err) = run_tracer(
                &[
                    "run",
                    "--format",
                    "json",
                    "--mode",
                    mode,
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
            let ctx = format!("{build}, --mode {mode}");
            assert_eq!(code, 1, "{ctx}: --fail-on leak must fail: {err}\n{out}");
            let expected = check_expectations(&program_records(&out), &out, "parked_at_exit");
            // Exactly the leaked goroutines: not the runtime's own.
            assert_eq!(
                finding_goids(&out, "parked_at_exit"),
                expected,
                "{ctx}\n{out}"
            );
            assert_eq!(
                json_line(&out, "summary")["symbols_missing"],
                serde_json::json!([]),
                "{ctx}"
            );
        }
    }
}

#[test]
fn pie_builds_report_the_leaks_of_the_default_build_when_attached() {
    for (build, bin) in builds() {
        // Attached before the goroutines park: the probes see the parks, the
        // memory reads confirm them.
        let mut fixture = start_fixture(&bin, &["-only", ALL, "-delay", "1s"]);
        let pid = fixture.pid().to_string();
        let args: Vec<String> = [
            "attach",
            &pid,
            "--format",
            "json",
            "--duration",
            "4s",
            "--park-threshold",
            "500ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tracer = std::thread::spawn(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tracer(&a, Duration::from_secs(60))
        });
        let records = fixture.until_ready();
        let (code, out, err) = tracer.join().unwrap();
        assert_eq!(code, 0, "{build}: {err}");
        let expected = check_expectations(&records, &out, "long_parked");
        assert_eq!(
            finding_goids(&out, "long_parked"),
            expected,
            "{build}\n{out}"
        );
    }
}

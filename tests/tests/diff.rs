//! `tracer diff`: a build that leaks, against the same build without the leak, is
//! flagged; two runs of one build are not.
use std::time::Duration;
use tracer_tests::*;

/// One `tracer run --format json` of the exits fixture, written to a file.
fn report(name: &str, program_args: &[&str]) -> std::path::PathBuf {
    let bin = build_fixture("exits", Go::Default, &[]);
    let file =
        std::env::temp_dir().join(format!("tracer-diff-{}-{name}.jsonl", std::process::id()));
    let mut args = vec![
        "run",
        "--format",
        "json",
        "--output",
        file.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
        "-after",
        "300ms",
    ];
    args.extend_from_slice(program_args);
    let (code, _, err) = run_tracer(&args, Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    file
}

fn diff(base: &std::path::Path, canary: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut args = vec!["diff", base.to_str().unwrap(), canary.to_str().unwrap()];
    if json {
        args.extend(["--format", "json"]);
    }
    run_tracer(&args, Duration::from_secs(30))
}

#[test]
fn a_new_leak_is_flagged_and_two_runs_of_one_build_are_not() {
    let base = report("base", &[]);
    let again = report("again", &[]);
    let canary = report("canary", &["-leaks", "5"]);

    let (code, out, err) = diff(&base, &again, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("no regression"), "{out}");

    let (code, out, err) = diff(&base, &canary, false);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("new stuck site main.leak (main.go:"), "{out}");
    assert!(out.contains("[chan receive]: 5 goroutines"), "{out}");

    let (code, out, _) = diff(&base, &canary, true);
    assert_eq!(code, 1);
    assert_eq!(json_line(&out, "diff")["regressions"], 1, "{out}");
    assert_eq!(json_line(&out, "regression")["change"], "new_stuck_site");

    // The canary fixed (the baseline against the leaking build) is no regression.
    let (code, out, _) = diff(&canary, &base, false);
    assert_eq!(code, 0, "{out}");

    // A cut or missing report is bad input.
    let cut = std::env::temp_dir().join(format!("tracer-diff-{}-cut.jsonl", std::process::id()));
    std::fs::write(&cut, "{\"kind\":\"goroutine\"}\n").unwrap();
    let (code, _, err) = diff(&base, &cut, false);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no summary line"), "{err}");
    for f in [base, again, canary, cut] {
        let _ = std::fs::remove_file(f);
    }
}

//! `tracer run` on a Go test binary (`go test -c`): each leaked goroutine is named
//! with the test that started it, like goleak's per-test verdict.
use std::time::Duration;
use tracer_tests::*;

fn test_binary() -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("gotest-{}.test", std::process::id()));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gotest");
    let status = std::process::Command::new(Go::Default.bin())
        .args(["test", "-c", "-o"])
        .arg(&out)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("go test -c");
    assert!(status.success());
    out
}

#[test]
fn leaks_are_named_with_the_test_that_started_them() {
    let bin = test_binary();
    let bin_s = bin.to_str().unwrap();
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--fail-on",
            "leak",
            "--format",
            "json",
            "--",
            bin_s,
            "-test.v",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{err}");
    let leaks: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "group" && v["rule"] == "parked_at_exit")
        .collect();
    assert_eq!(leaks.len(), 1, "{out}");
    assert_eq!(leaks[0]["example"]["test"], "TestLeak", "{out}");
    assert_eq!(leaks[0]["count"], 1, "{out}");
    let (_, text, _) = run_tracer(&["run", "--", bin_s], Duration::from_secs(60));
    let line = text
        .lines()
        .find(|l| l.contains("rule parked_at_exit"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("(test TestLeak)"), "{line}");
    assert!(
        line.contains("leak_test.go:16 in fixture/gotest.TestLeak.func1"),
        "{line}"
    );
    let _ = std::fs::remove_file(&bin);
}

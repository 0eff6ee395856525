//! `--pprof FILE`: a profile `go tool pprof` reads, naming the leaking function.
use std::time::Duration;
use tracer_tests::*;

fn pprof_top(file: &std::path::Path, extra: &[&str]) -> String {
    let home = std::env::temp_dir().join(format!("tracer-pprof-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new(Go::Default.bin())
        .args(["tool", "pprof", "-top"])
        .args(extra)
        .arg(file)
        .env("HOME", &home)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go tool pprof");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn go_tool_pprof_names_the_leaking_function() {
    let bin = build_fixture("exits", Go::Default, &[]);
    let file = std::env::temp_dir().join(format!("tracer-{}.pb.gz", std::process::id()));
    let (code, _, err) = run_tracer(
        &[
            "run",
            "--pprof",
            file.to_str().unwrap(),
            "--output",
            "/dev/null",
            "--",
            bin.to_str().unwrap(),
            "-after",
            "300ms",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    // The goroutine parked forever on a send nobody receives, by its stack.
    let top = pprof_top(&file, &[]);
    assert!(top.contains("Type: goroutines"), "{top}");
    let leak = top
        .lines()
        .find(|l| l.ends_with("main.main.func1"))
        .unwrap_or_else(|| panic!("no main.main.func1 in:\n{top}"));
    assert!(leak.contains("100%"), "{leak}");
    // The ended parks, as a block profile.
    let delay = pprof_top(&file, &["-sample_index=delay"]);
    assert!(delay.contains("Type: delay"), "{delay}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_unwritable_pprof_path_is_refused_before_tracing() {
    let bin = build_fixture("exits", Go::Default, &[]);
    let (code, _, err) = run_tracer(
        &[
            "run",
            "--pprof",
            "/nonexistent-dir/p.pb.gz",
            "--",
            bin.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--pprof /nonexistent-dir/p.pb.gz"), "{err}");
    assert!(!err.contains("attached"), "{err}");
}

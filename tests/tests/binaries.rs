//! The binaries production ships, besides `go build`'s default: position
//! independent (`-buildmode=pie`, linked by Go's own linker, and by the system's
//! with cgo), paths trimmed (`-trimpath`), programs the linker left parts of the
//! runtime out of. Each is traced as the default build is, and the stacks read
//! as Go's own dump of the same process prints them, frame for frame.
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
                    "--verbose",
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
            "--verbose",
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

/// One goroutine of a Go dump: its frames and its creator, as (function, file,
/// line).
#[derive(Debug, Default)]
struct Dumped {
    frames: Vec<(String, String, u64)>,
    created_by: Option<(String, String, u64)>,
}

/// `main.(*T).m(0xc000010000, ...)` -> `main.(*T).m`.
fn strip_args(call: &str) -> &str {
    if !call.ends_with(')') {
        return call;
    }
    let mut depth = 0;
    for (i, c) in call.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return &call[..i];
                }
            }
            _ => {}
        }
    }
    call
}

/// `\t/path/file.go:42 +0x25 fp=... sp=... pc=...` -> (`/path/file.go`, 42).
fn location(line: &str) -> (String, u64) {
    let loc = line.trim_start_matches('\t');
    let loc = loc.split(" +0x").next().unwrap_or(loc);
    let loc = loc.split(" fp=").next().unwrap_or(loc);
    let (file, n) = loc.rsplit_once(':').expect("file:line");
    (file.to_string(), n.trim().parse().expect("line number"))
}

/// Parses a `GOTRACEBACK=system` dump (what SIGQUIT prints): goid -> goroutine.
fn parse_go_dump(text: &str) -> HashMap<u64, Dumped> {
    let mut out = HashMap::new();
    for stanza in text.split("\n\n") {
        let lines: Vec<&str> = stanza.trim().lines().collect();
        let Some(goid) = lines
            .first()
            .and_then(|h| h.strip_prefix("goroutine "))
            .and_then(|h| h.split(' ').next())
            .and_then(|id| id.parse::<u64>().ok())
        else {
            continue;
        };
        let mut g = Dumped::default();
        let mut i = 1;
        while i + 1 < lines.len() {
            let (call, at) = (lines[i], lines[i + 1]);
            if !at.starts_with('\t') {
                i += 1;
                continue;
            }
            let (file, line) = location(at);
            if let Some(c) = call.strip_prefix("created by ") {
                let f = c.split(" in goroutine ").next().unwrap_or(c);
                g.created_by = Some((f.to_string(), file, line));
            } else {
                g.frames.push((strip_args(call).to_string(), file, line));
            }
            i += 2;
        }
        out.insert(goid, g);
    }
    out
}

fn frame(v: &serde_json::Value) -> (String, String, u64) {
    (
        v["function"].as_str().unwrap_or("").to_string(),
        v["file"].as_str().unwrap_or("").to_string(),
        v["line"].as_u64().unwrap_or(0),
    )
}

/// Traces the scenarios of `bin`, then has Go dump the same process
/// (`GOTRACEBACK=system`, SIGQUIT: every frame, runtime ones included) and
/// compares each stuck goroutine's stack and creator with the tracer's. With
/// `probes`, the tracer is attached before the goroutines park (stacks from the
/// park probes); without, after (stacks from a memory read, snapshot mode).
fn stacks_match_go_dump(bin: &Path, probes: bool) {
    let mut args = vec!["-only", ALL];
    if probes {
        args.extend(["-delay", "1s"]);
    }
    let mut fixture = Proc::spawn(
        Command::new(bin)
            .args(&args)
            .env("GOTRACEBACK", "system")
            .stderr(Stdio::piped()),
    );
    let mut stderr = fixture.child.stderr.take().expect("stderr");
    let dump = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    fixture
        .wait_line(Duration::from_secs(30), |l| l.starts_with("pid "))
        .expect("fixture printed no pid line");
    let pid = fixture.pid().to_string();
    let mut tracer_args: Vec<String> = vec![
        "attach".into(),
        pid,
        "--format".into(),
        "json".into(),
        "--verbose".into(),
    ];
    if probes {
        tracer_args.extend(["--duration", "3s", "--park-threshold", "500ms"].map(String::from));
    } else {
        tracer_args.extend(["--mode", "snapshot", "--park-threshold", "0s"].map(String::from));
    }
    let (records, (code, out, err)) = if probes {
        let tracer = std::thread::spawn(move || {
            let a: Vec<&str> = tracer_args.iter().map(String::as_str).collect();
            run_tracer(&a, Duration::from_secs(60))
        });
        let records = fixture.until_ready();
        (records, tracer.join().unwrap())
    } else {
        let records = fixture.until_ready();
        let a: Vec<&str> = tracer_args.iter().map(String::as_str).collect();
        (records, run_tracer(&a, Duration::from_secs(60)))
    };
    assert_eq!(code, 0, "{err}");
    let expected = check_expectations(&records, &out, "long_parked");

    // SAFETY: signalling a child we own.
    unsafe { libc::kill(fixture.pid() as i32, libc::SIGQUIT) };
    let _ = fixture.child.wait();
    let dump = dump.join().unwrap();
    let go = parse_go_dump(&dump);
    let mut compared = Vec::new();
    for f in goroutine_findings(&out) {
        let goid = f["goid"].as_u64().unwrap();
        if !expected.contains(&goid) {
            continue;
        }
        compared.push(goid);
        let g = go
            .get(&goid)
            .unwrap_or_else(|| panic!("goroutine {goid} not in Go's dump:\n{dump}"));
        let ours: Vec<_> = f["frames"].as_array().unwrap().iter().map(frame).collect();
        assert_eq!(
            ours,
            g.frames,
            "{}: goroutine {goid}: the tracer's frames (left) vs Go's dump (right)",
            bin.display()
        );
        assert_eq!(
            Some(frame(&f["created_by"])),
            g.created_by,
            "{}: goroutine {goid}: created by",
            bin.display()
        );
    }
    compared.sort_unstable();
    compared.dedup();
    assert_eq!(compared, expected, "every stuck goroutine compared");
}

#[test]
fn stacks_read_from_memory_are_go_s_own() {
    stacks_match_go_dump(&build_fixture("scenarios", Go::Default, &[]), false);
}

#[test]
fn stacks_from_the_park_probes_are_go_s_own() {
    stacks_match_go_dump(&build_fixture("scenarios", Go::Default, &[]), true);
}

#[test]
fn stacks_of_pie_builds_are_go_s_own() {
    stacks_match_go_dump(&pie_internal(), false);
    stacks_match_go_dump(&pie_external(), true);
}

#[test]
fn paths_of_trimpath_builds_are_go_s_own() {
    // Go prints `fixture/scenarios/main.go` and `runtime/chan.go`.
    let bin = build_fixture("scenarios", Go::Default, &["-trimpath"]);
    stacks_match_go_dump(&bin, false);
    stacks_match_go_dump(&bin, true);
}

#[test]
fn a_function_the_program_never_links_is_not_missing() {
    // runtime.selectgo is linked only into programs with a select of two cases
    // or more: its absence is nothing to report, in any mode.
    let bin = build_fixture("noselect", Go::Default, &[]);
    for extra in [&[][..], &["--events"][..]] {
        let mut args = vec!["run", "--format", "json", "--verbose"];
        args.extend_from_slice(extra);
        args.extend(["--", bin.to_str().unwrap()]);
        let (code, out, err) = run_tracer(&args, Duration::from_secs(60));
        assert_eq!(code, 0, "{extra:?}: {err}");
        assert_eq!(
            json_line(&out, "summary")["symbols_missing"],
            serde_json::json!([]),
            "{extra:?}"
        );
        let leak = goroutine_findings(&out)
            .into_iter()
            .find(|f| f["rule"] == "parked_at_exit")
            .unwrap_or_else(|| panic!("{extra:?}: no leak found: {out}"));
        assert_eq!(leak["site"]["function"], "main.publish");
        assert_eq!(leak["wait_reason"], "chan send");
    }
    let (code, out, err) = run_tracer(
        &["run", "--", bin.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(", 0 symbols missing"), "{out}");
    assert!(!out.contains("symbol missing"), "{out}");

    // The plan says so, and names no probe for it.
    let (code, plan, err) = run_tracer(
        &["plan", "--exe", bin.to_str().unwrap(), "--events"],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!plan.contains("go_select"), "{plan}");
    assert!(!plan.contains("missing"), "{plan}");
    assert!(plan.contains("not linked in: runtime.selectgo"), "{plan}");
    // A program with a select has it, probed (the name is still right).
    let bin = build_fixture("scenarios", Go::Default, &[]);
    let (code, plan, err) = run_tracer(
        &["plan", "--exe", bin.to_str().unwrap(), "--events"],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    assert!(plan.contains("go_select"), "{plan}");
    assert!(!plan.contains("not linked in"), "{plan}");
}

//! The live event spine against real Go programs: events carry the right goroutine,
//! wait reason, channel and line; probes sit after the stack check; bad input gets
//! one line and exit code 2; the target survives the tracer.
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;
use tracer_tests::*;

fn hex(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_default()
}

fn chan_addr(obj: &str) -> u64 {
    let h = obj.trim_start_matches("chan:").trim_start_matches("0x");
    u64::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad object {obj}"))
}

/// A goroutine blocked on an unbuffered send shows up with the fixture's own goid,
/// channel address and line; a goroutine woken every 100 ms shows resume events.
fn events_match_fixture(go: Go) {
    let bin = build_fixture("chansend", go, &[]);
    let mut fixture = start_fixture(&bin, &["-delay", "1500ms"]);
    let pid = fixture.pid().to_string();
    let mut tracer = Proc::spawn(
        tracer()
            .args([
                "attach",
                &pid,
                "--events",
                "--format",
                "json",
                "--duration",
                "20s",
            ])
            .stderr(Stdio::null()),
    );
    let records = fixture.until_ready();
    let expect = records
        .iter()
        .find(|r| r.kind == "expect")
        .expect("expect line");
    let idle = records
        .iter()
        .find(|r| r.kind == "idle")
        .expect("idle line");
    let goid = expect.u64("goid");
    let chan = chan_addr(expect.get("object"));
    let line = expect.u64("line");

    let park = tracer
        .wait_line(Duration::from_secs(20), |l| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                return false;
            };
            (v["event"] == "park" || v["event"] == "parked")
                && v["goid"].as_u64() == Some(goid)
                && v["wait_reason"] == "chan send"
        })
        .unwrap_or_else(|| panic!("no park event for goroutine {goid}: {:?}", tracer.seen));
    let v: serde_json::Value = serde_json::from_str(&park).unwrap();
    assert_eq!(v["object"]["kind"], "channel", "{v}");
    assert_eq!(hex(&v["object"]["addr"]), chan, "{v}");
    assert_eq!(v["site"]["line"].as_u64(), Some(line), "{v}");
    assert!(
        v["site"]["file"]
            .as_str()
            .unwrap()
            .ends_with("chansend/main.go"),
        "{v}"
    );
    assert_eq!(v["site"]["function"], expect.get("func"), "{v}");

    // Resumes of the goroutine main wakes every 100 ms name it.
    let idle_goid = idle.u64("goid");
    tracer
        .wait_line(Duration::from_secs(10), |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["event"] == "resume" && v["goid"].as_u64() == Some(idle_goid))
        })
        .unwrap_or_else(|| panic!("no resume of goroutine {idle_goid}"));
    fixture
        .wait_line(Duration::from_secs(5), |l| l.starts_with("woke "))
        .expect("fixture keeps waking its goroutine");

    // Ctrl-C detaches and exits 0; the target runs on; a second attach works.
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGINT) };
    let status = tracer.child.wait().expect("tracer exit");
    assert_eq!(status.code(), Some(0));
    fixture
        .wait_line(Duration::from_secs(5), |l| l.starts_with("woke "))
        .expect("target still running after detach");
    let (code, out, err) = run_tracer(
        &[
            "attach",
            &pid,
            "--format",
            "json",
            "--duration",
            "1s",
            "--park-threshold",
            "100ms",
            "--verbose",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let found = json_lines(&out).into_iter().any(|v| {
        v["kind"] == "goroutine"
            && v["goid"].as_u64() == Some(goid)
            && v["wait_reason"] == "chan send"
    });
    assert!(
        found,
        "second attach did not report goroutine {goid}: {out}"
    );
    // Every symbol and struct field the tracer looks for exists in a supported Go.
    let summary = json_line(&out, "summary");
    assert_eq!(
        summary["symbols_missing"],
        serde_json::json!([]),
        "{summary}"
    );
    assert!(fixture.alive(), "target died");
}

#[test]
fn events_match_fixture_default_go() {
    events_match_fixture(Go::Default);
}

#[test]
fn events_match_fixture_oldest_go() {
    events_match_fixture(Go::Oldest);
}

#[test]
fn sigterm_and_target_exit_end_the_trace_cleanly() {
    let bin = build_fixture("chansend", Go::Default, &[]);
    let mut fixture = start_fixture(&bin, &[]);
    fixture.until_ready();
    let pid = fixture.pid().to_string();
    let mut first = Proc::spawn(
        tracer()
            .args(["attach", &pid, "--format", "json"])
            .stderr(Stdio::piped()),
    );
    let mut err = std::io::BufReader::new(first.child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("attached"), "{line}");
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(first.pid() as i32, libc::SIGTERM) };
    assert_eq!(first.child.wait().unwrap().code(), Some(0));
    assert!(fixture.alive());

    // Target exits mid-trace: the tracer ends by itself with a summary.
    let mut second = Proc::spawn(
        tracer()
            .args(["attach", &pid, "--format", "json"])
            .stderr(Stdio::piped()),
    );
    let mut err = std::io::BufReader::new(second.child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("attached"), "{line}");
    fixture.kill();
    let summary = second
        .wait_line(Duration::from_secs(10), |l| {
            l.contains("\"kind\":\"summary\"")
        })
        .expect("summary after target exit");
    assert!(summary.contains("\"probes_attached\""));
    assert_eq!(second.child.wait().unwrap().code(), Some(0));
}

#[test]
fn run_with_a_duration_stops_the_program_it_started() {
    let bin = build_fixture("chansend", Go::Default, &[]);
    // The fixture never exits by itself.
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--duration",
            "1s",
            "--",
            bin.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopping PID"), "{err}");
    assert_eq!(
        json_line(&out, "summary")["symbols_missing"],
        serde_json::json!([])
    );
    // The goroutine woken every 100 ms: its parks, seen by the probe on gopark's
    // call sites, are timed under its own source line.
    let idle = out
        .lines()
        .find(|l| l.starts_with("idle "))
        .expect("the fixture's idle line");
    let line: u64 = idle
        .split(' ')
        .find_map(|kv| kv.strip_prefix("line="))
        .and_then(|v| v.parse().ok())
        .expect("line=");
    let timed = json_lines(&out).into_iter().any(|v| {
        v["kind"] == "histogram"
            && v["site"]["function"] == "main.wakeMe"
            && v["site"]["line"].as_u64() == Some(line)
            && v["count"].as_u64() > Some(3)
    });
    assert!(timed, "no blocking times at main.wakeMe:{line}: {out}");
    let pid = out
        .lines()
        .find_map(|l| l.strip_prefix("pid pid="))
        .expect("the fixture's pid line");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "program {pid} still there"
    );
}

#[test]
fn plan_places_no_probe_on_the_stack_check() {
    for go in [Go::Default, Go::Oldest] {
        let bin = build_fixture("chansend", go, &[]);
        let (code, out, err) = run_tracer(
            &[
                "plan",
                "--exe",
                bin.to_str().unwrap(),
                "--mode",
                "parks",
                "--events",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(code, 0, "{err}");
        let probes: Vec<&str> = out.lines().filter(|l| l.starts_with("go_")).collect();
        assert!(probes.len() >= 8, "{out}");
        for p in probes {
            // runtime.exit is assembly without a stack check: its entry is the place.
            let prologue = if p.starts_with("go_exiting") {
                "(entry: no stack check)"
            } else {
                "(after stack check)"
            };
            assert!(p.contains(prologue), "probe not past the prologue: {p}");
            assert!(!p.contains(" cmp"), "probe on a cmp: {p}");
        }
    }
}

#[test]
fn park_probe_skips_the_callers_that_only_idle() {
    for go in [Go::Default, Go::Oldest] {
        let bin = build_fixture("chansend", go, &[]);
        let (code, out, err) = run_tracer(
            &["plan", "--exe", bin.to_str().unwrap(), "--mode", "parks"],
            Duration::from_secs(30),
        );
        assert_eq!(code, 0, "{err}");
        assert!(!out.lines().any(|l| l.starts_with("go_park ")), "{out}");
        let calls: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("go_park_call"))
            .collect();
        for caller in [
            "runtime.chansend ",
            "runtime.chanrecv ",
            "runtime.selectgo ",
        ] {
            assert!(calls.iter().any(|l| l.contains(caller)), "{caller}: {out}");
        }
        for idle in ["netpollblock", "time.Sleep"] {
            assert!(!calls.iter().any(|l| l.contains(idle)), "{idle}: {out}");
        }
        assert!(
            calls.iter().all(|l| l.contains("call runtime.gopark")),
            "{out}"
        );
    }
}

fn expect_error(args: &[&str], needle: &str) {
    let (code, out, err) = run_tracer(args, Duration::from_secs(30));
    assert_eq!(code, 2, "{args:?}: {out} {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    expect_error(&["attach", "3999999"], "no process with PID 3999999");
    expect_error(&["attach", "2"], "kernel thread");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    expect_error(&["attach", &sleeper.id().to_string()], "not a Go program");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    expect_error(&["plan", "--exe", "/bin/sh"], "not a Go program");
}

#[test]
fn refuses_to_run_without_privileges() {
    let out = tracer()
        .args(["attach", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running tracer as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn target_held_at_exit_is_released_even_when_the_ring_buffer_overflows() {
    // Every park written 16 times by the kernel: the ring buffer overflows, and the
    // exit notice must not be lost with the records (the target would stay stopped).
    let bin = build_fixture("bench", Go::Default, &[]);
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--budget",
            "0",
            "--bench-copies",
            "16",
            "--",
            bin.to_str().unwrap(),
            "-workload",
            "flood",
            "-pairs",
            "8",
            "-n",
            "100000",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    let summary = json_line(&out, "summary");
    assert!(
        summary["drops"].as_u64().unwrap() > 0,
        "no overflow: {summary}"
    );
    assert_eq!(summary["probe_hits"]["exiting"], 1, "{summary}");
    assert!(err.contains("target exited"), "{err}");
}

//! Whatever happens to the tracer, the target runs on; whatever happens to the
//! target, the exit code says so. The tracer is killed and stopped around its
//! target's exit, its output is closed or left unread, and `tracer run` passes on
//! its program's status.
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};
use tracer_tests::*;

fn exits() -> String {
    build_fixture("exits", Go::Default, &[])
        .to_str()
        .unwrap()
        .to_string()
}

/// The process state letter from /proc (R, S, T, Z, ...), or None once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Lines of a child's stderr, as they come.
fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let err = child.stderr.take().expect("stderr piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(rx: &Receiver<String>, limit: Duration, what: &str) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        let hit = l.contains(what);
        seen.push(l);
        if hit {
            return seen;
        }
    }
    panic!("no stderr line with {what:?}; saw {seen:?}");
}

/// `tracer attach PID ARGS` with stdout and stderr piped, once it has read the
/// target: the child and its stderr lines.
fn attach_piped(pid: u32, args: &[&str]) -> (Child, Receiver<String>) {
    let mut tracer = tracer()
        .args(["attach", &pid.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = stderr_lines(&mut tracer);
    wait_for(&err, Duration::from_secs(30), "snapshot:");
    (tracer, err)
}

/// Tells an `exits -wait` fixture to end.
fn tell_exit(target: &mut Proc) {
    target
        .child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
}

/// Polls until the process is gone or a zombie; how long it spent stopped (T).
fn wait_gone(pid: u32, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut stopped = Duration::ZERO;
    let mut last = Instant::now();
    loop {
        let s = state(pid);
        let now = Instant::now();
        if s == Some('T') || s == Some('t') {
            stopped += now - last;
        }
        last = now;
        match s {
            None | Some('Z') | Some('X') => return Ok(stopped),
            _ if start.elapsed() > limit => {
                return Err(format!(
                    "PID {pid} still there after {limit:?}, state {s:?}, stopped for {stopped:?}"
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Blow {
    /// SIGKILL the moment the target is seen stopped at its exit.
    KillDuringHold,
    /// SIGKILL a few milliseconds after the target was told to exit.
    KillAfter(u64),
    /// SIGSTOP (as Ctrl-Z would), the target exits, then SIGKILL.
    StopThenKill(u64),
}

/// One try: a target told to exit while the tracer is killed or stopped around
/// it. Returns whether the target was seen held at exit.
fn one_try(run: bool, mode: &str, blow: Blow, bin: &str) -> bool {
    let mut tracer_cmd = tracer();
    let (target_pid, mut tracer, mut target, err) = if run {
        tracer_cmd.args([
            "run",
            "--mode",
            mode,
            "--output",
            "/dev/null",
            "--",
            bin,
            "-wait",
        ]);
        let mut p = Proc::spawn(tracer_cmd.stderr(Stdio::piped()));
        let err = stderr_lines(&mut p.child);
        let pid_line = p
            .wait_line(Duration::from_secs(30), |l| l.starts_with("pid "))
            .expect("program's pid line");
        let pid = parse_record(&pid_line).u64("pid") as u32;
        p.wait_line(Duration::from_secs(30), |l| l == "ready")
            .expect("program ready");
        (pid, p, None, err)
    } else {
        let target = start_fixture(std::path::Path::new(bin), &["-wait"]);
        let pid = target.pid();
        tracer_cmd.args([
            "attach",
            &pid.to_string(),
            "--mode",
            mode,
            "--output",
            "/dev/null",
        ]);
        let mut p = Proc::spawn(tracer_cmd.stderr(Stdio::piped()));
        let err = stderr_lines(&mut p.child);
        wait_for(&err, Duration::from_secs(30), "snapshot:");
        (pid, p, Some(target), err)
    };
    let tell_exit = |tracer: &mut Proc, target: &mut Option<Proc>| {
        let stdin = match target {
            Some(t) => t.child.stdin.as_mut(),
            None => tracer.child.stdin.as_mut(),
        };
        stdin.unwrap().write_all(b"go\n").unwrap();
    };
    let mut held = false;
    match blow {
        Blow::KillDuringHold => {
            tell_exit(&mut tracer, &mut target);
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                match state(target_pid) {
                    Some('T') => {
                        held = true;
                        break;
                    }
                    None | Some('Z') => break,
                    _ => {}
                }
            }
            signal(tracer.pid(), libc::SIGKILL);
        }
        Blow::KillAfter(ms) => {
            tell_exit(&mut tracer, &mut target);
            std::thread::sleep(Duration::from_millis(ms));
            held = state(target_pid) == Some('T');
            signal(tracer.pid(), libc::SIGKILL);
        }
        Blow::StopThenKill(ms) => {
            signal(tracer.pid(), libc::SIGSTOP);
            tell_exit(&mut tracer, &mut target);
            std::thread::sleep(Duration::from_millis(ms));
            held = state(target_pid) == Some('T');
            signal(tracer.pid(), libc::SIGKILL);
        }
    }
    let gone = wait_gone(target_pid, Duration::from_secs(5));
    let _ = tracer.child.wait();
    drop(err);
    if let Err(e) = gone {
        // Leave nothing stopped behind, then fail.
        signal(target_pid, libc::SIGCONT);
        panic!(
            "{blow:?} in {mode} mode ({}): {e}",
            if run { "run" } else { "attach" }
        );
    }
    held
}

fn kill_and_stop_around_exit(run: bool) {
    let bin = exits();
    let modes = ["watch", "parks", "locks"];
    let mut held = 0;
    let tries = 30;
    for i in 0..tries {
        let blow = match i % 3 {
            0 => Blow::KillDuringHold,
            1 => Blow::KillAfter((i as u64 * 7) % 6),
            _ => Blow::StopThenKill((i as u64 * 37) % 400),
        };
        held += usize::from(one_try(run, modes[(i / 3) % 3], blow, &bin));
    }
    // The hold was really there to be caught, not skipped every time.
    assert!(held > 0, "the target was never seen held at exit");
    eprintln!("{tries} tries, target seen held at exit in {held}");
}

#[test]
fn target_never_left_stopped_when_the_attached_tracer_dies_or_stops() {
    kill_and_stop_around_exit(false);
}

#[test]
fn target_never_left_stopped_when_tracer_run_dies_or_stops() {
    kill_and_stop_around_exit(true);
}

#[test]
fn an_unread_output_delays_neither_the_exit_nor_the_duration() {
    let bin = exits();
    let mut target = start_fixture(std::path::Path::new(&bin), &["-wait", "-chatty"]);
    let pid = target.pid();
    // Nobody reads the tracer's stdout until the target has exited.
    let args = ["--events", "--format", "json", "--duration", "8s"];
    let (mut tracer, err) = attach_piped(pid, &args);
    // The fixture's own chatter parks it a thousand times a second: the unread
    // pipe and the tracer's 1 MiB queue fill within the first seconds.
    std::thread::sleep(Duration::from_millis(4000));
    tell_exit(&mut target);
    let stopped = wait_gone(pid, Duration::from_secs(5)).expect("target exited");
    assert!(stopped < Duration::from_millis(1500), "held {stopped:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut tracer.stdout.take().unwrap(), &mut out).unwrap();
    let status = tracer.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let summary = json_line(&out, "summary");
    assert_eq!(summary["stop"], "target exited", "{summary}");
    assert!(
        summary["output_lines_dropped"].as_u64().unwrap() > 0,
        "{summary}"
    );
    // Traced for the 4 s the target lived, not for as long as the pipe was full.
    assert!(
        summary["duration_ns"].as_u64().unwrap() < 6_000_000_000,
        "{summary}"
    );
    let rest: Vec<String> = err.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("streamed lines dropped")),
        "{rest:?}"
    );
}

/// `tracer run` of the exits fixture: (exit code, stdout, stderr).
fn run_exits(tracer_args: &[&str], program_args: &[&str]) -> (i32, String, String) {
    let bin = exits();
    let mut args = vec!["run", "--format", "json"];
    args.extend_from_slice(tracer_args);
    args.push("--");
    args.push(&bin);
    args.extend_from_slice(program_args);
    run_tracer(&args, Duration::from_secs(60))
}

#[test]
fn run_passes_on_the_programs_status() {
    for (program_args, code, line) in [
        (&[][..], 0, "program exited with status 0"),
        (&["-code", "42"][..], 42, "program exited with status 42"),
        (&["-panic"][..], 2, "program exited with status 2"),
        (
            &["-signal", "KILL"][..],
            137,
            "program killed by signal 9 (SIGKILL)",
        ),
    ] {
        let (got, out, err) = run_exits(&[], program_args);
        assert_eq!(got, code, "{program_args:?}: {err}");
        assert!(err.contains(line), "{program_args:?}: {err}");
        let summary = json_line(&out, "summary");
        assert_eq!(summary["stop"], "target exited", "{summary}");
        match code {
            0 | 2 | 42 => assert_eq!(summary["program"]["exit_code"], code, "{summary}"),
            _ => assert_eq!(summary["program"]["signal"], code - 128, "{summary}"),
        }
        // The goroutine parked forever is reported whatever the ending.
        assert!(
            out.contains("parked_at_exit") || code >= 128,
            "{program_args:?}: {out}"
        );
    }
    // A finding that matched --fail-on comes first.
    let (got, _, err) = run_exits(&["--fail-on", "leak"], &["-code", "42"]);
    assert_eq!(got, 1, "{err}");
}

#[test]
fn run_target_exit_wins_over_the_deadline_and_a_deaf_program_is_killed() {
    // Exits by itself just before the deadline: its parked goroutine is a leak
    // at exit, and the run says the target exited.
    let (code, out, err) = run_exits(&["--duration", "1s"], &["-after", "800ms"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_line(&out, "summary")["stop"], "target exited");
    assert!(out.contains("parked_at_exit"), "{out}");

    // Ignores SIGTERM: killed after the short grace, and the report says so.
    let started = Instant::now();
    let (code, out, err) = run_exits(&["--duration", "1s"], &["-ignore-term"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{err}");
    let program = &json_line(&out, "summary")["program"];
    assert_eq!(program["how"], "stopped_by_tracer", "{program}");
    assert_eq!(program["signal"], 9, "{program}");
    assert!(err.contains("SIGKILL"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn run_program_dies_with_a_killed_tracer() {
    let bin = exits();
    let mut p = Proc::spawn(
        tracer()
            .args(["run", "--output", "/dev/null", "--", &bin, "-wait"])
            .stderr(Stdio::null()),
    );
    let l = p
        .wait_line(Duration::from_secs(30), |l| l.starts_with("pid "))
        .unwrap();
    let pid = parse_record(&l).u64("pid") as u32;
    p.wait_line(Duration::from_secs(30), |l| l == "ready")
        .unwrap();
    signal(p.pid(), libc::SIGKILL);
    let _ = p.child.wait();
    wait_gone(pid, Duration::from_secs(5)).expect("the program outlived tracer run");
}

#[test]
fn sighup_ends_the_trace_with_a_report() {
    let bin = exits();
    let target = start_fixture(std::path::Path::new(&bin), &["-wait"]);
    let (tracer, _err) = attach_piped(target.pid(), &["--format", "json"]);
    signal(tracer.id(), libc::SIGHUP);
    let out = tracer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status.signal());
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(json_line(&out, "summary")["stop"], "interrupted");
    assert_ne!(state(target.pid()), Some('T'));
}

#[test]
fn an_exec_ends_the_trace_of_the_old_program() {
    let bin = exits();
    // attach: the tracer notices, says so, and stops; the old goroutine is not
    // reported as parked for ever longer.
    let mut target = start_fixture(
        std::path::Path::new(&bin),
        &["-wait", "-exec", "/bin/sleep", "-exec-arg", "30"],
    );
    let args = ["--format", "json", "--park-threshold", "1s"];
    let (tracer, err) = attach_piped(target.pid(), &args);
    tell_exit(&mut target);
    wait_for(&err, Duration::from_secs(10), "exec'd ");
    let out = tracer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = String::from_utf8_lossy(&out.stdout);
    let summary = json_line(&out, "summary");
    assert_eq!(
        summary["stop"], "target exec'd another program",
        "{summary}"
    );
    assert_eq!(summary["goroutines_parked"], 0, "{summary}");
    assert!(target.alive(), "the new program was stopped");

    // run: the new program's end is the run's end, and its status counts.
    let (code, out, err) = run_exits(
        &["--park-threshold", "1s"],
        &["-exec", "/bin/sleep", "-exec-arg", "1.5"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exec'd"), "{err}");
    assert!(!out.contains("parked_at_exit"), "{out}");
    assert!(!out.contains("long_parked"), "{out}");
}

#[test]
fn a_closed_output_ends_the_tracer_quietly() {
    let bin = exits();
    // `tracer plan --exe BIN | head -1`
    let mut plan = tracer()
        .args(["plan", "--exe", &bin])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(plan.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = plan.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0) | Some(141)), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // `tracer attach PID --events | head -1`: the tracer stops, the target runs on.
    let target = start_fixture(std::path::Path::new(&bin), &["-wait", "-chatty"]);
    let mut attach = tracer()
        .args(["attach", &target.pid().to_string(), "--events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(attach.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while attach.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "tracer went on with its output closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = attach.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(state(target.pid()), Some('S') | Some('R')));
}

#[test]
fn output_file_keeps_the_report_apart_from_the_programs_stdout() {
    let path = std::env::temp_dir().join(format!("tracer-report-{}.jsonl", std::process::id()));
    let path_s = path.to_str().unwrap().to_string();
    let (code, out, err) = run_exits(&["--output", &path_s], &["-chatty", "-after", "300ms"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("program says"), "{out}");
    assert!(!out.contains("\"kind\""), "{out}");
    let report = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    for line in report.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert_eq!(json_line(&report, "summary")["stop"], "target exited");
}

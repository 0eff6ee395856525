//! Binaries built without DWARF (`go build -ldflags=-w`), and without a symbol
//! table either (`-ldflags='-s -w'`): struct offsets and wait reasons come from
//! the table of Go minors, lines and inlined frames from the pclntab, functions
//! from the pclntab and `runtime.allgs` from the code that appends to it. The
//! same scenarios must give the same findings as on the default build (function,
//! file:line, wait reason, start function, creator, frames, object), in attach
//! and run, watch and parks modes, on the default and the oldest Go; a Go newer
//! than the table is refused.
use std::time::Duration;
use tracer_tests::*;

const ALL: &str = "send,recv,wgfanout,rangeopen,circular,nilchan,timeout,panicrecover";
const NO_DWARF: &[&str] = &["-ldflags=-w"];
const STRIPPED: &[&str] = &["-ldflags=-s -w"];

/// What the findings say about each goroutine the fixture announced, without
/// what changes from run to run (goids, addresses, times), sorted. Also checks
/// each against the fixture's own words.
fn normalized(records: &[Record], out: &str, rule: &str) -> Vec<String> {
    let findings: Vec<serde_json::Value> = json_lines(out)
        .into_iter()
        .filter(|v| v["kind"] == "goroutine" && v["rule"] == rule)
        .collect();
    let mut v = Vec::new();
    for e in records
        .iter()
        .filter(|r| r.kind == "expect" && r.get("rule") != "growing")
    {
        let goid = e.u64("goid");
        let f = findings
            .iter()
            .find(|f| f["goid"].as_u64() == Some(goid))
            .unwrap_or_else(|| panic!("no {rule} finding for {e:?}\n{out}"));
        let ctx = format!("{e:?} vs {f}");
        assert_eq!(f["wait_reason"], e.get("wait"), "{ctx}");
        assert_eq!(f["site"]["function"], e.get("func"), "{ctx}");
        assert_eq!(f["site"]["line"].as_u64(), Some(e.u64("line")), "{ctx}");
        assert_eq!(f["created_by"]["function"], e.get("creator"), "{ctx}");
        if let Some(addr) = e.get("object").strip_prefix("chan:0x") {
            let addr = u64::from_str_radix(addr, 16).unwrap();
            assert_eq!(f["object"]["addr"].as_u64(), Some(addr), "{ctx}");
            // The element type, named from the type descriptor as reflect does.
            assert!(f["object"]["elem_type"].is_string(), "{ctx}");
        }
        v.push(
            serde_json::json!({
                "scenario": e.get("scenario"),
                "wait_reason": f["wait_reason"],
                "site": f["site"],
                "frames": f["frames"],
                "start_function": f["start_function"],
                "created_by": f["created_by"],
                "object": f["object"]["kind"],
                "elem_type": f["object"]["elem_type"],
            })
            .to_string(),
        );
    }
    assert!(!v.is_empty(), "fixture announced nothing");
    v.sort();
    v
}

/// Attached (before the goroutines block) in `mode`, to the scenarios built with
/// `flags`.
fn attach(go: Go, flags: &[&str], mode: &str) -> Vec<String> {
    let bin = build_fixture("scenarios", go, flags);
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
        "--mode",
        mode,
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
    assert_eq!(code, 0, "{err}");
    normalized(&records, &out, "long_parked")
}

/// Run by the tracer in `mode`, to the scenarios' exit.
fn run(go: Go, flags: &[&str], mode: &str) -> Vec<String> {
    let bin = build_fixture("scenarios", go, flags);
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
    assert_eq!(code, 1, "--fail-on leak must fail: {err}");
    let records: Vec<Record> = out
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(parse_record)
        .collect();
    normalized(&records, &out, "parked_at_exit")
}

fn same(go: Go, how: fn(Go, &[&str], &str) -> Vec<String>, mode: &str) {
    let with = how(go, &[], mode);
    for flags in [NO_DWARF, STRIPPED] {
        let without = how(go, flags, mode);
        assert_eq!(
            without, with,
            "{go:?} {mode} {flags:?}: findings differ from the default build's"
        );
    }
}

#[test]
fn attach_parks_default_go() {
    same(Go::Default, attach, "parks");
}

#[test]
fn attach_watch_default_go() {
    same(Go::Default, attach, "watch");
}

#[test]
fn run_parks_default_go() {
    same(Go::Default, run, "parks");
}

#[test]
fn run_watch_default_go() {
    same(Go::Default, run, "watch");
}

#[test]
fn attach_parks_oldest_go() {
    same(Go::Oldest, attach, "parks");
}

#[test]
fn attach_watch_oldest_go() {
    same(Go::Oldest, attach, "watch");
}

#[test]
fn run_parks_oldest_go() {
    same(Go::Oldest, run, "parks");
}

#[test]
fn run_watch_oldest_go() {
    same(Go::Oldest, run, "watch");
}

/// The plan of a binary without DWARF (or symbols) is the plan of the default
/// build: the same probes at the same places (the code is the same), the same
/// lock sites (less the fields that name their classes, which need DWARF).
#[test]
fn plan_is_the_default_builds() {
    for go in [Go::Default, Go::Oldest] {
        let plan = |flags: &[&str]| {
            let bin = build_fixture("locks", go, flags);
            let (code, out, err) = run_tracer(
                &["plan", "--exe", bin.to_str().unwrap(), "--mode", "locks"],
                Duration::from_secs(60),
            );
            assert_eq!(code, 0, "{err}");
            // The executable's path is the one line that differs, and the
            // lock classes named by fields (only the DWARF names them).
            out.lines()
                .filter(|l| !l.starts_with("target "))
                .map(|l| match l.find(" (class ") {
                    Some(i) => l[..i].to_string(),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
        };
        let with = plan(&[]);
        assert!(with.len() > 10, "{with:?}");
        for flags in [NO_DWARF, STRIPPED] {
            assert_eq!(plan(flags), with, "{go:?} {flags:?}");
        }
    }
}

/// A binary without DWARF from a Go minor newer than the table: one line, exit 2.
#[test]
fn newer_go_without_dwarf_is_refused() {
    let bin = build_fixture("chansend", Go::Default, NO_DWARF);
    let mut data = std::fs::read(&bin).unwrap();
    // The version string in .go.buildinfo, go1.NN.P, becomes go1.99.P.
    let magic = b"\xff Go buildinf:";
    let start = data
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("build info");
    let at = start
        + data[start..]
            .windows(4)
            .position(|w| w == b"go1.")
            .expect("version");
    data[at + 4..at + 6].copy_from_slice(b"99");
    let patched = bin.with_file_name("chansend-go1.99-w");
    std::fs::write(&patched, &data).unwrap();
    let (code, out, err) = run_tracer(
        &["plan", "--exe", patched.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{out} {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.contains("Go 1.99 is newer than this tracer knows (up to 1.")
            && err.contains("rebuild with DWARF (without -ldflags=-w) or update tracer"),
        "{err}"
    );
}

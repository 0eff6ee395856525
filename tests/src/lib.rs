//! Harness for the end-to-end tests: builds the Go fixtures, runs them, reads their
//! stdout protocol (`tests/fixtures/*/proto.go`), and runs the real tracer binary
//! against them. Tests run through `cargo xtask test`, which sets the environment.
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: run the tests with `cargo xtask test`"))
}

/// The tracer binary under test.
pub fn tracer_bin() -> PathBuf {
    env_path("TRACER_BIN")
}

/// Go toolchains the fixtures are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    Default,
    Oldest,
    /// The newest Go the tests know (`_Gleaked` goroutines, the `goroutineleak`
    /// profile without an experiment).
    Newest,
}

impl Go {
    pub fn bin(self) -> PathBuf {
        match self {
            Go::Default => env_path("TRACER_GO"),
            Go::Oldest => env_path("TRACER_GO_OLDEST"),
            Go::Newest => env_path("TRACER_GO_NEWEST"),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Go::Default => "default",
            Go::Oldest => "oldest",
            Go::Newest => "newest",
        }
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Builds `tests/fixtures/<name>` once per Go version and flag set per test run.
pub fn build_fixture(name: &str, go: Go, extra: &[&str]) -> PathBuf {
    build_fixture_env(name, go, extra, &[])
}

/// [`build_fixture`] with environment variables for `go build` (`CGO_ENABLED`).
pub fn build_fixture_env(name: &str, go: Go, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = LOCK
        .get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out_dir = env_path("TRACER_BUILD_DIR").join(go.tag());
    std::fs::create_dir_all(&out_dir).expect("creating the fixture build dir");
    let mut suffix = extra.join("");
    for (k, v) in env {
        suffix.push_str(&format!("{k}{v}"));
    }
    let suffix = suffix.replace(['-', '=', ' ', '/'], "");
    let out = out_dir.join(format!("{name}{suffix}"));
    let built = build_go(&go.bin(), name, extra, env, &out);
    assert!(built, "go build of fixture {name} failed");
    out
}

/// Builds `tests/fixtures/<name>` with the `go` command at `go` into `out`;
/// false if `go build` failed (its errors go to stderr).
pub fn build_go(go: &Path, name: &str, extra: &[&str], env: &[(&str, &str)], out: &Path) -> bool {
    Command::new(go)
        .arg("build")
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(".")
        .current_dir(fixtures_dir().join(name))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .envs(env.iter().copied())
        .status()
        .expect("running go build")
        .success()
}

/// Every scenario of the scenarios fixture that leaves goroutines stuck for good.
pub const SCENARIOS: &str = "send,recv,wgfanout,rangeopen,circular,nilchan,timeout,panicrecover";

/// The build flavours production ships: (name, `go build` flags).
pub const FLAVOURS: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("-ldflags=-s -w", &["-ldflags=-s -w"]),
    ("-ldflags=-w", &["-ldflags=-w"]),
    ("-buildmode=pie", &["-buildmode=pie"]),
    ("-trimpath", &["-trimpath"]),
];

/// Attaches to the scenarios fixture at `bin` before its goroutines park (the
/// park probes see them, the memory reads confirm them) and checks that the
/// findings are exactly the goroutines the fixture announced, as it described
/// them.
pub fn scenarios_found_attached(bin: &Path) {
    let mut fixture = start_fixture(bin, &["-only", SCENARIOS, "-delay", "1s"]);
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
    assert_eq!(code, 0, "{}: {err}", bin.display());
    let expected = check_expectations(&records, &out, "long_parked");
    assert_eq!(
        finding_goids(&out, "long_parked"),
        expected,
        "{}\n{out}",
        bin.display()
    );
    assert_eq!(
        json_line(&out, "summary")["symbols_missing"],
        serde_json::json!([]),
        "{}",
        bin.display()
    );
}

/// Runs the scenarios fixture at `bin` under `tracer run` to its exit and checks
/// that exactly the goroutines it announced are reported parked at exit.
pub fn scenarios_found_under_run(bin: &Path) {
    let (code, out, err) = run_tracer(
        &[
            "run",
            "--format",
            "json",
            "--verbose",
            "--fail-on",
            "leak",
            "--",
            bin.to_str().unwrap(),
            "-only",
            SCENARIOS,
            "-exit-after",
            "300ms",
        ],
        Duration::from_secs(60),
    );
    let ctx = bin.display();
    assert_eq!(code, 1, "{ctx}: --fail-on leak must fail: {err}\n{out}");
    let expected = check_expectations(&program_records(&out), &out, "parked_at_exit");
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

/// One protocol line: record type and its key=value pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub fields: HashMap<String, String>,
}

impl Record {
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map(String::as_str).unwrap_or("")
    }

    pub fn u64(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} in {self:?}"))
    }
}

/// Parses `kind k=v k2="quoted value"`.
pub fn parse_record(line: &str) -> Record {
    let line = line.trim();
    let (kind, mut rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut fields = HashMap::new();
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut end = 0;
            let bytes = q.as_bytes();
            while end < bytes.len()
                && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
            {
                end += 1;
            }
            (
                q[..end].replace("\\\"", "\""),
                q.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        fields.insert(key.to_string(), value);
        rest = tail;
    }
    Record {
        kind: kind.to_string(),
        fields,
    }
}

/// A running process whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        cmd.stdout(Stdio::piped()).stdin(Stdio::piped());
        // A program copied just now may still be open for writing in a child that
        // another test thread forked meanwhile (until that child execs): the exec
        // then fails with ETXTBSY for a moment.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("starting {cmd:?}: {e}"),
            }
        };
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Next line matching `pred`, waiting at most `timeout`.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return Some(l);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// All protocol records up to and including `ready`.
    pub fn until_ready(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let Some(l) = self.wait_line(Duration::from_secs(60), |_| true) else {
                break;
            };
            let r = parse_record(&l);
            let done = r.kind == "ready";
            out.push(r);
            if done {
                return out;
            }
        }
        panic!("fixture never printed ready; saw {:?}", self.seen);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a fixture and returns it with its `pid` record consumed.
pub fn start_fixture(bin: &Path, args: &[&str]) -> Proc {
    let mut p = Proc::spawn(Command::new(bin).args(args));
    let l = p
        .wait_line(Duration::from_secs(30), |l| l.starts_with("pid "))
        .expect("fixture printed no pid line");
    assert_eq!(parse_record(&l).u64("pid"), u64::from(p.pid()));
    p
}

/// The tracer command.
pub fn tracer() -> Command {
    let mut c = Command::new(tracer_bin());
    c.env("RUST_LOG", "warn");
    c
}

/// Runs the tracer to completion with a time limit; returns (exit code, stdout, stderr).
pub fn run_tracer(args: &[&str], limit: Duration) -> (i32, String, String) {
    finish(tracer().args(args), limit)
}

/// `tracer run --mode locks --budget 0 --fail-on lock --format json -- BIN ARGS`:
/// every lock operation seen, a lock finding fails the run.
pub fn run_locks_mode(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "run",
        "--mode",
        "locks",
        "--budget",
        "0",
        "--fail-on",
        "lock",
        "--format",
        "json",
        "--",
    ];
    let bin = bin.to_str().expect("a UTF-8 path");
    all.push(bin);
    all.extend_from_slice(args);
    run_tracer(&all, Duration::from_secs(60))
}

/// Runs `cmd` to completion within `limit`, polling; returns (exit code, stdout,
/// stderr). Both are read while it runs: a chatty program (a test suite's logs)
/// would otherwise fill the pipe and block.
pub fn finish(cmd: &mut Command, limit: Duration) -> (i32, String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let end = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// The `goroutine` findings of a JSON report.
pub fn goroutine_findings(out: &str) -> Vec<serde_json::Value> {
    json_lines(out)
        .into_iter()
        .filter(|v| v["kind"] == "goroutine")
        .collect()
}

/// The protocol records among the lines of `tracer run`'s output (the program's
/// own stdout, next to the tracer's JSON).
pub fn program_records(out: &str) -> Vec<Record> {
    out.lines()
        .filter(|l| !l.starts_with('{'))
        .map(parse_record)
        .collect()
}

/// Asserts a finding for each `expect` record (other than `growing`) with the
/// given rule, as the fixture's own Go described the goroutine: wait reason,
/// blocking function, file and line, start function, creator, object. Returns
/// the goids checked.
pub fn check_expectations(records: &[Record], out: &str, rule: &str) -> Vec<u64> {
    let findings = goroutine_findings(out);
    let mut checked = Vec::new();
    for e in records
        .iter()
        .filter(|r| r.kind == "expect" && r.get("rule") != "growing")
    {
        let goid = e.u64("goid");
        let f = findings
            .iter()
            .find(|f| f["goid"].as_u64() == Some(goid) && f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} finding for {e:?}\n{out}"));
        let ctx = format!("{e:?} vs {f}");
        assert_eq!(f["wait_reason"], e.get("wait"), "{ctx}");
        assert_eq!(f["site"]["line"].as_u64(), Some(e.u64("line")), "{ctx}");
        assert!(
            f["site"]["file"].as_str().unwrap().ends_with(e.get("file")),
            "{ctx}"
        );
        assert_eq!(f["site"]["function"], e.get("func"), "{ctx}");
        // The stack reads as Go's dump does: gopark on top, each frame once (a probe
        // on gopark's call sites walks from the call, not from gopark).
        let frames = f["frames"].as_array().expect("frames");
        assert_eq!(frames[0]["function"], "runtime.gopark", "{ctx}");
        assert!(frames.windows(2).all(|w| w[0] != w[1]), "{ctx}");
        assert_eq!(f["start_function"], e.get("start"), "{ctx}");
        assert_eq!(f["created_by"]["function"], e.get("creator"), "{ctx}");
        match e.get("object") {
            "nil" => assert_eq!(f["object"]["kind"], "nil_channel", "{ctx}"),
            o if o.starts_with("chan:") => {
                let addr = u64::from_str_radix(o.trim_start_matches("chan:0x"), 16).unwrap();
                assert_eq!(f["object"]["kind"], "channel", "{ctx}");
                assert_eq!(f["object"]["addr"].as_u64(), Some(addr), "{ctx}");
            }
            _ => {}
        }
        checked.push(goid);
    }
    assert!(!checked.is_empty(), "fixture announced nothing");
    checked.sort_unstable();
    checked
}

/// The goids of the findings of one rule, sorted, each once (a finding streamed
/// as it fired is in the final report again).
pub fn finding_goids(out: &str, rule: &str) -> Vec<u64> {
    let mut goids: Vec<u64> = goroutine_findings(out)
        .iter()
        .filter(|f| f["rule"] == rule)
        .filter_map(|f| f["goid"].as_u64())
        .collect();
    goids.sort_unstable();
    goids.dedup();
    goids
}

/// JSON lines of an output, skipping anything that is not JSON.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last JSON line of this `kind` (`summary`, `budget`, ...); panics if none.
pub fn json_line(out: &str, kind: &str) -> serde_json::Value {
    json_lines(out)
        .into_iter()
        .rev()
        .find(|v| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} line in:\n{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protocol_lines() {
        let r = parse_record(
            r#"expect goid=7 wait="chan send" file=main.go line=12 object=chan:0xc000"#,
        );
        assert_eq!(r.kind, "expect");
        assert_eq!(r.u64("goid"), 7);
        assert_eq!(r.get("wait"), "chan send");
        assert_eq!(r.get("object"), "chan:0xc000");
        assert_eq!(parse_record("ready").kind, "ready");
    }
}

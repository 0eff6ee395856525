//! `cargo xtask bench [--quick]`: what tracing costs a Go program, and what the agent
//! itself can take.
//!
//! Target side: every workload of `tests/fixtures/bench` runs untraced, under the
//! tracer in each mode, and under Go's own block+mutex profiler and runtime/trace.
//! Runs alternate (untraced, config 1, config 2, ..., untraced, config 1, ...), and
//! the tables quote the median of the per-round ratios against the untraced run of
//! the same round, never an absolute time alone. Each run's size is calibrated so it
//! lasts about the same time under every configuration (ops/s is a rate, so sizes may
//! differ). The realistic workload is the net/http JSON service driven by
//! `tests/fixtures/loadgen` on 127.0.0.1, in requests/s.
//!
//! Agent side: the highest event rate drained without a drop (flood workload), what
//! happens beyond it, the agent's CPU time (utime+stime from `/proc/PID/stat`, read
//! once it is a zombie and before it is reaped) and peak RSS (`VmHWM`, sampled while
//! it runs), attach time on a ~100 MB generated Go binary (`tests/fixtures/bigbin`
//! plus generated packages, cached under `build/bench/`), and snapshot time and RSS
//! with 100,000 parked goroutines (`tests/fixtures/many`).
//!
//! Writes `build/bench/results.md` and `build/bench/results.json`, also when a section
//! failed (the task then fails after writing them). `--quick` is the one-iteration
//! smoke run `cargo xtask test` does (tiny sizes, a small generated binary, 1 s HTTP
//! runs): it fails only on real errors (a run that crashes or prints no result),
//! never because a target was missed.
use crate::setup::{build_dir, root, run, DEFAULT_GO};
use crate::tasks::{build, go_command};
use anyhow::{bail, Context as _, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// (workload, what one operation is, operations in a quick or calibration run)
const WORKLOADS: &[(&str, &str, u64)] = &[
    ("pingpong", "round trip over unbuffered channels", 5_000),
    (
        "pipeline",
        "item through a 3-stage buffered pipeline",
        20_000,
    ),
    ("mutex", "uncontended Lock+Unlock", 500_000),
    ("contended", "Lock+Unlock shared by 8 goroutines", 100_000),
    ("select", "select on a channel and a timer", 5_000),
];

/// Throughput-loss targets on the HTTP service.
const PARKS_MAX_LOSS: f64 = 0.05;
const WATCH_MAX_LOSS: f64 = 0.01;
/// The tracer's default `--budget`, in percent.
const DEFAULT_LOCK_BUDGET: f64 = 5.0;
const MIN_DRAIN_RATE: f64 = 1_000_000.0;
const MAX_ATTACH_SECS: f64 = 1.0;
const MAX_SNAPSHOT_RSS_MB: f64 = 100.0;
const HTTP_CONNS: u32 = 8;
/// The fixed-rate HTTP runs send this share of the untraced saturated rate.
const HTTP_RATE_SHARE: f64 = 0.5;
/// No single run may take longer than this, whatever the configuration.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// A tracer mode whose session costs more than this on top of the workload (start-up
/// plus tear-down) is run once per workload instead of every round (full bench), or
/// only once at all (quick run), so that the bench stays within its time.
const SLOW_SESSION_SECS: f64 = 5.0;
/// Attach runs in modes other than the default give up after this long.
const OPTIONAL_ATTACH_TIMEOUT: Duration = Duration::from_secs(120);
/// Markers on the tracer's stderr, timed by the sampler.
const ATTACHED: &str = "tracer: attached";
const STOPPED: &str = "tracer: stopped";

#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Untraced,
    /// `tracer run --mode MODE EXTRA... -- bench ...`
    Run {
        mode: &'static str,
        extra: &'static [&'static str],
    },
    /// `tracer attach PID --mode MODE` once, in the middle of the HTTP load (a mode
    /// the tracer offers for attach only).
    Attach {
        mode: &'static str,
    },
    /// The bench fixture's own flag turning on one of Go's tools.
    Go(&'static str),
}

impl How {
    fn mode(self) -> Option<&'static str> {
        match self {
            How::Run { mode, .. } | How::Attach { mode } => Some(mode),
            _ => None,
        }
    }
}

struct Config {
    id: &'static str,
    label: &'static str,
    how: How,
}

const CONFIGS: &[Config] = &[
    Config {
        id: "untraced",
        label: "untraced",
        how: How::Untraced,
    },
    Config {
        id: "snapshot",
        label: "tracer snapshot",
        how: How::Attach { mode: "snapshot" },
    },
    Config {
        id: "watch",
        label: "tracer watch",
        how: How::Run {
            mode: "watch",
            extra: &[],
        },
    },
    Config {
        id: "parks",
        label: "tracer parks",
        how: How::Run {
            mode: "parks",
            extra: &[],
        },
    },
    Config {
        id: "locks",
        label: "tracer locks (default budget)",
        how: How::Run {
            mode: "locks",
            extra: &[],
        },
    },
    Config {
        id: "locks-budget0",
        label: "tracer locks --budget 0",
        how: How::Run {
            mode: "locks",
            extra: &["--budget", "0"],
        },
    },
    Config {
        id: "blockprofile",
        label: "Go block+mutex profile, rate 1",
        how: How::Go("-blockprofile"),
    },
    Config {
        id: "trace",
        label: "Go runtime/trace",
        how: How::Go("-trace"),
    },
];

/// The flood measures the agent's drain rate: every park must be a record, so the
/// park probes are not sampled, and the kernel writes each park record 8 times
/// (`--bench-copies`): the target cannot trap fast enough on two cores to load an
/// agent that has one of them.
const FLOOD: Config = Config {
    id: "parks-budget0",
    label: "tracer parks --budget 0 --bench-copies 8",
    how: How::Run {
        mode: "parks",
        extra: &["--budget", "0", "--bench-copies", "8"],
    },
};

fn config(id: &str) -> &'static Config {
    CONFIGS.iter().find(|c| c.id == id).expect("known config")
}

/// Size of the generated large binary.
#[derive(Clone, Copy)]
struct BigBin {
    name: &'static str,
    packages: usize,
    files: usize,
    funcs_per_file: usize,
    table_mib_per_package: usize,
}

struct Params {
    quick: bool,
    rounds: usize,
    /// Target length of one workload run (full bench).
    run_secs: f64,
    http_rounds: usize,
    /// Rounds at a fixed request rate (service CPU per request).
    http_rate_rounds: usize,
    http_secs: u64,
    flood_pairs: &'static [u64],
    flood_secs: f64,
    attach_reps: usize,
    snapshot_goroutines: u64,
    snapshot_reps: usize,
    bigbin: BigBin,
}

impl Params {
    fn new(quick: bool) -> Self {
        if quick {
            Params {
                quick,
                rounds: 1,
                run_secs: 0.0,
                http_rounds: 1,
                http_rate_rounds: 1,
                http_secs: 1,
                flood_pairs: &[64],
                flood_secs: 0.0,
                attach_reps: 1,
                snapshot_goroutines: 10_000,
                snapshot_reps: 1,
                bigbin: BigBin {
                    name: "bigbin-quick",
                    packages: 2,
                    files: 2,
                    funcs_per_file: 100,
                    table_mib_per_package: 1,
                },
            }
        } else {
            Params {
                quick,
                rounds: 5,
                run_secs: 0.5,
                // Loopback HTTP on two shared cores varies ±10% run to run: many
                // short alternating rounds give a steadier median than a few long.
                http_rounds: 10,
                http_rate_rounds: 12,
                http_secs: 4,
                flood_pairs: &[1, 2, 4, 8, 64, 512, 4096],
                flood_secs: 2.0,
                attach_reps: 5,
                snapshot_goroutines: 100_000,
                snapshot_reps: 3,
                bigbin: BigBin {
                    name: "bigbin",
                    packages: 8,
                    files: 25,
                    funcs_per_file: 500,
                    table_mib_per_package: 7,
                },
            }
        }
    }
}

/// What the agent cost during one run.
#[derive(Clone, Default)]
struct Agent {
    cpu_s: f64,
    wall_s: f64,
    peak_rss_kb: u64,
    /// When the tracer said it had attached / stopped, from its start.
    attached_s: Option<f64>,
    stopped_s: Option<f64>,
    events: u64,
    drops: u64,
    duration_ns: u64,
}

impl Agent {
    /// Time from "stopped" to the process's exit.
    fn teardown_s(&self) -> Option<f64> {
        self.stopped_s.map(|s| (self.wall_s - s).max(0.0))
    }
}

#[derive(Clone)]
struct Sample {
    /// ops/s (workloads), requests/s (saturated HTTP) or requests per second of
    /// the service's CPU time (fixed-rate HTTP).
    rate: f64,
    /// The workload's own elapsed time.
    work_ns: u64,
    agent: Option<Agent>,
}

impl Sample {
    /// The tracer session's cost on top of the workload itself.
    fn session_overhead_s(&self) -> Option<f64> {
        let a = self.agent.as_ref()?;
        Some(a.wall_s - self.work_ns as f64 / 1e9)
    }
}

/// One configuration of one workload, over all rounds.
struct Row {
    workload: String,
    config: &'static Config,
    /// Operations per run (0 for the time-bounded HTTP runs).
    n: u64,
    samples: Vec<Sample>,
    ratios: Vec<f64>,
    /// Why there is no figure (shown in its place).
    na: Option<String>,
    /// Run once, not every round (slow tracer session), compared with the median
    /// untraced run.
    once: bool,
}

impl Row {
    fn new(workload: &str, config: &'static Config, n: u64) -> Self {
        Row {
            workload: workload.to_string(),
            config,
            n,
            samples: Vec::new(),
            ratios: Vec::new(),
            na: None,
            once: false,
        }
    }
}

struct FloodRun {
    pairs: u64,
    n: u64,
    work_ns: u64,
    agent: Agent,
    /// The agent was stopped this long in the middle of the run (overload test).
    paused_s: Option<f64>,
}

impl FloodRun {
    /// Events over the whole tracer session (the summary's duration).
    fn rate(&self) -> f64 {
        self.agent.events as f64 / (self.agent.duration_ns.max(1) as f64 / 1e9)
    }

    /// Events over the workload's own run time, when they were produced.
    fn work_rate(&self) -> f64 {
        self.agent.events as f64 / (self.work_ns.max(1) as f64 / 1e9)
    }
}

struct AttachRun {
    agent: Agent,
    snapshot: Option<(u64, String)>,
}

struct AttachRow {
    mode: String,
    runs: Vec<AttachRun>,
    na: Option<String>,
}

struct BinInfo {
    path: PathBuf,
    bytes: u64,
    funcs: usize,
    sections: Vec<(String, u64)>,
}

struct Ctx {
    p: Params,
    tracer: PathBuf,
    bench: PathBuf,
    loadgen: PathBuf,
    many: PathBuf,
    tmp: PathBuf,
    seq: u64,
    /// `tracer run --help` and `tracer attach --help`, to see which flags exist.
    help: String,
    /// Configurations the tracer does not offer (config id -> why).
    na: HashMap<&'static str, String>,
    /// Modes whose sessions are slow (mode -> seconds on top of the workload).
    slow: HashMap<&'static str, f64>,
    clk_tck: f64,
}

pub fn bench(args: &[String]) -> Result<()> {
    let mut quick = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            other => bail!("bench: unknown argument {other} (usage: cargo xtask bench [--quick])"),
        }
    }
    let started = Instant::now();
    let tracer = build()?;
    let dir = build_dir().join("bench");
    let tmp = dir.join("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let mut bins = Vec::new();
    for name in ["bench", "loadgen", "many"] {
        let out = dir.join(name);
        run(go_command(DEFAULT_GO)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(root().join("tests/fixtures").join(name)))?;
        bins.push(out);
    }
    let help = ["run", "attach"]
        .iter()
        .filter_map(|sub| Command::new(&tracer).args([sub, "--help"]).output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let mut ctx = Ctx {
        p: Params::new(quick),
        tracer,
        bench: bins[0].clone(),
        loadgen: bins[1].clone(),
        many: bins[2].clone(),
        tmp: tmp.clone(),
        seq: 0,
        help,
        na: HashMap::new(),
        slow: HashMap::new(),
        clk_tck: clock_ticks(),
    };

    // A failed section is reported in the results, which are written anyway.
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (w, _, base_n) in WORKLOADS {
        let r = ctx.workload(w, *base_n);
        rows.extend(keep(&mut errors, w, r).unwrap_or_default());
    }
    let r = ctx.http();
    let (http, http_rate) = keep(&mut errors, "httpservice", r).unwrap_or_default();
    let r = ctx.flood();
    let flood = keep(&mut errors, "flood", r).unwrap_or_default();
    let size = ctx.p.bigbin;
    let bin = keep(&mut errors, "large binary build", bigbin(&size));
    let mut attach = Vec::new();
    if let Some(bin) = &bin {
        let r = ctx.attach_times(bin);
        attach = keep(&mut errors, "attach time", r).unwrap_or_default();
    }
    let r = ctx.snapshot();
    let snapshot = keep(&mut errors, "snapshot", r).unwrap_or_default();

    let elapsed = started.elapsed();
    let report = Report {
        ctx: &ctx,
        rows: &rows,
        http: &http,
        http_rate: &http_rate,
        flood: &flood,
        bin: bin.as_ref(),
        attach: &attach,
        snapshot: &snapshot,
        errors: &errors,
        elapsed,
    };
    let md = report.markdown();
    fs::write(dir.join("results.md"), &md)?;
    fs::write(dir.join("results.json"), report.json().render() + "\n")?;
    if errors.is_empty() {
        let _ = fs::remove_dir_all(&tmp);
    }
    print!("{md}");
    eprintln!(
        "bench: wrote {} and results.json in {:.0?}",
        dir.join("results.md").display(),
        elapsed
    );
    if !errors.is_empty() {
        bail!(
            "bench: {} section(s) failed (results written without them):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    Ok(())
}

fn keep<T>(errors: &mut Vec<String>, section: &str, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("bench: {section} FAILED: {e:#}");
            errors.push(format!("{section}: {e:#}"));
            None
        }
    }
}

impl Ctx {
    /// Fresh stdout/stderr capture files for one process.
    fn files(&mut self) -> (PathBuf, PathBuf) {
        self.seq += 1;
        (
            self.tmp.join(format!("{}.out", self.seq)),
            self.tmp.join(format!("{}.err", self.seq)),
        )
    }

    /// The tracer flags of a configuration, or why this tracer cannot run it.
    fn tracer_flags(&self, how: How) -> Result<Vec<String>, String> {
        let (mode, extra) = match how {
            How::Run { mode, extra } => (mode, extra),
            How::Attach { mode } => (mode, &[][..]),
            _ => return Ok(Vec::new()),
        };
        let mut flags = Vec::new();
        if self.help.contains("--mode") {
            flags.extend(["--mode".to_string(), mode.to_string()]);
        } else if mode != "parks" {
            // parks is the default mode, so a tracer without --mode still runs it.
            return Err("mode not available: this tracer has no --mode".into());
        }
        for e in extra.iter().filter(|e| e.starts_with("--")) {
            if !self.help.contains(e) {
                return Err(format!("mode not available: this tracer has no {e}"));
            }
        }
        flags.extend(extra.iter().map(|s| s.to_string()));
        Ok(flags)
    }

    fn unavailable(&mut self, cfg: &'static Config, why: String) -> Option<Sample> {
        eprintln!("bench: {}: {why}", cfg.label);
        self.na.insert(cfg.id, why);
        None
    }

    /// Why a configuration is not run here, if it is not.
    fn skip(&self, cfg: &'static Config, workload: &str) -> Option<String> {
        if let Some(why) = self.na.get(cfg.id) {
            return Some(why.clone());
        }
        if matches!(cfg.how, How::Attach { .. }) && workload != "httpservice" {
            return Some("attach-only mode: measured on the HTTP service".into());
        }
        let slow = cfg.how.mode().and_then(|m| self.slow.get(m));
        match slow {
            Some(s) if self.p.quick => Some(format!(
                "skipped in --quick: a {} session takes {s:.0} s more than its workload",
                cfg.how.mode().unwrap_or_default()
            )),
            _ => None,
        }
    }

    /// Runs a workload of the bench fixture once under a configuration. `None` when
    /// the tracer does not offer the configuration.
    fn run_workload(&mut self, cfg: &'static Config, args: &[String]) -> Result<Option<Sample>> {
        match cfg.how {
            How::Untraced | How::Go(_) => {
                let (out, err) = self.files();
                let what = format!("`bench {}` under {}", args.join(" "), cfg.label);
                let mut bench_args = args.to_vec();
                if let How::Go(flag) = cfg.how {
                    bench_args.push(flag.to_string());
                }
                let mut child = Command::new(&self.bench)
                    .args(&bench_args)
                    .stdin(Stdio::null())
                    .stdout(file(&out)?)
                    .stderr(file(&err)?)
                    .spawn()
                    .with_context(|| format!("starting {}", self.bench.display()))?;
                let status = wait_child(&mut child, RUN_TIMEOUT).context(what.clone())?;
                let text = read(&out);
                let (rate, work_ns) = result_line(&text)
                    .ok_or_else(|| failure(&what, "printed no result", status, &out, &err))?;
                remove(&[&out, &err]);
                Ok(Some(Sample {
                    rate,
                    work_ns,
                    agent: None,
                }))
            }
            How::Attach { .. } => Ok(None),
            How::Run { .. } => self.run_traced(cfg, args, None),
        }
    }

    /// A workload under `tracer run`; with `pause` = (after, for), the tracer is
    /// stopped (SIGSTOP) `after` its "attached" line, for `for`, while the target
    /// goes on producing events.
    fn run_traced(
        &mut self,
        cfg: &'static Config,
        bench_args: &[String],
        pause: Option<(Duration, Duration)>,
    ) -> Result<Option<Sample>> {
        let (out, err) = self.files();
        let what = format!("`bench {}` under {}", bench_args.join(" "), cfg.label);
        let flags = match self.tracer_flags(cfg.how) {
            Ok(f) => f,
            Err(why) => return Ok(self.unavailable(cfg, why)),
        };
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["run", "--format", "json"])
            .args(&flags)
            .arg("--")
            .arg(&self.bench)
            .args(bench_args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let m = Monitored::spawn(&mut cmd, Duration::from_millis(5), &err)?;
        if let Some((after, stopped)) = pause {
            let deadline = Instant::now() + Duration::from_secs(60);
            while m.attached().is_none() && m.running() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            thread::sleep(after);
            if m.running() {
                signal(m.pid, "STOP");
                thread::sleep(stopped);
                signal(m.pid, "CONT");
            }
        }
        let (status, mut agent) = m.finish(RUN_TIMEOUT, self.clk_tck).context(what.clone())?;
        let text = read(&out);
        let Some((rate, work_ns)) = result_line(&text) else {
            if let Some(why) = usage_error(status, &text, &read(&err)) {
                return Ok(self.unavailable(cfg, why));
            }
            return Err(failure(&what, "printed no result", status, &out, &err));
        };
        agent_summary(&what, status, &text, &out, &err, &mut agent)?;
        remove(&[&out, &err]);
        Ok(Some(Sample {
            rate,
            work_ns,
            agent: Some(agent),
        }))
    }

    /// Notes a mode as slow when this sample's session cost says so.
    fn check_slow(&mut self, cfg: &'static Config, s: &Sample) -> bool {
        match (cfg.how.mode(), s.session_overhead_s()) {
            (Some(mode), Some(over)) if over > SLOW_SESSION_SECS => {
                eprintln!(
                    "bench: {}: the tracer session took {over:.1} s more than the workload; \
                     {mode} mode runs once per workload from now on",
                    cfg.label
                );
                self.slow.insert(mode, over);
                true
            }
            (Some(mode), _) => self.slow.contains_key(mode),
            _ => false,
        }
    }

    /// All configurations of one workload, alternating, with sizes calibrated so
    /// every run takes about `run_secs`.
    fn workload(&mut self, w: &str, base_n: u64) -> Result<Vec<Row>> {
        let args = |n: u64| -> Vec<String> {
            let mut a = vec!["-workload".into(), w.into(), "-n".into(), n.to_string()];
            if w == "contended" {
                a.extend(["-goroutines".into(), "8".into()]);
            }
            a
        };
        let mut rows: Vec<Row> = CONFIGS.iter().map(|c| Row::new(w, c, base_n)).collect();
        // Calibration (the only run in quick mode), also finding which modes exist
        // and which are slow.
        for row in rows.iter_mut() {
            if let Some(why) = self.skip(row.config, w) {
                row.na = Some(why);
                continue;
            }
            eprintln!("bench: {w}: {} (n={})", row.config.label, row.n);
            let Some(s) = self.run_workload(row.config, &args(base_n))? else {
                row.na = self.na.get(row.config.id).cloned();
                continue;
            };
            row.once = self.check_slow(row.config, &s) && !self.p.quick;
            if self.p.quick || row.once {
                row.samples.push(s);
            } else {
                let n = (s.rate * self.p.run_secs) as u64;
                row.n = n.clamp(base_n, base_n * 10_000);
            }
        }
        if !self.p.quick {
            for round in 0..self.p.rounds {
                eprintln!("bench: {w}: round {}/{}", round + 1, self.p.rounds);
                // Each round starts one configuration later, so that none always
                // runs first (or right after the same neighbour).
                let k = rows.len();
                for j in 0..k {
                    let row = &mut rows[(j + round) % k];
                    if row.na.is_some() || row.once {
                        continue;
                    }
                    match self.run_workload(row.config, &args(row.n))? {
                        Some(s) => row.samples.push(s),
                        None => row.na = self.na.get(row.config.id).cloned(),
                    }
                }
            }
        }
        pair_ratios(&mut rows);
        Ok(rows)
    }

    /// The HTTP service under every configuration, alternating: saturated (the
    /// throughput rows), then at a fixed share of the untraced rate (the service's
    /// CPU per request, steadier on a small machine than saturated throughput).
    fn http(&mut self) -> Result<(Vec<Row>, Vec<Row>)> {
        let saturated = self.http_rounds(None, self.p.http_rounds)?;
        let untraced = saturated
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
            .unwrap_or(10_000.0);
        let rate = (untraced * HTTP_RATE_SHARE).round();
        let fixed = self.http_rounds(Some(rate), self.p.http_rate_rounds)?;
        Ok((saturated, fixed))
    }

    fn http_rounds(&mut self, rate: Option<f64>, rounds: usize) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = CONFIGS
            .iter()
            .map(|c| Row::new("httpservice", c, 0))
            .collect();
        let how = rate.map_or("saturated".to_string(), |r| format!("{r:.0} req/s"));
        for round in 0..rounds {
            // Rotated each round, as for the workloads: the service's throughput
            // drifts over a round, and a fixed order would charge it to one mode.
            let k = rows.len();
            for j in 0..k {
                let row = &mut rows[(j + round) % k];
                if row.na.is_some() || (row.once && round > 0) {
                    continue;
                }
                if let Some(why) = self.skip(row.config, "httpservice") {
                    row.na = Some(why);
                    continue;
                }
                row.once = row
                    .config
                    .how
                    .mode()
                    .is_some_and(|m| self.slow.contains_key(m));
                eprintln!(
                    "bench: httpservice ({how}): {} ({} s, round {}/{rounds})",
                    row.config.label,
                    self.p.http_secs,
                    round + 1,
                );
                match self.http_once(row.config, rate)? {
                    Some(s) => row.samples.push(s),
                    None => row.na = self.na.get(row.config.id).cloned(),
                }
            }
        }
        // Slow modes ran in the first round only, so they pair with its untraced run.
        for row in rows.iter_mut() {
            row.once = false;
        }
        pair_ratios(&mut rows);
        Ok(rows)
    }

    /// Starts the service (plain, or under `tracer run`), waits for its `listen`
    /// line, drives it with loadgen for a fixed time (attaching the tracer halfway
    /// for attach-only modes), then stops it.
    fn http_once(&mut self, cfg: &'static Config, rate: Option<f64>) -> Result<Option<Sample>> {
        let what = format!("httpservice under {}", cfg.label);
        let (out, err) = self.files();
        let mut bench_args = vec!["-workload".to_string(), "httpservice".to_string()];
        if let How::Go(flag) = cfg.how {
            bench_args.push(flag.to_string());
        }
        let flags = match self.tracer_flags(cfg.how) {
            Ok(f) => f,
            Err(why) => return Ok(self.unavailable(cfg, why)),
        };
        let mut plain = None;
        let mut traced = None;
        if let How::Run { .. } = cfg.how {
            let mut cmd = Command::new(&self.tracer);
            cmd.args(["run", "--format", "json"])
                .args(&flags)
                .arg("--")
                .arg(&self.bench)
                .args(&bench_args)
                .stdin(Stdio::null())
                .stdout(file(&out)?)
                .stderr(file(&err)?);
            traced = Some(Monitored::spawn(&mut cmd, Duration::from_millis(5), &err)?);
        } else {
            let child = Command::new(&self.bench)
                .args(&bench_args)
                .stdin(Stdio::null())
                .stdout(file(&out)?)
                .stderr(file(&err)?)
                .spawn()
                .with_context(|| format!("starting {}", self.bench.display()))?;
            plain = Some(KillOnDrop(child));
        }
        // Wait for `listen addr=...` (and the service's own pid: under `tracer run`
        // it is not our child).
        let deadline = Instant::now() + Duration::from_secs(60);
        let (addr, svc_pid) = loop {
            let text = read(&out);
            let line = |prefix: &str, key: &str| {
                text.lines()
                    .find(|l| l.starts_with(prefix))
                    .and_then(|l| kv(l, key))
                    .map(str::to_string)
            };
            let pid = line("pid ", "pid").and_then(|p| p.parse::<u32>().ok());
            if let (Some(a), Some(p)) = (line("listen ", "addr"), pid) {
                break (a, p);
            }
            if let Some(p) = plain.as_mut() {
                if let Some(status) = p.0.try_wait()? {
                    return Err(failure(
                        &what,
                        "exited before listening",
                        status,
                        &out,
                        &err,
                    ));
                }
            }
            if let Some(m) = traced.take() {
                if !m.running() {
                    let (status, _) = m.finish(Duration::from_secs(10), self.clk_tck)?;
                    if let Some(why) = usage_error(status, &read(&out), &read(&err)) {
                        return Ok(self.unavailable(cfg, why));
                    }
                    return Err(failure(
                        &what,
                        "exited before listening",
                        status,
                        &out,
                        &err,
                    ));
                }
                traced = Some(m);
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: no `listen` line within 60 s (see {})",
                    out.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let svc_guard = PidGuard(svc_pid, "bench");
        thread::sleep(Duration::from_millis(300));
        let (lg_out, lg_err) = self.files();
        let cpu_before = proc_stat(svc_pid).map(|(_, t)| t);
        let mut lg = KillOnDrop(
            Command::new(&self.loadgen)
                .args(["-addr", &addr])
                .args(["-duration", &format!("{}s", self.p.http_secs)])
                .args(["-conns", &HTTP_CONNS.to_string()])
                .args(["-rate", &rate.unwrap_or(0.0).to_string()])
                .stdin(Stdio::null())
                .stdout(file(&lg_out)?)
                .stderr(file(&lg_err)?)
                .spawn()
                .context("starting loadgen")?,
        );
        let mut agent = None;
        if let How::Attach { .. } = cfg.how {
            thread::sleep(Duration::from_secs_f64(self.p.http_secs as f64 / 2.0));
            let Some(run) = self.attach_once(svc_pid, &flags, RUN_TIMEOUT)? else {
                return Ok(self.unavailable(cfg, "mode not available".into()));
            };
            agent = Some(run.agent);
        }
        let lg_status =
            wait_child(&mut lg.0, Duration::from_secs(self.p.http_secs + 60)).context("loadgen")?;
        let cpu_after = proc_stat(svc_pid).map(|(_, t)| t);
        let lg_text = read(&lg_out);
        let result = lg_text.lines().find(|l| l.starts_with("result "));
        let requests = result
            .and_then(|l| kv(l, "requests"))
            .and_then(|v| v.parse::<u64>().ok());
        let rps = result
            .and_then(|l| kv(l, "rps"))
            .and_then(|v| v.parse::<f64>().ok());
        drop(plain);
        drop(svc_guard); // stops the service; under `tracer run` the tracer then reports
        if let Some(m) = traced {
            let (status, mut a) = m.finish(Duration::from_secs(120), self.clk_tck)?;
            agent_summary(&what, status, &read(&out), &out, &err, &mut a)?;
            agent = Some(a);
        }
        let (Some(requests), Some(rps)) = (requests, rps) else {
            return Err(failure(
                &what,
                "loadgen printed no result",
                lg_status,
                &lg_out,
                &lg_err,
            ));
        };
        if requests == 0 {
            bail!("{what}: no request completed: {}", lg_text.trim());
        }
        remove(&[&out, &err, &lg_out, &lg_err]);
        let rate = match (rate, cpu_before, cpu_after) {
            (None, ..) => rps,
            // Requests per second of the service's CPU time: its capacity, were
            // it CPU-bound.
            (Some(_), Some(b), Some(a)) if a > b => {
                requests as f64 / ((a - b) as f64 / self.clk_tck)
            }
            (Some(_), ..) => bail!("{what}: the service's CPU time could not be read"),
        };
        Ok(Some(Sample {
            rate,
            work_ns: self.p.http_secs * 1_000_000_000,
            agent,
        }))
    }

    /// The flood workload under `tracer run --mode parks --budget 0` with more and
    /// more pairs.
    fn flood(&mut self) -> Result<Vec<FloodRun>> {
        let cfg = &FLOOD;
        let mut runs = Vec::new();
        let base_n = 20_000u64;
        for &pairs in self.p.flood_pairs {
            let args = |n: u64| -> Vec<String> {
                let (pairs, n) = (pairs.to_string(), n.to_string());
                ["-workload", "flood", "-pairs", &pairs, "-n", &n]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            };
            eprintln!("bench: flood: {pairs} pairs");
            let Some(mut s) = self.run_workload(cfg, &args(base_n))? else {
                break;
            };
            let mut n = base_n;
            if !self.p.quick {
                n = ((s.rate * self.p.flood_secs) as u64).clamp(base_n, base_n * 10_000);
                match self.run_workload(cfg, &args(n))? {
                    Some(again) => s = again,
                    None => break,
                }
            }
            runs.push(FloodRun {
                pairs,
                n,
                work_ns: s.work_ns,
                agent: s.agent.unwrap_or_default(),
                paused_s: None,
            });
        }
        // Beyond the drain rate: stop the agent in the middle of a flood, so that the
        // ring buffer overflows whatever the machine, and see that it survives.
        let pairs = 64u64;
        let (n, after, stopped) = match runs.iter().find(|r| r.pairs == pairs) {
            _ if self.p.quick => (150_000, 0.2, 0.5),
            Some(r) => {
                let rate = r.n as f64 / (r.work_ns.max(1) as f64 / 1e9);
                ((rate * 3.0) as u64, 0.5, 1.0)
            }
            None => return Ok(runs),
        };
        eprintln!("bench: flood: {pairs} pairs, agent stopped for {stopped} s");
        let args: Vec<String> = ["-workload", "flood", "-pairs", &pairs.to_string()]
            .into_iter()
            .map(str::to_string)
            .chain(["-n".to_string(), n.to_string()])
            .collect();
        let pause = (
            Duration::from_secs_f64(after),
            Duration::from_secs_f64(stopped),
        );
        if let Some(s) = self.run_traced(cfg, &args, Some(pause))? {
            runs.push(FloodRun {
                pairs,
                n,
                work_ns: s.work_ns,
                agent: s.agent.unwrap_or_default(),
                paused_s: Some(stopped),
            });
        }
        Ok(runs)
    }

    /// Starts a fixture and waits for its `ready` line.
    fn start_target(&mut self, bin: &Path, args: &[&str]) -> Result<(KillOnDrop, u32)> {
        let (out, err) = self.files();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut child = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if read(&out).lines().any(|l| l.starts_with("ready")) {
                let pid = child.0.id();
                return Ok((child, pid));
            }
            if let Some(status) = child.0.try_wait()? {
                let what = bin.display().to_string();
                return Err(failure(&what, "exited before ready", status, &out, &err));
            }
            if Instant::now() > deadline {
                bail!("{}: not ready within 180 s", bin.display());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tracer attach PID --duration 0s`, timed from start to exit. `None` when
    /// the tracer does not offer the mode.
    fn attach_once(
        &mut self,
        pid: u32,
        flags: &[String],
        timeout: Duration,
    ) -> Result<Option<AttachRun>> {
        let (out, err) = self.files();
        let what = format!("`tracer attach {pid} {}`", flags.join(" "));
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["attach", &pid.to_string()])
            .args(["--format", "json", "--duration", "0s"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let m = Monitored::spawn(&mut cmd, Duration::from_millis(2), &err)?;
        let (status, mut agent) = m.finish(timeout, self.clk_tck).context(what.clone())?;
        let text = read(&out);
        let errs = read(&err);
        if summary_line(&text).is_none() {
            if let Some(why) = usage_error(status, &text, &errs) {
                eprintln!("bench: {what}: {why}");
                return Ok(None);
            }
        }
        agent_summary(&what, status, &text, &out, &err, &mut agent)?;
        let snapshot = errs
            .lines()
            .find_map(|l| l.split("snapshot: ").nth(1))
            .and_then(|rest| {
                let n = rest.split_whitespace().next()?.parse().ok()?;
                let took = rest.split("(read in ").nth(1)?.trim_end_matches(')');
                Some((n, took.to_string()))
            });
        remove(&[&out, &err]);
        Ok(Some(AttachRun { agent, snapshot }))
    }

    /// Attach time on the large binary, in the default mode and (full bench) in
    /// every other mode the tracer offers.
    fn attach_times(&mut self, bin: &BinInfo) -> Result<Vec<AttachRow>> {
        let (target, pid) = self.start_target(&bin.path, &[])?;
        let mut modes: Vec<(&str, Vec<String>)> = vec![("default (parks)", vec![])];
        if !self.p.quick && self.help.contains("--mode") {
            for m in ["snapshot", "watch", "locks"] {
                modes.push((m, vec!["--mode".into(), m.into()]));
            }
        }
        let mut rows = Vec::new();
        for (mode, flags) in modes {
            eprintln!(
                "bench: attach to {} ({:.0} MB), mode {mode}",
                bin.path.display(),
                bin.bytes as f64 / 1e6
            );
            let mut row = AttachRow {
                mode: mode.to_string(),
                runs: Vec::new(),
                na: None,
            };
            let optional = !flags.is_empty();
            if let Some(s) = self.slow.get(mode) {
                // Its cost grows with the number of probe sites: thousands here.
                row.na = Some(format!(
                    "skipped: a {mode} session already took {s:.0} s more than its workload \
                     on the bench fixture"
                ));
                rows.push(row);
                continue;
            }
            let reps = self.p.attach_reps;
            let timeout = if optional {
                OPTIONAL_ATTACH_TIMEOUT
            } else {
                RUN_TIMEOUT
            };
            for _ in 0..reps {
                match self.attach_once(pid, &flags, timeout) {
                    Ok(Some(r)) => row.runs.push(r),
                    Ok(None) => {
                        row.na = Some("mode not available".into());
                        break;
                    }
                    // A mode that cannot attach to a binary this large in time is a
                    // figure, not a failure of the bench.
                    Err(e) if optional && format!("{e:#}").contains("timed out") => {
                        row.na = Some(format!("timed out after {timeout:?}, killed"));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            rows.push(row);
        }
        drop(target);
        Ok(rows)
    }

    /// Snapshot time and agent RSS with many parked goroutines.
    fn snapshot(&mut self) -> Result<Vec<AttachRun>> {
        let n = self.p.snapshot_goroutines.to_string();
        eprintln!("bench: snapshot with {n} parked goroutines");
        let many = self.many.clone();
        let (target, pid) = self.start_target(&many, &["-n", &n])?;
        let mut runs = Vec::new();
        for _ in 0..self.p.snapshot_reps {
            let r = self
                .attach_once(pid, &[], RUN_TIMEOUT)?
                .context("tracer attach in the default mode is not available")?;
            runs.push(r);
        }
        drop(target);
        Ok(runs)
    }
}

/// Fills in the summary figures; a tracer that died of a signal or printed no
/// summary is an error.
fn agent_summary(
    what: &str,
    status: ExitStatus,
    text: &str,
    out: &Path,
    err: &Path,
    agent: &mut Agent,
) -> Result<()> {
    let Some(summary) = summary_line(text) else {
        return Err(failure(
            what,
            "the tracer printed no summary",
            status,
            out,
            err,
        ));
    };
    if status.code().is_none() {
        return Err(failure(
            what,
            "the tracer was killed by a signal",
            status,
            out,
            err,
        ));
    }
    agent.events = json_u64(summary, "events").unwrap_or(0);
    agent.drops = json_u64(summary, "drops").unwrap_or(0);
    agent.duration_ns = json_u64(summary, "duration_ns").unwrap_or(0);
    Ok(())
}

/// Ratios of each sample to the untraced sample of the same round; a row run once
/// is compared with the median untraced run.
fn pair_ratios(rows: &mut [Row]) {
    let base: Vec<f64> = rows
        .iter()
        .find(|r| r.config.how == How::Untraced)
        .map(|r| r.samples.iter().map(|s| s.rate).collect())
        .unwrap_or_default();
    let base_median = median(&base);
    for row in rows.iter_mut() {
        row.ratios = if row.once {
            base_median
                .filter(|b| *b > 0.0)
                .map(|b| row.samples.iter().map(|s| s.rate / b).collect())
                .unwrap_or_default()
        } else {
            row.samples
                .iter()
                .zip(&base)
                .filter(|(_, b)| **b > 0.0)
                .map(|(s, b)| s.rate / b)
                .collect()
        };
    }
}

/// A child process whose CPU time and peak RSS are measured from `/proc`, and
/// whose stderr markers are timed.
struct Monitored {
    child: Child,
    pid: u32,
    start: Instant,
    peak_kb: Arc<AtomicU64>,
    marks: Arc<Mutex<[Option<f64>; 2]>>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
    reaped: bool,
}

impl Monitored {
    fn spawn(cmd: &mut Command, every: Duration, stderr_file: &Path) -> Result<Self> {
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let pid = child.id();
        let peak_kb = Arc::new(AtomicU64::new(0));
        let marks = Arc::new(Mutex::new([None; 2]));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, seen, halt) = (peak_kb.clone(), marks.clone(), stop.clone());
        let errf = stderr_file.to_path_buf();
        let sampler = thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                let mut gone = false;
                for line in status.lines() {
                    if let Some(v) = line
                        .strip_prefix("VmHWM:")
                        .or_else(|| line.strip_prefix("VmRSS:"))
                    {
                        let kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                        peak.fetch_max(kb, Ordering::Relaxed);
                    } else if let Some(state) = line.strip_prefix("State:") {
                        gone = matches!(state.trim_start().chars().next(), Some('Z' | 'X'));
                    }
                }
                let mut marks = seen.lock().expect("marks");
                if marks.iter().any(Option::is_none) {
                    let text = read(&errf);
                    for (slot, marker) in marks.iter_mut().zip([ATTACHED, STOPPED]) {
                        if slot.is_none() && text.contains(marker) {
                            *slot = Some(start.elapsed().as_secs_f64());
                        }
                    }
                }
                drop(marks);
                if gone {
                    break;
                }
                thread::sleep(every);
            }
        });
        Ok(Monitored {
            child,
            pid,
            start,
            peak_kb,
            marks,
            stop,
            sampler: Some(sampler),
            reaped: false,
        })
    }

    fn running(&self) -> bool {
        matches!(proc_stat(self.pid), Some((s, _)) if s != 'Z' && s != 'X')
    }

    /// When the tracer said it had attached, if it has.
    fn attached(&self) -> Option<f64> {
        self.marks.lock().expect("marks")[0]
    }

    /// Waits for the exit; the CPU time is read while the process is a zombie,
    /// before it is reaped, so it is the process's own (not its children's).
    fn finish(mut self, timeout: Duration, clk_tck: f64) -> Result<(ExitStatus, Agent)> {
        let deadline = Instant::now() + timeout;
        let (ticks, wall) = loop {
            match proc_stat(self.pid) {
                Some((s, ticks)) if s == 'Z' || s == 'X' => break (ticks, self.start.elapsed()),
                None => break (0, self.start.elapsed()),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?}");
            }
            thread::sleep(Duration::from_millis(2));
        };
        let status = self.child.wait()?;
        self.reaped = true;
        self.stop_sampler();
        let [attached_s, stopped_s] = *self.marks.lock().expect("marks");
        Ok((
            status,
            Agent {
                cpu_s: ticks as f64 / clk_tck,
                wall_s: wall.as_secs_f64(),
                peak_rss_kb: self.peak_kb.load(Ordering::Relaxed),
                attached_s,
                stopped_s,
                ..Agent::default()
            },
        ))
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sampler.take() {
            let _ = s.join();
        }
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        if !self.reaped {
            kill_and_reap(&mut self.child);
        }
        self.stop_sampler();
    }
}

/// SIGKILL, then reap; a process still exiting after a while (a tracer tearing
/// down thousands of probes in the kernel, say) is left to finish on its own rather
/// than holding up the bench.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "bench: PID {} is still exiting 10 s after SIGKILL; leaving it",
        child.id()
    );
}

/// State and utime+stime (clock ticks) from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    // Fields 14 and 15 of proc_pid_stat(5), counted here from field 3 (the state).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

/// A process that is not our child (the service under `tracer run`): killed on
/// drop, if it is still the program we started.
struct PidGuard(u32, &'static str);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let comm = fs::read_to_string(format!("/proc/{}/comm", self.0)).unwrap_or_default();
        if comm.trim() == self.1 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn file(path: &Path) -> Result<fs::File> {
    fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn remove(paths: &[&Path]) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join("\n    ")
}

fn failure(what: &str, problem: &str, status: ExitStatus, out: &Path, err: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: {problem} ({status})\n  stderr ({}):\n    {}\n  stdout ({}):\n    {}",
        err.display(),
        tail(&read(err), 8),
        out.display(),
        tail(&read(out), 4)
    )
}

/// The tracer refused its command line (a mode or flag it does not have): exit 2
/// before the target ever ran.
fn usage_error(status: ExitStatus, out: &str, err: &str) -> Option<String> {
    if status.code() != Some(2) || out.lines().any(|l| l.starts_with("pid ")) {
        return None;
    }
    let lower = err.to_lowercase();
    let refused = [
        "--mode",
        "--budget",
        "mode",
        "invalid value",
        "unexpected argument",
        "not supported",
        "unsupported",
    ];
    if !refused.iter().any(|k| lower.contains(k)) {
        return None;
    }
    let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Some(format!("mode not available: {}", line.trim()))
}

/// `key=value` in a space-separated line.
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// (ops/s, elapsed ns) from the bench fixture's result line.
fn result_line(out: &str) -> Option<(f64, u64)> {
    let l = out.lines().find(|l| l.starts_with("result "))?;
    Some((
        kv(l, "ops_per_sec")?.parse().ok()?,
        kv(l, "ns")?.parse().ok()?,
    ))
}

fn summary_line(out: &str) -> Option<&str> {
    out.lines()
        .rev()
        .find(|l| l.starts_with('{') && l.contains("\"kind\":\"summary\""))
}

/// A top-level unsigned number field of a one-line JSON object.
fn json_u64(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------
// The large generated binary.

/// Generates (once; cached by its parameters) and builds the large binary: the
/// `tests/fixtures/bigbin` program plus generated packages of small functions (every
/// eighth with an inlined mutex Lock/Unlock) and unique string tables.
fn bigbin(size: &BigBin) -> Result<BinInfo> {
    let fixture = root().join("tests/fixtures/bigbin");
    let dir = build_dir().join("bench");
    let src = dir.join(format!("{}-src", size.name));
    let bin = dir.join(size.name);
    let stamp = dir.join(format!("{}.stamp", size.name));
    let mut fixture_files = Vec::new();
    collect_files(&fixture, &fixture, &mut fixture_files)?;
    let mut hash = Fnv::default();
    for (rel, bytes) in &fixture_files {
        hash.add(rel.as_bytes());
        hash.add(bytes);
    }
    let key = format!(
        "v1 go={DEFAULT_GO} packages={} files={} funcs={} tables={} fixture={:016x}",
        size.packages, size.files, size.funcs_per_file, size.table_mib_per_package, hash.0
    );
    let funcs = size.packages * size.files * size.funcs_per_file;
    if !(bin.exists() && read(&stamp) == key) {
        eprintln!(
            "bench: generating {} ({funcs} functions, {} MiB of tables; built once, then cached)",
            src.display(),
            size.packages * size.table_mib_per_package
        );
        let _ = fs::remove_dir_all(&src);
        for (rel, bytes) in &fixture_files {
            let to = src.join(rel);
            fs::create_dir_all(to.parent().expect("file in a directory"))?;
            fs::write(&to, bytes)?;
        }
        generate(&src, size)?;
        let started = Instant::now();
        run(go_command(DEFAULT_GO)
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(&src))?;
        eprintln!(
            "bench: built {} in {:.0?}",
            bin.display(),
            started.elapsed()
        );
        fs::write(&stamp, &key)?;
        // The sources are large and can be generated again.
        let _ = fs::remove_dir_all(&src);
    }
    Ok(BinInfo {
        bytes: fs::metadata(&bin)?.len(),
        sections: elf_sections(&bin).unwrap_or_default(),
        path: bin,
        funcs,
    })
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if e.file_type()?.is_dir() {
            collect_files(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base)?.to_string_lossy().into_owned();
            out.push((rel, fs::read(&path)?));
        }
    }
    Ok(())
}

const GENERATED: &str = "// Code generated by cargo xtask bench. DO NOT EDIT.\n\n";

fn generate(src: &Path, size: &BigBin) -> Result<()> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut imports = format!("{GENERATED}package main\n\nimport (\n");
    for p in 0..size.packages {
        writeln!(imports, "\t_ \"fixture/bigbin/gen{p}\"")?;
        let pkg = src.join(format!("gen{p}"));
        fs::create_dir_all(&pkg)?;
        fs::write(
            pkg.join("state.go"),
            format!(
                "{GENERATED}package gen{p}\n\nimport \"sync\"\n\n\
                 var (\n\tmu      sync.Mutex\n\tcounter int\n)\n"
            ),
        )?;
        for f in 0..size.files {
            let mut s = format!(
                "{GENERATED}package gen{p}\n\nimport \"fixture/bigbin/registry\"\n\n\
                 func init() {{\n\tregistry.Add(\n"
            );
            for j in 0..size.funcs_per_file {
                writeln!(s, "\t\tf{f}_{j},")?;
            }
            s.push_str("\t)\n}\n");
            for j in 0..size.funcs_per_file {
                let c = next() & 0x3fff_ffff;
                let lock = if j % 8 == 0 {
                    "\tmu.Lock()\n\tcounter++\n\tmu.Unlock()\n"
                } else {
                    ""
                };
                write!(
                    s,
                    "\nfunc f{f}_{j}(x int) int {{\n\
                     \ts := x ^ {c}\n\
                     \tfor i := 0; i < (x&7)+3; i++ {{\n\
                     \t\ts = s*31 + i\n\
                     \t\tif s&{m} == 0 {{\n\t\t\ts += len(registry.Tables)\n\t\t}}\n\
                     \t}}\n\
                     \tswitch s & 3 {{\n\
                     \tcase 0:\n\t\ts += {a}\n\
                     \tcase 1:\n\t\ts -= {b}\n\
                     \tcase 2:\n\t\ts ^= {d}\n\
                     \tdefault:\n\t\ts += len(\"g{p}_{f}_{j}\")\n\
                     \t}}\n{lock}\treturn s\n}}\n",
                    m = c & 1023,
                    a = c % 97,
                    b = c % 89,
                    d = c % 83,
                )?;
            }
            fs::write(pkg.join(format!("f{f}.go")), s)?;
        }
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut t = format!(
            "{GENERATED}package gen{p}\n\nimport \"fixture/bigbin/registry\"\n\nfunc init() {{\n"
        )
        .into_bytes();
        for _ in 0..size.table_mib_per_package {
            t.extend_from_slice(b"\tregistry.AddTable(\"");
            for _ in 0..(1 << 20) / 8 {
                let r = next();
                for k in 0..8 {
                    t.push(alphabet[((r >> (k * 8)) & 0xff) as usize % alphabet.len()]);
                }
            }
            t.extend_from_slice(b"\")\n");
        }
        t.extend_from_slice(b"}\n");
        fs::write(pkg.join("tables.go"), t)?;
    }
    imports.push_str(")\n");
    fs::write(src.join("generated.go"), imports)?;
    Ok(())
}

#[derive(Default)]
struct Fnv(u64);

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        if self.0 == 0 {
            self.0 = 0xcbf2_9ce4_8422_2325;
        }
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Section names and sizes of an ELF64 little-endian file.
fn elf_sections(path: &Path) -> Result<Vec<(String, u64)>> {
    let mut f = fs::File::open(path)?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        bail!("not an ELF64 little-endian file");
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
    let u64_at = |b: &[u8], o: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let shoff = u64_at(&eh, 0x28);
    let (shentsize, shnum, shstrndx) = (u16_at(&eh, 0x3a), u16_at(&eh, 0x3c), u16_at(&eh, 0x3e));
    if shentsize < 64 || shstrndx >= shnum {
        bail!("unexpected section headers");
    }
    let mut sh = vec![0u8; shentsize * shnum];
    f.seek(SeekFrom::Start(shoff))?;
    f.read_exact(&mut sh)?;
    let hdr = |i: usize| &sh[i * shentsize..(i + 1) * shentsize];
    let strtab = hdr(shstrndx);
    let mut names = vec![0u8; u64_at(strtab, 0x20) as usize];
    f.seek(SeekFrom::Start(u64_at(strtab, 0x18)))?;
    f.read_exact(&mut names)?;
    Ok((0..shnum)
        .map(|i| {
            let h = hdr(i);
            let off = u32_at(h, 0).min(names.len());
            let end = names[off..]
                .iter()
                .position(|&b| b == 0)
                .map_or(names.len(), |e| off + e);
            let name = String::from_utf8_lossy(&names[off..end]).into_owned();
            (name, u64_at(h, 0x20))
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Statistics and reporting.

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().reduce(f64::min)?;
    let max = v.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or("-".into(), secs)
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        median(&self.ratios)
    }

    fn rate(&self) -> Option<f64> {
        median(&self.samples.iter().map(|s| s.rate).collect::<Vec<_>>())
    }

    fn agents(&self) -> Vec<&Agent> {
        self.samples
            .iter()
            .filter_map(|s| s.agent.as_ref())
            .collect()
    }

    fn agent_median(&self, f: impl Fn(&Agent) -> Option<f64>) -> Option<f64> {
        median(&self.agents().into_iter().filter_map(f).collect::<Vec<_>>())
    }

    fn peak_kb(&self) -> Option<u64> {
        self.agents().iter().map(|a| a.peak_rss_kb).max()
    }

    fn drops(&self) -> Option<u64> {
        let a = self.agents();
        (!a.is_empty()).then(|| a.iter().map(|a| a.drops).sum())
    }
}

struct Target {
    what: String,
    measured: String,
    status: String,
}

struct Report<'a> {
    ctx: &'a Ctx,
    rows: &'a [Row],
    http: &'a [Row],
    /// At a fixed request rate; a sample's rate is requests per service CPU-second.
    http_rate: &'a [Row],
    flood: &'a [FloodRun],
    bin: Option<&'a BinInfo>,
    attach: &'a [AttachRow],
    snapshot: &'a [AttachRun],
    errors: &'a [String],
    elapsed: Duration,
}

impl Report<'_> {
    fn quick(&self) -> bool {
        self.ctx.p.quick
    }

    /// Highest drained rate without a drop, and the runs with drops.
    fn drain(&self) -> (Option<&FloodRun>, Vec<&FloodRun>) {
        let best = self
            .flood
            .iter()
            .filter(|f| f.agent.drops == 0 && f.paused_s.is_none())
            .max_by(|a, b| a.rate().total_cmp(&b.rate()));
        let dropped = self.flood.iter().filter(|f| f.agent.drops > 0).collect();
        (best, dropped)
    }

    fn attach_default(&self) -> Option<f64> {
        let row = self.attach.first()?;
        median(&row.runs.iter().map(|r| r.agent.wall_s).collect::<Vec<_>>())
    }

    fn snapshot_peak_kb(&self) -> Option<u64> {
        self.snapshot.iter().map(|r| r.agent.peak_rss_kb).max()
    }

    /// `fixed`: judged on the fixed-rate rows (CPU per request) rather than on
    /// saturated throughput.
    fn loss_target(&self, what: &str, id: &str, max: f64, fixed: bool) -> Target {
        let (rows, figure) = if fixed {
            (self.http_rate, "HTTP CPU per request at a fixed rate")
        } else {
            (self.http, "HTTP saturated throughput")
        };
        let what = format!("{what}: {figure}, loss ≤ {:.0}%", max * 100.0);
        let row = rows.iter().find(|r| r.config.id == id);
        let (measured, status) = match row {
            Some(Row { na: Some(why), .. }) => ("-".into(), format!("n/a ({why})")),
            Some(r) => match r.ratio() {
                Some(ratio) => {
                    let loss = 1.0 - ratio;
                    let verdict = if loss <= max { "met" } else { "not met" };
                    let rate = r.rate().unwrap_or(0.0);
                    let detail = if fixed {
                        format!("{:.1} µs of service CPU per request", 1e6 / rate.max(1e-9))
                    } else {
                        format!("{} req/s", thousands(rate))
                    };
                    (
                        format!("loss {:.1}% (ratio {ratio:.3}, {detail})", loss * 100.0),
                        format!("{verdict}{}", self.caveat()),
                    )
                }
                None => ("no data".into(), "n/a".into()),
            },
            None => ("no data".into(), "n/a".into()),
        };
        Target {
            what,
            measured,
            status,
        }
    }

    fn caveat(&self) -> &'static str {
        if self.quick() {
            " (quick: one short run, indicative only)"
        } else {
            ""
        }
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        for fixed in [false, true] {
            t.push(self.loss_target("parks mode", "parks", PARKS_MAX_LOSS, fixed));
            t.push(self.loss_target("watch mode", "watch", WATCH_MAX_LOSS, fixed));
            t.push(self.loss_target(
                "locks mode at the default budget",
                "locks",
                DEFAULT_LOCK_BUDGET / 100.0,
                fixed,
            ));
        }
        let what = "≥ 1,000,000 events/s drained without a drop".to_string();
        t.push(match self.drain() {
            (Some(f), _) => Target {
                what,
                measured: format!(
                    "{} events/s ({} pairs, tracer parks)",
                    thousands(f.rate()),
                    f.pairs
                ),
                status: format!(
                    "{}{}",
                    if f.rate() >= MIN_DRAIN_RATE {
                        "met"
                    } else {
                        "not met"
                    },
                    self.caveat()
                ),
            },
            (None, _) if self.flood.is_empty() => Target {
                what,
                measured: "no data".into(),
                status: "n/a".into(),
            },
            (None, _) => Target {
                what,
                measured: "every run dropped events".into(),
                status: "not met".into(),
            },
        });
        let size = self
            .bin
            .map_or("-".into(), |b| format!("{:.0} MB", b.bytes as f64 / 1e6));
        let attach = self.attach_default();
        t.push(Target {
            what: "attach < 1 s on a ~100 MB binary (start to exit, default mode)".into(),
            measured: attach.map_or("no data".into(), |s| {
                format!("{} on a {size} binary", secs(s))
            }),
            status: match (self.quick(), attach) {
                (true, _) => format!("not evaluated (quick: {size} binary)"),
                (false, Some(s)) if s < MAX_ATTACH_SECS => "met".into(),
                (false, Some(_)) => "not met".into(),
                (false, None) => "n/a".into(),
            },
        });
        let n = thousands(self.ctx.p.snapshot_goroutines as f64);
        let peak = self.snapshot_peak_kb();
        t.push(Target {
            what: "agent RSS < 100 MB with 100,000 parked goroutines".into(),
            measured: peak.map_or("no data".into(), |kb| {
                format!("{:.1} MB with {n} goroutines", mb(kb))
            }),
            status: match (self.quick(), peak) {
                (true, _) => format!("not evaluated (quick: {n} goroutines)"),
                (false, Some(kb)) if mb(kb) < MAX_SNAPSHOT_RSS_MB => "met".into(),
                (false, Some(_)) => "not met".into(),
                (false, None) => "n/a".into(),
            },
        });
        t
    }

    fn machine(&self) -> String {
        let cpus = thread::available_parallelism().map_or(0, |n| n.get());
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let version = Command::new(&self.ctx.tracer)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        format!(
            "{cpus} CPUs ({model}), Linux {}, Go {DEFAULT_GO}, {version}",
            kernel.trim()
        )
    }

    fn table(&self, md: &mut String, rows: &[Row], unit: &str) {
        let _ = writeln!(
            md,
            "| workload | config | ratio vs untraced (median) | ratio range | median {unit} \
             | agent CPU (share of its wall time) | agent peak RSS | tracer start / stop \
             | events/s | drops |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows {
            let name = if r.n > 0 && r.na.is_none() {
                format!("{} (n={})", r.workload, thousands(r.n as f64))
            } else {
                r.workload.clone()
            };
            if let Some(why) = &r.na {
                let short = if why.starts_with("mode not available") {
                    "n/a (mode not available)".to_string()
                } else {
                    format!("n/a ({why})")
                };
                let _ = writeln!(
                    md,
                    "| {name} | {} | {short} | | | | | | | |",
                    r.config.label
                );
                continue;
            }
            let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.3}"));
            let range = if r.once && r.ratios.len() == 1 {
                "1 run".to_string()
            } else {
                min_max(&r.ratios).map_or("-".into(), |(a, b)| format!("{a:.3}–{b:.3}"))
            };
            let rate = r.rate().map_or("-".into(), thousands);
            let (mut cpu, mut rss, mut startstop, mut eps, mut drops) = (
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            );
            if !r.agents().is_empty() {
                let c = r.agent_median(|a| Some(a.cpu_s));
                let share = r.agent_median(|a| Some(a.cpu_s / a.wall_s.max(1e-9)));
                cpu = format!("{} ({:.0}%)", opt_secs(c), share.unwrap_or(0.0) * 100.0);
                rss = r
                    .peak_kb()
                    .map_or("-".into(), |kb| format!("{:.1} MB", mb(kb)));
                startstop = format!(
                    "{} / {}",
                    opt_secs(r.agent_median(|a| a.attached_s)),
                    opt_secs(r.agent_median(Agent::teardown_s))
                );
                eps = r
                    .agent_median(|a| Some(a.events as f64 / (a.duration_ns.max(1) as f64 / 1e9)))
                    .map_or("-".into(), thousands);
                drops = r.drops().map_or("-".into(), |d| thousands(d as f64));
            }
            let _ = writeln!(
                md,
                "| {name} | {} | {ratio} | {range} | {rate} | {cpu} | {rss} | {startstop} | {eps} | {drops} |",
                r.config.label
            );
        }
    }

    fn markdown(&self) -> String {
        let p = &self.ctx.p;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# tracer benchmark ({})\n\nMachine: {}. Bench took {:.0} s.\n",
            if p.quick {
                "quick smoke run: one iteration, tiny sizes — not a measurement"
            } else {
                "full"
            },
            self.machine(),
            self.elapsed.as_secs_f64()
        );
        let sizing = if p.quick {
            "Quick runs use fixed small sizes (the n in each row).".to_string()
        } else {
            format!(
                "Workload runs are sized to last about {} s each under every configuration \
                 (the n in each row).",
                p.run_secs
            )
        };
        let _ = writeln!(
            md,
            "Method: configurations alternate run by run (untraced, tracer modes, Go's tools, \
             then again, each round starting one configuration later) for {} round(s); a ratio is a configuration's throughput divided by \
             the untraced throughput of the same round, and the tables quote the median of \
             those ratios (1.000 = no cost, 0.900 = 10% slower). {sizing} A tracer mode whose \
             session costs more than {SLOW_SESSION_SECS} s on top of its workload runs once per \
             workload (\"1 run\", compared with the median untraced run){}. Traced runs use \
             `tracer run --format json --mode MODE -- ...`; snapshot mode (attach only) is one \
             `tracer attach PID --mode snapshot` halfway through the HTTP load. Agent CPU is \
             utime+stime of the tracer process and its share of the tracer's wall time; peak RSS \
             is its VmHWM sampled every few ms; tracer start / stop is the time from its start \
             to its \"attached\" line and from its \"stopped\" line to its exit; events/s and \
             drops come from its summary line. MB = 10^6 bytes.\n",
            p.rounds,
            if p.quick {
                ", and is skipped for the rest of a quick run"
            } else {
                ""
            },
        );
        md.push_str("## Targets\n\n| target | measured | status |\n|---|---|---|\n");
        for t in self.targets() {
            let _ = writeln!(md, "| {} | {} | {} |", t.what, t.measured, t.status);
        }
        let _ = writeln!(md, "\n## Workloads (ops/s)\n");
        for (w, op, _) in WORKLOADS {
            let _ = writeln!(md, "- {w}: one op = {op}");
        }
        md.push('\n');
        self.table(&mut md, self.rows, "ops/s");
        let _ = writeln!(
            md,
            "\n## net/http JSON service (requests/s)\n\n`bench -workload httpservice` on \
             127.0.0.1 driven by `loadgen -conns {HTTP_CONNS} -duration {}s` (50% /get, 30% \
             /put, 20% /work), {} round(s).\n",
            p.http_secs, p.http_rounds
        );
        self.table(&mut md, self.http, "req/s");
        let rate = self
            .http
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
            .map_or("-".into(), |r| thousands((r * HTTP_RATE_SHARE).round()));
        let _ = writeln!(
            md,
            "\n## net/http JSON service at a fixed rate (requests per second of the service's CPU time)\n\n\
             The same service and mix, with loadgen pacing {rate} requests/s ({:.0}% of the untraced \
             saturated rate above) for {}s, {} round(s). The figure is requests over the service's \
             own CPU time (utime+stime, probe traps included; the agent's CPU is its own column): \
             the capacity it would have were it CPU-bound. On this 2-core machine it varies less \
             from run to run than saturated throughput, where the load generator and the service \
             contend for the same cores.\n",
            HTTP_RATE_SHARE * 100.0,
            p.http_secs,
            p.http_rate_rounds
        );
        self.table(&mut md, self.http_rate, "req per service CPU-second");
        self.flood_md(&mut md);
        self.attach_md(&mut md);
        self.snapshot_md(&mut md);
        let mut na: Vec<_> = self.ctx.na.iter().collect();
        na.sort();
        if !na.is_empty() || !self.ctx.slow.is_empty() {
            md.push_str("\n## Not measured, or measured less\n\n");
            for (id, why) in na {
                let _ = writeln!(md, "- {}: {why}", config(id).label);
            }
            let mut slow: Vec<_> = self.ctx.slow.iter().collect();
            slow.sort_by(|a, b| a.0.cmp(b.0));
            for (mode, s) in slow {
                let _ = writeln!(
                    md,
                    "- {mode} mode: a session took {s:.1} s more than its workload; it ran \
                     once per workload{}",
                    if p.quick {
                        " and was skipped for the rest of the quick run"
                    } else {
                        ""
                    }
                );
            }
        }
        if !self.errors.is_empty() {
            md.push_str("\n## Errors\n\n");
            for e in self.errors {
                let _ = writeln!(md, "```\n{e}\n```");
            }
        }
        md
    }

    fn flood_md(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "\n## Event drain (flood workload under `tracer run --mode parks --budget 0 --bench-copies 8`: each park record written 8 times by the kernel)\n\n\
             events/s = summary events / summary duration (the whole tracer session, \
             start-up and tear-down included; the figure the target is judged on); during the \
             workload = summary events / the workload's own run time.\n\n\
             | pairs | round trips | events | drops | events/s | events/s during the workload \
             | agent CPU | agent peak RSS | agent |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for f in self.flood {
            let pairs = match f.paused_s {
                Some(p) => format!("{} (agent stopped {p} s)", f.pairs),
                None => f.pairs.to_string(),
            };
            let _ = writeln!(
                md,
                "| {pairs} | {} | {} | {} | {} | {} | {} ({:.0}%) | {:.1} MB | exited normally with a summary |",
                thousands(f.n as f64),
                thousands(f.agent.events as f64),
                thousands(f.agent.drops as f64),
                thousands(f.rate()),
                thousands(f.work_rate()),
                secs(f.agent.cpu_s),
                f.agent.cpu_s / f.agent.wall_s.max(1e-9) * 100.0,
                mb(f.agent.peak_rss_kb)
            );
        }
        let (best, dropped) = self.drain();
        md.push('\n');
        match best {
            Some(b) => {
                let _ = writeln!(
                    md,
                    "Highest rate drained without a drop: {} events/s ({} pairs).",
                    thousands(b.rate()),
                    b.pairs
                );
            }
            None if self.flood.is_empty() => md.push_str("No flood run.\n"),
            None => md.push_str("Every flood run dropped events.\n"),
        }
        let full_speed: Vec<&FloodRun> =
            self.flood.iter().filter(|f| f.paused_s.is_none()).collect();
        if let Some(top) = full_speed
            .iter()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .filter(|_| full_speed.iter().all(|f| f.agent.drops == 0))
        {
            let _ = writeln!(
                md,
                "\nNo run at full speed dropped an event: the most the target produced under the \
                 probes on this machine was {} events/s, with the agent busy {:.0}% of its wall \
                 time, so the probes' cost in the target, not the agent, set the limit here.",
                thousands(top.rate()),
                top.agent.cpu_s / top.agent.wall_s.max(1e-9) * 100.0
            );
        }
        for f in dropped.iter().filter(|f| f.paused_s.is_none()) {
            let _ = writeln!(
                md,
                "\nBeyond it: {} pairs → {} events/s kept, {} dropped ({:.2}%), agent peak RSS \
                 {:.1} MB, agent alive to the end (summary printed).",
                f.pairs,
                thousands(f.rate()),
                thousands(f.agent.drops as f64),
                f.agent.drops as f64 / (f.agent.events + f.agent.drops).max(1) as f64 * 100.0,
                mb(f.agent.peak_rss_kb)
            );
        }
        let baseline = full_speed
            .iter()
            .map(|f| f.agent.peak_rss_kb)
            .max()
            .unwrap_or(0);
        for f in self.flood.iter().filter(|f| f.paused_s.is_some()) {
            let _ = writeln!(
                md,
                "\nOverload (the agent stopped with SIGSTOP for {} s in the middle of a {}-pair \
                 flood, so its ring buffer overflows): {} events kept, {} dropped ({:.1}%) and \
                 counted in the summary; agent peak RSS {:.1} MB (the largest full-speed run: \
                 {:.1} MB); the agent resumed and exited normally with its summary.",
                f.paused_s.unwrap_or_default(),
                f.pairs,
                thousands(f.agent.events as f64),
                thousands(f.agent.drops as f64),
                f.agent.drops as f64 / (f.agent.events + f.agent.drops).max(1) as f64 * 100.0,
                mb(f.agent.peak_rss_kb),
                mb(baseline)
            );
        }
    }

    fn attach_md(&self, md: &mut String) {
        let Some(bin) = self.bin else {
            md.push_str("\n## Attach time on a large Go binary\n\nNo binary (see Errors).\n");
            return;
        };
        let sec = |name: &str| -> f64 {
            let total: u64 = bin
                .sections
                .iter()
                .filter(|(n, _)| n == name || (name == ".debug" && n.starts_with(".debug")))
                .map(|(_, s)| s)
                .sum();
            total as f64 / 1e6
        };
        let _ = writeln!(
            md,
            "\n## Attach time on a large Go binary\n\n`{}`: {:.1} MB, {} generated functions \
             (.text {:.1} MB, .gopclntab {:.1} MB, .symtab {:.1} MB, DWARF {:.1} MB \
             compressed). `tracer attach PID --format json --duration 0s [--mode M]`: start to \
             exit (inspect, plan, load, attach, snapshot, report, detach), and start to its \
             \"attached\" line.\n\n\
             | mode | start to exit (median) | range | runs | start to attached | agent CPU | agent peak RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|",
            bin.path.display(),
            bin.bytes as f64 / 1e6,
            thousands(bin.funcs as f64),
            sec(".text"),
            sec(".gopclntab"),
            sec(".symtab"),
            sec(".debug"),
        );
        for a in self.attach {
            if let Some(why) = &a.na {
                let _ = writeln!(md, "| {} | n/a ({why}) | | | | | |", a.mode);
                continue;
            }
            let of = |f: &dyn Fn(&Agent) -> Option<f64>| -> Vec<f64> {
                a.runs.iter().filter_map(|r| f(&r.agent)).collect()
            };
            let walls = of(&|a| Some(a.wall_s));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1} MB |",
                a.mode,
                opt_secs(median(&walls)),
                min_max(&walls).map_or("-".into(), |(x, y)| format!("{}–{}", secs(x), secs(y))),
                a.runs.len(),
                opt_secs(median(&of(&|a| a.attached_s))),
                opt_secs(median(&of(&|a| Some(a.cpu_s)))),
                mb(a.runs
                    .iter()
                    .map(|r| r.agent.peak_rss_kb)
                    .max()
                    .unwrap_or(0)),
            );
        }
    }

    fn snapshot_md(&self, md: &mut String) {
        let n = self.ctx.p.snapshot_goroutines;
        let _ = writeln!(
            md,
            "\n## Snapshot with {} parked goroutines\n\n`tests/fixtures/many -n {n}`, then \
             `tracer attach PID --format json --duration 0s` (default mode).\n\n\
             | run | goroutines parked (tracer) | snapshot read (tracer) | start to exit | agent CPU | agent peak RSS |\n\
             |---:|---:|---:|---:|---:|---:|",
            thousands(n as f64),
        );
        for (i, r) in self.snapshot.iter().enumerate() {
            let (count, took) = r
                .snapshot
                .clone()
                .map_or(("-".into(), "no snapshot line".into()), |(n, t)| {
                    (thousands(n as f64), t)
                });
            let _ = writeln!(
                md,
                "| {} | {count} | {took} | {} | {} | {:.1} MB |",
                i + 1,
                secs(r.agent.wall_s),
                secs(r.agent.cpu_s),
                mb(r.agent.peak_rss_kb)
            );
        }
    }

    fn json(&self) -> J {
        let p = &self.ctx.p;
        let agent = |a: &Agent| -> J {
            J::obj(vec![
                ("cpu_s", J::Num(a.cpu_s)),
                ("wall_s", J::Num(a.wall_s)),
                ("peak_rss_kb", J::Int(a.peak_rss_kb)),
                ("attached_s", J::opt(a.attached_s)),
                ("teardown_s", J::opt(a.teardown_s())),
                ("events", J::Int(a.events)),
                ("drops", J::Int(a.drops)),
                ("duration_ns", J::Int(a.duration_ns)),
            ])
        };
        let row = |r: &Row| -> J {
            let mut o = vec![
                ("workload", J::s(&r.workload)),
                ("config", J::s(r.config.id)),
                ("label", J::s(r.config.label)),
            ];
            if let Some(why) = &r.na {
                o.push(("unavailable", J::s(why)));
                return J::obj(o);
            }
            if r.n > 0 {
                o.push(("n", J::Int(r.n)));
            }
            o.extend([
                ("median_rate", J::opt(r.rate())),
                ("median_ratio", J::opt(r.ratio())),
                ("ratios", J::nums(&r.ratios)),
                (
                    "rates",
                    J::nums(&r.samples.iter().map(|s| s.rate).collect::<Vec<_>>()),
                ),
                ("agent", J::Arr(r.agents().into_iter().map(agent).collect())),
            ]);
            J::obj(o)
        };
        let (best, _) = self.drain();
        let flood = self
            .flood
            .iter()
            .map(|f| {
                J::obj(vec![
                    ("pairs", J::Int(f.pairs)),
                    ("n", J::Int(f.n)),
                    ("events_per_sec", J::Num(f.rate())),
                    ("events_per_sec_during_workload", J::Num(f.work_rate())),
                    ("workload_ns", J::Int(f.work_ns)),
                    ("agent_stopped_s", J::opt(f.paused_s)),
                    ("agent", agent(&f.agent)),
                ])
            })
            .collect();
        let attach_run = |r: &AttachRun| -> J {
            J::obj(vec![
                ("agent", agent(&r.agent)),
                (
                    "parked_reported",
                    r.snapshot.as_ref().map_or(J::Null, |s| J::Int(s.0)),
                ),
                (
                    "snapshot_read",
                    r.snapshot.as_ref().map_or(J::Null, |s| J::s(&s.1)),
                ),
            ])
        };
        let attach = self
            .attach
            .iter()
            .map(|a| {
                J::obj(vec![
                    ("mode", J::s(&a.mode)),
                    ("unavailable", a.na.as_deref().map_or(J::Null, J::s)),
                    ("runs", J::Arr(a.runs.iter().map(attach_run).collect())),
                ])
            })
            .collect();
        let bin = self.bin.map_or(J::Null, |b| {
            J::Obj(
                [
                    ("path".to_string(), J::s(&b.path.display().to_string())),
                    ("bytes".to_string(), J::Int(b.bytes)),
                    ("functions".to_string(), J::Int(b.funcs as u64)),
                    (
                        "sections".to_string(),
                        J::Obj(
                            b.sections
                                .iter()
                                .filter(|(n, _)| !n.is_empty())
                                .map(|(n, s)| (n.clone(), J::Int(*s)))
                                .collect(),
                        ),
                    ),
                ]
                .into(),
            )
        });
        let targets = self
            .targets()
            .iter()
            .map(|t| {
                J::obj(vec![
                    ("target", J::s(&t.what)),
                    ("measured", J::s(&t.measured)),
                    ("status", J::s(&t.status)),
                ])
            })
            .collect();
        J::obj(vec![
            ("quick", J::Bool(p.quick)),
            ("machine", J::s(&self.machine())),
            ("elapsed_s", J::Num(self.elapsed.as_secs_f64())),
            ("rounds", J::Int(p.rounds as u64)),
            ("targets", J::Arr(targets)),
            ("workloads", J::Arr(self.rows.iter().map(row).collect())),
            (
                "http",
                J::obj(vec![
                    ("seconds", J::Int(p.http_secs)),
                    ("conns", J::Int(u64::from(HTTP_CONNS))),
                    ("rounds", J::Int(p.http_rounds as u64)),
                    ("rows", J::Arr(self.http.iter().map(row).collect())),
                ]),
            ),
            (
                "http_fixed_rate",
                J::obj(vec![
                    ("seconds", J::Int(p.http_secs)),
                    ("conns", J::Int(u64::from(HTTP_CONNS))),
                    ("rounds", J::Int(p.http_rate_rounds as u64)),
                    ("share_of_untraced_rate", J::Num(HTTP_RATE_SHARE)),
                    ("unit", J::s("requests per second of service CPU time")),
                    ("rows", J::Arr(self.http_rate.iter().map(row).collect())),
                ]),
            ),
            (
                "flood",
                J::obj(vec![
                    ("max_rate_without_drop", J::opt(best.map(FloodRun::rate))),
                    ("runs", J::Arr(flood)),
                ]),
            ),
            (
                "attach",
                J::obj(vec![("binary", bin), ("modes", J::Arr(attach))]),
            ),
            (
                "snapshot",
                J::obj(vec![
                    ("goroutines", J::Int(p.snapshot_goroutines)),
                    (
                        "runs",
                        J::Arr(self.snapshot.iter().map(attach_run).collect()),
                    ),
                ]),
            ),
            (
                "slow_modes",
                J::Obj(
                    self.ctx
                        .slow
                        .iter()
                        .map(|(m, s)| (m.to_string(), J::Num(*s)))
                        .collect(),
                ),
            ),
            (
                "errors",
                J::Arr(self.errors.iter().map(|e| J::s(e)).collect()),
            ),
        ])
    }
}

/// Just enough JSON to write results.json.
enum J {
    Null,
    Bool(bool),
    Int(u64),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn s(v: &str) -> J {
        J::Str(v.to_string())
    }

    fn opt(v: Option<f64>) -> J {
        v.map_or(J::Null, J::Num)
    }

    fn nums(v: &[f64]) -> J {
        J::Arr(v.iter().map(|x| J::Num(*x)).collect())
    }

    fn obj(fields: Vec<(&str, J)>) -> J {
        J::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |n: usize| "  ".repeat(n);
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Num(x) if x.is_finite() => {
                let _ = write!(out, "{}", (x * 1e4).round() / 1e4);
            }
            J::Num(_) => out.push_str("null"),
            J::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            J::Arr(v) if v.iter().all(|x| matches!(x, J::Int(_) | J::Num(_))) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out, indent);
                }
                out.push(']');
            }
            J::Arr(v) => {
                out.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    x.write(out, indent + 1);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push(']');
            }
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    J::Str(k.clone()).write(out, 0);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push('}');
            }
        }
    }
}

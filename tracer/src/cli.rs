//! Command line. Every flag explains itself in `--help`.
use crate::duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Live eBPF tracer for Go programs: stuck goroutines, leaks and lock-order bugs, by PID.",
    long_about = "Live eBPF tracer for Go programs: which goroutines are stuck, where, on what, \
                  for how long, without restarting or rebuilding the target.\n\n\
                  Needs root and a kernel with uprobes. Without root: CAP_SYS_ADMIN for the probes; \
                  for another user's process also CAP_SYS_PTRACE and CAP_KILL \
                  (--mode snapshot: CAP_SYS_PTRACE only).\n\
                  Exit codes: 0 ok, 1 a finding matched --fail-on, 2 bad input or setup error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to a running Go process and report its stuck goroutines.
    Attach {
        /// Process id of the Go program.
        #[arg(value_parser = pid)]
        pid: u32,
        #[command(flatten)]
        opts: TraceOpts,
    },
    /// Start a Go program under tracing from its first instruction and report every
    /// goroutine still parked when it exits.
    Run {
        #[command(flatten)]
        opts: TraceOpts,
        /// The program and its arguments (after `--`).
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Trace many Go processes continuously, in one process: by PID, executable
    /// name or path, cgroup (or container id), or every Go process on the host.
    /// New matching processes are traced as they start, exited ones dropped.
    /// Findings go to stdout (or --output) with each line's PID; Prometheus
    /// metrics of every target and each target's pprof profile are served on
    /// --listen (default 127.0.0.1:9464: /metrics, /pprof/PID). Default mode:
    /// watch (no probe cost).
    Agent {
        /// Trace this process (repeatable).
        #[arg(long = "pid", value_parser = pid)]
        pids: Vec<u32>,
        /// Trace every process whose executable has this file name, or this full
        /// path when it has a `/` (repeatable).
        #[arg(long = "exe", value_name = "NAME")]
        exes: Vec<String>,
        /// Trace every process in this cgroup (a cgroup v2 path prefix such as
        /// /system.slice/api.service, or a container id) (repeatable).
        #[arg(long = "cgroup", value_name = "PATH")]
        cgroups: Vec<String>,
        /// Trace every Go process on the host (found through their Go build info).
        #[arg(long)]
        all_go: bool,
        /// How often to look for new processes.
        #[arg(long, default_value = "1s", value_parser = duration::parse_positive)]
        scan_interval: Duration,
        #[command(flatten)]
        opts: TraceOpts,
    },
    /// Compare two JSON reports (`--format json`), baseline then canary, site by
    /// site: exit 1 and say what regressed (new or more stuck goroutines at a
    /// site, new or faster growth, blocking p99 doubled, new lock findings), 0
    /// when the two agree within noise.
    Diff {
        /// The report of the build that is known good.
        baseline: PathBuf,
        /// The report of the build under test.
        canary: PathBuf,
        /// Output format: text, or json (one `regression` line per change, then a
        /// `diff` line with the count).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print where each probe would go in a process (or executable), without attaching.
    Plan {
        /// Process id of the Go program.
        #[arg(required_unless_present = "exe", value_parser = pid)]
        pid: Option<u32>,
        /// Plan for an executable file instead of a process.
        #[arg(long, conflicts_with = "pid")]
        exe: Option<PathBuf>,
        /// Which probes (see `attach --help`).
        #[arg(long, value_enum, default_value_t = Mode::Parks)]
        mode: Mode,
        /// Include the probes of the --events view.
        #[arg(long)]
        events: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct TraceOpts {
    /// What to trace. snapshot: read every goroutine from memory once, no probes,
    /// zero overhead (attach only). watch: no probe but one at exit; parked goroutines
    /// are read from memory every second (leaks and long parks, at no cost to the target). parks:
    /// parks and wakes probed, blocking-time histograms, within --budget. locks:
    /// parks plus every mutex operation (lock-order inversions, self-deadlocks,
    /// deadlock cycles), within --budget.
    #[arg(long, value_enum, default_value_t = Mode::Parks)]
    pub mode: Mode,
    /// The slowdown, in percent of the target's CPU time, the probes may cost (parks
    /// and locks modes). When their estimated cost would exceed it, the park probes
    /// and the lock sites are detached for a while and put back later, so they are
    /// sampled; leak and long-park detection do not depend on them (memory is read
    /// every second). 0 turns the budget off: every park and lock operation is seen.
    #[arg(
        long,
        alias = "lock-budget",
        default_value_t = 3.0,
        value_parser = budget,
        allow_hyphen_values = true
    )]
    pub budget: f64,
    /// Print one line per event as it happens (parks with wait reason, wakes, exits,
    /// channel operations with the channel address).
    #[arg(long)]
    pub events: bool,
    /// With --events: only these goroutines (repeatable).
    #[arg(long = "goid", value_name = "GOID", requires = "events")]
    pub event_goids: Vec<u64>,
    /// With --events: only events whose wait reason contains this (e.g. "chan").
    #[arg(long = "reason", value_name = "TEXT", requires = "events")]
    pub event_reason: Option<String>,
    /// With --events: only events whose site (function or file:line) contains
    /// this (e.g. "main." or "server.go:42").
    #[arg(long = "site", value_name = "TEXT", requires = "events")]
    pub event_site: Option<String>,
    /// With --events: the runtime's own goroutines too (GC workers, the sweeper,
    /// the scavenger), which are left out by default.
    #[arg(long, requires = "events")]
    pub runtime_events: bool,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the target exits.
    /// `tracer run` then stops the program it started (SIGTERM, SIGKILL after 1 s).
    /// 0 reads the goroutines once and detaches. Every duration flag is at most 365
    /// days.
    #[arg(long, value_parser = duration::parse, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Output format: text (Go goroutine-dump style) or json (JSON Lines, docs/json.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A goroutine parked longer than this is reported (rule long_parked); 0 reports
    /// every parked goroutine, as a goroutine dump would.
    #[arg(
        long,
        value_parser = duration::parse,
        default_value = "10s",
        allow_hyphen_values = true
    )]
    pub park_threshold: Duration,
    /// Window over which a group of goroutines that only grows is called a leak
    /// (rule growing); greater than 0.
    #[arg(
        long,
        value_parser = duration::parse_positive,
        default_value = "30s",
        allow_hyphen_values = true
    )]
    pub leak_window: Duration,
    /// Never report goroutines with a function whose name starts with this
    /// (repeatable): matched against the start function, the blocking site and
    /// every frame of the stack, like goleak's IgnoreTopFunction and
    /// IgnoreAnyFunction (e.g. `main.(*Pool).worker`, `github.com/x/y.`). Added
    /// to a built-in list of the standard library's idle loops.
    #[arg(long = "ignore", value_name = "PATTERN")]
    pub ignore: Vec<String>,
    /// Exit with code 1 when a finding of this kind was made: leak, long_parked,
    /// lock (any lock finding), any.
    #[arg(long, value_delimiter = ',')]
    pub fail_on: Vec<String>,
    /// Show the kernel programs' own diagnostics (aya-log), e.g. failed memory reads.
    #[arg(long)]
    pub bpf_log: bool,
    /// Do not take a user stack at each park (cheaper; reports lose their stacks).
    #[arg(long)]
    pub no_stacks: bool,
    /// Benchmarks only: the kernel writes each park record this many times (1-16),
    /// so the agent's drain rate can be measured beyond the target's trap rate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub bench_copies: u64,
    /// Benchmarks only: the park, wake and lock-site probes count their hits and
    /// record nothing (the trap's cost alone). Findings are then meaningless.
    #[arg(long)]
    pub bench_trap_only: bool,
    /// Write the report (streamed findings, events, the final report) to this file
    /// instead of stdout: `tracer run` leaves stdout to the program.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write a pprof profile (gzipped profile.proto) when tracing ends: the
    /// parked goroutines by stack (sample types goroutines and parked time) and
    /// the parks that ended by site (contentions and delay, like Go's block
    /// profile). Read it with `go tool pprof -top FILE`.
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,
    /// Every goroutine on its own: a line per goroutine finding (text), a
    /// `goroutine` line per goroutine (JSON). Default: grouped by blocking site,
    /// with the count, the oldest age, a few goroutine ids and one full stack.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Serve Prometheus metrics on this address while tracing (GET /metrics), e.g.
    /// 127.0.0.1:9464. Loopback keeps them on this host; any other address is
    /// your explicit choice.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No probes: one read of every goroutine from the target's memory.
    Snapshot,
    /// No probe but one at exit: parked goroutines read from memory every second.
    Watch,
    /// Park and wake probes (within the budget): histograms, exact park times.
    Parks,
    /// Parks plus every Lock/Unlock site, inlined ones included.
    Locks,
}

/// A process id as the kernel hands them out: 1 to 2^22 (`PID_MAX_LIMIT`). 0 would
/// mean "every process" to the probes and to `kill`; a value beyond `i32` would
/// wrap to -1 ("every process I may signal").
fn pid(s: &str) -> Result<u32, String> {
    const PID_MAX_LIMIT: u32 = 1 << 22;
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a process id (a number, e.g. from `pgrep`)"))?;
    if n == 0 || n > PID_MAX_LIMIT {
        return Err(format!(
            "{n} is not a process id (they go from 1 to {PID_MAX_LIMIT})"
        ));
    }
    Ok(n)
}

/// `--budget`: a percentage of the target's CPU time, 0 (off) to 100.
fn budget(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number: give a percentage from 0 to 100 (0 = off)"))?;
    if v.is_nan() {
        return Err(format!(
            "{s:?} is not a number: give a percentage from 0 to 100 (0 = off)"
        ));
    }
    if !(0.0..=100.0).contains(&v) {
        return Err(format!(
            "{s:?} is out of range: give a percentage from 0 to 100 (0 = off)"
        ));
    }
    Ok(v)
}

/// Odd but legal settings, one message each (without the `tracer: ` prefix); the
/// caller prints them to stderr (`tracer: warning: {message}`) and carries on.
pub fn warnings(opts: &TraceOpts) -> Vec<String> {
    /// Above this `--budget`, the slowdown it allows is worth a warning.
    const BUDGET_WARN_ABOVE: f64 = 20.0;
    /// Parked goroutines are read from memory once a second.
    const READ_INTERVAL: Duration = Duration::from_secs(1);
    let mut out = Vec::new();
    // The budget samples the park probes and lock sites; --events turns it off.
    let probes = matches!(opts.mode, Mode::Parks | Mode::Locks) && !opts.events;
    if probes && opts.budget > BUDGET_WARN_ABOVE {
        out.push(format!(
            "--budget {}: the probes may slow the target by up to {}%",
            opts.budget, opts.budget
        ));
    }
    if opts.park_threshold.is_zero() {
        out.push(
            "--park-threshold 0: every parked goroutine will be reported as long_parked, as in a goroutine dump"
                .to_string(),
        );
    } else if opts.park_threshold < Duration::from_secs(1) {
        out.push(format!(
            "--park-threshold {:?} is below 1s: every short wait will be reported as long_parked",
            opts.park_threshold
        ));
    }
    if opts.leak_window < READ_INTERVAL {
        out.push(format!(
            "--leak-window {:?} is shorter than the {READ_INTERVAL:?} between two reads of the goroutines: the growing rule will hardly ever fire",
            opts.leak_window
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tracer").chain(args.iter().copied()))
    }

    fn opts(args: &[&str]) -> TraceOpts {
        let mut all = vec!["attach", "1"];
        all.extend_from_slice(args);
        match parse(&all)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
        {
            Command::Attach { opts, .. } => opts,
            c => panic!("{c:?}"),
        }
    }

    /// The error's first line, as clap prints it.
    fn first_line(args: &[&str]) -> String {
        let e = parse(args).expect_err(&format!("{args:?} was accepted"));
        assert_eq!(e.exit_code(), 2, "{args:?}");
        assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
        e.to_string().lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn budget_is_a_percentage() {
        assert_eq!(opts(&[]).budget, 3.0);
        assert_eq!(opts(&["--budget", "0"]).budget, 0.0);
        assert_eq!(opts(&["--budget", "100"]).budget, 100.0);
        assert_eq!(opts(&["--lock-budget", "2.5"]).budget, 2.5);
        for bad in [
            "-3", "-inf", "inf", "NaN", "nan", "1000", "100.5", "-0.1", "five", "",
        ] {
            let line = first_line(&["attach", "1", "--budget", bad]);
            assert!(line.contains("--budget"), "{bad}: {line}");
            assert!(line.contains("0 to 100"), "{bad}: {line}");
            let line = first_line(&["run", "--budget", bad, "--", "x"]);
            assert!(line.contains("--budget"), "{bad}: {line}");
        }
    }

    #[test]
    fn durations_are_positive_and_at_most_a_year() {
        for flag in ["--duration", "--park-threshold", "--leak-window"] {
            // A window of 0 is meaningless; a duration or threshold of 0 is a
            // one-shot read or a full dump.
            let zero: &[(&str, &str)] = if flag == "--leak-window" {
                &[("0", "greater than 0"), ("0s", "greater than 0")]
            } else {
                &[]
            };
            for &(bad, says) in [
                ("99999999999999999999h", "365 days"),
                ("366d", "365 days"),
                ("-5s", "negative"),
                ("NaN", "expected a number"),
                ("5x", "unknown unit"),
            ]
            .iter()
            .chain(zero)
            {
                for args in [
                    vec!["attach", "1", flag, bad],
                    vec!["run", flag, bad, "--", "x"],
                ] {
                    let line = first_line(&args);
                    assert!(line.starts_with("error: "), "{args:?}: {line}");
                    assert!(line.contains(flag), "{args:?}: {line}");
                    assert!(line.contains(says), "{args:?}: {line}");
                }
            }
        }
        let o = opts(&["--duration", "365d", "--park-threshold", "2s"]);
        assert_eq!(o.duration, Some(crate::duration::MAX));
        assert_eq!(o.park_threshold, Duration::from_secs(2));
        assert_eq!(o.leak_window, Duration::from_secs(30));
        let o = opts(&["--duration", "0s", "--park-threshold", "0"]);
        assert_eq!(o.duration, Some(Duration::ZERO));
        assert_eq!(o.park_threshold, Duration::ZERO);
    }

    #[test]
    fn pids_are_real_process_ids() {
        for bad in ["0", "-1", "4294967295", "abc"] {
            let e = parse(&["attach", bad]).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["plan", "0"]).is_err());
        assert!(parse(&["attach", "4194304"]).is_ok());
    }

    #[test]
    fn defaults_give_no_warning() {
        assert!(warnings(&opts(&[])).is_empty());
        assert!(warnings(&opts(&["--park-threshold", "1s", "--leak-window", "3s"])).is_empty());
        assert!(warnings(&opts(&["--budget", "20"])).is_empty());
        assert!(warnings(&opts(&["--budget", "0"])).is_empty());
    }

    #[test]
    fn odd_values_are_warned_about() {
        let w = warnings(&opts(&["--budget", "50"]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("up to 50%"), "{w:?}");
        // No probe, no slowdown: nothing to warn about.
        assert!(warnings(&opts(&["--budget", "50", "--mode", "watch"])).is_empty());
        assert!(warnings(&opts(&["--budget", "50", "--events"])).is_empty());
        let w = warnings(&opts(&["--park-threshold", "200ms"]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("--park-threshold") && w[0].contains("every short wait"),
            "{w:?}"
        );
        let w = warnings(&opts(&["--leak-window", "500ms"]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("--leak-window"), "{w:?}");
        for w in warnings(&opts(&[
            "--budget",
            "99",
            "--park-threshold",
            "1ns",
            "--leak-window",
            "1ms",
        ])) {
            assert!(!w.contains('\n') && !w.starts_with("tracer"), "{w:?}");
        }
    }
}

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
                  Needs root (or CAP_BPF + CAP_PERFMON + CAP_SYS_PTRACE) and a kernel with uprobes.\n\
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
    /// Print where each probe would go in a process (or executable), without attaching.
    Plan {
        /// Process id of the Go program.
        #[arg(required_unless_present = "exe")]
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
    #[arg(long, alias = "lock-budget", default_value_t = 5.0)]
    pub budget: f64,
    /// Print one line per event as it happens (parks with wait reason, wakes, exits,
    /// channel operations with the channel address).
    #[arg(long)]
    pub events: bool,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the target exits.
    /// `tracer run` then stops the program it started (SIGTERM, SIGKILL after 5 s).
    #[arg(long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Output format: text (Go goroutine-dump style) or json (JSON Lines, docs/json.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A goroutine parked longer than this is reported (rule long_parked).
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub park_threshold: Duration,
    /// Window over which a group of goroutines that only grows is called a leak
    /// (rule growing).
    #[arg(long, value_parser = duration::parse, default_value = "30s")]
    pub leak_window: Duration,
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
    /// Write the report (streamed findings, events, the final report) to this file
    /// instead of stdout: `tracer run` leaves stdout to the program.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
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

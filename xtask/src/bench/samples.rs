//! What the runs measured: the agent's cost in one run, one sample, one row (a
//! configuration of a workload over all rounds), flood and attach runs, the large
//! binary's facts. Records and per-run figures only; nothing here combines runs
//! (`stats` does) or formats them (`report` does), so each figure has one home.
use super::configs::Config;
use std::path::PathBuf;

/// What the agent cost during one run.
#[derive(Clone, Default)]
pub struct Agent {
    pub cpu_s: f64,
    pub wall_s: f64,
    pub peak_rss_kb: u64,
    /// When the tracer said it had attached / stopped, from its start.
    pub attached_s: Option<f64>,
    pub stopped_s: Option<f64>,
    pub events: u64,
    pub drops: u64,
    pub duration_ns: u64,
    /// Probe hits of the session (parks, wakes, semaphores, lock sites).
    pub hits: u64,
    /// From its budget line: the share of the time the park probes (and the
    /// lock sites) were on, its estimate of the cost, the time its switches took.
    pub parks_on: Option<f64>,
    pub locks_on: Option<f64>,
    pub estimated_cost_percent: Option<f64>,
    pub switches: u64,
    pub switch_ns: u64,
}

impl Agent {
    /// Time from "stopped" to the process's exit.
    pub fn teardown_s(&self) -> Option<f64> {
        self.stopped_s.map(|s| (self.wall_s - s).max(0.0))
    }
}

#[derive(Clone)]
pub struct Sample {
    /// ops/s (workloads), requests/s (saturated HTTP) or requests per second of
    /// the service's CPU time (fixed-rate HTTP).
    pub rate: f64,
    /// The workload's own elapsed time.
    pub work_ns: u64,
    pub agent: Option<Agent>,
    /// The untraced rates of the windows just before and just after this one,
    /// when it has them (HTTP services): its ratio's baseline. The host's speed
    /// drifts by several percent within seconds; the round's one untraced run
    /// was up to a minute away.
    pub around: (Option<f64>, Option<f64>),
}

impl Sample {
    /// The tracer session's cost on top of the workload itself.
    pub fn session_overhead_s(&self) -> Option<f64> {
        let a = self.agent.as_ref()?;
        Some(a.wall_s - self.work_ns as f64 / 1e9)
    }
}

/// One configuration of one workload, over all rounds.
pub struct Row {
    pub workload: String,
    pub config: &'static Config,
    /// Operations per run (0 for the time-bounded HTTP runs).
    pub n: u64,
    pub samples: Vec<Sample>,
    pub ratios: Vec<f64>,
    /// Why there is no figure (shown in its place).
    pub na: Option<String>,
    /// Run once, not every round (slow tracer session), compared with the median
    /// untraced run.
    pub once: bool,
}

impl Row {
    pub fn new(workload: &str, config: &'static Config, n: u64) -> Self {
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

pub struct FloodRun {
    pub pairs: u64,
    pub n: u64,
    pub work_ns: u64,
    pub agent: Agent,
    /// The agent was stopped this long in the middle of the run (overload test).
    pub paused_s: Option<f64>,
}

impl FloodRun {
    /// Events over the whole tracer session (the summary's duration).
    pub fn rate(&self) -> f64 {
        self.agent.events as f64 / (self.agent.duration_ns.max(1) as f64 / 1e9)
    }

    /// Events over the workload's own run time, when they were produced.
    pub fn work_rate(&self) -> f64 {
        self.agent.events as f64 / (self.work_ns.max(1) as f64 / 1e9)
    }
}

pub struct AttachRun {
    pub agent: Agent,
    pub snapshot: Option<(u64, String)>,
}

pub struct AttachRow {
    pub mode: String,
    pub runs: Vec<AttachRun>,
    pub na: Option<String>,
}

pub struct BinInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub funcs: usize,
    pub sections: Vec<(String, u64)>,
}

/// One `tracer agent` over many targets.
#[derive(Default)]
pub struct FleetRun {
    pub targets: usize,
    /// Targets the agent said it attached to.
    pub attached: usize,
    pub agent: Agent,
}

//! The report on a finished bench: `results.md` and `results.json`, from the rows,
//! runs and errors the workloads kept. It only reads what was measured (its one
//! process is `tracer --version` for the machine line), so that the report never
//! changes a figure, and a failed section still leaves the others reported.
mod agent_tables;
mod format;
mod json;
mod json_writer;
mod markdown;
mod parts;
mod targets;

use super::runner::Ctx;
use super::samples::{AttachRow, AttachRun, BinInfo, FleetRun, FloodRun, Row};
use super::stats::median;
use crate::setup::DEFAULT_GO;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;

pub struct Report<'a> {
    pub ctx: &'a Ctx,
    pub rows: &'a [Row],
    pub http: &'a [Row],
    /// At a fixed request rate; a sample's rate is requests per service CPU-second.
    pub http_rate: &'a [Row],
    /// The many-lock-sites service, saturated.
    pub sites: &'a [Row],
    pub flood: &'a [FloodRun],
    pub bin: Option<&'a BinInfo>,
    pub attach: &'a [AttachRow],
    pub snapshot: &'a [AttachRun],
    pub fleet: Option<&'a FleetRun>,
    pub errors: &'a [String],
    pub elapsed: Duration,
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
}

//! The runner's state for one bench: the built binaries, capture files, which
//! configurations this tracer offers and which modes are too slow to run every
//! round. It decides whether a configuration runs, never what a workload does with
//! it, so that every workload skips a mode, and says why, the same way.
pub mod output;
pub mod process;
pub mod runs;

use super::configs::{Config, How};
use super::params::Params;
use super::samples::Sample;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// No single run may take longer than this, whatever the configuration.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// A tracer mode whose session costs more than this on top of the workload (start-up
/// plus tear-down) is run once per workload instead of every round (full bench), or
/// only once at all (quick run), so that the bench stays within its time.
pub const SLOW_SESSION_SECS: f64 = 5.0;

pub struct Ctx {
    pub p: Params,
    pub tracer: PathBuf,
    pub bench: PathBuf,
    pub loadgen: PathBuf,
    pub many: PathBuf,
    /// `tests/fixtures/exits`: a small program that parks and waits (agent targets).
    pub exits: PathBuf,
    pub tmp: PathBuf,
    pub seq: u64,
    /// `tracer run --help` and `tracer attach --help`, to see which flags exist.
    pub help: String,
    /// Configurations the tracer does not offer (config id -> why).
    pub na: HashMap<&'static str, String>,
    /// Modes whose sessions are slow (mode -> seconds on top of the workload).
    pub slow: HashMap<&'static str, f64>,
    pub clk_tck: f64,
}

/// Workloads that are services: an attach-only mode is measured on them.
const HTTP_WORKLOADS: &[&str] = &["httpservice", "locksites"];

impl Ctx {
    /// Fresh stdout/stderr capture files for one process.
    pub fn files(&mut self) -> (PathBuf, PathBuf) {
        self.seq += 1;
        (
            self.tmp.join(format!("{}.out", self.seq)),
            self.tmp.join(format!("{}.err", self.seq)),
        )
    }

    /// The tracer flags of a configuration, or why this tracer cannot run it.
    pub fn tracer_flags(&self, how: How) -> Result<Vec<String>, String> {
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

    pub fn unavailable(&mut self, cfg: &'static Config, why: String) -> Option<Sample> {
        eprintln!("bench: {}: {why}", cfg.label);
        self.na.insert(cfg.id, why);
        None
    }

    /// Why a configuration is not run here, if it is not.
    pub fn skip(&self, cfg: &'static Config, workload: &str) -> Option<String> {
        if let Some(why) = self.na.get(cfg.id) {
            return Some(why.clone());
        }
        if matches!(cfg.how, How::Attach { .. }) && !HTTP_WORKLOADS.contains(&workload) {
            return Some("attach-only mode: measured on the HTTP services".into());
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

    /// Notes a mode as slow when this sample's session cost says so.
    pub fn check_slow(&mut self, cfg: &'static Config, s: &Sample) -> bool {
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
}

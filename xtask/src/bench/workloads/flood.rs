//! The agent's drain rate: the flood workload with more and more pairs, then one run
//! with the agent stopped so that its ring buffer overflows. Only what the agent
//! keeps and drops is measured here, never the target's slowdown: the tracer runs
//! with `--budget 0 --bench-copies 8`, made for this measurement, not for users.
use crate::bench::configs::{Config, How, Role};
use crate::bench::runner::Ctx;
use crate::bench::samples::FloodRun;
use anyhow::Result;
use std::time::Duration;

/// The flood measures the agent's drain rate: every park must be a record, so the
/// park probes are not sampled, and the kernel writes each park record 8 times
/// (`--bench-copies`): the target cannot trap fast enough on two cores to load an
/// agent that has one of them.
const FLOOD: Config = Config {
    id: "parks-flood",
    label: "tracer parks --budget 0 --bench-copies 8",
    how: How::Run {
        mode: "parks",
        extra: &["--budget", "0", "--bench-copies", "8"],
    },
    role: Role::Reference,
};

impl Ctx {
    /// The flood workload under `tracer run --mode parks --budget 0` with more and
    /// more pairs.
    pub fn flood(&mut self) -> Result<Vec<FloodRun>> {
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
}

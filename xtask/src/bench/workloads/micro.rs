//! The bench fixture's micro-benchmarks (ping-pong, pipeline, mutex, ...): one
//! calibration run per configuration, then alternating rounds at sizes that last
//! about the same time under each. It keeps samples and ratios and never judges
//! them: the report reads the same rows for the tables and the JSON.
use crate::bench::configs::{Role, CONFIGS};
use crate::bench::runner::Ctx;
use crate::bench::samples::Row;
use crate::bench::stats::pair_ratios;
use anyhow::Result;

/// (workload, what one operation is, operations in a quick or calibration run)
pub const WORKLOADS: &[(&str, &str, u64)] = &[
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

impl Ctx {
    /// All configurations of one workload, alternating, with sizes calibrated so
    /// every run takes about `run_secs`.
    pub fn workload(&mut self, w: &str, base_n: u64) -> Result<Vec<Row>> {
        let args = |n: u64| -> Vec<String> {
            let mut a = vec!["-workload".into(), w.into(), "-n".into(), n.to_string()];
            if w == "contended" {
                a.extend(["-goroutines".into(), "8".into()]);
            }
            a
        };
        let mut rows: Vec<Row> = CONFIGS
            .iter()
            .filter(|c| c.role != Role::Part)
            .map(|c| Row::new(w, c, base_n))
            .collect();
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
}

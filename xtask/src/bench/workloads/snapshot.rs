//! Snapshot time and agent RSS with many parked goroutines (`tests/fixtures/many`):
//! one target, a few attaches in the default mode with no duration. Nothing is
//! traced over time, since what is measured is one read of the parked goroutines.
use crate::bench::runner::{Ctx, RUN_TIMEOUT};
use crate::bench::samples::AttachRun;
use anyhow::{Context as _, Result};

impl Ctx {
    /// Snapshot time and agent RSS with many parked goroutines.
    pub fn snapshot(&mut self) -> Result<Vec<AttachRun>> {
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

//! Attach time on the large generated binary, in the default mode and (full bench)
//! the others. A mode that cannot attach in time is a figure, not a failure. The
//! binary is built in `bigbin`, never here, so that this file only times.
use crate::bench::runner::{Ctx, RUN_TIMEOUT};
use crate::bench::samples::{AttachRow, BinInfo};
use anyhow::Result;
use std::time::Duration;

/// Attach runs in modes other than the default give up after this long.
const OPTIONAL_ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

impl Ctx {
    /// Attach time on the large binary, in the default mode and (full bench) in
    /// every other mode the tracer offers.
    pub fn attach_times(&mut self, bin: &BinInfo) -> Result<Vec<AttachRow>> {
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
}

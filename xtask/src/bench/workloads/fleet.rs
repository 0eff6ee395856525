//! `tracer agent` over many targets (`tests/fixtures/exits`, each parked and
//! waiting): what one agent costs per target in memory and CPU, in its default
//! (watch) mode. The targets run under a name of their own so that the agent's
//! `--exe` selects exactly them.
use crate::bench::runner::output::file;
use crate::bench::runner::process::Monitored;
use crate::bench::runner::{Ctx, RUN_TIMEOUT};
use crate::bench::samples::FleetRun;
use anyhow::{bail, Result};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the agent runs once started.
const AGENT_RUN: &str = "8s";

impl Ctx {
    pub fn fleet(&mut self) -> Result<FleetRun> {
        let n = self.p.fleet_targets;
        eprintln!("bench: tracer agent over {n} targets");
        let name = "bench-fleet-target";
        let copy = self.tmp.join(name);
        std::fs::copy(&self.exits, &copy)?;
        let mut targets = Vec::new();
        for i in 0..n {
            let leaks = (i % 5).to_string();
            targets.push(self.start_target(&copy, &["-after", "1h", "-leaks", &leaks])?);
        }
        let (out, err) = self.files();
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["agent", "--exe", name, "--listen", "127.0.0.1:0"])
            .args(["--format", "json", "--duration", AGENT_RUN])
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let m = Monitored::spawn(&mut cmd, Duration::from_millis(20), &err)?;
        let (status, agent) = m.finish(RUN_TIMEOUT, self.clk_tck)?;
        drop(targets);
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        if !status.success() {
            bail!("`tracer agent` exited with {status}: {}", text.trim());
        }
        let attached = text
            .lines()
            .filter(|l| l.contains("tracer: attached"))
            .count();
        Ok(FleetRun {
            targets: n,
            attached,
            agent,
        })
    }
}

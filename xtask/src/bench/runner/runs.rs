//! One run and what it cost: a bench workload plain or under `tracer run`, a fixture
//! started until `ready`, one `tracer attach`. It returns a sample, or why there is
//! none; it never loops over rounds or configurations (the workloads do), so a run
//! is measured the same way whichever family asks for it.
use super::output::{
    budget_line, failure, file, json_f64, json_u64, read, remove, result_line, summary_line,
    usage_error,
};
use super::process::{signal, wait_child, KillOnDrop, Monitored};
use super::{Ctx, RUN_TIMEOUT};
use crate::bench::configs::{Config, How};
use crate::bench::samples::{Agent, AttachRun, Sample};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

impl Ctx {
    /// Runs a workload of the bench fixture once under a configuration. `None` when
    /// the tracer does not offer the configuration.
    pub fn run_workload(
        &mut self,
        cfg: &'static Config,
        args: &[String],
    ) -> Result<Option<Sample>> {
        match cfg.how {
            How::Untraced | How::Go(_) => {
                let (out, err) = self.files();
                let what = format!("`bench {}` under {}", args.join(" "), cfg.label);
                let mut bench_args = args.to_vec();
                if let How::Go(flag) = cfg.how {
                    bench_args.push(flag.to_string());
                }
                let mut child = Command::new(&self.bench)
                    .args(&bench_args)
                    .stdin(Stdio::null())
                    .stdout(file(&out)?)
                    .stderr(file(&err)?)
                    .spawn()
                    .with_context(|| format!("starting {}", self.bench.display()))?;
                let status = wait_child(&mut child, RUN_TIMEOUT).context(what.clone())?;
                let text = read(&out);
                let (rate, work_ns) = result_line(&text)
                    .ok_or_else(|| failure(&what, "printed no result", status, &out, &err))?;
                remove(&[&out, &err]);
                Ok(Some(Sample {
                    rate,
                    work_ns,
                    agent: None,
                    around: (None, None),
                }))
            }
            How::Attach { .. } => Ok(None),
            How::Run { .. } => self.run_traced(cfg, args, None),
        }
    }

    /// A workload under `tracer run`; with `pause` = (after, for), the tracer is
    /// stopped (SIGSTOP) `after` its "attached" line, for `for`, while the target
    /// goes on producing events.
    pub fn run_traced(
        &mut self,
        cfg: &'static Config,
        bench_args: &[String],
        pause: Option<(Duration, Duration)>,
    ) -> Result<Option<Sample>> {
        let (out, err) = self.files();
        let what = format!("`bench {}` under {}", bench_args.join(" "), cfg.label);
        let flags = match self.tracer_flags(cfg.how) {
            Ok(f) => f,
            Err(why) => return Ok(self.unavailable(cfg, why)),
        };
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["run", "--format", "json"])
            .args(&flags)
            .arg("--")
            .arg(&self.bench)
            .args(bench_args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let m = Monitored::spawn(&mut cmd, Duration::from_millis(5), &err)?;
        if let Some((after, stopped)) = pause {
            let deadline = Instant::now() + Duration::from_secs(60);
            while m.attached().is_none() && m.running() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            thread::sleep(after);
            if m.running() {
                signal(m.pid, "STOP");
                thread::sleep(stopped);
                signal(m.pid, "CONT");
            }
        }
        let (status, mut agent) = m.finish(RUN_TIMEOUT, self.clk_tck).context(what.clone())?;
        let text = read(&out);
        let Some((rate, work_ns)) = result_line(&text) else {
            if let Some(why) = usage_error(status, &text, &read(&err)) {
                return Ok(self.unavailable(cfg, why));
            }
            return Err(failure(&what, "printed no result", status, &out, &err));
        };
        agent_summary(&what, status, &text, &out, &err, &mut agent)?;
        remove(&[&out, &err]);
        Ok(Some(Sample {
            rate,
            work_ns,
            agent: Some(agent),
            around: (None, None),
        }))
    }

    /// Starts a fixture and waits for its `ready` line.
    pub fn start_target(&mut self, bin: &Path, args: &[&str]) -> Result<(KillOnDrop, u32)> {
        let (out, err) = self.files();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut child = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if read(&out).lines().any(|l| l.starts_with("ready")) {
                let pid = child.0.id();
                return Ok((child, pid));
            }
            if let Some(status) = child.0.try_wait()? {
                let what = bin.display().to_string();
                return Err(failure(&what, "exited before ready", status, &out, &err));
            }
            if Instant::now() > deadline {
                bail!("{}: not ready within 180 s", bin.display());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tracer attach PID --duration 0s`, timed from start to exit. `None` when
    /// the tracer does not offer the mode.
    pub fn attach_once(
        &mut self,
        pid: u32,
        flags: &[String],
        timeout: Duration,
    ) -> Result<Option<AttachRun>> {
        let (out, err) = self.files();
        let what = format!("`tracer attach {pid} {}`", flags.join(" "));
        let mut cmd = Command::new(&self.tracer);
        cmd.args(["attach", &pid.to_string()])
            .args(["--format", "json", "--duration", "0s"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?);
        let m = Monitored::spawn(&mut cmd, Duration::from_millis(2), &err)?;
        let (status, mut agent) = m.finish(timeout, self.clk_tck).context(what.clone())?;
        let text = read(&out);
        let errs = read(&err);
        if summary_line(&text).is_none() {
            if let Some(why) = usage_error(status, &text, &errs) {
                eprintln!("bench: {what}: {why}");
                return Ok(None);
            }
        }
        agent_summary(&what, status, &text, &out, &err, &mut agent)?;
        let snapshot = errs
            .lines()
            .find_map(|l| l.split("snapshot: ").nth(1))
            .and_then(|rest| {
                let n = rest.split_whitespace().next()?.parse().ok()?;
                let took = rest.split("(read in ").nth(1)?.trim_end_matches(')');
                Some((n, took.to_string()))
            });
        remove(&[&out, &err]);
        Ok(Some(AttachRun { agent, snapshot }))
    }
}

/// Fills in the summary figures; a tracer that died of a signal or printed no
/// summary is an error.
pub fn agent_summary(
    what: &str,
    status: ExitStatus,
    text: &str,
    out: &Path,
    err: &Path,
    agent: &mut Agent,
) -> Result<()> {
    let Some(summary) = summary_line(text) else {
        return Err(failure(
            what,
            "the tracer printed no summary",
            status,
            out,
            err,
        ));
    };
    if status.code().is_none() {
        return Err(failure(
            what,
            "the tracer was killed by a signal",
            status,
            out,
            err,
        ));
    }
    agent.events = json_u64(summary, "events").unwrap_or(0);
    agent.drops = json_u64(summary, "drops").unwrap_or(0);
    agent.duration_ns = json_u64(summary, "duration_ns").unwrap_or(0);
    agent.hits = ["park", "resume", "semacquire", "lock_sites"]
        .iter()
        .filter_map(|k| json_u64(summary, k))
        .sum();
    if let Some(b) = budget_line(text) {
        agent.parks_on = json_f64(b, "park_probes_on");
        agent.locks_on = json_f64(b, "lock_sites_on");
        agent.estimated_cost_percent = json_f64(b, "estimated_cost_percent");
        agent.switches = json_u64(b, "park_probes_switched_off").unwrap_or(0)
            + json_u64(b, "lock_sites_switched_off").unwrap_or(0);
        agent.switch_ns = json_u64(b, "switch_ns").unwrap_or(0);
    }
    Ok(())
}

//! The net/http JSON service driven by loadgen: saturated (requests/s), then paced
//! at a share of the untraced rate (requests per second of the service's CPU time).
//! A run measures the service and the agent, never what the tracer reports finding:
//! what the service pays is the figure, whatever the tracer saw.
use crate::bench::configs::{Config, How, CONFIGS};
use crate::bench::runner::output::{failure, file, kv, read, remove, usage_error};
use crate::bench::runner::process::{proc_stat, wait_child, KillOnDrop, Monitored, PidGuard};
use crate::bench::runner::runs::agent_summary;
use crate::bench::runner::{Ctx, RUN_TIMEOUT};
use crate::bench::samples::{Row, Sample};
use crate::bench::stats::pair_ratios;
use anyhow::{bail, Context as _, Result};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const HTTP_CONNS: u32 = 8;
/// The fixed-rate HTTP runs send this share of the untraced saturated rate.
pub const HTTP_RATE_SHARE: f64 = 0.5;

impl Ctx {
    /// The HTTP service under every configuration, alternating: saturated (the
    /// throughput rows), then at a fixed share of the untraced rate (the service's
    /// CPU per request, steadier on a small machine than saturated throughput).
    pub fn http(&mut self) -> Result<(Vec<Row>, Vec<Row>)> {
        let saturated = self.http_rounds(None, self.p.http_rounds)?;
        let untraced = saturated
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
            .unwrap_or(10_000.0);
        let rate = (untraced * HTTP_RATE_SHARE).round();
        let fixed = self.http_rounds(Some(rate), self.p.http_rate_rounds)?;
        Ok((saturated, fixed))
    }

    fn http_rounds(&mut self, rate: Option<f64>, rounds: usize) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = CONFIGS
            .iter()
            .map(|c| Row::new("httpservice", c, 0))
            .collect();
        let how = rate.map_or("saturated".to_string(), |r| format!("{r:.0} req/s"));
        for round in 0..rounds {
            // Rotated each round, as for the workloads: the service's throughput
            // drifts over a round, and a fixed order would charge it to one mode.
            let k = rows.len();
            for j in 0..k {
                let row = &mut rows[(j + round) % k];
                if row.na.is_some() || (row.once && round > 0) {
                    continue;
                }
                if let Some(why) = self.skip(row.config, "httpservice") {
                    row.na = Some(why);
                    continue;
                }
                row.once = row
                    .config
                    .how
                    .mode()
                    .is_some_and(|m| self.slow.contains_key(m));
                eprintln!(
                    "bench: httpservice ({how}): {} ({} s, round {}/{rounds})",
                    row.config.label,
                    self.p.http_secs,
                    round + 1,
                );
                match self.http_once(row.config, rate)? {
                    Some(s) => row.samples.push(s),
                    None => row.na = self.na.get(row.config.id).cloned(),
                }
            }
        }
        // Slow modes ran in the first round only, so they pair with its untraced run.
        for row in rows.iter_mut() {
            row.once = false;
        }
        pair_ratios(&mut rows);
        Ok(rows)
    }

    /// Starts the service (plain, or under `tracer run`), waits for its `listen`
    /// line, drives it with loadgen for a fixed time (attaching the tracer halfway
    /// for attach-only modes), then stops it.
    fn http_once(&mut self, cfg: &'static Config, rate: Option<f64>) -> Result<Option<Sample>> {
        let what = format!("httpservice under {}", cfg.label);
        let (out, err) = self.files();
        let mut bench_args = vec!["-workload".to_string(), "httpservice".to_string()];
        if let How::Go(flag) = cfg.how {
            bench_args.push(flag.to_string());
        }
        let flags = match self.tracer_flags(cfg.how) {
            Ok(f) => f,
            Err(why) => return Ok(self.unavailable(cfg, why)),
        };
        let mut plain = None;
        let mut traced = None;
        if let How::Run { .. } = cfg.how {
            let mut cmd = Command::new(&self.tracer);
            cmd.args(["run", "--format", "json"])
                .args(&flags)
                .arg("--")
                .arg(&self.bench)
                .args(&bench_args)
                .stdin(Stdio::null())
                .stdout(file(&out)?)
                .stderr(file(&err)?);
            traced = Some(Monitored::spawn(&mut cmd, Duration::from_millis(5), &err)?);
        } else {
            let child = Command::new(&self.bench)
                .args(&bench_args)
                .stdin(Stdio::null())
                .stdout(file(&out)?)
                .stderr(file(&err)?)
                .spawn()
                .with_context(|| format!("starting {}", self.bench.display()))?;
            plain = Some(KillOnDrop(child));
        }
        // Wait for `listen addr=...` (and the service's own pid: under `tracer run`
        // it is not our child).
        let deadline = Instant::now() + Duration::from_secs(60);
        let (addr, svc_pid) = loop {
            let text = read(&out);
            let line = |prefix: &str, key: &str| {
                text.lines()
                    .find(|l| l.starts_with(prefix))
                    .and_then(|l| kv(l, key))
                    .map(str::to_string)
            };
            let pid = line("pid ", "pid").and_then(|p| p.parse::<u32>().ok());
            if let (Some(a), Some(p)) = (line("listen ", "addr"), pid) {
                break (a, p);
            }
            if let Some(p) = plain.as_mut() {
                if let Some(status) = p.0.try_wait()? {
                    return Err(failure(
                        &what,
                        "exited before listening",
                        status,
                        &out,
                        &err,
                    ));
                }
            }
            if let Some(m) = traced.take() {
                if !m.running() {
                    let (status, _) = m.finish(Duration::from_secs(10), self.clk_tck)?;
                    if let Some(why) = usage_error(status, &read(&out), &read(&err)) {
                        return Ok(self.unavailable(cfg, why));
                    }
                    return Err(failure(
                        &what,
                        "exited before listening",
                        status,
                        &out,
                        &err,
                    ));
                }
                traced = Some(m);
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: no `listen` line within 60 s (see {})",
                    out.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let svc_guard = PidGuard(svc_pid, "bench");
        thread::sleep(Duration::from_millis(300));
        let (lg_out, lg_err) = self.files();
        let cpu_before = proc_stat(svc_pid).map(|(_, t)| t);
        let mut lg = KillOnDrop(
            Command::new(&self.loadgen)
                .args(["-addr", &addr])
                .args(["-duration", &format!("{}s", self.p.http_secs)])
                .args(["-conns", &HTTP_CONNS.to_string()])
                .args(["-rate", &rate.unwrap_or(0.0).to_string()])
                .stdin(Stdio::null())
                .stdout(file(&lg_out)?)
                .stderr(file(&lg_err)?)
                .spawn()
                .context("starting loadgen")?,
        );
        let mut agent = None;
        if let How::Attach { .. } = cfg.how {
            thread::sleep(Duration::from_secs_f64(self.p.http_secs as f64 / 2.0));
            let Some(run) = self.attach_once(svc_pid, &flags, RUN_TIMEOUT)? else {
                return Ok(self.unavailable(cfg, "mode not available".into()));
            };
            agent = Some(run.agent);
        }
        let lg_status =
            wait_child(&mut lg.0, Duration::from_secs(self.p.http_secs + 60)).context("loadgen")?;
        let cpu_after = proc_stat(svc_pid).map(|(_, t)| t);
        let lg_text = read(&lg_out);
        let result = lg_text.lines().find(|l| l.starts_with("result "));
        let requests = result
            .and_then(|l| kv(l, "requests"))
            .and_then(|v| v.parse::<u64>().ok());
        let rps = result
            .and_then(|l| kv(l, "rps"))
            .and_then(|v| v.parse::<f64>().ok());
        drop(plain);
        drop(svc_guard); // stops the service; under `tracer run` the tracer then reports
        if let Some(m) = traced {
            let (status, mut a) = m.finish(Duration::from_secs(120), self.clk_tck)?;
            agent_summary(&what, status, &read(&out), &out, &err, &mut a)?;
            agent = Some(a);
        }
        let (Some(requests), Some(rps)) = (requests, rps) else {
            return Err(failure(
                &what,
                "loadgen printed no result",
                lg_status,
                &lg_out,
                &lg_err,
            ));
        };
        if requests == 0 {
            bail!("{what}: no request completed: {}", lg_text.trim());
        }
        remove(&[&out, &err, &lg_out, &lg_err]);
        let rate = match (rate, cpu_before, cpu_after) {
            (None, ..) => rps,
            // Requests per second of the service's CPU time: its capacity, were
            // it CPU-bound.
            (Some(_), Some(b), Some(a)) if a > b => {
                requests as f64 / ((a - b) as f64 / self.clk_tck)
            }
            (Some(_), ..) => bail!("{what}: the service's CPU time could not be read"),
        };
        Ok(Some(Sample {
            rate,
            work_ns: self.p.http_secs * 1_000_000_000,
            agent,
        }))
    }
}

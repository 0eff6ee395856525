//! The net/http JSON services driven by loadgen: saturated (requests/s), then
//! paced at a share of the untraced rate (requests per second of the service's
//! CPU time). One service process serves a whole table, as a user measures a
//! running service: windows of load alternate untraced and traced (each traced
//! window is compared with the untraced ones on either side of it), each traced
//! window with `tracer attach` on from before it starts to after it ends (Go's
//! own tools, which a flag turns on at start, get a process of their own). A
//! window measures the service and the agent, never what the tracer reports
//! finding: what the service pays is the figure, whatever the tracer saw.
use crate::bench::configs::{Config, How, Role, CONFIGS};
use crate::bench::runner::output::{failure, file, kv, read, remove, usage_error};
use crate::bench::runner::process::{proc_stat, signal, wait_child, KillOnDrop, Monitored};
use crate::bench::runner::runs::agent_summary;
use crate::bench::runner::{Ctx, RUN_TIMEOUT};
use crate::bench::samples::{Row, Sample};
use crate::bench::stats::{median_error, pair_ratios};
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const HTTP_CONNS: u32 = 8;
/// The fixed-rate HTTP runs send this share of the untraced saturated rate.
pub const HTTP_RATE_SHARE: f64 = 0.5;

/// One HTTP table: which service, driven how, by which configurations.
pub struct HttpTable {
    /// The row label (`httpservice`, `locksites`).
    pub workload: &'static str,
    pub bin: PathBuf,
    /// Requests per second loadgen paces (None: saturated).
    pub rate: Option<f64>,
    /// Which configurations run: cost parts only on the saturated service.
    pub parts: bool,
}

/// The median of a row's ratios is known to within this (its standard error,
/// estimated as 1.2533 sd / sqrt(n)) once the judged rows have enough rounds.
pub const MEDIAN_ERROR: f64 = 0.01;

impl Ctx {
    /// The HTTP services under every configuration, alternating: the bench's
    /// service saturated (the throughput rows), then at a fixed share of the
    /// untraced rate (the service's CPU per request), then the many-lock-sites
    /// service saturated.
    pub fn http(&mut self, locksites: Option<PathBuf>) -> Result<HttpRows> {
        let bench = self.bench.clone();
        let saturated = self.http_rounds(&HttpTable {
            workload: "httpservice",
            bin: bench.clone(),
            rate: None,
            parts: true,
        })?;
        let untraced = saturated
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
            .unwrap_or(10_000.0);
        let rate = (untraced * HTTP_RATE_SHARE).round();
        let fixed = self.http_rounds(&HttpTable {
            workload: "httpservice",
            bin: bench,
            rate: Some(rate),
            parts: false,
        })?;
        let sites = match locksites {
            Some(bin) => self.http_rounds(&HttpTable {
                workload: "locksites",
                bin,
                rate: None,
                parts: false,
            })?,
            None => Vec::new(),
        };
        Ok(HttpRows {
            saturated,
            fixed,
            sites,
        })
    }

    /// Rounds of one table. Every configuration runs in the first rounds
    /// (reference and part rows in the first `reference_rounds` only); then the
    /// judged ones and the baseline go on, up to `http_max_rounds`, until the
    /// median of each judged row is known to within [`MEDIAN_ERROR`].
    fn http_rounds(&mut self, t: &HttpTable) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = CONFIGS
            .iter()
            .filter(|c| t.parts || c.role != Role::Part)
            .map(|c| Row::new(t.workload, c, 0))
            .collect();
        let how = t
            .rate
            .map_or("saturated".to_string(), |r| format!("{r:.0} req/s"));
        let (min_rounds, max_rounds) = if t.rate.is_some() {
            (self.p.http_rate_rounds, self.p.http_rate_rounds)
        } else {
            (self.p.http_rounds, self.p.http_max_rounds)
        };
        let svc = self.start_service(&t.bin, &[])?;
        // A window of load first: the service's heap and connections warm.
        self.load_window(&svc.1, t.rate, 1)?;
        let base = rows
            .iter()
            .position(|r| r.config.how == How::Untraced)
            .context("no untraced configuration")?;
        // Every other window is untraced: each traced one is compared with the
        // untraced windows on either side of it. (row, sample) of the windows
        // still waiting for the untraced one after them.
        let mut waiting: Vec<(usize, usize)> = Vec::new();
        let mut last_untraced: Option<f64> = None;
        let mut round = 0;
        loop {
            if round >= max_rounds || (round >= min_rounds && settled(&mut rows)) {
                break;
            }
            // Rotated each round, as for the workloads: the service's throughput
            // drifts over a round, and a fixed order would charge it to one mode.
            let k = rows.len();
            for j in 0..k {
                let at = (j + round) % k;
                if at == base {
                    continue;
                }
                let row = &mut rows[at];
                if row.na.is_some() || (row.once && round > 0) {
                    continue;
                }
                let extra = matches!(row.config.role, Role::Reference | Role::Part);
                if extra && round >= self.p.reference_rounds {
                    continue;
                }
                if let Some(why) = self.skip(row.config, t.workload) {
                    row.na = Some(why);
                    continue;
                }
                if last_untraced.is_none() {
                    let u = self.untraced_window(&svc, &mut rows[base], t, round)?;
                    for (r, i) in waiting.drain(..) {
                        rows[r].samples[i].around.1 = Some(u);
                    }
                    last_untraced = Some(u);
                }
                let row = &mut rows[at];
                row.once = row
                    .config
                    .how
                    .mode()
                    .is_some_and(|m| self.slow.contains_key(m));
                eprintln!(
                    "bench: {} ({how}): {} ({} s, round {})",
                    t.workload,
                    row.config.label,
                    self.p.http_secs,
                    round + 1,
                );
                let sample = match row.config.how {
                    // Go's tools are turned on at start: a process of their own.
                    How::Go(flag) => {
                        let own = self.start_service(&t.bin, &[flag])?;
                        thread::sleep(Duration::from_millis(300));
                        self.http_window(&own, row.config, t.rate)?
                    }
                    _ => self.http_window(&svc, row.config, t.rate)?,
                };
                match sample {
                    Some(mut s) => {
                        s.around.0 = last_untraced.take();
                        waiting.push((at, row.samples.len()));
                        row.samples.push(s);
                    }
                    None => row.na = self.na.get(row.config.id).cloned(),
                }
            }
            round += 1;
        }
        if !waiting.is_empty() {
            let u = self.untraced_window(&svc, &mut rows[base], t, round)?;
            for (r, i) in waiting.drain(..) {
                rows[r].samples[i].around.1 = Some(u);
            }
        }
        drop(svc);
        // The untraced windows against their own neighbours: the bench's noise.
        let u: Vec<f64> = rows[base].samples.iter().map(|s| s.rate).collect();
        for (i, s) in rows[base].samples.iter_mut().enumerate() {
            if i > 0 && i + 1 < u.len() {
                s.around = (Some(u[i - 1]), Some(u[i + 1]));
            }
        }
        pair_ratios(&mut rows);
        Ok(rows)
    }

    /// One untraced window between traced ones; returns its rate.
    fn untraced_window(
        &mut self,
        svc: &(KillOnDrop, String, u32),
        row: &mut Row,
        t: &HttpTable,
        round: usize,
    ) -> Result<f64> {
        eprintln!(
            "bench: {} : untraced ({} s, round {})",
            t.workload,
            self.p.http_secs,
            round + 1
        );
        let s = self
            .http_window(svc, row.config, t.rate)?
            .context("an untraced window measured nothing")?;
        let rate = s.rate;
        row.samples.push(s);
        Ok(rate)
    }

    /// Starts the service with `args`, waits for its `listen` line; returns its
    /// process (killed on drop) and address.
    fn start_service(&mut self, bin: &Path, args: &[&str]) -> Result<(KillOnDrop, String, u32)> {
        let (out, err) = self.files();
        let child = Command::new(bin)
            .args(["-workload", "httpservice"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let mut svc = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = read(&out);
            if let Some(addr) = text
                .lines()
                .find(|l| l.starts_with("listen "))
                .and_then(|l| kv(l, "addr"))
            {
                return Ok((svc, addr.to_string(), pid));
            }
            if let Some(status) = svc.0.try_wait()? {
                let what = format!("{} (service)", bin.display());
                return Err(failure(
                    &what,
                    "exited before listening",
                    status,
                    &out,
                    &err,
                ));
            }
            if Instant::now() > deadline {
                bail!("{}: no `listen` line within 60 s", bin.display());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One loadgen window on `addr` of `secs` seconds; returns (requests, req/s).
    fn load_window(&mut self, addr: &str, rate: Option<f64>, secs: u64) -> Result<(u64, f64)> {
        let lg = self.start_load(addr, rate, secs)?;
        finish_load(lg, secs)
    }

    /// Starts loadgen for one window; [`finish_load`] waits for its result.
    fn start_load(&mut self, addr: &str, rate: Option<f64>, secs: u64) -> Result<Load> {
        let (out, err) = self.files();
        let child = Command::new(&self.loadgen)
            .args(["-addr", addr])
            .args(["-duration", &format!("{secs}s")])
            .args(["-conns", &HTTP_CONNS.to_string()])
            .args(["-rate", &rate.unwrap_or(0.0).to_string()])
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .context("starting loadgen")?;
        Ok(Load {
            child: KillOnDrop(child),
            out,
            err,
        })
    }

    /// One window of load on the table's service under `cfg`: untraced, with the
    /// tracer attached from before the window to after it, or (snapshot mode)
    /// attached once halfway through.
    fn http_window(
        &mut self,
        svc: &(KillOnDrop, String, u32),
        cfg: &'static Config,
        rate: Option<f64>,
    ) -> Result<Option<Sample>> {
        let (_, addr, pid) = svc;
        let flags = match self.tracer_flags(cfg.how) {
            Ok(f) => f,
            Err(why) => return Ok(self.unavailable(cfg, why)),
        };
        let secs = self.p.http_secs;
        let what = format!("tracer attach {pid} under {}", cfg.label);
        let cpu_before = proc_stat(*pid).map(|(_, t)| t);
        let mut agent = None;
        let (requests, rps) = match cfg.how {
            How::Run { .. } => {
                let (out, err) = self.files();
                let mut cmd = Command::new(&self.tracer);
                cmd.args(["attach", &pid.to_string(), "--format", "json"])
                    .args(&flags)
                    .stdin(Stdio::null())
                    .stdout(file(&out)?)
                    .stderr(file(&err)?);
                let m = Monitored::spawn(&mut cmd, Duration::from_millis(5), &err)?;
                let deadline = Instant::now() + Duration::from_secs(60);
                while m.attached().is_none() {
                    if !m.running() {
                        let (status, _) = m.finish(Duration::from_secs(10), self.clk_tck)?;
                        if let Some(why) = usage_error(status, &read(&out), &read(&err)) {
                            return Ok(self.unavailable(cfg, why));
                        }
                        return Err(failure(
                            &what,
                            "exited before attaching",
                            status,
                            &out,
                            &err,
                        ));
                    }
                    if Instant::now() > deadline {
                        bail!("{what}: not attached within 60 s (see {})", err.display());
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                m.quiet(true);
                let window = self.load_window(addr, rate, secs);
                m.quiet(false);
                signal(m.pid, "INT");
                let (status, mut a) = m.finish(Duration::from_secs(120), self.clk_tck)?;
                let window = window?;
                agent_summary(&what, status, &read(&out), &out, &err, &mut a)?;
                remove(&[&out, &err]);
                agent = Some(a);
                window
            }
            How::Attach { .. } => {
                let lg = self.start_load(addr, rate, secs)?;
                thread::sleep(Duration::from_secs_f64(secs as f64 / 2.0));
                let Some(run) = self.attach_once(*pid, &flags, RUN_TIMEOUT)? else {
                    return Ok(self.unavailable(cfg, "mode not available".into()));
                };
                agent = Some(run.agent);
                finish_load(lg, secs)?
            }
            _ => self.load_window(addr, rate, secs)?,
        };
        let cpu_after = proc_stat(*pid).map(|(_, t)| t);
        let rate = match (rate, cpu_before, cpu_after) {
            (None, ..) => rps,
            (Some(_), Some(b), Some(a)) if a > b => {
                requests as f64 / ((a - b) as f64 / self.clk_tck)
            }
            (Some(_), ..) => bail!("{what}: the service's CPU time could not be read"),
        };
        Ok(Some(Sample {
            rate,
            work_ns: secs * 1_000_000_000,
            agent,
            around: (None, None),
        }))
    }
}

/// A loadgen run under way, and where its output goes.
struct Load {
    child: KillOnDrop,
    out: PathBuf,
    err: PathBuf,
}

/// Waits for a window's loadgen; returns (requests, req/s).
fn finish_load(mut lg: Load, secs: u64) -> Result<(u64, f64)> {
    let status = wait_child(&mut lg.child.0, Duration::from_secs(secs + 60)).context("loadgen")?;
    let text = read(&lg.out);
    let result = text.lines().find(|l| l.starts_with("result "));
    let requests = result
        .and_then(|l| kv(l, "requests"))
        .and_then(|v| v.parse::<u64>().ok());
    let rps = result
        .and_then(|l| kv(l, "rps"))
        .and_then(|v| v.parse::<f64>().ok());
    match (requests, rps) {
        (Some(n), Some(r)) if n > 0 => {
            remove(&[&lg.out, &lg.err]);
            Ok((n, r))
        }
        _ => Err(failure(
            "loadgen",
            "printed no result",
            status,
            &lg.out,
            &lg.err,
        )),
    }
}

/// The three HTTP tables.
#[derive(Default)]
pub struct HttpRows {
    pub saturated: Vec<Row>,
    pub fixed: Vec<Row>,
    pub sites: Vec<Row>,
}

/// Whether every judged row's median is known to within [`MEDIAN_ERROR`]
/// (ratios are paired round by round, so they are computed afresh).
fn settled(rows: &mut [Row]) -> bool {
    pair_ratios(rows);
    rows.iter()
        .filter(|r| r.config.role == Role::Judged && r.na.is_none() && !r.once)
        .all(|r| median_error(&r.ratios).is_some_and(|e| e <= MEDIAN_ERROR))
}

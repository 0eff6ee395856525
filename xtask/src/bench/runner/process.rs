//! Child processes measured from `/proc` (CPU time read while a zombie, peak RSS
//! sampled, the tracer's two stderr markers timed) and always cleaned up: killed and
//! reaped on drop, so a failed run never leaves a tracer attached or a service
//! running. It knows no tracer flag and parses no output (`output` does).
use super::output::read;
use crate::bench::samples::Agent;
use anyhow::{bail, Context as _, Result};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the sampler looks while the tracer is quiet (see
/// [`Monitored::quiet`]): the peak RSS is the kernel's high-water mark, so a
/// slow sample misses nothing but the last moments.
const QUIET_EVERY: Duration = Duration::from_millis(200);

/// Markers on the tracer's stderr, timed by the sampler.
const ATTACHED: &str = "tracer: attached";
const STOPPED: &str = "tracer: stopped";

/// A child process whose CPU time and peak RSS are measured from `/proc`, and
/// whose stderr markers are timed.
pub struct Monitored {
    child: Child,
    pub pid: u32,
    start: Instant,
    peak_kb: Arc<AtomicU64>,
    marks: Arc<Mutex<[Option<f64>; 2]>>,
    stop: Arc<AtomicBool>,
    /// Sampling slowly (a window of load under way).
    slow: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
    reaped: bool,
}

impl Monitored {
    pub fn spawn(cmd: &mut Command, every: Duration, stderr_file: &Path) -> Result<Self> {
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let pid = child.id();
        let peak_kb = Arc::new(AtomicU64::new(0));
        let marks = Arc::new(Mutex::new([None; 2]));
        let stop = Arc::new(AtomicBool::new(false));
        let slow = Arc::new(AtomicBool::new(false));
        let (peak, seen, halt) = (peak_kb.clone(), marks.clone(), stop.clone());
        let quiet = slow.clone();
        let errf = stderr_file.to_path_buf();
        let sampler = thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                let mut gone = false;
                for line in status.lines() {
                    if let Some(v) = line
                        .strip_prefix("VmHWM:")
                        .or_else(|| line.strip_prefix("VmRSS:"))
                    {
                        let kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                        peak.fetch_max(kb, Ordering::Relaxed);
                    } else if let Some(state) = line.strip_prefix("State:") {
                        gone = matches!(state.trim_start().chars().next(), Some('Z' | 'X'));
                    }
                }
                let mut marks = seen.lock().expect("marks");
                if marks.iter().any(Option::is_none) {
                    let text = read(&errf);
                    for (slot, marker) in marks.iter_mut().zip([ATTACHED, STOPPED]) {
                        if slot.is_none() && text.contains(marker) {
                            *slot = Some(start.elapsed().as_secs_f64());
                        }
                    }
                }
                drop(marks);
                if gone {
                    break;
                }
                if quiet.load(Ordering::Relaxed) {
                    // Woken early when the window ends.
                    thread::park_timeout(QUIET_EVERY);
                } else {
                    thread::sleep(every);
                }
            }
        });
        Ok(Monitored {
            child,
            pid,
            start,
            peak_kb,
            marks,
            stop,
            slow,
            sampler: Some(sampler),
            reaped: false,
        })
    }

    pub fn running(&self) -> bool {
        matches!(proc_stat(self.pid), Some((s, _)) if s != 'Z' && s != 'X')
    }

    /// Samples every [`QUIET_EVERY`] (on) or as asked at the start (off): a
    /// window of load on a service must not pay for the bench's own reads of
    /// `/proc` 200 times a second, which only the traced windows had.
    pub fn quiet(&self, on: bool) {
        self.slow.store(on, Ordering::Relaxed);
        if let Some(s) = self.sampler.as_ref().filter(|_| !on) {
            s.thread().unpark();
        }
    }

    /// When the tracer said it had attached, if it has.
    pub fn attached(&self) -> Option<f64> {
        self.marks.lock().expect("marks")[0]
    }

    /// Waits for the exit; the CPU time is read while the process is a zombie,
    /// before it is reaped, so it is the process's own (not its children's).
    pub fn finish(mut self, timeout: Duration, clk_tck: f64) -> Result<(ExitStatus, Agent)> {
        let deadline = Instant::now() + timeout;
        let (ticks, wall) = loop {
            match proc_stat(self.pid) {
                Some((s, ticks)) if s == 'Z' || s == 'X' => break (ticks, self.start.elapsed()),
                None => break (0, self.start.elapsed()),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?}");
            }
            thread::sleep(Duration::from_millis(2));
        };
        let status = self.child.wait()?;
        self.reaped = true;
        self.stop_sampler();
        let [attached_s, stopped_s] = *self.marks.lock().expect("marks");
        Ok((
            status,
            Agent {
                cpu_s: ticks as f64 / clk_tck,
                wall_s: wall.as_secs_f64(),
                peak_rss_kb: self.peak_kb.load(Ordering::Relaxed),
                attached_s,
                stopped_s,
                ..Agent::default()
            },
        ))
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sampler.take() {
            let _ = s.join();
        }
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        if !self.reaped {
            kill_and_reap(&mut self.child);
        }
        self.stop_sampler();
    }
}

/// SIGKILL, then reap; a process still exiting after a while (a tracer tearing
/// down thousands of probes in the kernel, say) is left to finish on its own rather
/// than holding up the bench.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "bench: PID {} is still exiting 10 s after SIGKILL; leaving it",
        child.id()
    );
}

/// State and utime+stime (clock ticks) from `/proc/PID/stat`.
pub fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    // Fields 14 and 15 of proc_pid_stat(5), counted here from field 3 (the state).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

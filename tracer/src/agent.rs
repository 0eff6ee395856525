//! `tracer agent`: many targets in one long-running process. It finds the
//! processes to trace (by PID, executable, cgroup, or every Go process), starts one
//! trace per target on a thread of its own (its own session, probes, budget and
//! exit hold: exactly what `tracer attach` runs), follows new processes as they
//! start and drops those that exit, and serves every target's metrics and pprof
//! profile on one address. It never looks inside a trace: the sessions publish to
//! the fleet board (`fleet.rs`), the agent only serves it.
use crate::cli::{Mode, TraceOpts};
use crate::fleet::{Board, Fleet};
use crate::output::Writer;
use crate::trace::Traced;
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracer_inspect::TargetInfo;

/// Which processes the agent traces: any that matches one of these.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub pids: Vec<u32>,
    /// A name (the executable's file name) or, with a `/`, a full path.
    pub exes: Vec<String>,
    /// A cgroup path prefix (`/system.slice/foo.service`) or a container id.
    pub cgroups: Vec<String>,
    pub all_go: bool,
}

impl Selector {
    fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.exes.is_empty() && self.cgroups.is_empty() && !self.all_go
    }
}

/// Where the agent serves when `--listen` is not given: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Looks at /proc and remembers what it learned about executables.
struct Discovery {
    sel: Selector,
    own_exe: Option<(u64, u64)>,
    /// Executables (device, inode) already found to be Go or not.
    is_go: HashMap<(u64, u64), bool>,
}

impl Discovery {
    /// PIDs of every process that matches the selector now.
    fn scan(&mut self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let me = std::process::id();
        let mut out: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| self.matches(*pid))
            .collect();
        out.sort_unstable();
        out
    }

    fn matches(&mut self, pid: u32) -> bool {
        let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
        // Kernel threads and vanished processes have no executable.
        let Ok(link) = std::fs::read_link(&proc_exe) else {
            return false;
        };
        let Some(id) = file_id(&proc_exe) else {
            return false;
        };
        // Our own executable: the tracer's guardians, or another tracer.
        if Some(id) == self.own_exe {
            return false;
        }
        let path = link.to_string_lossy();
        let path = path.strip_suffix(" (deleted)").unwrap_or(&path);
        let name = path.rsplit('/').next().unwrap_or(path);
        let by_exe = self.sel.exes.iter().any(|e| {
            if e.contains('/') {
                e == path
            } else {
                e == name
            }
        });
        let by_cgroup = !self.sel.cgroups.is_empty() && {
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            self.sel.cgroups.iter().any(|want| {
                cg.lines().any(|l| {
                    let p = l.rsplit(':').next().unwrap_or("");
                    p.starts_with(want.as_str()) || (!want.starts_with('/') && p.contains(want))
                })
            })
        };
        let by_go = self.sel.all_go && *self.is_go.entry(id).or_insert_with(|| is_go(&proc_exe));
        self.sel.pids.contains(&pid) || by_exe || by_cgroup || by_go
    }
}

/// Whether an executable is a Go program (it has Go build info).
fn is_go(exe: &Path) -> bool {
    tracer_inspect::binary::Binary::open(exe).is_ok_and(|b| {
        b.object()
            .is_ok_and(|o| tracer_inspect::buildinfo::read(&o).is_ok())
    })
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Runs the agent until Ctrl-C, SIGTERM, SIGHUP or `--duration`. Exit code 1 when
/// a finding matched `--fail-on` in any target.
pub fn agent(sel: Selector, mut opts: TraceOpts, scan_every: Duration) -> Result<u8> {
    if sel.is_empty() {
        bail!("tracer agent needs targets: --pid N, --exe NAME, --cgroup PATH or --all-go");
    }
    if opts.mode == Mode::Snapshot {
        bail!("--mode snapshot reads a process once: use `tracer attach PID --mode snapshot`");
    }
    let addr = opts
        .listen
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address"));
    let listener = crate::metrics::bind(addr)?;
    let writer = Writer::new(
        opts.output.as_deref(),
        opts.format,
        opts.verbose,
        crate::clock::monotonic_ns(),
    )?;
    let board = Arc::new(Board::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fleet = Arc::new(Fleet {
        out: writer.handle(),
        board: board.clone(),
        stop: stop_rx,
    });
    // Each target's own deadline would start at its attach: the agent's is global.
    let deadline = opts.duration.take();
    // Written per target through the fleet's output, served by the agent.
    opts.output = None;
    opts.pprof = None;
    opts.listen = None;
    let mut discovery = Discovery {
        sel,
        own_exe: file_id(Path::new("/proc/self/exe")),
        is_go: HashMap::new(),
    };
    say!(
        "tracer: agent serving metrics on http://{addr}/metrics and profiles on http://{addr}/pprof/PID; mode {:?}",
        opts.mode
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut targets: HashMap<u32, JoinHandle<Result<Traced>>> = HashMap::new();
    let mut failed = false;
    rt.block_on(async {
        let server = crate::metrics::Server::new(listener)?;
        let (mut int, mut term, mut hup) = (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        );
        let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(sleep);
        let mut scan = tokio::time::interval(scan_every);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // PIDs that could not be traced: not tried again while they live.
        let mut refused: HashSet<u32> = HashSet::new();
        loop {
            tokio::select! {
                _ = scan.tick() => {
                    for (pid, result) in reap(&mut targets) {
                        match result {
                            Some(t) => failed |= t.fail,
                            // Not traceable (not Go, too old, no access): not
                            // tried again while this process lives.
                            None => {
                                refused.insert(pid);
                            }
                        }
                    }
                    let live = discovery.scan();
                    refused.retain(|p| live.contains(p));
                    for pid in live {
                        if targets.contains_key(&pid) || refused.contains(&pid) {
                            continue;
                        }
                        let (opts, fleet) = (opts.clone(), fleet.clone());
                        let handle = std::thread::Builder::new()
                            .name(format!("trace {pid}"))
                            .spawn(move || trace_one(pid, opts, &fleet));
                        match handle {
                            Ok(h) => {
                                targets.insert(pid, h);
                            }
                            Err(e) => {
                                say!("tracer: PID {pid}: not traced: {e}");
                                refused.insert(pid);
                            }
                        }
                    }
                }
                Some(stream) = server.accept() => serve(stream, board.clone()),
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => break,
                _ = &mut sleep, if deadline.is_some() => break,
            }
        }
        anyhow::Ok(())
    })?;
    let _ = stop_tx.send(true);
    for (_, h) in targets.drain() {
        failed |= matches!(h.join(), Ok(Ok(t)) if t.fail);
    }
    drop(fleet);
    drop(rt);
    let delivered = writer.finish()?;
    say!("tracer: agent stopped");
    Ok(if !delivered {
        crate::EXIT_CLOSED_OUTPUT
    } else {
        u8::from(failed)
    })
}

/// Joins the traces that ended: how each went (None: it could not trace).
fn reap(targets: &mut HashMap<u32, JoinHandle<Result<Traced>>>) -> Vec<(u32, Option<Traced>)> {
    let done: Vec<u32> = targets
        .iter()
        .filter(|(_, h)| h.is_finished())
        .map(|(p, _)| *p)
        .collect();
    done.into_iter()
        .filter_map(|pid| {
            let h = targets.remove(&pid)?;
            Some((pid, h.join().ok().and_then(Result::ok)))
        })
        .collect()
}

/// One target's trace, as `tracer attach` runs it, into the fleet.
fn trace_one(pid: u32, opts: TraceOpts, fleet: &Fleet) -> Result<Traced> {
    let result = TargetInfo::from_pid(pid)
        .map_err(anyhow::Error::from)
        .and_then(|target| crate::trace::trace(&target, pid, opts, None, Some(fleet)));
    if let Err(e) = &result {
        say!("tracer: PID {pid}: not traced: {}", crate::one_line(e));
    }
    result
}

/// One HTTP connection: `/metrics` for every target, `/pprof/PID` for one.
fn serve(stream: tokio::net::TcpStream, board: Arc<Board>) {
    use crate::metrics::{io_timeout, read_request, respond, METRICS_TYPE};
    tokio::spawn(async move {
        let _ = tokio::time::timeout(io_timeout(), async move {
            let mut stream = stream;
            let path = read_request(&mut stream).await?;
            let path = path.as_deref().unwrap_or("");
            if path == "/metrics" || path == "/" {
                return respond(&mut stream, 200, METRICS_TYPE, board.metrics().as_bytes()).await;
            }
            let pid = path
                .strip_prefix("/pprof/")
                .and_then(|p| p.parse::<u32>().ok());
            let Some(ask) = pid.and_then(|p| board.pprof(p)) else {
                return respond(&mut stream, 404, "text/plain", b"").await;
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if ask.send(tx).await.is_err() {
                return respond(&mut stream, 404, "text/plain", b"").await;
            }
            match rx.await {
                Ok(body) => respond(&mut stream, 200, "application/octet-stream", &body).await,
                Err(_) => respond(&mut stream, 503, "text/plain", b"").await,
            }
        })
        .await;
    });
}

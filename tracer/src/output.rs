//! Where the report goes, and in what form: text or JSON Lines, chosen once, to
//! stdout or `--output FILE`, written by a thread of its own behind a bounded
//! queue. The session hands over findings and events and never formats or waits
//! for a slow reader: what does not fit in the queue is counted and reported, so
//! `--duration`, the budget and the exit hold never depend on who reads the output.
//! Only the final report waits, once the target has been let go and the probes are
//! detached. Nothing here computes a finding.
use crate::budget::BudgetReport;
use crate::cli::Format;
use crate::decode::LiveEvent;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use tracer_analysis::lockgraph::LockFinding;
use tracer_analysis::lockwatch::HoldTimes;
use tracer_analysis::{report, Findings, Report};

/// Chunks (one per drain or tick) waiting for the writer, at most.
const QUEUE: usize = 4096;
/// Bytes of streamed lines waiting for the writer, at most: a burst the reader
/// catches up with is kept, a reader that stopped costs this much memory.
const QUEUE_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    /// Lines given up on because the queue was full.
    dropped_lines: AtomicU64,
    /// Bytes handed over and not yet written.
    queued: std::sync::atomic::AtomicUsize,
    /// The reader went away (a closed pipe) or the file could not be written.
    closed: AtomicBool,
}

/// The session's handle: cheap to clone, never blocks but in [`Output::report`].
#[derive(Clone)]
pub struct Output {
    tx: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
    format: Format,
    /// Event times print relative to this (monotonic ns).
    t0: u64,
    /// `tracer agent`: the target's PID, on every line (`"pid"` in JSON, a
    /// `[pid N]` prefix in text), as many targets share one stream.
    tag: Option<u32>,
    /// `--verbose`: a line per goroutine rather than per site.
    verbose: bool,
}

/// Owns the writer thread; [`Writer::finish`] flushes and reports how it went.
pub struct Writer {
    handle: Output,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Writer {
    /// Writes `format` to `path`, or to stdout when there is none; event times are
    /// printed relative to `t0`.
    pub fn new(path: Option<&Path>, format: Format, verbose: bool, t0: u64) -> Result<Writer> {
        let dest: Box<dyn std::io::Write + Send> = match path {
            Some(p) => Box::new(
                std::fs::File::create(p)
                    .with_context(|| format!("--output {}: cannot create it", p.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let shared = Arc::new(Shared::default());
        let mine = shared.clone();
        let thread = std::thread::Builder::new()
            .name("output".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, dest);
                let result = (|| {
                    while let Ok(chunk) = rx.recv() {
                        out.write_all(&chunk)?;
                        mine.queued.fetch_sub(chunk.len(), Ordering::Relaxed);
                        // More already waiting: write it before flushing.
                        while let Ok(chunk) = rx.try_recv() {
                            out.write_all(&chunk)?;
                            mine.queued.fetch_sub(chunk.len(), Ordering::Relaxed);
                        }
                        out.flush()?;
                    }
                    out.flush()
                })();
                if result.is_err() {
                    mine.closed.store(true, Ordering::Relaxed);
                    // Keep taking chunks so no sender ever blocks on a dead reader.
                    while rx.recv().is_ok() {}
                }
                result
            })
            .context("starting the output thread")?;
        Ok(Writer {
            handle: Output {
                tx,
                shared,
                format,
                t0,
                tag: None,
                verbose,
            },
            thread,
        })
    }

    pub fn handle(&self) -> Output {
        self.handle.clone()
    }

    /// Waits for everything handed over to be written, once every [`Output`]
    /// handle is dropped. `Ok(false)`: the reader went away (a closed pipe).
    pub fn finish(self) -> Result<bool> {
        let Writer { handle, thread } = self;
        drop(handle);
        match thread.join() {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Ok(Err(e)) => Err(anyhow::anyhow!("writing the report: {e}")),
            Err(_) => Err(anyhow::anyhow!("the output thread failed")),
        }
    }
}

/// The closing report and what is printed before it.
pub struct FinalReport<'a> {
    pub report: &'a Report,
    /// The park probes' budget, and the lock sites' (parks and locks modes).
    pub budget: Option<(BudgetReport, Option<BudgetReport>)>,
    pub lock_sites: usize,
    pub holds: &'a [HoldTimes],
    /// Locks mode: (lock findings, lock-order edges seen).
    pub locks: Option<(usize, usize)>,
}

impl Output {
    /// A handle whose lines say which target they are about.
    pub fn tagged(&self, pid: u32) -> Output {
        Output {
            tag: Some(pid),
            ..self.clone()
        }
    }

    /// Every line of `chunk` with the target's tag, if any.
    fn tag_lines(&self, chunk: Vec<u8>) -> Vec<u8> {
        let Some(pid) = self.tag else {
            return chunk;
        };
        let mut out = Vec::with_capacity(chunk.len() + 16);
        for line in chunk.split_inclusive(|b| *b == b'\n') {
            match (self.format, line.first()) {
                (Format::Json, Some(b'{')) => {
                    let rest = &line[1..];
                    let sep = if rest.first() == Some(&b'}') { "" } else { "," };
                    out.extend_from_slice(format!("{{\"pid\":{pid}{sep}").as_bytes());
                    out.extend_from_slice(rest);
                }
                _ => {
                    out.extend_from_slice(format!("[pid {pid}] ").as_bytes());
                    out.extend_from_slice(line);
                }
            }
        }
        out
    }

    /// Findings that newly fired.
    pub fn findings(&self, fresh: &Findings) {
        if fresh.is_empty() {
            return;
        }
        let grouped;
        let fresh = if self.verbose {
            fresh
        } else {
            grouped = fresh.grouped();
            &grouped
        };
        let mut out = Vec::new();
        let _ = match self.format {
            Format::Text => report::text::write_findings(fresh, &mut out),
            Format::Json => report::json::write_findings(fresh, &mut out),
        };
        self.stream(out);
    }

    /// A lock finding, as it is found.
    pub fn lock(&self, finding: &LockFinding) {
        let mut out = Vec::new();
        let _ = match self.format {
            Format::Text => report::locks::write_text(finding, &mut out),
            Format::Json => report::locks::write_json(finding, &mut out),
        };
        self.stream(out);
    }

    /// Lines of the `--events` view.
    pub fn events(&self, events: &[LiveEvent]) {
        let mut out = Vec::new();
        for live in events {
            let _ = match self.format {
                Format::Text => writeln!(out, "{}", live.text(self.t0)),
                Format::Json => {
                    writeln!(out, "{}", serde_json::to_string(live).unwrap_or_default())
                }
            };
        }
        self.stream(out);
    }

    /// The final report: the budget's account, hold times, then the report,
    /// whose summary line is always the last in JSON. Waits for the reader.
    pub fn report(&self, r: &FinalReport<'_>) -> Result<()> {
        let mut buf = Vec::new();
        if let Some((parks, locks)) = &r.budget {
            write_budget(parks, locks.as_ref(), r.lock_sites, self.format, &mut buf)?;
        }
        if self.format == Format::Json {
            for h in r.holds {
                writeln!(buf, "{}", serde_json::to_string(h)?)?;
            }
        } else if !r.holds.is_empty() {
            writeln!(
                buf,
                "lock hold times by class (upper bounds of log2 buckets):"
            )?;
            for h in r.holds {
                writeln!(
                    buf,
                    "  {}: {} holds, p50 < {}, p99 < {}, max < {}",
                    h.class,
                    h.count,
                    crate::report_fmt::human_ns(h.p50_ns),
                    crate::report_fmt::human_ns(h.p99_ns),
                    crate::report_fmt::human_ns(h.max_ns)
                )?;
            }
            writeln!(buf)?;
        }
        if let (Some((findings, edges)), Format::Text) = (r.locks, self.format) {
            writeln!(
                buf,
                "lock findings: {findings} ({edges} lock-order edges seen)\n"
            )?;
        }
        match (self.format, self.verbose) {
            (Format::Text, _) => report::text::write(r.report, &mut buf)?,
            (Format::Json, true) => report::json::write(r.report, &mut buf)?,
            (Format::Json, false) => report::json::write_grouped(r.report, &mut buf)?,
        }
        self.write(buf);
        Ok(())
    }

    /// Hands over lines written while tracing; when the queue is full they are
    /// dropped and counted, never waited for.
    fn stream(&self, chunk: Vec<u8>) {
        if chunk.is_empty() || self.closed() {
            return;
        }
        let chunk = self.tag_lines(chunk);
        let len = chunk.len();
        let queued = self.shared.queued.fetch_add(len, Ordering::Relaxed);
        let refused = if queued + len > QUEUE_BYTES {
            Some(chunk)
        } else {
            match self.tx.try_send(chunk) {
                Ok(()) => None,
                Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => Some(c),
            }
        };
        if let Some(c) = refused {
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            let lines = c.iter().filter(|b| **b == b'\n').count().max(1);
            self.shared
                .dropped_lines
                .fetch_add(lines as u64, Ordering::Relaxed);
        }
    }

    /// The final report: waits for room, as nothing else is left to do.
    fn write(&self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            let chunk = self.tag_lines(chunk);
            self.shared.queued.fetch_add(chunk.len(), Ordering::Relaxed);
            let _ = self.tx.send(chunk);
        }
    }

    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped_lines.load(Ordering::Relaxed)
    }

    /// The reader went away: tracing on would be for nobody.
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }
}

/// The budget's account: what was sampled, for what share of the time.
fn write_budget(
    parks: &BudgetReport,
    locks: Option<&BudgetReport>,
    lock_sites: usize,
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let locks_on = locks.map(|l| l.on_fraction);
    // The park budget's estimate counts the lock sites and the agent too.
    let peak = parks
        .peak_estimate_percent
        .max(locks.map_or(0.0, |l| l.peak_estimate_percent));
    let charged = parks.charged_percent;
    let switch_ns = parks.switch_ns + locks.map_or(0, |l| l.switch_ns);
    if format == Format::Json {
        let line = serde_json::json!({
            "kind": "budget",
            "budget_percent": parks.budget_percent,
            "estimated_cost_percent": charged,
            "peak_estimate_percent": peak,
            "park_probes_on": parks.on_fraction,
            "park_probes_switched_off": parks.switches_off,
            "lock_sites": lock_sites,
            "lock_sites_on": locks_on,
            "lock_sites_switched_off": locks.map(|l| l.switches_off),
            "switch_ns": switch_ns,
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }
    // In the words of what the target paid, then what was sampled to keep it so.
    write!(
        out,
        "probe budget {}%: estimated cost {:.1}% of the target's CPU time (the agent's work for the probes included); park probes on {:.0}% of the time",
        parks.budget_percent,
        charged,
        parks.on_fraction * 100.0,
    )?;
    if let Some(on) = locks_on {
        write!(
            out,
            ", {lock_sites} lock sites on {:.0}% of the time",
            on * 100.0
        )?;
    }
    let sampled = parks.on_fraction < 0.995 || locks_on.is_some_and(|o| o < 0.995);
    if sampled {
        write!(
            out,
            " (sampled in time: always on, they would cost about {peak:.0}%)"
        )?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_full_of_bytes_drops_too() {
        let (tx, _rx) = sync_channel::<Vec<u8>>(QUEUE);
        let out = Output {
            tx,
            shared: Arc::default(),
            format: Format::Text,
            t0: 0,
            tag: None,
            verbose: false,
        };
        out.stream(vec![b'x'; QUEUE_BYTES - 1]);
        out.stream(b"y\n".to_vec());
        assert_eq!(out.dropped_lines(), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, rx) = sync_channel::<Vec<u8>>(1);
        let out = Output {
            tx,
            shared: Arc::default(),
            format: Format::Text,
            t0: 0,
            tag: None,
            verbose: false,
        };
        out.stream(b"a\n".to_vec());
        out.stream(b"b\nc\n".to_vec());
        out.stream(b"d".to_vec());
        assert_eq!(out.dropped_lines(), 3);
        assert_eq!(rx.try_recv().unwrap(), b"a\n");
    }

    #[test]
    fn tagged_lines_say_their_target() {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let json = Output {
            tx,
            shared: Arc::default(),
            format: Format::Json,
            t0: 0,
            tag: None,
            verbose: false,
        };
        json.tagged(42)
            .stream(b"{\"kind\":\"summary\"}\n{}\n".to_vec());
        assert_eq!(
            rx.try_recv().unwrap(),
            b"{\"pid\":42,\"kind\":\"summary\"}\n{\"pid\":42}\n"
        );
        let text = Output {
            format: Format::Text,
            ..json.clone()
        };
        text.tagged(7)
            .stream(b"goroutine 1 [chan send]:\nmain.main()\n".to_vec());
        assert_eq!(
            rx.try_recv().unwrap(),
            b"[pid 7] goroutine 1 [chan send]:\n[pid 7] main.main()\n"
        );
    }

    #[test]
    fn a_file_gets_every_chunk_in_order() {
        let path = std::env::temp_dir().join(format!("tracer-output-{}", std::process::id()));
        let w = Writer::new(Some(&path), Format::Text, false, 0).unwrap();
        let out = w.handle();
        for i in 0..100 {
            out.write(format!("{i}\n").into_bytes());
        }
        // Every handle gone: the writer has seen the last chunk.
        drop(out);
        assert!(w.finish().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 100);
        assert_eq!(text.lines().last(), Some("99"));
    }
}

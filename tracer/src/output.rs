//! Where the report goes: stdout or `--output FILE`, written by a thread of its own
//! behind a bounded queue. The session hands over formatted bytes and never waits
//! for a slow reader: what does not fit in the queue is counted and reported, so
//! `--duration`, the budget and the exit hold never depend on who reads the output.
//! Only the final report waits, once the target has been let go and the probes are
//! detached.
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

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

/// The session's handle: cheap to clone, never blocks in [`Output::stream`].
#[derive(Clone)]
pub struct Output {
    tx: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// Owns the writer thread; [`Writer::finish`] flushes and reports how it went.
pub struct Writer {
    handle: Output,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Writer {
    /// Writes to `path`, or to stdout when there is none.
    pub fn new(path: Option<&Path>) -> Result<Writer> {
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
            handle: Output { tx, shared },
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

impl Output {
    /// Hands over lines written while tracing; when the queue is full they are
    /// dropped and counted, never waited for.
    pub fn stream(&self, chunk: Vec<u8>) {
        if chunk.is_empty() || self.closed() {
            return;
        }
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
    pub fn write(&self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_full_of_bytes_drops_too() {
        let (tx, _rx) = sync_channel::<Vec<u8>>(QUEUE);
        let out = Output {
            tx,
            shared: Arc::default(),
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
        };
        out.stream(b"a\n".to_vec());
        out.stream(b"b\nc\n".to_vec());
        out.stream(b"d".to_vec());
        assert_eq!(out.dropped_lines(), 3);
        assert_eq!(rx.try_recv().unwrap(), b"a\n");
    }

    #[test]
    fn a_file_gets_every_chunk_in_order() {
        let path = std::env::temp_dir().join(format!("tracer-output-{}", std::process::id()));
        let w = Writer::new(Some(&path)).unwrap();
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

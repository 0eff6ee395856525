//! What `tracer agent` shares with each target's trace: one output stream (each
//! target's lines tagged with its PID), a board the sessions publish their metric
//! families to (one scrape covers every target), a way to ask a session for its
//! pprof profile, and the stop signal. Each session still runs on its own, with its
//! own probes, budget and exit hold; nothing here reaches into one.
use crate::output::Output;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use tracer_analysis::report::metrics::{self, MetricFamily};

/// A request for a target's pprof profile, answered with its gzipped bytes.
pub type PprofRequest = oneshot::Sender<Vec<u8>>;

/// Shared by the agent and every target's trace.
pub struct Fleet {
    pub out: Output,
    pub board: Arc<Board>,
    pub stop: watch::Receiver<bool>,
}

/// A session's end of the fleet. The receivers are taken by the session's loop.
pub struct Link {
    pub board: Arc<Board>,
    pub pid: u32,
    pub pprof: Option<mpsc::Receiver<PprofRequest>>,
    pub stop: Option<watch::Receiver<bool>>,
}

impl Drop for Link {
    /// A target that is no longer traced leaves the metrics.
    fn drop(&mut self) {
        self.board.leave(self.pid);
    }
}

struct Entry {
    families: Vec<MetricFamily>,
    pprof: mpsc::Sender<PprofRequest>,
}

/// The latest metric families of every target, by PID.
#[derive(Default)]
pub struct Board {
    targets: Mutex<BTreeMap<u32, Entry>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Entry>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A target's session joins the board.
    pub fn join(self: &Arc<Self>, pid: u32, stop: watch::Receiver<bool>) -> Link {
        let (tx, rx) = mpsc::channel(4);
        self.lock().insert(
            pid,
            Entry {
                families: Vec::new(),
                pprof: tx,
            },
        );
        Link {
            board: self.clone(),
            pid,
            pprof: Some(rx),
            stop: Some(stop),
        }
    }

    pub fn publish(&self, pid: u32, families: Vec<MetricFamily>) {
        if let Some(e) = self.lock().get_mut(&pid) {
            e.families = families;
        }
    }

    fn leave(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    /// One exposition for every target, with how many there are.
    pub fn metrics(&self) -> String {
        let targets = self.lock();
        let mut all = vec![MetricFamily::gauge(
            "targets",
            "Processes traced now",
            vec![(Vec::new(), targets.len() as f64)],
        )];
        for e in targets.values() {
            all.extend(e.families.iter().cloned());
        }
        metrics::encode(all)
    }

    /// Where to ask a target for its pprof profile.
    pub fn pprof(&self, pid: u32) -> Option<mpsc::Sender<PprofRequest>> {
        self.lock().get(&pid).map(|e| e.pprof.clone())
    }
}

//! What the tracer feeds the analysis, already symbolized.
//!
//! These types are the whole contract with the probe side: everything the
//! analysis knows arrives as an [`Input`], so replaying a recorded list of inputs
//! reproduces a report exactly.

use serde::Serialize;
use std::sync::Arc;

/// One source location of a goroutine's stack.
///
/// The strings are shared with the symbolizer's caches, so frames of one place are
/// usually the same pointers: comparisons check that first (the group map compares
/// keys on every park).
#[derive(Debug, Clone, Eq, Serialize)]
pub struct Frame {
    /// Fully qualified Go name, as the runtime prints it (`main.(*T).run.func1`).
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

/// `a.cmp(b)` that skips the bytes when both are one allocation.
pub fn shared_str_cmp(a: &Arc<str>, b: &Arc<str>) -> std::cmp::Ordering {
    if Arc::ptr_eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl std::hash::Hash for Frame {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.function.hash(state);
        self.file.hash(state);
        self.line.hash(state);
    }
}

impl PartialOrd for Frame {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Function, then file, then line.
impl Ord for Frame {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        shared_str_cmp(&self.function, &other.function)
            .then_with(|| shared_str_cmp(&self.file, &other.file))
            .then(self.line.cmp(&other.line))
    }
}

impl Frame {
    pub fn new(function: impl Into<Arc<str>>, file: impl Into<Arc<str>>, line: u32) -> Self {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }
}

/// What a goroutine waits on, as far as the probes could tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Object {
    Channel {
        addr: u64,
        elem_type: Option<String>,
    },
    /// A send or receive on a nil channel: it can never complete.
    NilChannel,
    Mutex {
        addr: u64,
    },
    RwMutex {
        addr: u64,
    },
    WaitGroup {
        addr: u64,
    },
    Semaphore {
        addr: u64,
    },
    Select {
        cases: u32,
    },
    None,
}

/// A stack, shared between the goroutines that have it.
pub type Frames = std::sync::Arc<[Frame]>;

/// A goroutine that is parked, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub goid: u64,
    /// Go's own wording (`chan send`, `sync.Mutex.Lock`, ...), shown verbatim.
    pub wait_reason: Arc<str>,
    /// `CLOCK_MONOTONIC` nanoseconds when it parked.
    pub since_ns: u64,
    /// False when `since_ns` is only an estimate (goroutines parked before attach).
    pub exact: bool,
    pub object: Object,
    /// Innermost first, runtime frames included. Shared: the goroutines parked at
    /// one place have one stack, and 100,000 copies of it would cost 100+ MB.
    pub frames: Frames,
    /// Entry function of the goroutine, e.g. `main.worker`.
    pub start_function: Option<Arc<str>>,
    /// The `go` statement that created it.
    pub created_by: Option<Frame>,
    pub parent_goid: Option<u64>,
    /// `CLOCK_MONOTONIC` ns by which a timer the goroutine waits on will fire and
    /// wake it (a `select` or receive on a `time.Timer`/`Ticker`/`time.After`
    /// channel, Go 1.23+). Such a wait is timed, not stuck: `long_parked` waits for
    /// the timer to be overdue, `parked_at_exit` leaves it out. None: untimed, or
    /// not known.
    pub wake_at_ns: Option<u64>,
}

/// One observation about the target, in the order the tracer saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Every goroutine parked right now, read from the target's memory when the
    /// tracer attaches (also parked-before-attach ones). Non-parked goroutines are
    /// simply absent; `total_goroutines` counts all live ones.
    Snapshot {
        ts_ns: u64,
        parked: Vec<Parked>,
        total_goroutines: u64,
        /// Goids of every live goroutine, sorted, when the read listed them: the
        /// model forgets the others (they exited), so no probe on goroutine exit
        /// is needed to keep its table from growing. `None`: not known.
        alive: Option<Vec<u64>>,
        /// Goids the read found in the same park as the read before (the runtime's
        /// `trackingSeq` unchanged): whatever the model knows of that park stands.
        /// Saves re-sending 100,000 unchanged parks every second.
        still_parked: Vec<u64>,
    },
    Park {
        ts_ns: u64,
        parked: Parked,
    },
    /// A parked goroutine was made runnable. `parked_ns` is exact when the park was
    /// seen by a probe, else `None`.
    Ready {
        ts_ns: u64,
        goid: u64,
        waker_goid: Option<u64>,
        parked_ns: Option<u64>,
    },
    Exit {
        ts_ns: u64,
        goid: u64,
    },
    /// The Go GC proved these parked goroutines unreachable (`_Gleaked`, when the
    /// `goroutineleak` profile was taken): nothing can ever wake them. Marks
    /// their current park; a goroutine not known to be parked is skipped.
    Leaked {
        ts_ns: u64,
        goids: Vec<u64>,
    },
    /// Target process exited (run mode): every goroutine still parked is "parked
    /// at exit".
    TargetExit {
        ts_ns: u64,
    },
}

impl Input {
    /// When the tracer observed it; the model's clock only moves through these.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Input::Snapshot { ts_ns, .. }
            | Input::Park { ts_ns, .. }
            | Input::Ready { ts_ns, .. }
            | Input::Exit { ts_ns, .. }
            | Input::Leaked { ts_ns, .. }
            | Input::TargetExit { ts_ns } => *ts_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_compare_by_content_whether_shared_or_not() {
        let shared = Frame::new("main.f", "/a.go", 3);
        let copy = Frame::new(String::from("main.f"), String::from("/a.go"), 3);
        assert_eq!(shared, shared.clone());
        assert_eq!(shared, copy);
        assert!(Frame::new("main.f", "/a.go", 2) < shared);
        assert!(Frame::new("main.e", "/z.go", 9) < shared);
        assert!(Frame::new("main.f", "/b.go", 1) > shared);
    }
}

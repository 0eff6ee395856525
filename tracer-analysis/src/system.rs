//! Goroutines that are never findings: the runtime's own workers, which park by
//! design for the life of the process, and whatever the caller chose to ignore.

use crate::frames;
use crate::input::{Object, Parked};

/// Go's `isSystemGoroutine` (`runtime/traceback.go`, Go 1.26) decided from the
/// start function's name alone, which is all a snapshot or a probe gives us.
///
/// Differences from the runtime, all forced by having only the name:
/// - `runtime.runFinalizers` and `runtime.runCleanups` are user goroutines in Go
///   only while they run user finalizers or cleanups; a parked one is waiting
///   for work, so it is always system here (as is the pre-1.24 `runtime.runfinq`).
/// - An unknown start function is a user goroutine: better a false report than
///   a hidden leak.
pub fn is_system_goroutine(start_function: Option<&str>) -> bool {
    let Some(name) = start_function else {
        return false;
    };
    // Go's funcIDs runtime_main, corostart and handleAsyncEvent: user code runs
    // on these even though they start in the runtime.
    if matches!(
        name,
        "runtime.main" | "runtime.corostart" | "runtime.handleAsyncEvent"
    ) {
        return false;
    }
    name.starts_with("runtime.")
}

/// The standard library's own idle loops, never findings: each waits for work
/// that may never come, by design (matched like `--ignore`, on any frame).
pub const BUILTIN_IGNORE: &[&str] = &[
    // A test that called t.Parallel waits for its siblings to finish first.
    "testing.(*T).Parallel",
    // An idle keep-alive connection of an http.Client: writeLoop waits in a
    // select for the next request, readLoop for the next response.
    "net/http.(*persistConn).writeLoop",
    "net/http.(*persistConn).readLoop",
    // database/sql's pool goroutine waits for requests for new connections.
    "database/sql.(*DB).connectionOpener",
    // signal.Notify's delivery loop (in a syscall-like wait on most versions).
    "os/signal.signal_recv",
    "os/signal.loop",
];

/// Wait reasons of the main goroutine that are how a program waits to be told
/// to stop: `select {}`, a receive from a `signal.Notify` or done channel, a
/// `WaitGroup` of its workers. Never findings: a service's `main` is parked
/// for its whole life by design (its workers, if stuck, are reported
/// themselves). A receive from a nil channel, a mutex, a send are not.
const LIFETIME_WAITS: &[&str] = &[
    "select (no cases)",
    "select",
    "chan receive",
    "sync.WaitGroup.Wait",
];

/// The element type of the channels `signal.Notify` delivers to.
pub const SIGNAL_TYPE: &str = "os.Signal";

/// Whether the goroutine waits for the program's end: the main goroutine
/// (started by `runtime.main`) in one of [`LIFETIME_WAITS`], or any goroutine
/// receiving from a `chan os.Signal` (alone or as a select case), the shape of
/// every shutdown handler; it is woken by the signal, not by other goroutines.
pub fn is_lifetime_wait(parked: &Parked) -> bool {
    let main = parked.start_function.as_deref() == Some("runtime.main")
        && LIFETIME_WAITS.contains(&&*parked.wait_reason);
    main || waits_for_signal(parked)
}

fn waits_for_signal(parked: &Parked) -> bool {
    matches!(&*parked.wait_reason, "chan receive" | "select")
        && matches!(&parked.object, Object::Channel { elem_type: Some(t), .. } if t == SIGNAL_TYPE)
}

/// The caller's ignore list, matched like goleak's `IgnoreTopFunction` and
/// `IgnoreAnyFunction` prefixes, so users can reuse the patterns they already
/// have, plus [`BUILTIN_IGNORE`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    prefixes: Vec<String>,
}

impl IgnoreList {
    /// Exactly these patterns.
    pub fn new(prefixes: Vec<String>) -> Self {
        IgnoreList { prefixes }
    }

    /// These patterns and the built-in ones.
    pub fn with_builtin(mut prefixes: Vec<String>) -> Self {
        prefixes.extend(BUILTIN_IGNORE.iter().map(|p| p.to_string()));
        IgnoreList { prefixes }
    }

    /// Whether any pattern is a prefix of the start function, the blocking site's
    /// function, or any function of the stack (the top function of the
    /// goroutine's Go dump among them).
    pub fn matches(&self, parked: &Parked, site_function: &str) -> bool {
        if self.prefixes.is_empty() {
            return false;
        }
        let top = frames::top_function(&parked.frames);
        let candidates = [parked.start_function.as_deref(), Some(site_function), top];
        candidates
            .into_iter()
            .flatten()
            .chain(parked.frames.iter().map(|f| &*f.function))
            .any(|name| self.prefixes.iter().any(|p| name.starts_with(p.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Frame, Object};

    #[test]
    fn runtime_workers_are_system() {
        for name in [
            "runtime.gcBgMarkWorker",
            "runtime.bgsweep",
            "runtime.bgscavenge",
            "runtime.forcegchelper",
            "runtime.runfinq",
            "runtime.runFinalizers",
            "runtime.runCleanups",
            "runtime.gcenable.gowrap1",
        ] {
            assert!(is_system_goroutine(Some(name)), "{name}");
        }
    }

    #[test]
    fn user_entry_points_are_not_system() {
        for name in [
            "runtime.main",
            "runtime.corostart",
            "runtime.handleAsyncEvent",
            "main.worker",
            "net/http.(*Server).Serve",
            "runtimex.foo",
        ] {
            assert!(!is_system_goroutine(Some(name)), "{name}");
        }
        assert!(!is_system_goroutine(None));
    }

    fn parked(start: Option<&str>, frames: &[&str]) -> Parked {
        Parked {
            goid: 7,
            wait_reason: "IO wait".into(),
            since_ns: 0,
            exact: true,
            object: Object::None,
            frames: frames.iter().map(|f| Frame::new(*f, "/x.go", 1)).collect(),
            start_function: start.map(std::sync::Arc::from),
            created_by: None,
            parent_goid: None,
            wake_at_ns: None,
        }
    }

    #[test]
    fn ignore_matches_start_site_or_top_function() {
        let p = parked(
            Some("net/http.(*conn).serve"),
            &[
                "runtime.gopark",
                "internal/poll.runtime_pollWait",
                "net.(*conn).Read",
            ],
        );
        let by =
            |pattern: &str| IgnoreList::new(vec![pattern.into()]).matches(&p, "net.(*conn).Read");
        assert!(by("net/http.(*conn)"));
        assert!(by("net.(*conn).Read"));
        assert!(by("internal/poll.runtime_pollWait"));
        assert!(!by("main."));
        assert!(!IgnoreList::default().matches(&p, "net.(*conn).Read"));
    }

    #[test]
    fn ignore_matches_any_frame_and_the_builtin_idle_loops() {
        let writer = parked(
            Some("net/http.(*Transport).dialConn.gowrap3"),
            &[
                "runtime.gopark",
                "runtime.selectgo",
                "net/http.(*persistConn).writeLoop",
                "net/http.(*Transport).dialConn.gowrap3",
            ],
        );
        let site = "net/http.(*persistConn).writeLoop";
        assert!(IgnoreList::with_builtin(vec![]).matches(&writer, site));
        assert!(!IgnoreList::new(vec![]).matches(&writer, site));
        assert!(IgnoreList::new(vec!["runtime.selectgo".into()]).matches(&writer, site));
        let user = parked(Some("main.worker"), &["runtime.gopark", "main.worker"]);
        assert!(!IgnoreList::with_builtin(vec![]).matches(&user, "main.worker"));
    }

    #[test]
    fn main_waiting_for_the_end_is_a_lifetime_wait() {
        let mut p = parked(Some("runtime.main"), &["runtime.gopark", "main.main"]);
        for reason in [
            "select (no cases)",
            "chan receive",
            "select",
            "sync.WaitGroup.Wait",
        ] {
            p.wait_reason = reason.into();
            assert!(is_lifetime_wait(&p), "{reason}");
        }
        for reason in ["chan receive (nil chan)", "sync.Mutex.Lock", "chan send"] {
            p.wait_reason = reason.into();
            assert!(!is_lifetime_wait(&p), "{reason}");
        }
        p.wait_reason = "chan receive".into();
        p.start_function = Some("main.worker".into());
        assert!(!is_lifetime_wait(&p));
    }

    #[test]
    fn any_goroutine_receiving_a_signal_is_a_lifetime_wait() {
        let mut p = parked(
            Some("main.trap.func1"),
            &["runtime.gopark", "main.trap.func1"],
        );
        let chan = |t: &str| Object::Channel {
            addr: 0xc000,
            elem_type: Some(t.into()),
        };
        for reason in ["chan receive", "select"] {
            p.wait_reason = reason.into();
            p.object = chan(SIGNAL_TYPE);
            assert!(is_lifetime_wait(&p), "{reason}");
            p.object = chan("int");
            assert!(!is_lifetime_wait(&p), "{reason}");
        }
        p.wait_reason = "chan send".into();
        p.object = chan(SIGNAL_TYPE);
        assert!(!is_lifetime_wait(&p));
    }
}

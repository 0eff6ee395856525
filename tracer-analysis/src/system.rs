//! Goroutines that are never findings: the runtime's own workers, which park by
//! design for the life of the process, and whatever the caller chose to ignore.

use crate::frames;
use crate::input::Parked;

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

/// The caller's ignore list, matched like goleak's `IgnoreTopFunction` and
/// `IgnoreAnyFunction` prefixes, so users can reuse the patterns they already have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    prefixes: Vec<String>,
}

impl IgnoreList {
    pub fn new(prefixes: Vec<String>) -> Self {
        IgnoreList { prefixes }
    }

    /// Whether any pattern is a prefix of the start function, the blocking site's
    /// function, or the top function of the goroutine's Go dump.
    pub fn matches(&self, parked: &Parked, site_function: &str) -> bool {
        if self.prefixes.is_empty() {
            return false;
        }
        let top = frames::top_function(&parked.frames);
        let candidates = [parked.start_function.as_deref(), Some(site_function), top];
        candidates
            .into_iter()
            .flatten()
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
}

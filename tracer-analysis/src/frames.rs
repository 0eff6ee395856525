//! Which frames of a stack matter to a reader: the blocking site (where the user
//! code stopped) and the frames a Go goroutine dump would show.

use crate::input::Frame;

/// Prefixes of functions that only carry a park to the scheduler. The site is the
/// first frame past them, so that every goroutine blocked by the same line of user
/// code lands in the same group whatever primitive it went through.
const MACHINERY_PREFIXES: [&str; 4] = ["runtime.", "internal/", "sync.", "sync/atomic."];

/// Standard-library names that are the runtime under another name
/// (`runtime.timeSleep` is linknamed as `time.Sleep`); attributing a sleep to them
/// would put every sleeper of the program in one group.
const MACHINERY_FUNCTIONS: [&str; 1] = ["time.Sleep"];

/// The bottom of every goroutine stack; never a useful site.
const GOEXIT: &str = "runtime.goexit";

/// Marks the closure the compiler generates for a `go f(args)` statement, which
/// names the statement rather than the job.
const GO_WRAPPER: &str = ".gowrap";

/// Whether the function is scheduler or synchronization machinery rather than the
/// code that decided to block.
pub fn is_machinery(function: &str) -> bool {
    MACHINERY_PREFIXES.iter().any(|p| function.starts_with(p))
        || MACHINERY_FUNCTIONS.contains(&function)
}

/// The site a goroutine is blocked at: the first frame that is not machinery.
///
/// A stack made only of machinery (the runtime's own goroutines) is attributed to
/// its outermost real frame, which names the goroutine's job (`runtime.bgsweep`),
/// rather than to `runtime.gopark`, which every stack shares. An empty stack gets a `?`
/// site so it still groups and renders.
pub fn blocking_site(frames: &[Frame]) -> Frame {
    frames
        .iter()
        .find(|f| !is_machinery(&f.function))
        .or_else(|| {
            frames
                .iter()
                .rev()
                .find(|f| &*f.function != GOEXIT && !f.function.contains(GO_WRAPPER))
        })
        .or_else(|| frames.first())
        .cloned()
        .unwrap_or_else(unknown_frame)
}

/// Stand-in for a location that could not be read.
pub fn unknown_frame() -> Frame {
    Frame::new("?", "?", 0)
}

/// Whether a default (`GOTRACEBACK=single`) Go dump prints this frame; mirrors
/// `showfuncinfo` in `runtime/traceback.go`, minus the wrapper elision, which needs
/// function metadata a name does not carry.
pub fn shown_in_go_dump(function: &str, first_frame: bool) -> bool {
    // Always shown as context that the goroutine runs finalizers or cleanups.
    if function == "runtime.runFinalizers" || function == "runtime.runCleanups" {
        return true;
    }
    // Marks the boundary between ordinary code and panic-induced deferred calls.
    if function == "runtime.gopanic" && !first_frame {
        return true;
    }
    function.contains('.') && (!function.starts_with("runtime.") || is_exported_runtime(function))
}

/// Mirrors `isExportedRuntime`: exported functions and exported methods on
/// exported types of package runtime (`runtime.Gosched`, `runtime.(*Func).Name`).
fn is_exported_runtime(function: &str) -> bool {
    let Some(name) = function.strip_prefix("runtime.") else {
        return false;
    };
    let (receiver, name) = match name.rfind('.') {
        Some(i) => {
            let receiver = &name[..i];
            let receiver = receiver
                .strip_prefix("(*")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(receiver);
            (receiver, &name[i + 1..])
        }
        None => ("", name),
    };
    let upper = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    upper(name) && (receiver.is_empty() || upper(receiver))
}

/// Indices of the frames a Go dump would print, innermost first. Like Go, falls
/// back to every frame when hiding the runtime would leave nothing.
pub fn go_dump_frames(frames: &[Frame]) -> Vec<usize> {
    let shown: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(i, f)| shown_in_go_dump(&f.function, *i == 0))
        .map(|(i, _)| i)
        .collect();
    if shown.is_empty() {
        (0..frames.len()).collect()
    } else {
        shown
    }
}

/// The function at the top of a Go dump, which is what goleak's
/// `IgnoreTopFunction` matches.
pub fn top_function(frames: &[Frame]) -> Option<&str> {
    go_dump_frames(frames)
        .first()
        .and_then(|&i| frames.get(i))
        .map(|f| &*f.function)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(functions: &[&str]) -> Vec<Frame> {
        functions
            .iter()
            .enumerate()
            .map(|(i, f)| Frame::new(*f, "/src/x.go", i as u32 + 1))
            .collect()
    }

    #[test]
    fn site_skips_runtime_and_sync_machinery() {
        let frames = stack(&[
            "runtime.gopark",
            "runtime.semacquire1",
            "internal/sync.runtime_SemacquireMutex",
            "internal/sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock",
            "main.(*cache).get",
            "main.main",
        ]);
        assert_eq!(&*blocking_site(&frames).function, "main.(*cache).get");
    }

    #[test]
    fn site_skips_time_sleep() {
        let frames = stack(&["runtime.gopark", "time.Sleep", "main.poll"]);
        assert_eq!(&*blocking_site(&frames).function, "main.poll");
    }

    #[test]
    fn site_of_runtime_only_stack_is_its_job() {
        let frames = stack(&[
            "runtime.gopark",
            "runtime.goparkunlock",
            "runtime.bgsweep",
            "runtime.gcenable.gowrap1",
            "runtime.goexit",
        ]);
        assert_eq!(&*blocking_site(&frames).function, "runtime.bgsweep");
        assert_eq!(
            &*blocking_site(&stack(&["runtime.goexit"])).function,
            "runtime.goexit"
        );
        assert_eq!(blocking_site(&[]), unknown_frame());
    }

    #[test]
    fn go_dump_hides_unexported_runtime_frames() {
        assert!(!shown_in_go_dump("runtime.gopark", true));
        assert!(!shown_in_go_dump("runtime.chansend1", false));
        assert!(shown_in_go_dump("runtime.Gosched", false));
        assert!(shown_in_go_dump("runtime.(*Func).Name", false));
        assert!(!shown_in_go_dump("runtime.(*mheap).alloc", false));
        assert!(shown_in_go_dump("runtime.gopanic", false));
        assert!(!shown_in_go_dump("runtime.gopanic", true));
        assert!(shown_in_go_dump("runtime.runFinalizers", false));
        assert!(shown_in_go_dump("sync.runtime_Semacquire", true));
        assert!(shown_in_go_dump("main.main", false));
        assert!(!shown_in_go_dump("noDotName", false));
    }

    #[test]
    fn go_dump_falls_back_to_all_frames() {
        let runtime_only = stack(&["runtime.gopark", "runtime.bgsweep"]);
        assert_eq!(go_dump_frames(&runtime_only), vec![0, 1]);
        let mixed = stack(&["runtime.gopark", "runtime.chansend1", "main.send"]);
        assert_eq!(go_dump_frames(&mixed), vec![2]);
        assert_eq!(top_function(&mixed), Some("main.send"));
        assert_eq!(top_function(&[]), None);
    }
}

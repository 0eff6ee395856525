//! Lock findings in the shape lockdep and ThreadSanitizer use: the cycle, then for
//! each edge "acquired B while holding A" with the goroutine and the stack.
use super::ReportError;
use crate::input::Frame;
use crate::lockgraph::LockFinding;
use std::io::Write;

fn frame(out: &mut dyn Write, f: &Frame) -> Result<(), ReportError> {
    writeln!(out, "    {}()\n    \t{}:{}", f.function, f.file, f.line)?;
    Ok(())
}

fn short(f: &Frame) -> String {
    let file = f.file.rsplit('/').next().unwrap_or(&f.file);
    format!("{} ({file}:{})", f.function, f.line)
}

pub fn write_text(finding: &LockFinding, out: &mut dyn Write) -> Result<(), ReportError> {
    match finding {
        LockFinding::LockOrderInversion {
            level,
            locks,
            classes,
            edges,
        } => {
            if *level == "class" {
                writeln!(
                    out,
                    "lock-order inversion between lock classes (different objects, same code paths; possible deadlock) among {} classes — rule lock_order_inversion",
                    classes.len()
                )?;
                for c in classes {
                    writeln!(out, "  class {c}")?;
                }
            } else {
                writeln!(
                    out,
                    "lock-order inversion (possible deadlock) among {} locks — rule lock_order_inversion",
                    locks.len()
                )?;
            }
            for e in edges {
                writeln!(
                    out,
                    "  goroutine {} acquired {:#x} at {} while holding {:#x} (taken at {}):",
                    e.goid,
                    e.to,
                    short(&e.acquired_at),
                    e.from,
                    short(&e.held_at)
                )?;
                for f in e
                    .stack
                    .iter()
                    .filter(|f| !crate::frames::is_machinery(&f.function))
                {
                    frame(out, f)?;
                }
            }
        }
        LockFinding::SelfDeadlock {
            goid,
            lock,
            read,
            site,
            stack,
            waiting_writer,
        } => {
            if let (true, Some(writer)) = (*read, waiting_writer) {
                writeln!(
                    out,
                    "goroutine {goid} read-locks sync.RWMutex {lock:#x} again at {} while a writer (goroutine {writer}) waits — rule self_deadlock",
                    short(site),
                )?;
            } else if *read {
                writeln!(
                    out,
                    "goroutine {goid} read-locks sync.RWMutex {lock:#x} again at {} while holding a read lock: a writer arriving in between deadlocks both (the sync docs forbid recursive read locking) — rule self_deadlock",
                    short(site),
                )?;
            } else {
                writeln!(
                    out,
                    "goroutine {goid} locks {lock:#x} at {} while already holding it (Go mutexes are not reentrant) — rule self_deadlock",
                    short(site)
                )?;
            }
            for f in stack
                .iter()
                .filter(|f| !crate::frames::is_machinery(&f.function))
            {
                frame(out, f)?;
            }
        }
        LockFinding::ExitedHolding {
            goid,
            lock,
            read,
            site,
        } => {
            writeln!(
                out,
                "goroutine {goid} ended holding {} {lock:#x}, taken at {} (a missing {}) — rule exited_holding_lock",
                if *read { "a read lock on" } else { "the lock" },
                short(site),
                if *read { "RUnlock" } else { "Unlock" },
            )?;
            frame(out, site)?;
        }
        LockFinding::Deadlock { links } => {
            let through_channel = links.iter().any(|l| l.wait_reason.starts_with("chan"));
            if through_channel {
                writeln!(
                    out,
                    "deadlock: {} goroutines wait for each other, through locks and channels: each waits for a lock the next one holds, or on a channel only the next one has ever served — rule deadlock",
                    links.len()
                )?;
            } else {
                writeln!(
                    out,
                    "deadlock: {} goroutines each wait for a lock the next one holds — rule deadlock",
                    links.len()
                )?;
            }
            for l in links {
                if l.wait_reason.starts_with("chan") {
                    writeln!(
                        out,
                        "  goroutine {} [{}] waits on channel {:#x}, which only goroutine {} has ever served",
                        l.goid, l.wait_reason, l.lock, l.holder
                    )?;
                } else {
                    let at = l
                        .held_at
                        .as_ref()
                        .map_or(String::new(), |f| format!(" (taken at {})", short(f)));
                    writeln!(
                        out,
                        "  goroutine {} [{}] waits for {:#x}, held by goroutine {}{at}",
                        l.goid, l.wait_reason, l.lock, l.holder
                    )?;
                }
                for f in l
                    .frames
                    .iter()
                    .filter(|f| !crate::frames::is_machinery(&f.function))
                {
                    frame(out, f)?;
                }
            }
        }
    }
    writeln!(out)?;
    Ok(())
}

/// One JSON line: `{"kind":"lock","rule":...}` (see docs/json.md).
pub fn write_json(finding: &LockFinding, out: &mut dyn Write) -> Result<(), ReportError> {
    let mut v = serde_json::to_value(finding)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("kind".into(), "lock".into());
    }
    writeln!(out, "{v}")?;
    Ok(())
}

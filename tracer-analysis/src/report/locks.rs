//! Lock findings in the shape lockdep and ThreadSanitizer use: the cycle, then for
//! each edge "acquired B while holding A" with the goroutine and the stack.
use super::ReportError;
use crate::input::Frame;
use crate::lockgraph::{LockEdge, LockFinding};
use std::io::Write;

fn frame(out: &mut dyn Write, f: &Frame) -> Result<(), ReportError> {
    writeln!(out, "    {}()\n    \t{}:{}", f.function, f.file, f.line)?;
    Ok(())
}

fn short(f: &Frame) -> String {
    let file = f.file.rsplit('/').next().unwrap_or(&f.file);
    format!("{} ({file}:{})", f.function, f.line)
}

/// `main.Account.mu 0xc000012345` when the lock's place in a type is known,
/// else its address.
fn lock_name(class: Option<&str>, addr: u64) -> String {
    match class {
        Some(c) => format!("{c} {addr:#x}"),
        None => format!("{addr:#x}"),
    }
}

/// The interleaving that deadlocks, as lockdep prints its "unsafe locking
/// scenario": each path holds its first lock and waits for the next path's.
fn scenario(out: &mut dyn Write, class_level: bool, edges: &[LockEdge]) -> Result<(), ReportError> {
    writeln!(
        out,
        "  how it deadlocks, should these paths run at once{}:",
        if class_level {
            " on the same objects"
        } else {
            ""
        }
    )?;
    for (i, e) in edges.iter().enumerate() {
        writeln!(
            out,
            "    path {}: holds {} taken at {}, then waits for {} at {}",
            i + 1,
            e.held_class.as_deref().unwrap_or("the lock"),
            short(&e.held_at),
            e.acquired_class.as_deref().unwrap_or("the lock"),
            short(&e.acquired_at)
        )?;
    }
    writeln!(
        out,
        "    each path waits for a lock the next one holds, the last for the first's: none can go on"
    )?;
    Ok(())
}

pub fn write_text(finding: &LockFinding, out: &mut dyn Write) -> Result<(), ReportError> {
    match finding {
        LockFinding::LockOrderInversion {
            level,
            locks,
            classes,
            edges,
        } => {
            let names = classes.join(" and ");
            if *level == "class" {
                writeln!(
                    out,
                    "lock-order inversion between lock classes {names} (seen on different objects; possible deadlock when the same objects meet) — rule lock_order_inversion",
                )?;
            } else {
                writeln!(
                    out,
                    "lock-order inversion (possible deadlock) among {} locks: {names} — rule lock_order_inversion",
                    locks.len()
                )?;
            }
            for e in edges {
                writeln!(
                    out,
                    "  goroutine {} acquired {} at {} while holding {} (taken at {}):",
                    e.goid,
                    lock_name(e.acquired_class.as_deref(), e.to),
                    short(&e.acquired_at),
                    lock_name(e.held_class.as_deref(), e.from),
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
            scenario(out, *level == "class", edges)?;
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

//! Who calls an out-of-line lock method, from where. A method that is not
//! inlined (`RWMutex.Lock` always; every method with `-gcflags=-l`) is probed
//! at its entry, whose own position (`rwmutex.go:144`) names no user code: every
//! RWMutex write lock would be one lock class, and two unrelated RWMutexes taken
//! in one order around a third lock would close a false class-level cycle.
//! The call that reached the entry tells the user's site: its return address
//! is on the stack top at the probe, so each direct call found here becomes a
//! [`CallerSite`] that the probe looks up by return address. Calls from
//! `sync`'s own code are not listed: they are the entry's ignored callers.
//! Indirect calls (a `sync.Locker`, a method value) cannot be listed and keep
//! the method's own position.

use std::collections::{BTreeMap, HashMap};

use iced_x86::{FlowControl, OpKind};

use super::classify::{classify, Class};
use super::text::TextMap;
use crate::pclntab::Pclntab;

/// `call rel32`: opcode and displacement.
const CALL_REL32_LEN: u64 = 5;

/// A direct call to a probed lock method, and the user's code it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSite {
    /// Return address of the call (link time).
    pub return_addr: u64,
    /// The innermost function the call was written in (an inlined one
    /// included), its file and the line of the call.
    pub caller: String,
    pub file: String,
    pub line: u32,
    /// The mutex's place in its owner's type, as [`super::LockSite::class`].
    pub class: Option<String>,
}

/// The user's position of a call at `call_pc`: its innermost source frame, if
/// that is not `sync`'s own code (or a forwarding wrapper, which only passes a
/// call on and names no user line).
pub(super) fn user_frame(frames: &[(&str, &str, u32)]) -> Option<(String, String, u32)> {
    let &(function, file, line) = frames.first()?;
    (classify(function) == Class::Other).then(|| (function.to_string(), file.to_string(), line))
}

/// Direct calls to the functions at `entries` (entry address -> index into the
/// result, below `n`) from code outside `sync`, each list sorted by return
/// address.
pub(super) fn user_calls(
    text: &TextMap<'_>,
    tab: &Pclntab<'_>,
    entries: &HashMap<u64, usize>,
    n: usize,
) -> Vec<Vec<CallerSite>> {
    let mut out = vec![Vec::new(); n];
    if entries.is_empty() {
        return out;
    }
    // A byte search for `E8 rel32` landing on an entry (fast; a match may be
    // inside another instruction), then each calling function is decoded from
    // its start and only calls on real instruction boundaries are kept.
    let mut candidates: BTreeMap<u64, (u64, Vec<u64>)> = BTreeMap::new();
    for (base, code) in text.sections() {
        for (i, w) in code.windows(CALL_REL32_LEN as usize).enumerate() {
            if w[0] != 0xe8 {
                continue;
            }
            let at = base + i as u64;
            let rel = i32::from_le_bytes([w[1], w[2], w[3], w[4]]);
            let target = (at + CALL_REL32_LEN).wrapping_add_signed(i64::from(rel));
            if !entries.contains_key(&target) {
                continue;
            }
            let Some(f) = tab.func_at(at) else {
                continue;
            };
            if classify(f.name).is_sync_scope() {
                continue;
            }
            candidates
                .entry(f.entry)
                .or_insert_with(|| (f.end, Vec::new()))
                .1
                .push(at);
        }
    }
    let mut insns = Vec::new();
    for (entry, (end, addrs)) in candidates {
        insns.clear();
        if !text.decode(entry, end, &mut insns) {
            continue;
        }
        for ins in &insns {
            let direct = ins.flow_control() == FlowControl::Call
                && ins.op0_kind() == OpKind::NearBranch64
                && ins.len() as u64 == CALL_REL32_LEN;
            if !direct || addrs.binary_search(&ins.ip()).is_err() {
                continue;
            }
            let Some(&i) = entries.get(&ins.near_branch_target()).filter(|i| **i < n) else {
                continue;
            };
            let frames: Vec<(&str, &str, u32)> = tab
                .frames(ins.ip())
                .iter()
                .map(|f| (f.function, f.file, f.line))
                .collect();
            if let Some((caller, file, line)) = user_frame(&frames) {
                out[i].push(CallerSite {
                    return_addr: ins.next_ip(),
                    caller,
                    file,
                    line,
                    class: None,
                });
            }
        }
    }
    for list in &mut out {
        list.sort_by_key(|c| c.return_addr);
        list.dedup_by_key(|c| c.return_addr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_frame_is_the_innermost_outside_sync() {
        let user = ("main.(*Table).lock", "/src/main.go", 37);
        let outer = ("main.register", "/src/main.go", 44);
        assert_eq!(
            user_frame(&[user, outer]),
            Some(("main.(*Table).lock".into(), "/src/main.go".into(), 37))
        );
        // sync's own call (Once.doSlow inlined into a user function): not a
        // user site, the entry ignores it.
        let once = ("sync.(*Once).doSlow", "/go/src/sync/once.go", 76);
        assert_eq!(user_frame(&[once, outer]), None);
        // A method-value wrapper forwards an indirect call: no line of its own.
        let wrapper = ("sync.(*RWMutex).Lock-fm", "<autogenerated>", 1);
        assert_eq!(user_frame(&[wrapper]), None);
        assert_eq!(user_frame(&[]), None);
    }
}

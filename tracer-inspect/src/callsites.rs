//! Direct calls to a function, found in the machine code (linux/amd64).
//!
//! A probe on some of a function's call sites stands in for one at its entry when
//! only some callers matter: `runtime.gopark` is called by every blocking operation,
//! but the calls from the network poller and `time.Sleep` are how a healthy server
//! idles, and a probe at gopark's entry traps on those too.

use crate::binary::Binary;
use crate::pclntab::{Func, Pclntab};
use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};
use object::{Object, ObjectSection};
use std::collections::BTreeMap;

/// `call rel32`: opcode and displacement.
pub const CALL_REL32_LEN: u64 = 5;

/// A `call rel32` to the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// Address of the call instruction (link time).
    pub vaddr: u64,
    /// The function containing the call (its symbol: inlined callers are not
    /// resolved here) and that function's entry.
    pub caller: String,
    pub caller_entry: u64,
}

impl CallSite {
    /// The return address the call pushes.
    pub fn return_addr(&self) -> u64 {
        self.vaddr + CALL_REL32_LEN
    }
}

/// Every direct call to `callee` in the binary's `.text`. The bytes are scanned for
/// `E8 rel32` landing on `callee` (fast, but a match can be inside another
/// instruction), then each calling function is decoded from its entry and only
/// matches on real instruction boundaries are kept. Go never calls the runtime's
/// functions through a pointer or a tail jump, so the direct calls are all of them.
pub fn calls_to(bin: &Binary, callee: u64) -> Vec<CallSite> {
    let Ok(file) = bin.object() else {
        return Vec::new();
    };
    let Some(text) = file.section_by_name(".text") else {
        return Vec::new();
    };
    let (Ok(code), Ok(pcln)) = (text.data(), Pclntab::from_elf(&file)) else {
        return Vec::new();
    };
    let base = text.address();
    // Calling function's entry -> (the function, candidate call addresses).
    let mut candidates: BTreeMap<u64, (Func<'_>, Vec<u64>)> = BTreeMap::new();
    for (i, w) in code.windows(CALL_REL32_LEN as usize).enumerate() {
        if w[0] != 0xe8 {
            continue;
        }
        let rel = i32::from_le_bytes([w[1], w[2], w[3], w[4]]);
        let next = base + i as u64 + CALL_REL32_LEN;
        if next.wrapping_add_signed(i64::from(rel)) != callee {
            continue;
        }
        if let Some(f) = pcln.func_at(base + i as u64) {
            candidates
                .entry(f.entry)
                .or_insert_with(|| (f, Vec::new()))
                .1
                .push(base + i as u64);
        }
    }
    let mut out = Vec::new();
    for (f, addrs) in candidates.into_values() {
        let (start, end) = ((f.entry - base) as usize, (f.end - base) as usize);
        let Some(body) = code.get(start..end.min(code.len())) else {
            continue;
        };
        let mut dec = Decoder::with_ip(64, body, f.entry, DecoderOptions::NONE);
        for insn in &mut dec {
            let direct_call = insn.flow_control() == FlowControl::Call
                && insn.op0_kind() == OpKind::NearBranch64
                && insn.near_branch64() == callee
                && insn.len() as u64 == CALL_REL32_LEN;
            if direct_call && addrs.contains(&insn.ip()) {
                out.push(CallSite {
                    vaddr: insn.ip(),
                    caller: f.name.to_string(),
                    caller_entry: f.entry,
                });
            }
        }
    }
    out
}

/// Return addresses of the direct calls the function containing `pc` makes to
/// the function named `callee` (by its `.gopclntab` name, which a stripped
/// binary keeps), in address order. `gopark`'s one call to `runtime.mcall` is
/// where every parked goroutine stopped: its saved PC is that return address.
pub fn returns_from_calls(bin: &Binary, pc: u64, callee: &str) -> Vec<u64> {
    let Ok(file) = bin.object() else {
        return Vec::new();
    };
    let Ok(pcln) = Pclntab::from_elf(&file) else {
        return Vec::new();
    };
    let Some(f) = pcln.func_at(pc) else {
        return Vec::new();
    };
    let Some(body) = bin.bytes_at(f.entry, (f.end - f.entry) as usize) else {
        return Vec::new();
    };
    let mut dec = Decoder::with_ip(64, body, f.entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    for insn in &mut dec {
        let call = insn.flow_control() == FlowControl::Call
            && insn.op0_kind() == OpKind::NearBranch64
            && pcln
                .func_at(insn.near_branch64())
                .is_some_and(|t| t.name == callee);
        if call {
            out.push(insn.next_ip());
        }
    }
    out
}

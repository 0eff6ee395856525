//! Where to put a probe in a Go function: after the stack-check prologue.
//!
//! Every non-leaf Go function starts with `cmp rsp, [r14+0x10]; jbe morestack` (or
//! `lea r12, [rsp-N]; cmp r12, [r14+0x10]; jbe` for large frames). The kernel must
//! single-step a probed `cmp` (about 4x dearer than the `push rbp` after it, which it
//! emulates), and a probe there fires twice whenever the stack grows. The instruction
//! after the `jbe` still sees the arguments in their registers and the return address
//! at the top of the stack.
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Result of looking at a function's first instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset from the function entry where the probe goes.
    pub offset: u64,
    /// Whether a stack-check prologue was found and skipped.
    pub skipped_stack_check: bool,
    /// Mnemonic of the probed instruction, for the plan printout.
    pub mnemonic: Mnemonic,
}

/// Finds the probe offset in `code`, the function's first bytes at `vaddr`.
pub fn placement(code: &[u8], vaddr: u64) -> Placement {
    let mut dec = Decoder::with_ip(64, code, vaddr, DecoderOptions::NONE);
    let mut insns: Vec<Instruction> = Vec::with_capacity(4);
    while dec.can_decode() && insns.len() < 4 {
        insns.push(dec.decode());
    }
    let first = insns
        .first()
        .map(|i| i.mnemonic())
        .unwrap_or(Mnemonic::INVALID);
    let at_entry = Placement {
        offset: 0,
        skipped_stack_check: false,
        mnemonic: first,
    };
    let check = match insns.as_slice() {
        [cmp, jbe, ..] if is_stack_check(cmp) && jbe.mnemonic() == Mnemonic::Jbe => Some(1),
        [lea, cmp, jbe, ..]
            if lea.mnemonic() == Mnemonic::Lea
                && is_stack_check(cmp)
                && jbe.mnemonic() == Mnemonic::Jbe =>
        {
            Some(2)
        }
        _ => None,
    };
    match check {
        Some(jbe) if insns.len() > jbe + 1 => Placement {
            offset: insns[jbe + 1].ip() - vaddr,
            skipped_stack_check: true,
            mnemonic: insns[jbe + 1].mnemonic(),
        },
        _ => at_entry,
    }
}

/// `cmp REG, [r14+0x10]` (stackguard0) or `[r14+0x18]`-style variants.
pub fn is_stack_check(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Cmp
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op1_kind() == OpKind::Memory
        && i.memory_base() == Register::R14
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_small_frame_check() {
        // cmp rsp,[r14+0x10]; jbe +0xdc; push rbp; mov rbp,rsp
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xdc, 0x00, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5,
        ];
        let p = placement(&code, 0x479680);
        assert_eq!(p.offset, 10);
        assert!(p.skipped_stack_check);
        assert_eq!(p.mnemonic, Mnemonic::Push);
    }

    #[test]
    fn skips_large_frame_check() {
        // lea r12,[rsp-0x1000]; cmp r12,[r14+0x10]; jbe ..; push rbp
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xf0, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x10, 0x00, 0x00, 0x00, 0x55,
        ];
        let p = placement(&code, 0x1000);
        assert_eq!(p.offset, 18);
        assert!(p.skipped_stack_check);
    }

    #[test]
    fn leaves_nosplit_functions_at_entry() {
        // push rbp; mov rbp,rsp
        let p = placement(&[0x55, 0x48, 0x89, 0xe5], 0x2000);
        assert_eq!(p.offset, 0);
        assert!(!p.skipped_stack_check);
    }
}

/// The kernel refuses uprobes on LOCK-prefixed instructions, which is exactly where
/// an inlined `Mutex.Lock` fast path names its mutex (`lock cmpxchg [rcx], edx`).
/// Returns the address of the straight-line instruction just before `target` when
/// `target` is LOCK-prefixed, provided it leaves `keep` (the register holding the
/// mutex) unchanged and is not a branch; else the instruction right after the atomic
/// (which always follows it) when the atomic leaves `keep` unchanged; `Some(target)`
/// when no move is needed; `None` when the site cannot be probed.
pub fn unlocked_probe(
    window: &[u8],
    window_start: u64,
    target: u64,
    keeps: impl Fn(Register) -> bool,
) -> Option<u64> {
    use iced_x86::{FlowControl, InstructionInfoFactory, OpAccess};
    let at = usize::try_from(target.checked_sub(window_start)?).ok()?;
    let mut dec = Decoder::with_ip(64, window.get(at..)?, target, DecoderOptions::NONE);
    let insn = dec.decode();
    if !insn.has_lock_prefix() {
        return Some(target);
    }
    let writes = |i: &Instruction| {
        let mut factory = InstructionInfoFactory::new();
        let info = factory.info(i);
        info.used_registers().iter().any(|u| {
            keeps(u.register().full_register())
                && matches!(
                    u.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
        })
    };
    // Best: a conditional branch within three instructions after the atomic (the
    // fast path's `jne`/`je`): the kernel emulates branches, so the probe costs a
    // trap but no single-step, and every operation passes through it.
    let mut probe = Decoder::with_ip(
        64,
        &window[at + insn.len()..],
        insn.next_ip(),
        DecoderOptions::NONE,
    );
    let mut clean = !writes(&insn);
    for _ in 0..3 {
        let i = probe.decode();
        if i.is_invalid() || !clean {
            break;
        }
        if i.flow_control() == FlowControl::ConditionalBranch {
            return Some(i.ip());
        }
        if i.flow_control() != FlowControl::Next || writes(&i) {
            break;
        }
        clean = true;
    }
    let mut after = || {
        let next = dec.decode();
        (!writes(&insn) && !next.is_invalid() && !next.has_lock_prefix()).then_some(next.ip())
    };
    // x86 decoding resynchronises within a few instructions: try start points before
    // the target until one lands exactly on it.
    for back in (2..=at.min(24)).rev() {
        let start = at - back;
        let mut dec = Decoder::with_ip(
            64,
            &window[start..at],
            window_start + start as u64,
            DecoderOptions::NONE,
        );
        let mut chain: Vec<Instruction> = Vec::new();
        let mut end = start as u64 + window_start;
        while dec.can_decode() {
            let i = dec.decode();
            if i.is_invalid() {
                chain.clear();
                break;
            }
            end = i.next_ip();
            chain.push(i);
        }
        let Some(prev) = chain.last().copied() else {
            continue;
        };
        if end != target {
            continue;
        }
        if prev.has_lock_prefix() || prev.flow_control() != FlowControl::Next || writes(&prev) {
            return after();
        }
        // Go marks inlined calls with NOPs; the kernel emulates a probed NOP instead
        // of single-stepping it, several times cheaper. Take one if it is at most
        // three straight-line instructions back and nothing after it changes `keep`.
        for (k, i) in chain.iter().rev().enumerate().take(3) {
            if i.flow_control() != FlowControl::Next || writes(i) {
                break;
            }
            if k > 0 && i.mnemonic() == Mnemonic::Nop {
                return Some(i.ip());
            }
        }
        return Some(prev.ip());
    }
    after()
}

#[cfg(test)]
mod unlocked_tests {
    use super::*;

    #[test]
    fn moves_off_a_lock_cmpxchg() {
        // xor eax,eax; mov edx,1; lock cmpxchg [rcx],edx
        let code = [
            0x31, 0xc0, 0xba, 0x01, 0x00, 0x00, 0x00, 0xf0, 0x0f, 0xb1, 0x11,
        ];
        let p = unlocked_probe(&code, 0x1000, 0x1007, |r| r == Register::RCX);
        assert_eq!(p, Some(0x1002));
        // With the fast path's branch after it, the branch is taken:
        // ... lock cmpxchg [rcx],edx; sete sil; test sil,sil; jne +0x10
        let mut with_jcc = code.to_vec();
        with_jcc.extend([0x40, 0x0f, 0x94, 0xc6, 0x40, 0x84, 0xf6, 0x75, 0x10]);
        let p = unlocked_probe(&with_jcc, 0x1000, 0x1007, |r| r == Register::RCX);
        assert_eq!(p, Some(0x1012));
        // The preceding instruction overwrites the mutex register, and so does the
        // atomic (cmpxchg writes rax): no place.
        let p = unlocked_probe(&code, 0x1000, 0x1007, |r| {
            r == Register::RDX || r == Register::RAX
        });
        assert_eq!(p, None);
        // An inline-mark NOP two instructions back is preferred (emulated, cheap):
        // nop; xor eax,eax; lock cmpxchg [rbx],edx
        let code2 = [0x90, 0x31, 0xc0, 0xf0, 0x0f, 0xb1, 0x13];
        assert_eq!(
            unlocked_probe(&code2, 0x2000, 0x2003, |r| r == Register::RBX),
            Some(0x2000)
        );
        // Not locked: stays.
        assert_eq!(
            unlocked_probe(&code, 0x1000, 0x1002, |_| false),
            Some(0x1002)
        );
    }
}

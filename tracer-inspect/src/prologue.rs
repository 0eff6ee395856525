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

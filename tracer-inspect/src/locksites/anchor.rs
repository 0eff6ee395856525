//! Register recovery by disassembly (iced-x86): in the code of one
//! lock-method copy, the instruction to probe and the register (plus a
//! constant) that holds the mutex address there; also the first instruction
//! after a function's stack-bound check.  It never walks DWARF and never
//! decides which copies become sites: it is handed ranges and the mutex
//! layout and answers for one copy, or says why it cannot, so that every
//! refusal can be reported against the copy it concerns.

use std::collections::HashMap;

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

use super::classify::Target;
use super::findings::{Layout, Nested};
use super::text::{in_ranges, in_ranges_sorted, merge_ranges, TextMap};
use super::{Gpr, LockOp, MutexKind, Outcome};

/// The constant a register holds after `code` (straight-line instructions in
/// order), when the last write to it is `mov r, imm` or `xor r, r`.
fn const_before(code: &[Instruction], reg: Register) -> Option<i64> {
    let full = reg.full_register();
    for ins in code.iter().rev() {
        if ins.op_count() == 0
            || ins.op0_kind() != OpKind::Register
            || ins.op0_register().full_register() != full
        {
            continue;
        }
        return match ins.mnemonic() {
            Mnemonic::Mov if ins.op1_kind() == OpKind::Immediate32 => {
                Some(ins.immediate32() as i32 as i64)
            }
            Mnemonic::Mov if ins.op1_kind() == OpKind::Immediate32to64 => {
                Some(ins.immediate32to64())
            }
            Mnemonic::Xor | Mnemonic::Sub
                if ins.op1_kind() == OpKind::Register
                    && ins.op1_register().full_register() == full =>
            {
                Some(0)
            }
            _ => None,
        };
    }
    None
}

/// First instruction after Go's stack-bound check (`cmp rsp|r12, [r14+0x10]`
/// followed by `jbe morestack`), or `entry` when the function has none.  Past
/// that point the function runs exactly once per call (a stack growth jumps
/// back to the entry), and the arguments are still in their registers.
pub(super) fn after_stack_check(text: &TextMap<'_>, entry: u64) -> u64 {
    let mut insns = Vec::new();
    if !text.decode(entry, entry + 32, &mut insns) {
        // The function may be shorter than 32 bytes and end the section.
        return entry;
    }
    for w in insns.windows(2).take(4) {
        let (c, j) = (&w[0], &w[1]);
        let is_guard_cmp = c.mnemonic() == Mnemonic::Cmp
            && c.op_count() == 2
            && c.op1_kind() == OpKind::Memory
            && c.memory_base() == Register::R14
            && c.memory_index() == Register::None;
        if is_guard_cmp && j.flow_control() == FlowControl::ConditionalBranch {
            return j.next_ip();
        }
        if c.flow_control() != FlowControl::Next {
            break;
        }
    }
    entry
}

pub(super) struct Anchor {
    pub(super) probe: u64,
    pub(super) reg: Gpr,
    pub(super) adjust: i64,
    pub(super) outcome: Outcome,
}

pub(super) struct AnchorCtx<'t, 'd> {
    pub(super) text: &'t TextMap<'d>,
    pub(super) layout: &'t Layout,
    pub(super) target_funcs: &'t HashMap<u64, Target>,
    /// Inlined copies and out-of-line bodies may also use a nearby call or
    /// an atomic just outside the DWARF range (see `anchor`).
    pub(super) allow_call: bool,
    /// All code attributed to lock-method copies (merged, sorted).
    pub(super) claimed: &'t [(u64, u64)],
}

fn is_locked_rmw(ins: &Instruction) -> bool {
    ins.has_lock_prefix() && ins.op_count() >= 1 && ins.op0_kind() == OpKind::Memory
}

fn is_cas(ins: &Instruction) -> bool {
    is_locked_rmw(ins) && ins.mnemonic() == Mnemonic::Cmpxchg
}

fn is_add(ins: &Instruction) -> bool {
    is_locked_rmw(ins)
        && matches!(
            ins.mnemonic(),
            Mnemonic::Xadd | Mnemonic::Add | Mnemonic::Sub | Mnemonic::Inc | Mnemonic::Dec
        )
}

impl AnchorCtx<'_, '_> {
    pub(super) fn anchor(
        &self,
        t: Target,
        ranges: &[(u64, u64)],
        nested: &Nested,
        phys: (u64, u64),
        phys_cache: &mut HashMap<u64, Vec<Instruction>>,
    ) -> Result<Anchor, String> {
        if ranges.is_empty() {
            return Err("no code ranges".into());
        }
        let insns = self
            .text
            .decode_ranges(ranges)
            .ok_or("code outside the text sections")?;
        let l = self.layout;
        // For RWMutex methods, atomics of the inner w (a sync.Mutex) are told
        // apart from those on readerCount by the inlined Mutex method DWARF
        // nests inside.
        let inner: Vec<(u64, u64)> = nested
            .iter()
            .filter(|(n, _)| t.kind == MutexKind::RwMutex && n.kind == MutexKind::Mutex)
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        let outer = |ins: &&Instruction| !in_ranges(&inner, ins.ip());
        let found = match (t.kind, t.op) {
            (MutexKind::Mutex, LockOp::Lock) => insns
                .iter()
                .find(|i| is_cas(i))
                .map(|i| (i, l.state_in_mutex(), false)),
            (MutexKind::Mutex, LockOp::Unlock) => insns
                .iter()
                .find(|i| is_add(i))
                .map(|i| (i, l.state_in_mutex(), false)),
            (MutexKind::Mutex, LockOp::TryLock) => insns
                .iter()
                .find(|i| is_cas(i))
                .map(|i| (i, l.state_in_mutex(), true)),
            (MutexKind::RwMutex, LockOp::RLock | LockOp::RUnlock | LockOp::Unlock) => insns
                .iter()
                .filter(outer)
                .find(|i| is_add(i))
                .map(|i| (i, l.reader_count(), false)),
            (MutexKind::RwMutex, LockOp::TryRLock | LockOp::TryLock) => insns
                .iter()
                .filter(outer)
                .find(|i| is_cas(i))
                .map(|i| (i, l.reader_count(), true)),
            (MutexKind::RwMutex, LockOp::Lock) => {
                // The attempt starts with w.Lock()'s CAS on w.state.
                insns
                    .iter()
                    .filter(|i| !outer(i))
                    .find(|i| is_cas(i))
                    .map(|i| (i, l.rw_w + l.state_in_mutex(), false))
            }
            (MutexKind::Mutex, _) => None,
        };
        if let Some((ins, field, after)) = found {
            return self.mem_anchor(ins, field, after, phys, phys_cache);
        }
        if self.allow_call {
            // The method was inlined but the inner method it forwards to was
            // not (sync.(*Mutex).Lock -> internal/sync.(*Mutex).Lock, or
            // RWMutex.Lock -> w.Lock()): probe that call; the receiver is in
            // RAX under Go's register ABI.
            for ins in &insns {
                if ins.flow_control() != FlowControl::Call || ins.op0_kind() != OpKind::NearBranch64
                {
                    continue;
                }
                let Some(callee) = self.target_funcs.get(&ins.near_branch_target()) else {
                    continue;
                };
                let adjust = match (t.kind, callee.kind) {
                    (MutexKind::Mutex, MutexKind::Mutex) if callee.op == t.op => {
                        if callee.internal {
                            -l.mutex_mu
                        } else {
                            0
                        }
                    }
                    (MutexKind::RwMutex, MutexKind::RwMutex) if callee.op == t.op => 0,
                    (MutexKind::RwMutex, MutexKind::Mutex)
                        if t.op == LockOp::Lock && callee.op == LockOp::Lock =>
                    {
                        -(l.rw_w + if callee.internal { l.mutex_mu } else { 0 })
                    }
                    _ => continue,
                };
                let outcome = if t.op.is_try() {
                    Outcome::Unknown
                } else {
                    Outcome::Performed
                };
                return Ok(Anchor {
                    probe: ins.ip(),
                    reg: Gpr::Rax,
                    adjust,
                    outcome,
                });
            }
        }
        if t.kind == MutexKind::RwMutex && t.op == LockOp::Lock {
            // w.Lock() neither inlined nor a direct call: fall back to the
            // writer announcing itself on readerCount.
            if let Some(ins) = insns.iter().filter(outer).find(|i| is_add(i)) {
                return self.mem_anchor(ins, l.reader_count(), false, phys, phys_cache);
            }
        }
        if self.allow_call {
            if let Some((ins, field, after)) = self.just_before(t, ranges, phys, phys_cache) {
                return self.mem_anchor(&ins, field, after, phys, phys_cache);
            }
        }
        let atomics = insns.iter().filter(|i| is_locked_rmw(i)).count();
        Err(format!(
            "no matching atomic instruction ({atomics} lock-prefixed in range)"
        ))
    }

    /// Go 1.21 (and sometimes later) gives the atomic instruction of an
    /// inlined lock method the caller's source position when its address
    /// operand is folded from the caller's code (`lock cmpxchg [rsi+0x8]`),
    /// so the instruction sits right before the DWARF range of the inlined
    /// copy.  Look back over straight-line code from the start of each
    /// range, never into code attributed to another lock-method copy, and
    /// accept only an atomic whose operand constants match the method.
    fn just_before(
        &self,
        t: Target,
        ranges: &[(u64, u64)],
        phys: (u64, u64),
        phys_cache: &mut HashMap<u64, Vec<Instruction>>,
    ) -> Option<(Instruction, i64, bool)> {
        const LOOKBACK: usize = 12;
        let l = self.layout;
        let fi = self.phys_insns(phys, phys_cache);
        for &(lo, _) in &merge_ranges(ranges) {
            let Ok(idx) = fi.binary_search_by_key(&lo, |i| i.ip()) else {
                continue;
            };
            for j in (idx.saturating_sub(LOOKBACK)..idx).rev() {
                let ins = &fi[j];
                if ins.flow_control() != FlowControl::Next {
                    break;
                }
                if in_ranges_sorted(self.claimed, ins.ip()) && !in_ranges(ranges, ins.ip()) {
                    break;
                }
                if !is_locked_rmw(ins) {
                    continue;
                }
                let before = &fi[j.saturating_sub(LOOKBACK)..j];
                let src = if ins.op_count() >= 2 && ins.op1_kind() == OpKind::Register {
                    Some(ins.op1_register())
                } else {
                    None
                };
                let val = |r: Option<Register>| r.and_then(|r| const_before(before, r));
                let add_val = || -> Option<i64> {
                    match ins.mnemonic() {
                        Mnemonic::Xadd => val(src),
                        Mnemonic::Inc => Some(1),
                        Mnemonic::Dec => Some(-1),
                        Mnemonic::Add | Mnemonic::Sub => {
                            let v = if ins.op1_kind() == OpKind::Register {
                                val(src)
                            } else {
                                Some(ins.immediate(1) as i32 as i64)
                            }?;
                            Some(if ins.mnemonic() == Mnemonic::Sub {
                                -v
                            } else {
                                v
                            })
                        }
                        _ => None,
                    }
                };
                let ok = match (t.kind, t.op) {
                    (MutexKind::Mutex, LockOp::Lock) => {
                        is_cas(ins) && val(Some(Register::EAX)) == Some(0) && val(src) == Some(1)
                    }
                    (MutexKind::Mutex, LockOp::Unlock) | (MutexKind::RwMutex, LockOp::RUnlock) => {
                        is_add(ins) && add_val() == Some(-1)
                    }
                    (MutexKind::RwMutex, LockOp::RLock) => is_add(ins) && add_val() == Some(1),
                    (MutexKind::RwMutex, LockOp::Unlock) => {
                        is_add(ins) && add_val() == Some(1 << 30)
                    }
                    (_, LockOp::TryLock | LockOp::TryRLock) => is_cas(ins),
                    _ => false,
                };
                if !ok {
                    break;
                }
                let (field, after) = match (t.kind, t.op) {
                    (MutexKind::Mutex, op) => (l.state_in_mutex(), op == LockOp::TryLock),
                    (MutexKind::RwMutex, op) => (l.reader_count(), op.is_try()),
                };
                return Some((*ins, field, after));
            }
        }
        None
    }

    fn phys_insns<'c>(
        &self,
        phys: (u64, u64),
        phys_cache: &'c mut HashMap<u64, Vec<Instruction>>,
    ) -> &'c Vec<Instruction> {
        phys_cache.entry(phys.0).or_insert_with(|| {
            let mut v = Vec::new();
            if phys.0 < phys.1 {
                self.text.decode(phys.0, phys.1, &mut v);
            }
            v
        })
    }

    fn mem_anchor(
        &self,
        ins: &Instruction,
        field: i64,
        after: bool,
        phys: (u64, u64),
        phys_cache: &mut HashMap<u64, Vec<Instruction>>,
    ) -> Result<Anchor, String> {
        if ins.memory_index() != Register::None {
            return Err(format!("indexed memory operand at {:#x}", ins.ip()));
        }
        let probe = if after { ins.next_ip() } else { ins.ip() };
        let (reg, adjust) = if ins.is_ip_rel_memory_operand() {
            (
                Gpr::Rip,
                (ins.ip_rel_memory_address() as i64)
                    .wrapping_sub(probe as i64)
                    .wrapping_sub(field),
            )
        } else {
            let reg = Gpr::from_iced(ins.memory_base()).ok_or_else(|| {
                format!(
                    "unsupported base register {:?} at {:#x}",
                    ins.memory_base(),
                    ins.ip()
                )
            })?;
            (
                reg,
                (ins.memory_displacement64() as i64).wrapping_sub(field),
            )
        };
        if after {
            // The flags at the next instruction must come from this CAS only:
            // refuse when something else can jump there.
            let fi = self.phys_insns(phys, phys_cache);
            let targeted = fi.iter().any(|i| {
                matches!(
                    i.flow_control(),
                    FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
                ) && matches!(i.op0_kind(), OpKind::NearBranch64)
                    && i.near_branch_target() == probe
            });
            if targeted {
                return Err(format!(
                    "instruction after the CAS at {:#x} is a branch target",
                    ins.ip()
                ));
            }
            if reg == Gpr::Rax {
                // cmpxchg writes RAX only on failure, and a failure is not
                // counted; still, keep the probe meaningful.
            }
            return Ok(Anchor {
                probe,
                reg,
                adjust,
                outcome: Outcome::IfZf,
            });
        }
        Ok(Anchor {
            probe,
            reg,
            adjust,
            outcome: Outcome::Performed,
        })
    }
}

//! Mutex operation sites in a Go binary (linux/amd64), for uprobes.
//!
//! `sync.(*Mutex).Lock`/`Unlock`, `internal/sync.(*Mutex).Lock` (Go 1.24+) and
//! the small `sync.(*RWMutex)` methods are inlined into their callers, so an
//! uncontended acquisition never enters a function that could be probed.  The
//! DWARF of the binary still lists each inlined copy as a
//! `DW_TAG_inlined_subroutine` whose `DW_AT_abstract_origin` is the method's
//! abstract subprogram.  [`scan`] walks every compile unit once, collects those
//! inlined copies (the outermost lock method only: `sync.(*Mutex).Lock`
//! inlining `internal/sync.(*Mutex).Lock` is one site), and disassembles each
//! copy to find the atomic instruction that performs the operation
//! (`lock cmpxchg` for Lock/TryLock/TryRLock, `lock xadd` for Unlock, RLock,
//! RUnlock and RWMutex.Unlock).  The memory operand of that instruction names
//! the mutex through a register, which is what the BPF side reads:
//! `mutex = regs[reg.pt_regs_index()] + adjust`.  Lock, Unlock, RLock and
//! RUnlock are probed on the atomic itself (the attempt: a contended Lock
//! fires before it blocks); TryLock and TryRLock are probed on the
//! instruction after their deciding CAS, where `ZF` tells success
//! ([`Outcome::IfZf`]).
//!
//! Go 1.21 often gives the atomic of an inlined copy the caller's source
//! position when the compiler folds a field offset into it
//! (`lock cmpxchg [rcx+0x50], esi`), which puts the instruction just before
//! the copy's DWARF range.  When the range itself has no matching atomic, the
//! scan looks back over straight-line code (never into another copy) and
//! accepts the atomic only if its operand constants are the method's
//! (CAS 0 -> 1 for Lock, add -1 for Unlock/RUnlock, +1 for RLock).
//!
//! Methods that exist as real functions (built with `-gcflags=-l`, called
//! through `sync.Locker`, or too large to inline such as `RWMutex.Lock`) are
//! probed at their entry, right after the stack-bound check, where the
//! receiver (the mutex) is in RAX.  Calls into such an entry from the `sync`
//! package's own implementation (`RWMutex.Lock` calling `w.Lock()` when that
//! is not inlined, `Once`, `Pool`, ...) are listed per site in
//! [`LockSite::ignore_return_addrs`]: the BPF side drops an entry event whose
//! return address (`*(u64*)rsp` at the probe) is in that list, so one
//! operation yields one event. The direct calls from everywhere else are listed
//! in [`LockSite::callers`] with the user's position of each (`callers`): the
//! probe names the site by the call, so that a lock site is always the user's
//! call site, not the method's own line in `sync`.
//!
//! Sites inside the `sync` and `internal/sync` packages themselves are not
//! reported (an RWMutex is one lock, not an RWMutex plus its inner Mutex; the
//! mutexes of `Once`, `Pool` and `Map` are implementation details), except
//! inside `sync.(*rlocker).Lock`/`Unlock` and method-value (`-fm`) wrappers,
//! which only forward a user's call.  The runtime's own locks are not
//! `sync.Mutex` and never appear.
//!
//! The work is split by concern, and data flows one way: `dwarf` walks the
//! DWARF once and collects the copies and methods; `anchor` finds, in one
//! copy's code, the instruction to probe and the register that holds the
//! mutex; `resolve` turns the walk's findings into the sites; `text` (the
//! executable bytes) and `classify` (what a function name is) serve them.
//! Without DWARF (`-ldflags=-w`), `pcln` makes the same findings from the
//! pclntab's inline trees ([`scan_without_dwarf`]).
//! This file holds only the public types and [`scan`], which wires the
//! pieces together, so that callers see one module and none of its parts.

mod anchor;
mod callers;
mod classify;
mod dwarf;
mod findings;
#[cfg(test)]
mod fixture_tests;
mod owners;
mod pcln;
mod resolve;
mod text;
mod units;

use std::borrow::Cow;

use gimli::{EndianSlice, LittleEndian, Section as _};
use iced_x86::Register;
use object::{Object, ObjectSection};

pub use callers::CallerSite;
use dwarf::Walker;
use text::TextMap;

/// Which Go mutex type an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutexKind {
    /// `sync.Mutex` (and `internal/sync.Mutex` behind it).
    Mutex,
    /// `sync.RWMutex`.
    RwMutex,
}

/// The method called. `Lock`, `Unlock` and `TryLock` exist for both kinds;
/// the `R*` ones only for [`MutexKind::RwMutex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockOp {
    Lock,
    Unlock,
    TryLock,
    RLock,
    RUnlock,
    TryRLock,
}

impl LockOp {
    /// `TryLock` / `TryRLock`.
    pub fn is_try(self) -> bool {
        matches!(self, LockOp::TryLock | LockOp::TryRLock)
    }
    /// `Lock`, `TryLock`, `RLock`, `TryRLock`.
    pub fn is_acquire(self) -> bool {
        !matches!(self, LockOp::Unlock | LockOp::RUnlock)
    }
    /// `RLock`, `RUnlock`, `TryRLock`.
    pub fn is_read(self) -> bool {
        matches!(self, LockOp::RLock | LockOp::RUnlock | LockOp::TryRLock)
    }
}

/// A general-purpose register as saved in the x86-64 `struct pt_regs`, plus
/// the instruction pointer (used for RIP-relative operands, i.e. a global
/// mutex addressed directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gpr {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    /// `pt_regs.ip`. In a uprobe handler the kernel has already set it back to
    /// the probed address, so `ip + adjust` is position independent.
    Rip,
}

/// Index of `eflags` in `struct pt_regs` viewed as an array of u64.
pub const PT_REGS_EFLAGS_INDEX: u32 = 18;
/// Index of `sp` in `struct pt_regs` viewed as an array of u64.
pub const PT_REGS_SP_INDEX: u32 = 19;
/// The zero flag in `eflags`.
pub const EFLAGS_ZF: u64 = 1 << 6;

impl Gpr {
    /// Index of this register in x86-64 `struct pt_regs` viewed as an array of
    /// u64: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax
    /// ip cs flags sp ss.
    pub fn pt_regs_index(self) -> u32 {
        match self {
            Gpr::R15 => 0,
            Gpr::R14 => 1,
            Gpr::R13 => 2,
            Gpr::R12 => 3,
            Gpr::Rbp => 4,
            Gpr::Rbx => 5,
            Gpr::R11 => 6,
            Gpr::R10 => 7,
            Gpr::R9 => 8,
            Gpr::R8 => 9,
            Gpr::Rax => 10,
            Gpr::Rcx => 11,
            Gpr::Rdx => 12,
            Gpr::Rsi => 13,
            Gpr::Rdi => 14,
            Gpr::Rip => 16,
            Gpr::Rsp => 19,
        }
    }

    /// Lower-case register name (`"rax"`, ..., `"rip"`).
    pub fn name(self) -> &'static str {
        match self {
            Gpr::Rax => "rax",
            Gpr::Rbx => "rbx",
            Gpr::Rcx => "rcx",
            Gpr::Rdx => "rdx",
            Gpr::Rsi => "rsi",
            Gpr::Rdi => "rdi",
            Gpr::Rbp => "rbp",
            Gpr::Rsp => "rsp",
            Gpr::R8 => "r8",
            Gpr::R9 => "r9",
            Gpr::R10 => "r10",
            Gpr::R11 => "r11",
            Gpr::R12 => "r12",
            Gpr::R13 => "r13",
            Gpr::R14 => "r14",
            Gpr::R15 => "r15",
            Gpr::Rip => "rip",
        }
    }

    /// The 64-bit register an iced-x86 register names, if it is one.
    pub fn from_iced(r: Register) -> Option<Gpr> {
        ICED.iter().find(|(_, i)| *i == r).map(|(g, _)| *g)
    }

    /// The iced-x86 name of the register.
    pub fn to_iced(self) -> Register {
        ICED.iter()
            .find(|(g, _)| *g == self)
            .map_or(Register::None, |(_, i)| *i)
    }
}

/// Each register and its iced-x86 name.
const ICED: [(Gpr, Register); 17] = [
    (Gpr::Rax, Register::RAX),
    (Gpr::Rbx, Register::RBX),
    (Gpr::Rcx, Register::RCX),
    (Gpr::Rdx, Register::RDX),
    (Gpr::Rsi, Register::RSI),
    (Gpr::Rdi, Register::RDI),
    (Gpr::Rbp, Register::RBP),
    (Gpr::Rsp, Register::RSP),
    (Gpr::R8, Register::R8),
    (Gpr::R9, Register::R9),
    (Gpr::R10, Register::R10),
    (Gpr::R11, Register::R11),
    (Gpr::R12, Register::R12),
    (Gpr::R13, Register::R13),
    (Gpr::R14, Register::R14),
    (Gpr::R15, Register::R15),
    (Gpr::Rip, Register::RIP),
];

/// When an event at a site stands for a completed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every hit is one operation (for Lock/RLock: an attempt that may still
    /// block in the slow path, but that will not fail).
    Performed,
    /// The probe sits right after the `lock cmpxchg` that decides a
    /// TryLock/TryRLock: the operation succeeded iff `eflags & EFLAGS_ZF`.
    IfZf,
    /// Entry of an out-of-line TryLock/TryRLock whose deciding instruction could
    /// not be probed: a hit is an attempt, its result is unknown.
    Unknown,
}

/// One place to put a uprobe, and how to get the mutex address there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSite {
    pub op: LockOp,
    pub kind: MutexKind,
    /// Virtual address (as in the ELF file) of the probed instruction.
    pub probe_vaddr: u64,
    /// Register holding the base address at the probe point.
    pub reg: Gpr,
    /// `mutex = reg + adjust` (wrapping), the address of the `sync.Mutex` /
    /// `sync.RWMutex` itself (the memory displacement minus the offset of the
    /// field that the atomic instruction touches).
    pub adjust: i64,
    /// The function the call was written in (for an out-of-line method entry:
    /// the method itself).
    pub caller: String,
    /// Source position of the call (for an entry: of the method).
    pub file: String,
    pub line: u32,
    /// True for a copy inlined into `caller`; false for a method entry or
    /// out-of-line body.
    pub inlined: bool,
    pub outcome: Outcome,
    /// Only for method entries: drop a hit whose return address
    /// (`*(u64 *)rsp` at the probe) is one of these, because that call comes
    /// from the `sync` package's own implementation and is already counted
    /// (or deliberately not counted) elsewhere.  Sorted.
    pub ignore_return_addrs: Vec<u64>,
    /// Only for method entries: the direct calls from outside `sync`, each with
    /// the user's position, to name a hit by the call that made it (found by its
    /// return address). Sorted by return address.
    pub callers: Vec<CallerSite>,
    /// The mutex's place in its owner's type (`main.Account.mu`), when the
    /// code and DWARF say it (inlined sites only; an entry's callers carry
    /// their own).
    pub class: Option<String>,
}

impl LockSite {
    /// Mutex address given the value of [`LockSite::reg`] at the probe.
    pub fn mutex_addr(&self, reg_value: u64) -> u64 {
        reg_value.wrapping_add(self.adjust as u64)
    }
}

/// Result of [`scan`].
#[derive(Debug, Clone, Default)]
pub struct LockSiteScan {
    /// Sorted by `probe_vaddr`, one per address.
    pub sites: Vec<LockSite>,
    /// Inlined lock-method copies for which no probe point could be derived,
    /// one human-readable line each.
    pub unresolved: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockSiteError {
    #[error("not an x86-64 binary (architecture {0:?})")]
    UnsupportedArch(object::Architecture),
    #[error("no DWARF, and no Go function table: {0}")]
    Pclntab(#[from] crate::pclntab::PclntabError),
    #[error("no DWARF, and no Go build information to tell the Go version")]
    NoGoVersion,
    #[error(
        "no DWARF, and {0} is newer than this tracer knows (up to Go 1.{1}); rebuild without -ldflags=-w or update tracer"
    )]
    UnknownGo(String, u32),
    #[error("no DWARF, and the Go function table has no inline trees (go:func.* not found)")]
    NoInlineTrees,
    #[error("object file: {0}")]
    Object(#[from] object::Error),
    #[error("DWARF: {0}")]
    Dwarf(#[from] gimli::Error),
}

/// Find every mutex operation site in a Go linux/amd64 binary with DWARF.
pub fn scan(file: &object::File<'_>) -> Result<LockSiteScan, LockSiteError> {
    if file.architecture() != object::Architecture::X86_64 {
        return Err(LockSiteError::UnsupportedArch(file.architecture()));
    }
    let text = TextMap::new(file);
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, object::Error> {
        match file.section_by_name(id.name()) {
            Some(s) => s.uncompressed_data(),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s.as_ref(), LittleEndian));
    if dwarf.debug_info.reader().is_empty() || !crate::dwarf::has_go_units(&dwarf) {
        return scan_without_dwarf(file);
    }
    let units = std::rc::Rc::new(units::Units::load(&dwarf)?);
    let mut w = Walker::new(&dwarf, units.clone());
    w.walk_all()?;
    // The pclntab names each call's position, inlined frames included (a
    // binary without one still gets its sites, not their callers).
    let tab = crate::pclntab::Pclntab::from_elf(file).ok();
    let mut found = w.into_findings().finish(&text, tab.as_ref());
    if let Some(tab) = &tab {
        owners::name_owners(&mut found, &dwarf, &units, &text, tab);
    }
    Ok(found)
}

/// Like [`scan`], from the pclntab's inline trees instead of DWARF (what
/// [`scan`] does for a binary built with `-ldflags=-w`), with the mutex layouts
/// of the binary's Go minor from [`crate::layouts`].
pub fn scan_without_dwarf(file: &object::File<'_>) -> Result<LockSiteScan, LockSiteError> {
    if file.architecture() != object::Architecture::X86_64 {
        return Err(LockSiteError::UnsupportedArch(file.architecture()));
    }
    let info = crate::buildinfo::read(file).map_err(|_| LockSiteError::NoGoVersion)?;
    let table = crate::layouts::for_version(&info.version).map_err(|_| {
        LockSiteError::UnknownGo(info.raw_version.clone(), crate::layouts::newest())
    })?;
    let mut tab = crate::pclntab::Pclntab::from_elf(file)?;
    if tab.gofunc().is_none() {
        // No symbol table: the module data says where go:func.* is.
        let word = table
            .offset("runtime.moduledata.gofunc")
            .map(|o| o as usize / 8);
        if let Some(addr) = word.and_then(|w| crate::pclntab::moduledata_word(file, &tab, w)) {
            tab.set_gofunc(file, addr);
        }
    }
    if tab.gofunc().is_none() {
        return Err(LockSiteError::NoInlineTrees);
    }
    let found = pcln::findings(&tab, findings::Layout::from_table(table));
    Ok(found.finish(&TextMap::new(file), Some(&tab)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pt_regs_order() {
        let order = [
            Gpr::R15,
            Gpr::R14,
            Gpr::R13,
            Gpr::R12,
            Gpr::Rbp,
            Gpr::Rbx,
            Gpr::R11,
            Gpr::R10,
            Gpr::R9,
            Gpr::R8,
            Gpr::Rax,
            Gpr::Rcx,
            Gpr::Rdx,
            Gpr::Rsi,
            Gpr::Rdi,
        ];
        for (i, g) in order.iter().enumerate() {
            assert_eq!(g.pt_regs_index(), i as u32);
        }
        assert_eq!(Gpr::Rip.pt_regs_index(), 16);
        assert_eq!(Gpr::Rsp.pt_regs_index(), 19);
    }
}

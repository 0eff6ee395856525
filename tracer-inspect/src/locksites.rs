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
//! operation yields one event.
//!
//! Sites inside the `sync` and `internal/sync` packages themselves are not
//! reported (an RWMutex is one lock, not an RWMutex plus its inner Mutex; the
//! mutexes of `Once`, `Pool` and `Map` are implementation details), except
//! inside `sync.(*rlocker).Lock`/`Unlock` and method-value (`-fm`) wrappers,
//! which only forward a user's call.  The runtime's own locks are not
//! `sync.Mutex` and never appear.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use gimli::{
    AttributeValue, DebugInfoOffset, EndianSlice, LittleEndian, Section as _, UnitSectionOffset,
};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object, ObjectSection, SectionKind};

type Rd<'a> = EndianSlice<'a, LittleEndian>;
type Unit<'a> = gimli::Unit<Rd<'a>>;

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
        Some(match r {
            Register::RAX => Gpr::Rax,
            Register::RBX => Gpr::Rbx,
            Register::RCX => Gpr::Rcx,
            Register::RDX => Gpr::Rdx,
            Register::RSI => Gpr::Rsi,
            Register::RDI => Gpr::Rdi,
            Register::RBP => Gpr::Rbp,
            Register::RSP => Gpr::Rsp,
            Register::R8 => Gpr::R8,
            Register::R9 => Gpr::R9,
            Register::R10 => Gpr::R10,
            Register::R11 => Gpr::R11,
            Register::R12 => Gpr::R12,
            Register::R13 => Gpr::R13,
            Register::R14 => Gpr::R14,
            Register::R15 => Gpr::R15,
            Register::RIP => Gpr::Rip,
            _ => return None,
        })
    }
}

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
    #[error("binary has no DWARF .debug_info (stripped?)")]
    NoDwarf,
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
    if dwarf.debug_info.reader().is_empty() {
        return Err(LockSiteError::NoDwarf);
    }
    let mut w = Walker::new(&dwarf)?;
    w.walk_all()?;
    Ok(w.finish(&text))
}

// ---------------------------------------------------------------------------
// Classification of function names.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    op: LockOp,
    kind: MutexKind,
    /// `internal/sync.(*Mutex).*`, reached only through `sync.(*Mutex).*`.
    internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Target(Target),
    /// Anything else in package sync / internal/sync.
    SyncImpl,
    /// Thin forwarding wrappers whose lock calls belong to their caller.
    Wrapper,
    Other,
}

impl Class {
    fn is_sync_scope(self) -> bool {
        matches!(self, Class::Target(_) | Class::SyncImpl)
    }
}

fn classify(name: &str) -> Class {
    use LockOp::*;
    use MutexKind::*;
    let t = |op, kind, internal| Class::Target(Target { op, kind, internal });
    match name {
        "sync.(*Mutex).Lock" => t(Lock, Mutex, false),
        "sync.(*Mutex).Unlock" => t(Unlock, Mutex, false),
        "sync.(*Mutex).TryLock" => t(TryLock, Mutex, false),
        "internal/sync.(*Mutex).Lock" => t(Lock, Mutex, true),
        "internal/sync.(*Mutex).Unlock" => t(Unlock, Mutex, true),
        "internal/sync.(*Mutex).TryLock" => t(TryLock, Mutex, true),
        "sync.(*RWMutex).Lock" => t(Lock, RwMutex, false),
        "sync.(*RWMutex).Unlock" => t(Unlock, RwMutex, false),
        "sync.(*RWMutex).TryLock" => t(TryLock, RwMutex, false),
        "sync.(*RWMutex).RLock" => t(RLock, RwMutex, false),
        "sync.(*RWMutex).RUnlock" => t(RUnlock, RwMutex, false),
        "sync.(*RWMutex).TryRLock" => t(TryRLock, RwMutex, false),
        "sync.(*rlocker).Lock" | "sync.(*rlocker).Unlock" => Class::Wrapper,
        _ if name.ends_with("-fm") => Class::Wrapper,
        _ => match package_of(name) {
            "sync" | "internal/sync" => Class::SyncImpl,
            _ => Class::Other,
        },
    }
}

/// Package path of a Go symbol name: `internal/sync.(*Mutex).Lock` ->
/// `internal/sync`, `main.f[go.shape.*a/b.T]` -> `main`.
fn package_of(name: &str) -> &str {
    let head = &name[..name.find('[').unwrap_or(name.len())];
    let start = head.rfind('/').map_or(0, |i| i + 1);
    match head[start..].find('.') {
        Some(d) => &name[..start + d],
        None => head,
    }
}

// ---------------------------------------------------------------------------
// Executable bytes.

struct TextMap<'d> {
    secs: Vec<(u64, Cow<'d, [u8]>)>,
}

impl<'d> TextMap<'d> {
    fn new(file: &object::File<'d>) -> Self {
        let mut secs = Vec::new();
        for s in file.sections() {
            if s.kind() == SectionKind::Text {
                if let Ok(d) = s.uncompressed_data() {
                    secs.push((s.address(), d));
                }
            }
        }
        TextMap { secs }
    }

    fn bytes(&self, lo: u64, hi: u64) -> Option<&[u8]> {
        for (a, d) in &self.secs {
            if lo >= *a && hi <= a + d.len() as u64 && lo <= hi {
                return Some(&d[(lo - a) as usize..(hi - a) as usize]);
            }
        }
        None
    }

    fn decode(&self, lo: u64, hi: u64, out: &mut Vec<Instruction>) -> bool {
        let Some(b) = self.bytes(lo, hi) else {
            return false;
        };
        let mut dec = Decoder::with_ip(64, b, lo, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        while dec.can_decode() {
            dec.decode_out(&mut ins);
            out.push(ins);
        }
        true
    }

    /// Decode a set of ranges, instructions in address order.
    fn decode_ranges(&self, ranges: &[(u64, u64)]) -> Option<Vec<Instruction>> {
        let mut out = Vec::new();
        for &(lo, hi) in &merge_ranges(ranges) {
            if !self.decode(lo, hi, &mut out) {
                return None;
            }
        }
        Some(out)
    }
}

fn merge_ranges(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ranges.iter().copied().filter(|r| r.0 < r.1).collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    out
}

fn in_ranges_sorted(merged: &[(u64, u64)], a: u64) -> bool {
    let i = merged.partition_point(|r| r.0 <= a);
    i > 0 && a < merged[i - 1].1
}

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

fn in_ranges(ranges: &[(u64, u64)], a: u64) -> bool {
    ranges.iter().any(|&(lo, hi)| a >= lo && a < hi)
}

// ---------------------------------------------------------------------------
// DWARF walk.

struct UnitInfo<'a> {
    start: u64,
    end: u64,
    unit: Unit<'a>,
}

struct OriginInfo {
    name: Rc<str>,
    class: Class,
}

#[derive(Clone, Copy)]
enum Collector {
    Site(usize),
    Ool(usize),
}

struct Frame {
    depth: isize,
    name: Rc<str>,
    class: Class,
    inlined: bool,
    /// DW_AT_call_file index / DW_AT_call_line of an inlined frame.
    call_file: Option<u64>,
    call_line: u32,
    collector: Option<Collector>,
    /// Range of the physical function this frame is part of.
    phys: (u64, u64),
}

type Nested = Vec<(Target, Vec<(u64, u64)>)>;

struct RawSite {
    target: Target,
    ranges: Vec<(u64, u64)>,
    nested: Nested,
    caller: Rc<str>,
    file: String,
    line: u32,
    phys: (u64, u64),
}

struct OolFunc {
    target: Target,
    name: Rc<str>,
    ranges: Vec<(u64, u64)>,
    low: u64,
    nested: Nested,
    file: String,
    line: u32,
}

/// Byte offsets inside the mutex types (defaults are the layouts of Go 1.21
/// to 1.26).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// `sync.Mutex.mu` (Go 1.24+; 0 before).
    mutex_mu: i64,
    /// `state` inside the mutex that has it (`sync.Mutex` before 1.24,
    /// `internal/sync.Mutex` after).
    mutex_state: i64,
    rw_w: i64,
    rw_reader_count: i64,
    atomic_int32_v: i64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            mutex_mu: 0,
            mutex_state: 0,
            rw_w: 0,
            rw_reader_count: 16,
            atomic_int32_v: 0,
        }
    }
}

impl Layout {
    /// Offset of the state word from the start of a `sync.Mutex`.
    fn state_in_mutex(&self) -> i64 {
        self.mutex_mu + self.mutex_state
    }
    fn reader_count(&self) -> i64 {
        self.rw_reader_count + self.atomic_int32_v
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StructOfInterest {
    SyncMutex,
    InternalMutex,
    RwMutex,
    AtomicInt32,
}

struct Walker<'a, 'd> {
    dwarf: &'d gimli::Dwarf<Rd<'a>>,
    units: Rc<Vec<UnitInfo<'a>>>,
    origins: HashMap<u64, Rc<OriginInfo>>,
    files: HashMap<usize, Rc<Vec<String>>>,
    sites: Vec<RawSite>,
    ool: Vec<OolFunc>,
    /// Every out-of-line lock method (public and internal) by entry address.
    target_funcs: HashMap<u64, Target>,
    /// Code that belongs to package sync / internal/sync.
    sync_scopes: Vec<(u64, u64)>,
    layout: Layout,
}

fn attr_u64(v: &AttributeValue<Rd<'_>>) -> Option<u64> {
    match *v {
        AttributeValue::Udata(x) => Some(x),
        AttributeValue::Data1(x) => Some(x as u64),
        AttributeValue::Data2(x) => Some(x as u64),
        AttributeValue::Data4(x) => Some(x as u64),
        AttributeValue::Data8(x) => Some(x),
        AttributeValue::Sdata(x) if x >= 0 => Some(x as u64),
        AttributeValue::FileIndex(x) => Some(x),
        _ => None,
    }
}

fn ref_to_global(unit: &Unit<'_>, v: AttributeValue<Rd<'_>>) -> Option<DebugInfoOffset> {
    match v {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header),
        AttributeValue::DebugInfoRef(o) => Some(o),
        _ => None,
    }
}

impl<'a, 'd> Walker<'a, 'd> {
    fn new(dwarf: &'d gimli::Dwarf<Rd<'a>>) -> Result<Self, gimli::Error> {
        let mut units = Vec::new();
        let mut it = dwarf.units();
        while let Some(h) = it.next()? {
            let UnitSectionOffset::DebugInfoOffset(off) = h.offset() else {
                continue;
            };
            let start = off.0 as u64;
            let end = start + h.length_including_self() as u64;
            let unit = dwarf.unit(h)?;
            units.push(UnitInfo { start, end, unit });
        }
        Ok(Walker {
            dwarf,
            units: Rc::new(units),
            origins: HashMap::new(),
            files: HashMap::new(),
            sites: Vec::new(),
            ool: Vec::new(),
            target_funcs: HashMap::new(),
            sync_scopes: Vec::new(),
            layout: Layout::default(),
        })
    }

    fn unit_index_of(&self, off: DebugInfoOffset) -> Option<usize> {
        let o = off.0 as u64;
        let i = self.units.partition_point(|u| u.start <= o);
        if i == 0 || o >= self.units[i - 1].end {
            return None;
        }
        Some(i - 1)
    }

    fn file_names(&mut self, ui: usize) -> Rc<Vec<String>> {
        if let Some(f) = self.files.get(&ui) {
            return f.clone();
        }
        let mut names = Vec::new();
        let unit = &self.units[ui].unit;
        if let Some(lp) = unit.line_program.as_ref() {
            let header = lp.header();
            // Index i of this vector is DWARF file index i (0-based for
            // DWARF 5, index 0 unused before that).
            let count = header.file_names().len() as u64 + 1;
            for idx in 0..count {
                let name = header
                    .file(idx)
                    .map(|fe| {
                        let path = self
                            .dwarf
                            .attr_string(unit, fe.path_name())
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if path.starts_with('/') || path.starts_with('<') {
                            return path;
                        }
                        let dir = fe
                            .directory(header)
                            .and_then(|d| self.dwarf.attr_string(unit, d).ok())
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if dir.is_empty() || dir == "." {
                            path
                        } else {
                            format!("{dir}/{path}")
                        }
                    })
                    .unwrap_or_default();
                names.push(name);
            }
        }
        let rc = Rc::new(names);
        self.files.insert(ui, rc.clone());
        rc
    }

    fn file_name(&mut self, ui: usize, idx: Option<u64>) -> String {
        match idx {
            Some(i) => self
                .file_names(ui)
                .get(i as usize)
                .cloned()
                .unwrap_or_default(),
            None => String::new(),
        }
    }

    fn origin(&mut self, off: DebugInfoOffset) -> Rc<OriginInfo> {
        if let Some(o) = self.origins.get(&(off.0 as u64)) {
            return o.clone();
        }
        let name = self.name_at(off, 0).unwrap_or_default();
        let info = Rc::new(OriginInfo {
            class: classify(&name),
            name: name.into(),
        });
        self.origins.insert(off.0 as u64, info.clone());
        info
    }

    fn name_at(&self, off: DebugInfoOffset, hops: u32) -> Option<String> {
        let ui = self.unit_index_of(off)?;
        let unit = &self.units[ui].unit;
        let entry = unit.entry(off.to_unit_offset(&unit.header)?).ok()?;
        if let Ok(Some(v)) = entry.attr_value(gimli::DW_AT_name) {
            if let Ok(s) = self.dwarf.attr_string(unit, v) {
                return Some(s.to_string_lossy().into_owned());
            }
        }
        if hops < 4 {
            for at in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
                if let Ok(Some(v)) = entry.attr_value(at) {
                    if let Some(o) = ref_to_global(unit, v) {
                        return self.name_at(o, hops + 1);
                    }
                }
            }
        }
        None
    }

    /// Declaration position of a DIE (or its abstract origin).
    fn decl_at(&mut self, off: DebugInfoOffset, hops: u32) -> Option<(String, u32)> {
        let ui = self.unit_index_of(off)?;
        let (file, line, origin) = {
            let unit = &self.units[ui].unit;
            let entry = unit.entry(off.to_unit_offset(&unit.header)?).ok()?;
            let file = entry
                .attr_value(gimli::DW_AT_decl_file)
                .ok()
                .flatten()
                .and_then(|v| attr_u64(&v));
            let line = entry
                .attr_value(gimli::DW_AT_decl_line)
                .ok()
                .flatten()
                .and_then(|v| attr_u64(&v));
            let origin = entry
                .attr_value(gimli::DW_AT_abstract_origin)
                .ok()
                .flatten()
                .and_then(|v| ref_to_global(unit, v));
            (file, line, origin)
        };
        if file.is_some() || line.is_some() {
            return Some((self.file_name(ui, file), line.unwrap_or(0) as u32));
        }
        match origin {
            Some(o) if hops < 4 => self.decl_at(o, hops + 1),
            _ => None,
        }
    }

    /// File and line of the line-table row covering `addr` in unit `ui`.
    fn line_at(&mut self, ui: usize, addr: u64) -> Option<(String, u32)> {
        let units = self.units.clone();
        let unit = &units[ui].unit;
        let lp = unit.line_program.clone()?;
        let mut rows = lp.rows();
        let mut best: Option<(u64, u32)> = None;
        let mut prev: Option<(u64, u64, u32)> = None;
        while let Ok(Some((_, row))) = rows.next_row() {
            if let Some((pa, pf, pl)) = prev {
                if pa <= addr && addr < row.address() {
                    best = Some((pf, pl));
                    break;
                }
            }
            prev = if row.end_sequence() {
                None
            } else {
                Some((
                    row.address(),
                    row.file_index(),
                    row.line().map_or(0, |l| l.get() as u32),
                ))
            };
        }
        let (fi, line) = best?;
        Some((self.file_name(ui, Some(fi)), line))
    }

    fn walk_all(&mut self) -> Result<(), gimli::Error> {
        for ui in 0..self.units.len() {
            self.walk_unit(ui)?;
        }
        Ok(())
    }

    fn walk_unit(&mut self, ui: usize) -> Result<(), gimli::Error> {
        let units = self.units.clone();
        self.walk_unit_inner(ui, &units[ui])
    }

    fn walk_unit_inner(&mut self, ui: usize, info: &UnitInfo<'a>) -> Result<(), gimli::Error> {
        let unit = &info.unit;
        let dwarf = self.dwarf;
        let mut cursor = unit.entries();
        let mut depth: isize = 0;
        let mut stack: Vec<Frame> = Vec::new();
        let mut cur_struct: Option<(isize, StructOfInterest)> = None;
        while let Some((delta, entry)) = cursor.next_dfs()? {
            depth += delta;
            while stack.last().is_some_and(|f| f.depth >= depth) {
                stack.pop();
            }
            if let Some((sd, _)) = cur_struct {
                if depth <= sd {
                    cur_struct = None;
                }
            }
            match entry.tag() {
                gimli::DW_TAG_subprogram => {
                    let concrete = entry.attr_value(gimli::DW_AT_low_pc)?.is_some()
                        || entry.attr_value(gimli::DW_AT_ranges)?.is_some();
                    if !concrete {
                        continue;
                    }
                    let (name, class) = match entry.attr_value(gimli::DW_AT_name)? {
                        Some(v) => {
                            let n: Rc<str> = dwarf.attr_string(unit, v)?.to_string_lossy().into();
                            let c = classify(&n);
                            (n, c)
                        }
                        None => match entry
                            .attr_value(gimli::DW_AT_abstract_origin)?
                            .and_then(|v| ref_to_global(unit, v))
                        {
                            Some(o) => {
                                let oi = self.origin(o);
                                (oi.name.clone(), oi.class)
                            }
                            None => ("?".into(), Class::Other),
                        },
                    };
                    let ranges = collect_ranges(dwarf, unit, entry)?;
                    let phys = (
                        ranges.iter().map(|r| r.0).min().unwrap_or(0),
                        ranges.iter().map(|r| r.1).max().unwrap_or(0),
                    );
                    let mut collector = None;
                    if let Class::Target(t) = class {
                        self.target_funcs.insert(phys.0, t);
                        if !t.internal {
                            let off = entry.offset().to_debug_info_offset(&unit.header);
                            let (mut file, mut line) =
                                off.and_then(|o| self.decl_at(o, 0)).unwrap_or_default();
                            if file.is_empty() {
                                // Go puts no DW_AT_decl_file on abstract
                                // subprograms: use the line table.
                                if let Some((f, l)) = self.line_at(ui, phys.0) {
                                    file = f;
                                    if line == 0 {
                                        line = l;
                                    }
                                }
                            }
                            self.ool.push(OolFunc {
                                target: t,
                                name: name.clone(),
                                ranges: ranges.clone(),
                                low: phys.0,
                                nested: Vec::new(),
                                file,
                                line,
                            });
                            collector = Some(Collector::Ool(self.ool.len() - 1));
                        }
                    }
                    if class.is_sync_scope() {
                        self.sync_scopes.extend_from_slice(&ranges);
                    }
                    stack.push(Frame {
                        depth,
                        name,
                        class,
                        inlined: false,
                        call_file: None,
                        call_line: 0,
                        collector,
                        phys,
                    });
                }
                gimli::DW_TAG_inlined_subroutine => {
                    let Some(origin) = entry
                        .attr_value(gimli::DW_AT_abstract_origin)?
                        .and_then(|v| ref_to_global(unit, v))
                    else {
                        continue;
                    };
                    let oi = self.origin(origin);
                    let ranges = collect_ranges(dwarf, unit, entry)?;
                    let call_file_idx = entry
                        .attr_value(gimli::DW_AT_call_file)?
                        .and_then(|v| attr_u64(&v));
                    let call_line = entry
                        .attr_value(gimli::DW_AT_call_line)?
                        .and_then(|v| attr_u64(&v))
                        .unwrap_or(0) as u32;
                    let phys = stack.last().map_or((0, 0), |f| f.phys);
                    let mut collector = None;
                    match oi.class {
                        Class::Target(t) => {
                            let enclosing_sync =
                                stack.last().is_none_or(|f| f.class.is_sync_scope());
                            if enclosing_sync {
                                // Part of another lock method's implementation:
                                // remember it so that anchors can tell, e.g., the
                                // inner w.Lock() of RWMutex.TryLock apart.
                                for f in stack.iter().rev() {
                                    if let Some(c) = f.collector {
                                        match c {
                                            Collector::Site(i) => {
                                                self.sites[i].nested.push((t, ranges.clone()))
                                            }
                                            Collector::Ool(i) => {
                                                self.ool[i].nested.push((t, ranges.clone()))
                                            }
                                        }
                                        break;
                                    }
                                    if !f.class.is_sync_scope() {
                                        break;
                                    }
                                }
                            } else {
                                // Report the call where the user wrote it: look
                                // through inlined forwarding wrappers.
                                let (mut file_idx, mut line) = (call_file_idx, call_line);
                                let mut caller = stack
                                    .last()
                                    .map(|f| f.name.clone())
                                    .unwrap_or_else(|| "?".into());
                                for f in stack.iter().rev() {
                                    caller = f.name.clone();
                                    if f.class == Class::Wrapper && f.inlined {
                                        file_idx = f.call_file;
                                        line = f.call_line;
                                        continue;
                                    }
                                    break;
                                }
                                let file = self.file_name(ui, file_idx);
                                self.sites.push(RawSite {
                                    target: t,
                                    ranges: ranges.clone(),
                                    nested: Vec::new(),
                                    caller,
                                    file,
                                    line,
                                    phys,
                                });
                                collector = Some(Collector::Site(self.sites.len() - 1));
                            }
                            self.sync_scopes.extend_from_slice(&ranges);
                        }
                        Class::SyncImpl => self.sync_scopes.extend_from_slice(&ranges),
                        _ => {}
                    }
                    stack.push(Frame {
                        depth,
                        name: oi.name.clone(),
                        class: oi.class,
                        inlined: true,
                        call_file: call_file_idx,
                        call_line,
                        collector,
                        phys,
                    });
                }
                gimli::DW_TAG_structure_type if depth == 1 => {
                    if let Some(v) = entry.attr_value(gimli::DW_AT_name)? {
                        let n = dwarf.attr_string(unit, v)?;
                        let which = match n.slice() {
                            b"sync.Mutex" => Some(StructOfInterest::SyncMutex),
                            b"internal/sync.Mutex" => Some(StructOfInterest::InternalMutex),
                            b"sync.RWMutex" => Some(StructOfInterest::RwMutex),
                            b"sync/atomic.Int32" => Some(StructOfInterest::AtomicInt32),
                            _ => None,
                        };
                        cur_struct = which.map(|w| (depth, w));
                    }
                }
                gimli::DW_TAG_member => {
                    let Some((sd, which)) = cur_struct else {
                        continue;
                    };
                    if depth != sd + 1 {
                        continue;
                    }
                    let Some(nv) = entry.attr_value(gimli::DW_AT_name)? else {
                        continue;
                    };
                    let n = dwarf.attr_string(unit, nv)?;
                    let Some(off) = entry
                        .attr_value(gimli::DW_AT_data_member_location)?
                        .and_then(|v| attr_u64(&v))
                    else {
                        continue;
                    };
                    let off = off as i64;
                    let l = &mut self.layout;
                    match (which, n.slice()) {
                        (StructOfInterest::SyncMutex, b"mu") => l.mutex_mu = off,
                        (StructOfInterest::SyncMutex, b"state") => l.mutex_state = off,
                        (StructOfInterest::InternalMutex, b"state") => l.mutex_state = off,
                        (StructOfInterest::RwMutex, b"w") => l.rw_w = off,
                        (StructOfInterest::RwMutex, b"readerCount") => l.rw_reader_count = off,
                        (StructOfInterest::AtomicInt32, b"v") => l.atomic_int32_v = off,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self, text: &TextMap<'_>) -> LockSiteScan {
        let layout = self.layout;
        let mut out = LockSiteScan::default();

        // Calls from sync's own code into probed method entries.
        let entry_index: HashMap<u64, usize> = self
            .ool
            .iter()
            .enumerate()
            .map(|(i, f)| (f.low, i))
            .collect();
        let mut ignore: Vec<Vec<u64>> = vec![Vec::new(); self.ool.len()];
        for (lo, hi) in merge_ranges(&self.sync_scopes) {
            let mut insns = Vec::new();
            text.decode(lo, hi, &mut insns);
            for ins in &insns {
                if ins.flow_control() == FlowControl::Call && ins.op0_kind() == OpKind::NearBranch64
                {
                    if let Some(&i) = entry_index.get(&ins.near_branch_target()) {
                        ignore[i].push(ins.next_ip());
                    }
                }
            }
        }

        let claimed = merge_ranges(
            &self
                .sites
                .iter()
                .flat_map(|s| {
                    s.ranges
                        .iter()
                        .chain(s.nested.iter().flat_map(|n| n.1.iter()))
                })
                .copied()
                .collect::<Vec<_>>(),
        );
        let mut phys_cache: HashMap<u64, Vec<Instruction>> = HashMap::new();
        let mut sites: BTreeMap<u64, LockSite> = BTreeMap::new();
        let mut add = |out: &mut LockSiteScan, s: LockSite| {
            if let Some(prev) = sites.get(&s.probe_vaddr) {
                if prev.op != s.op
                    || prev.kind != s.kind
                    || prev.reg != s.reg
                    || prev.adjust != s.adjust
                {
                    out.unresolved.push(format!(
                        "{:?} ({:?}) in {} at {}:{} shares probe {:#x} with a different site; dropped",
                        s.op, s.kind, s.caller, s.file, s.line, s.probe_vaddr
                    ));
                }
                return;
            }
            sites.insert(s.probe_vaddr, s);
        };

        for s in &self.sites {
            let ctx = AnchorCtx {
                text,
                layout: &layout,
                target_funcs: &self.target_funcs,
                allow_call: true,
                claimed: &claimed,
            };
            match ctx.anchor(s.target, &s.ranges, &s.nested, s.phys, &mut phys_cache) {
                Ok(a) => add(
                    &mut out,
                    LockSite {
                        op: s.target.op,
                        kind: s.target.kind,
                        probe_vaddr: a.probe,
                        reg: a.reg,
                        adjust: a.adjust,
                        caller: s.caller.to_string(),
                        file: s.file.clone(),
                        line: s.line,
                        inlined: true,
                        outcome: a.outcome,
                        ignore_return_addrs: Vec::new(),
                    },
                ),
                Err(why) => out.unresolved.push(format!(
                    "{:?} ({:?}) in {} at {}:{} [{}]: {}",
                    s.target.op,
                    s.target.kind,
                    s.caller,
                    s.file,
                    s.line,
                    fmt_ranges(&s.ranges),
                    why
                )),
            }
        }

        for (i, f) in self.ool.iter().enumerate() {
            let mut ign = std::mem::take(&mut ignore[i]);
            ign.sort_unstable();
            ign.dedup();
            let base = LockSite {
                op: f.target.op,
                kind: f.target.kind,
                probe_vaddr: f.low,
                reg: Gpr::Rax,
                adjust: 0,
                caller: f.name.to_string(),
                file: f.file.clone(),
                line: f.line,
                inlined: false,
                outcome: Outcome::Performed,
                ignore_return_addrs: Vec::new(),
            };
            if f.target.op.is_try() {
                // Probe the deciding CAS in the body when no caller has to be
                // filtered out (a mid-body probe cannot see the return address).
                if ign.is_empty() {
                    let ctx = AnchorCtx {
                        text,
                        layout: &layout,
                        target_funcs: &self.target_funcs,
                        allow_call: false,
                        claimed: &claimed,
                    };
                    let phys = (f.low, f.ranges.iter().map(|r| r.1).max().unwrap_or(f.low));
                    if let Ok(a) = ctx.anchor(f.target, &f.ranges, &f.nested, phys, &mut phys_cache)
                    {
                        if a.outcome == Outcome::IfZf {
                            add(
                                &mut out,
                                LockSite {
                                    probe_vaddr: a.probe,
                                    reg: a.reg,
                                    adjust: a.adjust,
                                    outcome: a.outcome,
                                    ..base
                                },
                            );
                            continue;
                        }
                    }
                }
                add(
                    &mut out,
                    LockSite {
                        probe_vaddr: after_stack_check(text, f.low),
                        outcome: Outcome::Unknown,
                        ignore_return_addrs: ign,
                        ..base
                    },
                );
            } else {
                add(
                    &mut out,
                    LockSite {
                        probe_vaddr: after_stack_check(text, f.low),
                        ignore_return_addrs: ign,
                        ..base
                    },
                );
            }
        }

        out.sites = sites.into_values().collect();
        out
    }
}

fn collect_ranges(
    dwarf: &gimli::Dwarf<Rd<'_>>,
    unit: &Unit<'_>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, Rd<'_>>,
) -> Result<Vec<(u64, u64)>, gimli::Error> {
    let mut out = Vec::new();
    let mut it = dwarf.die_ranges(unit, entry)?;
    while let Some(r) = it.next()? {
        if r.begin < r.end {
            out.push((r.begin, r.end));
        }
    }
    Ok(out)
}

fn fmt_ranges(r: &[(u64, u64)]) -> String {
    r.iter()
        .map(|(a, b)| format!("{a:#x}-{b:#x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// First instruction after Go's stack-bound check (`cmp rsp|r12, [r14+0x10]`
/// followed by `jbe morestack`), or `entry` when the function has none.  Past
/// that point the function runs exactly once per call (a stack growth jumps
/// back to the entry), and the arguments are still in their registers.
fn after_stack_check(text: &TextMap<'_>, entry: u64) -> u64 {
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

// ---------------------------------------------------------------------------
// Finding the instruction that performs an operation.

struct Anchor {
    probe: u64,
    reg: Gpr,
    adjust: i64,
    outcome: Outcome,
}

struct AnchorCtx<'t, 'd> {
    text: &'t TextMap<'d>,
    layout: &'t Layout,
    target_funcs: &'t HashMap<u64, Target>,
    /// Inlined copies and out-of-line bodies may also use a nearby call or
    /// an atomic just outside the DWARF range (see `anchor`).
    allow_call: bool,
    /// All code attributed to lock-method copies (merged, sorted).
    claimed: &'t [(u64, u64)],
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
    fn anchor(
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

#[cfg(test)]
mod tests {
    //! Builds a Go fixture with known call sites using each toolchain and
    //! build mode, checks the scan against the source markers and against an
    //! independent disassembly of the fixture's functions, then runs the
    //! fixture under gdb with a breakpoint on every site and compares
    //! `reg + adjust` with the mutex addresses the fixture prints.
    //!
    //! Toolchains: `TRACER_GO` (default: the repository's build/go-1.26.6)
    //! and `TRACER_GO_OLDEST` (default: the build tree's Go 1.21).  A missing
    //! toolchain or gdb skips that part with a message on stderr.

    use super::*;
    use object::ObjectSymbol;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const FIXTURE: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Every line with a mutex call starts with mark(p) or markOff(p, off), which
// record the line and the mutex address. The trailing comment says what the line does:
//   op:OP [ok|fail]  a direct call (inlined unless built with -l)
//   dyn:OP           a call through an interface or a func value
//   wait             sync.Cond.Wait (unlocks and relocks L)
// OP: Lock Unlock TryLock (sync.Mutex), RLock RUnlock TryRLock RwLock RwUnlock
// RwTryLock (sync.RWMutex).

var gmu sync.Mutex
var grw sync.RWMutex

type S struct {
	a  int64
	b  int32
	mu sync.Mutex
	n  int
	rw sync.RWMutex
	pm *sync.Mutex
}

type Emb struct {
	x int64
	sync.Mutex
}

type EmbRW struct {
	pad [3]int64
	sync.RWMutex
}

type Shard struct {
	mu sync.Mutex
	m  map[int]int
}

type Srv struct {
	name   string
	n      int
	mu     sync.Mutex
	closed bool
	conns  map[int]bool
}

type common struct {
	x    int
	tmpl map[string]int
	rw   sync.RWMutex
}

type Tmpl struct {
	name string
	c    *common
}

type mk struct {
	line int
	p    unsafe.Pointer
}

var marks []mk
var markSem = make(chan struct{}, 1)

//go:noinline
func mark(p unsafe.Pointer) {
	_, _, line, _ := runtime.Caller(1)
	markSem <- struct{}{}
	marks = append(marks, mk{line, p})
	<-markSem
}

// markOff records p+off: the mutex address is not computed in the caller, as
// when a method locks a field of its receiver.
//
//go:noinline
func markOff(p unsafe.Pointer, off uintptr) {
	_, _, line, _ := runtime.Caller(1)
	markSem <- struct{}{}
	marks = append(marks, mk{line, unsafe.Add(p, off)})
	<-markSem
}

//go:noinline
func globals() {
	mark(unsafe.Pointer(&gmu)); gmu.Lock() // op:Lock
	mark(unsafe.Pointer(&gmu)); gmu.Unlock() // op:Unlock
	mark(unsafe.Pointer(&grw)); grw.RLock() // op:RLock
	mark(unsafe.Pointer(&grw)); grw.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&grw)); grw.Lock() // op:RwLock
	mark(unsafe.Pointer(&grw)); grw.Unlock() // op:RwUnlock
	mark(unsafe.Pointer(&gmu)); if gmu.TryLock() { // op:TryLock ok
		mark(unsafe.Pointer(&gmu)); gmu.Unlock() // op:Unlock
	}
	mark(unsafe.Pointer(&grw)); if grw.TryRLock() { // op:TryRLock ok
		mark(unsafe.Pointer(&grw)); grw.RUnlock() // op:RUnlock
	}
	mark(unsafe.Pointer(&grw)); if grw.TryLock() { // op:RwTryLock ok
		mark(unsafe.Pointer(&grw)); grw.Unlock() // op:RwUnlock
	}
}

//go:noinline
func fields(s *S) {
	mark(unsafe.Pointer(&s.mu)); s.mu.Lock() // op:Lock
	s.n++
	mark(unsafe.Pointer(&s.mu)); s.mu.Unlock() // op:Unlock
	mark(unsafe.Pointer(&s.rw)); s.rw.RLock() // op:RLock
	mark(unsafe.Pointer(&s.rw)); s.rw.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&s.rw)); s.rw.Lock() // op:RwLock
	mark(unsafe.Pointer(&s.rw)); s.rw.Unlock() // op:RwUnlock
	mark(unsafe.Pointer(s.pm)); s.pm.Lock() // op:Lock
	mark(unsafe.Pointer(s.pm)); s.pm.Unlock() // op:Unlock
}

//go:noinline
func embedded(e *Emb, r *EmbRW) {
	mark(unsafe.Pointer(&e.Mutex)); e.Lock() // op:Lock
	mark(unsafe.Pointer(&e.Mutex)); e.Unlock() // op:Unlock
	mark(unsafe.Pointer(&r.RWMutex)); r.RLock() // op:RLock
	mark(unsafe.Pointer(&r.RWMutex)); r.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&r.RWMutex)); r.Lock() // op:RwLock
	mark(unsafe.Pointer(&r.RWMutex)); r.Unlock() // op:RwUnlock
}

//go:noinline
func heap() *sync.Mutex {
	m := new(sync.Mutex)
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); if m.TryLock() { // op:TryLock fail
		panic("trylock of held mutex succeeded")
	}
	mark(unsafe.Pointer(m)); m.Unlock() // op:Unlock
	return m
}

//go:noinline
func shards(sh []Shard, i int) {
	mark(unsafe.Pointer(&sh[i].mu)); sh[i].mu.Lock() // op:Lock
	sh[i].m[i]++
	mark(unsafe.Pointer(&sh[i].mu)); sh[i].mu.Unlock() // op:Unlock
}

//go:noinline
func withDefer(m *sync.Mutex) int {
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); defer m.Unlock() // op:Unlock
	return 42
}

//go:noinline
func viaLocker(l sync.Locker, p unsafe.Pointer) {
	mark(p); l.Lock() // dyn:Lock
	mark(p); l.Unlock() // dyn:Unlock
}

//go:noinline
func methodValue(m *sync.Mutex) {
	f := m.Lock
	g := m.Unlock
	mark(unsafe.Pointer(m)); f() // dyn:Lock
	mark(unsafe.Pointer(m)); g() // dyn:Unlock
}

func generic[T any](m *sync.Mutex, v T) T {
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); m.Unlock() // op:Unlock
	return v
}

//go:noinline
func condWait() {
	var mu sync.Mutex
	c := sync.NewCond(&mu)
	ready := false
	mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
	go func() {
		mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
		ready = true
		c.Signal()
		mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
	}()
	for !ready {
		c.Wait() // wait
	}
	mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
}

//go:noinline
func contended() {
	var mu sync.Mutex
	held := make(chan bool)
	done := make(chan bool)
	go func() {
		mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
		held <- true
		time.Sleep(20 * time.Millisecond)
		mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
		done <- true
	}()
	<-held
	mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
	mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
	<-done
}

//go:noinline
func (s *Srv) Close() {
	markOff(unsafe.Pointer(s), unsafe.Offsetof(s.mu)); s.mu.Lock() // op:Lock
	if !s.closed {
		s.closed = true
		s.conns = nil
	}
	markOff(unsafe.Pointer(s), unsafe.Offsetof(s.mu)); s.mu.Unlock() // op:Unlock
}

//go:noinline
func (t *Tmpl) Lookup(name string) int {
	if t.c == nil {
		return 0
	}
	markOff(unsafe.Pointer(t.c), unsafe.Offsetof(t.c.rw)); t.c.rw.RLock() // op:RLock
	markOff(unsafe.Pointer(t.c), unsafe.Offsetof(t.c.rw)); defer t.c.rw.RUnlock() // op:RUnlock
	return t.c.tmpl[name]
}

//go:noinline
func rlocker(rw *sync.RWMutex) {
	l := rw.RLocker()
	mark(unsafe.Pointer(rw)); l.Lock() // dyn:RLock
	mark(unsafe.Pointer(rw)); l.Unlock() // dyn:RUnlock
}

func main() {
	globals()
	s := &S{pm: new(sync.Mutex)}
	fields(s)
	embedded(&Emb{}, &EmbRW{})
	heap()
	sh := make([]Shard, 4)
	for i := range sh {
		sh[i].m = map[int]int{}
	}
	shards(sh, 2)
	withDefer(new(sync.Mutex))
	var lm sync.Mutex
	viaLocker(&lm, unsafe.Pointer(&lm))
	methodValue(new(sync.Mutex))
	generic(new(sync.Mutex), 1)
	generic(new(sync.Mutex), "x")
	condWait()
	contended()
	rlocker(new(sync.RWMutex))
	(&Srv{conns: map[int]bool{}}).Close()
	(&Tmpl{c: &common{tmpl: map[string]int{"a": 1}}}).Lookup("a")
	for _, m := range marks {
		fmt.Fprintf(os.Stdout, "M %d %p\n", m.line, m.p)
	}
}
"#;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tag {
        /// Direct call.
        Op,
        /// Through an interface or func value.
        Dyn,
    }

    #[derive(Debug, Clone, Copy)]
    struct Marker {
        op: LockOp,
        kind: MutexKind,
        tag: Tag,
        /// For Try ops: whether the fixture expects success.
        ok: Option<bool>,
    }

    fn parse_op(s: &str) -> (LockOp, MutexKind) {
        use LockOp::*;
        use MutexKind::*;
        match s {
            "Lock" => (Lock, Mutex),
            "Unlock" => (Unlock, Mutex),
            "TryLock" => (TryLock, Mutex),
            "RLock" => (RLock, RwMutex),
            "RUnlock" => (RUnlock, RwMutex),
            "TryRLock" => (TryRLock, RwMutex),
            "RwLock" => (Lock, RwMutex),
            "RwUnlock" => (Unlock, RwMutex),
            "RwTryLock" => (TryLock, RwMutex),
            _ => panic!("bad fixture marker {s}"),
        }
    }

    /// Marked lines and the lines that call sync.Cond.Wait.
    fn markers() -> (BTreeMap<u32, Marker>, BTreeSet<u32>) {
        let mut m = BTreeMap::new();
        let mut waits = BTreeSet::new();
        for (i, text) in FIXTURE.lines().enumerate() {
            let line = i as u32 + 1;
            let Some(pos) = text.find("// ") else {
                continue;
            };
            if !text[..pos].contains("mark") && !text[..pos].contains("c.Wait()") {
                continue;
            }
            let c = text[pos + 3..].trim();
            if c == "wait" {
                waits.insert(line);
                continue;
            }
            let mut words = c.split_whitespace();
            let Some(first) = words.next() else { continue };
            let (tag, op) = if let Some(op) = first.strip_prefix("op:") {
                (Tag::Op, op)
            } else if let Some(op) = first.strip_prefix("dyn:") {
                (Tag::Dyn, op)
            } else {
                continue;
            };
            let (op, kind) = parse_op(op);
            let ok = match words.next() {
                Some("ok") => Some(true),
                Some("fail") => Some(false),
                _ => None,
            };
            m.insert(line, Marker { op, kind, tag, ok });
        }
        (m, waits)
    }

    fn go126() -> Option<PathBuf> {
        Some(crate::testgo::default_go()).filter(|p| p.exists())
    }

    fn go121() -> Option<PathBuf> {
        Some(crate::testgo::oldest_go()).filter(|p| p.exists())
    }

    struct Built {
        dir: PathBuf,
        bin: PathBuf,
        source: String,
    }

    fn build(go: &Path, tag: &str, gcflags: Option<&str>) -> Built {
        let dir =
            std::env::temp_dir().join(format!("locksites-fixture-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        std::fs::write(dir.join("main.go"), FIXTURE).unwrap();
        std::fs::write(dir.join("go.mod"), "module fixture\n\ngo 1.21\n").unwrap();
        let tmp = std::env::temp_dir();
        let gocache = std::env::var_os("GOCACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| tmp.join("locksites-gocache"));
        let gopath = std::env::var_os("GOPATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| tmp.join("locksites-gopath"));
        let bin = dir.join("fixture");
        let mut cmd = Command::new(go);
        cmd.arg("build").arg("-o").arg(&bin);
        if let Some(g) = gcflags {
            cmd.arg(format!("-gcflags={g}"));
        }
        cmd.arg(".")
            .current_dir(&dir)
            .env("PWD", &dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", gocache)
            .env("GOPATH", gopath)
            .env("CGO_ENABLED", "0");
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", go.display()));
        assert!(
            out.status.success(),
            "go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Built {
            source: dir.join("main.go").to_string_lossy().into_owned(),
            dir,
            bin,
        }
    }

    /// Address -> (file, line) from the DWARF line tables.
    struct Lines {
        rows: Vec<(u64, u64, String, u32)>,
    }

    impl Lines {
        fn new(file: &object::File<'_>) -> Lines {
            let sections =
                gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, object::Error> {
                    match file.section_by_name(id.name()) {
                        Some(s) => s.uncompressed_data(),
                        None => Ok(Cow::Borrowed(&[][..])),
                    }
                })
                .unwrap();
            let dwarf = sections.borrow(|s| EndianSlice::new(s.as_ref(), LittleEndian));
            let mut rows = Vec::new();
            let mut units = dwarf.units();
            while let Some(h) = units.next().unwrap() {
                let unit = dwarf.unit(h).unwrap();
                let Some(lp) = unit.line_program.clone() else {
                    continue;
                };
                let mut it = lp.rows();
                let mut prev: Option<(u64, String, u32)> = None;
                while let Some((header, row)) = it.next_row().unwrap() {
                    if let Some((a, f, l)) = prev.take() {
                        if row.address() > a {
                            rows.push((a, row.address(), f, l));
                        }
                    }
                    if row.end_sequence() {
                        continue;
                    }
                    let name = row
                        .file(header)
                        .map(|fe| {
                            let p = dwarf
                                .attr_string(&unit, fe.path_name())
                                .unwrap()
                                .to_string_lossy()
                                .into_owned();
                            if p.starts_with('/') {
                                return p;
                            }
                            let d = fe
                                .directory(header)
                                .and_then(|d| dwarf.attr_string(&unit, d).ok())
                                .map(|d| d.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            if d.is_empty() {
                                p
                            } else {
                                format!("{d}/{p}")
                            }
                        })
                        .unwrap_or_default();
                    prev = Some((
                        row.address(),
                        name,
                        row.line().map_or(0, |l| l.get() as u32),
                    ));
                }
            }
            rows.sort_by_key(|r| r.0);
            Lines { rows }
        }

        fn at(&self, addr: u64) -> Option<(&str, u32)> {
            let i = self.rows.partition_point(|r| r.0 <= addr);
            let r = self.rows.get(i.checked_sub(1)?)?;
            (addr < r.1).then_some((r.2.as_str(), r.3))
        }
    }

    fn decode_fn(text: &[(u64, Vec<u8>)], lo: u64, hi: u64) -> Vec<Instruction> {
        for (a, d) in text {
            if lo >= *a && hi <= a + d.len() as u64 {
                let b = &d[(lo - a) as usize..(hi - a) as usize];
                return Decoder::with_ip(64, b, lo, DecoderOptions::NONE)
                    .iter()
                    .collect();
            }
        }
        panic!("function {lo:#x} outside .text");
    }

    /// `lock cmpxchg [m], r32` with eax = 0 and r32 = 1 set shortly before:
    /// the CAS(0 -> locked) of a Mutex.Lock fast path.
    fn is_lock_fast_path(code: &[Instruction], i: usize) -> bool {
        let ins = &code[i];
        if !(ins.has_lock_prefix()
            && ins.mnemonic() == Mnemonic::Cmpxchg
            && ins.op1_kind() == OpKind::Register)
        {
            return false;
        }
        let window = &code[i.saturating_sub(16)..i];
        let val = |r: Register| -> Option<i64> {
            for p in window.iter().rev() {
                if matches!(
                    p.flow_control(),
                    FlowControl::Call
                        | FlowControl::Return
                        | FlowControl::UnconditionalBranch
                        | FlowControl::IndirectBranch
                ) {
                    return None;
                }
                if p.op_count() > 0
                    && p.op0_kind() == OpKind::Register
                    && p.op0_register().full_register() == r.full_register()
                {
                    return match p.mnemonic() {
                        Mnemonic::Mov if p.op1_kind() == OpKind::Immediate32 => {
                            Some(p.immediate32() as i64)
                        }
                        Mnemonic::Xor
                            if p.op1_kind() == OpKind::Register
                                && p.op1_register() == p.op0_register() =>
                        {
                            Some(0)
                        }
                        _ => None,
                    };
                }
            }
            None
        };
        val(Register::EAX) == Some(0) && val(ins.op1_register()) == Some(1)
    }

    fn gdb_usable() -> bool {
        Command::new("gdb")
            .args(["-nx", "-batch", "-ex", "python print('py-ok')"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("py-ok"))
            .unwrap_or(false)
    }

    const GDB_REGS: [&str; 18] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip", "eflags",
    ];

    fn reg_slot(g: Gpr) -> usize {
        match g {
            Gpr::Rax => 0,
            Gpr::Rbx => 1,
            Gpr::Rcx => 2,
            Gpr::Rdx => 3,
            Gpr::Rsi => 4,
            Gpr::Rdi => 5,
            Gpr::Rbp => 6,
            Gpr::Rsp => 7,
            Gpr::R8 => 8,
            Gpr::R9 => 9,
            Gpr::R10 => 10,
            Gpr::R11 => 11,
            Gpr::R12 => 12,
            Gpr::R13 => 13,
            Gpr::R14 => 14,
            Gpr::R15 => 15,
            Gpr::Rip => 16,
        }
    }

    struct Hit {
        pc: u64,
        regs: Vec<u64>,
        rsp_word: u64,
        frames: Vec<(String, String, u32)>,
    }

    /// Run the fixture under gdb with a breakpoint on every site.
    fn run_under_gdb(b: &Built, sites: &[LockSite]) -> (Vec<Hit>, Vec<(u32, u64)>) {
        let hits_path = b.dir.join("hits.txt");
        let out_path = b.dir.join("stdout.txt");
        let script = b.dir.join("probe.py");
        let addrs: Vec<String> = sites
            .iter()
            .map(|s| format!("{:#x}", s.probe_vaddr))
            .collect();
        let regs: Vec<String> = GDB_REGS.iter().map(|r| format!("\"{r}\"")).collect();
        let py = format!(
            r#"
import gdb
REGS = [{regs}]
out = open({hits:?}, "w")
class P(gdb.Breakpoint):
    def stop(self):
        try:
            fr = gdb.newest_frame()
            raw = [int(fr.read_register(r)) & 0xffffffffffffffff for r in REGS]
            vals = ["%x" % v for v in raw]
            mem = gdb.selected_inferior().read_memory(raw[7], 8)
            word = int.from_bytes(bytes(mem), "little")
            frames = []
            f = gdb.newest_frame()
            while f is not None and len(frames) < 10:
                sal = f.find_sal()
                fn = sal.symtab.filename if sal.symtab is not None else "?"
                frames.append("%s\x1f%s\x1f%d" % (f.name() or "?", fn, sal.line))
                try:
                    f = f.older()
                except gdb.error:
                    break
            out.write("HIT %s %x %s\n" % (" ".join(vals), word, "\x1e".join(frames)))
            out.flush()
        except Exception as e:
            out.write("ERR %s\n" % e)
            out.flush()
        return False
for a in [{addrs}]:
    P("*" + a, internal=True)
gdb.execute("run > {stdout}")
"#,
            regs = regs.join(", "),
            hits = hits_path.to_string_lossy(),
            addrs = addrs
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", "),
            stdout = out_path.to_string_lossy(),
        );
        std::fs::write(&script, py).unwrap();
        let mut child = Command::new("gdb")
            .args([
                "-nx",
                "-batch",
                "-ex",
                "set pagination off",
                "-ex",
                "set confirm off",
                "-ex",
                "set auto-load off",
            ])
            .args([
                "-ex",
                "handle SIGURG nostop noprint pass",
                "-ex",
                "handle SIGPIPE nostop noprint pass",
            ])
            .arg("-x")
            .arg(&script)
            .arg(&b.bin)
            .current_dir(&b.dir)
            .env("GODEBUG", "asyncpreemptoff=1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gdb");
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if start.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                panic!("gdb run timed out");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let hits_txt = std::fs::read_to_string(&hits_path).expect("gdb wrote no hits file");
        let mut hits = Vec::new();
        for l in hits_txt.lines() {
            assert!(!l.starts_with("ERR"), "gdb script error: {l}");
            let Some(rest) = l.strip_prefix("HIT ") else {
                continue;
            };
            let mut parts = rest.splitn(GDB_REGS.len() + 2, ' ');
            let regs: Vec<u64> = (0..GDB_REGS.len())
                .map(|_| u64::from_str_radix(parts.next().unwrap(), 16).unwrap())
                .collect();
            let rsp_word = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
            let frames = parts
                .next()
                .unwrap_or("")
                .split('\x1e')
                .filter(|f| !f.is_empty())
                .map(|f| {
                    let mut p = f.split('\x1f');
                    (
                        p.next().unwrap_or("").to_string(),
                        p.next().unwrap_or("").to_string(),
                        p.next().unwrap_or("0").parse().unwrap_or(0),
                    )
                })
                .collect();
            hits.push(Hit {
                pc: regs[16],
                regs,
                rsp_word,
                frames,
            });
        }
        let stdout = std::fs::read_to_string(&out_path).expect("fixture wrote no output");
        let marks = stdout
            .lines()
            .filter_map(|l| {
                let mut p = l.strip_prefix("M ")?.split_whitespace();
                let line: u32 = p.next()?.parse().ok()?;
                let addr = u64::from_str_radix(p.next()?.trim_start_matches("0x"), 16).ok()?;
                Some((line, addr))
            })
            .collect();
        (hits, marks)
    }

    #[derive(Debug, Default)]
    #[allow(dead_code)] // printed through Debug
    struct Summary {
        sites: usize,
        fixture_inlined: BTreeMap<String, usize>,
        entry_sites: usize,
        lock_sites_in_fixture: usize,
        lock_fast_paths: usize,
        lock_source_lines: usize,
        hits: usize,
        counted: usize,
        ignored: usize,
        marks: usize,
    }

    fn check(go: &Path, tag: &str, gcflags: Option<&str>) {
        let built = build(go, tag, gcflags);
        let noinline = gcflags.is_some();
        let data = std::fs::read(&built.bin).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let res = scan(&file).unwrap();
        assert!(
            res.unresolved.is_empty(),
            "[{tag}] unresolved sites: {:#?}",
            res.unresolved
        );
        let (marks_src, waits) = markers();
        let lines = Lines::new(&file);
        let mut sum = Summary {
            sites: res.sites.len(),
            ..Default::default()
        };

        let text: Vec<(u64, Vec<u8>)> = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .map(|s| (s.address(), s.uncompressed_data().unwrap().into_owned()))
            .collect();
        let mut main_fns = Vec::new();
        let mut public_targets: HashMap<u64, Target> = HashMap::new();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if sym.kind() != object::SymbolKind::Text || sym.size() == 0 {
                continue;
            }
            if name.starts_with("main.") {
                main_fns.push((name.to_string(), sym.address(), sym.address() + sym.size()));
            }
            if let Class::Target(t) = classify(name) {
                if !t.internal {
                    public_targets.insert(sym.address(), t);
                }
            }
        }
        let in_main = |a: u64| main_fns.iter().any(|f| a >= f.1 && a < f.2);
        let by_probe: HashMap<u64, &LockSite> =
            res.sites.iter().map(|s| (s.probe_vaddr, s)).collect();

        // Every out-of-line public method in the binary has a site.
        for (&addr, t) in &public_targets {
            let s = res.sites.iter().find(|s| {
                !s.inlined
                    && s.op == t.op
                    && s.kind == t.kind
                    && s.probe_vaddr >= addr
                    && s.probe_vaddr < addr + 0x400
            });
            assert!(
                s.is_some(),
                "[{tag}] no site for out-of-line {:?} {:?} at {addr:#x}",
                t.kind,
                t.op
            );
        }
        sum.entry_sites = res.sites.iter().filter(|s| !s.inlined).count();

        // Sites written in the fixture are on marked lines with the same op.
        for s in res.sites.iter().filter(|s| s.file == built.source) {
            let m = marks_src
                .get(&s.line)
                .unwrap_or_else(|| panic!("[{tag}] site on unmarked line {}: {s:?}", s.line));
            assert_eq!(
                (m.op, m.kind),
                (s.op, s.kind),
                "[{tag}] wrong op at line {}: {s:?}",
                s.line
            );
            assert!(s.inlined, "[{tag}] {s:?}");
            assert!(!noinline, "[{tag}] inlined site in a -l build: {s:?}");
            *sum.fixture_inlined
                .entry(format!("{:?}/{:?}", s.kind, s.op))
                .or_default() += 1;
        }

        // Direct calls from the fixture's functions to out-of-line methods,
        // and all of their lock-prefixed instructions.
        let mut call_lines: BTreeMap<u32, Vec<Target>> = BTreeMap::new();
        let mut fast_paths = BTreeSet::new();
        let mut locked = BTreeSet::new();
        for (name, lo, hi) in &main_fns {
            let code = decode_fn(&text, *lo, *hi);
            for (i, ins) in code.iter().enumerate() {
                if ins.flow_control() == FlowControl::Call && ins.op0_kind() == OpKind::NearBranch64
                {
                    if let Some(t) = public_targets.get(&ins.near_branch_target()) {
                        let (f, l) = lines.at(ins.ip()).unwrap_or(("", 0));
                        if f == built.source {
                            call_lines.entry(l).or_default().push(*t);
                        } else {
                            assert!(name.contains("-fm"), "[{tag}] call from {name} at {f}:{l}");
                        }
                    }
                }
                if ins.has_lock_prefix() {
                    locked.insert((ins.ip(), ins.next_ip()));
                }
                if is_lock_fast_path(&code, i) {
                    fast_paths.insert(ins.ip());
                }
            }
        }

        // Each direct call line is covered exactly one way.
        for (&line, m) in marks_src.iter().filter(|(_, m)| m.tag == Tag::Op) {
            let inl = res
                .sites
                .iter()
                .filter(|s| s.file == built.source && s.line == line)
                .count();
            let calls = call_lines.get(&line).map_or(0, |v| {
                v.iter()
                    .filter(|t| t.op == m.op && t.kind == m.kind)
                    .count()
            });
            assert!(
                (inl > 0) != (calls > 0),
                "[{tag}] line {line} ({:?} {:?}): {inl} inlined sites, {calls} calls",
                m.kind,
                m.op
            );
        }
        for (&line, ts) in &call_lines {
            let m = marks_src
                .get(&line)
                .unwrap_or_else(|| panic!("[{tag}] call on unmarked line {line}"));
            for t in ts {
                assert_eq!(
                    (t.op, t.kind),
                    (m.op, m.kind),
                    "[{tag}] call at line {line}"
                );
            }
        }

        // Lock: source call sites == sites found == CAS fast paths.
        let lock_src: BTreeSet<u32> = marks_src
            .iter()
            .filter(|(_, m)| m.tag == Tag::Op && m.op == LockOp::Lock && m.kind == MutexKind::Mutex)
            .map(|(l, _)| *l)
            .collect();
        let lock_sites: Vec<&LockSite> = res
            .sites
            .iter()
            .filter(|s| {
                s.op == LockOp::Lock
                    && s.kind == MutexKind::Mutex
                    && s.inlined
                    && in_main(s.probe_vaddr)
            })
            .collect();
        let lock_site_addrs: BTreeSet<u64> = lock_sites.iter().map(|s| s.probe_vaddr).collect();
        let mut covered: BTreeSet<u32> = lock_sites.iter().map(|s| s.line).collect();
        covered.extend(
            call_lines
                .iter()
                .filter(|(_, ts)| {
                    ts.iter()
                        .any(|t| t.op == LockOp::Lock && t.kind == MutexKind::Mutex)
                })
                .map(|(l, _)| *l),
        );
        assert_eq!(covered, lock_src, "[{tag}] Lock call lines");
        assert_eq!(
            lock_site_addrs, fast_paths,
            "[{tag}] Lock sites vs CAS fast paths in main.*"
        );
        sum.lock_sites_in_fixture = lock_sites.len();
        sum.lock_fast_paths = fast_paths.len();
        sum.lock_source_lines = lock_src.len();
        if noinline {
            assert!(fast_paths.is_empty());
        } else {
            assert!(!fast_paths.is_empty());
        }

        // Every atomic in the fixture's code is the anchor of a site, and
        // every site there is anchored on an atomic.
        let anchors: BTreeSet<u64> = res
            .sites
            .iter()
            .filter(|s| in_main(s.probe_vaddr))
            .map(|s| {
                let hit = locked.iter().find(|(ip, next)| {
                    if s.outcome == Outcome::IfZf {
                        *next == s.probe_vaddr
                    } else {
                        *ip == s.probe_vaddr
                    }
                });
                hit.unwrap_or_else(|| panic!("[{tag}] site not on an atomic: {s:?}"))
                    .0
            })
            .collect();
        let locked_ips: BTreeSet<u64> = locked.iter().map(|x| x.0).collect();
        assert_eq!(
            anchors, locked_ips,
            "[{tag}] atomics in main.* vs site anchors"
        );

        // Dynamic check.
        if !gdb_usable() {
            eprintln!("[{tag}] SKIPPED dynamic check: gdb with python not available");
        } else {
            let (hits, marks) = run_under_gdb(&built, &res.sites);
            assert!(!marks.is_empty(), "[{tag}] fixture printed no marks");
            sum.marks = marks.len();
            sum.hits = hits.len();
            let mut marks_by_line: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            for (l, a) in &marks {
                marks_by_line.entry(*l).or_default().push(*a);
            }
            let all_marked: BTreeSet<u64> = marks.iter().map(|m| m.1).collect();
            let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            let mut unknown_lines = BTreeSet::new();
            for h in &hits {
                let site = by_probe
                    .get(&h.pc)
                    .unwrap_or_else(|| panic!("[{tag}] hit at {:#x}: not a site", h.pc));
                let value = h.regs[reg_slot(site.reg)];
                let addr = site.mutex_addr(value);
                let zf = h.regs[17] & EFLAGS_ZF != 0;
                let ignored =
                    !site.inlined && site.ignore_return_addrs.binary_search(&h.rsp_word).is_ok();
                let line = h.frames.iter().find(|f| f.1 == built.source).map(|f| f.2);
                if ignored {
                    sum.ignored += 1;
                    let caller = h.frames.get(1).map_or("", |f| f.0.as_str());
                    assert!(
                        caller.starts_with("sync.") || caller.starts_with("internal/sync."),
                        "[{tag}] ignored a hit not called from sync: {:?}",
                        h.frames
                    );
                    continue;
                }
                let counted = match site.outcome {
                    Outcome::Performed | Outcome::Unknown => true,
                    Outcome::IfZf => zf,
                };
                let Some(line) = line else { continue };
                if let Some(m) = marks_src.get(&line) {
                    assert_eq!(
                        (m.op, m.kind),
                        (site.op, site.kind),
                        "[{tag}] hit at {:#x} attributed to line {line}: {:?}",
                        h.pc,
                        h.frames
                    );
                    if !counted {
                        assert!(m.op.is_try(), "[{tag}] {site:?}");
                        continue;
                    }
                    if site.outcome == Outcome::Unknown {
                        unknown_lines.insert(line);
                    }
                    sum.counted += 1;
                    got.entry(line).or_default().push(addr);
                } else if waits.contains(&line) {
                    assert_eq!(site.kind, MutexKind::Mutex);
                    assert!(
                        all_marked.contains(&addr),
                        "[{tag}] Cond.Wait on unknown mutex {addr:#x}"
                    );
                    sum.counted += 1;
                } else {
                    panic!(
                        "[{tag}] hit at {:#x} from unmarked line {line}: {:?}",
                        h.pc, h.frames
                    );
                }
            }
            for (&line, m) in &marks_src {
                let mut want = marks_by_line.get(&line).cloned().unwrap_or_default();
                let mut have = got.get(&line).cloned().unwrap_or_default();
                if m.ok == Some(false) && !unknown_lines.contains(&line) {
                    want.clear();
                }
                want.sort_unstable();
                have.sort_unstable();
                assert!(
                    marks_by_line.get(&line).is_some_and(|v| !v.is_empty()),
                    "[{tag}] line {line} never ran"
                );
                assert_eq!(
                    have, want,
                    "[{tag}] line {line} {:?} {:?}: mutex addresses seen vs printed",
                    m.kind, m.op
                );
            }
        }
        eprintln!("[{tag}] {sum:?}");
        if std::env::var_os("LOCKSITES_KEEP_FIXTURE").is_none() {
            let _ = std::fs::remove_dir_all(&built.dir);
        }
    }

    fn run(go: Option<PathBuf>, what: &str, tag: &str, gcflags: Option<&str>) {
        match go {
            Some(g) if g.exists() => check(&g, tag, gcflags),
            _ => eprintln!("[{tag}] SKIPPED: no {what} toolchain"),
        }
    }

    #[test]
    fn go126_inlined() {
        run(go126(), "Go 1.26 (TRACER_GO)", "go126", None);
    }

    #[test]
    fn go126_noinline_main() {
        run(go126(), "Go 1.26 (TRACER_GO)", "go126-l", Some("-l"));
    }

    #[test]
    fn go126_noinline_all() {
        run(
            go126(),
            "Go 1.26 (TRACER_GO)",
            "go126-all-l",
            Some("all=-N -l"),
        );
    }

    #[test]
    fn go121_inlined() {
        run(go121(), "Go 1.21 (TRACER_GO121)", "go121", None);
    }

    #[test]
    fn go121_noinline_main() {
        run(go121(), "Go 1.21 (TRACER_GO121)", "go121-l", Some("-l"));
    }

    #[test]
    fn go121_noinline_all() {
        run(
            go121(),
            "Go 1.21 (TRACER_GO121)",
            "go121-all-l",
            Some("all=-N -l"),
        );
    }

    #[test]
    fn package_names() {
        assert_eq!(package_of("internal/sync.(*Mutex).Lock"), "internal/sync");
        assert_eq!(package_of("sync.(*Mutex).Lock"), "sync");
        assert_eq!(package_of("main.f[go.shape.*a/b.T]"), "main");
        assert_eq!(package_of("sync.OnceValue[go.shape.int].func1"), "sync");
        assert_eq!(package_of("net/http.(*Server).Close"), "net/http");
        assert_eq!(classify("sync.(*Mutex).Lock-fm"), Class::Wrapper);
        assert_eq!(classify("sync.(*Once).doSlow"), Class::SyncImpl);
        assert_eq!(classify("syncx.Foo"), Class::Other);
    }

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

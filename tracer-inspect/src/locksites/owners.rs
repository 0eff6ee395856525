//! Which field of which type a lock site's mutex is (`main.Account.mu`), so
//! that lock classes can be keyed as lockdep keys them, by the lock's kind
//! rather than by where it was taken. Classes by site miss the classic bug:
//! `debit` locks an Account then a Ledger, `audit` elsewhere a Ledger then an
//! Account, on other objects: four sites and no cycle among them.
//!
//! At a site, the mutex is `reg + adjust`. Walking the function's machine
//! code back from the probe to where that register got its value (register
//! moves, spill slots, `LEA` field offsets, one pointer load) reaches a point
//! where a variable's DWARF location is that value; the variable's type and
//! the offset name the field. A site whose walk finds no typed variable (a
//! mutex passed by pointer, a global, a binary without DWARF) has no owner
//! and keeps its site as its class.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use gimli::{AttributeValue, DebugInfoOffset, Operation, UnitOffset};
use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind};
use iced_x86::{MemorySize, Register};

use super::text::TextMap;
use super::units::{attr_u64, ref_to_global, Rd, Unit, Units};
use super::LockSiteScan;
use crate::pclntab::Pclntab;

/// Instructions walked back from one site before giving up.
const MAX_STEPS: usize = 400;
/// Pointer loads followed (`a.acct.mu`: one).
const MAX_DEREFS: u32 = 2;

/// Fills `class` on every site and user call whose mutex's owner is found.
/// Best effort: where the DWARF cannot be read, sites keep their own classes,
/// as in a binary without DWARF (the report's classes say which they got).
pub(super) fn name_owners<'a>(
    scan: &mut LockSiteScan,
    dwarf: &gimli::Dwarf<Rd<'a>>,
    units: &Units<'a>,
    text: &TextMap<'_>,
    tab: &Pclntab<'_>,
) {
    let _ = try_name_owners(scan, dwarf, units, text, tab);
}

fn try_name_owners<'a>(
    scan: &mut LockSiteScan,
    dwarf: &gimli::Dwarf<Rd<'a>>,
    units: &Units<'a>,
    text: &TextMap<'_>,
    tab: &Pclntab<'_>,
) -> Result<(), gimli::Error> {
    // (pc, register, offset) of each question, and where its answer goes.
    let mut queries: Vec<(u64, Register, i64)> = Vec::new();
    for s in &scan.sites {
        if s.inlined {
            queries.push((s.probe_vaddr, s.reg.to_iced(), s.adjust));
        }
        for c in &s.callers {
            // The receiver is in RAX at the call (Go's register ABI).
            queries.push((c.return_addr.saturating_sub(5), Register::RAX, 0));
        }
    }
    let mut funcs: HashMap<u64, u64> = HashMap::new();
    for &(pc, _, _) in &queries {
        if let Some(f) = tab.func_at(pc) {
            funcs.insert(f.entry, f.end);
        }
    }
    let mut db = Db::new(dwarf, units);
    let vars = db.collect_vars(&funcs.keys().copied().collect())?;
    let mut bodies: HashMap<u64, Body> = HashMap::new();
    let mut answers: HashMap<(u64, Register, i64), Option<String>> = HashMap::new();
    for q in queries {
        if answers.contains_key(&q) {
            continue;
        }
        let (pc, reg, off) = q;
        let answer = tab.func_at(pc).and_then(|f| {
            let body = bodies
                .entry(f.entry)
                .or_insert_with(|| Body::new(text, tab, f.entry, f.end));
            let vars = vars.get(&f.entry).map(Vec::as_slice).unwrap_or(&[]);
            let start = body.index_of(pc)?;
            let mut w = Walk {
                db: &mut db,
                body,
                vars,
            };
            let (ty, off) = w.owner(start, Val::Reg(reg), off, 0)?;
            let field = db.lock_field(ty, u64::try_from(off).ok()?, 0)?;
            Some(format!("{}.{}", field.owner?, field.path))
        });
        answers.insert(q, answer);
    }
    for s in &mut scan.sites {
        if s.inlined {
            s.class = answers
                .get(&(s.probe_vaddr, s.reg.to_iced(), s.adjust))
                .cloned()
                .flatten();
        }
        for c in &mut s.callers {
            c.class = answers
                .get(&(c.return_addr.saturating_sub(5), Register::RAX, 0))
                .cloned()
                .flatten();
        }
    }
    Ok(())
}

/// A generic type's name with its type arguments elided, as Go's tracebacks
/// print them: `unique.indirect[...]`.
fn short_type(name: &str) -> String {
    match name.find('[') {
        Some(i) => format!("{}[...]", &name[..i]),
        None => name.to_string(),
    }
}

/// DWARF's x86-64 register numbers.
fn dwarf_register(n: u16) -> Option<Register> {
    use Register::*;
    [
        RAX, RDX, RCX, RBX, RSI, RDI, RBP, RSP, R8, R9, R10, R11, R12, R13, R14, R15,
    ]
    .get(usize::from(n))
    .copied()
}

/// Where a variable lives: a register, or the frame at an offset from its
/// canonical frame address (Go's frame base is `DW_OP_call_frame_cfa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Reg(Register),
    Cfa(i64),
}

/// `[lo, hi)` PC ranges and where the variable is over each.
type Locs = Vec<(u64, u64, Loc)>;

#[derive(Debug, Clone)]
struct Var {
    ty: DebugInfoOffset,
    locs: Locs,
}

/// What the walk follows: the value that, plus the offset, is the mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Reg(Register),
    /// The word in the frame at CFA + n.
    Slot(i64),
    /// The address CFA + n (a struct kept in the frame).
    SlotAddr(i64),
}

#[derive(Debug)]
enum Ty {
    Ptr(Option<DebugInfoOffset>),
    Struct {
        name: String,
        size: u64,
        members: Vec<Member>,
    },
    Array {
        elem: DebugInfoOffset,
        size: u64,
        count: u64,
    },
    Other {
        size: u64,
    },
}

/// A mutex's place: the named struct that declares it, and the path from
/// there (`mu`, `state.mu`, `shards[]`).
struct Field {
    owner: Option<String>,
    path: String,
}

#[derive(Debug)]
struct Member {
    name: String,
    off: u64,
    ty: DebugInfoOffset,
}

/// The DWARF's units (the scan's), with the types and abstract origins read
/// so far.
struct Db<'a, 'd> {
    dwarf: &'d gimli::Dwarf<Rd<'a>>,
    units: &'d Units<'a>,
    types: HashMap<u64, Option<Rc<Ty>>>,
    origin_types: HashMap<u64, Option<DebugInfoOffset>>,
}

/// A constant attribute, if the DIE has it.
fn number(v: Option<AttributeValue<Rd<'_>>>) -> Option<u64> {
    attr_u64(&v?)
}

impl<'a, 'd> Db<'a, 'd> {
    fn new(dwarf: &'d gimli::Dwarf<Rd<'a>>, units: &'d Units<'a>) -> Self {
        Db {
            dwarf,
            units,
            types: HashMap::new(),
            origin_types: HashMap::new(),
        }
    }

    fn unit_of(&self, off: DebugInfoOffset) -> Option<(&'d Unit<'a>, UnitOffset)> {
        self.units.unit_of(off)
    }

    /// The parameters and variables of each function at `entries`, inlined
    /// callees' included, with their locations.
    fn collect_vars(
        &mut self,
        entries: &HashSet<u64>,
    ) -> Result<HashMap<u64, Vec<Var>>, gimli::Error> {
        let mut out: HashMap<u64, Vec<Var>> = HashMap::new();
        if entries.is_empty() {
            return Ok(out);
        }
        // (function, abstract origin, locations) of variables typed by their origin.
        let mut pending: Vec<(u64, DebugInfoOffset, Locs)> = Vec::new();
        for u in self.units.iter() {
            let unit = &u.unit;
            let mut wanted = false;
            let mut ranges = self.dwarf.unit_ranges(unit)?;
            while let Some(r) = ranges.next()? {
                if entries.iter().any(|&e| r.begin <= e && e < r.end) {
                    wanted = true;
                    break;
                }
            }
            if !wanted {
                continue;
            }
            let mut cursor = unit.entries();
            let mut depth = 0isize;
            let mut current: Option<(isize, u64)> = None;
            while let Some((delta, entry)) = cursor.next_dfs()? {
                depth += delta;
                if current.is_some_and(|(d, _)| depth <= d) {
                    current = None;
                }
                match entry.tag() {
                    gimli::DW_TAG_subprogram if current.is_none() => {
                        if let Some(v) = entry.attr_value(gimli::DW_AT_low_pc)? {
                            if let Some(low) = self.dwarf.attr_address(unit, v)? {
                                if entries.contains(&low) {
                                    current = Some((depth, low));
                                }
                            }
                        }
                    }
                    gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                        let Some((_, func)) = current else {
                            continue;
                        };
                        let Some(loc) = entry.attr_value(gimli::DW_AT_location)? else {
                            continue;
                        };
                        let locs = locations(self.dwarf, unit, loc)?;
                        if locs.is_empty() {
                            continue;
                        }
                        let ty = match entry.attr_value(gimli::DW_AT_type)? {
                            Some(v) => ref_to_global(unit, v),
                            None => None,
                        };
                        let origin = match entry.attr_value(gimli::DW_AT_abstract_origin)? {
                            Some(v) => ref_to_global(unit, v),
                            None => None,
                        };
                        match (ty, origin) {
                            (Some(t), _) => out.entry(func).or_default().push(Var { ty: t, locs }),
                            (None, Some(o)) => pending.push((func, o, locs)),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        for (func, origin, locs) in pending {
            if let Some(ty) = self.origin_type(origin) {
                out.entry(func).or_default().push(Var { ty, locs });
            }
        }
        Ok(out)
    }

    fn origin_type(&mut self, origin: DebugInfoOffset) -> Option<DebugInfoOffset> {
        if let Some(t) = self.origin_types.get(&(origin.0 as u64)) {
            return *t;
        }
        let t = (|| {
            let (unit, uoff) = self.unit_of(origin)?;
            let e = unit.entry(uoff).ok()?;
            ref_to_global(unit, e.attr_value(gimli::DW_AT_type).ok()??)
        })();
        self.origin_types.insert(origin.0 as u64, t);
        t
    }

    fn ty(&mut self, off: DebugInfoOffset) -> Option<Rc<Ty>> {
        if let Some(t) = self.types.get(&(off.0 as u64)) {
            return t.clone();
        }
        let t = self.read_type(off, 0).map(Rc::new);
        self.types.insert(off.0 as u64, t.clone());
        t
    }

    fn read_type(&self, off: DebugInfoOffset, hops: u32) -> Option<Ty> {
        let (unit, uoff) = self.unit_of(off)?;
        let mut cursor = unit.entries_at_offset(uoff).ok()?;
        let (_, e) = cursor.next_dfs().ok()??;
        let target = e
            .attr_value(gimli::DW_AT_type)
            .ok()
            .flatten()
            .and_then(|v| ref_to_global(unit, v));
        let size = number(e.attr_value(gimli::DW_AT_byte_size).ok().flatten()).unwrap_or(0);
        match e.tag() {
            gimli::DW_TAG_pointer_type => Some(Ty::Ptr(target)),
            gimli::DW_TAG_typedef if hops < 4 => self.read_type(target?, hops + 1),
            gimli::DW_TAG_structure_type => {
                let name = e
                    .attr_value(gimli::DW_AT_name)
                    .ok()
                    .flatten()
                    .and_then(|v| self.dwarf.attr_string(unit, v).ok())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut members = Vec::new();
                let mut depth = 0isize;
                while let Some((delta, m)) = cursor.next_dfs().ok()? {
                    depth += delta;
                    if depth <= 0 {
                        break;
                    }
                    if depth != 1 || m.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    let mname = m
                        .attr_value(gimli::DW_AT_name)
                        .ok()
                        .flatten()
                        .and_then(|v| self.dwarf.attr_string(unit, v).ok())
                        .map(|s| s.to_string_lossy().into_owned());
                    let moff = number(
                        m.attr_value(gimli::DW_AT_data_member_location)
                            .ok()
                            .flatten(),
                    );
                    let mty = m
                        .attr_value(gimli::DW_AT_type)
                        .ok()
                        .flatten()
                        .and_then(|v| ref_to_global(unit, v));
                    if let (Some(name), Some(off), Some(ty)) = (mname, moff, mty) {
                        members.push(Member { name, off, ty });
                    }
                }
                Some(Ty::Struct {
                    name,
                    size,
                    members,
                })
            }
            gimli::DW_TAG_array_type => {
                let mut count = number(e.attr_value(gimli::DW_AT_count).ok().flatten());
                if let Ok(Some((1, sub))) = cursor.next_dfs() {
                    if sub.tag() == gimli::DW_TAG_subrange_type {
                        count = count
                            .or_else(|| number(sub.attr_value(gimli::DW_AT_count).ok().flatten()))
                            .or_else(|| {
                                number(sub.attr_value(gimli::DW_AT_upper_bound).ok().flatten())
                                    .map(|u| u + 1)
                            });
                    }
                }
                Some(Ty::Array {
                    elem: target?,
                    size,
                    count: count?,
                })
            }
            _ => Some(Ty::Other { size }),
        }
    }

    fn size(&mut self, off: DebugInfoOffset) -> u64 {
        match self.ty(off).as_deref() {
            Some(Ty::Ptr(_)) => 8,
            Some(Ty::Struct { size, .. } | Ty::Array { size, .. } | Ty::Other { size }) => *size,
            None => 0,
        }
    }

    fn type_name(&mut self, off: DebugInfoOffset) -> Option<String> {
        match self.ty(off).as_deref() {
            Some(Ty::Struct { name, .. }) if !name.is_empty() => Some(name.clone()),
            _ => None,
        }
    }

    fn is_lock(&mut self, off: DebugInfoOffset) -> bool {
        matches!(self.ty(off).as_deref(), Some(Ty::Struct { name, .. })
            if name == "sync.Mutex" || name == "sync.RWMutex")
    }

    /// The mutex that starts at byte `at` of type `off`, named by the
    /// innermost named struct that declares it and the path from there:
    /// `crypto/tls.halfConn.Mutex` for `Conn.out`'s embedded mutex, so that one
    /// field is one class however it is reached; `main.Pool.shards[]` for an
    /// array of them.
    fn lock_field(&mut self, off: DebugInfoOffset, at: u64, depth: u32) -> Option<Field> {
        // A mutex is no owner: a local `sync.RWMutex` would otherwise name its
        // inner `w`, and every such local would be one class.
        if depth > 8 || (depth == 0 && self.is_lock(off)) {
            return None;
        }
        let t = self.ty(off)?;
        let rest = match &*t {
            Ty::Struct { members, .. } => {
                let mut found = None;
                for m in members {
                    let size = self.size(m.ty);
                    if at < m.off || at >= m.off + size {
                        continue;
                    }
                    if at == m.off && self.is_lock(m.ty) {
                        found = Some(m.name.clone());
                    } else {
                        let inner = self.lock_field(m.ty, at - m.off, depth + 1)?;
                        if inner.owner.is_some() {
                            return Some(inner);
                        }
                        let sep = if inner.path.starts_with('[') { "" } else { "." };
                        found = Some(format!("{}{sep}{}", m.name, inner.path));
                    }
                    break;
                }
                found?
            }
            Ty::Array { elem, size, count } => {
                let stride = size.checked_div(*count)?;
                let within = at.checked_rem(stride)?;
                if within == 0 && self.is_lock(*elem) {
                    "[]".to_string()
                } else {
                    let inner = self.lock_field(*elem, within, depth + 1)?;
                    if inner.owner.is_some() {
                        return Some(inner);
                    }
                    format!("[].{}", inner.path)
                }
            }
            _ => return None,
        };
        Some(Field {
            owner: self
                .type_name(off)
                .filter(|n| !n.starts_with("struct {"))
                .map(|n| short_type(&n)),
            path: rest,
        })
    }

    /// The type that `ty` points to, when it is a pointer to a named struct
    /// that is not itself a mutex.
    fn pointee_struct(&mut self, ty: DebugInfoOffset) -> Option<DebugInfoOffset> {
        let Ty::Ptr(Some(t)) = *self.ty(ty)? else {
            return None;
        };
        (self.type_name(t).is_some() && !self.is_lock(t)).then_some(t)
    }

    /// The type of the member of struct `ty` at exactly byte `at`, through
    /// nested structs.
    fn member_type_at(&mut self, ty: DebugInfoOffset, at: u64) -> Option<DebugInfoOffset> {
        let t = self.ty(ty)?;
        let Ty::Struct { members, .. } = &*t else {
            return None;
        };
        for m in members {
            let size = self.size(m.ty);
            if at == m.off && matches!(self.ty(m.ty).as_deref(), Some(Ty::Ptr(_))) {
                return Some(m.ty);
            }
            if at >= m.off && at < m.off + size {
                return self.member_type_at(m.ty, at - m.off);
            }
        }
        None
    }
}

/// A variable's locations, from an expression or a location list; pieces
/// and computed locations are left out (a pointer is one register or slot).
fn locations(
    dwarf: &gimli::Dwarf<Rd<'_>>,
    unit: &Unit<'_>,
    v: AttributeValue<Rd<'_>>,
) -> Result<Locs, gimli::Error> {
    let mut out = Vec::new();
    let single = |e: gimli::Expression<Rd<'_>>| -> Option<Loc> {
        let mut ops = e.operations(unit.encoding());
        let loc = match ops.next().ok()?? {
            Operation::Register { register } => Loc::Reg(dwarf_register(register.0)?),
            Operation::FrameOffset { offset } => Loc::Cfa(offset),
            Operation::CallFrameCFA => Loc::Cfa(0),
            _ => return None,
        };
        ops.next().ok()?.is_none().then_some(loc)
    };
    if let AttributeValue::Exprloc(e) = v {
        if let Some(l) = single(e) {
            out.push((0, u64::MAX, l));
        }
        return Ok(out);
    }
    if let Some(mut list) = dwarf.attr_locations(unit, v)? {
        while let Some(entry) = list.next()? {
            if let Some(l) = single(entry.data) {
                out.push((entry.range.begin, entry.range.end, l));
            }
        }
    }
    Ok(out)
}

/// One function's instructions, and where branches lead.
struct Body {
    insns: Vec<Instruction>,
    /// Branch target -> indexes of the branches to it.
    sources: HashMap<u64, Vec<usize>>,
    /// Stack pointer's distance below the entry's, per instruction.
    sp: Vec<Option<i32>>,
}

impl Body {
    fn new(text: &TextMap<'_>, tab: &Pclntab<'_>, entry: u64, end: u64) -> Self {
        let mut insns = Vec::new();
        if !text.decode(entry, end, &mut insns) {
            insns.clear();
        }
        let mut sources: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, ins) in insns.iter().enumerate() {
            if matches!(
                ins.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            ) && ins.op0_kind() == OpKind::NearBranch64
            {
                sources.entry(ins.near_branch_target()).or_default().push(i);
            }
        }
        let sp = insns.iter().map(|i| tab.sp_delta(i.ip())).collect();
        Body { insns, sources, sp }
    }

    fn index_of(&self, pc: u64) -> Option<usize> {
        self.insns.binary_search_by_key(&pc, |i| i.ip()).ok()
    }

    /// The instruction executed before `i`: the one above it if it falls
    /// through, else a branch to `i`.
    fn pred(&self, i: usize) -> Option<usize> {
        let here = self.insns.get(i)?.ip();
        if let Some(prev) = i.checked_sub(1).and_then(|p| self.insns.get(p)) {
            let falls = !matches!(
                prev.flow_control(),
                FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
                    | FlowControl::Return
                    | FlowControl::Exception
                    | FlowControl::Interrupt
            ) && prev.mnemonic() != Mnemonic::Ud2;
            if falls {
                return Some(i - 1);
            }
        }
        self.sources.get(&here)?.first().copied()
    }

    /// CFA-relative offset of `[rsp + disp]` at instruction `i`.
    fn cfa_offset(&self, i: usize, disp: i64) -> Option<i64> {
        let sp = i64::from((*self.sp.get(i)?)?);
        Some(disp - 8 - sp)
    }
}

/// What an instruction, run backwards, does to the followed value.
enum Step {
    Keep,
    To(Val, i64),
    /// The value was loaded from `[reg + disp]`: a pointer field.
    Load(Register, i64),
    Lost,
}

struct Walk<'w, 'a, 'd> {
    db: &'w mut Db<'a, 'd>,
    body: &'w Body,
    vars: &'w [Var],
}

impl Walk<'_, '_, '_> {
    /// The struct type and byte offset of the object that `val + off`, just
    /// before instruction `start`, points into.
    fn owner(
        &mut self,
        start: usize,
        mut val: Val,
        mut off: i64,
        derefs: u32,
    ) -> Option<(DebugInfoOffset, i64)> {
        let mut i = start;
        let mut seen = HashSet::new();
        let mut factory = InstructionInfoFactory::new();
        for _ in 0..MAX_STEPS {
            if !seen.insert(i) {
                return None;
            }
            let pc = self.body.insns[i].ip();
            if let Some(found) = self.typed(pc, val, off) {
                return Some(found);
            }
            let p = self.body.pred(i)?;
            match self.back(p, val, &mut factory) {
                Step::Keep => {}
                Step::To(v, delta) => {
                    val = v;
                    off = off.checked_add(delta)?;
                }
                Step::Load(base, disp) => {
                    if derefs >= MAX_DEREFS {
                        return None;
                    }
                    // The pointer came from a field of another object: its
                    // type there is a pointer to the owner.
                    let (outer, at) = self.owner(p, Val::Reg(base), disp, derefs + 1)?;
                    let field = self.db.member_type_at(outer, u64::try_from(at).ok()?)?;
                    let owner = self.db.pointee_struct(field)?;
                    return Some((owner, off));
                }
                Step::Lost => return None,
            }
            i = p;
        }
        None
    }

    /// A variable that holds `val` at `pc`, typed as a pointer to (or, in
    /// the frame, as) a struct with something at `off`.
    fn typed(&mut self, pc: u64, val: Val, off: i64) -> Option<(DebugInfoOffset, i64)> {
        for v in self.vars {
            let Some(&(_, _, loc)) = v.locs.iter().find(|(lo, hi, _)| *lo <= pc && pc < *hi) else {
                continue;
            };
            match (val, loc) {
                (Val::Reg(r), Loc::Reg(l)) if r == l => {}
                (Val::Slot(s), Loc::Cfa(c)) if s == c => {}
                (Val::SlotAddr(a), Loc::Cfa(c)) => {
                    let at = a.checked_add(off)?.checked_sub(c)?;
                    let size = self.db.size(v.ty) as i64;
                    if at >= 0 && at < size && self.db.type_name(v.ty).is_some() {
                        return Some((v.ty, at));
                    }
                    continue;
                }
                _ => continue,
            }
            if let Some(owner) = self.db.pointee_struct(v.ty) {
                return Some((owner, off));
            }
        }
        None
    }

    fn back(&self, p: usize, val: Val, factory: &mut InstructionInfoFactory) -> Step {
        let ins = &self.body.insns[p];
        match val {
            Val::SlotAddr(_) => Step::Keep,
            Val::Reg(r) => {
                if ins.flow_control() == FlowControl::Call {
                    return Step::Lost;
                }
                let writes = factory.info(ins).used_registers().iter().any(|u| {
                    u.register().full_register() == r
                        && !matches!(u.access(), OpAccess::Read | OpAccess::CondRead)
                });
                if !writes {
                    return Step::Keep;
                }
                if ins.op0_kind() != OpKind::Register || ins.op0_register() != r {
                    return Step::Lost;
                }
                match (ins.mnemonic(), ins.op1_kind()) {
                    (Mnemonic::Mov, OpKind::Register) if ins.op1_register().size() == 8 => {
                        Step::To(Val::Reg(ins.op1_register()), 0)
                    }
                    (Mnemonic::Mov, OpKind::Memory)
                        if ins.memory_size() == MemorySize::UInt64
                            && ins.memory_index() == Register::None =>
                    {
                        let disp = ins.memory_displacement64() as i64;
                        match ins.memory_base() {
                            Register::RSP => match self.body.cfa_offset(p, disp) {
                                Some(c) => Step::To(Val::Slot(c), 0),
                                None => Step::Lost,
                            },
                            Register::RIP | Register::None => Step::Lost,
                            base => Step::Load(base, disp),
                        }
                    }
                    (Mnemonic::Lea, OpKind::Memory) if ins.memory_index() == Register::None => {
                        let disp = ins.memory_displacement64() as i64;
                        match ins.memory_base() {
                            Register::RSP => match self.body.cfa_offset(p, disp) {
                                Some(c) => Step::To(Val::SlotAddr(c), 0),
                                None => Step::Lost,
                            },
                            Register::RIP | Register::None => Step::Lost,
                            base => Step::To(Val::Reg(base), disp),
                        }
                    }
                    (Mnemonic::Add, OpKind::Immediate8to64 | OpKind::Immediate32to64) => {
                        Step::To(val, ins.immediate64() as i64)
                    }
                    _ => Step::Lost,
                }
            }
            Val::Slot(c) => {
                let stores_here = factory.info(ins).used_memory().iter().any(|m| {
                    m.base() == Register::RSP
                        && m.index() == Register::None
                        && !matches!(m.access(), OpAccess::Read | OpAccess::CondRead)
                        && self
                            .body
                            .cfa_offset(p, m.displacement() as i64)
                            .is_some_and(|o| o == c)
                });
                if !stores_here {
                    return Step::Keep;
                }
                if ins.mnemonic() == Mnemonic::Mov
                    && ins.op1_kind() == OpKind::Register
                    && ins.op1_register().size() == 8
                {
                    Step::To(Val::Reg(ins.op1_register()), 0)
                } else {
                    Step::Lost
                }
            }
        }
    }
}

//! The one pass over the DWARF: every inlined copy of a lock method written
//! outside `sync` ([`RawSite`]), every out-of-line lock method ([`OolFunc`]),
//! the code that belongs to `sync` itself, and the field offsets of the mutex
//! types ([`Layout`]).  It never reads machine code: what the DWARF says
//! about a range is kept apart from what the instructions in it do (that is
//! `anchor`'s), so a DWARF quirk and a code-generation quirk are handled in
//! different places.  Turning the findings into sites is `resolve`'s
//! (`Walker::finish`), which keeps this module free of any use of `anchor`.

use std::collections::HashMap;
use std::rc::Rc;

use gimli::DebugInfoOffset;

use super::classify::{classify, Class};
use super::findings::{Findings, Layout, OolFunc, RawSite};
use super::units::{attr_u64, ref_to_global, Rd, Unit, UnitInfo, Units};

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum StructOfInterest {
    SyncMutex,
    InternalMutex,
    RwMutex,
    AtomicInt32,
}

pub(super) struct Walker<'a, 'd> {
    dwarf: &'d gimli::Dwarf<Rd<'a>>,
    units: Rc<Units<'a>>,
    origins: HashMap<u64, Rc<OriginInfo>>,
    files: HashMap<usize, Rc<Vec<String>>>,
    pub(super) sites: Vec<RawSite>,
    pub(super) ool: Vec<OolFunc>,
    /// Every out-of-line lock method (public and internal) by entry address.
    pub(super) target_funcs: HashMap<u64, super::classify::Target>,
    /// Code that belongs to package sync / internal/sync.
    pub(super) sync_scopes: Vec<(u64, u64)>,
    pub(super) layout: Layout,
}

impl<'a, 'd> Walker<'a, 'd> {
    pub(super) fn new(dwarf: &'d gimli::Dwarf<Rd<'a>>, units: Rc<Units<'a>>) -> Self {
        Walker {
            dwarf,
            units,
            origins: HashMap::new(),
            files: HashMap::new(),
            sites: Vec::new(),
            ool: Vec::new(),
            target_funcs: HashMap::new(),
            sync_scopes: Vec::new(),
            layout: Layout::default(),
        }
    }

    fn unit_index_of(&self, off: DebugInfoOffset) -> Option<usize> {
        self.units.index_of(off)
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

    pub(super) fn into_findings(self) -> Findings {
        Findings {
            sites: self.sites,
            ool: self.ool,
            target_funcs: self.target_funcs,
            sync_scopes: self.sync_scopes,
            layout: self.layout,
        }
    }

    pub(super) fn walk_all(&mut self) -> Result<(), gimli::Error> {
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

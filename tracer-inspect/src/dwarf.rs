//! DWARF of the target: loaded once (Go 1.26 compresses it), then used for struct
//! offsets here and for PC-to-line lookups in [`crate::lines`].
use crate::binary::Binary;
use crate::InspectError;
use gimli::Reader as _;
use gimli::{EndianRcSlice, LittleEndian};
use object::{Object as _, ObjectSection as _};
use std::collections::HashMap;
use std::rc::Rc;

pub type Reader = EndianRcSlice<LittleEndian>;
pub type Dwarf = gimli::Dwarf<Reader>;

/// Loads the DWARF sections, decompressing them. `None` when the binary has none
/// (built with `-ldflags=-w`).
pub fn load(bin: &Binary) -> Result<Option<Dwarf>, InspectError> {
    let obj = bin.object()?;
    if obj.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let err = |reason: String| InspectError::Dwarf {
        path: bin.path().to_path_buf(),
        reason,
    };
    let load = |id: gimli::SectionId| -> Result<Reader, InspectError> {
        let data = match obj.section_by_name(id.name()) {
            Some(sec) => sec
                .uncompressed_data()
                .map_err(|e| err(format!("{}: {e}", id.name())))?,
            None => std::borrow::Cow::Borrowed(&[][..]),
        };
        Ok(EndianRcSlice::new(Rc::from(&*data), LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load)?;
    // An externally linked cgo program built with -ldflags=-w keeps the DWARF
    // of its C objects: DWARF, but none of Go's.
    if !has_go_units(&dwarf) {
        return Ok(None);
    }
    Ok(Some(dwarf))
}

/// Whether any compile unit of `dwarf` is Go's (`DW_AT_language` Go).
pub fn has_go_units<R: gimli::Reader>(dwarf: &gimli::Dwarf<R>) -> bool {
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(abbrevs) = dwarf.abbreviations(&header) else {
            continue;
        };
        let mut entries = header.entries(&abbrevs);
        if let Ok(Some((_, root))) = entries.next_dfs() {
            if let Ok(Some(gimli::AttributeValue::Language(gimli::DW_LANG_Go))) =
                root.attr_value(gimli::DW_AT_language)
            {
                return true;
            }
        }
    }
    false
}

/// Struct-typed fields the tracer reads into, and their types: a field named
/// `sched.pc` is `sched`'s offset plus `pc`'s in `runtime.gobuf`.
const NESTED: &[(&str, &str)] = &[("sched", "runtime.gobuf"), ("stack", "runtime.stack")];

/// What `member_offsets` found.
#[derive(Debug, Default)]
pub struct MemberOffsets {
    /// `type.field` -> byte offset.
    pub offsets: HashMap<String, u64>,
    /// `type.field` names of types the binary has but without that field. Types
    /// it lacks altogether are not here: the program does not use them.
    pub missing: Vec<String>,
}

/// Byte offsets of the fields of the named struct types, for the fields asked for.
/// Nested fields are named with a dot (see `NESTED`).
/// Walks type DIEs only until every requested struct is found.
pub fn member_offsets(
    dwarf: &Dwarf,
    wanted: &[(&str, &[&str])],
) -> Result<MemberOffsets, gimli::Error> {
    // struct name -> (field name -> (offset, type offset))
    let mut structs: HashMap<String, HashMap<String, (u64, Option<gimli::UnitOffset>)>> =
        HashMap::new();
    let mut needed: Vec<String> = wanted.iter().map(|(s, _)| s.to_string()).collect();
    for (_, nested) in NESTED {
        if !needed.iter().any(|n| n == nested) {
            needed.push(nested.to_string());
        }
    }
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        if needed.iter().all(|n| structs.contains_key(n)) {
            break;
        }
        let unit = dwarf.unit(header)?;
        let mut entries = unit.entries();
        let mut current: Option<String> = None;
        let mut current_depth = 0isize;
        let mut depth = 0isize;
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth += delta;
            if current.is_some() && depth <= current_depth {
                current = None;
            }
            match entry.tag() {
                gimli::DW_TAG_structure_type => {
                    let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                        continue;
                    };
                    let name = dwarf.attr_string(&unit, name)?;
                    let name = name.to_string_lossy()?.into_owned();
                    if needed.contains(&name) && !structs.contains_key(&name) {
                        structs.insert(name.clone(), HashMap::new());
                        current = Some(name);
                        current_depth = depth;
                    }
                }
                gimli::DW_TAG_member if current.is_some() && depth == current_depth + 1 => {
                    let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                        continue;
                    };
                    let name = dwarf
                        .attr_string(&unit, name)?
                        .to_string_lossy()?
                        .into_owned();
                    let off = match entry.attr_value(gimli::DW_AT_data_member_location)? {
                        Some(gimli::AttributeValue::Udata(v)) => v,
                        Some(gimli::AttributeValue::Data1(v)) => v as u64,
                        Some(gimli::AttributeValue::Data2(v)) => v as u64,
                        Some(gimli::AttributeValue::Data4(v)) => v as u64,
                        Some(gimli::AttributeValue::Data8(v)) => v,
                        Some(gimli::AttributeValue::Sdata(v)) => v as u64,
                        _ => continue,
                    };
                    if let Some(s) = current.as_ref().and_then(|c| structs.get_mut(c)) {
                        s.insert(name, (off, None));
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = MemberOffsets::default();
    for (sname, fields) in wanted {
        let Some(members) = structs.get(*sname) else {
            // A type the program does not use has nothing to read.
            continue;
        };
        for field in *fields {
            let mut parts = field.split('.');
            let first = parts.next().unwrap_or_default();
            let Some(&(mut off, _)) = members.get(first) else {
                out.missing.push(format!("{sname}.{field}"));
                continue;
            };
            let nested = NESTED.iter().find(|(f, _)| *f == first).map(|(_, t)| *t);
            let mut ok = true;
            for part in parts {
                match nested
                    .and_then(|t| structs.get(t))
                    .and_then(|g| g.get(part))
                {
                    Some(&(o, _)) => off += o,
                    None => ok = false,
                }
            }
            let name = format!("{sname}.{field}");
            if ok {
                out.offsets.insert(name, off);
            } else {
                out.missing.push(name);
            }
        }
    }
    Ok(out)
}

/// Integer constants (`DW_TAG_constant` at the top level of a unit) whose names
/// start with `prefix`, e.g. `runtime._G` for the goroutine statuses. Walks every
/// unit: meant for the reference program of [`crate::layouts`], not for targets.
pub fn int_constants(
    dwarf: &Dwarf,
    prefix: &str,
) -> Result<std::collections::BTreeMap<String, i64>, gimli::Error> {
    let mut out = std::collections::BTreeMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut entries = unit.entries();
        let mut depth = 0isize;
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth += delta;
            if depth != 1 || entry.tag() != gimli::DW_TAG_constant {
                continue;
            }
            let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                continue;
            };
            let name = dwarf
                .attr_string(&unit, name)?
                .to_string_lossy()?
                .into_owned();
            if !name.starts_with(prefix) {
                continue;
            }
            let value = match entry.attr_value(gimli::DW_AT_const_value)? {
                Some(gimli::AttributeValue::Sdata(v)) => v,
                Some(gimli::AttributeValue::Udata(v)) => v as i64,
                Some(gimli::AttributeValue::Data1(v)) => v as i64,
                Some(gimli::AttributeValue::Data2(v)) => v as i64,
                Some(gimli::AttributeValue::Data4(v)) => v as i64,
                Some(gimli::AttributeValue::Data8(v)) => v as i64,
                _ => continue,
            };
            out.insert(name, value);
        }
    }
    Ok(out)
}

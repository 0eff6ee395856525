//! The DWARF's compilation units, parsed once per scan (each unit's
//! abbreviations and line program): the walk over the lock methods and the
//! naming of the mutexes' owners both look DIEs up by their global offset.

use gimli::UnitSectionOffset;
use gimli::{AttributeValue, DebugInfoOffset, EndianSlice, LittleEndian, UnitOffset};

pub(super) type Rd<'a> = EndianSlice<'a, LittleEndian>;
pub(super) type Unit<'a> = gimli::Unit<Rd<'a>>;

pub(super) struct UnitInfo<'a> {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) unit: Unit<'a>,
}

/// Every unit of `.debug_info`, in offset order.
pub(super) struct Units<'a>(Vec<UnitInfo<'a>>);

impl<'a> Units<'a> {
    pub(super) fn load(dwarf: &gimli::Dwarf<Rd<'a>>) -> Result<Self, gimli::Error> {
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
        Ok(Units(units))
    }

    /// Index of the unit holding the DIE at `off`.
    pub(super) fn index_of(&self, off: DebugInfoOffset) -> Option<usize> {
        let o = off.0 as u64;
        let i = self.0.partition_point(|u| u.start <= o);
        if i == 0 || o >= self.0[i - 1].end {
            return None;
        }
        Some(i - 1)
    }

    /// The unit holding the DIE at `off`, and the DIE's offset in it.
    pub(super) fn unit_of(&self, off: DebugInfoOffset) -> Option<(&Unit<'a>, UnitOffset)> {
        let unit = &self.0[self.index_of(off)?].unit;
        Some((unit, off.to_unit_offset(&unit.header)?))
    }
}

impl<'a> std::ops::Deref for Units<'a> {
    type Target = [UnitInfo<'a>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A reference attribute as a global offset.
pub(super) fn ref_to_global(unit: &Unit<'_>, v: AttributeValue<Rd<'_>>) -> Option<DebugInfoOffset> {
    match v {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header),
        AttributeValue::DebugInfoRef(o) => Some(o),
        _ => None,
    }
}

/// A constant attribute (sizes, offsets, lines, file indexes) as a number.
pub(super) fn attr_u64(v: &AttributeValue<Rd<'_>>) -> Option<u64> {
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

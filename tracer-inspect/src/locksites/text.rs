//! The binary's executable bytes (its text sections, by virtual address)
//! and helpers on address ranges.  It decodes on request but never decides
//! what an instruction means: that is `anchor`'s, so the same bytes serve the
//! anchor search, the stack-check skip and the scan for `sync`'s own calls.

use std::borrow::Cow;

use iced_x86::{Decoder, DecoderOptions, Instruction};
use object::{Object, ObjectSection, SectionKind};

pub(super) struct TextMap<'d> {
    secs: Vec<(u64, Cow<'d, [u8]>)>,
}

impl<'d> TextMap<'d> {
    pub(super) fn new(file: &object::File<'d>) -> Self {
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

    /// Each text section: its address and bytes.
    pub(super) fn sections(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.secs.iter().map(|(a, d)| (*a, d.as_ref()))
    }

    fn bytes(&self, lo: u64, hi: u64) -> Option<&[u8]> {
        for (a, d) in &self.secs {
            if lo >= *a && hi <= a + d.len() as u64 && lo <= hi {
                return Some(&d[(lo - a) as usize..(hi - a) as usize]);
            }
        }
        None
    }

    pub(super) fn decode(&self, lo: u64, hi: u64, out: &mut Vec<Instruction>) -> bool {
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
    pub(super) fn decode_ranges(&self, ranges: &[(u64, u64)]) -> Option<Vec<Instruction>> {
        let mut out = Vec::new();
        for &(lo, hi) in &merge_ranges(ranges) {
            if !self.decode(lo, hi, &mut out) {
                return None;
            }
        }
        Some(out)
    }
}

pub(super) fn merge_ranges(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
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

pub(super) fn in_ranges_sorted(merged: &[(u64, u64)], a: u64) -> bool {
    let i = merged.partition_point(|r| r.0 <= a);
    i > 0 && a < merged[i - 1].1
}

pub(super) fn in_ranges(ranges: &[(u64, u64)], a: u64) -> bool {
    ranges.iter().any(|&(lo, hi)| a >= lo && a < hi)
}

pub(super) fn fmt_ranges(r: &[(u64, u64)]) -> String {
    r.iter()
        .map(|(a, b)| format!("{a:#x}-{b:#x}"))
        .collect::<Vec<_>>()
        .join(",")
}

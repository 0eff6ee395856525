//! Names of Go types from their run-time descriptors (`internal/abi.Type`), as
//! `reflect` prints them: what a channel carries (`chan os.Signal`) tells a
//! goroutine waiting for a signal, idle by design, from one waiting for work.
//! Descriptors are immutable, so each is read once.
use std::collections::HashMap;
use std::sync::Arc;

use crate::memory::Memory;
use crate::target::TargetInfo;

/// `abi.TFlagExtraStar`: the stored name has a `*` prefix to drop (the
/// linker shares one string between `T` and `*T`).
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// Longer names are cut (a generic instantiation can run to kilobytes).
const MAX_NAME: usize = 256;

/// Type names read so far, by descriptor address.
#[derive(Debug, Default)]
pub struct TypeNames {
    names: HashMap<u64, Option<Arc<str>>>,
}

impl TypeNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The name of the type whose descriptor is at run-time address `typ`;
    /// None when the binary does not say where names are or the read fails.
    pub fn name(&mut self, target: &TargetInfo, mem: &Memory, typ: u64) -> Option<Arc<str>> {
        if typ == 0 {
            return None;
        }
        if let Some(n) = self.names.get(&typ) {
            return n.clone();
        }
        let n = read_name(target, mem, typ);
        // A failed read is not cached: the address may be good and the read torn.
        if n.is_some() {
            self.names.insert(typ, n.clone());
        }
        n
    }
}

fn read_name(target: &TargetInfo, mem: &Memory, typ: u64) -> Option<Arc<str>> {
    let tflag_off = target.offsets.get("internal/abi.Type.TFlag")?;
    let str_off = target.offsets.get("internal/abi.Type.Str")?;
    let base = target.types_base? + target.load_bias()?;
    let mut t = [0u8; 1];
    mem.read(typ + tflag_off, &mut t).ok()?;
    let mut off = [0u8; 4];
    mem.read(typ + str_off, &mut off).ok()?;
    let off = i32::from_le_bytes(off);
    if off <= 0 {
        return None;
    }
    // The header first: a name at the end of a mapping must still read.
    let at = base + off as u64;
    let mut head = [0u8; 6];
    mem.read(at, &mut head).ok()?;
    let (start, len) = name_header(&head)?;
    let mut data = vec![0u8; len.min(MAX_NAME)];
    mem.read(at + start as u64, &mut data).ok()?;
    let name = String::from_utf8(data).ok()?;
    let name = if t[0] & TFLAG_EXTRA_STAR != 0 {
        name.strip_prefix('*').unwrap_or(&name).to_string()
    } else {
        name
    };
    Some(name.into())
}

/// An `abi.Name`'s header: a flags byte, then the length as a uvarint.
/// Returns where the bytes start and how many there are.
fn name_header(head: &[u8]) -> Option<(usize, usize)> {
    let mut len: usize = 0;
    let mut i = 1;
    loop {
        let b = *head.get(i)?;
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            return Some((i, len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lengths_of_one_and_two_bytes() {
        assert_eq!(name_header(&[0, 10, b'*', b'o']), Some((2, 10)));
        assert_eq!(name_header(&[0, 0x80 | 72, 1, 0, 0, 0]), Some((3, 200)));
        assert_eq!(name_header(&[0]), None);
        assert_eq!(name_header(&[0, 0x80, 0x80, 0x80, 0x80, 0x80]), None);
    }
}

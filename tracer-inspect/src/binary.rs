//! The target's executable file: mapped once, parsed on demand, borrowed from.
use crate::InspectError;
use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A symbol's address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
}

pub struct Binary {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl Binary {
    pub fn open(path: &Path) -> Result<Self, InspectError> {
        let file = std::fs::File::open(path).map_err(|source| InspectError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the mapping is read-only; a concurrent truncation of the target's
        // executable is not something a running program survives either.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| InspectError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bin = Self {
            path: path.to_path_buf(),
            map,
        };
        let obj = bin.object()?;
        if obj.architecture() != object::Architecture::X86_64 {
            return Err(InspectError::NotAmd64(bin.path.clone()));
        }
        Ok(bin)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data(&self) -> &[u8] {
        &self.map
    }

    pub fn object(&self) -> Result<object::File<'_>, InspectError> {
        let obj = object::File::parse(&*self.map).map_err(|e| InspectError::NotElf {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if obj.format() != object::BinaryFormat::Elf {
            return Err(InspectError::NotElf {
                path: self.path.clone(),
                reason: format!("{:?} format", obj.format()),
            });
        }
        Ok(obj)
    }

    /// Looks up the named symbols in `.symtab` with one pass over the table.
    pub fn symbols(&self, names: &[&str]) -> Result<HashMap<String, Symbol>, InspectError> {
        let obj = self.object()?;
        let mut found = HashMap::new();
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            if names.contains(&name) && !found.contains_key(name) {
                found.insert(
                    name.to_string(),
                    Symbol {
                        addr: sym.address(),
                        size: sym.size(),
                    },
                );
            }
        }
        Ok(found)
    }

    pub fn has_symtab(&self) -> bool {
        self.object().is_ok_and(|o| o.symbols().next().is_some())
    }

    /// Whether the executable is position independent (ET_DYN): its addresses then
    /// move by a load bias at run time.
    pub fn is_pie(&self) -> bool {
        self.object()
            .is_ok_and(|o| o.kind() == object::ObjectKind::Dynamic)
    }

    /// File offset of a virtual address, through the loadable segments: what a uprobe
    /// attach takes.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        let obj = self.object().ok()?;
        obj.segments().find_map(|seg| {
            let (off, size) = seg.file_range();
            let start = seg.address();
            (vaddr >= start && vaddr < start + size).then(|| vaddr - start + off)
        })
    }

    /// Bytes at a virtual address, as stored in the file.
    pub fn bytes_at(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let off = self.file_offset(vaddr)? as usize;
        self.map.get(off..off.checked_add(len)?)
    }

    /// The first text-segment virtual address, for PIE load-bias computation.
    pub fn first_segment_vaddr(&self) -> Option<(u64, u64)> {
        let obj = self.object().ok()?;
        obj.segments()
            .map(|s| (s.address(), s.file_range().0))
            .min_by_key(|(a, _)| *a)
    }

    pub fn section_data(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let obj = self.object().ok()?;
        let sec = obj.section_by_name(name)?;
        sec.uncompressed_data().ok()
    }
}

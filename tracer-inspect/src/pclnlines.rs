//! PC -> function, file and line, inlined calls included, from the pclntab: what
//! [`crate::lines`] gives from DWARF, for binaries without it (`-ldflags=-w`). The
//! runtime's own tracebacks read the same tables (`runtime/symtabinl.go`), so the
//! frames are those of a Go goroutine dump.
use crate::binary::Binary;
use crate::layouts::GoLayout;
use crate::lines::SourceFrame;
use crate::pclntab::{self, Location, Pclntab};
use std::sync::Arc;

/// Where the table is in the executable: it is viewed again, without copying,
/// for each lookup (the file is mapped once, by [`Binary`]).
pub struct PclnLines {
    loc: Location,
}

impl PclnLines {
    /// `None` when the binary has no pclntab that can be read. `layout` (the
    /// table entry of the binary's Go minor) says where the module data keeps
    /// `go:func.*` when there is no symbol table to name it.
    pub fn new(bin: &Binary, layout: Option<&GoLayout>) -> Option<Self> {
        let obj = bin.object().ok()?;
        let mut tab = Pclntab::from_elf(&obj).ok()?;
        if tab.gofunc().is_none() {
            let word = layout
                .and_then(|l| l.offset("runtime.moduledata.gofunc"))
                .map(|o| o as usize / 8);
            if let Some(addr) = word.and_then(|w| pclntab::moduledata_word(&obj, &tab, w)) {
                tab.set_gofunc(&obj, addr);
            }
        }
        Some(Self {
            loc: tab.location(bin.data())?,
        })
    }

    /// Frames for `pc` (a link-time address), innermost (inlined) first.
    pub fn frames(&self, bin: &Binary, pc: u64) -> Vec<SourceFrame> {
        let Ok(tab) = Pclntab::view(bin.data(), &self.loc) else {
            return Vec::new();
        };
        tab.frames(pc)
            .into_iter()
            .map(|f| SourceFrame {
                function: Arc::from(f.function),
                file: Arc::from(f.file),
                line: f.line,
            })
            .collect()
    }
}

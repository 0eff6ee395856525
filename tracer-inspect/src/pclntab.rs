//! Go function table (`.gopclntab`) reader.
//!
//! The pclntab is the runtime's own symbol table: it survives
//! `-ldflags="-s -w"`, so it is how functions, their address ranges and their
//! source positions are found in stripped Go binaries.
//!
//! Layout (Go 1.18+; see `runtime/symtab.go` and
//! `cmd/link/internal/ld/pcln.go`):
//!
//! ```text
//! pcHeader   magic u32 | 0 u8 | 0 u8 | minLC u8 | ptrSize u8
//!            nfunc uintptr | nfiles uintptr | textStart uintptr
//!            funcnameOffset | cuOffset | filetabOffset | pctabOffset | pclnOffset  (uintptr each,
//!            relative to the header)
//! funcnametab  NUL-terminated function names
//! cutab        u32 per (CU, file): offset into filetab, or !0
//! filetab      NUL-terminated file names
//! pctab        pc-value tables (varint delta encoded)
//! pclntable    functab: nfunc x {entryOff u32, funcOff u32}, then the end offset u32;
//!              then the _func records, at funcOff from the start of pclntable
//! ```
//!
//! Entry offsets are relative to `runtime.text`. Go 1.18 to 1.25 store that
//! address in the header (`textStart`; seen in 1.21 and 1.24 binaries); Go
//! 1.26 leaves the field 0 and the runtime takes the address from
//! `runtime.firstmoduledata.text`. This reader uses, in order: the
//! `runtime.text` symbol (unstripped binaries), the header field, the `text`
//! field of the module data (found by its pointers into the pclntab), and
//! finally the start of the `.text` section (exact for internally linked
//! binaries; wrong by the size of the C start-up code for externally linked
//! cgo binaries, which is why the module data comes first). Every candidate
//! is checked to put the function table inside executable memory.
//!
//! Multiple text sections (`textsectmap`, only produced for very large
//! binaries on architectures needing trampolines) are not supported; amd64
//! binaries have a single text section.
//!
//! All addresses are link-time virtual addresses as found in the ELF file;
//! for PIE binaries add the load bias to get run-time addresses.

use std::fmt;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Magic of the Go 1.18 and 1.19 table.
pub const GO118_MAGIC: u32 = 0xffff_fff0;
/// Magic of the Go 1.20+ table.
pub const GO120_MAGIC: u32 = 0xffff_fff1;
const GO116_MAGIC: u32 = 0xffff_fffa;
const GO12_MAGIC: u32 = 0xffff_fffb;

const PF_X: u32 = 0x1;
const R_X86_64_RELATIVE: u32 = 8;
/// `abi.FuncFlagAsm`: the function was written in assembly.
const FUNC_FLAG_ASM: u8 = 1 << 2;
const R_AARCH64_RELATIVE: u32 = 1027;

/// A Go function: its name and its address range `[entry, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Func<'a> {
    pub name: &'a str,
    pub entry: u64,
    /// Start of the next function (or the end of the text for the last one),
    /// so alignment padding after the function is included.
    pub end: u64,
}

/// `PCDATA_InlTreeIndex` and `FUNCDATA_InlTree` (`internal/abi/symtab.go`).
const PCDATA_INL_TREE_INDEX: usize = 2;
const FUNCDATA_INL_TREE: usize = 3;
/// Size of a `runtime.inlinedCall` (`runtime/symtabinl.go`).
const INLINED_CALL_SIZE: usize = 16;
/// Deeper inlining than this is taken for a corrupt table.
const MAX_INLINE_DEPTH: usize = 64;

struct InlinedCall {
    name_off: i32,
    parent_pc: i32,
}

/// One source frame at a PC (see [`Pclntab::frames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcFrame<'a> {
    pub function: &'a str,
    pub file: &'a str,
    pub line: u32,
    /// An inlined call (false for the physical function, always the last).
    pub inlined: bool,
}

/// A function's inlined calls (see [`Pclntab::inline_info`]).
#[derive(Debug, Clone)]
pub struct FuncInlines<'a> {
    pub func: Func<'a>,
    /// End of the function's code (its pc-line table), before any padding.
    pub code_end: u64,
    /// Line of the `func` keyword (0 before Go 1.20).
    pub start_line: u32,
    /// File of the function's entry.
    pub file: &'a str,
    /// Each inlined call with code (in no particular order: see `parent`).
    pub nodes: Vec<InlineNode<'a>>,
    /// `[start, end)` and the innermost node there, for code inside inlined calls.
    pub runs: Vec<(u64, u64, usize)>,
}

/// One inlined call in a function.
#[derive(Debug, Clone)]
pub struct InlineNode<'a> {
    /// The inlined function.
    pub function: &'a str,
    /// The node it is inlined into (an index into `nodes`), or `None` for the
    /// physical function.
    pub parent: Option<usize>,
    parent_index: i32,
    /// An instruction with the call's source position (`parentPc`).
    pub call_pc: u64,
    pub call_file: &'a str,
    pub call_line: u32,
    /// The code of this call, its own inlined calls' included (merged, sorted).
    pub ranges: Vec<(u64, u64)>,
}

/// Where a table is in its file (see [`Pclntab::location`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    offset: usize,
    len: usize,
    addr: u64,
    text_start: u64,
    text_source: TextStartSource,
    gofunc: Option<(u64, usize, usize)>,
}

fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
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

#[derive(Debug, thiserror::Error)]
pub enum PclntabError {
    /// No `.gopclntab` (or equivalent) found: not a Go binary.
    #[error("no Go pclntab found (not a Go binary?)")]
    Missing,
    /// A pclntab with a magic this reader does not handle (Go before 1.18,
    /// or a future format). The value is the magic.
    #[error("unsupported Go pclntab version (magic {0:#010x}); Go 1.18 or newer is required")]
    UnsupportedVersion(u32),
    #[error("malformed Go pclntab: {0}")]
    Malformed(&'static str),
}

/// Where the `runtime.text` address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextStartSource {
    /// The `runtime.text` ELF symbol.
    Symbol,
    /// The `textStart` field of the pcHeader (Go 1.18 to 1.25).
    Header,
    /// The `text` field of `runtime.firstmoduledata`.
    ModuleData,
    /// The start of the `.text` section.
    TextSection,
    /// Supplied by the caller of [`Pclntab::parse`].
    Given,
}

/// A parsed view of a Go pclntab. Borrows the file bytes; nothing large is
/// copied.
#[derive(Clone)]
pub struct Pclntab<'data> {
    /// Virtual address of the pcHeader (0 when unknown).
    addr: u64,
    magic: u32,
    big_endian: bool,
    quantum: u32,
    ptr_size: u8,
    nfunc: usize,
    header_text_start: u64,
    text_start: u64,
    text_source: TextStartSource,
    offsets: Offsets,
    funcnametab: &'data [u8],
    cutab: &'data [u8],
    filetab: &'data [u8],
    pctab: &'data [u8],
    /// `(2 * nfunc + 1) * 4` bytes: entry/funcOff pairs and the end offset.
    functab: &'data [u8],
    /// From the start of the functab to the end of the data; `_func` records
    /// are at funcOff within this.
    funcdata: &'data [u8],
    /// `go:func.*` (where FUNCDATA, the inline trees among them, lives): its
    /// address and the bytes from there to the end of its segment.
    gofunc: Option<(u64, &'data [u8])>,
    /// The whole table's bytes (from the pcHeader).
    data: &'data [u8],
}

#[derive(Debug, Clone, Copy)]
struct Offsets {
    funcname: u64,
    pcln: u64,
}

impl fmt::Debug for Pclntab<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pclntab")
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("magic", &format_args!("{:#x}", self.magic))
            .field("nfunc", &self.nfunc)
            .field("text_start", &format_args!("{:#x}", self.text_start))
            .field("text_source", &self.text_source)
            .finish_non_exhaustive()
    }
}

impl<'data> Pclntab<'data> {
    /// Reads the pclntab of an ELF executable: the `.gopclntab` section
    /// (`.data.rel.ro.gopclntab` in PIE binaries of some Go releases), the
    /// `runtime.pclntab` symbol, or, failing both (externally linked PIE
    /// binaries, where the linker merges it into `.data.rel.ro`), a scan of
    /// the non-executable segments for a valid header.
    pub fn from_elf(file: &object::File<'data>) -> Result<Self, PclntabError> {
        let (addr, data) = locate(file)?;
        let mut tab = Self::parse(data, None)?;
        tab.addr = addr;
        let (text, source) = find_text_start(file, &tab).ok_or(PclntabError::Malformed(
            "cannot determine the text start address",
        ))?;
        tab.text_start = text;
        tab.text_source = source;
        let gofunc = ["go:func.*", "go.func.*"]
            .iter()
            .find_map(|n| file.symbol_by_name(n))
            .map(|s| s.address());
        if let Some(addr) = gofunc {
            tab.set_gofunc(file, addr);
        }
        Ok(tab)
    }

    /// Where `go:func.*` is, for a binary without a symbol table: the runtime
    /// keeps it in `runtime.firstmoduledata.gofunc` (`field_offset`, from the
    /// binary's Go version).
    pub fn set_gofunc(&mut self, file: &object::File<'data>, addr: u64) {
        self.gofunc = bytes_from(file, addr).map(|b| (addr, b));
    }

    /// The address of `go:func.*`, when known.
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc.map(|g| g.0)
    }

    /// Where this table is in `file` (the bytes it was read from), so that a
    /// holder of the file can view it again later without the checks of
    /// [`Self::parse`] ([`Self::view`]).
    pub fn location(&self, file: &[u8]) -> Option<Location> {
        let off = |s: &[u8]| -> Option<usize> {
            let base = file.as_ptr() as usize;
            let p = s.as_ptr() as usize;
            (p >= base && p + s.len() <= base + file.len()).then_some(p - base)
        };
        Some(Location {
            offset: off(self.data)?,
            len: self.data.len(),
            addr: self.addr,
            text_start: self.text_start,
            text_source: self.text_source,
            gofunc: match self.gofunc {
                Some((a, b)) => Some((a, off(b)?, b.len())),
                None => None,
            },
        })
    }

    /// The table at `loc` in `file`, as [`Self::location`] found it.
    pub fn view(file: &'data [u8], loc: &Location) -> Result<Self, PclntabError> {
        let bytes = |off: usize, len: usize| {
            file.get(off..off.saturating_add(len))
                .ok_or(PclntabError::Malformed("location outside the file"))
        };
        let data = bytes(loc.offset, loc.len).map_err(|_| PclntabError::Missing)?;
        let mut tab = Self::assemble(data, Some(loc.text_start), false)?;
        tab.addr = loc.addr;
        tab.text_source = loc.text_source;
        if let Some((a, off, len)) = loc.gofunc {
            tab.gofunc = Some((a, bytes(off, len)?));
        }
        Ok(tab)
    }

    /// Parses a pclntab from its bytes (starting at the pcHeader).
    /// `text_start` is the address of `runtime.text`; when `None` the value
    /// stored in the header is used, which is 0 for Go 1.26+ binaries.
    pub fn parse(data: &'data [u8], text_start: Option<u64>) -> Result<Self, PclntabError> {
        Self::assemble(data, text_start, true)
    }

    fn assemble(
        data: &'data [u8],
        text_start: Option<u64>,
        check: bool,
    ) -> Result<Self, PclntabError> {
        let h = parse_header(data)?;
        let len = data.len() as u64;
        let offs = [
            h.funcname_off,
            h.cu_off,
            h.filetab_off,
            h.pctab_off,
            h.pcln_off,
        ];
        // Each table runs to the next table (whatever the order), or to the
        // end of the data.
        let table = |start: u64| -> &'data [u8] {
            let end = offs
                .iter()
                .copied()
                .filter(|&o| o > start)
                .min()
                .unwrap_or(len);
            &data[start as usize..end as usize]
        };
        let funcdata = &data[h.pcln_off as usize..];
        let functab_len = (h.nfunc * 2 + 1)
            .checked_mul(4)
            .ok_or(PclntabError::Malformed("function count too large"))?;
        let functab = funcdata
            .get(..functab_len)
            .ok_or(PclntabError::Malformed("function table out of bounds"))?;
        let (text_start, text_source) = match text_start {
            Some(t) => (t, TextStartSource::Given),
            None => (h.text_start, TextStartSource::Header),
        };
        let tab = Pclntab {
            addr: 0,
            magic: h.magic,
            big_endian: h.big_endian,
            quantum: h.quantum,
            ptr_size: h.ptr_size,
            nfunc: h.nfunc,
            header_text_start: h.text_start,
            text_start,
            text_source,
            offsets: Offsets {
                funcname: h.funcname_off,
                pcln: h.pcln_off,
            },
            funcnametab: table(h.funcname_off),
            cutab: table(h.cu_off),
            filetab: table(h.filetab_off),
            pctab: table(h.pctab_off),
            functab,
            funcdata,
            gofunc: None,
            data,
        };
        if !check {
            return Ok(tab);
        }
        // The function table must be sorted for binary search, and its
        // records must be in bounds: check once here so lookups stay cheap.
        // Fixed part of a `_func` record: 40 bytes (Go 1.18/1.19), 44 with
        // `startLine` (Go 1.20+).
        let record = if tab.magic == GO118_MAGIC { 40 } else { 44 };
        let mut prev = 0u32;
        for i in 0..=tab.nfunc {
            let e = tab.ft_entry(i);
            if e < prev {
                return Err(PclntabError::Malformed("function table not sorted"));
            }
            prev = e;
            if i < tab.nfunc {
                let fo = tab.ft_funcoff(i) as usize;
                if fo
                    .checked_add(record)
                    .is_none_or(|end| end > tab.funcdata.len())
                {
                    return Err(PclntabError::Malformed("function record out of bounds"));
                }
            }
        }
        Ok(tab)
    }

    /// Every function, in address order. Lazy: names are read as the
    /// iterator advances.
    pub fn funcs(&self) -> impl ExactSizeIterator<Item = Func<'data>> + DoubleEndedIterator + '_ {
        (0..self.nfunc).map(move |i| self.func(i))
    }

    /// Finds a function by its exact Go name (e.g. `runtime.gopark`,
    /// `internal/sync.(*Mutex).lockSlow`). Linear scan over the name table
    /// without allocating.
    ///
    /// A name can occur twice: a function and its ABI wrapper. The ELF
    /// symbol table gives the plain name to the ABIInternal one and calls
    /// the ABI0 one `name.abi0`; the pclntab uses the plain name for both.
    /// This returns the same function as the symbol table would: for a Go
    /// function the real body (its ABI0 twin is a wrapper), for an assembly
    /// function the ABIInternal wrapper (the assembly body is the ABI0
    /// twin, `funcs()` lists it with the `FuncFlagAsm` bit set).
    pub fn lookup(&self, name: &str) -> Option<Func<'data>> {
        let nb = name.as_bytes();
        let mut best: Option<(usize, (bool, u8))> = None;
        for i in 0..self.nfunc {
            let fo = self.ft_funcoff(i);
            let off = self.field(fo, 1).unwrap_or(u32::MAX) as usize;
            let Some(end) = off.checked_add(nb.len()) else {
                continue;
            };
            if self.funcnametab.get(off..end) != Some(nb) || self.funcnametab.get(end) != Some(&0) {
                continue;
            }
            // Preference: not assembly, then smallest funcID (FuncIDWrapper
            // is the largest funcID of every release).
            let (id, flag) = self.func_id_flag(fo);
            let key = (flag & FUNC_FLAG_ASM != 0, id);
            if key == (false, 0) {
                return Some(self.func(i)); // a normal Go function: best possible
            }
            if best.is_none_or(|(_, b)| key < b) {
                best = Some((i, key));
            }
        }
        best.map(|(i, _)| self.func(i))
    }

    /// The body of a function written in assembly (`FuncFlagAsm`): what the ELF
    /// symbol table calls `name.abi0` when a Go-ABI wrapper takes the plain
    /// name (`runtime.exit`).
    pub fn lookup_asm(&self, name: &str) -> Option<Func<'data>> {
        (0..self.nfunc).find_map(|i| {
            let f = self.func(i);
            let (_, flag) = self.func_id_flag(self.ft_funcoff(i));
            (f.name == name && flag & FUNC_FLAG_ASM != 0).then_some(f)
        })
    }

    /// The function whose range contains `pc`.
    pub fn func_at(&self, pc: u64) -> Option<Func<'data>> {
        self.index_at(pc).map(|i| self.func(i))
    }

    /// Source file and line for `pc`, from the pcfile/pcln tables. For
    /// inlined code this is the position of the inlined (innermost) code, as
    /// `go tool addr2line` and the DWARF line table report it.
    pub fn line(&self, pc: u64) -> Option<(&'data str, u32)> {
        let i = self.index_at(pc)?;
        self.line_in(self.ft_funcoff(i), self.entry(i), pc)
    }

    /// How far the stack pointer at `pc` is below its value at the function's
    /// entry (the `pcsp` table): at `pc`, the frame's canonical frame address
    /// is `SP + 8 + sp_delta`.
    pub fn sp_delta(&self, pc: u64) -> Option<i32> {
        let i = self.index_at(pc)?;
        let fo = self.ft_funcoff(i);
        self.pcvalue(self.field(fo, 4)?, self.entry(i), pc)
    }

    fn line_in(&self, fo: u32, entry: u64, pc: u64) -> Option<(&'data str, u32)> {
        let pcfile = self.field(fo, 5)?;
        let pcln = self.field(fo, 6)?;
        let cu = self.field(fo, 8)?;
        let line = self.pcvalue(pcln, entry, pc)?;
        let fno = self.pcvalue(pcfile, entry, pc)?;
        if line < 0 || fno < 0 || cu == u32::MAX {
            return None;
        }
        let idx = (cu as usize).checked_add(fno as usize)?.checked_mul(4)?;
        let fnoff = read_u32(self.cutab, idx, self.big_endian)?;
        if fnoff == u32::MAX {
            return None;
        }
        let file = cstr(self.filetab, fnoff as usize)?;
        Some((file, line as u32))
    }

    /// The source frames at `pc`, innermost first: each inlined call the PC is
    /// inside (from the function's inline tree, `FUNCDATA_InlTree`, and its
    /// `PCDATA_InlTreeIndex` table), then the physical function. The innermost
    /// frame has `pc`'s own position; each outer one the position of the call
    /// it inlined, as Go's traceback does (`runtime/symtabinl.go`). Without
    /// `go:func.*` only the physical function is given.
    pub fn frames(&self, pc: u64) -> Vec<PcFrame<'data>> {
        let mut out = Vec::new();
        let Some(i) = self.index_at(pc) else {
            return out;
        };
        let fo = self.ft_funcoff(i);
        let entry = self.entry(i);
        let tree = self.inl_tree(fo);
        let index_table = self.pcdata_table(fo, PCDATA_INL_TREE_INDEX);
        let index_at = |pc: u64| -> i32 {
            match (tree, index_table) {
                (Some(_), Some(t)) => self.pcvalue(t, entry, pc).unwrap_or(-1),
                _ => -1,
            }
        };
        let mut at = pc;
        let mut ix = index_at(at);
        // An inline tree is as deep as the inlining budget allows; a cycle would
        // be a corrupt table.
        for _ in 0..MAX_INLINE_DEPTH {
            let (file, line) = self.line_in(fo, entry, at).unwrap_or(("?", 0));
            let call = tree.and_then(|t| self.inlined_call(t, ix));
            let Some(call) = call else {
                out.push(PcFrame {
                    function: self.func(i).name,
                    file,
                    line,
                    inlined: false,
                });
                break;
            };
            out.push(PcFrame {
                function: self.name_at(call.name_off).unwrap_or("?"),
                file,
                line,
                inlined: true,
            });
            at = entry.wrapping_add(call.parent_pc as i64 as u64);
            ix = index_at(at);
        }
        out
    }

    /// The inlined calls of function `i` (in [`Self::funcs`] order) and the code
    /// each covers, for finding inlined calls of given functions without DWARF.
    pub fn inline_info(&self, i: usize) -> Option<FuncInlines<'data>> {
        if i >= self.nfunc {
            return None;
        }
        let fo = self.ft_funcoff(i);
        let func = self.func(i);
        let entry = func.entry;
        let end = self
            .field(fo, 6)
            .map(|t| self.pcvalue_runs(t, entry))
            .and_then(|r| r.last().map(|r| r.1))
            .filter(|&e| e > entry && e <= func.end)
            .unwrap_or(func.end);
        let start_line = self
            .field(fo, 9)
            .filter(|_| self.magic != GO118_MAGIC)
            .map_or(0, |l| l as i32)
            .max(0) as u32;
        let mut out = FuncInlines {
            func,
            code_end: end,
            start_line,
            file: self.line_in(fo, entry, entry).map_or("", |f| f.0),
            nodes: Vec::new(),
            runs: Vec::new(),
        };
        let (Some(tree), Some(table)) = (
            self.inl_tree(fo),
            self.pcdata_table(fo, PCDATA_INL_TREE_INDEX),
        ) else {
            return Some(out);
        };
        let mut index: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
        for (lo, hi, v) in self.pcvalue_runs(table, entry) {
            if v < 0 || lo >= end {
                continue;
            }
            // The node and every node it is inlined into.
            let mut chain = Vec::new();
            let mut ix = v;
            while ix >= 0 && chain.len() < MAX_INLINE_DEPTH {
                if let Some(&n) = index.get(&ix) {
                    chain.push(n);
                    ix = out.nodes[n].parent_index;
                    continue;
                }
                let Some(call) = self.inlined_call(tree, ix) else {
                    break;
                };
                let call_pc = entry.wrapping_add(call.parent_pc as i64 as u64);
                let (call_file, call_line) = self.line_in(fo, entry, call_pc).unwrap_or(("", 0));
                let parent_index = self.pcvalue(table, entry, call_pc).unwrap_or(-1);
                out.nodes.push(InlineNode {
                    function: self.name_at(call.name_off).unwrap_or("?"),
                    parent: None,
                    parent_index,
                    call_pc,
                    call_file,
                    call_line,
                    ranges: Vec::new(),
                });
                let n = out.nodes.len() - 1;
                index.insert(ix, n);
                chain.push(n);
                ix = parent_index;
            }
            let hi = hi.min(end);
            for &n in &chain {
                out.nodes[n].ranges.push((lo, hi));
            }
            if let Some(&n) = index.get(&v) {
                out.runs.push((lo, hi, n));
            }
        }
        for k in 0..out.nodes.len() {
            let p = out.nodes[k].parent_index;
            out.nodes[k].parent = index.get(&p).copied();
        }
        for n in &mut out.nodes {
            n.ranges = merge(std::mem::take(&mut n.ranges));
        }
        Some(out)
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// The address of `runtime.text` that entry offsets are relative to.
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// How [`Self::text_start`] was determined.
    pub fn text_start_source(&self) -> TextStartSource {
        self.text_source
    }

    /// The pclntab magic (`GO118_MAGIC` or `GO120_MAGIC`).
    pub fn magic(&self) -> u32 {
        self.magic
    }

    /// Virtual address of the pcHeader (0 if built with [`Self::parse`]).
    pub fn address(&self) -> u64 {
        self.addr
    }

    // ---- internals ----

    fn func(&self, i: usize) -> Func<'data> {
        let name = cstr(self.funcnametab, self.name_off(i) as usize).unwrap_or("");
        Func {
            name,
            entry: self.text_start + u64::from(self.ft_entry(i)),
            end: self.text_start + u64::from(self.ft_entry(i + 1)),
        }
    }

    fn index_at(&self, pc: u64) -> Option<usize> {
        let off = pc.checked_sub(self.text_start)?;
        let off = u32::try_from(off).ok()?;
        if self.nfunc == 0 || off < self.ft_entry(0) || off >= self.ft_entry(self.nfunc) {
            return None;
        }
        // First index whose entry is > off, minus one.
        let mut lo = 0usize;
        let mut hi = self.nfunc;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ft_entry(mid) <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(lo - 1)
    }

    fn entry(&self, i: usize) -> u64 {
        self.text_start + u64::from(self.ft_entry(i))
    }

    /// Size of the fixed part of a `_func` record.
    fn record_size(&self) -> usize {
        if self.magic == GO118_MAGIC {
            40
        } else {
            44
        }
    }

    /// Offset in pctab of PCDATA table `k` of the function, if it has one.
    fn pcdata_table(&self, fo: u32, k: usize) -> Option<u32> {
        let npcdata = self.field(fo, 7)? as usize;
        if k >= npcdata {
            return None;
        }
        let at = (fo as usize).checked_add(self.record_size() + 4 * k)?;
        read_u32(self.funcdata, at, self.big_endian).filter(|&o| o != 0)
    }

    /// FUNCDATA `k` of the function: its bytes from `go:func.*` on.
    fn funcdata_bytes(&self, fo: u32, k: usize) -> Option<&'data [u8]> {
        let (_, gofunc) = self.gofunc?;
        let rs = self.record_size();
        let nfuncdata = *self.funcdata.get((fo as usize).checked_add(rs - 1)?)? as usize;
        if k >= nfuncdata {
            return None;
        }
        let npcdata = self.field(fo, 7)? as usize;
        let at = (fo as usize).checked_add(rs + 4 * npcdata + 4 * k)?;
        let off = read_u32(self.funcdata, at, self.big_endian).filter(|&o| o != u32::MAX)?;
        gofunc.get(off as usize..)
    }

    fn inl_tree(&self, fo: u32) -> Option<&'data [u8]> {
        self.funcdata_bytes(fo, FUNCDATA_INL_TREE)
    }

    /// Entry `ix` of an inline tree (`runtime.inlinedCall`: funcID u8, 3 bytes
    /// of padding, nameOff, parentPc and startLine as int32).
    fn inlined_call(&self, tree: &[u8], ix: i32) -> Option<InlinedCall> {
        let at = usize::try_from(ix).ok()?.checked_mul(INLINED_CALL_SIZE)?;
        let word = |k: usize| read_u32(tree, at + 4 * k, self.big_endian).map(|v| v as i32);
        Some(InlinedCall {
            name_off: word(1)?,
            parent_pc: word(2)?,
        })
    }

    fn name_at(&self, name_off: i32) -> Option<&'data str> {
        cstr(self.funcnametab, usize::try_from(name_off).ok()?)
    }

    /// The runs of a pc-value table: `[start, end)` and the value there.
    fn pcvalue_runs(&self, off: u32, entry: u64) -> Vec<(u64, u64, i32)> {
        let mut out = Vec::new();
        let Some(mut p) = self.pctab.get(off as usize..).filter(|_| off != 0) else {
            return out;
        };
        let mut val: i32 = -1;
        let mut pc = entry;
        loop {
            let first = out.is_empty();
            let Some(uv) = read_varint(&mut p) else { break };
            if uv == 0 && !first {
                break;
            }
            let vdelta = if uv & 1 != 0 {
                !(uv >> 1) as i32
            } else {
                (uv >> 1) as i32
            };
            let Some(pcdelta) = read_varint(&mut p) else {
                break;
            };
            let next = pc + u64::from(pcdelta) * u64::from(self.quantum);
            val = val.wrapping_add(vdelta);
            out.push((pc, next, val));
            pc = next;
            if out.len() > 1 << 22 {
                break;
            }
        }
        out
    }

    #[inline]
    fn ft_entry(&self, i: usize) -> u32 {
        read_u32(self.functab, 8 * i, self.big_endian).unwrap_or(u32::MAX)
    }

    #[inline]
    fn ft_funcoff(&self, i: usize) -> u32 {
        read_u32(self.functab, 8 * i + 4, self.big_endian).unwrap_or(u32::MAX)
    }

    /// Field `n` (n >= 1) of the `_func` record at `funcoff`; all fields
    /// after the first are 4 bytes.
    #[inline]
    fn field(&self, funcoff: u32, n: usize) -> Option<u32> {
        read_u32(self.funcdata, funcoff as usize + 4 * n, self.big_endian)
    }

    /// The `funcID` and `flag` bytes of the `_func` record (after
    /// `startLine` in the Go 1.20+ layout, after `cuOffset` in the 1.18 one).
    fn func_id_flag(&self, funcoff: u32) -> (u8, u8) {
        let at = funcoff as usize + if self.magic == GO118_MAGIC { 36 } else { 40 };
        match self.funcdata.get(at..at + 2) {
            Some(b) => (b[0], b[1]),
            None => (u8::MAX, 0),
        }
    }

    #[inline]
    fn name_off(&self, i: usize) -> u32 {
        self.field(self.ft_funcoff(i), 1).unwrap_or(u32::MAX)
    }

    /// Value of the pc-value table at `off` for `target`, walking from the
    /// function entry. Matches `runtime.pcvalue` / `debug/gosym`.
    fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Option<i32> {
        if off == 0 {
            return None;
        }
        let mut p = self.pctab.get(off as usize..)?;
        let mut val: i32 = -1;
        let mut pc = entry;
        loop {
            let first = pc == entry;
            let uv = read_varint(&mut p)?;
            if uv == 0 && !first {
                return None;
            }
            let vdelta = if uv & 1 != 0 {
                !(uv >> 1) as i32
            } else {
                (uv >> 1) as i32
            };
            let pcdelta = u64::from(read_varint(&mut p)?) * u64::from(self.quantum);
            pc += pcdelta;
            val = val.wrapping_add(vdelta);
            if target < pc {
                return Some(val);
            }
        }
    }
}

struct Header {
    magic: u32,
    big_endian: bool,
    quantum: u32,
    ptr_size: u8,
    nfunc: usize,
    text_start: u64,
    funcname_off: u64,
    cu_off: u64,
    filetab_off: u64,
    pctab_off: u64,
    pcln_off: u64,
}

fn parse_header(data: &[u8]) -> Result<Header, PclntabError> {
    if data.len() < 8 {
        return Err(PclntabError::Malformed("header truncated"));
    }
    let le = u32::from_le_bytes(data[..4].try_into().unwrap());
    let be = u32::from_be_bytes(data[..4].try_into().unwrap());
    let (magic, big_endian) = match (le, be) {
        (GO118_MAGIC | GO120_MAGIC, _) => (le, false),
        (_, GO118_MAGIC | GO120_MAGIC) => (be, true),
        (GO116_MAGIC | GO12_MAGIC, _) => return Err(PclntabError::UnsupportedVersion(le)),
        (_, GO116_MAGIC | GO12_MAGIC) => return Err(PclntabError::UnsupportedVersion(be)),
        _ => return Err(PclntabError::UnsupportedVersion(le)),
    };
    let quantum = data[6];
    let ptr_size = data[7];
    if data[4] != 0 || data[5] != 0 || !matches!(quantum, 1 | 2 | 4) || !matches!(ptr_size, 4 | 8) {
        return Err(PclntabError::Malformed("bad header"));
    }
    let ps = ptr_size as usize;
    let word = |i: usize| -> Result<u64, PclntabError> {
        let off = 8 + i * ps;
        let v = if ps == 8 {
            data.get(off..off + 8).map(|b| {
                let a: [u8; 8] = b.try_into().unwrap();
                if big_endian {
                    u64::from_be_bytes(a)
                } else {
                    u64::from_le_bytes(a)
                }
            })
        } else {
            read_u32(data, off, big_endian).map(u64::from)
        };
        v.ok_or(PclntabError::Malformed("header truncated"))
    };
    let nfunc = word(0)?;
    let _nfiles = word(1)?;
    let text_start = word(2)?;
    let funcname_off = word(3)?;
    let cu_off = word(4)?;
    let filetab_off = word(5)?;
    let pctab_off = word(6)?;
    let pcln_off = word(7)?;
    let len = data.len() as u64;
    let header_end = 8 + 8 * ps as u64;
    for o in [funcname_off, cu_off, filetab_off, pctab_off, pcln_off] {
        if o < header_end || o > len {
            return Err(PclntabError::Malformed("table offset out of bounds"));
        }
    }
    let nfunc = usize::try_from(nfunc)
        .ok()
        .filter(|&n| n > 0 && n < (len as usize) / 8)
        .ok_or(PclntabError::Malformed("bad function count"))?;
    Ok(Header {
        magic,
        big_endian,
        quantum: u32::from(quantum),
        ptr_size,
        nfunc,
        text_start,
        funcname_off,
        cu_off,
        filetab_off,
        pctab_off,
        pcln_off,
    })
}

#[inline]
fn read_u32(b: &[u8], off: usize, big_endian: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

#[inline]
fn read_varint(p: &mut &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    let mut shift = 0u32;
    loop {
        let (&b, rest) = p.split_first()?;
        *p = rest;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift >= 35 {
            return None;
        }
    }
}

/// The NUL-terminated UTF-8 string at `off`.
fn cstr(b: &[u8], off: usize) -> Option<&str> {
    let s = b.get(off..)?;
    let n = s.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&s[..n]).ok()
}

// ---- locating things in the ELF file ----

/// Returns the virtual address and bytes of the pclntab.
fn locate<'data>(file: &object::File<'data>) -> Result<(u64, &'data [u8]), PclntabError> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(sect) = file.section_by_name(name) {
            let data = sect
                .data()
                .map_err(|_| PclntabError::Malformed("cannot read pclntab section"))?;
            if !data.is_empty() {
                return Ok((sect.address(), data));
            }
        }
    }
    if let Some(sym) = file.symbol_by_name("runtime.pclntab") {
        let addr = sym.address();
        if let Some(data) = bytes_from(file, addr) {
            if parse_header(data).is_ok() {
                return Ok((addr, data));
            }
        }
    }
    // Scan the non-executable segments for a header that parses.
    let mut unsupported = None;
    for seg in file.segments() {
        if segment_is_exec(&seg) {
            continue;
        }
        let Ok(data) = seg.data() else { continue };
        let base = seg.address();
        let mut off = ((8 - (base % 8)) % 8) as usize;
        while off + 64 <= data.len() {
            let b = &data[off..];
            if b[4] == 0 && b[5] == 0 && matches!(b[7], 4 | 8) && b[1..4] == [0xff, 0xff, 0xff] {
                match b[0] {
                    0xf0 | 0xf1 => {
                        if Pclntab::parse(b, None).is_ok() {
                            return Ok((base + off as u64, b));
                        }
                    }
                    0xfa | 0xfb if unsupported.is_none() => {
                        unsupported = Some(u32::from_le_bytes(b[..4].try_into().unwrap()));
                    }
                    _ => {}
                }
            }
            off += 8;
        }
    }
    match unsupported {
        Some(m) => Err(PclntabError::UnsupportedVersion(m)),
        None => Err(PclntabError::Missing),
    }
}

fn segment_is_exec(seg: &object::Segment<'_, '_>) -> bool {
    match seg.flags() {
        object::SegmentFlags::Elf { p_flags, .. } => p_flags.0 & PF_X != 0,
        _ => false,
    }
}

/// File bytes from virtual address `addr` to the end of its segment.
fn bytes_from<'data>(file: &object::File<'data>, addr: u64) -> Option<&'data [u8]> {
    file.segments().find_map(|seg| {
        let off = addr.checked_sub(seg.address())?;
        let data = seg.data().ok()?;
        data.get(usize::try_from(off).ok()?..)
            .filter(|d| !d.is_empty())
    })
}

fn find_text_start(file: &object::File<'_>, tab: &Pclntab<'_>) -> Option<(u64, TextStartSource)> {
    let exec: Vec<(u64, u64)> = file
        .segments()
        .filter(segment_is_exec)
        .map(|s| (s.address(), s.address() + s.size()))
        .collect();
    let first = u64::from(tab.ft_entry(0));
    let last = u64::from(tab.ft_entry(tab.nfunc));
    let plausible = |text: u64| -> bool {
        if text == 0 {
            return false;
        }
        if exec.is_empty() {
            return true;
        }
        let (Some(lo), Some(hi)) = (text.checked_add(first), text.checked_add(last)) else {
            return false;
        };
        exec.iter().any(|&(s, e)| lo >= s && hi <= e)
    };

    let mut candidates: Vec<(u64, TextStartSource)> = Vec::with_capacity(4);
    if let Some(sym) = file.symbol_by_name("runtime.text") {
        candidates.push((sym.address(), TextStartSource::Symbol));
    }
    if tab.header_text_start != 0 {
        candidates.push((tab.header_text_start, TextStartSource::Header));
    }
    // Cheap ones first; the module data scan only when they are not usable.
    if let Some(c) = candidates.iter().find(|c| plausible(c.0)) {
        return Some(*c);
    }
    if let Some(t) = text_from_moduledata(file, tab) {
        if plausible(t) {
            return Some((t, TextStartSource::ModuleData));
        }
    }
    let text_sect = file.section_by_name(".text").map(|s| s.address());
    if let Some(t) = text_sect {
        if plausible(t) {
            return Some((t, TextStartSource::TextSection));
        }
    }
    // Nothing verifiable: take the best guess.
    candidates
        .into_iter()
        .chain(text_sect.map(|t| (t, TextStartSource::TextSection)))
        .find(|c| c.0 != 0)
}

/// Finds `runtime.firstmoduledata` and returns its `text` field.
///
/// The module data is found by its `funcnametab` and `ftab` slice pointers,
/// which point into the pclntab at known offsets. (Its first field, the
/// pcHeader pointer, is not relied on: newer toolchains may stop setting it.)
///
/// ```text
/// pcHeader *pcHeader                                   word 0
/// funcnametab, cutab, filetab, pctab, pclntable, ftab  words 1..=18 (slices)
/// findfunctab, minpc, maxpc                            words 19, 20, 21
/// text, etext                                          words 22, 23
/// ```
///
/// Pointer fields are read from the file; if they are 0 there (linkers
/// that leave the value only in a RELATIVE dynamic relocation), the
/// relocation addend is used instead.
pub(crate) fn text_from_moduledata(file: &object::File<'_>, tab: &Pclntab<'_>) -> Option<u64> {
    moduledata_word(file, tab, 22)
}

/// Word `word` (pointer-sized) of `runtime.firstmoduledata`, found as for
/// [`text_from_moduledata`]: e.g. its `gofunc` field, whose position the
/// binary's Go version gives.
pub fn moduledata_word(file: &object::File<'_>, tab: &Pclntab<'_>, word: usize) -> Option<u64> {
    if tab.addr == 0 {
        return None;
    }
    let ps = tab.ptr_size as usize;
    let be = tab.big_endian;
    let rd = |b: &[u8], off: usize| -> Option<u64> {
        if ps == 8 {
            let a: [u8; 8] = b.get(off..off + 8)?.try_into().ok()?;
            Some(if be {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            })
        } else {
            read_u32(b, off, be).map(u64::from)
        }
    };
    let want_funcname = tab.addr + tab.offsets.funcname;
    let want_ftab = tab.addr + tab.offsets.pcln;
    let first = u64::from(tab.ft_entry(0));
    let last = u64::from(tab.ft_entry(tab.nfunc));
    let md_size = (word + 1).max(24) * ps;

    // A check on a candidate module data; `get(word)` reads a pointer field.
    let check = |get: &dyn Fn(usize) -> Option<u64>| -> Option<u64> {
        if get(1)? != want_funcname || get(16)? != want_ftab {
            return None;
        }
        let text = get(22)?;
        let (minpc, maxpc) = (get(20).unwrap_or(0), get(21).unwrap_or(0));
        if minpc != 0 && minpc != text.checked_add(first)? {
            return None;
        }
        if maxpc != 0 && maxpc != text.checked_add(last)? {
            return None;
        }
        get(word)
    };

    // 1. Values present in the file. `.go.module` (Go 1.26+) holds just the
    //    module data; otherwise scan the non-executable segments.
    let mut regions: Vec<(u64, &[u8])> = Vec::new();
    if let Some(s) = file.section_by_name(".go.module") {
        if let Ok(d) = s.data() {
            regions.push((s.address(), d));
        }
    }
    for seg in file.segments() {
        if !segment_is_exec(&seg) {
            if let Ok(d) = seg.data() {
                regions.push((seg.address(), d));
            }
        }
    }
    for &(base, data) in &regions {
        // Word 1 of the module data is the funcnametab pointer.
        let mut off = ((ps as u64 - (base % ps as u64)) % ps as u64) as usize + ps;
        while off - ps + md_size <= data.len() {
            if rd(data, off) == Some(want_funcname) {
                let md = &data[off - ps..];
                if let Some(t) = check(&|w| rd(md, w * ps)) {
                    return Some(t);
                }
            }
            off += ps;
        }
    }

    // 2. Values only in dynamic relocations.
    let relocs: std::collections::HashMap<u64, u64> = file
        .dynamic_relocations()?
        .filter_map(|(off, r)| match r.flags() {
            object::RelocationFlags::Elf { r_type }
                if r_type.0 == R_X86_64_RELATIVE || r_type.0 == R_AARCH64_RELATIVE =>
            {
                Some((off, r.addend() as u64))
            }
            _ => None,
        })
        .collect();
    let mut starts: Vec<u64> = relocs
        .iter()
        .filter(|&(&o, &a)| a == want_funcname && o >= ps as u64)
        .map(|(&o, _)| o - ps as u64)
        .collect();
    starts.sort_unstable();
    for md in starts {
        let get = |w: usize| -> Option<u64> {
            let at = md + (w * ps) as u64;
            if let Some(&a) = relocs.get(&at) {
                return Some(a);
            }
            bytes_from(file, at).and_then(|b| rd(b, 0))
        };
        if let Some(t) = check(&get) {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgo::{go_cmd, go_paths, scratch_dir};
    use std::collections::{HashMap, HashSet};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Stdio;
    use std::sync::OnceLock;

    // ---- synthetic tables ----

    /// Builds a minimal Go 1.20-style table with the given functions
    /// (name, entry offset) and a text end offset. Each function gets a
    /// line table mapping its whole range to `100 + index`, in file
    /// `f<index>.go`.
    fn synth(funcs: &[(&str, u32)], end: u32) -> Vec<u8> {
        let n = funcs.len();
        let hdr_len = 8 + 8 * 8;
        let mut funcnametab = Vec::new();
        let mut name_offs = Vec::new();
        for (name, _) in funcs {
            name_offs.push(funcnametab.len() as u32);
            funcnametab.extend_from_slice(name.as_bytes());
            funcnametab.push(0);
        }
        let mut filetab = Vec::new();
        let mut cutab = Vec::new();
        for i in 0..n {
            cutab.extend_from_slice(&(filetab.len() as u32).to_le_bytes());
            filetab.extend_from_slice(format!("f{i}.go").as_bytes());
            filetab.push(0);
        }
        // pctab: offset 0 is unused (0 means "no table").
        let mut pctab = vec![0u8];
        let mut tables = Vec::new();
        for i in 0..n {
            let size = funcs.get(i + 1).map(|f| f.1).unwrap_or(end) - funcs[i].1;
            let enc = |pctab: &mut Vec<u8>, value: i32| -> u32 {
                let off = pctab.len() as u32;
                // value delta from -1, zig-zag like encoding.
                let d = value + 1;
                let uv = if d < 0 {
                    ((!d as u32) << 1) | 1
                } else {
                    (d as u32) << 1
                };
                for v in [uv, size] {
                    let mut v = v;
                    while v >= 0x80 {
                        pctab.push((v as u8) | 0x80);
                        v >>= 7;
                    }
                    pctab.push(v as u8);
                }
                pctab.push(0);
                off
            };
            let file = enc(&mut pctab, 0);
            let line = enc(&mut pctab, 100 + i as i32);
            tables.push((file, line));
        }
        let functab_len = (2 * n + 1) * 4;
        let mut pcln = vec![0u8; functab_len];
        for i in 0..n {
            let off = pcln.len() as u32;
            pcln[8 * i..8 * i + 4].copy_from_slice(&funcs[i].1.to_le_bytes());
            pcln[8 * i + 4..8 * i + 8].copy_from_slice(&off.to_le_bytes());
            let fields: [u32; 11] = [
                funcs[i].1,
                name_offs[i],
                0,
                0,
                0,
                tables[i].0,
                tables[i].1,
                0,
                i as u32, // cuOffset: one CU per function here
                0,
                0,
            ];
            for f in fields {
                pcln.extend_from_slice(&f.to_le_bytes());
            }
        }
        pcln[8 * n..8 * n + 4].copy_from_slice(&end.to_le_bytes());

        let funcname_off = hdr_len;
        let cu_off = funcname_off + funcnametab.len();
        let filetab_off = cu_off + cutab.len();
        let pctab_off = filetab_off + filetab.len();
        let pcln_off = pctab_off + pctab.len();
        let mut out = Vec::new();
        out.extend_from_slice(&GO120_MAGIC.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            n as u64,
            n as u64,
            0,
            funcname_off as u64,
            cu_off as u64,
            filetab_off as u64,
            pctab_off as u64,
            pcln_off as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for part in [&funcnametab, &cutab, &filetab, &pctab, &pcln] {
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn synthetic_table() {
        let data = synth(
            &[("a.first", 0), ("b.second", 0x40), ("c.third", 0x90)],
            0xa0,
        );
        let t = Pclntab::parse(&data, Some(0x1000)).unwrap();
        assert_eq!(t.len(), 3);
        let all: Vec<_> = t.funcs().collect();
        assert_eq!(
            all,
            vec![
                Func {
                    name: "a.first",
                    entry: 0x1000,
                    end: 0x1040
                },
                Func {
                    name: "b.second",
                    entry: 0x1040,
                    end: 0x1090
                },
                Func {
                    name: "c.third",
                    entry: 0x1090,
                    end: 0x10a0
                },
            ]
        );
        assert_eq!(t.lookup("b.second"), Some(all[1]));
        assert_eq!(t.lookup("b.secon"), None);
        assert_eq!(t.lookup("b.second2"), None);
        assert_eq!(t.func_at(0xfff), None);
        assert_eq!(t.func_at(0x1000), Some(all[0]));
        assert_eq!(t.func_at(0x103f), Some(all[0]));
        assert_eq!(t.func_at(0x1040), Some(all[1]));
        assert_eq!(t.func_at(0x109f), Some(all[2]));
        assert_eq!(t.func_at(0x10a0), None);
        assert_eq!(t.line(0x1000), Some(("f0.go", 100)));
        assert_eq!(t.line(0x1050), Some(("f1.go", 101)));
        assert_eq!(t.line(0x109f), Some(("f2.go", 102)));
        assert_eq!(t.line(0x10a0), None);
        // Header text start (0 here) is used when none is given.
        let t0 = Pclntab::parse(&data, None).unwrap();
        assert_eq!(t0.func_at(0x40).map(|f| f.name), Some("b.second"));
    }

    #[test]
    fn synthetic_errors() {
        let mut data = synth(&[("a", 0), ("b", 0x10)], 0x20);
        for (magic, want) in [
            (0xffff_fffau32, 0xffff_fffa),
            (0xffff_fffb, 0xffff_fffb),
            (0x1234_5678, 0x1234_5678),
        ] {
            let mut d = data.clone();
            d[..4].copy_from_slice(&magic.to_le_bytes());
            match Pclntab::parse(&d, None) {
                Err(PclntabError::UnsupportedVersion(m)) => assert_eq!(m, want),
                other => panic!("{other:?}"),
            }
        }
        // Go 1.18 magic is accepted (same layout for the fields used here).
        data[..4].copy_from_slice(&GO118_MAGIC.to_le_bytes());
        assert!(Pclntab::parse(&data, None).is_ok());
        assert!(matches!(
            Pclntab::parse(&data[..data.len() - 30], None),
            Err(PclntabError::Malformed(_))
        ));
        assert!(matches!(
            Pclntab::parse(&data[..6], None),
            Err(PclntabError::Malformed(_))
        ));
        let mut bad = data.clone();
        bad[7] = 3; // pointer size
        assert!(matches!(
            Pclntab::parse(&bad, None),
            Err(PclntabError::Malformed(_))
        ));
    }

    #[test]
    fn varint() {
        let mut p: &[u8] = &[0x7f, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x80];
        assert_eq!(read_varint(&mut p), Some(0x7f));
        assert_eq!(read_varint(&mut p), Some(0x80));
        assert_eq!(read_varint(&mut p), Some(u32::MAX));
        assert_eq!(read_varint(&mut p), None);
    }

    #[test]
    fn not_go() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        assert!(matches!(
            Pclntab::from_elf(&file),
            Err(PclntabError::Missing)
        ));
    }

    // ---- real Go binaries ----

    const GO_MAIN: &str = r#"package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

type counter struct {
	mu sync.Mutex
	n  int
}

//go:noinline
func (c *counter) inc() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

//go:noinline
func work(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i
	}
	return s
}

type number interface{ ~int | ~float64 }

//go:noinline
func sum[T number](xs []T) T {
	var s T
	for _, x := range xs {
		s += x
	}
	return s
}

//go:noinline
func héllo() string { return "héllo" }

func main() {
	c := &counter{}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.inc()
		}()
	}
	wg.Wait()
	ch := make(chan int)
	go func() { ch <- work(10) }()
	select {
	case v := <-ch:
		fmt.Println(v, c.n, sum([]int{1, 2}), sum([]float64{1.5}), héllo())
	case <-time.After(time.Second):
		os.Exit(1)
	}
}
"#;

    const GO_CGO_MAIN: &str = "package main

// static int add(int a, int b) { return a + b; }
import \"C\"
import \"fmt\"

func main() { fmt.Println(C.add(1, 2)) }
";

    fn src_line(marker: &str) -> u32 {
        GO_MAIN
            .lines()
            .position(|l| l.starts_with(marker))
            .map(|i| i as u32 + 1)
            .unwrap_or_else(|| panic!("marker {marker:?}"))
    }

    struct Fixture {
        go: PathBuf,
        /// `go env GOVERSION`, for messages.
        version: String,
        dir: PathBuf,
        /// name -> path: plain, stripped, pie, pie-stripped, and, when cgo
        /// works here, cgo, cgo-stripped, cgo-pie, cgo-pie-stripped.
        bins: HashMap<&'static str, PathBuf>,
    }

    fn build_fixture(go: PathBuf) -> Option<Fixture> {
        if !go.exists() {
            eprintln!(
                "note: Go toolchain {} not found (set TRACER_GO); skipping pclntab tests on real binaries",
                go.display()
            );
            return None;
        }
        let dir = scratch_dir("tracer-pclntab-test");
        std::fs::create_dir_all(dir.join("cgo")).unwrap();
        std::fs::write(
            dir.join("go.mod"),
            "module example.com/pclntabtest\n\ngo 1.21\n",
        )
        .unwrap();
        std::fs::write(dir.join("main.go"), GO_MAIN).unwrap();
        std::fs::write(dir.join("cgo/main.go"), GO_CGO_MAIN).unwrap();
        let out = go_cmd(&go, &dir)
            .args(["env", "GOVERSION"])
            .output()
            .expect("run go env");
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut bins = HashMap::new();
        let mut build = |name: &'static str, pkg: &str, cgo: bool, args: &[&str]| -> bool {
            let bin = dir.join(format!("bin-{name}"));
            let out = go_cmd(&go, &dir)
                .env("CGO_ENABLED", if cgo { "1" } else { "0" })
                .arg("build")
                .args(args)
                .arg("-o")
                .arg(&bin)
                .arg(pkg)
                .output()
                .expect("run go build");
            if !out.status.success() {
                let msg = format!(
                    "{version}: go build {args:?} {pkg} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // Without a working C toolchain only the cgo variants go.
                assert!(cgo, "{msg}");
                eprintln!("note: skipping cgo (external linking) variants: {msg}");
                return false;
            }
            bins.insert(name, bin);
            true
        };
        build("plain", ".", false, &[]);
        build("stripped", ".", false, &["-ldflags=-s -w"]);
        build("pie", ".", false, &["-buildmode=pie"]);
        build(
            "pie-stripped",
            ".",
            false,
            &["-buildmode=pie", "-ldflags=-s -w"],
        );
        let _ = build("cgo", "./cgo", true, &[])
            && build("cgo-stripped", "./cgo", true, &["-ldflags=-s -w"])
            && build("cgo-pie", "./cgo", true, &["-buildmode=pie"])
            && build(
                "cgo-pie-stripped",
                "./cgo",
                true,
                &["-buildmode=pie", "-ldflags=-s -w"],
            );
        Some(Fixture {
            go,
            version,
            dir,
            bins,
        })
    }

    /// Names the toolchain in the output of a failing test.
    struct Ctx<'a>(&'a str);
    impl Drop for Ctx<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("(binaries built by {})", self.0);
            }
        }
    }

    /// Test binaries, built once per test run for each toolchain.
    fn fixtures() -> &'static [Fixture] {
        static F: OnceLock<Vec<Fixture>> = OnceLock::new();
        F.get_or_init(|| go_paths().into_iter().filter_map(build_fixture).collect())
    }

    struct Loaded {
        data: Vec<u8>,
    }
    impl Loaded {
        fn new(p: &Path) -> Self {
            Loaded {
                data: std::fs::read(p).unwrap(),
            }
        }
        fn file(&self) -> object::File<'_> {
            object::File::parse(&*self.data).unwrap()
        }
    }

    /// Text symbols of the ELF symbol table: name -> addresses.
    fn symtab(file: &object::File<'_>) -> HashMap<String, HashSet<u64>> {
        let mut m: HashMap<String, HashSet<u64>> = HashMap::new();
        for s in file.symbols() {
            if s.kind() == object::SymbolKind::Text {
                if let Ok(n) = s.name() {
                    m.entry(n.to_string()).or_default().insert(s.address());
                }
            }
        }
        m
    }

    fn sym_addr(file: &object::File<'_>, name: &str) -> u64 {
        file.symbol_by_name(name)
            .unwrap_or_else(|| panic!("no symbol {name}"))
            .address()
    }

    fn go_addr2line(fx: &Fixture, bin: &Path, pcs: &[u64]) -> Vec<(String, String, u32)> {
        let mut child = go_cmd(&fx.go, &fx.dir)
            .args(["tool", "addr2line"])
            .arg(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("go tool addr2line");
        {
            let mut stdin = child.stdin.take().unwrap();
            for pc in pcs {
                writeln!(stdin, "{pc:#x}").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 * pcs.len());
        lines
            .chunks(2)
            .map(|c| {
                let (file, line) = c[1].rsplit_once(':').unwrap();
                (
                    c[0].to_string(),
                    file.to_string(),
                    line.parse().unwrap_or(0),
                )
            })
            .collect()
    }

    #[test]
    fn entries_match_symtab() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for name in ["plain", "pie", "cgo", "cgo-pie"] {
                let Some(bin) = fx.bins.get(name) else {
                    continue;
                };
                let l = Loaded::new(bin);
                let file = l.file();
                let tab = Pclntab::from_elf(&file).unwrap();
                assert_eq!(tab.text_start(), sym_addr(&file, "runtime.text"), "{name}");
                let syms = symtab(&file);
                let mut matched = 0;
                let mut prev_end = 0;
                for f in tab.funcs() {
                    assert!(
                        f.entry >= prev_end && f.end >= f.entry,
                        "{name}: order at {}",
                        f.name
                    );
                    prev_end = f.end;
                    let plain = syms.get(f.name);
                    let abi0 = syms.get(&format!("{}.abi0", f.name));
                    if plain.is_some() || abi0.is_some() {
                        let found = plain.is_some_and(|a| a.contains(&f.entry))
                            || abi0.is_some_and(|a| a.contains(&f.entry));
                        assert!(
                            found,
                            "{name}: {} at {:#x}, symtab {plain:x?} {abi0:x?}",
                            f.name, f.entry
                        );
                        matched += 1;
                    }
                }
                assert!(
                    matched * 10 >= tab.len() * 9,
                    "{name}: only {matched} of {} in symtab",
                    tab.len()
                );
                // Names that occur twice (function + ABI wrapper): lookup picks
                // the one the symbol table gives the plain name.
                let mut seen: HashMap<&str, usize> = HashMap::new();
                for f in tab.funcs() {
                    *seen.entry(f.name).or_default() += 1;
                }
                let mut dups = 0;
                for (fname, _) in seen.iter().filter(|(_, &c)| c > 1) {
                    let (Some(plain), Some(_)) =
                        (syms.get(*fname), syms.get(&format!("{fname}.abi0")))
                    else {
                        continue;
                    };
                    let got = tab.lookup(fname).unwrap();
                    assert!(
                        plain.contains(&got.entry),
                        "{name}: lookup({fname}) = {:#x}, symtab {plain:x?}",
                        got.entry
                    );
                    dups += 1;
                }
                eprintln!(
                    "{} {name}: {} funcs, {matched} in symtab, {dups} name pairs with ABI wrappers",
                    fx.version,
                    tab.len()
                );
                assert_eq!(tab.funcs().count(), tab.len());
            }
        }
    }

    fn check_known(tab: &Pclntab<'_>, file: &object::File<'_>, name: &str) {
        for fname in [
            "main.main",
            "runtime.gopark",
            "main.(*counter).inc",
            "main.work",
            "main.héllo",
        ] {
            let f = tab
                .lookup(fname)
                .unwrap_or_else(|| panic!("{name}: no {fname}"));
            assert_eq!(f.name, fname);
            assert_eq!(f.entry, sym_addr(file, fname), "{name}: {fname}");
            assert!(f.end > f.entry);
            assert_eq!(tab.func_at(f.entry), Some(f));
            assert_eq!(tab.func_at(f.entry + 1), Some(f));
            assert_eq!(tab.func_at(f.end - 1), Some(f));
            assert_ne!(tab.func_at(f.end).map(|g| g.entry), Some(f.entry));
        }
        let lock_slow = tab
            .lookup("internal/sync.(*Mutex).lockSlow")
            .or_else(|| tab.lookup("sync.(*Mutex).lockSlow"))
            .expect("Mutex.lockSlow");
        assert_eq!(lock_slow.entry, sym_addr(file, lock_slow.name));
        // Generic instantiation names use the shape, e.g. main.sum[go.shape.int].
        assert!(
            tab.funcs().any(|f| f.name.starts_with("main.sum[")),
            "{name}: generic"
        );
        assert!(tab.lookup("main.nosuchfunc").is_none());
        assert!(tab.lookup("main.mai").is_none());
    }

    #[test]
    fn lookup_known_functions() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for name in ["plain", "pie"] {
                let l = Loaded::new(&fx.bins[name]);
                let file = l.file();
                let tab = Pclntab::from_elf(&file).unwrap();
                check_known(&tab, &file, name);
            }
        }
    }

    #[test]
    fn stripped_matches_unstripped() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for (full, stripped) in [
                ("plain", "stripped"),
                ("pie", "pie-stripped"),
                ("cgo", "cgo-stripped"),
                ("cgo-pie", "cgo-pie-stripped"),
            ] {
                let (Some(a), Some(b)) = (fx.bins.get(full), fx.bins.get(stripped)) else {
                    continue;
                };
                let la = Loaded::new(a);
                let lb = Loaded::new(b);
                let (fa, fb) = (la.file(), lb.file());
                assert!(
                    fb.symbol_by_name("runtime.text").is_none(),
                    "{stripped} has a symtab"
                );
                let ta = Pclntab::from_elf(&fa).unwrap();
                let tb = Pclntab::from_elf(&fb).unwrap();
                assert_eq!(ta.text_start_source(), TextStartSource::Symbol);
                assert_ne!(tb.text_start_source(), TextStartSource::Symbol);
                eprintln!(
                    "{} {stripped}: text start {:#x} from {:?}, pclntab at {:#x}, {} funcs",
                    fx.version,
                    tb.text_start(),
                    tb.text_start_source(),
                    tb.address(),
                    tb.len()
                );
                assert_eq!(ta.text_start(), tb.text_start(), "{stripped}");
                assert_eq!(ta.len(), tb.len());
                assert!(
                    ta.funcs().eq(tb.funcs()),
                    "{stripped}: function lists differ"
                );
                // Lines agree too.
                for f in ta.funcs().step_by(37) {
                    assert_eq!(ta.line(f.entry), tb.line(f.entry));
                }
                if full == "plain" || full == "pie" {
                    // Same name lookups, checked against the unstripped symtab.
                    check_known(&tb, &fa, stripped);
                }
            }
        }
    }

    /// Every way of finding `runtime.text` agrees with the symbol.
    #[test]
    fn text_start_sources() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for name in ["plain", "pie", "cgo", "cgo-pie"] {
                let Some(bin) = fx.bins.get(name) else {
                    continue;
                };
                let l = Loaded::new(bin);
                let file = l.file();
                let tab = Pclntab::from_elf(&file).unwrap();
                let text = sym_addr(&file, "runtime.text");
                assert_eq!(text_from_moduledata(&file, &tab), Some(text), "{name}");
                if tab.header_text_start != 0 {
                    assert_eq!(tab.header_text_start, text, "{name}");
                }
                let sect = file.section_by_name(".text").unwrap().address();
                if name.starts_with("cgo") {
                    // The external linker puts C start-up code first.
                    assert_ne!(sect, text, "{name}");
                } else {
                    assert_eq!(sect, text, "{name}");
                }
            }
        }
    }

    /// Some linkers (lld by default) leave pointer fields of PIE binaries
    /// as 0 in the file and put the value only in the RELATIVE dynamic
    /// relocation. Simulate that by zeroing `runtime.firstmoduledata`.
    #[test]
    fn moduledata_from_relocations() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for name in ["pie", "cgo-pie"] {
                let Some(bin) = fx.bins.get(name) else {
                    continue;
                };
                let mut data = std::fs::read(bin).unwrap();
                let (text, md_off) = {
                    let file = object::File::parse(&*data).unwrap();
                    let md = sym_addr(&file, "runtime.firstmoduledata");
                    let sect = file
                        .sections()
                        .find(|s| s.address() <= md && md < s.address() + s.size())
                        .unwrap();
                    let (foff, _) = sect.file_range().unwrap();
                    (
                        sym_addr(&file, "runtime.text"),
                        (foff + md - sect.address()) as usize,
                    )
                };
                data[md_off..md_off + 24 * 8].fill(0);
                let file = object::File::parse(&*data).unwrap();
                let tab = Pclntab::from_elf(&file).unwrap();
                assert_eq!(text_from_moduledata(&file, &tab), Some(text), "{name}");
            }
        }
    }

    #[test]
    fn lines_match_go_addr2line() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for (truth, ours) in [("plain", "stripped"), ("pie", "pie-stripped")] {
                let (Some(tb), Some(ob)) = (fx.bins.get(truth), fx.bins.get(ours)) else {
                    continue;
                };
                let l = Loaded::new(ob);
                let file = l.file();
                let tab = Pclntab::from_elf(&file).unwrap();
                let mut pcs = Vec::new();
                for f in tab
                    .funcs()
                    .step_by(3)
                    .chain(tab.funcs().filter(|f| f.name.starts_with("main.")))
                {
                    let size = f.end - f.entry;
                    pcs.extend([f.entry, f.entry + size / 3, f.entry + size / 2, f.end - 1]);
                }
                let want = go_addr2line(fx, tb, &pcs);
                let mut checked = 0;
                for (pc, (wfunc, wfile, wline)) in pcs.iter().zip(&want) {
                    let got_func = tab.func_at(*pc).map(|f| f.name);
                    if wfunc == "?" {
                        continue;
                    }
                    assert_eq!(got_func, Some(wfunc.as_str()), "{ours}: func at {pc:#x}");
                    let got = tab.line(*pc);
                    if wline == &0 || wfile == "?" {
                        assert!(
                            got.is_none() || got.unwrap().1 == 0,
                            "{ours}: {pc:#x} {got:?}"
                        );
                        continue;
                    }
                    assert_eq!(
                        got,
                        Some((wfile.as_str(), *wline)),
                        "{ours}: line at {pc:#x} in {wfunc}"
                    );
                    checked += 1;
                }
                assert!(checked > 1000, "{ours}: only {checked} PCs checked");

                // Independent of any tool: the source positions of main.*
                // functions. Functions with a prologue start on the `func` line;
                // frameless leaf functions start on their first statement.
                for (fname, marker, slack) in [
                    ("main.main", "func main()", 0),
                    ("main.(*counter).inc", "func (c *counter) inc()", 0),
                    ("main.work", "func work(", 3),
                    ("main.héllo", "func héllo()", 0),
                ] {
                    let f = tab.lookup(fname).unwrap();
                    let (file, line) = tab.line(f.entry).unwrap();
                    assert!(file.ends_with("/main.go"), "{file}");
                    let want = src_line(marker);
                    assert!(
                        (want..=want + slack).contains(&line),
                        "{ours}: {fname} at line {line}, want {want}"
                    );
                }
                let main_body = tab.lookup("main.main").unwrap();
                let last_line = GO_MAIN.lines().count() as u32;
                let body_lines: HashSet<u32> = (main_body.entry..main_body.end)
                    .filter_map(|pc| tab.line(pc))
                    .filter(|(f, _)| f.ends_with("/main.go"))
                    .map(|(_, l)| l)
                    .collect();
                assert!(body_lines
                    .iter()
                    .all(|&l| l >= src_line("func main()") && l <= last_line));
                assert!(
                    body_lines.contains(&src_line("	wg.Wait()")),
                    "{body_lines:?}"
                );
            }
            // cgo binaries: each stripped one against go tool addr2line on the
            // unstripped one with the same layout.
            for (truth, ours) in [("cgo", "cgo-stripped"), ("cgo-pie", "cgo-pie-stripped")] {
                let (Some(tb), Some(ob)) = (fx.bins.get(truth), fx.bins.get(ours)) else {
                    continue;
                };
                let l = Loaded::new(ob);
                let file = l.file();
                let tab = Pclntab::from_elf(&file).unwrap();
                let pcs: Vec<u64> = tab
                    .funcs()
                    .step_by(11)
                    .map(|f| f.entry + (f.end - f.entry) / 2)
                    .collect();
                let want = go_addr2line(fx, tb, &pcs);
                for (pc, (wfunc, wfile, wline)) in pcs.iter().zip(&want) {
                    if wfunc == "?" || *wline == 0 {
                        continue;
                    }
                    assert_eq!(tab.func_at(*pc).map(|f| f.name), Some(wfunc.as_str()));
                    assert_eq!(
                        tab.line(*pc),
                        Some((wfile.as_str(), *wline)),
                        "{ours}: {pc:#x}"
                    );
                }
            }
        }
    }

    /// The frames of a PC, inlined calls included, are DWARF's (as addr2line
    /// reads them) in the unstripped binary, and the same in the stripped one
    /// (where `go:func.*` is found through the module data).
    #[test]
    fn inline_frames_match_dwarf() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            for (full, stripped) in [("plain", "stripped"), ("pie", "pie-stripped")] {
                let bin = crate::binary::Binary::open(&fx.bins[full]).unwrap();
                let dwarf = crate::dwarf::load(&bin).unwrap().unwrap();
                let lines = crate::lines::Lines::new(dwarf).unwrap();
                let file = bin.object().unwrap();
                let tab = Pclntab::from_elf(&file).unwrap();
                assert!(tab.gofunc().is_some(), "{full}: no go:func.*");
                let info = crate::buildinfo::read(&file).unwrap();
                let layout = crate::layouts::for_version(&info.version).unwrap();
                let word = layout.offset("runtime.moduledata.gofunc").unwrap() as usize / 8;
                assert_eq!(
                    moduledata_word(&file, &tab, word),
                    tab.gofunc(),
                    "{full}: go:func.* from the module data"
                );

                // The stripped build's code is the same; its data is not (the
                // build settings differ), so go:func.* is elsewhere.
                let sl = Loaded::new(&fx.bins[stripped]);
                let sfile = sl.file();
                let mut stab = Pclntab::from_elf(&sfile).unwrap();
                assert_eq!(stab.gofunc(), None);
                let g = moduledata_word(&sfile, &stab, word).unwrap();
                stab.set_gofunc(&sfile, g);

                let (mut checked, mut inlined) = (0, 0);
                for f in tab.funcs() {
                    let size = f.end - f.entry;
                    for pc in [
                        f.entry,
                        f.entry + size / 4,
                        f.entry + size / 2,
                        f.entry + size * 3 / 4,
                    ] {
                        // addr2line joins the unit's directory "." to
                        // "<autogenerated>"; Go prints the name alone.
                        let want: Vec<(String, String, u32)> = lines
                            .frames(pc)
                            .iter()
                            .map(|fr| {
                                let file = fr.file.strip_prefix("./").unwrap_or(&fr.file);
                                (fr.function.to_string(), file.to_string(), fr.line)
                            })
                            .collect();
                        if want.is_empty() || want.iter().any(|w| w.2 == 0) {
                            continue;
                        }
                        let got: Vec<(String, String, u32)> = tab
                            .frames(pc)
                            .iter()
                            .map(|fr| (fr.function.to_string(), fr.file.to_string(), fr.line))
                            .collect();
                        assert_eq!(got, want, "{full}: frames at {pc:#x} in {}", f.name);
                        let sgot: Vec<(String, String, u32)> = stab
                            .frames(pc)
                            .iter()
                            .map(|fr| (fr.function.to_string(), fr.file.to_string(), fr.line))
                            .collect();
                        assert_eq!(sgot, want, "{stripped}: frames at {pc:#x}");
                        checked += 1;
                        inlined += usize::from(want.len() > 1);
                    }
                }
                eprintln!(
                    "{} {full}: {checked} PCs, {inlined} in inlined code",
                    fx.version
                );
                assert!(
                    checked > 1000 && inlined > 100,
                    "{full}: {checked} / {inlined}"
                );
            }
        }
    }

    /// A view from a location is the table it was taken from.
    #[test]
    fn view_of_a_location() {
        for fx in fixtures() {
            let l = Loaded::new(&fx.bins["plain"]);
            let file = l.file();
            let tab = Pclntab::from_elf(&file).unwrap();
            let loc = tab.location(&l.data).unwrap();
            let again = Pclntab::view(&l.data, &loc).unwrap();
            assert!(tab.funcs().eq(again.funcs()));
            assert_eq!(tab.gofunc(), again.gofunc());
            let main = tab.lookup("main.main").unwrap();
            assert_eq!(tab.frames(main.entry + 8), again.frames(main.entry + 8));
        }
    }

    #[test]
    fn iteration_is_fast() {
        for fx in fixtures() {
            let _ctx = Ctx(&fx.version);
            let l = Loaded::new(&fx.bins["stripped"]);
            let file = l.file();
            let t0 = std::time::Instant::now();
            let tab = Pclntab::from_elf(&file).unwrap();
            let t1 = std::time::Instant::now();
            let total: usize = tab.funcs().map(|f| f.name.len()).sum();
            let t2 = std::time::Instant::now();
            let found = tab.lookup("runtime.gopark").is_some();
            let t3 = std::time::Instant::now();
            eprintln!(
                "{} stripped, {} funcs: from_elf {:?}, funcs() {:?}, lookup {:?}",
                fx.version,
                tab.len(),
                t1 - t0,
                t2 - t1,
                t3 - t2
            );
            assert!(found && total > 0);
        }
    }
}

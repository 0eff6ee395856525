//! [`TargetInfo`]: everything the rest of the tracer needs to know about the target,
//! gathered in one pass and then immutable.
use crate::binary::{Binary, Symbol};
use crate::lines::{Lines, SourceFrame};
use crate::memory::Memory;
use crate::{dwarf, process, prologue, waitreasons, InspectError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Runtime functions the probes go on. Alternatives are tried in order (names moved
/// between Go versions).
pub const PROBED_FUNCS: &[(&str, &[&str])] = &[
    ("gopark", &["runtime.gopark"]),
    ("ready", &["runtime.ready"]),
    ("execute", &["runtime.execute"]),
    ("goexit0", &["runtime.goexit0"]),
    ("exit", &["runtime.exit.abi0", "runtime.exit"]),
    ("chansend", &["runtime.chansend"]),
    ("chanrecv", &["runtime.chanrecv"]),
    ("selectgo", &["runtime.selectgo"]),
    ("semacquire1", &["runtime.semacquire1"]),
    (
        "lockSlow",
        &["internal/sync.(*Mutex).lockSlow", "sync.(*Mutex).lockSlow"],
    ),
];

/// Keys of [`PROBED_FUNCS`] that the linker keeps only in programs that call
/// them (a program without a select of two cases or more has no
/// `runtime.selectgo`): absent, they are unused, nothing to probe, not missing.
pub const LINKED_IF_USED: &[&str] = &["selectgo", "chansend", "chanrecv", "lockSlow"];

const DATA_SYMBOLS: &[&str] = &[
    "runtime.allgs",
    "runtime.allglen",
    "runtime.waitReasonStrings",
    "runtime.buildVersion",
];

/// Fields of runtime structs the tracer reads, by `type.field` name.
pub const FIELDS: &[(&str, &[&str])] = &[
    (
        "runtime.g",
        &[
            "goid",
            "atomicstatus",
            "waitsince",
            "waitreason",
            "gopc",
            "startpc",
            "parentGoid",
            "m",
            "waiting",
            "sched",
            "sched.pc",
            "sched.sp",
            "sched.bp",
            "stack.hi",
            "trackingSeq",
        ],
    ),
    ("runtime.m", &["curg"]),
    ("runtime.hchan", &["lock", "elemtype", "qcount", "dataqsiz"]),
    ("runtime.sudog", &["c", "elem", "g"]),
    ("sync.RWMutex", &["w", "writerSem", "readerSem"]),
    ("sync.WaitGroup", &["sema"]),
];

/// A runtime function and where its probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFunc {
    /// Short name the plan uses (`gopark`).
    pub key: String,
    /// Symbol name in the binary.
    pub symbol: String,
    pub vaddr: u64,
    pub size: u64,
    /// Offset of the probe from the function entry (past the stack check).
    pub probe_offset: u64,
    /// File offset of the probe: what the uprobe attaches to.
    pub probe_file_offset: u64,
    pub skipped_stack_check: bool,
    /// The probed instruction, as the disassembler names it.
    pub probed_insn: String,
}

/// Offsets of runtime struct fields in the target's Go version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructOffsets(pub HashMap<String, u64>);

impl StructOffsets {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }
}

pub struct TargetInfo {
    /// The process the target runs as: given at inspection (attach), or once
    /// started ([`TargetInfo::with_pid`], `tracer run`).
    pub pid: Option<u32>,
    /// Path the executable is opened through (`/proc/PID/exe` in attach mode).
    pub exe: PathBuf,
    pub go_version: String,
    pub pie: bool,
    pub funcs: HashMap<String, RuntimeFunc>,
    pub data: HashMap<String, Symbol>,
    pub offsets: StructOffsets,
    pub wait_reasons: Vec<std::sync::Arc<str>>,
    /// Symbols or offsets that were looked for and not found.
    pub missing: Vec<String>,
    /// Probed functions the program does not contain because it never calls
    /// them ([`LINKED_IF_USED`]): (key, symbol).
    pub unused: Vec<(String, String)>,
    lines: Option<Lines>,
    binary: Binary,
    /// Run-time minus link-time addresses, once learned (see `load_bias`).
    bias: std::sync::OnceLock<u64>,
    /// (device, inode) of the executable: how its process is recognised.
    exe_id: Option<(u64, u64)>,
}

impl TargetInfo {
    /// Inspects a live process.
    pub fn from_pid(pid: u32) -> Result<Self, InspectError> {
        let exe = process::exe_path(pid)?;
        Self::inspect(&exe, Some(pid))
    }

    /// Inspects an executable that is not running yet (run mode).
    pub fn from_path(path: &Path) -> Result<Self, InspectError> {
        Self::inspect(path, None)
    }

    fn inspect(exe: &Path, pid: Option<u32>) -> Result<Self, InspectError> {
        let binary = Binary::open(exe)?;
        let info = crate::buildinfo::read(&binary.object()?)
            .map_err(|_| InspectError::NotGo(exe.into()))?;
        let go_version = info.raw_version.clone();
        if !info.version.at_least(1, 21) {
            return Err(InspectError::GoTooOld {
                path: exe.into(),
                version: go_version,
            });
        }
        let pie = binary.is_pie();
        let mut missing = Vec::new();
        let mut unused = Vec::new();

        let mut wanted: Vec<&str> = DATA_SYMBOLS.to_vec();
        for (_, alts) in PROBED_FUNCS {
            wanted.extend_from_slice(alts);
        }
        let syms = binary.symbols(&wanted)?;
        if !syms.contains_key("runtime.gopark") {
            if binary.section_data(".gopclntab").is_some() && !binary.has_symtab() {
                return Err(InspectError::Stripped(exe.into()));
            }
            return Err(InspectError::NoSymbols {
                path: exe.into(),
                symbol: "runtime.gopark".into(),
            });
        }
        let mut funcs = HashMap::new();
        for (key, alts) in PROBED_FUNCS {
            let Some((name, sym)) = alts.iter().find_map(|n| syms.get(*n).map(|s| (*n, *s))) else {
                if LINKED_IF_USED.contains(key) {
                    unused.push((key.to_string(), alts.join(" | ")));
                } else {
                    missing.push(alts.join(" | "));
                }
                continue;
            };
            let code = binary
                .bytes_at(sym.addr, 32.min(sym.size as usize))
                .unwrap_or(&[]);
            let place = prologue::placement(code, sym.addr);
            let Some(file_off) = binary.file_offset(sym.addr + place.offset) else {
                missing.push(format!("{name} (not in a loadable segment)"));
                continue;
            };
            funcs.insert(
                key.to_string(),
                RuntimeFunc {
                    key: key.to_string(),
                    symbol: name.to_string(),
                    vaddr: sym.addr,
                    size: sym.size,
                    probe_offset: place.offset,
                    probe_file_offset: file_off,
                    skipped_stack_check: place.skipped_stack_check,
                    probed_insn: format!("{:?}", place.mnemonic).to_lowercase(),
                },
            );
        }
        let data: HashMap<String, Symbol> = DATA_SYMBOLS
            .iter()
            .filter_map(|n| syms.get(*n).map(|s| (n.to_string(), *s)))
            .collect();

        let dwarf = dwarf::load(&binary)?;
        let mut offsets = StructOffsets::default();
        if let Some(d) = &dwarf {
            let found = dwarf::member_offsets(d, FIELDS).map_err(|e| InspectError::Dwarf {
                path: exe.into(),
                reason: e.to_string(),
            })?;
            offsets.0 = found.offsets;
            missing.extend(found.missing);
        }
        if offsets.get("runtime.g.goid").is_none() {
            return Err(InspectError::NoOffsets {
                path: exe.into(),
                what: "no DWARF type information for runtime.g".into(),
                known: "none without DWARF".into(),
            });
        }

        let bias = pid.and_then(|p| load_bias(&binary, p)).unwrap_or(0);
        let wait_reasons = match data.get("runtime.waitReasonStrings") {
            Some(sym) => {
                let mem = pid.map(Memory::new);
                waitreasons::read(&binary, *sym, mem.as_ref().map(|m| (m, bias)))
                    .into_iter()
                    .map(std::sync::Arc::from)
                    .collect()
            }
            None => {
                missing.push("runtime.waitReasonStrings".into());
                Vec::new()
            }
        };
        let lines = match dwarf {
            Some(d) => Lines::new(d).ok(),
            None => None,
        };
        Ok(Self {
            pid,
            exe: exe.to_path_buf(),
            go_version,
            pie,
            funcs,
            data,
            offsets,
            wait_reasons,
            missing,
            unused,
            lines,
            binary,
            bias: std::sync::OnceLock::new(),
            exe_id: file_id(exe),
        })
    }

    /// The process the target will run as (`tracer run`'s child, held before its
    /// `exec`): a PIE's load bias is learned from it once it runs the executable.
    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    pub fn binary(&self) -> &Binary {
        &self.binary
    }

    /// Name the runtime gives wait reason `n`.
    pub fn wait_reason(&self, n: u64) -> std::sync::Arc<str> {
        self.wait_reasons
            .get(n as usize)
            .cloned()
            .unwrap_or_else(|| format!("wait reason {n}").into())
    }

    /// Source frames of a link-time PC, innermost (inlined) first.
    pub fn frames(&self, pc: u64) -> Vec<SourceFrame> {
        match &self.lines {
            Some(l) => l.frames(pc),
            None => Vec::new(),
        }
    }

    /// Run-time minus link-time addresses: 0 for a fixed-address executable. A
    /// PIE's is read from `/proc/PID/maps` once the process runs this executable
    /// (`tracer run`'s child does only after its `exec`), then kept; `None`
    /// until then.
    pub fn load_bias(&self) -> Option<u64> {
        if !self.pie {
            return Some(0);
        }
        if let Some(b) = self.bias.get() {
            return Some(*b);
        }
        let pid = self.pid?;
        let runs_it =
            self.exe_id.is_some() && file_id(Path::new(&format!("/proc/{pid}/exe"))) == self.exe_id;
        if !runs_it {
            return None;
        }
        let b = load_bias(&self.binary, pid)?;
        Some(*self.bias.get_or_init(|| b))
    }
}

/// (device, inode) of a file, following links.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn load_bias(bin: &Binary, pid: u32) -> Option<u64> {
    if !bin.is_pie() {
        return Some(0);
    }
    let (vaddr, file_off) = bin.first_segment_vaddr()?;
    let maps = process::exe_mappings(pid).ok()?;
    let m = maps.iter().find(|m| m.file_offset == file_off)?;
    Some(m.start.wrapping_sub(vaddr))
}

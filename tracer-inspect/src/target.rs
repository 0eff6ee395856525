//! [`TargetInfo`]: everything the rest of the tracer needs to know about the target,
//! gathered in one pass and then immutable.
use crate::binary::{Binary, Symbol};
use crate::layouts::{self, GoLayout};
use crate::lines::{Lines, SourceFrame};
use crate::memory::Memory;
use crate::pclnlines::PclnLines;
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
    "runtime.work",
    "runtime.allp",
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
    (
        "runtime.hchan",
        &["lock", "elemtype", "qcount", "dataqsiz", "timer"],
    ),
    ("runtime.sudog", &["c", "elem", "g", "waitlink"]),
    ("runtime.timer", &["when", "arg"]),
    // A timer channel that does not point to its timer (before Go 1.23, or
    // built from a module older than go 1.23: `asynctimerchan=1`) is found in
    // each P's heap of timers (`p.timers`: a `[]*timer`, or from Go 1.23 a
    // `timers` whose `heap` is a `[]timerWhen`), by the timer's `arg`.
    ("runtime.p", &["timers"]),
    ("runtime.timers", &["heap"]),
    ("runtime.workType", &["tstart"]),
    ("sync.RWMutex", &["w", "writerSem", "readerSem"]),
    ("sync.WaitGroup", &["sema"]),
    // A channel's element type by name (`chan os.Signal`): the type's name is
    // at `Str` from the module's `types`.
    ("internal/abi.Type", &["TFlag", "Str"]),
    ("runtime.moduledata", &["types"]),
];

/// Fields some supported Go versions do not have, whose absence is not a loss:
/// `hchan.timer` and the `timers` struct came with Go 1.23 (before it, a timer
/// channel is found from the timer, in `p.timers`).
pub(crate) fn optional_field(name: &str) -> bool {
    name == "runtime.hchan.timer" || name == "runtime.timers.heap"
}

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
    /// The main module's path and version, from the build info (for labels).
    pub main_module: Option<String>,
    pub main_version: Option<String>,
    pub pie: bool,
    pub funcs: HashMap<String, RuntimeFunc>,
    pub data: HashMap<String, Symbol>,
    pub offsets: StructOffsets,
    /// `runtime.firstmoduledata.types` at link time: type names are read at
    /// offsets from it (see [`crate::typenames`]).
    pub types_base: Option<u64>,
    pub wait_reasons: Vec<std::sync::Arc<str>>,
    /// Symbols or offsets that were looked for and not found.
    pub missing: Vec<String>,
    /// Probed functions the program does not contain because it never calls
    /// them ([`LINKED_IF_USED`]): (key, symbol).
    pub unused: Vec<(String, String)>,
    lines: Option<Lines>,
    /// Lines from the pclntab, when there is no DWARF.
    pcln_lines: Option<PclnLines>,
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
        let mut syms = binary.symbols(&wanted)?;
        if !binary.has_symtab() && binary.section_data(".gopclntab").is_some() {
            syms = stripped_symbols(&binary, &wanted);
            if syms.contains_key("runtime.gopark") && !syms.contains_key("runtime.allgs") {
                return Err(InspectError::Stripped(exe.into()));
            }
        }
        if !syms.contains_key("runtime.gopark") {
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
        // Without DWARF, what it would say comes from the table of Go minors.
        let table = match dwarf {
            Some(_) => None,
            None => Some(layout_for(exe, &info.version)?),
        };
        let mut offsets = StructOffsets::default();
        if let Some(d) = &dwarf {
            let found = dwarf::member_offsets(d, FIELDS).map_err(|e| InspectError::Dwarf {
                path: exe.into(),
                reason: e.to_string(),
            })?;
            offsets.0 = found.offsets;
            missing.extend(found.missing.into_iter().filter(|m| !optional_field(m)));
        } else if let Some(t) = table {
            for (ty, fields) in FIELDS {
                for f in *fields {
                    let name = format!("{ty}.{f}");
                    match t.offset(&name) {
                        Some(o) => {
                            offsets.0.insert(name, o);
                        }
                        None if optional_field(&name) => {}
                        None => missing.push(name),
                    }
                }
            }
        }
        if offsets.get("runtime.g.goid").is_none() {
            return Err(InspectError::NoOffsets {
                path: exe.into(),
                what: "no DWARF type information for runtime.g".into(),
                known: "none without DWARF".into(),
            });
        }

        // Link-time start of the module's type descriptors, where type names are
        // found by offset; read from the module data, which stripped binaries keep.
        let types_base = offsets.get("runtime.moduledata.types").and_then(|o| {
            let obj = binary.object().ok()?;
            let tab = crate::pclntab::Pclntab::from_elf(&obj).ok()?;
            crate::pclntab::moduledata_word(&obj, &tab, o as usize / 8)
        });
        let bias = pid.and_then(|p| load_bias(&binary, p)).unwrap_or(0);
        let wait_reasons = match data.get("runtime.waitReasonStrings") {
            Some(sym) => {
                let mem = pid.map(Memory::new);
                waitreasons::read(&binary, *sym, mem.as_ref().map(|m| (m, bias)))
                    .into_iter()
                    .map(std::sync::Arc::from)
                    .collect()
            }
            None => match table {
                Some(t) => t.wait_reasons.iter().map(|w| w.as_str().into()).collect(),
                None => {
                    missing.push("runtime.waitReasonStrings".into());
                    Vec::new()
                }
            },
        };
        let (lines, pcln_lines) = match dwarf {
            Some(d) => (Lines::new(d).ok(), None),
            None => (None, PclnLines::new(&binary, table)),
        };
        Ok(Self {
            pid,
            exe: exe.to_path_buf(),
            go_version,
            main_module: info.main_path.clone(),
            main_version: info.main_version.clone(),
            pie,
            funcs,
            data,
            offsets,
            types_base,
            wait_reasons,
            missing,
            unused,
            lines,
            pcln_lines,
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
        match (&self.lines, &self.pcln_lines) {
            (Some(l), _) => l.frames(pc),
            (None, Some(p)) => p.frames(&self.binary, pc),
            (None, None) => Vec::new(),
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

/// What a binary without a symbol table (`-ldflags=-s`) still tells of the
/// symbols in `wanted`: functions by their pclntab names (`name.abi0` is the body
/// of a function written in assembly), and `runtime.allgs`, found in the code
/// that appends to it. The other data symbols are not needed then: wait-reason
/// names come from the table of Go minors, the Go version from `.go.buildinfo`.
fn stripped_symbols(binary: &Binary, wanted: &[&str]) -> HashMap<String, Symbol> {
    let mut out = HashMap::new();
    let Ok(obj) = binary.object() else {
        return out;
    };
    let Ok(tab) = crate::pclntab::Pclntab::from_elf(&obj) else {
        return out;
    };
    for name in wanted {
        let f = match name.strip_suffix(".abi0") {
            Some(base) => tab.lookup_asm(base),
            None => tab.lookup(name),
        };
        if let Some(f) = f {
            let sym = Symbol {
                addr: f.entry,
                size: f.end - f.entry,
            };
            out.insert(name.to_string(), sym);
        }
    }
    if let Some(allgs) = crate::datasyms::allgs(binary, &tab) {
        out.insert("runtime.allgs".into(), allgs);
    }
    out
}

/// The table entry for a binary without DWARF; never a guess for a Go minor the
/// table does not have.
fn layout_for(
    exe: &Path,
    version: &crate::buildinfo::GoVersion,
) -> Result<&'static GoLayout, InspectError> {
    layouts::for_version(version).map_err(|e| match e {
        layouts::Unknown::TooNew { newest } => InspectError::GoTooNew {
            path: exe.into(),
            version: format!("{}.{}", version.major, version.minor),
            newest: format!("1.{newest}"),
        },
        layouts::Unknown::Missing => InspectError::NoOffsets {
            path: exe.into(),
            what: format!("no DWARF, and no struct layouts of Go {version}"),
            known: layouts::all()
                .iter()
                .map(|l| format!("1.{}", l.minor))
                .collect::<Vec<_>>()
                .join(", "),
        },
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgo::{go_cmd, go_paths, scratch_dir};

    /// The reference program of the layout table, built with `flags`, in one
    /// directory per Go (file names in the binaries are then the same).
    fn build(go: &Path, flags: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "target-test-{}-{}",
            std::process::id(),
            go.display().to_string().replace('/', "_")
        ));
        if !dir.exists() {
            let tmp = scratch_dir("target-test");
            std::fs::write(tmp.join("main.go"), layouts::REFERENCE_PROGRAM).unwrap();
            std::fs::write(tmp.join("go.mod"), "module targettest\n\ngo 1.21\n").unwrap();
            let _ = std::fs::rename(&tmp, &dir);
        }
        let bin = dir.join(format!(
            "bin{}",
            flags.join("").replace([' ', '=', '-'], "")
        ));
        let out = go_cmd(go, &dir)
            .env("CGO_ENABLED", "0")
            .arg("build")
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(".")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    }

    /// A binary without DWARF is described as the same program with DWARF is:
    /// offsets (the table's agree with DWARF's), wait reasons, probe points and
    /// source frames.
    #[test]
    fn without_dwarf_as_with_dwarf() {
        for go in go_paths() {
            let full = TargetInfo::from_path(&build(&go, &[])).unwrap();
            for flags in ["-ldflags=-w", "-ldflags=-s -w"] {
                let w = TargetInfo::from_path(&build(&go, &[flags])).unwrap();
                let ctx = format!("{} {flags}", full.go_version);
                assert_eq!(w.binary.has_symtab(), flags == "-ldflags=-w", "{ctx}");
                same_target(&full, &w, &ctx);
            }
        }
    }

    fn same_target(full: &TargetInfo, w: &TargetInfo, ctx: &str) {
        assert!(dwarf::load(&w.binary).unwrap().is_none());
        assert!(w.lines.is_none() && w.pcln_lines.is_some());
        assert_eq!(w.go_version, full.go_version);
        for (name, off) in &full.offsets.0 {
            assert_eq!(w.offsets.get(name), Some(*off), "{ctx}: {name}");
        }
        assert_eq!(w.wait_reasons, full.wait_reasons, "{ctx}");
        // Sizes from the pclntab include the padding after a function.
        let sizeless = |t: &TargetInfo| -> Vec<(String, RuntimeFunc)> {
            let mut v: Vec<(String, RuntimeFunc)> = t
                .funcs
                .iter()
                .map(|(k, f)| {
                    (
                        k.clone(),
                        RuntimeFunc {
                            size: 0,
                            ..f.clone()
                        },
                    )
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(sizeless(w), sizeless(full), "{ctx}");
        // Its data moves (the build settings in it differ): only found.
        assert!(w.data.contains_key("runtime.allgs"), "{ctx}");
        let text = full.binary.object().unwrap();
        let tab = crate::pclntab::Pclntab::from_elf(&text).unwrap();
        let mut checked = 0;
        for f in tab.funcs().step_by(3) {
            for pc in [f.entry, f.entry + (f.end - f.entry) / 2] {
                // addr2line joins the unit's directory "." to
                // "<autogenerated>"; Go prints the name alone.
                let want: Vec<SourceFrame> = full
                    .frames(pc)
                    .into_iter()
                    .map(|mut f| {
                        if let Some(rest) = f.file.strip_prefix("./") {
                            f.file = rest.into();
                        }
                        f
                    })
                    .collect();
                if want.is_empty() || want.iter().any(|f| f.line == 0) {
                    continue;
                }
                assert_eq!(w.frames(pc), want, "{ctx}: {pc:#x} in {}", f.name);
                checked += 1;
            }
        }
        assert!(checked > 500, "{ctx}: {checked}");
    }

    /// A Go minor newer than the table is refused, never guessed at.
    #[test]
    fn newer_go_without_dwarf_is_refused() {
        let go = crate::testgo::default_go();
        let bin = build(&go, &["-ldflags=-w"]);
        let mut data = std::fs::read(&bin).unwrap();
        let (off, len) = {
            let obj = object::File::parse(&*data).unwrap();
            use object::{Object as _, ObjectSection as _};
            let s = obj.section_by_name(".go.buildinfo").unwrap();
            let (o, l) = s.file_range().unwrap();
            (o as usize, l as usize)
        };
        let info = &mut data[off..off + len];
        let at = info
            .windows(4)
            .position(|w| w == b"go1.")
            .expect("version in .go.buildinfo");
        // go1.NN.P -> go1.99.P (same length).
        info[at + 4..at + 6].copy_from_slice(b"99");
        let patched = bin.with_file_name("newer");
        std::fs::write(&patched, &data).unwrap();
        let err = TargetInfo::from_path(&patched).err().expect("refused");
        let msg = err.to_string();
        assert!(matches!(err, InspectError::GoTooNew { .. }), "{msg}");
        let newest = layouts::newest();
        assert!(
            msg.contains(&format!(
                "Go 1.99 is newer than this tracer knows (up to 1.{newest}); rebuild with DWARF (without -ldflags=-w) or update tracer"
            )),
            "{msg}"
        );
    }
}

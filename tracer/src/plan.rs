//! [`ProbePlan`]: which kernel program goes where, and the constants it needs. Pure
//! data computed from [`TargetInfo`], printable and testable without a kernel.
use crate::cli::Mode;
use std::fmt;
use tracer_common::globals;
use tracer_inspect::TargetInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProbe {
    /// Name of the program in `tracer-ebpf`.
    pub program: &'static str,
    pub symbol: String,
    pub vaddr: u64,
    pub offset_in_func: u64,
    pub file_offset: u64,
    pub skipped_stack_check: bool,
    pub probed_insn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub exe: std::path::PathBuf,
    pub go_version: String,
    pub probes: Vec<PlannedProbe>,
    /// `(global symbol, value)` patched into the kernel programs before load.
    pub globals: Vec<(&'static str, u64)>,
    /// Runtime functions that should have been probed but were not found.
    pub missing: Vec<String>,
}

/// (key in `TargetInfo::funcs`, program, modes that need it)
const PROBES: &[(&str, &str, bool)] = &[
    ("gopark", "go_park", false),
    ("ready", "go_ready", false),
    ("goexit0", "go_exit", false),
    ("semacquire1", "go_semacquire", false),
    ("lockSlow", "go_lock_slow", true),
    ("execute", "go_execute", true),
    ("chansend", "go_chansend", true),
    ("chanrecv", "go_chanrecv", true),
    ("selectgo", "go_select", true),
];

pub fn plan(target: &TargetInfo, mode: Mode, stacks: bool) -> ProbePlan {
    let mut probes = Vec::new();
    let mut missing = Vec::new();
    for (key, program, events_only) in PROBES {
        if *events_only && mode != Mode::Events {
            continue;
        }
        match target.funcs.get(*key) {
            Some(f) => probes.push(PlannedProbe {
                program,
                symbol: f.symbol.clone(),
                vaddr: f.vaddr,
                offset_in_func: f.probe_offset,
                file_offset: f.probe_file_offset,
                skipped_stack_check: f.skipped_stack_check,
                probed_insn: f.probed_insn.clone(),
            }),
            None => missing.push(format!("runtime function for {key}")),
        }
    }
    let off = |name: &str| target.offsets.get(name).unwrap_or(0);
    let globals = vec![
        (globals::G_GOID, off("runtime.g.goid")),
        (globals::G_GOPC, off("runtime.g.gopc")),
        (globals::G_STARTPC, off("runtime.g.startpc")),
        (globals::G_PARENT_GOID, off("runtime.g.parentGoid")),
        (globals::G_M, off("runtime.g.m")),
        (globals::M_CURG, off("runtime.m.curg")),
        (globals::VERBOSE, u64::from(mode == Mode::Events)),
        (globals::STACKS, u64::from(stacks)),
    ];
    ProbePlan {
        exe: target.exe.clone(),
        go_version: target.go_version.clone(),
        probes,
        globals,
        missing,
    }
}

impl fmt::Display for ProbePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target {} ({})", self.exe.display(), self.go_version)?;
        writeln!(
            f,
            "{:<14} {:<38} {:>10} {:>8} {:>10}  probed instruction",
            "program", "function", "vaddr", "+offset", "file off"
        )?;
        for p in &self.probes {
            writeln!(
                f,
                "{:<14} {:<38} {:>#10x} {:>+8} {:>#10x}  {}{}",
                p.program,
                p.symbol,
                p.vaddr,
                p.offset_in_func,
                p.file_offset,
                p.probed_insn,
                if p.skipped_stack_check {
                    " (after stack check)"
                } else {
                    " (entry: no stack check)"
                }
            )?;
        }
        for (name, value) in &self.globals {
            writeln!(f, "const {name} = {value}")?;
        }
        for m in &self.missing {
            writeln!(f, "missing: {m}")?;
        }
        Ok(())
    }
}

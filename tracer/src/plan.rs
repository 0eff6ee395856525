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
    /// A call site of `symbol` in this function rather than `symbol`'s entry.
    pub call_in: Option<String>,
}

/// A mutex operation site and the facts its probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProbe {
    pub file_offset: u64,
    pub info: tracer_common::LockSiteInfo,
    /// `function (file:line) op` for reports.
    pub label: String,
    /// A `TryLock` or `TryRLock` (never blocks).
    pub try_lock: bool,
    pub caller: String,
    pub file: String,
    pub line: u32,
    /// For a method entry: the calls that name its hits (see [`LockCallerProbe`]).
    pub callers: Vec<LockCallerProbe>,
    /// The mutex's place in its owner's type (`main.Account.mu`): the lock
    /// class, when known; else the site is its own class.
    pub class: Option<String>,
}

/// A call into an entry-probed lock method, by its return address relative to
/// the probed instruction: `Some` names the hit by the user's call site
/// (`caller`, `file`, `line`), `None` drops it (`sync`'s own call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockCallerProbe {
    pub ret: u64,
    pub site: Option<(String, String, u32)>,
    /// As [`LockProbe::class`], for this call.
    pub class: Option<String>,
}

/// A lock site as the kernel numbers it: the probed sites first (their index is
/// the attach cookie), then the user's calls into entry-probed methods, which
/// the probe of `owner` reports under their own index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedSite {
    pub caller: String,
    pub file: String,
    pub line: u32,
    /// The probed site whose hits this one names (itself for a probed site).
    pub owner: u32,
    /// A `TryLock` or `TryRLock` call.
    pub try_lock: bool,
    /// As [`LockProbe::class`].
    pub class: Option<String>,
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
    /// Runtime functions a probe would go on that the program never calls, so
    /// the linker left them out: nothing to probe.
    pub unused: Vec<String>,
    /// Lock sites (locks mode).
    pub locks: Vec<LockProbe>,
}

/// When a probe is needed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// parks and locks modes (watch mode reads memory only).
    Parks,
    /// Every live mode: watch too.
    Live,
    /// Only for the --events view.
    Events,
}

/// (key in `TargetInfo::funcs`, program, when)
const PROBES: &[(&str, &str, Need)] = &[
    ("gopark", "go_park", Need::Parks),
    ("ready", "go_ready", Need::Parks),
    // Exits are seen by the periodic read (a goroutine missing from allgs); a
    // probe would cost a trap per goroutine, one per request in a net/http server.
    ("goexit0", "go_exit", Need::Events),
    ("semacquire1", "go_semacquire", Need::Parks),
    // The park probes are sampled (budget): the target's last state is read from
    // its memory while it is held at exit instead.
    ("exit", "go_exiting", Need::Live),
    ("lockSlow", "go_lock_slow", Need::Events),
    ("execute", "go_execute", Need::Events),
    ("chansend", "go_chansend", Need::Events),
    ("chanrecv", "go_chanrecv", Need::Events),
    ("selectgo", "go_select", Need::Events),
];

impl ProbePlan {
    /// Every lock site by the index the kernel reports it under (see
    /// [`NumberedSite`]).
    pub fn numbered_lock_sites(&self) -> Vec<NumberedSite> {
        let probed = self.locks.iter().enumerate().map(|(i, l)| NumberedSite {
            caller: l.caller.clone(),
            file: l.file.clone(),
            line: l.line,
            owner: i as u32,
            try_lock: l.try_lock,
            class: l.class.clone(),
        });
        let calls = self.locks.iter().enumerate().flat_map(|(i, l)| {
            l.callers.iter().filter_map(move |c| {
                let (caller, file, line) = c.site.clone()?;
                Some(NumberedSite {
                    caller,
                    file,
                    line,
                    owner: i as u32,
                    try_lock: l.try_lock,
                    class: c.class.clone(),
                })
            })
        });
        probed.chain(calls).collect()
    }

    /// The kernel's `LOCK_CALLERS` entries, numbered as
    /// [`Self::numbered_lock_sites`].
    pub fn lock_callers(&self) -> Vec<(tracer_common::LockCaller, u32)> {
        let mut next = self.locks.len() as u32;
        let mut out = Vec::new();
        for (i, l) in self.locks.iter().enumerate() {
            for c in &l.callers {
                let by = match c.site {
                    Some(_) => {
                        next += 1;
                        next - 1
                    }
                    None => tracer_common::CALLER_IGNORED,
                };
                let key = tracer_common::LockCaller {
                    site: i as u64,
                    ret: c.ret,
                };
                out.push((key, by));
            }
        }
        out
    }
}

pub fn plan(target: &TargetInfo, mode: Mode, events: bool, stacks: bool) -> ProbePlan {
    let mut probes = Vec::new();
    let mut missing = Vec::new();
    let mut unused = Vec::new();
    for (key, program, need) in PROBES {
        let wanted = match need {
            Need::Parks => matches!(mode, Mode::Parks | Mode::Locks),
            Need::Live => mode != Mode::Snapshot,
            Need::Events => events && mode != Mode::Snapshot,
        };
        if !wanted {
            continue;
        }
        let Some(f) = target.funcs.get(*key) else {
            match target.unused.iter().find(|(k, _)| k == key) {
                Some((_, symbol)) => unused.push(symbol.clone()),
                None => missing.push(format!("runtime function for {key}")),
            }
            continue;
        };
        if *key == "gopark" && !events {
            let sites = park_call_sites(target, f);
            if !sites.is_empty() {
                probes.extend(sites);
                continue;
            }
        }
        probes.push(PlannedProbe {
            program,
            symbol: f.symbol.clone(),
            vaddr: f.vaddr,
            offset_in_func: f.probe_offset,
            file_offset: f.probe_file_offset,
            skipped_stack_check: f.skipped_stack_check,
            probed_insn: f.probed_insn.clone(),
            call_in: None,
        });
    }
    let off = |name: &str| target.offsets.get(name).unwrap_or(0);
    let globals = vec![
        (globals::G_GOID, off("runtime.g.goid")),
        (globals::G_GOPC, off("runtime.g.gopc")),
        (globals::G_STARTPC, off("runtime.g.startpc")),
        (globals::G_PARENT_GOID, off("runtime.g.parentGoid")),
        (globals::G_M, off("runtime.g.m")),
        (globals::M_CURG, off("runtime.m.curg")),
        (globals::G_TRACKING_SEQ, off("runtime.g.trackingSeq")),
        (globals::VERBOSE, u64::from(events)),
        (globals::STACKS, u64::from(stacks)),
        (globals::STOP_AT_EXIT, 1),
        (globals::IDLE_REASONS, idle_mask(target, events)),
    ];
    let locks = if mode == Mode::Locks {
        lock_probes(target, &mut missing)
    } else {
        Vec::new()
    };
    ProbePlan {
        exe: target.exe.clone(),
        go_version: target.go_version.clone(),
        probes,
        globals,
        missing,
        unused,
        locks,
    }
}

/// Functions whose calls to gopark are only idle waits (`IO wait`, `sleep`: see
/// `idle_mask`), by name in every supported Go; the poller's wrapper is listed in
/// case `netpollblock` is inlined into it.
const IDLE_PARKERS: &[&str] = &[
    "runtime.netpollblock",
    "internal/poll.runtime_pollWait",
    "runtime.poll_runtime_pollWait",
    "time.Sleep",
    "runtime.timeSleep",
];

/// The park probe on gopark's call sites, except those of the idle waits: on a
/// server most parks are connections waiting for their next request, and a probe at
/// gopark's entry traps on each of them only for the kernel to skip it (about 40% of
/// park hits on the bench's HTTP service). Empty when the call sites cannot be
/// found: the entry probe is used then. The `--events` view wants every park, and
/// keeps the entry probe.
fn park_call_sites(target: &TargetInfo, gopark: &tracer_inspect::RuntimeFunc) -> Vec<PlannedProbe> {
    let bin = target.binary();
    let mut out = Vec::new();
    for site in tracer_inspect::callsites::calls_to(bin, gopark.vaddr) {
        let idle = IDLE_PARKERS.contains(&site.caller.as_str())
            || target
                .frames(site.vaddr)
                .iter()
                .any(|f| IDLE_PARKERS.contains(&&*f.function));
        if idle {
            continue;
        }
        let Some(file_offset) = bin.file_offset(site.vaddr) else {
            continue;
        };
        out.push(PlannedProbe {
            program: "go_park_call",
            symbol: gopark.symbol.clone(),
            vaddr: site.caller_entry,
            offset_in_func: site.vaddr - site.caller_entry,
            file_offset,
            skipped_stack_check: false,
            probed_insn: "call".to_string(),
            call_in: Some(site.caller),
        });
    }
    out
}

/// Wait reasons the model ignores (see `session::is_idle_wait`) as a bitmap, so the
/// kernel skips their records. The `--events` view wants every park.
fn idle_mask(target: &TargetInfo, events: bool) -> u64 {
    if events {
        return 0;
    }
    target
        .wait_reasons
        .iter()
        .enumerate()
        .take(64)
        .filter(|(_, r)| crate::decode::is_idle_wait(r))
        .fold(0, |m, (i, _)| m | (1 << i))
}

fn lock_probes(target: &TargetInfo, missing: &mut Vec<String>) -> Vec<LockProbe> {
    use tracer_common::{lockop, LockSiteInfo};
    use tracer_inspect::locksites::{LockOp, Outcome};
    let bin = target.binary();
    let scan = match bin
        .object()
        .ok()
        .map(|o| tracer_inspect::locksites::scan(&o))
    {
        Some(Ok(scan)) => scan,
        Some(Err(e)) => {
            missing.push(format!("lock sites: {e}"));
            return Vec::new();
        }
        None => return Vec::new(),
    };
    missing.extend(scan.unresolved.iter().map(|u| format!("lock site: {u}")));
    let mut out = Vec::new();
    for site in &scan.sites {
        // An out-of-line TryLock whose result cannot be seen would add false holds.
        if site.outcome == Outcome::Unknown {
            missing.push(format!(
                "lock site {}:{} (TryLock result not observable)",
                site.file, site.line
            ));
            continue;
        }
        // The kernel will not probe a LOCK-prefixed instruction: probe the one before.
        let window_start = site.probe_vaddr.saturating_sub(32);
        let window = bin.bytes_at(window_start, 48).unwrap_or(&[]);
        let reg = site.reg;
        let Some(vaddr) =
            tracer_inspect::prologue::unlocked_probe(window, window_start, site.probe_vaddr, |r| {
                tracer_inspect::locksites::Gpr::from_iced(r) == Some(reg)
            })
        else {
            missing.push(format!(
                "lock site {}:{} (no probeable instruction before the atomic)",
                site.file, site.line
            ));
            continue;
        };
        let Some(file_offset) = bin.file_offset(vaddr) else {
            continue;
        };
        let op = match site.op {
            LockOp::Lock => lockop::LOCK,
            LockOp::Unlock => lockop::UNLOCK,
            LockOp::TryLock => lockop::TRY_LOCK,
            LockOp::RLock => lockop::RLOCK,
            LockOp::RUnlock => lockop::RUNLOCK,
            LockOp::TryRLock => lockop::TRY_RLOCK,
        };
        // Relative to the probed instruction, whose run-time address the kernel
        // has in `rip`: right in a PIE too, before its load address is known.
        let ignored = site.ignore_return_addrs.iter().map(|a| LockCallerProbe {
            ret: a.wrapping_sub(vaddr),
            site: None,
            class: None,
        });
        let users = site.callers.iter().map(|c| LockCallerProbe {
            ret: c.return_addr.wrapping_sub(vaddr),
            site: Some((c.caller.clone(), c.file.clone(), c.line)),
            class: c.class.clone(),
        });
        let callers: Vec<LockCallerProbe> = ignored.chain(users).collect();
        out.push(LockProbe {
            file_offset,
            info: LockSiteInfo {
                reg: site.reg.pt_regs_index(),
                op,
                adjust: site.adjust,
                if_zf: u32::from(site.outcome == Outcome::IfZf),
                by_caller: u32::from(!callers.is_empty()),
            },
            label: format!(
                "{:?}.{:?} in {} ({}:{})",
                site.kind, site.op, site.caller, site.file, site.line
            ),
            try_lock: matches!(site.op, LockOp::TryLock | LockOp::TryRLock),
            caller: site.caller.clone(),
            file: site.file.clone(),
            line: site.line,
            callers,
            class: site.class.clone(),
        });
    }
    out
}

/// ` (class main.Account.mu)`, or nothing for a site that is its own class.
fn class_note(class: &Option<String>) -> String {
    class
        .as_ref()
        .map(|c| format!(" (class {c})"))
        .unwrap_or_default()
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
            let (function, note) = match &p.call_in {
                Some(caller) => (caller.as_str(), format!(" {} (call site)", p.symbol)),
                None if p.skipped_stack_check => (p.symbol.as_str(), " (after stack check)".into()),
                None => (p.symbol.as_str(), " (entry: no stack check)".into()),
            };
            writeln!(
                f,
                "{:<14} {:<38} {:>#10x} {:>+8} {:>#10x}  {}{}",
                p.program, function, p.vaddr, p.offset_in_func, p.file_offset, p.probed_insn, note
            )?;
        }
        for (name, value) in &self.globals {
            writeln!(f, "const {name} = {value}")?;
        }
        if !self.locks.is_empty() {
            writeln!(f, "{} lock sites:", self.locks.len())?;
            for l in &self.locks {
                writeln!(
                    f,
                    "  {:>#10x}  {}  mutex = reg[{}] {:+}{}",
                    l.file_offset,
                    l.label,
                    l.info.reg,
                    l.info.adjust,
                    class_note(&l.class)
                )?;
                for c in &l.callers {
                    match &c.site {
                        Some((caller, file, line)) => writeln!(
                            f,
                            "      called from {caller} ({file}:{line}){}",
                            class_note(&c.class)
                        )?,
                        None => writeln!(f, "      called from sync (ignored)")?,
                    }
                }
            }
        }
        for m in &self.missing {
            writeln!(f, "missing: {m}")?;
        }
        for u in &self.unused {
            writeln!(
                f,
                "not linked in: {u} (the program never calls it: nothing to probe)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(caller: &str, callers: Vec<LockCallerProbe>) -> LockProbe {
        LockProbe {
            file_offset: 0,
            info: Default::default(),
            label: String::new(),
            try_lock: false,
            caller: caller.into(),
            file: "x.go".into(),
            line: 1,
            callers,
            class: None,
        }
    }

    fn user(ret: u64, caller: &str, line: u32) -> LockCallerProbe {
        LockCallerProbe {
            ret,
            site: Some((caller.into(), "main.go".into(), line)),
            class: Some(format!("main.T{line}.mu")),
        }
    }

    #[test]
    fn user_calls_are_numbered_after_the_probed_sites() {
        let ignored = LockCallerProbe {
            ret: 0x10,
            site: None,
            class: None,
        };
        let plan = ProbePlan {
            exe: "x".into(),
            go_version: "go1.21".into(),
            probes: Vec::new(),
            globals: Vec::new(),
            missing: Vec::new(),
            unused: Vec::new(),
            locks: vec![
                probe("main.f", Vec::new()),
                probe(
                    "sync.(*RWMutex).Lock",
                    vec![
                        ignored,
                        user(0x20, "main.write", 102),
                        user(0x30, "main.flush", 114),
                    ],
                ),
                probe("sync.(*Mutex).Lock", vec![user(0x40, "main.g", 7)]),
            ],
        };
        let sites = plan.numbered_lock_sites();
        let names: Vec<(&str, u32)> = sites.iter().map(|s| (&*s.caller, s.owner)).collect();
        assert_eq!(
            names,
            [
                ("main.f", 0),
                ("sync.(*RWMutex).Lock", 1),
                ("sync.(*Mutex).Lock", 2),
                ("main.write", 1),
                ("main.flush", 1),
                ("main.g", 2),
            ]
        );
        // Each user call carries its own class.
        let classes: Vec<Option<&str>> = sites.iter().map(|s| s.class.as_deref()).collect();
        assert_eq!(
            classes,
            [
                None,
                None,
                None,
                Some("main.T102.mu"),
                Some("main.T114.mu"),
                Some("main.T7.mu")
            ]
        );
        let key = |site, ret| tracer_common::LockCaller { site, ret };
        assert_eq!(
            plan.lock_callers(),
            [
                (key(1, 0x10), tracer_common::CALLER_IGNORED),
                (key(1, 0x20), 3),
                (key(1, 0x30), 4),
                (key(2, 0x40), 5),
            ]
        );
    }
}

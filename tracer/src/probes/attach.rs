//! Loads the kernel programs, patches the plan's constants in, attaches every probe,
//! and owns the links: dropping [`Attached`] detaches everything.
use crate::plan::ProbePlan;
use aya::maps::Array;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use std::num::NonZeroU32;
use std::path::Path;
use tracer_common::{LockCaller, LockSiteInfo};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("loading the eBPF programs failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("no probe could be attached: {0}")]
    Nothing(String),
}

pub struct Attached {
    pub ebpf: Ebpf,
    pub attached: Vec<String>,
    /// `"symbol: reason"` for each probe that failed to attach.
    pub failed: Vec<String>,
    /// The programs of those probes (`go_lock` for the lock sites), to tell
    /// which of a mode's needs are unmet.
    pub failed_programs: Vec<&'static str>,
    /// Links of the runtime probes, by program: taken apart in parallel on drop.
    runtime_links: Vec<(&'static str, UProbeLinkId)>,
    /// One multi-uprobe link over the active lock sites: detaching a link of many
    /// uprobes costs one RCU grace period, one link per site costs one each (20 s
    /// for 200 sites).
    lock_link: Option<UProbeLinkId>,
    /// Which lock sites the link covers (the budget turns sites off and on).
    active: Vec<bool>,
    target: std::path::PathBuf,
    scope: UProbeScope,
    lock_offsets: Vec<u64>,
    /// (program, file offsets) of the probes the budget turns off and on together.
    park_points: Vec<(&'static str, Vec<u64>)>,
    parks_on: bool,
}

/// The park probes: the budget samples them as one unit (a wake without its park,
/// or the other way round, would be meaningless).
pub const PARK_PROGRAMS: &[&str] = &["go_park", "go_park_call", "go_ready"];

pub const LOCK_PROGRAM: &str = "go_lock";

/// The ring buffer in watch mode: a page-size multiple and a power of two.
const WATCH_RING_BYTES: u32 = 1 << 16;

/// Detaching a uprobe waits for an RCU grace period (about 250 ms here, each); the
/// links are dropped on parallel threads so the waits overlap instead of adding up.
impl Drop for Attached {
    fn drop(&mut self) {
        let mut links = Vec::new();
        for (name, id) in self.runtime_links.drain(..) {
            let prog: Option<&mut UProbe> =
                self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
            if let Some(link) = prog.and_then(|p| p.take_link(id).ok()) {
                links.push(link);
            }
        }
        if let Some(id) = self.lock_link.take() {
            if let Some(link) = lock_program(&mut self.ebpf)
                .ok()
                .and_then(|p| p.take_link(id).ok())
            {
                links.push(link);
            }
        }
        std::thread::scope(|scope| {
            for link in links {
                scope.spawn(move || drop(link));
            }
        });
    }
}

impl Attached {
    pub fn lock_sites(&self) -> usize {
        self.lock_offsets.len()
    }

    /// Re-attaches the lock program to exactly the `active` sites, and voids
    /// every hold taken so far: a lock's unlock may go unseen while sites switch,
    /// and a lock left "held" would invent order edges (a voided hold only loses
    /// edges).
    pub fn set_active(&mut self, active: Vec<bool>) -> Result<(), String> {
        if active == self.active {
            return Ok(());
        }
        if let Some(link) = self.lock_link.take() {
            lock_program(&mut self.ebpf)?
                .detach(link)
                .map_err(|e| e.to_string())?;
        }
        let points: Vec<(u64, u64)> = active
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| (self.lock_offsets[i], i as u64))
            .collect();
        let (target, scope) = (self.target.clone(), self.scope);
        // Every hold may be stale. Uprobes of a link go in and out one by one,
        // so while a link is being attached a Lock's probe can be in and its
        // Unlock's not yet: switch-on voids again once the link is complete (a
        // voided hold only loses edges).
        self.active = active;
        void_holds(&mut self.ebpf);
        if points.is_empty() {
            return Ok(());
        }
        let prog = lock_program(&mut self.ebpf)?;
        self.lock_link = Some(attach_sites(prog, &points, &target, scope)?);
        void_holds(&mut self.ebpf);
        Ok(())
    }

    /// Voids every hold: what was recorded while a link was still going in (the
    /// first attach included) may be a Lock whose Unlock probe was not in.
    pub fn purge_all_held(&mut self) {
        void_holds(&mut self.ebpf);
    }

    /// Turns the park probes off or on. Links are dropped on a thread of their
    /// own: each drop waits for an RCU grace period (about 250 ms), which would
    /// stall the ring-buffer reader.
    pub fn set_parks(&mut self, on: bool) -> Result<(), String> {
        if on == self.parks_on || self.park_points.is_empty() {
            return Ok(());
        }
        self.parks_on = on;
        if !on {
            let mut links = Vec::new();
            let mut kept = Vec::new();
            for (name, id) in self.runtime_links.drain(..) {
                if !PARK_PROGRAMS.contains(&name) {
                    kept.push((name, id));
                    continue;
                }
                let prog: Option<&mut UProbe> =
                    self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
                if let Some(link) = prog.and_then(|p| p.take_link(id).ok()) {
                    links.push(link);
                }
            }
            self.runtime_links = kept;
            // One thread per link, or the second waits for the first's grace period
            // with its probe still in place.
            for link in links {
                std::thread::spawn(move || {
                    let t = std::time::Instant::now();
                    drop(link);
                    log::debug!("park probe detached in {:?}", t.elapsed());
                });
            }
            return Ok(());
        }
        let (target, scope) = (self.target.clone(), self.scope);
        for (name, offsets) in &self.park_points {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(name)
                .ok_or("park program missing")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            let link = prog
                .attach(
                    offsets
                        .iter()
                        .map(|&off| UProbeAttachLocation::AbsoluteOffset(off)),
                    &target,
                    scope,
                )
                .map_err(|e| e.to_string())?;
            self.runtime_links.push((name, link));
        }
        Ok(())
    }
}

fn lock_program(ebpf: &mut Ebpf) -> Result<&mut UProbe, String> {
    ebpf.program_mut(LOCK_PROGRAM)
        .ok_or("lock program missing from the eBPF object")?
        .try_into()
        .map_err(|e| format!("{e}"))
}

/// Holds taken until now are void (`PURGED_AT`): their owners drop them at
/// their next lock, and the agent's reads leave them out. The sets are not
/// rewritten here: that would race their owners' own edits.
fn void_holds(ebpf: &mut Ebpf) {
    let Some(map) = ebpf.map_mut("PURGED_AT") else {
        return;
    };
    if let Ok(mut at) = aya::maps::Array::<_, u64>::try_from(map) {
        let _ = at.set(0, &crate::clock::monotonic_ns(), 0);
    }
}

/// One link over many `(file offset, cookie)` points.
fn attach_sites(
    prog: &mut UProbe,
    points: &[(u64, u64)],
    target: &Path,
    scope: UProbeScope,
) -> Result<UProbeLinkId, String> {
    prog.attach(
        points.iter().map(|&(off, cookie)| UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(off),
            cookie: Some(cookie),
        }),
        target,
        scope,
    )
    .map_err(|e| e.to_string())
}

pub fn attach(
    plan: &ProbePlan,
    target: &Path,
    pid: u32,
    bpf_log: bool,
) -> Result<Attached, AttachError> {
    let mut loader = EbpfLoader::new();
    for (name, value) in &plan.globals {
        loader.override_global(name, value, true);
    }
    if !plan
        .probes
        .iter()
        .any(|p| p.program == "go_park" || p.program == "go_park_call")
    {
        // Watch mode: only the exit probe; the park maps are not used.
        for name in ["PARKED", "STACK_CACHE", "PENDING_SEMA", "STACKS"] {
            loader.map_max_entries(name, 1);
        }
        // One exit record, not 8 MiB of locked kernel memory per target (an
        // agent may watch fifty).
        if !plan.probes.iter().any(|p| p.program == "go_execute") {
            loader.map_max_entries("EVENTS", WATCH_RING_BYTES);
        }
    }
    if plan.locks.is_empty() {
        // Lock maps are large (created and zeroed up front): shrink them when no
        // lock probe will use them. Attach is about 0.2 s faster.
        for name in [
            "HELD",
            "RELEASED",
            "HOLDER",
            "READER",
            "EDGES",
            "CLASS_EDGES",
            "HOLD_HIST",
            "LOCK_SITES",
            "LOCK_CALLERS",
        ] {
            loader.map_max_entries(name, 1);
        }
    }
    let level: u8 = if bpf_log { 5 } else { 0 };
    loader.override_global("AYA_LOG_LEVEL", &level, false);
    let mut ebpf = loader.load(OBJECT).map_err(AttachError::Load)?;
    if bpf_log {
        if let Err(e) = aya_log::EbpfLogger::init(&mut ebpf) {
            log::warn!("kernel-side logging unavailable: {e}");
        }
    }
    let scope = match NonZeroU32::new(pid) {
        Some(p) => UProbeScope::OneProcess(p),
        None => UProbeScope::AllProcesses,
    };
    let mut attached = Vec::new();
    let mut failed = Vec::new();
    let mut failed_programs = Vec::new();
    let mut runtime_links = Vec::new();
    let mut park_points = Vec::new();
    // One link per program: the park probe may stand on many call sites.
    let mut programs: Vec<(&'static str, Vec<u64>, String)> = Vec::new();
    for probe in &plan.probes {
        match programs.iter_mut().find(|(p, ..)| *p == probe.program) {
            Some((_, offsets, _)) => offsets.push(probe.file_offset),
            None => programs.push((probe.program, vec![probe.file_offset], probe.symbol.clone())),
        }
    }
    for (program, offsets, symbol) in programs {
        let label = match offsets.len() {
            1 => symbol,
            n => format!("{symbol} ({n} call sites)"),
        };
        let result = (|| -> Result<UProbeLinkId, String> {
            let prog: &mut UProbe = ebpf
                .program_mut(program)
                .ok_or("program missing from the eBPF object")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            if prog.fd().is_err() {
                prog.load().map_err(|e| format!("verifier: {e}"))?;
            }
            prog.attach(
                offsets
                    .iter()
                    .map(|&off| UProbeAttachLocation::AbsoluteOffset(off)),
                target,
                scope,
            )
            .map_err(|e| format!("{e}"))
        })();
        match result {
            Ok(link) => {
                if PARK_PROGRAMS.contains(&program) {
                    park_points.push((program, offsets));
                }
                runtime_links.push((program, link));
                attached.push(label);
            }
            Err(e) => {
                failed.push(format!("{label}: {e}"));
                failed_programs.push(program);
            }
        }
    }
    let mut lock_link = None;
    if !plan.locks.is_empty() {
        let result = (|| -> Result<(), String> {
            let mut sites: Array<_, LockSiteInfo> =
                Array::try_from(ebpf.map_mut("LOCK_SITES").ok_or("LOCK_SITES map missing")?)
                    .map_err(|e| e.to_string())?;
            for (i, l) in plan.locks.iter().enumerate() {
                sites.set(i as u32, &l.info, 0).map_err(|e| e.to_string())?;
            }
            let mut callers: aya::maps::HashMap<_, LockCaller, u32> = aya::maps::HashMap::try_from(
                ebpf.map_mut("LOCK_CALLERS")
                    .ok_or("LOCK_CALLERS map missing")?,
            )
            .map_err(|e| e.to_string())?;
            for (key, by) in plan.lock_callers() {
                callers.insert(&key, &by, 0).map_err(|e| e.to_string())?;
            }
            let prog: &mut UProbe = ebpf
                .program_mut(LOCK_PROGRAM)
                .ok_or("program missing from the eBPF object")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            prog.load().map_err(|e| format!("verifier: {e}"))?;
            let points: Vec<(u64, u64)> = plan
                .locks
                .iter()
                .enumerate()
                .map(|(i, l)| (l.file_offset, i as u64))
                .collect();
            lock_link = Some(attach_sites(prog, &points, target, scope)?);
            Ok(())
        })();
        if let Err(e) = result {
            failed.push(format!("lock sites: {e}"));
            failed_programs.push(LOCK_PROGRAM);
        } else {
            attached.push(format!("{} lock sites", plan.locks.len()));
        }
    }
    if attached.is_empty() && !plan.probes.is_empty() {
        return Err(AttachError::Nothing(failed.join("; ")));
    }
    Ok(Attached {
        ebpf,
        attached,
        failed,
        failed_programs,
        runtime_links,
        active: vec![lock_link.is_some(); plan.locks.len()],
        lock_link,
        target: target.to_path_buf(),
        scope,
        lock_offsets: plan.locks.iter().map(|l| l.file_offset).collect(),
        park_points,
        parks_on: true,
    })
}

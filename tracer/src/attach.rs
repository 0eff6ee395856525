//! Loads the kernel programs, patches the plan's constants in, attaches every probe,
//! and owns the links: dropping [`Attached`] detaches everything.
use crate::plan::ProbePlan;
use aya::maps::Array;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use std::num::NonZeroU32;
use std::path::Path;
use tracer_common::LockSiteInfo;

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
    /// One link per lock site (None while detached by the budget).
    pub lock_links: Vec<Option<UProbeLinkId>>,
    target: std::path::PathBuf,
    scope: UProbeScope,
    lock_offsets: Vec<u64>,
}

const LOCK_PROGRAM: &str = "go_lock";

impl Attached {
    fn lock_program(&mut self) -> Option<&mut UProbe> {
        self.ebpf.program_mut(LOCK_PROGRAM)?.try_into().ok()
    }

    /// Detaches lock site `i` (the budget's lever).
    pub fn detach_lock(&mut self, i: usize) {
        let Some(link) = self.lock_links.get_mut(i).and_then(Option::take) else {
            return;
        };
        if let Some(prog) = self.lock_program() {
            let _ = prog.detach(link);
        }
    }

    /// Attaches lock site `i` again.
    pub fn reattach_lock(&mut self, i: usize) {
        if self.lock_links.get(i).is_none_or(Option::is_some) {
            return;
        }
        let (off, target, scope) = (self.lock_offsets[i], self.target.clone(), self.scope);
        let link = self
            .lock_program()
            .and_then(|p| attach_site(p, off, i as u64, &target, scope).ok());
        self.lock_links[i] = link;
    }
}

fn attach_site(
    prog: &mut UProbe,
    file_offset: u64,
    cookie: u64,
    target: &Path,
    scope: UProbeScope,
) -> Result<UProbeLinkId, String> {
    prog.attach(
        [UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(file_offset),
            cookie: Some(cookie),
        }],
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
    for probe in &plan.probes {
        let result = (|| -> Result<(), String> {
            let prog: &mut UProbe = ebpf
                .program_mut(probe.program)
                .ok_or("program missing from the eBPF object")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            if prog.fd().is_err() {
                prog.load().map_err(|e| format!("verifier: {e}"))?;
            }
            prog.attach(
                [UProbeAttachLocation::AbsoluteOffset(probe.file_offset)],
                target,
                scope,
            )
            .map_err(|e| format!("{e}"))?;
            Ok(())
        })();
        match result {
            Ok(()) => attached.push(probe.symbol.clone()),
            Err(e) => failed.push(format!("{}: {e}", probe.symbol)),
        }
    }
    let mut lock_links = Vec::new();
    if !plan.locks.is_empty() {
        let result = (|| -> Result<(), String> {
            let mut sites: Array<_, LockSiteInfo> =
                Array::try_from(ebpf.map_mut("LOCK_SITES").ok_or("LOCK_SITES map missing")?)
                    .map_err(|e| e.to_string())?;
            for (i, l) in plan.locks.iter().enumerate() {
                sites.set(i as u32, &l.info, 0).map_err(|e| e.to_string())?;
            }
            let prog: &mut UProbe = ebpf
                .program_mut(LOCK_PROGRAM)
                .ok_or("program missing from the eBPF object")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            prog.load().map_err(|e| format!("verifier: {e}"))?;
            for (i, l) in plan.locks.iter().enumerate() {
                match attach_site(prog, l.file_offset, i as u64, target, scope) {
                    Ok(link) => lock_links.push(Some(link)),
                    Err(e) => {
                        failed.push(format!("lock site {}: {e}", l.label));
                        lock_links.push(None);
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            failed.push(format!("lock sites: {e}"));
        } else {
            let n = lock_links.iter().filter(|l| l.is_some()).count();
            attached.push(format!("{n} lock sites"));
        }
    }
    if attached.is_empty() && !plan.probes.is_empty() {
        return Err(AttachError::Nothing(failed.join("; ")));
    }
    Ok(Attached {
        ebpf,
        attached,
        failed,
        lock_links,
        target: target.to_path_buf(),
        scope,
        lock_offsets: plan.locks.iter().map(|l| l.file_offset).collect(),
    })
}

//! Loads the kernel programs, patches the plan's constants in, attaches every probe,
//! and owns the links: dropping [`Attached`] detaches everything.
use crate::plan::ProbePlan;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use std::num::NonZeroU32;
use std::path::Path;

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
    if attached.is_empty() {
        return Err(AttachError::Nothing(failed.join("; ")));
    }
    Ok(Attached {
        ebpf,
        attached,
        failed,
    })
}

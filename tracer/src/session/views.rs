//! What a session shows besides its findings: Prometheus metric families (served
//! on `--listen`, or published to the agent's board), the pprof profile, lock hold
//! times, and the labels that say which process they are about. It renders through
//! `tracer_analysis::report`; it never changes the session's state.
use super::Session;
use crate::clock::monotonic_ns;
use anyhow::Result;
use tracer_analysis::lockwatch;
use tracer_inspect::TargetInfo;

impl Session<'_> {
    /// Serves Prometheus scrapes from `listener` while the session runs. Must run
    /// inside the runtime.
    pub fn serve_metrics(&mut self, listener: std::net::TcpListener) -> Result<()> {
        self.metrics = Some(crate::metrics::Server::new(listener)?);
        Ok(())
    }

    /// `tracer agent`: this target's metrics go to the board, and the agent may
    /// ask for its pprof profile or stop it.
    pub fn join_fleet(&mut self, link: crate::fleet::Link) {
        self.fleet = Some(link);
    }

    /// One scrape's body: the model, the findings now, and what the tracer saw.
    pub(super) fn render_metrics(&self) -> String {
        tracer_analysis::report::metrics::encode(self.metric_families())
    }

    /// The target's pprof profile now (see `--pprof`).
    pub(super) fn render_pprof(&self) -> Vec<u8> {
        let wall = crate::clock::wall_ns();
        let exe = self.target.exe.to_string_lossy();
        let mut out = Vec::new();
        let _ = tracer_analysis::report::pprof::write(
            self.analyzer.model(),
            monotonic_ns(),
            wall,
            &exe,
            &mut out,
        );
        out
    }

    pub(super) fn metric_families(&self) -> Vec<tracer_analysis::report::metrics::MetricFamily> {
        use tracer_analysis::report::metrics::{families, MetricsInputs};
        let now = monotonic_ns();
        let counters = self.counters();
        let mut lock_findings = std::collections::BTreeMap::new();
        for f in &self.locks.findings {
            *lock_findings.entry(f.rule().to_string()).or_default() += 1;
        }
        let inputs = MetricsInputs {
            target: self.metric_labels.clone(),
            events: self.events_seen,
            drops: counters.drops,
            probes_failed: self.probes.as_ref().map_or(0, |p| p.failed().len() as u64),
            lock_findings,
            park_probes_on: self.park_budget.as_ref().map(|b| b.report().on_fraction),
            lock_sites_on: self.budget.as_ref().map(|b| b.report().on_fraction),
            budget_percent: self.park_budget.as_ref().map(|b| b.report().budget_percent),
        };
        families(
            self.analyzer.model(),
            &self.analyzer.findings(now),
            now,
            &inputs,
        )
    }

    /// Hold-time histograms per lock class.
    pub fn hold_times(&self) -> Vec<lockwatch::HoldTimes> {
        let Some(probes) = &self.probes else {
            return Vec::new();
        };
        let sites = self.decoder.lock_sites();
        lockwatch::hold_times(
            sites,
            self.decoder.lock_classes(),
            &probes.hold_buckets(sites.len()),
        )
    }
}

/// Which process the metrics are about: PID, executable, Go version, main module
/// (from its build info) and container, when there are.
pub(super) fn metric_labels(target: &TargetInfo, pid: u32) -> Vec<(String, String)> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_else(|_| target.exe.clone());
    let mut labels = vec![
        ("pid".to_string(), pid.to_string()),
        ("executable".to_string(), exe.display().to_string()),
        ("go_version".to_string(), target.go_version.clone()),
    ];
    // The build info was read at inspection: not parsed again per target.
    for (name, value) in [
        ("module", &target.main_module),
        ("module_version", &target.main_version),
    ] {
        if let Some(v) = value {
            labels.push((name.to_string(), v.clone()));
        }
    }
    if let Some(id) = container_id(pid) {
        labels.push(("container_id".to_string(), id));
    }
    labels
}

/// The container a process runs in: the 64-hex-digit id in its cgroup path, as
/// Docker, containerd and CRI-O name their cgroups.
pub fn container_id(pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup.lines().find_map(|line| {
        let path = line.rsplit(':').next()?;
        path.split(|c: char| !c.is_ascii_hexdigit())
            .find(|part| part.len() == 64)
            .map(str::to_string)
    })
}

//! The footer of every report: what was observed and what could not be, so that
//! an empty report can be told apart from a blind one.

use serde::Serialize;

use crate::model::{Model, SiteHistogram};

/// What only the caller knows: the probes and the event stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryInputs {
    /// Events read from the kernel.
    pub events: u64,
    /// Events the kernel could not deliver (ring buffer full).
    pub drops: u64,
    pub probes_attached: u32,
    /// `"symbol: reason"` for every probe that could not be attached.
    pub probes_failed: Vec<String>,
    /// Symbols the target binary lacks, so some probes were never tried.
    pub symbols_missing: Vec<String>,
    /// Probe hits per kernel program (`park`, `ready`, ...): each hit is a trap in
    /// the target, so this is what the tracer cost it.
    pub probe_hits: Vec<(String, u64)>,
}

/// Counts for the report footer and the JSON `summary` line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub events: u64,
    pub drops: u64,
    pub probes_attached: u32,
    pub probes_failed: Vec<String>,
    pub symbols_missing: Vec<String>,
    /// Hits per kernel program, by name.
    pub probe_hits: std::collections::BTreeMap<String, u64>,
    /// Distinct goroutines the model tracked.
    pub goroutines_seen: u64,
    /// Goroutines parked at the end, system ones included.
    pub goroutines_parked: u64,
    /// Goroutine updates refused because the table was full.
    pub goroutines_dropped: u64,
    /// From the first input to the report (or to the target's exit).
    pub duration_ns: u64,
    /// Rendered as their own section and JSON lines.
    #[serde(skip)]
    pub histograms: Vec<SiteHistogram>,
}

impl Summary {
    pub fn new(inputs: SummaryInputs, model: &Model, now_ns: u64) -> Self {
        let end = model.clock(now_ns.max(model.last_ts()));
        let duration_ns = model
            .first_ts()
            .map_or(0, |first| end.saturating_sub(first));
        Summary {
            events: inputs.events,
            drops: inputs.drops,
            probes_attached: inputs.probes_attached,
            probes_failed: inputs.probes_failed,
            symbols_missing: inputs.symbols_missing,
            probe_hits: inputs.probe_hits.into_iter().collect(),
            goroutines_seen: model.goroutines_seen(),
            goroutines_parked: model.goroutines_parked(),
            goroutines_dropped: model.stats().goroutines_dropped,
            duration_ns,
            histograms: model.histograms(),
        }
    }
}

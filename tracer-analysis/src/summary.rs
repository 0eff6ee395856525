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
    /// Why tracing stopped (`target exited`, `duration reached`, ...).
    pub stop: String,
    /// `tracer run`: how the program ended.
    pub program: Option<ProgramEnd>,
    /// Streamed lines given up on because the output's reader was too slow.
    pub output_lines_dropped: u64,
}

/// How the program `tracer run` started came to an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum ProgramEnd {
    /// It exited by itself (`os.Exit`, returning from main, a panic: status 2).
    Exited { exit_code: i32 },
    /// A signal ended it (its own, or another process's).
    Killed { signal: i32, signal_name: String },
    /// The tracer stopped it when tracing ended (`--duration`, Ctrl-C): with
    /// SIGTERM, or SIGKILL when it did not exit within the grace period.
    StoppedByTracer { signal: i32, signal_name: String },
}

impl ProgramEnd {
    /// The exit code a shell would give for this end (128 + N for signal N), or
    /// `None` when the tracer ended it, which is not the program's own status.
    pub fn status(&self) -> Option<u8> {
        match self {
            ProgramEnd::Exited { exit_code } => Some((*exit_code & 0xff) as u8),
            ProgramEnd::Killed { signal, .. } => Some((128 + signal).clamp(0, 255) as u8),
            ProgramEnd::StoppedByTracer { .. } => None,
        }
    }
}

impl std::fmt::Display for ProgramEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramEnd::Exited { exit_code } => write!(f, "exited with status {exit_code}"),
            ProgramEnd::Killed {
                signal,
                signal_name,
            } => write!(f, "killed by signal {signal} ({signal_name})"),
            ProgramEnd::StoppedByTracer {
                signal,
                signal_name,
            } => write!(
                f,
                "stopped by the tracer with signal {signal} ({signal_name}) when tracing ended"
            ),
        }
    }
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
    /// Why tracing stopped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop: String,
    /// `tracer run`: how the program ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramEnd>,
    pub output_lines_dropped: u64,
    /// Goroutine findings streamed while tracing that no longer hold at the
    /// report (the goroutine resumed or exited).
    pub findings_resolved: u64,
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
            stop: inputs.stop,
            program: inputs.program,
            output_lines_dropped: inputs.output_lines_dropped,
            findings_resolved: 0,
            histograms: model.histograms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_status_is_a_shells() {
        assert_eq!(ProgramEnd::Exited { exit_code: 42 }.status(), Some(42));
        let killed = ProgramEnd::Killed {
            signal: 9,
            signal_name: "SIGKILL".into(),
        };
        assert_eq!(killed.status(), Some(137));
        assert_eq!(killed.to_string(), "killed by signal 9 (SIGKILL)");
        let stopped = ProgramEnd::StoppedByTracer {
            signal: 15,
            signal_name: "SIGTERM".into(),
        };
        assert_eq!(stopped.status(), None);
        let json = serde_json::to_value(&stopped).unwrap();
        assert_eq!(json["how"], "stopped_by_tracer");
        assert_eq!(json["signal"], 15);
    }
}

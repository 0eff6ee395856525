//! Small formatting helpers shared by the live views.

/// Durations the way a person reads them: `850µs`, `12.3ms`, `4.2s`, `5m10s`, `2h3m`.
pub fn human_ns(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.0}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}

//! The targets the bench is judged on (loss on the HTTP service, drain rate, attach
//! time, snapshot RSS) and their verdicts. A quick run is never judged on the
//! targets tied to sizes: its binary and goroutine count are too small to say.
use super::format::{mb, secs, thousands};
use super::Report;
use crate::bench::configs::DEFAULT_BUDGET;
use crate::bench::samples::Row;

/// What the default mode may cost on the HTTP service, whatever the budget.
const DEFAULT_MODE_MAX_LOSS: f64 = 0.03;
const MIN_DRAIN_RATE: f64 = 1_000_000.0;
const MAX_ATTACH_SECS: f64 = 1.0;
const MAX_SNAPSHOT_RSS_MB: f64 = 100.0;

pub struct Target {
    pub what: String,
    pub measured: String,
    pub status: String,
}

impl Report<'_> {
    /// A judged mode's loss of saturated throughput on one HTTP table against
    /// `max` (its budget), with the median's error.
    fn loss_target(&self, rows: &[Row], table: &str, what: &str, id: &str, max: f64) -> Target {
        let what = format!("{what}: {table}, loss ≤ {:.0}%", max * 100.0);
        let row = rows.iter().find(|r| r.config.id == id);
        let (measured, status) = match row {
            Some(Row { na: Some(why), .. }) => ("-".into(), format!("n/a ({why})")),
            Some(r) => match r.ratio() {
                Some(ratio) => {
                    let loss = 1.0 - ratio;
                    let verdict = if loss <= max { "met" } else { "OVER BUDGET" };
                    let err = r
                        .ratio_error()
                        .map_or(String::new(), |e| format!(" ± {:.1}%", e * 100.0));
                    (
                        format!(
                            "loss {:.1}%{err} (ratio {ratio:.3}, {} rounds, {} req/s)",
                            loss * 100.0,
                            r.ratios.len(),
                            thousands(r.rate().unwrap_or(0.0))
                        ),
                        format!("{verdict}{}", self.caveat()),
                    )
                }
                None => ("no data".into(), "n/a".into()),
            },
            None => ("no data".into(), "n/a".into()),
        };
        Target {
            what,
            measured,
            status,
        }
    }

    fn caveat(&self) -> &'static str {
        if self.quick() {
            " (quick: one short run, indicative only)"
        } else {
            ""
        }
    }

    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let budget = DEFAULT_BUDGET / 100.0;
        let http = "HTTP saturated throughput";
        t.push(self.loss_target(
            self.http,
            http,
            "default mode (parks)",
            "parks",
            DEFAULT_MODE_MAX_LOSS,
        ));
        let sites = "HTTP with many lock sites, saturated";
        for (rows, table) in [(self.http, http), (self.sites, sites)] {
            for (id, what) in [
                ("snapshot", "snapshot mode"),
                ("watch", "watch mode"),
                ("parks", "parks mode at the default budget"),
                ("locks", "locks mode at the default budget"),
            ] {
                if rows.iter().any(|r| r.config.id == id) && (id != "parks" || table != http) {
                    t.push(self.loss_target(rows, table, what, id, budget));
                }
            }
        }
        let what = "≥ 1,000,000 events/s drained without a drop".to_string();
        t.push(match self.drain() {
            (Some(f), _) => Target {
                what,
                measured: format!(
                    "{} events/s ({} pairs, tracer parks)",
                    thousands(f.rate()),
                    f.pairs
                ),
                status: format!(
                    "{}{}",
                    if f.rate() >= MIN_DRAIN_RATE {
                        "met"
                    } else {
                        "not met"
                    },
                    self.caveat()
                ),
            },
            (None, _) if self.flood.is_empty() => Target {
                what,
                measured: "no data".into(),
                status: "n/a".into(),
            },
            (None, _) => Target {
                what,
                measured: "every run dropped events".into(),
                status: "not met".into(),
            },
        });
        let size = self
            .bin
            .map_or("-".into(), |b| format!("{:.0} MB", b.bytes as f64 / 1e6));
        let attach = self.attach_default();
        t.push(Target {
            what: "attach < 1 s on a ~100 MB binary (start to exit, default mode)".into(),
            measured: attach.map_or("no data".into(), |s| {
                format!("{} on a {size} binary", secs(s))
            }),
            status: match (self.quick(), attach) {
                (true, _) => format!("not evaluated (quick: {size} binary)"),
                (false, Some(s)) if s < MAX_ATTACH_SECS => "met".into(),
                (false, Some(_)) => "not met".into(),
                (false, None) => "n/a".into(),
            },
        });
        let n = thousands(self.ctx.p.snapshot_goroutines as f64);
        let peak = self.snapshot_peak_kb();
        t.push(Target {
            what: "agent RSS < 100 MB with 100,000 parked goroutines".into(),
            measured: peak.map_or("no data".into(), |kb| {
                format!("{:.1} MB with {n} goroutines", mb(kb))
            }),
            status: match (self.quick(), peak) {
                (true, _) => format!("not evaluated (quick: {n} goroutines)"),
                (false, Some(kb)) if mb(kb) < MAX_SNAPSHOT_RSS_MB => "met".into(),
                (false, Some(_)) => "not met".into(),
                (false, None) => "n/a".into(),
            },
        });
        t
    }
}

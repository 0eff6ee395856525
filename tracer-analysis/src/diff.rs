//! Baseline against canary: two JSON Lines reports (docs/json.md) compared site by
//! site, for a staging canary or a release gate. What counts as a regression, so
//! that two runs of one build never differ and one leaking site always does:
//! - a blocking site with stuck or leaked goroutines (any goroutine rule) that the
//!   baseline did not have;
//! - a site with more such goroutines than the baseline, by at least 3 and by half
//!   the baseline's count (one more goroutine in a long park is noise);
//! - a group found growing that was not, or whose growth per minute doubled;
//! - a blocking site whose p99 park time at least doubled, by 10 ms or more, with
//!   at least 20 measured parks on each side (fewer is noise);
//! - a lock finding (by rule and lock classes) the baseline did not have.
//!
//! It reads report lines and decides; it never reads a process or prints.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// A site's key: where it blocks, and on what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SiteKey {
    pub function: String,
    pub file: String,
    pub line: u64,
    pub wait_reason: String,
}

impl std::fmt::Display for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        write!(f, "{} ({base}:{})", self.function, self.line)?;
        if !self.wait_reason.is_empty() {
            write!(f, " [{}]", self.wait_reason)?;
        }
        Ok(())
    }
}

/// What one report says, by site.
#[derive(Debug, Default, Clone)]
pub struct Digest {
    /// Distinct goroutines some goroutine rule fired for, by site (a goroutine
    /// streamed and then in the final report counts once).
    pub stuck: BTreeMap<SiteKey, BTreeSet<u64>>,
    /// Growth per minute of groups found growing, by site (the largest seen).
    pub growing: BTreeMap<SiteKey, f64>,
    /// (parks, p99 ns) of each blocking site's histogram, by site and wait reason.
    pub histograms: BTreeMap<SiteKey, (u64, u64)>,
    /// `rule: classes` of every lock finding.
    pub locks: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiffError {
    #[error("not a complete tracer JSON report (no summary line): write it with --format json")]
    Incomplete,
}

fn frame_key(v: &Value, reason: &Value) -> SiteKey {
    SiteKey {
        function: v["function"].as_str().unwrap_or("?").to_string(),
        file: v["file"].as_str().unwrap_or("?").to_string(),
        line: v["line"].as_u64().unwrap_or(0),
        wait_reason: reason.as_str().unwrap_or("").to_string(),
    }
}

/// Reads a JSON Lines report. Lines that are not JSON (a program's own output in
/// the same stream) and kinds it does not know are skipped.
pub fn digest(text: &str) -> Result<Digest, DiffError> {
    let mut d = Digest::default();
    let mut complete = false;
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        match v["kind"].as_str() {
            Some("goroutine") => {
                let key = frame_key(&v["site"], &v["wait_reason"]);
                let goid = v["goid"].as_u64().unwrap_or(0);
                d.stuck.entry(key).or_default().insert(goid);
            }
            Some("group") => {
                let key = frame_key(&v["site"], &v["wait_reason"]);
                if v["rule"] == "growing" {
                    let rate = v["growth"]["per_minute"].as_f64().unwrap_or(0.0);
                    let e = d.growing.entry(key.clone()).or_insert(0.0);
                    *e = e.max(rate);
                }
                let goids = d.stuck.entry(key).or_default();
                goids.extend(
                    v["goids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64),
                );
            }
            Some("histogram") => {
                let key = frame_key(&v["site"], &v["wait_reason"]);
                let count = v["count"].as_u64().unwrap_or(0);
                let p99 = v["p99_ns"].as_u64().unwrap_or(0);
                d.histograms.insert(key, (count, p99));
            }
            Some("lock") => {
                if let Some(rule) = v["rule"].as_str() {
                    d.locks.insert(lock_signature(rule, &v));
                }
            }
            Some("summary") => complete = true,
            _ => {}
        }
    }
    if complete {
        Ok(d)
    } else {
        Err(DiffError::Incomplete)
    }
}

/// A lock finding by what would make it the same bug in another run: its rule
/// and the lock classes (or the site) involved, not addresses or goroutine ids.
fn lock_signature(rule: &str, v: &Value) -> String {
    let mut parts: Vec<String> = v["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    if parts.is_empty() {
        if let Some(site) = v["site"].as_object() {
            parts.push(format!(
                "{}:{}",
                site.get("function").and_then(Value::as_str).unwrap_or("?"),
                site.get("line").and_then(Value::as_u64).unwrap_or(0)
            ));
        }
    }
    parts.sort();
    format!("{rule}: {}", parts.join(", "))
}

/// One difference between the two reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    NewStuckSite {
        site: SiteKey,
        goroutines: usize,
    },
    MoreStuck {
        site: SiteKey,
        baseline: usize,
        canary: usize,
    },
    NewGrowth {
        site: SiteKey,
        per_minute: f64,
    },
    FasterGrowth {
        site: SiteKey,
        baseline_per_minute: f64,
        canary_per_minute: f64,
    },
    SlowerSite {
        site: SiteKey,
        baseline_p99_ns: u64,
        canary_p99_ns: u64,
    },
    NewLockFinding {
        finding: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::NewStuckSite { site, goroutines } => {
                write!(f, "new stuck site {site}: {goroutines} goroutines (none in the baseline)")
            }
            Change::MoreStuck {
                site,
                baseline,
                canary,
            } => write!(f, "more stuck at {site}: {baseline} -> {canary} goroutines"),
            Change::NewGrowth { site, per_minute } => {
                write!(f, "new growing group at {site}: +{per_minute:.1} goroutines a minute")
            }
            Change::FasterGrowth {
                site,
                baseline_per_minute,
                canary_per_minute,
            } => write!(
                f,
                "faster growth at {site}: +{baseline_per_minute:.1} -> +{canary_per_minute:.1} goroutines a minute"
            ),
            Change::SlowerSite {
                site,
                baseline_p99_ns,
                canary_p99_ns,
            } => {
                write!(
                    f,
                    "slower blocking at {site}: p99 {} -> {}",
                    crate::report::duration::human(*baseline_p99_ns),
                    crate::report::duration::human(*canary_p99_ns)
                )
            }
            Change::NewLockFinding { finding } => write!(f, "new lock finding: {finding}"),
        }
    }
}

/// Minimum parks on each side for a histogram shift to count.
const MIN_PARKS: u64 = 20;
/// A p99 must grow by this much, and double, to count.
const MIN_P99_SHIFT_NS: u64 = 10_000_000;

/// What regressed from `baseline` to `canary`, most serious first.
pub fn compare(baseline: &Digest, canary: &Digest) -> Vec<Change> {
    let mut out = Vec::new();
    for (site, goids) in &canary.stuck {
        let before = baseline.stuck.get(site).map_or(0, BTreeSet::len);
        let now = goids.len();
        if before == 0 {
            out.push(Change::NewStuckSite {
                site: site.clone(),
                goroutines: now,
            });
        } else if now >= before + 3 && now * 2 >= before * 3 {
            out.push(Change::MoreStuck {
                site: site.clone(),
                baseline: before,
                canary: now,
            });
        }
    }
    for (site, rate) in &canary.growing {
        match baseline.growing.get(site) {
            None => out.push(Change::NewGrowth {
                site: site.clone(),
                per_minute: *rate,
            }),
            Some(before) if *rate >= 2.0 * before.max(1.0) => out.push(Change::FasterGrowth {
                site: site.clone(),
                baseline_per_minute: *before,
                canary_per_minute: *rate,
            }),
            Some(_) => {}
        }
    }
    for (key, (count, p99)) in &canary.histograms {
        let Some((before_count, before_p99)) = baseline.histograms.get(key) else {
            continue;
        };
        let enough = *count >= MIN_PARKS && *before_count >= MIN_PARKS;
        if enough && *p99 >= 2 * before_p99 && p99 - before_p99 >= MIN_P99_SHIFT_NS {
            out.push(Change::SlowerSite {
                site: key.clone(),
                baseline_p99_ns: *before_p99,
                canary_p99_ns: *p99,
            });
        }
    }
    for finding in canary.locks.difference(&baseline.locks) {
        out.push(Change::NewLockFinding {
            finding: finding.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goroutine(goid: u64, function: &str, line: u64) -> String {
        format!(
            r#"{{"kind":"goroutine","rule":"parked_at_exit","goid":{goid},"wait_reason":"chan send","site":{{"function":"{function}","file":"/src/main.go","line":{line}}}}}"#
        )
    }

    fn report(lines: &[String]) -> Digest {
        let mut text = lines.join("\n");
        text.push_str("\nprogram output that is not JSON\n{\"kind\":\"summary\"}\n");
        digest(&text).unwrap()
    }

    #[test]
    fn the_same_report_twice_is_no_regression() {
        let a = report(&[goroutine(5, "main.wait", 10), goroutine(5, "main.wait", 10)]);
        assert_eq!(a.stuck.values().next().unwrap().len(), 1);
        assert!(compare(&a, &a).is_empty());
    }

    #[test]
    fn a_new_leaking_site_and_a_big_increase_regress() {
        let base = report(&[goroutine(5, "main.wait", 10)]);
        let mut lines = vec![goroutine(5, "main.wait", 10)];
        lines.extend((20..25).map(|g| goroutine(g, "main.leak", 30)));
        let canary = report(&lines);
        let changes = compare(&base, &canary);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0]
            .to_string()
            .starts_with("new stuck site main.leak (main.go:30) [chan send]: 5"));
        // One more goroutine in a long park is noise; four more of four is not.
        let small = report(&[goroutine(5, "main.wait", 10), goroutine(6, "main.wait", 10)]);
        assert!(compare(&base, &small).is_empty());
        let more: Vec<String> = (1..=8).map(|g| goroutine(g, "main.wait", 10)).collect();
        let base4: Vec<String> = (1..=4).map(|g| goroutine(g, "main.wait", 10)).collect();
        assert!(matches!(
            compare(&report(&base4), &report(&more))[..],
            [Change::MoreStuck {
                baseline: 4,
                canary: 8,
                ..
            }]
        ));
    }

    #[test]
    fn histogram_shifts_need_enough_parks_and_a_real_change() {
        let h = |count: u64, p99: u64| {
            format!(
                r#"{{"kind":"histogram","site":{{"function":"main.get","file":"/src/pool.go","line":88}},"count":{count},"p50_ns":1,"p99_ns":{p99},"max_ns":{p99}}}"#
            )
        };
        let base = report(&[h(100, 5_000_000)]);
        assert!(compare(&base, &report(&[h(100, 9_000_000)])).is_empty());
        assert!(compare(&base, &report(&[h(5, 90_000_000)])).is_empty());
        let slower = compare(&base, &report(&[h(100, 90_000_000)]));
        assert_eq!(slower.len(), 1);
        assert!(
            slower[0].to_string().contains("p99 5ms -> 90ms"),
            "{}",
            slower[0]
        );
    }

    #[test]
    fn new_lock_findings_regress_by_class_not_address() {
        let inv = |a: u64| {
            format!(
                r#"{{"kind":"lock","rule":"lock_order_inversion","level":"class","locks":[{a},2],"classes":["main.b (x.go:2)","main.a (x.go:1)"]}}"#
            )
        };
        let base = report(&[]);
        let canary = report(&[inv(1)]);
        assert_eq!(compare(&base, &canary).len(), 1);
        assert!(compare(&report(&[inv(7)]), &canary).is_empty());
    }

    #[test]
    fn a_cut_report_is_refused() {
        assert_eq!(
            digest(&goroutine(1, "main.x", 1)).unwrap_err(),
            DiffError::Incomplete
        );
    }
}

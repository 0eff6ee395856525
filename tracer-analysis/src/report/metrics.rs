//! The model as Prometheus metrics (text exposition format), rendered afresh for
//! each scrape with the `prometheus-client` crate. Names and units follow
//! Prometheus' conventions (`_seconds`, `_total`, `_ratio`); every series carries
//! the target's labels. Blocking sites are bounded: the busiest
//! [`MAX_SITES`] by parked goroutines are series of their own, the rest are summed
//! under `site="other"`, so a leak of many sites cannot explode a time-series
//! database. It renders what the model and the caller give; it decides nothing.
use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::findings::{Findings, Rule};
use crate::input::Frame;
use crate::model::Model;

/// Blocking sites with series of their own; the rest are `site="other"`.
pub const MAX_SITES: usize = 20;

/// Bucket bounds of the park-duration histograms, in seconds: 10 µs to 100 s.
const BOUNDS_S: [f64; 12] = [
    1e-5, 1e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0,
];

/// What only the caller knows.
#[derive(Debug, Clone, Default)]
pub struct MetricsInputs {
    /// Labels on every series: pid, executable, Go version, module...
    pub target: Vec<(String, String)>,
    pub events: u64,
    pub drops: u64,
    pub probes_failed: u64,
    /// Lock findings so far, by rule.
    pub lock_findings: BTreeMap<String, u64>,
    /// Share of the time the park probes and the lock sites were on (0..1).
    pub park_probes_on: Option<f64>,
    pub lock_sites_on: Option<f64>,
    pub budget_percent: Option<f64>,
}

type Labels = Vec<(String, String)>;

/// `main.work (main.go:42)`: the site as the text report names it.
fn site_label(f: &Frame) -> String {
    let base = f.file.rsplit('/').next().unwrap_or(&f.file);
    format!("{} ({base}:{})", f.function, f.line)
}

/// A histogram given by its buckets (the model keeps its own histograms).
#[derive(Debug, Clone)]
pub struct ParkHistogram {
    sum_s: f64,
    count: u64,
    /// (upper bound in seconds, cumulative count).
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ParkHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The text format wants per-bucket counts it accumulates itself.
        let mut prev = 0;
        let mut per_bucket: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .map(|(b, c)| {
                let n = c.saturating_sub(prev);
                prev = *c;
                (*b, n)
            })
            .collect();
        per_bucket.push((f64::INFINITY, self.count.saturating_sub(prev)));
        encoder.encode_histogram::<NoLabelSet>(self.sum_s, self.count, &per_bucket, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One value of a series.
#[derive(Debug, Clone)]
pub enum Value {
    Gauge(f64),
    Counter(u64),
    Histogram(ParkHistogram),
}

/// A metric family, computed for one scrape.
#[derive(Debug, Clone)]
pub struct MetricFamily {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

impl MetricFamily {
    /// A gauge with one series per label set.
    pub fn gauge(name: &'static str, help: &'static str, series: Vec<(Labels, f64)>) -> Self {
        MetricFamily {
            name,
            help,
            kind: MetricType::Gauge,
            series: series
                .into_iter()
                .map(|(l, v)| (l, Value::Gauge(v)))
                .collect(),
        }
    }
}

/// The whole scrape, handed to the registry as a collector.
#[derive(Debug)]
struct Scrape(Vec<MetricFamily>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.series {
                let e = metric.encode_family(labels)?;
                match value {
                    Value::Gauge(v) => ConstGauge::new(*v).encode(e)?,
                    Value::Counter(v) => ConstCounter::new(*v).encode(e)?,
                    Value::Histogram(h) => h.encode(e)?,
                }
            }
        }
        Ok(())
    }
}

/// Renders the metrics of `model` at `now_ns`, with the current `findings`.
pub fn render(model: &Model, findings: &Findings, now_ns: u64, inputs: &MetricsInputs) -> String {
    encode(families(model, findings, now_ns, inputs))
}

/// Several targets' families (or one's) as one exposition: series of the same
/// metric are gathered under one family, as the format requires.
pub fn encode(families: impl IntoIterator<Item = MetricFamily>) -> String {
    let mut merged: Vec<MetricFamily> = Vec::new();
    for f in families {
        match merged.iter_mut().find(|m| m.name == f.name) {
            Some(m) => m.series.extend(f.series),
            None => merged.push(f),
        }
    }
    let mut registry = Registry::with_prefix("tracer");
    registry.register_collector(Box::new(Scrape(merged)));
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The metric families of one target (see [`render`]).
pub fn families(
    model: &Model,
    findings: &Findings,
    now_ns: u64,
    inputs: &MetricsInputs,
) -> Vec<MetricFamily> {
    let labels = |extra: &[(&str, String)]| -> Labels {
        let mut l = inputs.target.clone();
        l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        l
    };
    let family = |name, help, kind, series| MetricFamily {
        name,
        help,
        kind,
        series,
    };
    let now = model.clock(now_ns);
    let mut families = Vec::new();

    // Parked goroutines by wait reason, and by site (bounded).
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut sites: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for p in model.parked().filter(|p| !p.system && !p.ignored) {
        let reason = p.parked.wait_reason.to_string();
        *reasons.entry(reason.clone()).or_default() += 1;
        let e = sites
            .entry((site_label(&p.group.site), reason))
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(now.saturating_sub(p.parked.since_ns));
    }
    families.push(family(
        "goroutines_parked",
        "Goroutines parked now (runtime and ignored ones left out), by wait reason",
        MetricType::Gauge,
        reasons
            .into_iter()
            .map(|(r, n)| (labels(&[("wait_reason", r)]), Value::Gauge(n as f64)))
            .collect(),
    ));
    let mut ranked: Vec<_> = sites.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut bounded: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (i, ((site, reason), (n, oldest))) in ranked.into_iter().enumerate() {
        let key = if i < MAX_SITES {
            (site, reason)
        } else {
            ("other".to_string(), String::new())
        };
        let e = bounded.entry(key).or_default();
        e.0 += n;
        e.1 = e.1.max(oldest);
    }
    let site_labels = |(site, reason): &(String, String)| {
        labels(&[("site", site.clone()), ("wait_reason", reason.clone())])
    };
    families.push(family(
        "site_goroutines_parked",
        "Goroutines parked now at each blocking site (the busiest sites; the rest under site=\"other\")",
        MetricType::Gauge,
        bounded
            .iter()
            .map(|(k, (n, _))| (site_labels(k), Value::Gauge(*n as f64)))
            .collect(),
    ));
    families.push(family(
        "site_oldest_park_seconds",
        "How long the oldest goroutine parked at each blocking site has been parked",
        MetricType::Gauge,
        bounded
            .iter()
            .map(|(k, (_, oldest))| (site_labels(k), Value::Gauge(*oldest as f64 / 1e9)))
            .collect(),
    ));

    // Findings by rule, and how fast growing groups grow.
    let mut rules: BTreeMap<&str, u64> = Rule::ALL.iter().map(|r| (r.as_str(), 0)).collect();
    for g in &findings.goroutines {
        *rules.entry(g.rule.as_str()).or_default() += 1;
    }
    let mut growth = Vec::new();
    for g in &findings.groups {
        *rules.entry(g.rule.as_str()).or_default() += 1;
        if let Some(gr) = &g.growth {
            let l = site_labels(&(site_label(&g.site), g.wait_reason.to_string()));
            growth.push((l, Value::Gauge(gr.per_minute)));
        }
    }
    families.push(family(
        "findings",
        "Findings now, by rule (goroutines for long_parked and parked_at_exit, groups for growing)",
        MetricType::Gauge,
        rules
            .into_iter()
            .map(|(r, n)| (labels(&[("rule", r.to_string())]), Value::Gauge(n as f64)))
            .collect(),
    ));
    families.push(family(
        "site_growth_per_minute",
        "Goroutines a minute by which a group found growing grew over the leak window",
        MetricType::Gauge,
        growth,
    ));
    families.push(family(
        "lock_findings",
        "Lock findings so far, by rule",
        MetricType::Gauge,
        inputs
            .lock_findings
            .iter()
            .map(|(r, n)| (labels(&[("rule", r.clone())]), Value::Gauge(*n as f64)))
            .collect(),
    ));

    // Blocking time of the parks that ended, per site (bounded).
    let bounds_ns: Vec<u64> = BOUNDS_S.iter().map(|s| (s * 1e9) as u64).collect();
    families.push(family(
        "park_duration_seconds",
        "How long parks that ended lasted, per blocking site (the busiest sites)",
        MetricType::Histogram,
        model
            .histogram_buckets(&bounds_ns)
            .into_iter()
            .take(MAX_SITES)
            .map(|(h, counts)| {
                let l = labels(&[
                    ("site", site_label(&h.site)),
                    ("wait_reason", h.wait_reason.to_string()),
                ]);
                let h = ParkHistogram {
                    sum_s: h.total_ns as f64 / 1e9,
                    count: h.count,
                    buckets: BOUNDS_S.iter().copied().zip(counts).collect(),
                };
                (l, Value::Histogram(h))
            })
            .collect(),
    ));

    // What the tracer saw and could not see.
    let one = |v: Value| vec![(labels(&[]), v)];
    families.push(family(
        "events",
        "Records read from the kernel",
        MetricType::Counter,
        one(Value::Counter(inputs.events)),
    ));
    families.push(family(
        "events_dropped",
        "Records the kernel could not deliver (ring buffer full)",
        MetricType::Counter,
        one(Value::Counter(inputs.drops)),
    ));
    families.push(family(
        "probes_failed",
        "Probes that could not be attached",
        MetricType::Gauge,
        one(Value::Gauge(inputs.probes_failed as f64)),
    ));
    for (name, help, v) in [
        (
            "park_probes_on_ratio",
            "Share of the time the park probes were on (the budget samples them)",
            inputs.park_probes_on,
        ),
        (
            "lock_sites_on_ratio",
            "Share of the time the lock sites were on",
            inputs.lock_sites_on,
        ),
        (
            "budget_percent",
            "The probes' budget, percent of the target's CPU time",
            inputs.budget_percent,
        ),
    ] {
        if let Some(v) = v {
            families.push(family(name, help, MetricType::Gauge, one(Value::Gauge(v))));
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{park, parked, ready, SECOND};
    use crate::{Analyzer, Config};

    #[test]
    fn parked_sites_histograms_and_target_labels() {
        let mut a = Analyzer::new(Config::default()).unwrap();
        a.apply(park(parked(10, SECOND, 42)));
        a.apply(park(parked(11, 2 * SECOND, 42)));
        a.apply(park(parked(12, SECOND, 50)));
        a.apply(ready(4 * SECOND, 12, Some(3 * SECOND)));
        let inputs = MetricsInputs {
            target: vec![("pid".into(), "7".into())],
            events: 5,
            ..Default::default()
        };
        let text = render(a.model(), &a.findings(11 * SECOND), 11 * SECOND, &inputs);
        assert!(
            text.contains(r#"tracer_goroutines_parked{pid="7",wait_reason="chan send"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tracer_site_goroutines_parked{pid="7",site="main.send (main.go:42)",wait_reason="chan send"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tracer_site_oldest_park_seconds{pid="7",site="main.send (main.go:42)",wait_reason="chan send"} 10.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tracer_park_duration_seconds_bucket{le="5.0",pid="7",site="main.send (main.go:50)",wait_reason="chan send"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"tracer_events_total{pid="7"} 5"#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn sites_beyond_the_cap_are_summed_as_other() {
        let mut a = Analyzer::new(Config::default()).unwrap();
        for i in 0..(MAX_SITES as u64 + 5) {
            a.apply(park(parked(100 + i, SECOND, 1000 + i as u32)));
        }
        let text = render(
            a.model(),
            &a.findings(2 * SECOND),
            2 * SECOND,
            &MetricsInputs::default(),
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("tracer_site_goroutines_parked{"))
            .count();
        assert_eq!(series, MAX_SITES + 1, "{text}");
        assert!(
            text.contains(r#"tracer_site_goroutines_parked{site="other",wait_reason=""} 5"#),
            "{text}"
        );
    }
}

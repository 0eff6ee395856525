//! How long goroutines stay blocked at each site, for the parks that ended.
//!
//! Long parks are findings; these histograms are the other half of the picture:
//! a site whose p99 is seconds is a latency problem even when nothing is stuck.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::input::Frame;

/// Three significant digits: a 1.234 s park is told apart from a 1.235 s one, at
/// a few hundred kilobytes for a site whose parks span nanoseconds to hours.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Blocking durations of one site and wait reason, in nanoseconds: a site's
/// channel waits and its GC assists are different stories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteHistogram {
    pub site: Frame,
    pub wait_reason: Arc<str>,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// All the parks' time together (a block profile's `delay`).
    pub total_ns: u64,
}

/// One histogram per blocking site, capped in number.
#[derive(Debug, Clone)]
pub struct SiteHistograms {
    /// Each site's histogram and the exact sum of its parks.
    sites: BTreeMap<(Frame, Arc<str>), (Histogram<u64>, u64)>,
    max_sites: usize,
    dropped: u64,
}

impl SiteHistograms {
    pub fn new(max_sites: usize) -> Self {
        SiteHistograms {
            sites: BTreeMap::new(),
            max_sites,
            dropped: 0,
        }
    }

    pub fn record(&mut self, site: &Frame, wait_reason: &Arc<str>, duration_ns: u64) {
        let key = (site.clone(), wait_reason.clone());
        if !self.sites.contains_key(&key) {
            if self.sites.len() >= self.max_sites {
                self.dropped += 1;
                return;
            }
            // Auto-resizing: memory follows the longest park actually seen.
            let Ok(histogram) = Histogram::new(SIGNIFICANT_DIGITS) else {
                self.dropped += 1;
                return;
            };
            self.sites.insert(key.clone(), (histogram, 0));
        }
        if let Some((h, total)) = self.sites.get_mut(&key) {
            *total = total.saturating_add(duration_ns);
            // Beyond the largest trackable value (~73 years) clamp instead of
            // losing the sample.
            if h.record(duration_ns).is_err() {
                h.saturating_record(duration_ns);
            }
        }
    }

    /// Samples refused because the site cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Cumulative counts at each bound (ns) of every site, with the exact total
    /// and count, busiest first: a Prometheus histogram's buckets.
    pub fn cumulative(&self, bounds_ns: &[u64]) -> Vec<(SiteHistogram, Vec<u64>)> {
        let mut out: Vec<_> = self
            .sites
            .iter()
            .map(|((site, reason), (h, total))| {
                let counts = bounds_ns.iter().map(|b| h.count_between(0, *b)).collect();
                (summary(site, reason, h, *total), counts)
            })
            .collect();
        out.sort_by(|a, b| {
            b.0.count
                .cmp(&a.0.count)
                .then_with(|| a.0.site.cmp(&b.0.site))
        });
        out
    }

    /// Every site, busiest first, then by site for a stable order.
    pub fn summaries(&self) -> Vec<SiteHistogram> {
        let mut out: Vec<SiteHistogram> = self
            .sites
            .iter()
            .map(|((site, reason), (h, total))| summary(site, reason, h, *total))
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.site.cmp(&b.site)));
        out
    }
}

fn summary(site: &Frame, reason: &Arc<str>, h: &Histogram<u64>, total: u64) -> SiteHistogram {
    SiteHistogram {
        site: site.clone(),
        wait_reason: reason.clone(),
        count: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        max_ns: h.max(),
        total_ns: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(line: u32) -> Frame {
        Frame::new("main.work", "/src/main.go", line)
    }

    #[test]
    fn percentiles_within_three_digits() {
        let mut h = SiteHistograms::new(10);
        for ms in 1..=100u64 {
            h.record(&site(1), &"chan send".into(), ms * 1_000_000);
        }
        let s = &h.summaries()[0];
        assert_eq!(s.count, 100);
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 1000;
        assert!(close(s.p50_ns, 50_000_000), "{}", s.p50_ns);
        assert!(close(s.p99_ns, 99_000_000), "{}", s.p99_ns);
        assert!(close(s.max_ns, 100_000_000), "{}", s.max_ns);
    }

    #[test]
    fn site_cap_counts_dropped_samples() {
        let mut h = SiteHistograms::new(1);
        h.record(&site(1), &"chan send".into(), 5);
        h.record(&site(2), &"chan send".into(), 5);
        h.record(&site(1), &"chan send".into(), 7);
        assert_eq!(h.dropped(), 1);
        assert_eq!(h.summaries().len(), 1);
        assert_eq!(h.summaries()[0].count, 2);
    }

    #[test]
    fn extreme_values_are_kept() {
        let mut h = SiteHistograms::new(1);
        h.record(&site(1), &"chan send".into(), 0);
        h.record(&site(1), &"chan send".into(), u64::MAX);
        assert_eq!(h.summaries()[0].count, 2);
    }

    #[test]
    fn busiest_site_first() {
        let mut h = SiteHistograms::new(10);
        h.record(&site(1), &"chan send".into(), 5);
        h.record(&site(2), &"chan send".into(), 5);
        h.record(&site(2), &"chan send".into(), 5);
        let lines: Vec<u32> = h.summaries().iter().map(|s| s.site.line).collect();
        assert_eq!(lines, vec![2, 1]);
    }
}

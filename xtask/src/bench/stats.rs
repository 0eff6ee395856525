//! Figures combined across runs: medians, spreads, and each sample's ratio to the
//! untraced run of the same round. Computed here alone, so the tables and
//! results.json quote the same figures; it never formats, and never reruns anything
//! to settle a noisy figure.
use super::configs::How;
use super::samples::{Agent, Row};

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The standard error of the median of `v`, estimated from the sample's spread
/// as for a normal distribution (1.2533 sd / sqrt(n)); None below 3 values.
pub fn median_error(v: &[f64]) -> Option<f64> {
    if v.len() < 3 {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(1.2533 * var.sqrt() / n.sqrt())
}

/// The first and third quartiles of `v` (the middle half of the values).
pub fn quartiles(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        let x = q * (v.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
    };
    Some((at(0.25), at(0.75)))
}

pub fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().reduce(f64::min)?;
    let max = v.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        median(&self.ratios)
    }

    /// The standard error of the median ratio.
    pub fn ratio_error(&self) -> Option<f64> {
        median_error(&self.ratios)
    }

    pub fn rate(&self) -> Option<f64> {
        median(&self.samples.iter().map(|s| s.rate).collect::<Vec<_>>())
    }

    pub fn agents(&self) -> Vec<&Agent> {
        self.samples
            .iter()
            .filter_map(|s| s.agent.as_ref())
            .collect()
    }

    pub fn agent_median(&self, f: impl Fn(&Agent) -> Option<f64>) -> Option<f64> {
        median(&self.agents().into_iter().filter_map(f).collect::<Vec<_>>())
    }

    pub fn peak_kb(&self) -> Option<u64> {
        self.agents().iter().map(|a| a.peak_rss_kb).max()
    }

    pub fn drops(&self) -> Option<u64> {
        let a = self.agents();
        (!a.is_empty()).then(|| a.iter().map(|a| a.drops).sum())
    }
}

/// Ratios of each sample to the untraced windows around it (the mean of the one
/// before and the one after) where it has them, else to the untraced sample of
/// the same round; a row run once is compared with the median untraced run.
pub fn pair_ratios(rows: &mut [Row]) {
    if rows
        .iter()
        .any(|r| r.samples.iter().any(|s| s.around.0.is_some()))
    {
        for row in rows.iter_mut() {
            row.ratios = row
                .samples
                .iter()
                .filter_map(|s| match s.around {
                    (Some(a), Some(b)) if a + b > 0.0 => Some(2.0 * s.rate / (a + b)),
                    _ => None,
                })
                .collect();
        }
        return;
    }
    let base: Vec<f64> = rows
        .iter()
        .find(|r| r.config.how == How::Untraced)
        .map(|r| r.samples.iter().map(|s| s.rate).collect())
        .unwrap_or_default();
    let base_median = median(&base);
    for row in rows.iter_mut() {
        row.ratios = if row.once {
            base_median
                .filter(|b| *b > 0.0)
                .map(|b| row.samples.iter().map(|s| s.rate / b).collect())
                .unwrap_or_default()
        } else {
            row.samples
                .iter()
                .zip(&base)
                .filter(|(_, b)| **b > 0.0)
                .map(|(s, b)| s.rate / b)
                .collect()
        };
    }
}

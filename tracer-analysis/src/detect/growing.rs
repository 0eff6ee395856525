//! The `growing` rule: a group of like goroutines whose parked count only goes up.
//!
//! A leak adds members to its group every time the leaking path runs and never
//! lets them go, while a worker pool or a server under steady load holds a
//! count that moves both ways. So a group fires when, over a whole window, its
//! sampled count never dropped and rose by at least `min_growth`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::config::Config;
use crate::findings::{GoroutineFinding, GroupFinding, Growth, Members, Rule};
use crate::model::{GroupKey, Model, ParkedGoroutine};

/// One observation of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    ts_ns: u64,
    count: u64,
}

/// Samples group counts on a fixed cadence and keeps the verdict of the latest
/// window per group.
#[derive(Debug, Clone)]
pub struct GrowingDetector {
    window_ns: u64,
    interval_ns: u64,
    min_growth: u64,
    last_sample: Option<u64>,
    /// Samples covering at least the last window, oldest first.
    history: BTreeMap<Arc<GroupKey>, VecDeque<Sample>>,
    /// Groups whose latest window was growing, with its figures.
    firing: BTreeMap<Arc<GroupKey>, Growth>,
}

impl GrowingDetector {
    pub fn new(config: &Config) -> Self {
        GrowingDetector {
            window_ns: config.leak_window_ns(),
            interval_ns: config.sample_interval_ns().max(1),
            min_growth: config.min_growth,
            last_sample: None,
            history: BTreeMap::new(),
            firing: BTreeMap::new(),
        }
    }

    /// Call often (every second is plenty): samples when a sample is due and
    /// re-judges every group. Returns whether it sampled.
    ///
    /// Sampling stops once the target exited: its goroutines can no longer move,
    /// and a flat tail would otherwise retract a leak that is still there.
    pub fn tick(&mut self, model: &Model, now_ns: u64) -> bool {
        if model.exited_at().is_some() {
            return false;
        }
        if let Some(last) = self.last_sample {
            if now_ns < last.saturating_add(self.interval_ns) {
                return false;
            }
        }
        self.last_sample = Some(now_ns);
        self.sample(model, now_ns);
        self.judge(now_ns);
        true
    }

    fn sample(&mut self, model: &Model, now_ns: u64) {
        for (key, count) in model.groups() {
            if count.reportable > 0 {
                self.history
                    .entry(Arc::clone(key))
                    .or_default()
                    .push_back(Sample {
                        ts_ns: now_ns,
                        count: count.reportable,
                    });
            }
        }
        // Groups that emptied since the last sample are at zero, which is what
        // tells a drained burst from a leak.
        let start = now_ns.saturating_sub(self.window_ns);
        self.history.retain(|_, samples| {
            if samples.back().is_none_or(|s| s.ts_ns != now_ns) {
                samples.push_back(Sample {
                    ts_ns: now_ns,
                    count: 0,
                });
            }
            // Keep one sample at or before the window start, so the window is
            // covered end to end.
            while samples.len() >= 2 && samples[1].ts_ns <= start {
                samples.pop_front();
            }
            samples.iter().any(|s| s.count > 0)
        });
    }

    fn judge(&mut self, now_ns: u64) {
        let (window_ns, min_growth) = (self.window_ns, self.min_growth);
        self.firing = self
            .history
            .iter()
            .filter_map(|(key, samples)| {
                growth(samples, now_ns, window_ns, min_growth).map(|g| (Arc::clone(key), g))
            })
            .collect();
    }

    /// Groups whose latest window was growing.
    pub fn firing(&self) -> impl Iterator<Item = (&Arc<GroupKey>, &Growth)> {
        self.firing.iter()
    }

    /// One finding per growing group, from the model's current members.
    pub fn findings(&self, model: &Model, now_ns: u64) -> Vec<GroupFinding> {
        self.findings_except(model, now_ns, |_| false)
    }

    /// [`findings`](Self::findings) without the groups `known` already accounts
    /// for.
    pub fn findings_except(
        &self,
        model: &Model,
        now_ns: u64,
        known: impl Fn(&GroupKey) -> bool,
    ) -> Vec<GroupFinding> {
        let wanted: BTreeMap<&GroupKey, &Growth> = self
            .firing
            .iter()
            .filter(|(key, _)| !known(key))
            .map(|(key, growth)| (key.as_ref(), growth))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let now = model.clock(now_ns);
        let mut members: BTreeMap<&GroupKey, Members<'_, ParkedGoroutine>> = BTreeMap::new();
        for g in model.parked().filter(|g| g.reportable()) {
            if wanted.contains_key(g.group.as_ref()) {
                members
                    .entry(g.group.as_ref())
                    .or_default()
                    .add(g.goid(), g.age_ns(now), g);
            }
        }
        members
            .into_iter()
            .filter_map(|(key, members)| {
                let m = members.finish()?;
                Some(GroupFinding {
                    rule: Rule::Growing,
                    site: key.site.clone(),
                    created_by: key.created_by.clone(),
                    wait_reason: key.wait_reason.clone(),
                    count: m.count,
                    oldest_ns: m.oldest_ns,
                    growth: wanted.get(key).map(|g| **g),
                    example: GoroutineFinding::new(Rule::Growing, m.example, now),
                    goids: m.goids,
                })
            })
            .collect()
    }
}

/// The growth of a group over its samples, if they span a whole window, never
/// drop, and rise by at least `min_growth`.
fn growth(
    samples: &VecDeque<Sample>,
    now_ns: u64,
    window_ns: u64,
    min_growth: u64,
) -> Option<Growth> {
    let (first, last) = (samples.front()?, samples.back()?);
    if last.ts_ns != now_ns || now_ns.saturating_sub(first.ts_ns) < window_ns {
        return None;
    }
    let never_dropped = samples
        .iter()
        .zip(samples.iter().skip(1))
        .all(|(a, b)| b.count >= a.count);
    let risen = last.count.saturating_sub(first.count);
    (never_dropped && risen >= min_growth).then(|| {
        Growth::new(
            first.count,
            last.count,
            last.ts_ns.saturating_sub(first.ts_ns),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{park, parked, ready, system, SECOND};
    use crate::input::Input;

    struct Run {
        model: Model,
        detector: GrowingDetector,
        /// Seconds at which some group was firing.
        fired_at: Vec<u64>,
    }

    impl Run {
        fn new() -> Self {
            let config = Config::default();
            Run {
                model: Model::new(&config),
                detector: GrowingDetector::new(&config),
                fired_at: Vec::new(),
            }
        }

        fn tick(&mut self, second: u64) {
            self.detector.tick(&self.model, second * SECOND);
            if self.detector.firing().next().is_some() {
                self.fired_at.push(second);
            }
        }
    }

    #[test]
    fn one_new_member_per_second_fires_after_a_window() {
        let mut run = Run::new();
        for t in 0..=30 {
            run.model.apply(park(parked(100 + t, t * SECOND, 42)));
            run.tick(t);
        }
        assert_eq!(run.fired_at, vec![30]);
        let found = run.detector.findings(&run.model, 30 * SECOND);
        assert_eq!(found.len(), 1);
        let g = &found[0];
        assert_eq!(g.rule, Rule::Growing);
        assert_eq!(g.count, 31);
        assert_eq!(g.site.line, 42);
        assert_eq!(g.created_by.as_ref().map(|c| c.line), Some(17));
        assert_eq!(&*g.wait_reason, "chan send");
        assert_eq!(g.oldest_ns, 30 * SECOND);
        assert_eq!(g.example.goid, 100);
        assert_eq!(g.example.rule, Rule::Growing);
        assert_eq!(g.goids, (100..120).collect::<Vec<u64>>());
        let growth = g.growth.unwrap();
        assert_eq!((growth.from, growth.to), (1, 31));
        assert_eq!(growth.window_ns, 30 * SECOND);
        assert_eq!(growth.per_minute, 60.0);
    }

    #[test]
    fn stable_worker_pool_does_not_fire() {
        let mut run = Run::new();
        for goid in 1..=4 {
            run.model.apply(park(parked(goid, 0, 42)));
        }
        for t in 0..=120 {
            // Each second one worker takes a job and comes back for the next.
            let worker = 1 + t % 4;
            run.model.apply(ready(t * SECOND, worker, Some(SECOND)));
            run.model.apply(park(parked(worker, t * SECOND, 42)));
            run.tick(t);
        }
        assert!(run.fired_at.is_empty(), "{:?}", run.fired_at);
    }

    #[test]
    fn rise_then_drop_does_not_fire() {
        let mut run = Run::new();
        for t in 0..=60 {
            if t <= 20 {
                run.model.apply(park(parked(100 + t, t * SECOND, 42)));
            } else if t <= 25 {
                for goid in 100 + (t - 21) * 3..100 + (t - 20) * 3 {
                    run.model.apply(ready(t * SECOND, goid, Some(SECOND)));
                }
            }
            run.tick(t);
        }
        assert!(run.fired_at.is_empty(), "{:?}", run.fired_at);
    }

    #[test]
    fn growth_below_the_minimum_does_not_fire() {
        let mut run = Run::new();
        run.model.apply(park(parked(1, 0, 42)));
        for t in 0..=60 {
            if t == 10 || t == 20 {
                run.model.apply(park(parked(t, t * SECOND, 42)));
            }
            run.tick(t);
        }
        assert!(run.fired_at.is_empty());
    }

    #[test]
    fn a_plateau_retracts_after_a_window() {
        let mut run = Run::new();
        for t in 0..=70 {
            if t <= 30 {
                run.model.apply(park(parked(100 + t, t * SECOND, 42)));
            }
            run.tick(t);
        }
        assert_eq!(run.fired_at.first(), Some(&30));
        assert!(!run.fired_at.contains(&70));
    }

    #[test]
    fn system_groups_never_fire() {
        let mut run = Run::new();
        for t in 0..=40 {
            run.model
                .apply(park(system(100 + t, t * SECOND, "runtime.gcBgMarkWorker")));
            run.tick(t);
        }
        assert!(run.fired_at.is_empty());
    }

    #[test]
    fn sampling_stops_at_target_exit() {
        let mut run = Run::new();
        for t in 0..=30 {
            run.model.apply(park(parked(100 + t, t * SECOND, 42)));
            run.tick(t);
        }
        run.model.apply(Input::TargetExit { ts_ns: 31 * SECOND });
        for t in 31..=100 {
            run.tick(t);
        }
        assert_eq!(run.fired_at.last(), Some(&100), "the leak stays reported");
    }

    #[test]
    fn drained_group_leaves_no_finding() {
        let mut run = Run::new();
        for t in 0..=30 {
            run.model.apply(park(parked(100 + t, t * SECOND, 42)));
            run.tick(t);
        }
        for goid in 100..=130 {
            run.model.apply(ready(31 * SECOND, goid, Some(SECOND)));
        }
        assert!(run.detector.findings(&run.model, 31 * SECOND).is_empty());
        run.tick(35);
        assert!(run.detector.firing().next().is_none());
    }

    #[test]
    fn samples_on_its_own_cadence() {
        let mut run = Run::new();
        assert!(run.detector.tick(&run.model, 0));
        assert!(!run.detector.tick(&run.model, 4 * SECOND));
        assert!(run.detector.tick(&run.model, 5 * SECOND));
        assert!(!run.detector.tick(&run.model, SECOND), "clock going back");
    }
}

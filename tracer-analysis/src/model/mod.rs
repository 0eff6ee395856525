//! The state of the target as the inputs describe it. Detectors only read it, so
//! every rule sees the same picture.

pub mod goroutines;
pub mod histograms;
pub mod partners;

use std::sync::Arc;

use serde::Serialize;

pub use goroutines::{Applied, Goroutines, GroupCount, GroupKey, ParkedGoroutine};
pub use histograms::{SiteHistogram, SiteHistograms};
pub use partners::ChannelPartners;

use crate::config::Config;
use crate::frames;
use crate::input::{Input, Parked};
use crate::system::{is_lifetime_wait, is_system_goroutine, IgnoreList};

/// Counts of what the model was fed and what it could not use; a report that
/// hides these would make "no findings" unfalsifiable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelStats {
    pub snapshots: u64,
    pub parks: u64,
    pub readies: u64,
    pub exits: u64,
    pub target_exits: u64,
    /// Updates older than what was already known about their goroutine.
    pub stale: u64,
    /// Readies of goroutines not known to be parked (parked before attach and
    /// missed by the snapshot, or a lost park).
    pub unmatched_readies: u64,
    /// Updates refused because the goroutine table was full.
    pub goroutines_dropped: u64,
    /// Blocking durations that could not be given a site or a histogram.
    pub samples_dropped: u64,
}

/// Everything known about the target's goroutines.
#[derive(Debug, Clone)]
pub struct Model {
    goroutines: Goroutines,
    histograms: SiteHistograms,
    ignore: IgnoreList,
    stats: ModelStats,
    first_ts: Option<u64>,
    last_ts: u64,
    exited_at: Option<u64>,
    live_goroutines: Option<u64>,
    partners: ChannelPartners,
}

impl Model {
    pub fn new(config: &Config) -> Self {
        Model {
            goroutines: Goroutines::new(config.max_goroutines),
            histograms: SiteHistograms::new(config.max_sites),
            ignore: IgnoreList::with_builtin(config.ignore.clone()),
            stats: ModelStats::default(),
            first_ts: None,
            last_ts: 0,
            exited_at: None,
            live_goroutines: None,
            partners: ChannelPartners::default(),
        }
    }

    pub fn apply(&mut self, input: Input) {
        let ts = input.ts_ns();
        self.first_ts = Some(self.first_ts.map_or(ts, |first| first.min(ts)));
        self.last_ts = self.last_ts.max(ts);
        match input {
            Input::Snapshot {
                ts_ns,
                parked,
                total_goroutines,
                alive,
                still_parked,
            } => self.snapshot(ts_ns, parked, total_goroutines, alive, still_parked),
            Input::Park { ts_ns, parked } => {
                self.stats.parks += 1;
                self.park(ts_ns, parked);
            }
            Input::Ready {
                ts_ns,
                goid,
                waker_goid,
                parked_ns,
            } => self.ready(ts_ns, goid, waker_goid, parked_ns),
            Input::Exit { ts_ns: _, goid } => {
                self.stats.exits += 1;
                self.goroutines.remove(goid);
                self.partners.exited(goid);
            }
            Input::Leaked { ts_ns: _, goids } => {
                for goid in goids {
                    self.goroutines.mark_leaked(goid);
                }
            }
            Input::TargetExit { ts_ns } => {
                self.stats.target_exits += 1;
                // The first exit is when the target's time stopped.
                self.exited_at.get_or_insert(ts_ns);
            }
        }
    }

    /// The snapshot is authoritative as of its timestamp: listed goroutines are
    /// parked, and those the model still believed parked from before it are not.
    fn snapshot(
        &mut self,
        ts_ns: u64,
        parked: Vec<Parked>,
        total_goroutines: u64,
        alive: Option<Vec<u64>>,
        still_parked: Vec<u64>,
    ) {
        self.stats.snapshots += 1;
        self.live_goroutines = Some(total_goroutines);
        if let Some(alive) = alive {
            self.stats.exits += self.goroutines.forget_exited(ts_ns, &alive);
        }
        let mut listed: Vec<u64> = parked.iter().map(|p| p.goid).collect();
        for goid in &still_parked {
            if self.goroutines.touch(*goid, ts_ns) {
                listed.push(*goid);
            }
        }
        listed.sort_unstable();
        for goid in self.goroutines.parked_before(ts_ns) {
            if listed.binary_search(&goid).is_err() {
                self.goroutines.unpark(goid, ts_ns);
            }
        }
        for p in parked {
            self.park(ts_ns, p);
        }
    }

    fn park(&mut self, ts_ns: u64, parked: Parked) {
        let site = frames::blocking_site(&parked.frames);
        let system = is_system_goroutine(parked.start_function.as_deref());
        let ignored = self.ignore.matches(&parked, &site.function) || is_lifetime_wait(&parked);
        let key = GroupKey {
            site,
            created_by: parked.created_by.clone(),
            wait_reason: parked.wait_reason.clone(),
        };
        let applied = self.goroutines.park(ts_ns, parked, key, system, ignored);
        self.count(applied);
    }

    fn ready(&mut self, ts_ns: u64, goid: u64, waker: Option<u64>, parked_ns: Option<u64>) {
        self.stats.readies += 1;
        if let (Some(w), Some(p)) = (waker, self.goroutines.get(goid)) {
            if let crate::input::Object::Channel { addr, .. } = p.parked.object {
                if addr != 0 && w != goid {
                    self.partners.exchanged(addr, w, goid);
                }
            }
        }
        let ended = match self.goroutines.unpark(goid, ts_ns) {
            Applied::Done(ended) => ended,
            other => {
                self.count(other.map(|_| ()));
                return;
            }
        };
        let Some(ended) = ended else {
            self.stats.unmatched_readies += 1;
            if parked_ns.is_some() {
                self.stats.samples_dropped += 1;
            }
            return;
        };
        // Probes measure the park exactly; a snapshot's timestamp only when it
        // says so. An estimate would skew the percentiles, so it is left out.
        let duration = parked_ns.or_else(|| {
            ended
                .parked
                .exact
                .then(|| ts_ns.saturating_sub(ended.parked.since_ns))
        });
        // Histograms describe the program's own blocking, like the findings.
        if let (Some(duration), true) = (duration, ended.reportable()) {
            self.histograms
                .record(ended.site(), &ended.parked.wait_reason, duration);
        }
    }

    fn count(&mut self, applied: Applied<()>) {
        match applied {
            Applied::Done(()) => {}
            Applied::Stale => self.stats.stale += 1,
            Applied::Dropped => self.stats.goroutines_dropped += 1,
        }
    }

    /// Parked goroutines in goid order, system ones included.
    pub fn parked(&self) -> impl Iterator<Item = &ParkedGoroutine> {
        self.goroutines.parked()
    }

    /// The goroutine's current park, if it is parked.
    pub fn goroutine(&self, goid: u64) -> Option<&ParkedGoroutine> {
        self.goroutines.get(goid)
    }

    /// Who has served each channel (from the wakes seen).
    pub fn partners(&self) -> &ChannelPartners {
        &self.partners
    }

    /// Whether the goroutine is in the table, parked or runnable.
    pub fn knows(&self, goid: u64) -> bool {
        self.goroutines.contains(goid)
    }

    /// Groups with at least one parked member.
    pub fn groups(&self) -> impl Iterator<Item = (&Arc<GroupKey>, &GroupCount)> {
        self.goroutines.groups()
    }

    pub fn histograms(&self) -> Vec<SiteHistogram> {
        self.histograms.summaries()
    }

    /// Cumulative park counts per site at each bound (ns); see
    /// [`histograms::SiteHistograms::cumulative`].
    pub fn histogram_buckets(&self, bounds_ns: &[u64]) -> Vec<(SiteHistogram, Vec<u64>)> {
        self.histograms.cumulative(bounds_ns)
    }

    pub fn stats(&self) -> ModelStats {
        ModelStats {
            samples_dropped: self.stats.samples_dropped + self.histograms.dropped(),
            ..self.stats
        }
    }

    /// When the target exited, if it did.
    pub fn exited_at(&self) -> Option<u64> {
        self.exited_at
    }

    /// Earliest input timestamp.
    pub fn first_ts(&self) -> Option<u64> {
        self.first_ts
    }

    /// Latest input timestamp.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    pub fn goroutines_seen(&self) -> u64 {
        self.goroutines.seen()
    }

    /// Entries in the goroutine table, parked or runnable.
    pub fn goroutines_tracked(&self) -> usize {
        self.goroutines.len()
    }

    pub fn goroutines_parked(&self) -> u64 {
        self.goroutines.parked_count()
    }

    /// Live goroutines according to the latest snapshot.
    pub fn live_goroutines(&self) -> Option<u64> {
        self.live_goroutines
    }

    /// The instant ages are measured at for a requested `now_ns`: the target's
    /// clock stops when it exits, so a leak found at exit does not keep aging.
    pub fn clock(&self, now_ns: u64) -> u64 {
        self.exited_at.unwrap_or(now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{exit, park, parked, ready, system, SECOND};

    fn model() -> Model {
        Model::new(&Config::default())
    }

    /// Within the histogram's three significant digits.
    fn close(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= want / 1000
    }

    #[test]
    fn park_then_ready_records_one_sample() {
        let mut m = model();
        m.apply(park(parked(5, 10 * SECOND, 42)));
        assert_eq!(m.goroutines_parked(), 1);
        m.apply(ready(12 * SECOND, 5, Some(2 * SECOND)));
        assert_eq!(m.goroutines_parked(), 0);
        assert!(m.goroutine(5).is_none());
        assert!(m.knows(5), "runnable goroutines stay until they exit");
        let h = m.histograms();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].site.line, 42);
        assert_eq!(h[0].count, 1);
        assert!(close(h[0].max_ns, 2 * SECOND), "{}", h[0].max_ns);
        assert_eq!(m.groups().count(), 0, "empty groups are dropped");
    }

    #[test]
    fn exact_snapshot_parks_are_measured_estimates_are_not() {
        let mut m = model();
        let mut estimated = parked(6, SECOND, 42);
        estimated.exact = false;
        m.apply(Input::Snapshot {
            ts_ns: 3 * SECOND,
            parked: vec![parked(5, SECOND, 42), estimated],
            total_goroutines: 10,
            alive: None,
            still_parked: vec![],
        });
        m.apply(ready(4 * SECOND, 5, None));
        m.apply(ready(4 * SECOND, 6, None));
        let h = m.histograms();
        assert_eq!(h[0].count, 1);
        assert!(close(h[0].max_ns, 3 * SECOND), "{}", h[0].max_ns);
        assert_eq!(m.live_goroutines(), Some(10));
    }

    #[test]
    fn system_goroutines_stay_out_of_histograms() {
        let mut m = model();
        m.apply(park(system(2, SECOND, "runtime.gcBgMarkWorker")));
        m.apply(ready(2 * SECOND, 2, Some(SECOND)));
        assert!(m.histograms().is_empty());
    }

    #[test]
    fn exit_forgets_the_goroutine() {
        let mut m = model();
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(exit(2 * SECOND, 5));
        assert!(!m.knows(5));
        assert_eq!(m.goroutines_parked(), 0);
        assert_eq!(m.goroutines_seen(), 1);
        assert_eq!(m.stats().exits, 1);
    }

    #[test]
    fn table_cap_counts_drops() {
        let mut m = Model::new(&Config {
            max_goroutines: 2,
            ..Config::default()
        });
        for goid in 1..=4 {
            m.apply(park(parked(goid, SECOND, 42)));
        }
        assert_eq!(m.goroutines_parked(), 2);
        assert_eq!(m.stats().goroutines_dropped, 2);
        // Known goroutines still update when full.
        m.apply(ready(2 * SECOND, 1, Some(SECOND)));
        m.apply(park(parked(1, 3 * SECOND, 43)));
        assert_eq!(m.goroutine(1).map(|g| g.site().line), Some(43));
    }

    #[test]
    fn late_events_do_not_undo_newer_ones() {
        let mut m = model();
        m.apply(park(parked(5, 10 * SECOND, 42)));
        m.apply(ready(9 * SECOND, 5, Some(SECOND)));
        assert!(m.goroutine(5).is_some());
        m.apply(ready(11 * SECOND, 5, Some(SECOND)));
        m.apply(park(parked(5, 10 * SECOND, 42)));
        assert!(m.goroutine(5).is_none());
        assert_eq!(m.stats().stale, 2);
    }

    #[test]
    fn snapshot_is_authoritative_for_what_it_predates() {
        let mut m = model();
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(park(parked(6, 9 * SECOND, 42)));
        m.apply(Input::Snapshot {
            ts_ns: 5 * SECOND,
            parked: vec![parked(7, 2 * SECOND, 43)],
            total_goroutines: 3,
            alive: None,
            still_parked: vec![],
        });
        assert!(m.goroutine(5).is_none(), "not listed: resumed since");
        assert!(m.goroutine(6).is_some(), "parked after the snapshot");
        assert!(m.goroutine(7).is_some());
        assert_eq!(m.goroutines_parked(), 2);
    }

    #[test]
    fn snapshot_forgets_goroutines_that_are_no_longer_alive() {
        let mut m = model();
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(ready(2 * SECOND, 5, Some(SECOND)));
        m.apply(park(parked(6, SECOND, 42)));
        m.apply(ready(2 * SECOND, 6, Some(SECOND)));
        m.apply(park(parked(8, 9 * SECOND, 42)));
        m.apply(Input::Snapshot {
            ts_ns: 5 * SECOND,
            parked: vec![],
            total_goroutines: 1,
            alive: Some(vec![6]),
            still_parked: vec![],
        });
        assert!(!m.knows(5), "exited: not in allgs");
        assert!(m.knows(6), "alive, running");
        assert!(m.goroutine(8).is_some(), "parked after the read");
        assert_eq!(m.stats().exits, 1);
        assert_eq!(m.goroutines_seen(), 3);
    }

    #[test]
    fn parking_again_replaces_the_state() {
        let mut m = model();
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(park(parked(5, 2 * SECOND, 43)));
        assert_eq!(m.goroutines_parked(), 1);
        let lines: Vec<u32> = m.groups().map(|(k, _)| k.site.line).collect();
        assert_eq!(lines, vec![43]);
        assert_eq!(m.goroutine(5).map(|g| g.parked.since_ns), Some(2 * SECOND));
        assert_eq!(m.goroutines_seen(), 1);
    }

    #[test]
    fn ready_of_unknown_goroutine_is_counted() {
        let mut m = model();
        m.apply(ready(SECOND, 9, Some(5)));
        assert_eq!(m.stats().unmatched_readies, 1);
        assert_eq!(m.stats().samples_dropped, 1);
        assert!(m.histograms().is_empty());
    }

    #[test]
    fn group_counts_follow_members() {
        let mut m = model();
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(park(parked(6, SECOND, 42)));
        m.apply(park(system(2, SECOND, "runtime.bgsweep")));
        let counts: Vec<(u32, u64, u64)> = m
            .groups()
            .map(|(k, c)| (k.site.line, c.parked, c.reportable))
            .collect();
        assert_eq!(counts.len(), 2);
        assert!(counts.contains(&(42, 2, 2)));
        assert!(counts.contains(&(1400, 1, 0)));
        m.apply(exit(2 * SECOND, 5));
        let key = m.goroutine(6).map(|g| g.group.clone()).unwrap();
        assert_eq!(m.goroutines.group(&key).map(|c| c.parked), Some(1));
    }

    #[test]
    fn clock_stops_at_target_exit() {
        let mut m = model();
        assert_eq!(m.clock(7), 7);
        m.apply(Input::TargetExit { ts_ns: 5 });
        m.apply(Input::TargetExit { ts_ns: 9 });
        assert_eq!(m.exited_at(), Some(5));
        assert_eq!(m.clock(100), 5);
        assert_eq!(m.stats().target_exits, 2);
    }

    #[test]
    fn ignored_goroutines_are_marked() {
        let mut m = Model::new(&Config {
            ignore: vec!["main.send".into()],
            ..Config::default()
        });
        m.apply(park(parked(5, SECOND, 42)));
        let g = m.goroutine(5).unwrap();
        assert!(g.ignored && !g.system && !g.reportable());
    }
}

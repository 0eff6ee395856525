//! The goroutine table: who is parked right now, since when, on what, and how
//! many goroutines each blocking group holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::input::{shared_str_cmp, Frame, Parked};

/// What makes goroutines "the same" for leak detection: blocked at the same line,
/// started by the same `go` statement, for the same reason. Goroutines leaked by one
/// bug share all three, while unrelated goroutines rarely do.
#[derive(Debug, Clone, Eq)]
pub struct GroupKey {
    pub site: Frame,
    pub created_by: Option<Frame>,
    pub wait_reason: Arc<str>,
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl std::hash::Hash for GroupKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.site.hash(state);
        self.created_by.hash(state);
        self.wait_reason.hash(state);
    }
}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Site, then creator, then wait reason.
impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.site
            .cmp(&other.site)
            .then_with(|| self.created_by.cmp(&other.created_by))
            .then_with(|| shared_str_cmp(&self.wait_reason, &other.wait_reason))
    }
}

/// A parked goroutine with what the model derived from it at park time, so that
/// detectors running every tick do not redo string work per goroutine.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedGoroutine {
    pub parked: Parked,
    /// Shared with every member of the group; `group.site` is the blocking site.
    pub group: Arc<GroupKey>,
    /// Go's `isSystemGoroutine`.
    pub system: bool,
    /// Matched the caller's ignore list.
    pub ignored: bool,
    /// The Go GC proved this park can never end (`_Gleaked`).
    pub leaked: bool,
}

impl ParkedGoroutine {
    pub fn goid(&self) -> u64 {
        self.parked.goid
    }

    pub fn site(&self) -> &Frame {
        &self.group.site
    }

    /// Whether it may appear in findings and histograms.
    pub fn reportable(&self) -> bool {
        !self.system && !self.ignored
    }

    /// Whether a timer it waits on will still wake it at `now_ns`: it is due
    /// (within [`TIMER_GRACE_NS`] of its firing time) and the goroutine is
    /// waiting for it, not stuck.
    pub fn timer_pending(&self, now_ns: u64) -> bool {
        self.parked
            .wake_at_ns
            .is_some_and(|w| now_ns <= w.saturating_add(TIMER_GRACE_NS))
    }

    /// How long it has been parked at `now_ns` (zero if the clock looks backwards).
    pub fn age_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.parked.since_ns)
    }
}

/// How late a timer may fire before the wait it should end counts as overdue: a
/// loaded machine runs timers late by milliseconds, not by seconds.
pub const TIMER_GRACE_NS: u64 = 1_000_000_000;

/// Members of one group that are parked right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCount {
    pub parked: u64,
    /// Members that are neither system nor ignored; what `growing` watches.
    pub reportable: u64,
}

#[derive(Debug, Clone)]
enum State {
    Runnable,
    /// Boxed so that the many runnable entries stay small.
    Parked(Box<ParkedGoroutine>),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Newest event applied; older ones arriving late (per-CPU ring buffers are
    /// not ordered with each other) are stale and ignored.
    last_ts: u64,
    state: State,
}

/// What became of an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<T> {
    Done(T),
    /// Older than what the table already knows about the goroutine.
    Stale,
    /// The table is full and the goroutine is not in it.
    Dropped,
}

impl<T> Applied<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Applied<U> {
        match self {
            Applied::Done(t) => Applied::Done(f(t)),
            Applied::Stale => Applied::Stale,
            Applied::Dropped => Applied::Dropped,
        }
    }
}

/// Goroutines by goid. Ordered, so that every report lists them the same way.
#[derive(Debug, Clone)]
pub struct Goroutines {
    table: BTreeMap<u64, Entry>,
    groups: BTreeMap<Arc<GroupKey>, GroupCount>,
    capacity: usize,
    parked: u64,
    seen: u64,
    dropped: u64,
}

impl Goroutines {
    pub fn new(capacity: usize) -> Self {
        Goroutines {
            table: BTreeMap::new(),
            groups: BTreeMap::new(),
            capacity,
            parked: 0,
            seen: 0,
            dropped: 0,
        }
    }

    /// Records that `parked` is parked as of `ts_ns`, replacing any earlier state
    /// of the goroutine.
    pub fn park(
        &mut self,
        ts_ns: u64,
        parked: Parked,
        key: GroupKey,
        system: bool,
        ignored: bool,
    ) -> Applied<()> {
        let goid = parked.goid;
        match self.admit(goid, ts_ns) {
            Applied::Done(()) => {}
            Applied::Stale => return Applied::Stale,
            Applied::Dropped => return Applied::Dropped,
        }
        self.take_park(goid);
        let group = self.join_group(key, !system && !ignored);
        let state = State::Parked(Box::new(ParkedGoroutine {
            parked,
            group,
            system,
            ignored,
            leaked: false,
        }));
        self.parked += 1;
        self.table.insert(
            goid,
            Entry {
                last_ts: ts_ns,
                state,
            },
        );
        Applied::Done(())
    }

    /// Marks the goroutine runnable, returning the park it ended (`None` when it
    /// was not known to be parked).
    pub fn unpark(&mut self, goid: u64, ts_ns: u64) -> Applied<Option<Box<ParkedGoroutine>>> {
        match self.admit(goid, ts_ns) {
            Applied::Done(()) => {}
            Applied::Stale => return Applied::Stale,
            Applied::Dropped => return Applied::Dropped,
        }
        if let Some(entry) = self.table.get_mut(&goid) {
            entry.last_ts = ts_ns;
        }
        Applied::Done(self.take_park(goid))
    }

    /// Forgets an exited goroutine: Go never reuses its goid.
    pub fn remove(&mut self, goid: u64) {
        self.take_park(goid);
        self.table.remove(&goid);
    }

    /// Confirms that a parked goroutine is still in the same park at `ts_ns`.
    /// False when it is not known to be parked.
    pub fn touch(&mut self, goid: u64, ts_ns: u64) -> bool {
        match self.table.get_mut(&goid) {
            Some(e) if matches!(e.state, State::Parked(_)) => {
                e.last_ts = e.last_ts.max(ts_ns);
                true
            }
            _ => false,
        }
    }

    /// Marks the goroutine's current park as proved leaked by the Go GC. False
    /// when it is not known to be parked.
    pub fn mark_leaked(&mut self, goid: u64) -> bool {
        match self.table.get_mut(&goid).map(|e| &mut e.state) {
            Some(State::Parked(p)) => {
                p.leaked = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets goroutines known no later than `ts_ns` that are not in `alive`
    /// (sorted): they exited before the read. Returns how many.
    pub fn forget_exited(&mut self, ts_ns: u64, alive: &[u64]) -> u64 {
        let gone: Vec<u64> = self
            .table
            .iter()
            .filter(|(goid, e)| e.last_ts <= ts_ns && alive.binary_search(goid).is_err())
            .map(|(goid, _)| *goid)
            .collect();
        for goid in &gone {
            self.remove(*goid);
        }
        gone.len() as u64
    }

    /// Goids parked with a state no newer than `ts_ns`; a snapshot taken at
    /// `ts_ns` that does not list them proves they have resumed since.
    pub fn parked_before(&self, ts_ns: u64) -> Vec<u64> {
        self.table
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Parked(_)) && e.last_ts <= ts_ns)
            .map(|(goid, _)| *goid)
            .collect()
    }

    /// Whether the goroutine is alive as far as the table knows, parked or not.
    pub fn contains(&self, goid: u64) -> bool {
        self.table.contains_key(&goid)
    }

    pub fn get(&self, goid: u64) -> Option<&ParkedGoroutine> {
        match &self.table.get(&goid)?.state {
            State::Parked(p) => Some(p),
            State::Runnable => None,
        }
    }

    /// Parked goroutines in goid order.
    pub fn parked(&self) -> impl Iterator<Item = &ParkedGoroutine> {
        self.table.values().filter_map(|e| match &e.state {
            State::Parked(p) => Some(p.as_ref()),
            State::Runnable => None,
        })
    }

    /// Groups with at least one parked member.
    pub fn groups(&self) -> impl Iterator<Item = (&Arc<GroupKey>, &GroupCount)> {
        self.groups.iter()
    }

    pub fn group(&self, key: &GroupKey) -> Option<&GroupCount> {
        self.groups.get(key)
    }

    pub fn parked_count(&self) -> u64 {
        self.parked
    }

    /// Distinct goroutines that entered the table.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Updates refused because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Makes room for an update of `goid` at `ts_ns`, inserting a runnable entry
    /// for a goroutine seen for the first time.
    fn admit(&mut self, goid: u64, ts_ns: u64) -> Applied<()> {
        if let Some(entry) = self.table.get(&goid) {
            return if ts_ns < entry.last_ts {
                Applied::Stale
            } else {
                Applied::Done(())
            };
        }
        if self.table.len() >= self.capacity {
            self.dropped += 1;
            return Applied::Dropped;
        }
        self.seen += 1;
        self.table.insert(
            goid,
            Entry {
                last_ts: ts_ns,
                state: State::Runnable,
            },
        );
        Applied::Done(())
    }

    fn join_group(&mut self, key: GroupKey, reportable: bool) -> Arc<GroupKey> {
        let shared = match self.groups.get_key_value(&key) {
            Some((shared, _)) => Arc::clone(shared),
            None => Arc::new(key),
        };
        let count = self.groups.entry(Arc::clone(&shared)).or_default();
        count.parked += 1;
        if reportable {
            count.reportable += 1;
        }
        shared
    }

    /// Ends the goroutine's current park, if any, keeping the counts in step and
    /// dropping emptied groups so that the group map never outgrows the parked set.
    fn take_park(&mut self, goid: u64) -> Option<Box<ParkedGoroutine>> {
        let entry = self.table.get_mut(&goid)?;
        let State::Parked(p) = std::mem::replace(&mut entry.state, State::Runnable) else {
            return None;
        };
        self.parked = self.parked.saturating_sub(1);
        if let Some(count) = self.groups.get_mut(&p.group) {
            count.parked = count.parked.saturating_sub(1);
            if p.reportable() {
                count.reportable = count.reportable.saturating_sub(1);
            }
            if count.parked == 0 {
                self.groups.remove(&p.group);
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{parked, SECOND};

    fn key(line: u32) -> GroupKey {
        GroupKey {
            site: Frame::new("main.send", "/src/app/main.go", line),
            created_by: None,
            wait_reason: "chan send".into(),
        }
    }

    #[test]
    fn unpark_returns_the_ended_park() {
        let mut t = Goroutines::new(10);
        assert_eq!(
            t.park(SECOND, parked(5, SECOND, 42), key(42), false, false),
            Applied::Done(())
        );
        let ended = t.unpark(5, 2 * SECOND);
        assert!(matches!(&ended, Applied::Done(Some(p)) if p.goid() == 5));
        assert_eq!(t.unpark(5, 3 * SECOND), Applied::Done(None));
        assert_eq!(t.unpark(5, SECOND), Applied::Stale);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn members_share_one_key() {
        let mut t = Goroutines::new(10);
        t.park(0, parked(1, 0, 42), key(42), false, false);
        t.park(0, parked(2, 0, 42), key(42), true, false);
        let a = &t.get(1).unwrap().group;
        let b = &t.get(2).unwrap().group;
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(
            t.group(&key(42)),
            Some(&GroupCount {
                parked: 2,
                reportable: 1
            })
        );
        t.remove(2);
        assert_eq!(t.group(&key(42)).map(|c| c.reportable), Some(1));
        t.remove(1);
        assert!(t.group(&key(42)).is_none());
        assert!(t.is_empty());
        assert_eq!(t.parked_count(), 0);
    }

    #[test]
    fn full_table_refuses_newcomers_only() {
        let mut t = Goroutines::new(1);
        t.park(0, parked(1, 0, 42), key(42), false, false);
        assert_eq!(
            t.park(0, parked(2, 0, 42), key(42), false, false),
            Applied::Dropped
        );
        assert_eq!(t.unpark(3, 0), Applied::Dropped);
        assert_eq!(t.dropped(), 2);
        assert_eq!(t.seen(), 1);
        assert!(matches!(t.unpark(1, 0), Applied::Done(Some(_))));
    }

    #[test]
    fn age_never_underflows() {
        let mut t = Goroutines::new(1);
        t.park(0, parked(1, 10, 42), key(42), false, false);
        let g = t.get(1).unwrap();
        assert_eq!(g.age_ns(5), 0);
        assert_eq!(g.age_ns(15), 5);
    }
}

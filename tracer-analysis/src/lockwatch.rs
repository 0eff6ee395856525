//! Lock analysis of a live trace, between the kernel's held sets and the lock
//! graph: which lock records to trust around a switch of the lock sites, which
//! writer a recursive read lock waits behind, who waits for whom among parked
//! goroutines, and the held sets kept for goroutines parked across a switch. It
//! takes plain values (held sets as the kernel recorded them, the goroutine model)
//! and never reads the kernel or formats a finding.
use crate::input::{Frame, Object};
use crate::lockgraph::{class_of, LockEdge, LockFinding, LockGraph, WaitLink};
use crate::model::Model;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The locks one goroutine holds, as the kernel recorded them: (lock, read), and
/// the lock site each was taken at (same order; may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldSet {
    pub locks: Vec<(u64, bool)>,
    pub sites: Vec<u32>,
}

/// How long records written during a switch of the lock sites may still arrive.
const SWITCH_MEMORY_NS: u64 = 10_000_000_000;

/// Functions whose locking is made safe by a protocol the lock graph cannot see:
/// a lock taken inside one of them makes no edge and no self-deadlock. The fork
/// lock (syscall/forkpipe2.go): `releaseForkLock` takes `forkingLock` while
/// `ForkLock` is held, the reverse of `acquireForkLock`, and the write lock on
/// `ForkLock` is shared by every goroutine forking at once (the `forking` counter:
/// the last one out unlocks it, not always the one that locked it), so a
/// goroutine may lock it again "while holding it". Without this every program
/// that starts subprocesses concurrently shows an inversion and self-deadlocks.
pub const SAFE_BY_PROTOCOL: &[&str] = &["syscall.acquireForkLock", "syscall.releaseForkLock"];

fn by_protocol(stack: &[Frame]) -> bool {
    stack
        .iter()
        .any(|f| SAFE_BY_PROTOCOL.contains(&&*f.function))
}

/// A read this recent confirms which goroutines are still parked.
const FRESH_READ_NS: u64 = 100_000_000;

/// A goroutine locking a lock it holds, parked on it this long, is deadlocked:
/// no other goroutine released the lock for it.
const SELF_CONFIRM_NS: u64 = 1_000_000_000;
/// A goroutine locking a lock it holds and not parked on it this long after
/// got the lock: another goroutine released it on its behalf, as Go allows.
const SELF_GRACE_NS: u64 = 3_000_000_000;

/// A goroutine's attempt to lock (for writing, or to read-lock a lock it
/// write-holds) a lock it holds, not yet known to hang.
#[derive(Debug)]
struct PendingSelf {
    ts_ns: u64,
    goid: u64,
    lock: u64,
    site: Frame,
    stack: Vec<Frame>,
}

#[derive(Debug, Default)]
pub struct LockWatch {
    pub graph: LockGraph,
    /// Every lock finding so far, in the order found.
    pub findings: Vec<LockFinding>,
    /// Held sets as they were when the lock sites last went off (goid -> when,
    /// set): the switch purges the kernel's, yet a goroutine parked since then has
    /// not run, so it still holds exactly these. A deadlock that formed while the
    /// sites were on stays visible after they go off.
    frozen: HashMap<u64, (u64, HeldSet)>,
    /// Recent times (from..to) when the lock sites were being switched.
    switches: Vec<(u64, u64)>,
    /// Lock records dropped because they were written during a switch.
    pub skipped: u64,
    /// Edges not added because a known protocol makes their order safe
    /// ([`SAFE_BY_PROTOCOL`]).
    pub by_protocol: u64,
    /// Goroutines with held locks that the last read did not list: gone, or
    /// started during that read; a second read tells.
    missing_once: std::collections::HashSet<u64>,
    /// Goroutines already reported as ended holding a lock.
    exited_reported: std::collections::HashSet<u64>,
    /// Re-acquisitions waiting to be seen hanging ([`LockWatch::confirm_self`]).
    pending_self: Vec<PendingSelf>,
}

impl LockWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock sites were being switched from `from` to `to`: a Lock whose Unlock
    /// probe was not in (yet, or any more) leaves a stale hold, so records
    /// written then are not trusted.
    pub fn switched(&mut self, from: u64, to: u64) {
        self.switches
            .retain(|(_, end)| to.saturating_sub(*end) < SWITCH_MEMORY_NS);
        self.switches.push((from, to));
    }

    /// Whether a record written at `ts_ns` falls in a switch (it is then counted
    /// as skipped, and must be forgotten by the kernel so it is sent again).
    pub fn untrusted(&mut self, ts_ns: u64) -> bool {
        let hit = self
            .switches
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&ts_ns));
        self.skipped += u64::from(hit);
        hit
    }

    /// A first-seen lock-order edge; a new inversion if it closes one.
    pub fn edge(&mut self, edge: LockEdge) -> Option<LockFinding> {
        if by_protocol(&edge.stack) {
            self.by_protocol += 1;
            return None;
        }
        let f = self.graph.add_edge(edge)?;
        self.findings.push(f.clone());
        Some(f)
    }

    /// A goroutine acquired a lock it already holds. A read lock taken twice is
    /// a hazard by itself (a writer arriving in between deadlocks both), reported
    /// at once, with the writer parked behind the first if one is. Any other
    /// re-acquisition hangs only if nobody else unlocks for it (Go lets another
    /// goroutine unlock: `database/sql` rolls a Tx back while the goroutine's own
    /// read lock is being released by its context's watcher), so it waits for
    /// [`LockWatch::confirm_self`] to see the goroutine parked on the lock.
    #[allow(clippy::too_many_arguments)]
    pub fn self_acquire(
        &mut self,
        model: &Model,
        ts_ns: u64,
        goid: u64,
        lock: u64,
        read: bool,
        site: Frame,
        stack: Vec<Frame>,
    ) -> Option<LockFinding> {
        if by_protocol(&stack) {
            self.by_protocol += 1;
            return None;
        }
        if !read {
            self.pending_self.push(PendingSelf {
                ts_ns,
                goid,
                lock,
                site,
                stack,
            });
            return None;
        }
        let writer = waiting_writer(model, lock);
        let f = self
            .graph
            .self_acquire(goid, lock, read, site, stack, writer)?;
        self.findings.push(f.clone());
        Some(f)
    }

    /// Re-acquisitions whose goroutine has been parked on the lock for a while
    /// (or still is when the target ends, `at_end`): self-deadlocks. Those whose
    /// goroutine went on are dropped.
    pub fn confirm_self(&mut self, model: &Model, now_ns: u64, at_end: bool) -> Vec<LockFinding> {
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.pending_self) {
            let parked_on = model.goroutine(p.goid).is_some_and(|g| {
                matches!(g.parked.object,
                    Object::Mutex { addr } | Object::RwMutex { addr } if addr == p.lock)
            });
            let age = now_ns.saturating_sub(p.ts_ns);
            if parked_on && (at_end || age >= SELF_CONFIRM_NS) {
                let found = self
                    .graph
                    .self_acquire(p.goid, p.lock, false, p.site, p.stack, None);
                if let Some(f) = found {
                    self.findings.push(f.clone());
                    out.push(f);
                }
            } else if !at_end && (parked_on || age < SELF_GRACE_NS) {
                self.pending_self.push(p);
            }
        }
        out
    }

    /// Deadlock cycles among the goroutines parked in locks, not reported before.
    /// `fresh_read`: a memory read has just confirmed which goroutines are parked,
    /// so frozen held sets count too.
    pub fn deadlocks(
        &mut self,
        model: &Model,
        held: HashMap<u64, HeldSet>,
        fresh_read: bool,
        site: impl Fn(u32) -> Frame,
    ) -> Vec<LockFinding> {
        let links = self.wait_links(model, held, fresh_read, site);
        let found = self.graph.deadlocks(&links);
        self.findings.extend(found.iter().cloned());
        found
    }

    /// Goroutines that ended holding locks: in the kernel's held sets, absent from
    /// two reads in a row (`alive`: the goids of the latest read, sorted; one read
    /// could miss a goroutine started while it ran), or from one `settled` read
    /// (taken with the target held at its exit, when nothing starts). `site`
    /// names a lock site. Returns the findings, and the goids whose held sets
    /// can be dropped.
    pub fn exited_holding(
        &mut self,
        alive: &[u64],
        held: &HashMap<u64, HeldSet>,
        site: impl Fn(u32) -> Frame,
        settled: bool,
    ) -> (Vec<LockFinding>, Vec<u64>) {
        let mut found = Vec::new();
        let mut done = Vec::new();
        let mut missing = std::collections::HashSet::new();
        for (goid, h) in held {
            if h.locks.is_empty() || alive.binary_search(goid).is_ok() {
                continue;
            }
            if !settled && !self.missing_once.contains(goid) {
                missing.insert(*goid);
                continue;
            }
            done.push(*goid);
            if !self.exited_reported.insert(*goid) {
                continue;
            }
            for (i, (lock, read)) in h.locks.iter().enumerate() {
                let Some(at) = h.sites.get(i).map(|s| site(*s)) else {
                    continue;
                };
                if SAFE_BY_PROTOCOL.contains(&&*at.function) {
                    self.by_protocol += 1;
                    continue;
                }
                let f = LockFinding::ExitedHolding {
                    goid: *goid,
                    lock: *lock,
                    read: *read,
                    site: at,
                };
                self.findings.push(f.clone());
                found.push(f);
            }
        }
        self.missing_once = missing;
        (found, done)
    }

    /// Before the lock sites go off (and the kernel's held sets are purged): keeps
    /// the sets for the goroutines that stay parked. Older freezes stand for
    /// goroutines parked since; the rest are dropped.
    pub fn freeze(&mut self, model: &Model, held: &HashMap<u64, HeldSet>, now: u64) {
        self.frozen.retain(|goid, (at, _)| {
            model
                .goroutine(*goid)
                .is_some_and(|p| p.parked.since_ns <= *at)
        });
        for (goid, h) in held {
            if !h.locks.is_empty() {
                self.frozen.insert(*goid, (now, h.clone()));
            }
        }
    }

    /// Wait-for links among parked goroutines: each blocked in a lock, with a
    /// goroutine that holds that lock; and each blocked on a channel send or
    /// receive, with the one other goroutine ever seen exchanging on that
    /// channel (its only server: a cycle through it is a deadlock, e.g. A holds
    /// a mutex and waits for a value only B sends, while B waits for the mutex).
    fn wait_links(
        &self,
        model: &Model,
        mut sets: HashMap<u64, HeldSet>,
        fresh_read: bool,
        site: impl Fn(u32) -> Frame,
    ) -> Vec<WaitLink> {
        // Frozen sets count for goroutines parked since before their freeze, as
        // a read has just confirmed (a read ends every park it does not list).
        if fresh_read {
            for (goid, (at, h)) in &self.frozen {
                let still = model
                    .goroutine(*goid)
                    .is_some_and(|p| p.parked.since_ns <= *at);
                if still && !sets.contains_key(goid) {
                    sets.insert(*goid, h.clone());
                }
            }
        }
        // lock -> [(goid, read, lock site)]
        let mut holders: HashMap<u64, Vec<(u64, bool, Option<u32>)>> = HashMap::new();
        for (goid, h) in sets {
            for (i, (lock, read)) in h.locks.into_iter().enumerate() {
                let at = h.sites.get(i).copied();
                holders.entry(lock).or_default().push((goid, read, at));
            }
        }
        let mut waiting: HashMap<u64, u64> = HashMap::new();
        let mut parked = Vec::new();
        let mut links = Vec::new();
        for p in model.parked() {
            let reason = &p.parked.wait_reason;
            let lock = match p.parked.object {
                Object::Mutex { addr } | Object::RwMutex { addr } => addr,
                Object::Channel { addr, .. }
                    if reason.starts_with("chan send") || reason.starts_with("chan receive") =>
                {
                    if let Some(server) = model.partners().only_other(addr, p.goid()) {
                        links.push(WaitLink {
                            goid: p.goid(),
                            wait_reason: reason.clone(),
                            lock: addr,
                            holder: server,
                            held_at: None,
                            frames: p.parked.frames.to_vec(),
                        });
                    }
                    continue;
                }
                _ => continue,
            };
            waiting.insert(p.goid(), lock);
            parked.push((p.goid(), lock, reason.clone(), p.parked.frames.to_vec()));
        }
        for (goid, lock, reason, frames) in parked {
            // A reader waits for the writer; a writer for anyone holding the lock.
            let holder = holders.get(&lock).and_then(|hs| {
                hs.iter().find_map(|&(g, read, at)| {
                    let ok = g != goid
                        && waiting.get(&g) != Some(&lock)
                        && !(&*reason == "sync.RWMutex.RLock" && read);
                    ok.then_some((g, at))
                })
            });
            if let Some((holder, at)) = holder {
                links.push(WaitLink {
                    goid,
                    wait_reason: reason,
                    lock,
                    holder,
                    held_at: at.map(&site),
                    frames,
                });
            }
        }
        links
    }
}

/// Whether a memory read at `last_read` (monotonic ns) is recent enough at `now`
/// to confirm the parked set.
pub fn fresh_read(last_read: Option<u64>, now: u64) -> bool {
    last_read.is_some_and(|t| now.saturating_sub(t) < FRESH_READ_NS)
}

/// The writer parked waiting for `lock`, if any (for the recursive read lock).
fn waiting_writer(model: &Model, lock: u64) -> Option<u64> {
    model.parked().find_map(|p| {
        let waits = matches!(p.parked.object, Object::RwMutex { addr } if addr == lock);
        (waits && &*p.parked.wait_reason == "sync.RWMutex.Lock").then_some(p.goid())
    })
}

/// How long locks of one class were held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldTimes {
    pub kind: &'static str,
    pub class: String,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl HoldTimes {
    /// From log2 buckets (bucket b holds [2^(b-1), 2^b) ns); each figure is the
    /// upper bound of its bucket.
    pub fn from_buckets(class: String, buckets: &[u64]) -> Self {
        let count: u64 = buckets.iter().sum();
        let upper = |b: usize| 1u64 << b.min(63);
        let quantile = |q: f64| {
            let target = (count as f64 * q).ceil() as u64;
            let mut seen = 0;
            for (b, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= target.max(1) {
                    return upper(b);
                }
            }
            0
        };
        let max = buckets.iter().rposition(|n| *n > 0).map_or(0, upper);
        Self {
            kind: "lock_hold",
            class,
            count,
            p50_ns: quantile(0.5),
            p99_ns: quantile(0.99),
            max_ns: max,
        }
    }
}

/// Hold-time histograms per lock class, from each site's buckets (`buckets[i]`
/// for `sites[i]`, whose class is `classes[i]` when known, else the site's;
/// sites with no hold are left out).
pub fn hold_times(
    sites: &[Frame],
    classes: &[Option<Arc<str>>],
    buckets: &[Vec<u64>],
) -> Vec<HoldTimes> {
    let mut by_class: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (i, (frame, site)) in sites.iter().zip(buckets).enumerate() {
        if site.iter().all(|n| *n == 0) {
            continue;
        }
        let class = match classes.get(i).cloned().flatten() {
            Some(c) => c.to_string(),
            None => class_of(frame),
        };
        let acc = by_class.entry(class).or_insert_with(|| vec![0; site.len()]);
        for (a, b) in acc.iter_mut().zip(site) {
            *a += b;
        }
    }
    by_class
        .into_iter()
        .map(|(class, buckets)| HoldTimes::from_buckets(class, &buckets))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{parked, SECOND};
    use crate::input::Input;
    use crate::{Analyzer, Config};

    fn waiting_on(goid: u64, reason: &str, object: Object) -> Input {
        let mut p = parked(goid, SECOND, 40 + goid as u32);
        p.wait_reason = reason.into();
        p.object = object;
        Input::Park {
            ts_ns: SECOND,
            parked: p,
        }
    }

    fn no_site(_: u32) -> Frame {
        Frame::new("?", "?", 0)
    }

    fn held(locks: &[(u64, bool)]) -> HeldSet {
        HeldSet {
            locks: locks.to_vec(),
            sites: Vec::new(),
        }
    }

    /// Goroutine 1 holds A and waits for B; goroutine 2 holds B and waits for A.
    fn crossed() -> (Analyzer, HashMap<u64, HeldSet>) {
        let mut a = Analyzer::new(Config::default()).unwrap();
        a.apply(waiting_on(
            1,
            "sync.Mutex.Lock",
            Object::Mutex { addr: 0xb },
        ));
        a.apply(waiting_on(
            2,
            "sync.Mutex.Lock",
            Object::Mutex { addr: 0xa },
        ));
        let sets = [(1, held(&[(0xa, false)])), (2, held(&[(0xb, false)]))].into();
        (a, sets)
    }

    #[test]
    fn two_goroutines_each_waiting_for_the_others_lock_deadlock_once() {
        let (a, sets) = crossed();
        let mut w = LockWatch::new();
        let found = w.deadlocks(a.model(), sets.clone(), false, no_site);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule(), "deadlock");
        assert!(w.deadlocks(a.model(), sets, false, no_site).is_empty());
        assert_eq!(w.findings.len(), 1);
    }

    /// An analyzer where goroutine 1 was woken on channel C by each of
    /// `wakers` in turn, then parks on C again while 2 waits for mutex A.
    fn served_by(wakers: &[u64]) -> Analyzer {
        let mut a = Analyzer::new(Config::default()).unwrap();
        let park = |a: &mut Analyzer, goid, ts, reason: &str, object| {
            let mut p = parked(goid, ts, 40 + goid as u32);
            p.wait_reason = reason.into();
            p.object = object;
            a.apply(Input::Park {
                ts_ns: ts,
                parked: p,
            });
        };
        let chan = || Object::Channel {
            addr: 0xc,
            elem_type: None,
        };
        let mut ts = SECOND;
        for w in wakers {
            park(&mut a, 1, ts, "chan receive", chan());
            a.apply(Input::Ready {
                ts_ns: ts + 1,
                goid: 1,
                waker_goid: Some(*w),
                parked_ns: Some(1),
            });
            ts += 2;
        }
        park(&mut a, 1, ts, "chan receive", chan());
        park(
            &mut a,
            2,
            ts,
            "sync.Mutex.Lock",
            Object::Mutex { addr: 0xa },
        );
        a
    }

    /// Goroutine 1 holds mutex A and waits to receive from channel C, which
    /// only goroutine 2 has served; goroutine 2 waits for A.
    #[test]
    fn a_cycle_through_a_channel_only_one_goroutine_serves_is_a_deadlock() {
        let sets: HashMap<u64, HeldSet> = [(1, held(&[(0xa, false)]))].into();
        let a = served_by(&[2, 2]);
        let mut w = LockWatch::new();
        let found = w.deadlocks(a.model(), sets.clone(), false, no_site);
        assert_eq!(found.len(), 1, "{found:?}");
        let LockFinding::Deadlock { links } = &found[0] else {
            panic!("{found:?}")
        };
        let mut via: Vec<(u64, u64, u64)> =
            links.iter().map(|l| (l.goid, l.lock, l.holder)).collect();
        via.sort();
        assert_eq!(via, vec![(1, 0xc, 2), (2, 0xa, 1)]);
        // A third goroutine that also sent on C could still wake 1: no cycle.
        let a = served_by(&[2, 3]);
        assert!(LockWatch::new()
            .deadlocks(a.model(), sets, false, no_site)
            .is_empty());
    }

    #[test]
    fn frozen_sets_count_only_after_a_fresh_read() {
        let (a, sets) = crossed();
        let mut w = LockWatch::new();
        // The lock sites go off: the kernel's sets are purged, the frozen ones stay.
        w.freeze(a.model(), &sets, 2 * SECOND);
        assert!(w
            .deadlocks(a.model(), HashMap::new(), false, no_site)
            .is_empty());
        assert_eq!(
            w.deadlocks(a.model(), HashMap::new(), true, no_site).len(),
            1
        );
    }

    #[test]
    fn a_reader_does_not_wait_for_another_reader() {
        let mut a = Analyzer::new(Config::default()).unwrap();
        a.apply(waiting_on(
            1,
            "sync.RWMutex.RLock",
            Object::RwMutex { addr: 0xa },
        ));
        a.apply(waiting_on(
            2,
            "sync.Mutex.Lock",
            Object::Mutex { addr: 0xb },
        ));
        let sets: HashMap<u64, HeldSet> =
            [(1, held(&[(0xb, false)])), (2, held(&[(0xa, true)]))].into();
        let mut w = LockWatch::new();
        assert!(w.deadlocks(a.model(), sets, false, no_site).is_empty());
    }

    #[test]
    fn recursive_read_lock_names_the_waiting_writer() {
        let mut a = Analyzer::new(Config::default()).unwrap();
        a.apply(waiting_on(
            7,
            "sync.RWMutex.Lock",
            Object::RwMutex { addr: 0xa },
        ));
        let mut w = LockWatch::new();
        let site = Frame::new("main.read", "/src/main.go", 10);
        let f = w
            .self_acquire(a.model(), 0, 3, 0xa, true, site.clone(), vec![])
            .expect("reported");
        assert!(matches!(
            f,
            LockFinding::SelfDeadlock {
                waiting_writer: Some(7),
                ..
            }
        ));
        // Without a writer it is reported too: one arriving would deadlock both.
        let b = Analyzer::new(Config::default()).unwrap();
        let f = w
            .self_acquire(b.model(), 0, 4, 0xc, true, site, vec![])
            .expect("reported");
        assert!(matches!(
            f,
            LockFinding::SelfDeadlock {
                waiting_writer: None,
                ..
            }
        ));
    }

    #[test]
    fn a_relock_is_a_self_deadlock_only_if_the_goroutine_hangs_on_it() {
        let site = Frame::new("main.relock", "/src/main.go", 20);
        let mut w = LockWatch::new();
        let idle = Analyzer::new(Config::default()).unwrap();
        // Not yet known: nothing reported on the attempt.
        assert!(w
            .self_acquire(idle.model(), 100, 5, 0xa, false, site.clone(), vec![])
            .is_none());
        // Another goroutine unlocked for it: it never parked; dropped after the grace.
        assert!(w
            .confirm_self(idle.model(), 100 + SELF_CONFIRM_NS, false)
            .is_empty());
        assert!(w
            .confirm_self(idle.model(), 100 + SELF_GRACE_NS, false)
            .is_empty());
        assert!(w.pending_self.is_empty());
        // Parked on that lock for a second: a self-deadlock.
        let mut hung = Analyzer::new(Config::default()).unwrap();
        hung.apply(waiting_on(
            6,
            "sync.Mutex.Lock",
            Object::Mutex { addr: 0xb },
        ));
        w.self_acquire(hung.model(), 200, 6, 0xb, false, site.clone(), vec![]);
        assert!(w.confirm_self(hung.model(), 300, false).is_empty());
        let f = w.confirm_self(hung.model(), 200 + SELF_CONFIRM_NS, false);
        assert!(matches!(
            f.as_slice(),
            [LockFinding::SelfDeadlock {
                goid: 6,
                lock: 0xb,
                read: false,
                ..
            }]
        ));
        // Still parked on it at the end, however recent: reported.
        let mut w = LockWatch::new();
        w.self_acquire(hung.model(), 200, 6, 0xb, false, site, vec![]);
        assert_eq!(w.confirm_self(hung.model(), 300, true).len(), 1);
    }

    #[test]
    fn the_fork_lock_protocol_is_no_inversion() {
        let site = |f: &str, line| Frame::new(f, "/go/src/x.go", line);
        let edge = |from, to, held: &str, acquired: &str, stack: &[&str]| LockEdge {
            from,
            to,
            held_at: site(held, 1),
            acquired_at: site(acquired, 2),
            goid: 9,
            stack: stack.iter().map(|f| site(f, 3)).collect(),
            from_read: false,
            to_read: false,
            held_class: None,
            acquired_class: None,
        };
        let mut w = LockWatch::new();
        let acquire = &[
            "sync.(*RWMutex).Lock",
            "syscall.acquireForkLock",
            "syscall.forkExec",
        ];
        let release = &[
            "sync.(*Mutex).Lock",
            "syscall.releaseForkLock",
            "syscall.forkExec",
        ];
        assert!(w
            .edge(edge(
                1,
                2,
                "syscall.acquireForkLock",
                "sync.(*RWMutex).Lock",
                acquire
            ))
            .is_none());
        assert!(w
            .edge(edge(
                2,
                1,
                "sync.(*RWMutex).Lock",
                "syscall.releaseForkLock",
                release
            ))
            .is_none());
        let b = Analyzer::new(Config::default()).unwrap();
        let again = acquire.iter().map(|f| site(f, 3)).collect();
        let lock = site("sync.(*RWMutex).Lock", 1);
        assert!(w
            .self_acquire(b.model(), 0, 9, 2, false, lock, again)
            .is_none());
        assert_eq!(w.by_protocol, 3);
        // The same shape anywhere else is an inversion.
        assert!(w
            .edge(edge(1, 2, "main.a", "main.b", &["main.b", "main.main"]))
            .is_none());
        assert!(w
            .edge(edge(2, 1, "main.b", "main.a", &["main.a", "main.main"]))
            .is_some());
    }

    #[test]
    fn a_goroutine_gone_from_two_reads_with_a_lock_exited_holding_it() {
        let mut w = LockWatch::new();
        let held: HashMap<u64, HeldSet> = [
            (
                5,
                HeldSet {
                    locks: vec![(0xa, false)],
                    sites: vec![0],
                },
            ),
            (
                6,
                HeldSet {
                    locks: vec![(0xb, true)],
                    sites: vec![1],
                },
            ),
        ]
        .into();
        let site = |i: u32| {
            Frame::new(
                if i == 0 {
                    "main.take"
                } else {
                    "syscall.acquireForkLock"
                },
                "/src/m.go",
                9,
            )
        };
        // Goroutine 5 is alive; 6 is gone but might have started during the read.
        let (found, done) = w.exited_holding(&[5], &held, site, false);
        assert!(found.is_empty() && done.is_empty());
        // Both gone twice: 5's lock is reported once, 6's is the fork protocol's.
        let (found, done) = w.exited_holding(&[7], &held, site, false);
        assert_eq!(done.len(), 1);
        assert!(found.is_empty(), "{found:?}");
        // (The session drops the held sets of the goroutines done.)
        let mut held = held;
        held.remove(&6);
        let (found, done) = w.exited_holding(&[7], &held, site, false);
        assert_eq!(done, [5]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule(), "exited_holding_lock");
        let (found, _) = w.exited_holding(&[7], &held, site, false);
        assert!(found.is_empty());
    }

    #[test]
    fn records_written_during_a_switch_are_untrusted_and_counted() {
        let mut w = LockWatch::new();
        w.switched(100, 200);
        assert!(w.untrusted(150));
        assert!(!w.untrusted(250));
        assert_eq!(w.skipped, 1);
        // Windows older than 10 s are forgotten.
        w.switched(20 * SECOND, 20 * SECOND + 1);
        assert!(!w.untrusted(150));
    }

    #[test]
    fn hold_times_group_sites_by_class() {
        let sites = [
            Frame::new("main.a", "/src/main.go", 10),
            Frame::new("main.a", "/src/main.go", 10),
            Frame::new("main.b", "/src/main.go", 20),
        ];
        let buckets = vec![vec![0, 2, 0], vec![0, 0, 2], vec![0, 0, 0]];
        let h = hold_times(&sites, &[], &buckets);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].count, 4);
        assert_eq!((h[0].p50_ns, h[0].max_ns), (2, 4));
        // Two sites of one field are one class.
        let buckets = vec![vec![0, 2, 0], vec![0, 0, 0], vec![0, 0, 2]];
        let field: Option<Arc<str>> = Some("main.Account.mu".into());
        let h = hold_times(&sites, &[field.clone(), None, field], &buckets);
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].class.as_str(), h[0].count), ("main.Account.mu", 4));
    }
}

//! Lock-order model in the style of Linux lockdep, for Go mutexes observed
//! from outside the process.
//!
//! Feed it [`Event`]s in the order they happened (per goroutine at least; the
//! model only relies on each goroutine's own events being in order).  It keeps
//! the locks each goroutine holds, in acquisition order, and a directed graph
//! of lock order with an edge `A -> B` meaning "B was acquired while A was
//! held", both between lock instances (addresses) and between lock classes
//! (when the caller names one, e.g. the struct field a mutex lives in).  Each
//! edge keeps its first witness.  From that it reports:
//!
//! * [`Report::OrderCycle`]: a cycle in the order graph (lock-order
//!   inversion), instance level, or class level when the same cycle is not
//!   already reported between instances;
//! * [`Report::SelfDeadlock`]: a goroutine locks a mutex it already holds
//!   (Lock after Lock, Lock after RLock, RLock after Lock);
//! * [`Report::RecursiveRead`]: a goroutine read-locks an RWMutex it already
//!   read-holds while another goroutine waits to write-lock it (Go's RWMutex
//!   blocks new readers behind a waiting writer, so this deadlocks);
//! * [`Report::WaitCycle`]: parked goroutines waiting on each other in a
//!   cycle, an actual deadlock.
//!
//! `Acquire` is expected at the attempt (before a contended Lock blocks), as
//! lockdep does: a deadlock whose acquisitions never complete still shows its
//! order edges.  Hence a goroutine's most recent acquisition may still be
//! waiting; it is treated as waiting while the goroutine is parked on that
//! lock.  A goroutine's events are sequential, so any event from it means its
//! earlier acquisitions completed.
//!
//! Go lets any goroutine unlock a mutex: a `Release` removes the lock from the
//! releasing goroutine if it holds it, otherwise from the goroutine that has
//! held it longest.  `Acquire` with `try_lock` is a successful TryLock
//! (failed ones are not reported to the model): it adds no order edge into the
//! lock (a TryLock cannot block) but the lock counts as held afterwards.
//!
//! Iteration never depends on hash order: the same events give the same
//! reports, in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

/// Goroutine id.
pub type Goid = u64;

/// A lock instance: its address, and optionally a class name shared by all
/// locks of the same role (e.g. `main.Account.mu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId {
    pub addr: u64,
    pub class: Option<String>,
}

impl LockId {
    pub fn new(addr: u64) -> Self {
        LockId { addr, class: None }
    }
    pub fn with_class(addr: u64, class: impl Into<String>) -> Self {
        LockId {
            addr,
            class: Some(class.into()),
        }
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.class {
            Some(c) => write!(f, "{c}@{:#x}", self.addr),
            None => write!(f, "{:#x}", self.addr),
        }
    }
}

/// Input to [`LockOrder::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A Lock/RLock attempt, or a successful TryLock/TryRLock.
    Acquire {
        goid: Goid,
        lock: LockId,
        /// Program counter of the acquisition.
        site: u64,
        /// Call stack (innermost first), as far as known.
        stack: Vec<u64>,
        try_lock: bool,
        /// RLock / TryRLock.
        read: bool,
        ts_ns: u64,
    },
    /// Unlock (`read == false`) or RUnlock (`read == true`) of the lock at
    /// `lock`, by `goid` (which need not be the goroutine that locked it).
    Release { goid: Goid, lock: u64, read: bool },
    /// The goroutine blocked waiting for the lock at `waiting_for`.
    Parked { goid: Goid, waiting_for: u64 },
    /// The goroutine stopped waiting.
    Resumed { goid: Goid },
}

/// One acquisition as remembered by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquisition {
    pub goid: Goid,
    pub lock: LockId,
    pub site: u64,
    pub stack: Vec<u64>,
    pub read: bool,
    pub try_lock: bool,
    pub ts_ns: u64,
}

/// First observation of an order edge `held.lock -> acquired.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub goid: Goid,
    /// The acquisition of the lock that was held.
    pub held: Acquisition,
    /// The acquisition made while holding it.
    pub acquired: Acquisition,
}

/// A node of the order graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Instance(u64),
    Class(String),
}

/// An edge of a reported cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEdge {
    pub from: Node,
    pub to: Node,
    pub witness: Witness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Instance,
    Class,
}

/// `goid` waits for `waiting_for`, which `holder` holds (or, for a reader,
/// is waiting to write-lock: Go's RWMutex queues new readers behind it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitLink {
    pub goid: Goid,
    pub waiting_for: LockId,
    /// The acquisition `goid` is blocked in, if it was reported.
    pub attempt: Option<Acquisition>,
    pub holder: Goid,
    pub holder_acquisition: Acquisition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A cycle in the lock-order graph.  `edges[i].to == edges[i + 1].from`
    /// and the last edge (the one just observed) closes the cycle.
    OrderCycle { level: Level, edges: Vec<OrderEdge> },
    /// `again` acquires a lock that the same goroutine holds through `held`.
    SelfDeadlock {
        goid: Goid,
        held: Acquisition,
        again: Acquisition,
    },
    /// `again` read-locks an RWMutex the goroutine read-holds through `held`
    /// while `writer` (if known) waits to write-lock it.
    RecursiveRead {
        goid: Goid,
        held: Acquisition,
        again: Acquisition,
        writer: Option<(Goid, Option<Acquisition>)>,
    },
    /// Parked goroutines waiting on each other: `links[i].holder ==
    /// links[i + 1].goid`, and the last holder is the first waiter.
    WaitCycle { links: Vec<WaitLink> },
}

impl Report {
    /// Short human-readable description.
    pub fn summary(&self) -> String {
        match self {
            Report::OrderCycle { level, edges } => {
                let nodes: Vec<String> = edges.iter().map(|e| node_str(&e.from)).collect();
                format!("lock-order cycle ({level:?}, {} locks): {} -> {}", edges.len(), nodes.join(" -> "), nodes[0])
            }
            Report::SelfDeadlock { goid, held, again } => format!(
                "self-deadlock: goroutine {goid} {} {} at {:#x}, already holding it since {:#x}",
                if again.read { "read-locks" } else { "locks" },
                again.lock,
                again.site,
                held.site
            ),
            Report::RecursiveRead { goid, held, again, writer } => format!(
                "recursive read lock: goroutine {goid} read-locks {} at {:#x} again (first at {:#x}){}",
                again.lock,
                again.site,
                held.site,
                match writer {
                    Some((w, _)) => format!(" while goroutine {w} waits to write-lock it"),
                    None => String::new(),
                }
            ),
            Report::WaitCycle { links } => {
                let parts: Vec<String> =
                    links.iter().map(|l| format!("g{} waits for {} held by g{}", l.goid, l.waiting_for, l.holder)).collect();
                format!("deadlock: {}", parts.join("; "))
            }
        }
    }
}

fn node_str(n: &Node) -> String {
    match n {
        Node::Instance(a) => format!("{a:#x}"),
        Node::Class(c) => c.clone(),
    }
}

/// Options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Build and check the class-level graph (for locks that carry a class).
    pub class_level: bool,
    /// Also report a recursive read lock when no writer is seen waiting (the
    /// Go documentation forbids it: it deadlocks as soon as a writer comes).
    pub recursive_read_always: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            class_level: true,
            recursive_read_always: false,
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub acquires: u64,
    pub releases: u64,
    /// Releases of a lock nobody was known to hold (tracing started late,
    /// lost events).
    pub unmatched_releases: u64,
    pub instance_edges: u64,
    pub class_edges: u64,
    pub reports: u64,
}

#[derive(Debug, Clone)]
struct Held {
    acq: Acquisition,
    seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    seq: u64,
    goid: Goid,
    read: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReportKey {
    Cycle(Level, Vec<Node>),
    ClassSeq(Vec<String>),
    SelfLock(u64, u64, u64),
    RecRead(u64, u64, u64),
    Wait(Vec<(Goid, u64)>),
}

/// The model. See the crate documentation.
#[derive(Debug, Default)]
pub struct LockOrder {
    cfg: Config,
    seq: u64,
    held: HashMap<Goid, Vec<Held>>,
    owners: HashMap<u64, Vec<Owner>>,
    inst_edges: BTreeMap<(u64, u64), Witness>,
    inst_adj: HashMap<u64, BTreeSet<u64>>,
    class_edges: BTreeMap<(String, String), Witness>,
    class_adj: HashMap<String, BTreeSet<String>>,
    parked: BTreeMap<Goid, u64>,
    reported: HashSet<ReportKey>,
    reports: Vec<Report>,
    stats: Stats,
}

impl LockOrder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_config(cfg: Config) -> Self {
        LockOrder {
            cfg,
            ..Self::default()
        }
    }

    /// Process one event; returns the reports it caused (also kept in
    /// [`LockOrder::reports`]).  Each distinct problem is reported once.
    pub fn handle(&mut self, ev: &Event) -> Vec<Report> {
        self.stats.events += 1;
        let new = match ev {
            Event::Acquire {
                goid,
                lock,
                site,
                stack,
                try_lock,
                read,
                ts_ns,
            } => self.acquire(Acquisition {
                goid: *goid,
                lock: lock.clone(),
                site: *site,
                stack: stack.clone(),
                read: *read,
                try_lock: *try_lock,
                ts_ns: *ts_ns,
            }),
            Event::Release { goid, lock, read } => {
                self.release(*goid, *lock, *read);
                Vec::new()
            }
            Event::Parked { goid, waiting_for } => self.park(*goid, *waiting_for),
            Event::Resumed { goid } => {
                self.parked.remove(goid);
                Vec::new()
            }
        };
        self.stats.reports += new.len() as u64;
        self.reports.extend(new.iter().cloned());
        new
    }

    /// Process a sequence of events; returns all reports they caused.
    pub fn handle_all<'a>(&mut self, evs: impl IntoIterator<Item = &'a Event>) -> Vec<Report> {
        evs.into_iter().flat_map(|e| self.handle(e)).collect()
    }

    /// Every report so far, in the order found.
    pub fn reports(&self) -> &[Report] {
        &self.reports
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Locks `goid` holds (including an acquisition it may be blocked in),
    /// oldest first.
    pub fn held(&self, goid: Goid) -> Vec<&Acquisition> {
        self.held
            .get(&goid)
            .map(|v| v.iter().map(|h| &h.acq).collect())
            .unwrap_or_default()
    }

    /// Goroutines currently parked, with the lock each waits for.
    pub fn parked(&self) -> &BTreeMap<Goid, u64> {
        &self.parked
    }

    /// Instance-level order edges `(from, to)` with their first witness.
    pub fn instance_edges(&self) -> impl Iterator<Item = (u64, u64, &Witness)> {
        self.inst_edges.iter().map(|(&(a, b), w)| (a, b, w))
    }

    /// Class-level order edges with their first witness.
    pub fn class_edges(&self) -> impl Iterator<Item = (&str, &str, &Witness)> {
        self.class_edges
            .iter()
            .map(|((a, b), w)| (a.as_str(), b.as_str(), w))
    }

    /// Drop every instance edge of a lock address, e.g. when the memory is
    /// known to be reused for another lock.
    pub fn forget_lock(&mut self, addr: u64) {
        self.inst_edges.retain(|&(a, b), _| a != addr && b != addr);
        self.inst_adj.remove(&addr);
        for succ in self.inst_adj.values_mut() {
            succ.remove(&addr);
        }
    }

    // -- events -------------------------------------------------------------

    fn acquire(&mut self, a: Acquisition) -> Vec<Report> {
        self.stats.acquires += 1;
        self.seq += 1;
        let g = a.goid;
        let addr = a.lock.addr;
        // An event from a goroutine means it is running again.
        self.parked.remove(&g);
        let mut out = Vec::new();

        let mine: Vec<Held> = self
            .held
            .get(&g)
            .map(|v| {
                v.iter()
                    .filter(|h| h.acq.lock.addr == addr)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !mine.is_empty() {
            let any_write = mine.iter().any(|h| !h.acq.read);
            if a.try_lock {
                // A TryLock that succeeded proves the lock was free: what we
                // had for this goroutine is stale (a lost release).
                if !a.read || any_write {
                    for h in &mine {
                        self.remove_entry(g, h.seq);
                    }
                }
            } else if !a.read || any_write {
                let first = mine
                    .iter()
                    .find(|h| !h.acq.read)
                    .unwrap_or(&mine[0])
                    .acq
                    .clone();
                let key = ReportKey::SelfLock(addr, first.site, a.site);
                if self.reported.insert(key) {
                    out.push(Report::SelfDeadlock {
                        goid: g,
                        held: first,
                        again: a,
                    });
                }
                // The goroutine cannot proceed; do not count the lock twice.
                return out;
            } else {
                let writer = self.waiting_writer(addr, g);
                if writer.is_some() || self.cfg.recursive_read_always {
                    let first = mine[0].acq.clone();
                    let key = ReportKey::RecRead(addr, first.site, a.site);
                    if self.reported.insert(key) {
                        out.push(Report::RecursiveRead {
                            goid: g,
                            held: first,
                            again: a.clone(),
                            writer,
                        });
                    }
                }
            }
        }

        if !a.try_lock {
            let held: Vec<Acquisition> = self
                .held
                .get(&g)
                .map(|v| {
                    v.iter()
                        .filter(|h| h.acq.lock.addr != addr)
                        .map(|h| h.acq.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut seen_addr = HashSet::new();
            let mut seen_class = HashSet::new();
            for h in &held {
                if seen_addr.insert(h.lock.addr) {
                    out.extend(self.add_instance_edge(h, &a));
                }
                if self.cfg.class_level {
                    if let (Some(ch), Some(ca)) = (&h.lock.class, &a.lock.class) {
                        if ch != ca && seen_class.insert(ch.clone()) {
                            out.extend(self.add_class_edge(h, &a));
                        }
                    }
                }
            }
        }

        let seq = self.seq;
        self.owners.entry(addr).or_default().push(Owner {
            seq,
            goid: g,
            read: a.read,
        });
        self.held.entry(g).or_default().push(Held { acq: a, seq });
        out
    }

    fn release(&mut self, g: Goid, addr: u64, read: bool) {
        self.stats.releases += 1;
        self.parked.remove(&g);
        // The releasing goroutine's own hold, same mode first.
        let own = self.held.get(&g).and_then(|v| {
            v.iter()
                .rev()
                .find(|h| h.acq.lock.addr == addr && h.acq.read == read)
                .or_else(|| v.iter().rev().find(|h| h.acq.lock.addr == addr))
                .map(|h| h.seq)
        });
        if let Some(seq) = own {
            self.remove_entry(g, seq);
            return;
        }
        // Unlocked by another goroutine: take it from the goroutine that has
        // held it longest, preferring real holders over waiters and the
        // matching mode.
        let Some(owners) = self.owners.get(&addr) else {
            self.stats.unmatched_releases += 1;
            return;
        };
        let pick = |want_mode: bool, want_holder: bool| {
            owners
                .iter()
                .filter(|o| !want_mode || o.read == read)
                .filter(|o| !want_holder || !self.is_waiting(o.goid, addr, o.seq))
                .min_by_key(|o| o.seq)
                .copied()
        };
        match pick(true, true)
            .or_else(|| pick(true, false))
            .or_else(|| pick(false, true))
            .or_else(|| pick(false, false))
        {
            Some(o) => self.remove_entry(o.goid, o.seq),
            None => self.stats.unmatched_releases += 1,
        }
    }

    fn park(&mut self, g: Goid, addr: u64) -> Vec<Report> {
        self.parked.insert(g, addr);
        // Shortest cycle through g in the wait-for graph (BFS, neighbours in
        // goroutine order).
        let mut parent: BTreeMap<Goid, Goid> = BTreeMap::new();
        let mut queue = VecDeque::new();
        let mut found = None;
        for h in self.waits_for(g).into_iter().map(|x| x.0) {
            if h == g {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(h) {
                e.insert(g);
                queue.push_back(h);
            }
        }
        'bfs: while let Some(x) = queue.pop_front() {
            if !self.parked.contains_key(&x) {
                continue;
            }
            for (y, _) in self.waits_for(x) {
                if y == g {
                    found = Some(x);
                    break 'bfs;
                }
                if y != x && !parent.contains_key(&y) {
                    parent.insert(y, x);
                    queue.push_back(y);
                }
            }
        }
        let Some(last) = found else { return Vec::new() };
        let mut chain = vec![last];
        let mut cur = last;
        while let Some(&p) = parent.get(&cur) {
            if p == g {
                break;
            }
            chain.push(p);
            cur = p;
        }
        chain.push(g);
        chain.reverse(); // g, ..., last; last waits for g
        let mut links = Vec::new();
        for i in 0..chain.len() {
            let (x, y) = (chain[i], chain[(i + 1) % chain.len()]);
            let waited = self.parked[&x];
            let Some((_, holder_acq)) = self.waits_for(x).into_iter().find(|(h, _)| *h == y) else {
                return Vec::new();
            };
            let attempt = self.pending_entry(x, waited).map(|h| h.acq.clone());
            let waiting_for = attempt
                .as_ref()
                .map_or_else(|| holder_acq.lock.clone(), |a| a.lock.clone());
            links.push(WaitLink {
                goid: x,
                waiting_for,
                attempt,
                holder: y,
                holder_acquisition: holder_acq,
            });
        }
        let mut key: Vec<(Goid, u64)> =
            links.iter().map(|l| (l.goid, l.waiting_for.addr)).collect();
        rotate_min(&mut key);
        if !self.reported.insert(ReportKey::Wait(key)) {
            return Vec::new();
        }
        vec![Report::WaitCycle { links }]
    }

    // -- helpers ------------------------------------------------------------

    fn remove_entry(&mut self, g: Goid, seq: u64) {
        let mut addr = None;
        if let Some(v) = self.held.get_mut(&g) {
            if let Some(i) = v.iter().position(|h| h.seq == seq) {
                addr = Some(v.remove(i).acq.lock.addr);
            }
            if v.is_empty() {
                self.held.remove(&g);
            }
        }
        if let Some(addr) = addr {
            if let Some(o) = self.owners.get_mut(&addr) {
                o.retain(|o| o.seq != seq);
                if o.is_empty() {
                    self.owners.remove(&addr);
                }
            }
        }
    }

    /// The acquisition g is blocked in, when g is parked on addr: its most
    /// recent one of that lock.
    fn pending_entry(&self, g: Goid, addr: u64) -> Option<&Held> {
        if self.parked.get(&g) != Some(&addr) {
            return None;
        }
        self.held
            .get(&g)?
            .iter()
            .rev()
            .find(|h| h.acq.lock.addr == addr)
    }

    fn is_waiting(&self, g: Goid, addr: u64, seq: u64) -> bool {
        self.pending_entry(g, addr).is_some_and(|h| h.seq == seq)
    }

    /// A goroutine other than `g` waiting to write-lock `addr` while `g`
    /// read-holds it: one with a write acquisition of it (it cannot have
    /// succeeded while a reader holds the lock), or one parked on it without
    /// a known read attempt.
    fn waiting_writer(&self, addr: u64, g: Goid) -> Option<(Goid, Option<Acquisition>)> {
        if let Some(o) = self.owners.get(&addr).and_then(|os| {
            os.iter()
                .filter(|o| o.goid != g && !o.read)
                .min_by_key(|o| o.seq)
        }) {
            let acq = self
                .held
                .get(&o.goid)
                .and_then(|v| v.iter().find(|h| h.seq == o.seq))
                .map(|h| h.acq.clone());
            return Some((o.goid, acq));
        }
        self.parked
            .iter()
            .filter(|(&w, &a)| w != g && a == addr)
            .find(|(&w, _)| self.pending_entry(w, addr).is_none_or(|h| !h.acq.read))
            .map(|(&w, _)| (w, self.pending_entry(w, addr).map(|h| h.acq.clone())))
    }

    /// Goroutines that parked goroutine `g` waits for, each with the
    /// acquisition that makes it wait, sorted by goroutine.
    fn waits_for(&self, g: Goid) -> Vec<(Goid, Acquisition)> {
        let Some(&addr) = self.parked.get(&g) else {
            return Vec::new();
        };
        let pending = self.pending_entry(g, addr);
        let g_reads = pending.is_some_and(|h| h.acq.read);
        let pending_seq = pending.map(|h| h.seq);
        let mut out: BTreeMap<Goid, (u64, Acquisition)> = BTreeMap::new();
        for o in self.owners.get(&addr).map(|v| v.as_slice()).unwrap_or(&[]) {
            if o.goid == g || Some(o.seq) == pending_seq {
                continue;
            }
            let blocks = if self.is_waiting(o.goid, addr, o.seq) {
                // Another waiter: only a waiting writer holds up a reader.
                g_reads && !o.read
            } else {
                !(g_reads && o.read)
            };
            if !blocks {
                continue;
            }
            let Some(acq) = self
                .held
                .get(&o.goid)
                .and_then(|v| v.iter().find(|h| h.seq == o.seq))
            else {
                continue;
            };
            let e = out.entry(o.goid).or_insert((o.seq, acq.acq.clone()));
            if o.seq < e.0 {
                *e = (o.seq, acq.acq.clone());
            }
        }
        out.into_iter().map(|(g, (_, a))| (g, a)).collect()
    }

    fn add_instance_edge(&mut self, h: &Acquisition, a: &Acquisition) -> Option<Report> {
        let (from, to) = (h.lock.addr, a.lock.addr);
        if self.inst_edges.contains_key(&(from, to)) {
            return None;
        }
        let path = bfs_path(&self.inst_adj, &to, &from);
        self.inst_edges.insert(
            (from, to),
            Witness {
                goid: a.goid,
                held: h.clone(),
                acquired: a.clone(),
            },
        );
        self.inst_adj.entry(from).or_default().insert(to);
        self.stats.instance_edges += 1;
        let path = path?;
        // Cycle: to -> ... -> from, closed by the new edge from -> to.
        let mut edges = Vec::with_capacity(path.len());
        for w in path.windows(2) {
            let wit = self.inst_edges[&(w[0], w[1])].clone();
            edges.push(OrderEdge {
                from: Node::Instance(w[0]),
                to: Node::Instance(w[1]),
                witness: wit,
            });
        }
        edges.push(OrderEdge {
            from: Node::Instance(from),
            to: Node::Instance(to),
            witness: self.inst_edges[&(from, to)].clone(),
        });
        let mut nodes: Vec<Node> = edges.iter().map(|e| e.from.clone()).collect();
        rotate_min(&mut nodes);
        if !self
            .reported
            .insert(ReportKey::Cycle(Level::Instance, nodes))
        {
            return None;
        }
        // The same cycle between classes needs no second report.
        let classes: Option<Vec<String>> = edges
            .iter()
            .map(|e| e.witness.held.lock.class.clone())
            .collect();
        if let Some(mut cs) = classes {
            rotate_min(&mut cs);
            self.reported.insert(ReportKey::ClassSeq(cs));
        }
        Some(Report::OrderCycle {
            level: Level::Instance,
            edges,
        })
    }

    fn add_class_edge(&mut self, h: &Acquisition, a: &Acquisition) -> Option<Report> {
        let (Some(from), Some(to)) = (h.lock.class.clone(), a.lock.class.clone()) else {
            return None;
        };
        let key = (from.clone(), to.clone());
        if self.class_edges.contains_key(&key) {
            return None;
        }
        let path = bfs_path(&self.class_adj, &to, &from);
        self.class_edges.insert(
            key.clone(),
            Witness {
                goid: a.goid,
                held: h.clone(),
                acquired: a.clone(),
            },
        );
        self.class_adj
            .entry(from.clone())
            .or_default()
            .insert(to.clone());
        self.stats.class_edges += 1;
        let path = path?;
        let mut edges = Vec::with_capacity(path.len());
        for w in path.windows(2) {
            let wit = self.class_edges[&(w[0].clone(), w[1].clone())].clone();
            edges.push(OrderEdge {
                from: Node::Class(w[0].clone()),
                to: Node::Class(w[1].clone()),
                witness: wit,
            });
        }
        edges.push(OrderEdge {
            from: Node::Class(from),
            to: Node::Class(to),
            witness: self.class_edges[&key].clone(),
        });
        let mut cs: Vec<String> = edges.iter().map(|e| node_str(&e.from)).collect();
        rotate_min(&mut cs);
        if self.reported.contains(&ReportKey::ClassSeq(cs.clone())) {
            return None;
        }
        let nodes: Vec<Node> = cs.iter().cloned().map(Node::Class).collect();
        if !self.reported.insert(ReportKey::Cycle(Level::Class, nodes)) {
            return None;
        }
        self.reported.insert(ReportKey::ClassSeq(cs));
        Some(Report::OrderCycle {
            level: Level::Class,
            edges,
        })
    }
}

/// Shortest path `start -> ... -> goal` (inclusive), visiting successors in
/// order.
fn bfs_path<T: Ord + Clone + std::hash::Hash>(
    adj: &HashMap<T, BTreeSet<T>>,
    start: &T,
    goal: &T,
) -> Option<Vec<T>> {
    if start == goal {
        return Some(vec![start.clone()]);
    }
    let mut parent: HashMap<T, T> = HashMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(x) = queue.pop_front() {
        let Some(succ) = adj.get(&x) else { continue };
        for y in succ {
            if y == start || parent.contains_key(y) {
                continue;
            }
            parent.insert(y.clone(), x.clone());
            if y == goal {
                let mut path = vec![y.clone()];
                let mut cur = y.clone();
                while let Some(p) = parent.get(&cur) {
                    path.push(p.clone());
                    if p == start {
                        break;
                    }
                    cur = p.clone();
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(y.clone());
        }
    }
    None
}

/// Rotate a cycle so that its smallest element comes first.
fn rotate_min<T: Ord>(v: &mut [T]) {
    if let Some((i, _)) = v.iter().enumerate().min_by(|a, b| a.1.cmp(b.1)) {
        v.rotate_left(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Site encoding used by the helpers: goroutine, lock, operation.
    fn site(g: Goid, addr: u64, op: u64) -> u64 {
        (g << 32) | (addr << 4) | op
    }

    struct T {
        m: LockOrder,
        ts: u64,
        log: Vec<Event>,
    }

    impl T {
        fn new() -> T {
            T {
                m: LockOrder::new(),
                ts: 0,
                log: Vec::new(),
            }
        }
        fn ev(&mut self, e: Event) -> Vec<Report> {
            self.log.push(e.clone());
            self.m.handle(&e)
        }
        fn acq(&mut self, g: Goid, lock: LockId, read: bool, try_lock: bool) -> Vec<Report> {
            self.ts += 10;
            let op = match (read, try_lock) {
                (false, false) => 1,
                (true, false) => 2,
                (false, true) => 3,
                (true, true) => 4,
            };
            let s = site(g, lock.addr, op);
            self.ev(Event::Acquire {
                goid: g,
                lock,
                site: s,
                stack: vec![s, 0xdead_0000 + g],
                try_lock,
                read,
                ts_ns: self.ts,
            })
        }
        fn lock(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.acq(g, LockId::new(a), false, false)
        }
        fn lockc(&mut self, g: Goid, a: u64, class: &str) -> Vec<Report> {
            self.acq(g, LockId::with_class(a, class), false, false)
        }
        fn rlock(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.acq(g, LockId::new(a), true, false)
        }
        fn try_lock(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.acq(g, LockId::new(a), false, true)
        }
        fn unlock(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.ev(Event::Release {
                goid: g,
                lock: a,
                read: false,
            })
        }
        fn runlock(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.ev(Event::Release {
                goid: g,
                lock: a,
                read: true,
            })
        }
        fn park(&mut self, g: Goid, a: u64) -> Vec<Report> {
            self.ev(Event::Parked {
                goid: g,
                waiting_for: a,
            })
        }
        fn resume(&mut self, g: Goid) -> Vec<Report> {
            self.ev(Event::Resumed { goid: g })
        }
    }

    fn cycle_nodes(r: &Report) -> (Level, Vec<Node>) {
        match r {
            Report::OrderCycle { level, edges } => {
                for (i, e) in edges.iter().enumerate() {
                    assert_eq!(
                        e.to,
                        edges[(i + 1) % edges.len()].from,
                        "edges do not chain: {edges:?}"
                    );
                }
                (*level, edges.iter().map(|e| e.from.clone()).collect())
            }
            other => panic!("not a cycle: {other:?}"),
        }
    }

    const A: u64 = 0xa0;
    const B: u64 = 0xb0;
    const C: u64 = 0xc0;
    const D: u64 = 0xd0;

    #[test]
    fn ab_ba_instance_cycle_with_witnesses() {
        let mut t = T::new();
        assert!(t.lock(1, A).is_empty());
        assert!(t.lock(1, B).is_empty());
        t.unlock(1, B);
        t.unlock(1, A);
        assert!(t.lock(2, B).is_empty());
        let r = t.lock(2, A);
        assert_eq!(r.len(), 1, "{r:?}");
        let (level, nodes) = cycle_nodes(&r[0]);
        assert_eq!(level, Level::Instance);
        assert_eq!(nodes, vec![Node::Instance(A), Node::Instance(B)]);
        let Report::OrderCycle { edges, .. } = &r[0] else {
            unreachable!()
        };
        // A -> B first seen in goroutine 1, B -> A closes the cycle in 2.
        assert_eq!(edges[0].witness.goid, 1);
        assert_eq!(edges[0].witness.held.site, site(1, A, 1));
        assert_eq!(edges[0].witness.acquired.site, site(1, B, 1));
        assert_eq!(
            edges[0].witness.held.stack,
            vec![site(1, A, 1), 0xdead_0001]
        );
        assert_eq!(edges[1].witness.goid, 2);
        assert_eq!(edges[1].witness.held.site, site(2, B, 1));
        assert_eq!(edges[1].witness.acquired.site, site(2, A, 1));
        assert!(r[0].summary().contains("lock-order cycle"));
        // Seeing it again reports nothing new.
        t.unlock(2, A);
        t.unlock(2, B);
        t.lock(3, B);
        assert!(t.lock(3, A).is_empty());
        assert_eq!(t.m.reports().len(), 1);
    }

    #[test]
    fn three_lock_cycle() {
        let mut t = T::new();
        t.lock(1, A);
        t.lock(1, B);
        t.unlock(1, B);
        t.unlock(1, A);
        t.lock(2, B);
        t.lock(2, C);
        t.unlock(2, C);
        t.unlock(2, B);
        t.lock(3, C);
        let r = t.lock(3, A);
        assert_eq!(r.len(), 1, "{r:?}");
        let (level, nodes) = cycle_nodes(&r[0]);
        assert_eq!(level, Level::Instance);
        assert_eq!(
            nodes,
            vec![Node::Instance(A), Node::Instance(B), Node::Instance(C)]
        );
        let Report::OrderCycle { edges, .. } = &r[0] else {
            unreachable!()
        };
        let goids: Vec<Goid> = edges.iter().map(|e| e.witness.goid).collect();
        assert_eq!(goids, vec![1, 2, 3]);
    }

    #[test]
    fn four_lock_cycle_through_longer_path() {
        let mut t = T::new();
        for (g, (x, y)) in [(A, B), (B, C), (C, D)].into_iter().enumerate() {
            let g = g as u64 + 1;
            t.lock(g, x);
            t.lock(g, y);
            t.unlock(g, y);
            t.unlock(g, x);
        }
        t.lock(9, D);
        let r = t.lock(9, A);
        assert_eq!(r.len(), 1);
        assert_eq!(cycle_nodes(&r[0]).1.len(), 4);
    }

    #[test]
    fn class_level_cycle_between_different_instances() {
        let mut t = T::new();
        t.lockc(1, 0x100, "Account.mu");
        t.lockc(1, 0x200, "Bank.mu");
        t.unlock(1, 0x200);
        t.unlock(1, 0x100);
        t.lockc(2, 0x210, "Bank.mu");
        let r = t.lockc(2, 0x110, "Account.mu");
        assert_eq!(r.len(), 1, "{r:?}");
        let (level, nodes) = cycle_nodes(&r[0]);
        assert_eq!(level, Level::Class);
        assert_eq!(
            nodes,
            vec![
                Node::Class("Account.mu".into()),
                Node::Class("Bank.mu".into())
            ]
        );
        let Report::OrderCycle { edges, .. } = &r[0] else {
            unreachable!()
        };
        assert_eq!(
            edges[0].witness.held.lock,
            LockId::with_class(0x100, "Account.mu")
        );
        assert_eq!(
            edges[1].witness.held.lock,
            LockId::with_class(0x210, "Bank.mu")
        );
    }

    #[test]
    fn class_cycle_not_repeated_when_instance_cycle_reported() {
        let mut t = T::new();
        t.lockc(1, A, "X");
        t.lockc(1, B, "Y");
        t.unlock(1, B);
        t.unlock(1, A);
        t.lockc(2, B, "Y");
        let r = t.lockc(2, A, "X");
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(cycle_nodes(&r[0]).0, Level::Instance);
        assert_eq!(t.m.class_edges().count(), 2);
    }

    #[test]
    fn same_class_nesting_is_not_a_class_cycle() {
        // Two locks of one class taken in a consistent instance order.
        let mut t = T::new();
        for g in 1..5 {
            t.lockc(g, A, "Shard.mu");
            t.lockc(g, B, "Shard.mu");
            t.unlock(g, B);
            t.unlock(g, A);
        }
        assert!(t.m.reports().is_empty());
        assert_eq!(t.m.class_edges().count(), 0);
    }

    #[test]
    fn self_deadlock_lock_twice() {
        let mut t = T::new();
        t.lock(1, A);
        let r = t.lock(1, A);
        assert_eq!(r.len(), 1);
        match &r[0] {
            Report::SelfDeadlock { goid, held, again } => {
                assert_eq!(*goid, 1);
                assert_eq!(held.site, site(1, A, 1));
                assert_eq!(again.lock.addr, A);
            }
            other => panic!("{other:?}"),
        }
        assert!(r[0].summary().contains("self-deadlock"));
    }

    #[test]
    fn self_deadlock_mixed_modes() {
        let mut t = T::new();
        t.rlock(1, A);
        let r = t.lock(1, A);
        assert!(
            matches!(r.as_slice(), [Report::SelfDeadlock { .. }]),
            "{r:?}"
        );
        let mut t = T::new();
        t.lock(1, A);
        let r = t.rlock(1, A);
        assert!(
            matches!(r.as_slice(), [Report::SelfDeadlock { .. }]),
            "{r:?}"
        );
    }

    #[test]
    fn recursive_read_lock_with_waiting_writer() {
        let mut t = T::new();
        t.rlock(1, A);
        t.lock(2, A); // writer attempt, blocks
        t.park(2, A);
        let r = t.rlock(1, A);
        assert_eq!(r.len(), 1, "{r:?}");
        match &r[0] {
            Report::RecursiveRead {
                goid,
                held,
                again,
                writer,
            } => {
                assert_eq!(*goid, 1);
                assert_eq!(held.site, site(1, A, 2));
                assert_eq!(again.site, site(1, A, 2));
                let (w, wa) = writer.as_ref().unwrap();
                assert_eq!(*w, 2);
                assert_eq!(wa.as_ref().unwrap().site, site(2, A, 1));
            }
            other => panic!("{other:?}"),
        }
        // Goroutine 1 now blocks behind the writer: a real deadlock.
        let r = t.park(1, A);
        assert_eq!(r.len(), 1, "{r:?}");
        let Report::WaitCycle { links } = &r[0] else {
            panic!("{r:?}")
        };
        let pairs: Vec<(Goid, Goid)> = links.iter().map(|l| (l.goid, l.holder)).collect();
        assert_eq!(pairs, vec![(1, 2), (2, 1)]);
    }

    #[test]
    fn recursive_read_lock_writer_known_only_from_parking() {
        let mut t = T::new();
        t.rlock(1, A);
        t.park(2, A);
        let r = t.rlock(1, A);
        assert!(
            matches!(
                r.as_slice(),
                [Report::RecursiveRead {
                    writer: Some((2, None)),
                    ..
                }]
            ),
            "{r:?}"
        );
    }

    #[test]
    fn recursive_read_lock_without_writer_is_quiet_by_default() {
        let mut t = T::new();
        t.rlock(1, A);
        t.rlock(2, A);
        assert!(t.rlock(1, A).is_empty());
        t.runlock(1, A);
        t.runlock(1, A);
        t.runlock(2, A);
        assert!(t.m.held(1).is_empty() && t.m.held(2).is_empty());
        let mut m = LockOrder::with_config(Config {
            recursive_read_always: true,
            ..Config::default()
        });
        let ev = |read| Event::Acquire {
            goid: 1,
            lock: LockId::new(A),
            site: 1,
            stack: vec![],
            try_lock: false,
            read,
            ts_ns: 0,
        };
        assert!(m.handle(&ev(true)).is_empty());
        assert!(matches!(
            m.handle(&ev(true)).as_slice(),
            [Report::RecursiveRead { writer: None, .. }]
        ));
    }

    #[test]
    fn readers_do_not_block_readers_in_wait_for() {
        let mut t = T::new();
        t.rlock(1, A);
        t.lock(2, B);
        t.lock(1, B); // 1 waits for writer 2
        assert!(t.park(1, B).is_empty());
        t.rlock(2, A); // a reader waiting behind reader 1 only: no deadlock
        assert!(t.park(2, A).is_empty());
        assert!(
            t.m.reports()
                .iter()
                .all(|r| !matches!(r, Report::WaitCycle { .. })),
            "{:?}",
            t.m.reports()
        );
        // With a writer queued on A, 2 really waits for it, and the writer
        // waits for reader 1, which waits for 2.
        t.lock(3, A);
        let r = t.park(3, A);
        let Some(Report::WaitCycle { links }) = r.first() else {
            panic!("{r:?}")
        };
        let pairs: Vec<(Goid, Goid)> = links.iter().map(|l| (l.goid, l.holder)).collect();
        assert_eq!(pairs, vec![(3, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn wait_for_cycle_two_goroutines() {
        let mut t = T::new();
        t.lock(1, A);
        t.lock(2, B);
        assert!(t.lock(1, B).is_empty()); // attempt
        assert!(t.park(1, B).is_empty());
        let r = t.lock(2, A);
        assert_eq!(r.len(), 1, "order cycle expected: {r:?}");
        assert_eq!(cycle_nodes(&r[0]).0, Level::Instance);
        let r = t.park(2, A);
        assert_eq!(r.len(), 1, "{r:?}");
        let Report::WaitCycle { links } = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(links.len(), 2);
        assert_eq!(
            (links[0].goid, links[0].waiting_for.addr, links[0].holder),
            (2, A, 1)
        );
        assert_eq!(
            (links[1].goid, links[1].waiting_for.addr, links[1].holder),
            (1, B, 2)
        );
        assert_eq!(links[0].holder_acquisition.site, site(1, A, 1));
        assert_eq!(links[0].attempt.as_ref().unwrap().site, site(2, A, 1));
        assert_eq!(links[1].holder_acquisition.site, site(2, B, 1));
        assert!(r[0].summary().contains("deadlock"));
        // Parking again after a spurious wake-up: same deadlock, no new report.
        t.resume(2);
        assert!(t.park(2, A).is_empty());
    }

    #[test]
    fn wait_for_cycle_three_goroutines() {
        let mut t = T::new();
        t.lock(1, A);
        t.lock(2, B);
        t.lock(3, C);
        t.lock(1, B);
        assert!(t.park(1, B).is_empty());
        t.lock(2, C);
        assert!(t.park(2, C).is_empty());
        t.lock(3, A);
        let r = t.park(3, A);
        let Some(Report::WaitCycle { links }) = r.first() else {
            panic!("{r:?}")
        };
        let pairs: Vec<(Goid, Goid)> = links.iter().map(|l| (l.goid, l.holder)).collect();
        assert_eq!(pairs, vec![(3, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn no_wait_cycle_after_resume() {
        let mut t = T::new();
        t.lock(1, A);
        t.lock(2, B);
        t.lock(1, B);
        t.park(1, B);
        t.resume(1); // e.g. a wake-up; 1 is runnable again
        t.lock(2, A);
        assert!(t.park(2, A).is_empty());
        assert!(t
            .m
            .reports()
            .iter()
            .all(|r| !matches!(r, Report::WaitCycle { .. })));
    }

    #[test]
    fn contended_lock_is_no_deadlock() {
        // 2 waits for A held by 1; 1 runs on and unlocks.
        let mut t = T::new();
        t.lock(1, A);
        t.lock(2, A);
        assert!(t.park(2, A).is_empty());
        t.unlock(1, A);
        t.resume(2);
        // Now 2 holds A; 1 locking A again just waits for 2.
        assert!(t.lock(1, A).is_empty());
        assert!(t.park(1, A).is_empty());
        t.unlock(2, A);
        t.resume(1);
        t.unlock(1, A);
        assert!(t.m.reports().is_empty(), "{:?}", t.m.reports());
        assert!(t.m.held(1).is_empty() && t.m.held(2).is_empty());
    }

    #[test]
    fn unlock_from_another_goroutine() {
        let mut t = T::new();
        t.lock(1, A);
        t.unlock(2, A); // legal in Go
        assert!(t.m.held(1).is_empty());
        // 1 does not hold A any more: no self-deadlock, no A -> B edge.
        assert!(t.lock(1, A).is_empty());
        t.unlock(3, A);
        t.lock(1, B);
        t.unlock(1, B);
        assert_eq!(t.m.instance_edges().count(), 0);
        // Hand-off pattern: 1 locks, 2 unlocks, repeatedly, nested in C.
        for _ in 0..5 {
            t.lock(1, C);
            t.lock(1, A);
            t.unlock(1, C);
            t.unlock(2, A);
        }
        assert!(t.m.reports().is_empty(), "{:?}", t.m.reports());
        assert_eq!(t.m.stats().unmatched_releases, 0);
    }

    #[test]
    fn release_by_other_goroutine_takes_the_real_holder() {
        let mut t = T::new();
        t.lock(1, A);
        t.lock(2, A); // waiting
        t.park(2, A);
        t.unlock(3, A); // frees 1's hold, not 2's attempt
        assert!(t.m.held(1).is_empty());
        assert_eq!(t.m.held(2).len(), 1);
    }

    #[test]
    fn runlock_from_another_goroutine() {
        let mut t = T::new();
        t.rlock(1, A);
        t.runlock(2, A);
        assert!(t.m.held(1).is_empty());
        assert!(t.lock(1, A).is_empty());
    }

    #[test]
    fn trylock_adds_no_edge_into_itself_but_counts_as_held() {
        let mut t = T::new();
        t.lock(1, A);
        assert!(t.try_lock(1, B).is_empty());
        assert_eq!(t.m.instance_edges().count(), 0);
        t.lock(1, C);
        let edges: Vec<(u64, u64)> = t.m.instance_edges().map(|(a, b, _)| (a, b)).collect();
        assert_eq!(edges, vec![(A, C), (B, C)]);
        t.unlock(1, C);
        t.unlock(1, B);
        t.unlock(1, A);
        // B -> A in another goroutine: A -> B was a TryLock, so no cycle.
        t.lock(2, B);
        assert!(t.lock(2, A).is_empty());
        t.unlock(2, A);
        t.unlock(2, B);
        // C -> B closes B -> C, which the TryLock'd B did create.
        t.lock(3, C);
        let r = t.lock(3, B);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            cycle_nodes(&r[0]).1,
            vec![Node::Instance(B), Node::Instance(C)]
        );
    }

    #[test]
    fn trylock_of_own_lock_means_a_lost_release() {
        let mut t = T::new();
        t.lock(1, A);
        assert!(t.try_lock(1, A).is_empty());
        assert_eq!(t.m.held(1).len(), 1);
        t.unlock(1, A);
        assert!(t.m.held(1).is_empty());
    }

    #[test]
    fn same_lock_repeatedly_is_quiet() {
        let mut t = T::new();
        for _ in 0..100 {
            t.lock(1, A);
            t.unlock(1, A);
        }
        t.lock(1, B);
        for _ in 0..100 {
            t.lock(1, A);
            t.unlock(1, A);
            t.rlock(1, C);
            t.runlock(1, C);
        }
        t.unlock(1, B);
        assert!(t.m.reports().is_empty(), "{:?}", t.m.reports());
        assert_eq!(t.m.instance_edges().count(), 2);
    }

    #[test]
    fn unmatched_release_is_counted() {
        let mut t = T::new();
        t.unlock(1, A);
        t.runlock(1, B);
        assert_eq!(t.m.stats().unmatched_releases, 2);
        assert!(t.m.reports().is_empty());
    }

    /// Deterministic pseudo-random numbers.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn consistent_order_over_many_locks_is_quiet() {
        let mut t = T::new();
        let mut rng = Lcg(7);
        let locks: Vec<u64> = (0..64).map(|i| 0x1000 + i * 0x40).collect();
        for round in 0..2000 {
            let g = rng.next() % 16 + 1;
            // A random increasing subset, some read-locked, with some TryLocks.
            let mut taken = Vec::new();
            for (i, &l) in locks.iter().enumerate() {
                if rng.next().is_multiple_of(8) {
                    let class = format!("C{}", i / 4);
                    let read = rng.next().is_multiple_of(3);
                    let try_lock = rng.next().is_multiple_of(5);
                    t.acq(g, LockId::with_class(l, class), read, try_lock);
                    taken.push((l, read));
                }
            }
            // Release in reverse, or in acquisition order, sometimes from
            // another goroutine.
            if round % 2 == 0 {
                taken.reverse();
            }
            for (l, read) in taken {
                let by = if rng.next().is_multiple_of(10) {
                    g + 100
                } else {
                    g
                };
                t.ev(Event::Release {
                    goid: by,
                    lock: l,
                    read,
                });
            }
        }
        assert!(
            t.m.reports().is_empty(),
            "{:?}",
            t.m.reports().first().map(|r| r.summary())
        );
        assert!(t.m.instance_edges().count() > 500);
        assert!(t.m.class_edges().count() > 20);
        assert_eq!(t.m.stats().unmatched_releases, 0);
        for g in 1..=16 {
            assert!(t.m.held(g).is_empty());
        }
    }

    /// A mixed workload with several problems in it.
    fn scenario() -> Vec<Event> {
        let mut t = T::new();
        let mut rng = Lcg(42);
        for _ in 0..300 {
            let g = rng.next() % 6 + 1;
            let n = rng.next() % 3 + 1;
            let mut taken = Vec::new();
            for _ in 0..n {
                let l = 0x100 * (rng.next() % 8 + 1);
                let class = format!("K{}", l / 0x200);
                let read = rng.next().is_multiple_of(4);
                t.acq(g, LockId::with_class(l, class), read, false);
                taken.push((l, read));
            }
            if rng.next().is_multiple_of(7) {
                t.park(g, taken[0].0);
                t.resume(g);
            }
            for (l, read) in taken.into_iter().rev() {
                t.ev(Event::Release {
                    goid: g,
                    lock: l,
                    read,
                });
            }
        }
        t.lock(50, A);
        t.lock(51, B);
        t.lock(50, B);
        t.park(50, B);
        t.lock(51, A);
        t.park(51, A);
        t.log
    }

    #[test]
    fn deterministic_over_ten_runs() {
        let events = scenario();
        let mut first: Option<(Vec<Report>, Stats, Vec<String>)> = None;
        for _ in 0..10 {
            let mut m = LockOrder::new();
            let reps = m.handle_all(&events);
            let edges: Vec<String> = m
                .instance_edges()
                .map(|(a, b, w)| format!("{a}>{b}:{}", w.goid))
                .collect();
            let got = (reps, m.stats().clone(), edges);
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(&got, f),
            }
        }
        let (reps, _, _) = first.unwrap();
        assert!(reps.iter().any(|r| matches!(
            r,
            Report::OrderCycle {
                level: Level::Instance,
                ..
            }
        )));
        assert!(reps.iter().any(|r| matches!(r, Report::WaitCycle { .. })));
        assert!(reps
            .iter()
            .any(|r| matches!(r, Report::SelfDeadlock { .. })));
    }
}

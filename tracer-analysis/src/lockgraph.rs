//! Lock-order graph fed by the kernel's first-seen edges, in the manner of Linux
//! lockdep: an edge A -> B means "B was acquired while A was held". A cycle is a
//! lock-order inversion: it can deadlock even if this run did not. Also the two
//! findings that need no graph: a goroutine re-acquiring a mutex it holds, and a
//! cycle of parked goroutines each waiting for a lock the next one holds.
use crate::input::Frame;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// One observed edge with its witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockEdge {
    pub from: u64,
    pub to: u64,
    /// Where `from` was acquired (the site of the held lock).
    pub held_at: Frame,
    /// Where `to` was acquired while `from` was held.
    pub acquired_at: Frame,
    pub goid: u64,
    /// Stack of the second acquisition, innermost first.
    pub stack: Vec<Frame>,
    pub from_read: bool,
    pub to_read: bool,
    /// The held lock's class when its place in a type is known
    /// (`main.Account.mu`); else its site names it (see [`class_of`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_class: Option<Arc<str>>,
    /// The acquired lock's class, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquired_class: Option<Arc<str>>,
}

impl LockEdge {
    /// The class of the held lock.
    pub fn from_class(&self) -> String {
        self.held_class
            .as_deref()
            .map_or_else(|| class_of(&self.held_at), str::to_string)
    }

    /// The class of the acquired lock.
    pub fn to_class(&self) -> String {
        self.acquired_class
            .as_deref()
            .map_or_else(|| class_of(&self.acquired_at), str::to_string)
    }
}

/// What a goroutine blocked in a lock waits for, and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitLink {
    pub goid: u64,
    pub wait_reason: Arc<str>,
    /// The lock waited for, or the channel (a channel send or receive).
    pub lock: u64,
    /// The goroutine holding the lock, or the only one seen serving the channel.
    pub holder: u64,
    /// Where the holder took the lock, when its lock site was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_at: Option<Frame>,
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum LockFinding {
    /// A cycle in the lock-order graph. `level` is "instance" (the same mutexes) or
    /// "class" (different mutexes of the same kinds: the same field of one type,
    /// or, where that is not known, the same acquisition site); `classes` names
    /// the class of each lock.
    LockOrderInversion {
        level: &'static str,
        locks: Vec<u64>,
        classes: Vec<String>,
        edges: Vec<LockEdge>,
    },
    /// A goroutine acquires a mutex it already holds (Go mutexes are not reentrant),
    /// or read-locks an RWMutex it read-holds while a writer waits.
    SelfDeadlock {
        goid: u64,
        lock: u64,
        read: bool,
        site: Frame,
        stack: Vec<Frame>,
        /// For the recursive read lock: the writer that is waiting, if seen.
        waiting_writer: Option<u64>,
    },
    /// Parked goroutines, each waiting for a lock the next one holds.
    Deadlock { links: Vec<WaitLink> },
    /// A goroutine ended still holding a lock (a missing Unlock or RUnlock): the
    /// next goroutine to lock it waits forever.
    #[serde(rename = "exited_holding_lock")]
    ExitedHolding {
        goid: u64,
        lock: u64,
        read: bool,
        /// Where it took the lock.
        site: Frame,
    },
}

impl LockFinding {
    pub fn rule(&self) -> &'static str {
        match self {
            LockFinding::LockOrderInversion { .. } => "lock_order_inversion",
            LockFinding::SelfDeadlock { .. } => "self_deadlock",
            LockFinding::Deadlock { .. } => "deadlock",
            LockFinding::ExitedHolding { .. } => "exited_holding_lock",
        }
    }
}

/// A directed graph over lock ids (instances, or interned class names) that finds
/// the cycle an edge closes.
#[derive(Debug, Default)]
struct Graph {
    edges: HashMap<(u64, u64), LockEdge>,
    out: HashMap<u64, Vec<u64>>,
    /// Canonical (rotated) cycles already reported.
    reported: HashSet<Vec<u64>>,
}

impl Graph {
    /// Adds `from -> to` with its witness; returns a new cycle it closes, as the
    /// nodes and the witness of each edge.
    fn add(&mut self, from: u64, to: u64, edge: LockEdge) -> Option<(Vec<u64>, Vec<LockEdge>)> {
        if from == to || self.edges.contains_key(&(from, to)) {
            return None;
        }
        self.edges.insert((from, to), edge);
        self.out.entry(from).or_default().push(to);
        // A path to -> ... -> from closes the cycle (BFS: shortest witness).
        let path = self.path(to, from)?;
        let mut nodes = vec![from];
        nodes.extend(&path[..path.len() - 1]);
        let key = canonical(&nodes);
        if !self.reported.insert(key.clone()) {
            return None;
        }
        let mut edges = Vec::with_capacity(key.len());
        for i in 0..key.len() {
            let (a, b) = (key[i], key[(i + 1) % key.len()]);
            edges.push(self.edges.get(&(a, b))?.clone());
        }
        // Read-only cycles cannot deadlock by themselves.
        if edges.iter().all(|e| e.from_read && e.to_read) {
            return None;
        }
        Some((key, edges))
    }

    fn path(&self, start: u64, goal: u64) -> Option<Vec<u64>> {
        let mut prev: HashMap<u64, u64> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = HashSet::from([start]);
        while let Some(n) = queue.pop_front() {
            if n == goal {
                let mut path = vec![n];
                let mut cur = n;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &m in self.out.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
                if seen.insert(m) {
                    prev.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        None
    }
}

#[derive(Debug, Default)]
pub struct LockGraph {
    instances: Graph,
    classes: Graph,
    class_ids: HashMap<String, u64>,
    class_names: Vec<String>,
    self_reported: HashSet<(u64, u64)>,
    deadlocks_reported: HashSet<Vec<u64>>,
    /// The class cycles of the instance inversions reported: one report per
    /// shape, not one per set of objects (each new `Stmt` of `database/sql`
    /// would close its own cycle through the same fields).
    instance_shapes: HashSet<Vec<u64>>,
}

/// Rotates a cycle so that it starts at its smallest element: one name per cycle.
fn canonical(cycle: &[u64]) -> Vec<u64> {
    let Some(min) = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, v)| **v)
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    cycle[min..].iter().chain(&cycle[..min]).copied().collect()
}

/// The class of a lock whose place in a type is not known: where in the code it
/// is acquired. All `x.mu` locked through the same method share it.
pub fn class_of(site: &Frame) -> String {
    let file = site.file.rsplit('/').next().unwrap_or(&site.file);
    format!("{} ({file}:{})", site.function, site.line)
}

impl LockGraph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn edge_count(&self) -> usize {
        self.instances.edges.len()
    }

    fn class_id(&mut self, name: String) -> u64 {
        if let Some(id) = self.class_ids.get(&name) {
            return *id;
        }
        let id = self.class_names.len() as u64;
        self.class_names.push(name.clone());
        self.class_ids.insert(name, id);
        id
    }

    /// Adds an edge; returns the inversion it closes, if it closes a new cycle among
    /// the same mutexes, or else among their classes.
    pub fn add_edge(&mut self, edge: LockEdge) -> Option<LockFinding> {
        let from_class = self.class_id(edge.from_class());
        let to_class = self.class_id(edge.to_class());
        let instance = self.instances.add(edge.from, edge.to, edge.clone());
        let class = self.classes.add(from_class, to_class, edge);
        if let Some((locks, edges)) = instance {
            let shape: Vec<u64> = edges
                .iter()
                .map(|e| {
                    self.class_ids
                        .get(&e.from_class())
                        .copied()
                        .unwrap_or(u64::MAX)
                })
                .collect();
            if !self.instance_shapes.insert(canonical(&shape)) {
                return None;
            }
            let classes = edges.iter().map(LockEdge::from_class).collect();
            return Some(LockFinding::LockOrderInversion {
                level: "instance",
                locks,
                classes,
                edges,
            });
        }
        let (ids, edges) = class?;
        // Already reported as the same mutexes: nothing new at class level.
        let mut pairs: Vec<u64> = edges.iter().map(|e| e.from).collect();
        if self.instances.reported.contains(&canonical(&pairs)) {
            return None;
        }
        pairs.dedup();
        Some(LockFinding::LockOrderInversion {
            level: "class",
            locks: edges.iter().map(|e| e.from).collect(),
            classes: ids
                .iter()
                .map(|i| self.class_names[*i as usize].clone())
                .collect(),
            edges,
        })
    }

    /// A re-acquisition of a held lock, reported once per (goroutine, lock).
    pub fn self_acquire(
        &mut self,
        goid: u64,
        lock: u64,
        read: bool,
        site: Frame,
        stack: Vec<Frame>,
        waiting_writer: Option<u64>,
    ) -> Option<LockFinding> {
        // Two read locks deadlock as soon as a writer comes between them (the
        // sync docs forbid recursive read locking): reported whether or not one
        // happened to wait this time.
        if !self.self_reported.insert((goid, lock)) {
            return None;
        }
        Some(LockFinding::SelfDeadlock {
            goid,
            lock,
            read,
            site,
            stack,
            waiting_writer,
        })
    }

    /// Finds cycles among `links` (goroutine waits for the holder of a lock) that
    /// were not reported before.
    pub fn deadlocks(&mut self, links: &[WaitLink]) -> Vec<LockFinding> {
        let by_goid: HashMap<u64, &WaitLink> = links.iter().map(|l| (l.goid, l)).collect();
        let mut found = Vec::new();
        for start in links {
            let mut chain = vec![start.goid];
            let mut cur = start.holder;
            while let Some(next) = by_goid.get(&cur) {
                if let Some(pos) = chain.iter().position(|g| *g == cur) {
                    let cycle = canonical(&chain[pos..]);
                    if self.deadlocks_reported.insert(cycle.clone()) {
                        let links = cycle
                            .iter()
                            .filter_map(|g| by_goid.get(g))
                            .map(|l| (*l).clone())
                            .collect();
                        found.push(LockFinding::Deadlock { links });
                    }
                    break;
                }
                chain.push(cur);
                cur = next.holder;
                if chain.len() > links.len() + 1 {
                    break;
                }
            }
            if cur == start.goid && chain.len() == 1 {
                // A goroutine waiting for itself is a self-deadlock, reported there.
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: u64, to: u64, goid: u64) -> LockEdge {
        LockEdge {
            from,
            to,
            held_at: Frame::new("main.f", "main.go", from as u32),
            acquired_at: Frame::new("main.f", "main.go", to as u32),
            goid,
            stack: Vec::new(),
            from_read: false,
            to_read: false,
            held_class: None,
            acquired_class: None,
        }
    }

    #[test]
    fn ab_ba_is_an_inversion_once() {
        let mut g = LockGraph::new();
        assert!(g.add_edge(edge(1, 2, 10)).is_none());
        let f = g.add_edge(edge(2, 1, 11)).expect("cycle");
        match f {
            LockFinding::LockOrderInversion {
                locks,
                edges,
                level,
                ..
            } => {
                assert_eq!(level, "instance");
                assert_eq!(locks, vec![1, 2]);
                assert_eq!(edges.len(), 2);
                assert_eq!((edges[0].goid, edges[1].goid), (10, 11));
            }
            other => panic!("{other:?}"),
        }
        assert!(g.add_edge(edge(2, 1, 12)).is_none());
    }

    #[test]
    fn class_level_inversion_between_different_objects() {
        let mut g = LockGraph::new();
        let site = |line| Frame::new("main.f", "main.go", line);
        let e = |from, to, held, acq, goid| LockEdge {
            from,
            to,
            held_at: site(held),
            acquired_at: site(acq),
            goid,
            stack: Vec::new(),
            from_read: false,
            to_read: false,
            held_class: None,
            acquired_class: None,
        };
        // x1 (line 103) then y1 (105); later y2 (105) then x2 (103).
        assert!(g.add_edge(e(1, 2, 103, 105, 1)).is_none());
        let f = g.add_edge(e(3, 4, 105, 103, 2)).expect("class cycle");
        assert!(
            matches!(f, LockFinding::LockOrderInversion { level: "class", .. }),
            "{f:?}"
        );
    }

    #[test]
    fn one_instance_report_per_shape() {
        let mut g = LockGraph::new();
        let field = |name: &str| Some(Arc::<str>::from(name));
        let e = |from, to, held: &str, acq: &str| LockEdge {
            held_class: field(held),
            acquired_class: field(acq),
            ..edge(from, to, 1)
        };
        // Stmt 1 and conn 2 in both orders; then Stmt 3 and conn 4 the same way.
        assert!(g.add_edge(e(1, 2, "Stmt.mu", "conn.mu")).is_none());
        assert!(g.add_edge(e(2, 1, "conn.mu", "Stmt.mu")).is_some());
        assert!(g.add_edge(e(3, 4, "Stmt.mu", "conn.mu")).is_none());
        assert!(g.add_edge(e(4, 3, "conn.mu", "Stmt.mu")).is_none());
        // Another shape on the same objects is reported.
        assert!(g.add_edge(e(1, 5, "Stmt.mu", "DB.mu")).is_none());
        assert!(g.add_edge(e(5, 1, "DB.mu", "Stmt.mu")).is_some());
    }

    #[test]
    fn three_lock_cycle() {
        let mut g = LockGraph::new();
        assert!(g.add_edge(edge(1, 2, 1)).is_none());
        assert!(g.add_edge(edge(2, 3, 2)).is_none());
        let f = g.add_edge(edge(3, 1, 3)).expect("cycle");
        assert!(
            matches!(f, LockFinding::LockOrderInversion { ref locks, .. } if locks == &vec![1, 2, 3])
        );
    }

    #[test]
    fn consistent_order_over_many_locks_is_silent() {
        let mut g = LockGraph::new();
        for a in 1..40u64 {
            for b in a + 1..40 {
                assert!(g.add_edge(edge(a, b, a)).is_none());
            }
        }
        assert_eq!(g.edge_count(), 39 * 38 / 2);
    }

    #[test]
    fn read_read_cycle_is_not_an_inversion() {
        let mut g = LockGraph::new();
        let mut e1 = edge(1, 2, 1);
        e1.from_read = true;
        e1.to_read = true;
        let mut e2 = edge(2, 1, 2);
        e2.from_read = true;
        e2.to_read = true;
        assert!(g.add_edge(e1).is_none());
        assert!(g.add_edge(e2).is_none());
    }

    #[test]
    fn self_deadlock_and_recursive_read() {
        let mut g = LockGraph::new();
        let site = Frame::new("main.f", "main.go", 3);
        assert!(g
            .self_acquire(1, 7, false, site.clone(), vec![], None)
            .is_some());
        assert!(g
            .self_acquire(1, 7, false, site.clone(), vec![], None)
            .is_none());
        // A recursive read lock is reported with no writer waiting, once.
        assert!(g
            .self_acquire(2, 8, true, site.clone(), vec![], None)
            .is_some());
        assert!(g.self_acquire(2, 8, true, site, vec![], Some(3)).is_none());
    }

    #[test]
    fn wait_for_cycle() {
        let mut g = LockGraph::new();
        let link = |goid, lock, holder| WaitLink {
            goid,
            wait_reason: "sync.Mutex.Lock".into(),
            lock,
            holder,
            held_at: None,
            frames: vec![],
        };
        let links = vec![link(1, 100, 2), link(2, 200, 1), link(3, 100, 2)];
        let found = g.deadlocks(&links);
        assert_eq!(found.len(), 1);
        assert!(matches!(&found[0], LockFinding::Deadlock { links } if links.len() == 2));
        assert!(g.deadlocks(&links).is_empty());
    }
}

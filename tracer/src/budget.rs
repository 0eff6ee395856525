//! The locks-mode overhead budget: every lock operation is a probe hit (a trap into
//! the kernel), so the hottest sites are detached for a while when the estimated
//! cost exceeds the budget, and rotated back in later so that every site is observed
//! regularly. Sites are detached by group (the function they are in, closures and
//! deferred calls included), Lock and Unlock together, and the caller purges the
//! kernel's held sets of locks taken in a detached group: a missed unlock would
//! otherwise leave a lock "held" and invent order edges.
use serde::Serialize;
use std::time::{Duration, Instant};

/// Estimated cost of one lock-site hit on the target, measured here: the probe sits
/// on the fast path's conditional branch, which the kernel emulates (1.85 µs per
/// Lock+Unlock pair on the uncontended-mutex bench, program included).
pub const COST_PER_HIT_NS: f64 = 1_000.0;
/// How long a site stays detached before it is rotated back in.
const COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Budget {
    percent: f64,
    /// Group of each site; sites of one group are detached together.
    group: Vec<usize>,
    last_hits: Vec<u64>,
    detached_until: Vec<Option<Instant>>,
    detached_time: Vec<Duration>,
    last_cpu_ns: Option<u64>,
    last_tick: Instant,
    started: Instant,
    /// Highest estimated overhead seen, percent.
    pub peak_estimate: f64,
}

/// What the report says about the budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    pub kind: &'static str,
    pub budget_percent: f64,
    pub sites: usize,
    /// Sites that were detached at some point, with the fraction of the trace they
    /// were observed.
    pub sampled: Vec<(usize, f64)>,
    pub peak_estimate_percent: f64,
}

/// What to do with each site after a tick.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub detach: Vec<usize>,
    pub reattach: Vec<usize>,
}

impl Budget {
    pub fn new(percent: f64, group: Vec<usize>) -> Self {
        let n = group.len();
        let now = Instant::now();
        Self {
            percent,
            group,
            last_hits: vec![0; n],
            detached_until: vec![None; n],
            detached_time: vec![Duration::ZERO; n],
            last_cpu_ns: None,
            last_tick: now,
            started: now,
            peak_estimate: 0.0,
        }
    }

    /// `hits`: cumulative hits per site; `cpu_ns`: the target's cumulative CPU time.
    pub fn tick(&mut self, hits: &[u64], cpu_ns: u64, now: Instant) -> Actions {
        let mut actions = Actions::default();
        let dt = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        for (i, until) in self.detached_until.iter_mut().enumerate() {
            if let Some(t) = *until {
                self.detached_time[i] += dt;
                if now >= t {
                    *until = None;
                    actions.reattach.push(i);
                }
            }
        }
        let deltas: Vec<u64> = hits
            .iter()
            .zip(&self.last_hits)
            .map(|(h, l)| h.saturating_sub(*l))
            .collect();
        self.last_hits = hits.to_vec();
        let Some(last_cpu) = self.last_cpu_ns.replace(cpu_ns) else {
            return actions;
        };
        if self.percent <= 0.0 {
            return actions;
        }
        // The target's CPU time includes the probes' cost; at least one tick's worth.
        let cpu = (cpu_ns.saturating_sub(last_cpu) as f64).max(dt.as_nanos() as f64 * 0.01);
        let cost = |h: u64| h as f64 * COST_PER_HIT_NS;
        let mut total: f64 = deltas.iter().map(|h| cost(*h)).sum();
        let estimate = 100.0 * total / cpu.max(1.0);
        self.peak_estimate = self.peak_estimate.max(estimate);
        let allowed = self.percent / 100.0 * cpu;
        if total <= allowed {
            return actions;
        }
        let groups = self.group.iter().copied().max().map_or(0, |m| m + 1);
        let mut group_hits = vec![0u64; groups];
        for (i, d) in deltas.iter().enumerate() {
            if self.detached_until[i].is_none() {
                group_hits[self.group[i]] += d;
            }
        }
        let mut order: Vec<usize> = (0..groups).filter(|g| group_hits[*g] > 0).collect();
        order.sort_by_key(|g| std::cmp::Reverse(group_hits[*g]));
        for g in order {
            if total <= allowed {
                break;
            }
            total -= cost(group_hits[g]);
            for i in (0..self.group.len()).filter(|i| self.group[*i] == g) {
                if self.detached_until[i].is_none() {
                    self.detached_until[i] = Some(now + COOLDOWN);
                    actions.detach.push(i);
                }
            }
        }
        actions
    }

    pub fn report(&self) -> BudgetReport {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        // Sites detached right now are counted up to now.
        let pending = self.last_tick.elapsed();
        let detached: Vec<Duration> = self
            .detached_time
            .iter()
            .zip(&self.detached_until)
            .map(|(d, u)| if u.is_some() { *d + pending } else { *d })
            .collect();
        BudgetReport {
            kind: "lock_budget",
            budget_percent: self.percent,
            sites: self.group.len(),
            sampled: detached
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.is_zero())
                .map(|(i, d)| (i, (1.0 - d.as_secs_f64() / elapsed).max(0.0)))
                .collect(),
            peak_estimate_percent: self.peak_estimate,
        }
    }
}

/// The group of a site: its function, without closure and defer suffixes, so that a
/// Lock and its (deferred) Unlock are detached together.
pub fn group_key(function: &str) -> &str {
    let mut f = function;
    for marker in [".func", ".deferwrap", ".gowrap"] {
        if let Some(i) = f.find(marker) {
            f = &f[..i];
        }
    }
    f
}

/// utime + stime of a process, in nanoseconds (`/proc/PID/stat`, clock ticks).
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detaches_the_hottest_group_and_rotates_it_back() {
        let t0 = Instant::now();
        // Sites 0 and 2 (a Lock and its Unlock) are one group.
        let mut b = Budget::new(5.0, vec![0, 1, 0]);
        assert_eq!(b.tick(&[0, 0, 0], 0, t0), Actions::default());
        // 1 s of target CPU; group 0 costs 110 ms, group 1 1 ms.
        let a = b.tick(
            &[100_000, 1_000, 10_000],
            1_000_000_000,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(a.detach, vec![0, 2]);
        assert!(b.peak_estimate > 5.0);
        let a = b.tick(
            &[100_000, 2_000, 20_000],
            2_000_000_000,
            t0 + Duration::from_secs(7),
        );
        assert_eq!(a.reattach, vec![0, 2]);
        assert!(a.detach.is_empty());
        let r = b.report();
        assert_eq!(r.sampled.len(), 2);
        assert!(r.sampled[0].1 < 1.0);
    }

    #[test]
    fn no_budget_detaches_nothing() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.0, vec![0]);
        b.tick(&[0], 0, t0);
        assert!(b
            .tick(&[1_000_000], 1_000_000, t0 + Duration::from_secs(1))
            .detach
            .is_empty());
    }

    #[test]
    fn groups_by_function() {
        assert_eq!(group_key("main.(*S).get.deferwrap1"), "main.(*S).get");
        assert_eq!(group_key("main.worker.func2.1"), "main.worker");
        assert_eq!(group_key("main.lockPair"), "main.lockPair");
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(process_cpu_ns(std::process::id()).is_some());
    }
}

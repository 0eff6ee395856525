//! The overhead budget: every probe hit is a trap into the kernel, so when the
//! estimated cost exceeds the budget, probes are detached for a while and put back
//! later, which samples them in time. Sites in one group go off and on together:
//! all lock sites are one group (a Lock seen without its Unlock would leave a lock
//! "held" and invent findings; the caller purges the kernel's held sets when they
//! go off), the park probes another, with a budget of its own. Leak and long-park
//! detection do not need the park probes: the agent reads the parked goroutines
//! from memory every second.
use serde::Serialize;
use std::time::{Duration, Instant};

/// Estimated cost of one lock-site hit. The probe sits on the fast path's
/// conditional branch, which the kernel emulates: 0.9 µs per hit in a tight loop
/// (1.85 µs per Lock+Unlock pair, program included).
pub const LOCK_HIT_NS: f64 = 1_000.0;
/// Estimated cost of one park-probe hit (a gopark or a ready, with its record and
/// stack key): about 5 µs of lost throughput per hit on the HTTP bench, 1.5 µs in
/// a channel ping-pong loop.
pub const PARK_HIT_NS: f64 = 5_000.0;
/// The shortest time lock sites stay detached: re-attaching them replaces one
/// multi-uprobe link, which waits for an RCU grace period.
pub const LOCK_MIN_OFF: Duration = Duration::from_secs(1);
/// The shortest time lock sites stay attached once on.
pub const LOCK_MIN_ON: Duration = Duration::from_millis(300);
/// The shortest time the park probes stay detached.
pub const PARK_MIN_OFF: Duration = Duration::from_millis(200);
/// The shortest time the park probes stay attached.
pub const PARK_MIN_ON: Duration = Duration::from_millis(300);
/// The longest: every site is observed at least this often.
const MAX_OFF: Duration = Duration::from_secs(30);

/// One unit the budget turns off and on.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// Sites of one group are detached together.
    pub group: usize,
    /// Estimated cost of one hit, ns.
    pub cost_ns: f64,
    pub min_off: Duration,
    /// Once attached, stays so at least this long: each switch costs the target
    /// too (breakpoints written into and out of its text).
    pub min_on: Duration,
}

#[derive(Debug)]
pub struct Budget {
    percent: f64,
    /// Group of each site; sites of one group are detached together.
    group: Vec<usize>,
    /// Estimated cost of a hit of each site, ns.
    cost_ns: Vec<f64>,
    min_off: Vec<Duration>,
    min_on: Vec<Duration>,
    /// Since when each site has been attached.
    on_since: Vec<Instant>,
    last_hits: Vec<u64>,
    detached_until: Vec<Option<Instant>>,
    detached_time: Vec<Duration>,
    last_cpu_ns: Option<u64>,
    last_fixed_ns: u64,
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
    pub fn new(percent: f64, sites: Vec<Site>) -> Self {
        let n = sites.len();
        let now = Instant::now();
        Self {
            percent,
            group: sites.iter().map(|s| s.group).collect(),
            cost_ns: sites.iter().map(|s| s.cost_ns).collect(),
            min_off: sites.iter().map(|s| s.min_off).collect(),
            min_on: sites.iter().map(|s| s.min_on).collect(),
            on_since: vec![now; n],
            last_hits: vec![0; n],
            detached_until: vec![None; n],
            detached_time: vec![Duration::ZERO; n],
            last_cpu_ns: None,
            last_fixed_ns: 0,
            last_tick: now,
            started: now,
            peak_estimate: 0.0,
        }
    }

    /// `hits`: cumulative hits per site; `cpu_ns`: the target's cumulative CPU time;
    /// `fixed_ns`: cumulative cost these sites cannot shed but must leave room for
    /// (the agent's time on records: on a busy host it is CPU the target does not
    /// get; and, for the park probes, the lock sites' estimated cost).
    pub fn tick(&mut self, hits: &[u64], cpu_ns: u64, fixed_ns: u64, now: Instant) -> Actions {
        let fixed = fixed_ns.saturating_sub(std::mem::replace(&mut self.last_fixed_ns, fixed_ns));
        let mut actions = Actions::default();
        let dt = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        for (i, until) in self.detached_until.iter_mut().enumerate() {
            if let Some(t) = *until {
                self.detached_time[i] += dt;
                if now >= t {
                    *until = None;
                    self.on_since[i] = now;
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
        // The target's CPU time includes the probes' cost. Counted as at least a
        // tenth of a core: a nearly idle target is not slowed by a few traps, and
        // its CPU time, in 10 ms ticks, says nothing at this scale.
        let cpu = (cpu_ns.saturating_sub(last_cpu) as f64).max(dt.as_nanos() as f64 * 0.1);
        let cost: Vec<f64> = deltas
            .iter()
            .zip(&self.cost_ns)
            .map(|(h, c)| *h as f64 * c)
            .collect();
        let mut total: f64 = cost.iter().sum();
        // Fixed for this tick; only these sites can give.
        total += fixed as f64;
        let estimate = 100.0 * total / cpu.max(1.0);
        self.peak_estimate = self.peak_estimate.max(estimate);
        let allowed = self.percent / 100.0 * cpu;
        if total <= allowed {
            return actions;
        }
        let groups = self.group.iter().copied().max().map_or(0, |m| m + 1);
        let mut group_cost = vec![0f64; groups];
        for (i, c) in cost.iter().enumerate() {
            let settled = now.saturating_duration_since(self.on_since[i]) >= self.min_on[i];
            if self.detached_until[i].is_none() && settled {
                group_cost[self.group[i]] += c;
            }
        }
        let mut order: Vec<usize> = (0..groups).filter(|g| group_cost[*g] > 0.0).collect();
        order.sort_by(|a, b| group_cost[*b].total_cmp(&group_cost[*a]));
        for g in order {
            if total <= allowed {
                break;
            }
            total -= group_cost[g];
            // Off for long enough that, over a cycle, the cost averages to the
            // budget: on for t at `estimate`, off for t * (estimate / budget - 1).
            let over = (estimate / self.percent - 1.0).max(0.0);
            for i in (0..self.group.len()).filter(|i| self.group[*i] == g) {
                if self.detached_until[i].is_none() {
                    let on_for = now.saturating_duration_since(self.on_since[i]);
                    let off = on_for
                        .mul_f64(over.min(1e6))
                        .clamp(self.min_off[i], MAX_OFF.max(self.min_off[i]));
                    self.detached_until[i] = Some(now + off);
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
            kind: "budget",
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
        let site = |group| Site {
            group,
            cost_ns: 1000.0,
            min_off: LOCK_MIN_OFF,
            min_on: Duration::ZERO,
        };
        let mut b = Budget::new(5.0, vec![site(0), site(1), site(0)]);
        assert_eq!(b.tick(&[0, 0, 0], 0, 0, t0), Actions::default());
        // 1 s of target CPU; group 0 costs 110 ms, group 1 1 ms.
        let a = b.tick(
            &[100_000, 1_000, 10_000],
            1_000_000_000,
            0,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(a.detach, vec![0, 2]);
        assert!(b.peak_estimate > 5.0);
        let a = b.tick(
            &[100_000, 2_000, 20_000],
            2_000_000_000,
            0,
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
        let mut b = Budget::new(
            0.0,
            vec![Site {
                group: 0,
                cost_ns: 1000.0,
                min_off: LOCK_MIN_OFF,
                min_on: Duration::ZERO,
            }],
        );
        b.tick(&[0], 0, 0, t0);
        assert!(b
            .tick(&[1_000_000], 1_000_000, 0, t0 + Duration::from_secs(1))
            .detach
            .is_empty());
    }

    #[test]
    fn costliest_group_goes_first_not_the_most_hit() {
        let t0 = Instant::now();
        // Site 0: a lock site hit 20,000 times (20 ms); site 1: the park probes hit
        // 15,000 times (75 ms). 1 s of CPU, 5% budget: dropping the parks suffices.
        let lock = Site {
            group: 0,
            cost_ns: LOCK_HIT_NS,
            min_off: LOCK_MIN_OFF,
            min_on: Duration::ZERO,
        };
        let parks = Site {
            group: 1,
            cost_ns: PARK_HIT_NS,
            min_off: PARK_MIN_OFF,
            min_on: Duration::ZERO,
        };
        let mut b = Budget::new(5.0, vec![lock, parks]);
        b.tick(&[0, 0], 0, 0, t0);
        let a = b.tick(
            &[20_000, 15_000],
            1_000_000_000,
            0,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(a.detach, vec![1]);
        // On for 1 s at 9.5% against 5%: off for 0.9 s, then back.
        let a = b.tick(
            &[20_000, 15_000],
            1_100_000_000,
            0,
            t0 + Duration::from_millis(1800),
        );
        assert!(a.reattach.is_empty());
        let a = b.tick(
            &[20_000, 15_000],
            1_200_000_000,
            0,
            t0 + Duration::from_millis(2000),
        );
        assert_eq!(a.reattach, vec![1]);
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(process_cpu_ns(std::process::id()).is_some());
    }
}

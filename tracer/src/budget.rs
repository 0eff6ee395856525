//! The overhead budget: every probe hit is a trap into the kernel, so when the
//! estimated cost exceeds the budget, probes are detached for a while and put back
//! later, which samples them in time.
//!
//! Two units are switched, each with a budget of its own: all lock sites together
//! (a Lock seen without its Unlock would leave a lock "held" and invent findings;
//! the caller purges the kernel's held sets around each switch), and the park
//! probes. Leak and long-park detection do not need the park probes: the agent
//! reads the parked goroutines from memory every second.
//!
//! The budget is an account, not a rate limit on the last tick: the target's CPU
//! time earns credit at the budget's rate, the probes' estimated cost is charged
//! to it, and a unit goes off when the account is overdrawn and back on when it
//! can pay in advance for its shortest on-period and what trails it. So the cost
//! over any stretch of the run stays within the budget plus the first on-period
//! (the probes are attached on), also for a short run whose first moments would
//! otherwise be traced at full cost.
//!
//! While a unit is on, the account keeps a reserve for taking it off: the
//! detach's CPU time and the target trapping while it runs. The lock sites'
//! account is also enforced in the kernel: each tick the agent hands it the hits
//! the credit above the reserve pays for, and the hit that spends them wakes the
//! agent, which detaches the sites at once. Without it, a service going from
//! idle to loaded with the sites on trapped at full cost for a tick and a half,
//! then through a detach: on the bench, 4% of a 3 s window at a 3% budget.
use serde::Serialize;
use std::time::{Duration, Instant};

/// Estimated cost of one lock-site hit. Measured on the HTTP bench with every lock
/// site on: 31 hits per request, 168 µs more machine time per request (parks
/// included), about 5 µs per hit. A tight Lock/Unlock loop costs only 0.9 µs per
/// hit (the kernel emulates the probed branch); the budget errs on the side of
/// the target.
pub const LOCK_HIT_NS: f64 = 5_000.0;
/// Estimated cost of one park-probe hit (a gopark or a ready, with its record and
/// stack key): about 4-5 µs of lost throughput per hit on the HTTP bench, 1.5 µs
/// in a channel ping-pong loop.
pub const PARK_HIT_NS: f64 = 5_000.0;
/// The shortest time lock sites stay detached: re-attaching them replaces one
/// multi-uprobe link, which waits for an RCU grace period.
pub const LOCK_MIN_OFF: Duration = Duration::from_secs(1);
/// The on-period the account saves for before the lock sites come back (one
/// tick at the last period's rate): under load all the sites cost more in one
/// tick than the budget saves in a second. They stay on for as long as the
/// kernel's allowance lasts, which may be shorter. How often they switch is set
/// by the account (each on-period is paid in advance).
pub const LOCK_MIN_ON: Duration = Duration::from_millis(20);
/// The shortest time the park probes stay detached.
pub const PARK_MIN_OFF: Duration = Duration::from_millis(200);
/// The shortest time the park probes stay attached (one budget tick): a program
/// that parks a million times a second pays for this at up to 30x its cost.
pub const PARK_MIN_ON: Duration = Duration::from_millis(20);
/// How often the budget is checked.
pub const TICK: Duration = Duration::from_millis(20);
/// The peak estimate is taken over this much on-time: the target's CPU time comes
/// in 10 ms clock ticks, too coarse for one budget tick.
const ESTIMATE_WINDOW: Duration = Duration::from_millis(200);
/// The longest: probes are observed at least this often, whatever they cost.
const MAX_OFF: Duration = Duration::from_secs(30);
/// The most credit that can be saved, in seconds of target CPU time at the
/// budget's rate (at 5%, 25 ms of probe cost; not reduced by [`MARGIN`], which
/// is about the rate, not the burst), unless the next on-period costs more: too
/// little for an idle stretch to buy a long burst. It is also the starting
/// allowance: at 3%, 15 ms, enough for the reserve of 200 lock sites.
const CREDIT_CPU_S: f64 = 0.5;
/// The account earns at this share of the budget's rate: the budget is a ceiling,
/// the cost per hit it charges is an estimate (on the HTTP bench, 3.6 to 5.8 µs
/// per park-probe hit were measured against the 5 µs charged), and the switches
/// overshoot what was granted. At 0.8, a 3% budget's own estimate of a 3 s
/// window on the HTTP bench was 2.7% (parks) to 3.0-3.2% (locks), and the
/// measured loss about as much; at 0.6, 2.3% and 2.5%, with losses of 2.9% ±
/// 1.0% and 2.3% ± 1.8% (20 adjacent pairs each). Most of the rest is the
/// starting allowance, spent in a short window's first tens of milliseconds.
const MARGIN: f64 = 0.6;
/// The target's CPU time is counted as at least a tenth of a core: a nearly idle
/// target is not slowed by a few traps, and its CPU time, in 10 ms ticks, says
/// nothing at this scale.
const CPU_FLOOR: f64 = 0.1;

/// What the budget switches: one set of probes, on or off together.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    /// Its hits are counted against an allowance in the kernel, which wakes
    /// the agent when spent (see [`Budget::allowance`]): an on-period lasts as
    /// long as the credit, not at least `min_on`.
    pub kernel_allowance: bool,
    /// For the debug log.
    pub name: &'static str,
    /// Estimated cost of one hit, ns.
    pub cost_ns: f64,
    pub min_off: Duration,
    /// Once attached, stays so at least this long: each switch costs the target
    /// too (breakpoints written into and out of its text).
    pub min_on: Duration,
    /// The agent's time to attach or detach the unit, ns, until one switch
    /// has been measured (see [`switch_estimate_ns`]).
    pub switch_ns: f64,
}

/// The agent's CPU time to attach or detach `probes` uprobes, before it has been
/// measured: the kernel writes each breakpoint into the target's text. Measured
/// on the bench machine under load: 2-8 ms for 200 lock sites, 9-20 ms for
/// 3,200. The calls last 2-5 times as long (12-130 ms), waiting for the
/// target's memory map and for an RCU grace period; a site traps until its
/// breakpoint is out, and those hits are counted like any other.
pub fn switch_estimate_ns(probes: usize) -> f64 {
    2e6 + probes as f64 * 6_000.0
}

/// What to do with the unit after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Off,
    On,
}

#[derive(Debug)]
pub struct Budget {
    percent: f64,
    unit: Unit,
    on: bool,
    /// Since when the unit has been in its current state.
    since: Instant,
    /// Probe cost the account can still pay, ns (negative: overdrawn).
    credit_ns: f64,
    /// Estimated cost per second of the last on-period, ns: what the next one
    /// will have to pay for.
    on_cost_rate: f64,
    /// An on-period has been measured (`on_cost_rate` is known).
    rate_known: bool,
    /// Cost charged in the first tick after the last switch-off: hits while the
    /// probes were still going out (a 200-site link takes 10-20 ms), and hits
    /// of the on-period counted late. The next on-period pays for it too.
    tail_ns: f64,
    /// The first off tick is still to come.
    in_tail: bool,
    /// Cost and duration of the current on-period.
    period_cost_ns: f64,
    /// Cost of the last on-period (its hits, ns).
    last_period_cost: f64,
    last_hits: u64,
    last_cpu_ns: Option<u64>,
    last_fixed_ns: u64,
    last_tick: Instant,
    started: Instant,
    off_time: Duration,
    switches: u64,
    /// Cost, CPU time and length of the current estimate window, which counts
    /// on-time only: the estimate says what the probes cost when on.
    window: (f64, f64, Duration),
    /// Highest estimated overhead over one window, percent.
    pub peak_estimate: f64,
    /// Cost charged and the target's CPU time over the whole trace, ns.
    total: (f64, f64),
    /// The agent's CPU time in the system calls that switched the unit, ns,
    /// and how many calls that was.
    switch_ns: u64,
    switch_calls: u64,
    /// CPUs the target may run on: how many may trap at once while the unit
    /// is being detached.
    cpus: f64,
    /// How busy the host's CPUs were lately (0 to 1): a switch's time costs the
    /// target in that proportion (see [`HostLoad`]).
    busy: f64,
    /// The target's CPU time per second lately, ns (a moving average): what an
    /// on-period may cost at most, before one has been measured.
    cpu_rate: f64,
    /// What the kernel allowed the current on-period (its credit above the
    /// reserve when it began), ns.
    granted_ns: f64,
    /// What the last on-period cost beyond what the kernel allowed it, ns: hits
    /// while the agent was still in the attach or already in the detach, or
    /// waking up. Kept in the reserve.
    overshoot_ns: f64,
    /// Wall time of the switches so far, ns: hits go on while they last.
    switch_wall_ns: u64,
}

/// What the report says about the budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    pub budget_percent: f64,
    /// Share of the trace the unit was attached.
    pub on_fraction: f64,
    /// Times it was detached.
    pub switches_off: u64,
    pub peak_estimate_percent: f64,
    /// Cost charged over the trace against the target's CPU time, percent:
    /// what tracing is estimated to have cost it, the agent included.
    pub charged_percent: f64,
    /// The agent's CPU time attaching and detaching the unit's probes, ns (in
    /// the charged cost: the kernel writes the breakpoints in those calls).
    pub switch_ns: u64,
}

impl Budget {
    pub fn new(percent: f64, unit: Unit) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        Self::with_cpus(percent, unit, cpus)
    }

    /// A budget for a target that may run on `cpus` CPUs.
    fn with_cpus(percent: f64, unit: Unit, cpus: f64) -> Self {
        let now = Instant::now();
        let mut b = Self {
            percent,
            unit,
            on: true,
            since: now,
            // An allowance to start with (what the account may save): the first
            // on-period, from the attach, is paid from it when it can be (see
            // `affordable_at_start`); its probe hits are paid after the fact, so a
            // short run costs the budget plus one shortest on-period.
            credit_ns: Self::cap(percent),
            on_cost_rate: 0.0,
            rate_known: false,
            tail_ns: 0.0,
            in_tail: false,
            period_cost_ns: 0.0,
            last_period_cost: 0.0,
            last_hits: 0,
            last_cpu_ns: None,
            last_fixed_ns: 0,
            last_tick: now,
            started: now,
            off_time: Duration::ZERO,
            switches: 0,
            window: (0.0, 0.0, Duration::ZERO),
            peak_estimate: 0.0,
            total: (0.0, 0.0),
            switch_ns: 0,
            switch_calls: 0,
            cpus,
            busy: 1.0,
            cpu_rate: 0.0,
            granted_ns: 0.0,
            overshoot_ns: 0.0,
            switch_wall_ns: 0,
        };
        // The first on-period, from the attach, is granted the starting credit.
        b.granted_ns = (b.credit_ns - b.reserve()).max(0.0);
        b
    }

    /// How busy the host's CPUs are (0 to 1), for the cost of the next switches.
    pub fn set_busy(&mut self, busy: f64) {
        self.busy = busy.clamp(0.0, 1.0);
    }

    /// Whether the unit may start attached: the reserve for taking it off
    /// must fit in the starting allowance. A unit of thousands of lock sites
    /// does not: it starts detached, and comes on once the account can pay for
    /// an on-period and its switches, like every later one.
    pub fn affordable_at_start(&self) -> bool {
        self.percent <= 0.0 || self.credit_ns >= self.reserve()
    }

    /// What taking the unit off may cost, kept in the account while it is on:
    /// the detach's CPU time on a host whose CPUs are all busy (load can come
    /// at any moment), and as much again on each CPU of the target trapping
    /// until its breakpoints are gone.
    fn reserve(&self) -> f64 {
        self.switch_agent_ns() * (1.0 + self.cpus) + self.overshoot_ns
    }

    /// Hits the unit may take before the account is down to its reserve, for
    /// a unit whose allowance is kept in the kernel; None: no limit (no
    /// budget, or the unit is off).
    pub fn allowance(&self) -> Option<u64> {
        if self.percent <= 0.0 || !self.on || !self.unit.kernel_allowance {
            return None;
        }
        Some(((self.credit_ns - self.reserve()) / self.unit.cost_ns).max(0.0) as u64)
    }

    /// Starts the unit detached (see [`Self::affordable_at_start`]).
    pub fn start_off(&mut self, now: Instant) {
        self.on = false;
        self.since = now;
        self.last_tick = now;
    }

    /// One switch's cost to the target: the agent's time for it as far as the
    /// host is busy.
    fn switch_cost(&self) -> f64 {
        self.switch_agent_ns() * self.busy
    }

    /// The agent's CPU time for one switch: the average measured, or the
    /// unit's estimate before any.
    fn switch_agent_ns(&self) -> f64 {
        if self.switch_calls > 0 {
            self.switch_ns as f64 / self.switch_calls as f64
        } else {
            self.unit.switch_ns
        }
    }

    fn cap(percent: f64) -> f64 {
        percent / 100.0 * CREDIT_CPU_S * 1e9
    }

    /// `hits`: cumulative hits of the unit; `cpu_ns`: the target's cumulative CPU
    /// time; `fixed_ns`: cumulative cost the unit cannot shed but must leave room
    /// for (the agent's time on records: on a busy host it is CPU the target does
    /// not get; and, for the park probes, the lock sites' estimated cost).
    pub fn tick(&mut self, hits: u64, cpu_ns: u64, fixed_ns: u64, now: Instant) -> Option<Switch> {
        let fixed = fixed_ns.saturating_sub(std::mem::replace(&mut self.last_fixed_ns, fixed_ns));
        let hits_d = hits.saturating_sub(std::mem::replace(&mut self.last_hits, hits));
        let dt = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        if !self.on {
            self.off_time += dt;
        }
        let last_cpu = self.last_cpu_ns.replace(cpu_ns)?;
        if self.percent <= 0.0 {
            return None;
        }
        // The target's CPU time includes the probes' cost.
        let cpu = (cpu_ns.saturating_sub(last_cpu) as f64).max(dt.as_nanos() as f64 * CPU_FLOOR);
        if dt > Duration::ZERO {
            let rate = cpu / dt.as_secs_f64();
            self.cpu_rate = if self.cpu_rate == 0.0 {
                rate
            } else {
                0.8 * self.cpu_rate + 0.2 * rate
            };
        }
        let cost = hits_d as f64 * self.unit.cost_ns + fixed as f64;
        self.total.0 += cost;
        self.total.1 += cpu;
        if self.on {
            self.window.0 += cost;
            self.window.1 += cpu;
            self.window.2 += dt;
            if self.window.2 >= ESTIMATE_WINDOW {
                let (c, t, _) = self.window;
                self.peak_estimate = self.peak_estimate.max(100.0 * c / t.max(1.0));
                self.window = (0.0, 0.0, Duration::ZERO);
            }
        }
        if !self.on && std::mem::take(&mut self.in_tail) {
            self.tail_ns = hits_d as f64 * self.unit.cost_ns;
            if self.unit.kernel_allowance {
                let spent = self.last_period_cost + self.tail_ns;
                self.overshoot_ns = (spent - self.granted_ns).max(0.0);
            }
        }
        // Back on when the account can pay for the shortest on-period at the last
        // one's rate, with its tail and its two switches (the fixed cost keeps
        // being charged meanwhile).
        let reserve = self.reserve();
        let next = self.next_period_cost() + reserve;
        let cap = Self::cap(self.percent).max(next);
        self.credit_ns = (self.credit_ns + self.percent / 100.0 * MARGIN * cpu - cost).min(cap);
        let in_state = now.saturating_duration_since(self.since);
        log::debug!(
            "budget {}: on={} credit={:.0} ns cpu={cpu:.0} ns cost={cost:.0} ns for {in_state:?}",
            self.unit.name,
            self.on,
            self.credit_ns
        );
        if self.on {
            let shed = hits_d as f64 * self.unit.cost_ns;
            self.period_cost_ns += shed;
            // Off as soon as the next tick would take the account into its
            // reserve: under load, all lock sites cost more in one tick than the
            // whole credit, and waiting for the overdraft doubled each on-period.
            // The rate is at least the last on-period's (sites go in one by one:
            // the first tick sees part of it), and ticks come up to half a tick
            // late. A unit whose allowance the kernel keeps goes off when it is
            // spent, whatever its shortest on-period.
            let rate = (shed / dt.as_secs_f64().max(1e-3)).max(self.on_cost_rate);
            let next_tick = rate * 1.5 * TICK.as_secs_f64();
            let held = in_state < self.unit.min_on && !self.unit.kernel_allowance;
            if self.credit_ns - next_tick >= reserve || held {
                return None;
            }
            self.on_cost_rate = self.period_cost_ns / in_state.as_secs_f64().max(1e-3);
            self.last_period_cost = self.period_cost_ns;
            self.rate_known = true;
            self.switch(false, now);
            return Some(Switch::Off);
        }
        let due = in_state >= MAX_OFF.max(self.unit.min_off);
        if due || (in_state >= self.unit.min_off && self.credit_ns >= next) {
            self.granted_ns = (self.credit_ns - reserve).max(0.0);
            self.switch(true, now);
            return Some(Switch::On);
        }
        None
    }

    /// What the next on-period will cost, to be saved (above the reserve)
    /// before it starts: the shortest on-period at the last one's rate, its
    /// tail and its two switches. Before any on-period has been measured (a
    /// unit that started detached: thousands of lock sites on a busy service)
    /// its rate is unknown, and may be all of the target's CPU (every request
    /// trapping dozens of times); it is taken to be, for as long as the period
    /// really lasts: its shortest length and its two switches, and, unless the
    /// kernel ends it when its allowance is spent, the one and a half ticks the
    /// off decision may come late.
    fn next_period_cost(&self) -> f64 {
        let switches = 2.0 * self.switch_cost();
        if self.rate_known {
            return self.on_cost_rate * self.unit.min_on.as_secs_f64() + self.tail_ns + switches;
        }
        let mut wall = self.unit.min_on.as_secs_f64() + 2.0 * self.switch_wall_s();
        if !self.unit.kernel_allowance {
            wall += 1.5 * TICK.as_secs_f64();
        }
        self.cpu_rate * wall + switches
    }

    /// The switch just decided took the agent `cpu_ns` of CPU time (charged at
    /// the next tick, as part of the caller's fixed cost, and reported) over
    /// `wall_ns`.
    pub fn switched_in(&mut self, cpu_ns: u64, wall_ns: u64) {
        self.switch_ns += cpu_ns;
        self.switch_wall_ns += wall_ns;
        self.switch_calls += 1;
    }

    /// How long one switch lasts, s: the average measured, or before any, 4
    /// times its CPU estimate (on the bench machine, under load, the calls
    /// lasted 2-5 times their CPU time).
    fn switch_wall_s(&self) -> f64 {
        if self.switch_calls > 0 {
            self.switch_wall_ns as f64 / self.switch_calls as f64 / 1e9
        } else {
            4.0 * self.unit.switch_ns / 1e9
        }
    }

    /// The agent's CPU time in this unit's switches so far, ns.
    pub fn switch_ns(&self) -> u64 {
        self.switch_ns
    }

    fn switch(&mut self, on: bool, now: Instant) {
        self.on = on;
        self.since = now;
        self.period_cost_ns = 0.0;
        if !on {
            self.switches += 1;
            self.in_tail = true;
        }
    }

    #[cfg(test)]
    fn is_on(&self) -> bool {
        self.on
    }

    pub fn report(&self) -> BudgetReport {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        // Off right now: counted up to now.
        let pending = if self.on {
            Duration::ZERO
        } else {
            self.last_tick.elapsed()
        };
        let off = (self.off_time + pending).as_secs_f64();
        // A run shorter than one window still gets an estimate.
        let (c, t, _) = self.window;
        let peak = if t > 0.0 {
            self.peak_estimate.max(100.0 * c / t)
        } else {
            self.peak_estimate
        };
        BudgetReport {
            budget_percent: self.percent,
            on_fraction: (1.0 - off / elapsed).clamp(0.0, 1.0),
            switches_off: self.switches,
            peak_estimate_percent: peak,
            charged_percent: 100.0 * self.total.0 / self.total.1.max(1.0),
            switch_ns: self.switch_ns,
        }
    }
}

/// How busy the host's CPUs were since the last sample, from `/proc/stat`:
/// the agent's time costs the target only as far as the CPUs are all taken
/// (on an idle core it runs beside the target, not instead of it).
#[derive(Debug, Default)]
pub struct HostLoad {
    /// (busy, total) jiffies at the last sample.
    last: Option<(u64, u64)>,
    /// The busy share over the last second or so (a moving average of the
    /// samples: one budget tick is two clock ticks per CPU, too coarse alone).
    average: Option<f64>,
}

impl HostLoad {
    /// The busy share of all CPUs since the last call (0 to 1); None the first
    /// time, or when `/proc/stat` cannot be read.
    pub fn sample(&mut self) -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let now = busy_total(&stat)?;
        let (b0, t0) = self.last.replace(now)?;
        let total = now.1.saturating_sub(t0);
        let share = (total > 0)
            .then(|| (now.0.saturating_sub(b0) as f64 / total as f64).clamp(0.0, 1.0))?;
        self.average = Some(self.average.map_or(share, |a| 0.95 * a + 0.05 * share));
        Some(share)
    }

    /// The busy share over the last second or so.
    pub fn average(&self) -> Option<f64> {
        self.average
    }
}

/// (busy, total) jiffies of the `cpu` line: idle and iowait are not busy.
fn busy_total(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some((total - v[3] - v[4], total))
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

    const MS: u64 = 1_000_000;

    fn unit() -> Unit {
        Unit {
            name: "test",
            kernel_allowance: false,
            cost_ns: 1000.0,
            min_off: Duration::from_millis(200),
            min_on: Duration::from_millis(100),
            switch_ns: 0.0,
        }
    }

    /// Drives a budget for `secs` with a target using one core, whose probes are
    /// hit `rate` times per second while on, checked every 100 ms; returns the
    /// share of CPU the probes cost and the budget.
    fn simulate(percent: f64, rate: u64, secs: u64) -> (f64, Budget) {
        simulate_unit(unit(), Duration::from_millis(100), percent, rate, secs)
    }

    /// `simulate` with a unit and a check interval of its own.
    fn simulate_unit(
        unit: Unit,
        every: Duration,
        percent: f64,
        rate: u64,
        secs: u64,
    ) -> (f64, Budget) {
        let mut b = Budget::new(percent, unit);
        let t0 = Instant::now();
        let ticks_per_s = (1.0 / every.as_secs_f64()).round() as u64;
        let per_tick = rate / ticks_per_s;
        let (mut hits, mut cpu) = (0u64, 0u64);
        let mut cost = 0.0;
        b.tick(0, 0, 0, t0);
        for tick in 1..=secs * ticks_per_s {
            if b.is_on() {
                hits += per_tick;
                cost += per_tick as f64 * unit.cost_ns;
            }
            cpu += every.as_nanos() as u64;
            b.tick(hits, cpu, 0, t0 + every * tick as u32);
        }
        (cost / cpu as f64 * 100.0, b)
    }

    #[test]
    fn average_cost_stays_within_the_budget() {
        // Probes that would cost 50% of the target: sampled down to 5% (at
        // the account's rate, 5% x 0.6).
        let (cost, b) = simulate(5.0, 500_000, 60);
        assert!(cost <= 5.0 * MARGIN + 0.2, "cost {cost}%");
        assert!(
            cost > 5.0 * MARGIN - 0.5,
            "cost {cost}%: sampled more than needed"
        );
        let r = b.report();
        assert!(r.switches_off > 5, "{r:?}");
        assert!(r.peak_estimate_percent >= 49.0, "{r:?}");
    }

    #[test]
    fn a_short_run_pays_for_its_start() {
        // 2 s of a target whose probes would cost 200%: the first on-period and
        // what it earns meanwhile are all it gets.
        let (cost, b) = simulate(5.0, 2_000_000, 2);
        assert!(cost <= 15.0, "cost {cost}%");
        assert!(cost > 5.0, "cost {cost}%: the first period is paid in full");
        assert!(b.report().on_fraction < 0.2, "{:?}", b.report());
    }

    #[test]
    fn a_hot_unit_pays_for_each_on_period_in_advance() {
        // All lock sites of a busy service: twice the target's CPU when on,
        // checked every 20 ms. A 4 s run stays within the budget plus the first
        // on-period (one tick: 40 ms of cost, 1% of 4 s).
        let hot = Unit {
            min_on: TICK,
            min_off: Duration::from_secs(1),
            ..unit()
        };
        // 2 million hits a second at 1 µs each.
        let (cost, _) = simulate_unit(hot, TICK, 5.0, 2_000_000, 4);
        assert!(cost <= 5.0, "cost {cost}%");
        assert!(cost > 2.5, "cost {cost}%: sampled more than needed");
    }

    #[test]
    fn cheap_probes_stay_on() {
        let (_, b) = simulate(5.0, 10_000, 10);
        assert_eq!(b.report().switches_off, 0);
        assert!(b.report().on_fraction > 0.99);
    }

    #[test]
    fn no_budget_switches_nothing() {
        let (cost, b) = simulate(0.0, 2_000_000, 2);
        assert!(cost > 100.0);
        assert_eq!(b.report().switches_off, 0);
    }

    #[test]
    fn comes_back_after_max_off_whatever_the_cost() {
        let mut b = Budget::new(5.0, unit());
        let t0 = Instant::now();
        b.tick(0, 0, 0, t0);
        // 10 s of probe cost in the first 100 ms: the account is deep in the red.
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(b.tick(10_000_000, 100 * MS, 0, at(100)), Some(Switch::Off));
        assert_eq!(b.tick(10_000_000, 200 * MS, 0, at(20_000)), None);
        assert_eq!(
            b.tick(10_000_000, 300 * MS, 0, at(30_200)),
            Some(Switch::On)
        );
    }

    #[test]
    fn fixed_cost_keeps_the_unit_off() {
        let mut b = Budget::new(5.0, unit());
        let t0 = Instant::now();
        b.tick(0, 0, 0, t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(b.tick(1_000_000, 100 * MS, 0, at(100)), Some(Switch::Off));
        // The agent's own time (10% of the target's CPU) uses the whole budget.
        for s in 1..20u64 {
            let r = b.tick(1_000_000, s * 1000 * MS, s * 100 * MS, at(s * 1000));
            assert_eq!(r, None, "at {s} s");
        }
    }

    #[test]
    fn thousands_of_sites_start_detached_a_few_do_not() {
        let many = Unit {
            switch_ns: switch_estimate_ns(3_200),
            ..unit()
        };
        let few = Unit {
            switch_ns: switch_estimate_ns(200),
            ..unit()
        };
        // On two CPUs (the bench machine's).
        assert!(!Budget::with_cpus(3.0, many, 2.0).affordable_at_start());
        assert!(Budget::with_cpus(3.0, few, 2.0).affordable_at_start());
        assert!(
            Budget::with_cpus(0.0, many, 2.0).affordable_at_start(),
            "no budget"
        );
    }

    #[test]
    fn an_on_period_pays_for_its_switches_in_advance() {
        // A unit whose hits cost nothing but whose switches take 50 ms of CPU,
        // on a target of one CPU: its reserve (the detach, and the CPU trapping
        // as long) is 100 ms, more than the starting credit (25 ms).
        let u = Unit {
            switch_ns: 50e6,
            ..unit()
        };
        let mut b = Budget::with_cpus(5.0, u, 1.0);
        assert!(!b.affordable_at_start());
        let t0 = Instant::now();
        b.tick(0, 0, 0, t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Left on anyway, it goes off after its shortest on-period; the switch
        // off (50 ms, charged as fixed cost) leaves 19 ms overdrawn; the next
        // comes back once the two switches and the reserve (200 ms) are saved:
        // one core at 5% x 0.6 earns 30 ms a second.
        assert_eq!(b.tick(0, 100 * MS, 0, at(100)), Some(Switch::Off));
        b.switched_in(50 * MS, 50 * MS);
        assert_eq!(b.tick(0, 200 * MS, 50 * MS, at(200)), None);
        assert_eq!(b.tick(0, 7_300 * MS, 50 * MS, at(7_300)), None);
        assert_eq!(b.tick(0, 7_600 * MS, 50 * MS, at(7_600)), Some(Switch::On));
    }

    #[test]
    fn the_kernel_allowance_is_the_credit_above_the_reserve() {
        let u = Unit {
            kernel_allowance: true,
            switch_ns: 2e6,
            ..unit()
        };
        let mut b = Budget::with_cpus(5.0, u, 1.0);
        // 25 ms of credit, 4 ms of reserve (a 2 ms detach, and one CPU
        // trapping as long): 21 ms at 1 µs a hit.
        assert!(b.affordable_at_start());
        assert_eq!(b.allowance(), Some(21_000));
        let t0 = Instant::now();
        b.tick(0, 0, 0, t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Spent 20 ms in (the kernel wakes the agent): off at once, before its
        // shortest on-period (100 ms) is over.
        assert_eq!(b.tick(21_000, 20 * MS, 0, at(20)), Some(Switch::Off));
        assert_eq!(b.allowance(), None);
        // 10,000 more hits while it went out: 10 ms beyond what the kernel
        // allowed, kept in the reserve from then on (with the detach measured).
        b.switched_in(3 * MS, 10 * MS);
        b.tick(31_000, 40 * MS, 3 * MS, at(40));
        assert!((b.reserve() - 16e6).abs() < 1e3, "{}", b.reserve());
    }

    #[test]
    fn a_unit_started_detached_saves_for_all_of_the_targets_cpu() {
        // Started detached, the unit's on-period cost is unknown: it may take
        // all the target's CPU while it lasts (100 ms, a tick and a half and
        // two switches lasting 200 ms each, 4 times their 50 ms of CPU: 530 ms
        // at one core), plus the two switches (100 ms) and the reserve
        // (100 ms): 730 ms, of which the starting allowance is 25 ms and one
        // core at 5% x 0.6 earns 30 ms a second.
        let u = Unit {
            switch_ns: 50e6,
            ..unit()
        };
        let mut b = Budget::with_cpus(5.0, u, 1.0);
        let t0 = Instant::now();
        b.start_off(t0);
        b.tick(0, 0, 0, t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(b.tick(0, 23_400 * MS, 0, at(23_400)), None);
        assert_eq!(b.tick(0, 23_600 * MS, 0, at(23_600)), Some(Switch::On));
    }

    #[test]
    fn host_busy_share_from_proc_stat() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n";
        assert_eq!(busy_total(stat), Some((150, 1000)));
        assert_eq!(busy_total("intr 1 2\n"), None);
        let mut h = HostLoad::default();
        assert_eq!(h.sample(), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(process_cpu_ns(std::process::id()).is_some());
    }
}

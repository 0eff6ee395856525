//! The budget's side of the loop: probe hits against the target's CPU time, the
//! park probes and lock sites switched as the budgets say, and the deadlock check
//! over the kernel's held sets (before a switch purges them too). The budget's
//! arithmetic is `crate::budget`; the lock analysis `tracer_analysis::lockwatch`.
use super::Session;
use crate::budget::{self, Budget, Switch};
use crate::clock::{monotonic_ns, thread_cpu_ns};
use crate::probes::Probes;
use tracer_analysis::lockwatch;

impl Session<'_> {
    /// Goroutines that ended holding a lock (a missing Unlock), from the kernel's
    /// held sets and the last two reads (or the last, `settled`: read with the
    /// target held at its exit); their sets are then dropped.
    pub(super) fn check_exited_holding(&mut self, settled: bool) {
        let Some(probes) = self.probes.as_ref().filter(|p| p.lock_sites() > 0) else {
            return;
        };
        let held = probes.held_sets();
        let sites = self.decoder.lock_sites();
        let site = |i: u32| {
            sites
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| tracer_analysis::Frame::new("?", "?", 0))
        };
        let (found, done) = self
            .locks
            .exited_holding(&self.last_alive, &held, site, settled);
        for f in &found {
            self.out.lock(f);
        }
        if let Some(p) = self.probes.as_mut().filter(|_| !done.is_empty()) {
            p.forget_held(&done);
        }
    }

    /// Re-acquisitions of a held lock whose goroutine now hangs on it (or, when
    /// the target has ended, `at_end`, still waited for it).
    pub fn check_self_deadlocks(&mut self, at_end: bool) {
        let found = self
            .locks
            .confirm_self(self.analyzer.model(), monotonic_ns(), at_end);
        for f in &found {
            self.out.lock(f);
        }
    }

    /// Looks for deadlock cycles among the goroutines parked in locks.
    pub fn check_deadlocks(&mut self) {
        let Some(probes) = self.probes.as_ref().filter(|p| p.lock_sites() > 0) else {
            return;
        };
        let held = probes.held_sets();
        let fresh = lockwatch::fresh_read(self.last_snapshot, monotonic_ns());
        let sites = self.decoder.lock_sites();
        let site = |i: u32| {
            sites
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| tracer_analysis::Frame::new("?", "?", 0))
        };
        for f in self
            .locks
            .deadlocks(self.analyzer.model(), held, fresh, site)
        {
            self.out.lock(&f);
        }
    }

    /// Detaches, before the target runs on, the units whose reserve for being
    /// taken off would not fit in the budget's starting allowance (thousands of
    /// lock sites at a small budget): they come on when the account can pay,
    /// like any on-period. The others get their first allowance.
    pub fn start_units(&mut self) {
        let now = std::time::Instant::now();
        let Some(probes) = self.probes.as_mut() else {
            return;
        };
        match self.budget.as_mut() {
            Some(b) if b.affordable_at_start() => {
                if let Err(e) = probes.set_lock_allowance(b.allowance()) {
                    log::warn!("budget: setting the lock sites' allowance failed: {e}");
                }
            }
            Some(b) => {
                b.start_off(now);
                let from = monotonic_ns();
                if let Err(e) = probes.set_lock_sites(false) {
                    log::warn!("budget: detaching the lock sites failed: {e}");
                }
                let to = monotonic_ns();
                self.locks.switched(from, to);
                say!(
                    "tracer: {} lock sites start detached: taking them off again under load would cost more than the --budget allows at once; they are sampled once it can pay",
                    probes.lock_sites()
                );
            }
            None => {}
        }
        if let Some(b) = self
            .park_budget
            .as_mut()
            .filter(|b| !b.affordable_at_start())
        {
            b.start_off(now);
            if let Err(e) = probes.set_parks(false) {
                log::warn!("budget: detaching the park probes failed: {e}");
            }
        }
    }

    /// Measures probe hits against the target's CPU time and turns probes off or
    /// on as the budgets say. Both units also pay for the agent's time that the
    /// probes cause: draining their records, and the CPU time of the system
    /// calls that attach and detach them (the kernel writes the breakpoints
    /// into the target's text there, a few milliseconds for a few probes, up
    /// to 20 for thousands of lock sites; the calls also wait, for the target's
    /// memory map and an RCU grace period, which costs no CPU, and the hits
    /// meanwhile are counted): on a host whose CPUs are all busy it is
    /// CPU the target does not get, so it is charged in proportion to how busy
    /// they were. The lock sites' allowance goes to the kernel after each
    /// check (see `crate::budget`). The
    /// agent's reads of the goroutines are not charged: every live mode has
    /// them, probes or not, and watch mode's cost is theirs. Lock sites come
    /// first (lock-order findings depend on which stay on); the park probes get
    /// what the lock sites and the agent leave.
    pub(super) fn apply_budget(&mut self) {
        if self.budget.is_none() && self.park_budget.is_none() {
            return;
        }
        let Some(cpu) = budget::process_cpu_ns(self.pid) else {
            return;
        };
        let Some(lock_total) = self.probes.as_ref().map(Probes::lock_site_hits) else {
            return;
        };
        let switching = self.budget.as_ref().map_or(0, Budget::switch_ns)
            + self.park_budget.as_ref().map_or(0, Budget::switch_ns);
        // Charged as far as the host's CPUs are all busy (the last tick's share).
        let spent = self.drain_ns + switching;
        let busy = self.host_load.sample().unwrap_or(1.0);
        let lately = self.host_load.average().unwrap_or(1.0);
        for b in [&mut self.budget, &mut self.park_budget]
            .into_iter()
            .flatten()
        {
            b.set_busy(lately);
        }
        let delta = spent.saturating_sub(std::mem::replace(&mut self.agent_spent_ns, spent));
        self.agent_charged_ns += (delta as f64 * busy) as u64;
        let agent = self.agent_charged_ns;
        let now = std::time::Instant::now();
        let lock_switch = self
            .budget
            .as_mut()
            .and_then(|b| b.tick(lock_total, cpu, agent, now));
        if lock_switch == Some(Switch::Off) {
            // Before the kernel's held sets are purged: deadlocks with the sets as
            // they are, and the sets kept for the goroutines that stay parked.
            self.check_deadlocks();
            if let Some(p) = &self.probes {
                let held = p.held_sets();
                self.locks
                    .freeze(self.analyzer.model(), &held, monotonic_ns());
            }
        }
        let Some(probes) = self.probes.as_mut() else {
            return;
        };
        // The kernel's allowance first: an attach's first hits count against it.
        if let Some(allowance) = self.budget.as_ref().and_then(Budget::allowance) {
            if let Err(e) = probes.set_lock_allowance(Some(allowance)) {
                log::warn!("budget: setting the lock sites' allowance failed: {e}");
            }
        }
        if let Some(switch) = lock_switch {
            let from = monotonic_ns();
            let cpu_from = thread_cpu_ns();
            let hits_before = probes.lock_site_hits();
            if let Err(e) = probes.set_lock_sites(switch == Switch::On) {
                log::warn!("budget: switching the lock sites failed: {e}");
            }
            let to = monotonic_ns();
            let cpu = thread_cpu_ns().saturating_sub(cpu_from);
            log::debug!(
                "budget: lock sites {switch:?}: {} us, {} us of CPU, hits {} since last tick, {} during",
                (to - from) / 1000,
                cpu / 1000,
                hits_before.saturating_sub(lock_total),
                probes.lock_site_hits().saturating_sub(hits_before)
            );
            if let Some(b) = self.budget.as_mut() {
                b.switched_in(cpu, to - from);
            }
            // Records of the switch may still be in the ring buffer for a while.
            self.locks.switched(from, to);
        }
        let Some(park_budget) = self.park_budget.as_mut() else {
            return;
        };
        let lock_cost = lock_total as f64 * budget::LOCK_HIT_NS;
        let fixed = agent + lock_cost as u64;
        if let Some(switch) = park_budget.tick(probes.park_hits(), cpu, fixed, now) {
            let (from, cpu_from) = (monotonic_ns(), thread_cpu_ns());
            if let Err(e) = probes.set_parks(switch == Switch::On) {
                log::warn!("budget: switching the park probes failed: {e}");
            }
            park_budget.switched_in(
                thread_cpu_ns().saturating_sub(cpu_from),
                monotonic_ns().saturating_sub(from),
            );
        }
    }
}

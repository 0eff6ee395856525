//! The kernel side as plain values: the only module that touches aya. It loads and
//! attaches the programs ([`attach`]), switches the park probes and the lock sites
//! for the budget, detaches everything on drop, and reads every map (records,
//! stacks, counters, held sets, hold histograms, park states, the exit hold) into
//! values the rest of the agent uses without knowing there is a kernel. It never
//! decides anything: what to switch, when, and what a record means are the
//! session's and the decoder's.
mod attach;
mod held;

pub use attach::LOCK_PROGRAM;
use aya::maps::{
    Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuValues, RingBuf, StackTraceMap,
};
use held::live_holds;
use std::collections::HashMap;
use std::os::fd::{AsFd as _, BorrowedFd};
use tracer_analysis::lockwatch::HeldSet;
use tracer_common::{
    counter, exit_hold, kind, EdgeKey, Event, HeldLocks, ParkState, ReleaseKey, EVENT_SIZE,
};

/// Counters read back from the kernel side.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub hits: Vec<(String, u64)>,
    pub records: u64,
    pub drops: u64,
    pub stack_errors: u64,
    pub read_errors: u64,
}

/// The loaded programs, their links and the maps the agent reads.
pub struct Probes {
    links: attach::Attached,
    ring: RingBuf<MapData>,
    stacks: StackTraceMap<MapData>,
}

impl Probes {
    /// Loads the programs with the plan's constants and attaches every probe.
    pub fn attach(
        plan: &crate::plan::ProbePlan,
        target: &std::path::Path,
        pid: u32,
        bpf_log: bool,
    ) -> anyhow::Result<Probes> {
        use anyhow::Context as _;
        let mut links = attach::attach(plan, target, pid, bpf_log)?;
        let ring = RingBuf::try_from(
            links
                .ebpf
                .take_map("EVENTS")
                .context("EVENTS map missing")?,
        )?;
        let stacks = StackTraceMap::try_from(
            links
                .ebpf
                .take_map("STACKS")
                .context("STACKS map missing")?,
        )?;
        Ok(Probes {
            links,
            ring,
            stacks,
        })
    }

    /// `"symbol"` (or `"N lock sites"`) of each attached probe.
    pub fn attached(&self) -> &[String] {
        &self.links.attached
    }

    /// `"symbol: reason"` for each probe that failed to attach.
    pub fn failed(&self) -> &[String] {
        &self.links.failed
    }

    /// The programs of the failed probes, in the order of [`Probes::failed`].
    pub fn failed_programs(&self) -> &[&'static str] {
        &self.links.failed_programs
    }

    pub fn lock_sites(&self) -> usize {
        self.links.lock_sites()
    }

    /// Every record the kernel has written since the last call.
    pub fn records(&mut self, out: &mut Vec<Event>) {
        while let Some(item) = self.ring.next() {
            if let Some(ev) = decode_record(&item) {
                out.push(ev);
            }
        }
    }

    /// The user stack behind a stack id, innermost first (empty when unknown).
    pub fn stack(&self, stack_id: i64) -> Vec<u64> {
        if stack_id < 0 {
            return Vec::new();
        }
        self.stacks
            .get(&(stack_id as u32), 0)
            .map(|s| s.frames().iter().map(|f| f.ip).collect())
            .unwrap_or_default()
    }

    fn counter_array(&self) -> Option<PerCpuArray<&MapData, u64>> {
        PerCpuArray::try_from(self.links.ebpf.map("COUNTERS")?).ok()
    }

    /// One counter summed over the CPUs.
    fn counter(&self, index: u32) -> u64 {
        self.counter_array()
            .and_then(|arr| arr.get(&index, 0).ok())
            .map_or(0, |v| v.iter().sum())
    }

    /// Cumulative hits of the lock sites, all together.
    pub fn lock_site_hits(&self) -> u64 {
        self.counter(counter::LOCK_SITE_HITS)
    }

    /// Cumulative hits of the park probes (parks and wakes).
    pub fn park_hits(&self) -> u64 {
        let Some(arr) = self.counter_array() else {
            return 0;
        };
        let sum = |i: u32| -> u64 { arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        sum(kind::PARK) + sum(kind::READY)
    }

    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        let Some(arr) = self.counter_array() else {
            return c;
        };
        let sum = |i: u32| -> u64 { arr.get(&i, 0).map(|v| v.iter().copied().sum()).unwrap_or(0) };
        for k in 1..kind::COUNT {
            let n = sum(k);
            if n > 0 {
                c.hits.push((crate::decode::event_name(k).to_string(), n));
            }
        }
        for (name, i) in [
            ("lock_edges_capped", counter::EDGES_CAPPED),
            ("held_overflow", counter::HELD_OVERFLOW),
            ("lock_sites", counter::LOCK_SITE_HITS),
        ] {
            let n = sum(i);
            if n > 0 {
                c.hits.push((name.to_string(), n));
            }
        }
        c.records = sum(counter::RECORDS);
        c.drops = sum(counter::DROPS);
        c.stack_errors = sum(counter::STACK_ERRORS);
        c.read_errors = sum(counter::READ_ERRORS);
        c
    }

    /// Each goroutine's held locks, by goid: the kernel's sets as their owners
    /// will see them at their next lock (without the holds other goroutines
    /// released and those void since the last switch).
    pub fn held_sets(&self) -> HashMap<u64, HeldSet> {
        let ebpf = &self.links.ebpf;
        let Some(held) = ebpf
            .map("HELD")
            .and_then(|m| BpfHashMap::<_, u64, HeldLocks>::try_from(m).ok())
        else {
            return HashMap::new();
        };
        let purged = ebpf
            .map("PURGED_AT")
            .and_then(|m| aya::maps::Array::<_, u64>::try_from(m).ok())
            .and_then(|a| a.get(&0, 0).ok())
            .unwrap_or(0);
        let mut released: HashMap<ReleaseKey, u64> = ebpf
            .map("RELEASED")
            .and_then(|m| BpfHashMap::<_, ReleaseKey, u64>::try_from(m).ok())
            .map(|r| {
                r.iter()
                    .filter_map(Result::ok)
                    .filter(|(_, c)| *c > 0)
                    .collect()
            })
            .unwrap_or_default();
        held.iter()
            .filter_map(Result::ok)
            .map(|(goid, h)| (goid, live_holds(goid, &h, purged, &mut released)))
            .collect()
    }

    /// Hold-time buckets of the first `sites` lock sites (see `HOLD_HIST`).
    pub fn hold_buckets(&self, sites: usize) -> Vec<Vec<u64>> {
        use tracer_common::{HOLD_HIST_BUCKETS, HOLD_HIST_SITES};
        let Some(arr) = self
            .links
            .ebpf
            .map("HOLD_HIST")
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
        else {
            return Vec::new();
        };
        (0..sites.min(HOLD_HIST_SITES as usize))
            .map(|site| {
                (0..HOLD_HIST_BUCKETS)
                    .map(|b| {
                        let i = site as u32 * HOLD_HIST_BUCKETS + b;
                        arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0)
                    })
                    .collect()
            })
            .collect()
    }

    /// The kernel's view of parked goroutines, for a memory read to date them.
    pub fn parks(&self) -> ParkView<'_> {
        let map = |name| self.links.ebpf.map(name);
        ParkView {
            parked: map("PARKED").and_then(|m| BpfHashMap::try_from(m).ok()),
            pending_sema: map("PENDING_SEMA").and_then(|m| BpfHashMap::try_from(m).ok()),
        }
    }

    /// The kernel forgets the held sets of goroutines that ended, and the
    /// releases counted for them.
    pub fn forget_held(&mut self, goids: &[u64]) {
        if let Some(map) = self.links.ebpf.map_mut("HELD") {
            if let Ok(mut held) = BpfHashMap::<_, u64, HeldLocks>::try_from(map) {
                for g in goids {
                    let _ = held.remove(g);
                }
            }
        }
        if let Some(map) = self.links.ebpf.map_mut("RELEASED") {
            if let Ok(mut released) = BpfHashMap::<_, ReleaseKey, u64>::try_from(map) {
                let goids: std::collections::HashSet<u64> = goids.iter().copied().collect();
                let gone: Vec<ReleaseKey> = released
                    .keys()
                    .filter_map(Result::ok)
                    .filter(|k| goids.contains(&k.goid))
                    .collect();
                for k in &gone {
                    let _ = released.remove(k);
                }
            }
        }
    }

    /// The kernel forgets a lock-order edge, so it is sent again when next seen.
    pub fn forget_edge(&mut self, from: u64, to: u64) {
        if let Some(map) = self.links.ebpf.map_mut("EDGES") {
            if let Ok(mut edges) = BpfHashMap::<_, EdgeKey, u32>::try_from(map) {
                let _ = edges.remove(&EdgeKey { from, to });
            }
        }
    }

    fn exit_hold(&mut self) -> Option<Array<&mut MapData, u64>> {
        Array::try_from(self.links.ebpf.map_mut("EXIT_HOLD")?).ok()
    }

    /// The agent's heartbeat (0: hold nothing). See `guard.rs`.
    pub fn beat(&mut self, now_ns: u64) {
        if let Some(mut arr) = self.exit_hold() {
            let _ = arr.set(exit_hold::HEARTBEAT, &now_ns, 0);
        }
    }

    /// Whether the kernel stopped the target at `runtime.exit` and the hold is
    /// not ended yet.
    pub fn exit_hold_pending(&mut self) -> bool {
        self.exit_hold()
            .and_then(|arr| arr.get(&exit_hold::HELD_SINCE, 0).ok())
            .is_some_and(|since| since != 0)
    }

    /// The hold is over (the target was resumed).
    pub fn clear_exit_hold(&mut self) {
        if let Some(mut arr) = self.exit_hold() {
            let _ = arr.set(exit_hold::HELD_SINCE, &0, 0);
        }
    }

    /// The `EXIT_HOLD` map, for the guardian.
    pub fn exit_hold_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.links.ebpf.map("EXIT_HOLD")? {
            aya::maps::Map::Array(m) => Some(m.fd().as_fd()),
            _ => None,
        }
    }

    /// Turns the park probes off or on.
    pub fn set_parks(&mut self, on: bool) -> Result<(), String> {
        self.links.set_parks(on)
    }

    /// Turns every lock site off or on.
    pub fn set_lock_sites(&mut self, on: bool) -> Result<(), String> {
        let n = self.links.lock_sites();
        self.links.set_active(vec![on; n])
    }

    /// Hands the kernel the hits the lock sites may take (the budget's credit),
    /// split evenly over the CPUs; None: no limit.
    pub fn set_lock_allowance(&mut self, hits: Option<u64>) -> Result<(), String> {
        let Some(map) = self.links.ebpf.map_mut("LOCK_ALLOWANCE") else {
            return Err("LOCK_ALLOWANCE map missing".into());
        };
        let mut arr: PerCpuArray<&mut MapData, i64> =
            PerCpuArray::try_from(map).map_err(|e| e.to_string())?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e.to_string())?.get() as usize;
        // At 0 the count never reaches 0 again: no wakeup.
        let each = hits.map_or(0, |h| (h / cpus as u64).clamp(1, i64::MAX as u64) as i64);
        let values = PerCpuValues::try_from(vec![each; cpus]).map_err(|e| e.to_string())?;
        arr.set(0, values, 0).map_err(|e| e.to_string())
    }

    /// A descriptor of the ring buffer of its own, readable when a record
    /// asks for a wakeup (the spent budget).
    pub fn ring_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.ring.as_fd().try_clone_to_owned()
    }

    /// Clears every held set (after the lock sites' first attach).
    pub fn purge_all_held(&mut self) {
        self.links.purge_all_held();
    }
}

/// PARKED and PENDING_SEMA, opened once for a whole memory read.
pub struct ParkView<'a> {
    parked: Option<BpfHashMap<&'a MapData, u64, ParkState>>,
    pending_sema: Option<BpfHashMap<&'a MapData, u64, u64>>,
}

impl ParkView<'_> {
    /// The park the kernel saw this goroutine enter, if it is in its map.
    pub fn park(&self, goid: u64) -> Option<ParkState> {
        self.parked.as_ref()?.get(&goid, 0).ok()
    }

    /// The semaphore `semacquire1` announced this goroutine would sleep on.
    pub fn sema(&self, goid: u64) -> Option<u64> {
        self.pending_sema.as_ref()?.get(&goid, 0).ok()
    }
}

/// Reinterprets one ring-buffer record. Short records (should not happen) are refused.
fn decode_record(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < EVENT_SIZE {
        return None;
    }
    // SAFETY: `Event` is `#[repr(C)]` integers only; any bit pattern is valid, and the
    // read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

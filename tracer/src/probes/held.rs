//! A goroutine's held set as its owner will see it at its next lock: the
//! kernel's set without the holds other goroutines released (counted apart, see
//! `tracer_common::HeldLocks`) and those taken before the last switch
//! ([`HeldLocks::gone`], the rule the kernel's `tidy` applies too).
use std::collections::HashMap;
use tracer_analysis::lockwatch::HeldSet;
use tracer_common::{HeldLocks, ReleaseKey, MAX_HELD};

/// `h`'s live holds. `purged`: holds taken at or before it are void.
/// `released`: the counts not yet applied, by key; those used here are taken
/// off, as the owner would.
pub fn live_holds(
    goid: u64,
    h: &HeldLocks,
    purged: u64,
    released: &mut HashMap<ReleaseKey, u64>,
) -> HeldSet {
    let gone = h.gone(goid, purged, |key| match released.get_mut(key) {
        Some(c) if *c > 0 => {
            *c -= 1;
            true
        }
        _ => false,
    });
    let live = (0..(h.n as usize).min(MAX_HELD)).filter(|&i| gone & (1 << i) == 0);
    HeldSet {
        locks: live.clone().map(|i| (h.locks[i], h.is_read(i))).collect(),
        sites: live.map(|i| h.sites[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One release counted for each (goid, lock key).
    fn counts(keys: &[(u64, u64)]) -> HashMap<ReleaseKey, u64> {
        keys.iter()
            .map(|&(goid, lock)| (ReleaseKey { goid, lock }, 1))
            .collect()
    }

    fn set(holds: &[(u64, bool, u64)]) -> HeldLocks {
        let mut h = HeldLocks::default();
        for (i, &(lock, read, since)) in holds.iter().enumerate() {
            h.locks[i] = lock;
            h.sites[i] = i as u32;
            h.since[i] = since;
            h.read |= u32::from(read) << i;
        }
        h.n = holds.len() as u32;
        h
    }

    #[test]
    fn a_release_by_another_goroutine_takes_off_the_latest_hold_of_its_kind() {
        // Read-locked twice and write-locked between: one foreign RUnlock.
        let h = set(&[(0x100, true, 10), (0x200, false, 11), (0x100, true, 12)]);
        let mut released = counts(&[(7, 0x101)]);
        let live = live_holds(7, &h, 0, &mut released);
        assert_eq!(live.locks, vec![(0x100, true), (0x200, false)]);
        assert_eq!(live.sites, vec![0, 1]);
        assert_eq!(released.values().sum::<u64>(), 0);
    }

    #[test]
    fn a_write_release_leaves_a_read_hold_of_the_same_lock() {
        let h = set(&[(0x100, true, 10)]);
        let mut released = counts(&[(7, 0x100)]);
        let live = live_holds(7, &h, 0, &mut released);
        assert_eq!(live.locks, vec![(0x100, true)]);
    }

    #[test]
    fn holds_from_before_the_last_switch_are_void() {
        let h = set(&[(0x100, false, 10), (0x200, false, 30)]);
        let live = live_holds(7, &h, 20, &mut HashMap::new());
        assert_eq!(live.locks, vec![(0x200, false)]);
        assert_eq!(live.sites, vec![1]);
    }

    #[test]
    fn another_goroutines_count_is_not_used() {
        let h = set(&[(0x100, false, 10)]);
        let mut released = counts(&[(8, 0x100)]);
        let live = live_holds(7, &h, 0, &mut released);
        assert_eq!(live.locks, vec![(0x100, false)]);
        assert_eq!(released.values().sum::<u64>(), 1);
    }
}

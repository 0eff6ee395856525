//! Rules about single goroutines: parked too long, parked when the target
//! exited, or proved leaked by the Go GC. All are plain functions of the model,
//! so asking twice never double-reports.

use std::collections::HashMap;

use crate::findings::{GoroutineFinding, Rule};
use crate::input::Object;
use crate::model::{Model, ParkedGoroutine};

/// Channels two or more reportable goroutines wait to receive from: the queue
/// of a pool of consumers (`for job := range jobs`), idle while there is no
/// work. Such waits are not `long_parked` (a pool that leaks grows, and the
/// `growing` rule sees it; one the GC proved unreachable is `leaked`).
fn shared_queues(model: &Model) -> HashMap<u64, u32> {
    let mut receivers: HashMap<u64, u32> = HashMap::new();
    for g in model.parked().filter(|g| g.reportable()) {
        if let Some(addr) = received_channel(g) {
            *receivers.entry(addr).or_default() += 1;
        }
    }
    receivers.retain(|_, n| *n >= 2);
    receivers
}

fn received_channel(g: &ParkedGoroutine) -> Option<u64> {
    match (&*g.parked.wait_reason, &g.parked.object) {
        ("chan receive", Object::Channel { addr, .. }) if *addr != 0 => Some(*addr),
        _ => None,
    }
}

/// Every reportable goroutine parked for longer than `threshold_ns` at `now_ns`,
/// with its age as of then.
pub fn long_parked(model: &Model, now_ns: u64, threshold_ns: u64) -> Vec<GoroutineFinding> {
    long_parked_except(model, now_ns, threshold_ns, |_| false)
}

/// [`long_parked`] without the goids `known` already accounts for, so a caller
/// that streams findings builds only the new ones.
pub fn long_parked_except(
    model: &Model,
    now_ns: u64,
    threshold_ns: u64,
    known: impl Fn(u64) -> bool,
) -> Vec<GoroutineFinding> {
    let now = model.clock(now_ns);
    let queues = shared_queues(model);
    model
        .parked()
        .filter(|g| {
            g.reportable()
                && g.age_ns(now) > threshold_ns
                && !g.timer_pending(now)
                && !received_channel(g).is_some_and(|c| queues.contains_key(&c))
                && !known(g.goid())
        })
        .map(|g| GoroutineFinding::new(Rule::LongParked, g, now))
        .collect()
}

/// After the target exited, every reportable goroutine still parked: it can
/// never resume, which is what goleak calls a leak. A wait a timer would have
/// ended (`select` with `time.After`) is not one: the program exited first.
pub fn parked_at_exit(model: &Model) -> Vec<GoroutineFinding> {
    parked_at_exit_except(model, |_| false)
}

/// [`parked_at_exit`] without the goids `known` already accounts for.
pub fn parked_at_exit_except(model: &Model, known: impl Fn(u64) -> bool) -> Vec<GoroutineFinding> {
    let Some(exit) = model.exited_at() else {
        return Vec::new();
    };
    model
        .parked()
        .filter(|g| g.reportable() && g.parked.wake_at_ns.is_none() && !known(g.goid()))
        .map(|g| GoroutineFinding::new(Rule::ParkedAtExit, g, exit))
        .collect()
}

/// Every reportable goroutine the Go GC proved unreachable (`_Gleaked`): it can
/// never resume, whatever its age, with its age as of `now_ns`.
pub fn leaked(model: &Model, now_ns: u64) -> Vec<GoroutineFinding> {
    leaked_except(model, now_ns, |_| false)
}

/// [`leaked`] without the goids `known` already accounts for.
pub fn leaked_except(
    model: &Model,
    now_ns: u64,
    known: impl Fn(u64) -> bool,
) -> Vec<GoroutineFinding> {
    let now = model.clock(now_ns);
    model
        .parked()
        .filter(|g| g.leaked && g.reportable() && !known(g.goid()))
        .map(|g| GoroutineFinding::new(Rule::Leaked, g, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::fixtures::{park, parked, ready, system, SECOND};
    use crate::input::Input;

    const THRESHOLD: u64 = 10 * SECOND;

    #[test]
    fn fires_only_past_the_threshold() {
        let mut m = Model::new(&Config::default());
        m.apply(park(parked(5, 0, 42)));
        assert!(long_parked(&m, THRESHOLD, THRESHOLD).is_empty());
        let found = long_parked(&m, THRESHOLD + 1, THRESHOLD);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, Rule::LongParked);
        assert_eq!(found[0].parked_ns, THRESHOLD + 1);
        assert_eq!(&*found[0].site.function, "main.send");
        assert!(long_parked_except(&m, THRESHOLD + 1, THRESHOLD, |g| g == 5).is_empty());
    }

    #[test]
    fn resumed_goroutines_are_not_long_parked() {
        let mut m = Model::new(&Config::default());
        m.apply(park(parked(5, 0, 42)));
        m.apply(ready(SECOND, 5, Some(SECOND)));
        assert!(long_parked(&m, 100 * SECOND, THRESHOLD).is_empty());
    }

    #[test]
    fn leaked_fires_for_what_the_gc_proved_and_nothing_else() {
        let mut m = Model::new(&Config::default());
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(park(parked(6, SECOND, 43)));
        m.apply(park(system(2, 0, "runtime.forcegchelper")));
        assert!(leaked(&m, 2 * SECOND).is_empty());
        m.apply(Input::Leaked {
            ts_ns: 2 * SECOND,
            goids: vec![5, 2, 99],
        });
        let found = leaked(&m, 3 * SECOND);
        assert_eq!(
            found.len(),
            1,
            "system goroutines and unknown goids are not"
        );
        assert_eq!((found[0].goid, found[0].rule), (5, Rule::Leaked));
        assert!(found[0].gc_proved_leak);
        assert_eq!(found[0].parked_ns, 2 * SECOND);
        // Every rule of the goroutine says the GC proved it.
        let long = long_parked(&m, 30 * SECOND, THRESHOLD);
        let flags: Vec<(u64, bool)> = long.iter().map(|f| (f.goid, f.gc_proved_leak)).collect();
        assert_eq!(flags, vec![(5, true), (6, false)]);
        assert!(leaked_except(&m, 3 * SECOND, |g| g == 5).is_empty());
        // A new park is a new park.
        m.apply(park(parked(5, 4 * SECOND, 44)));
        assert!(leaked(&m, 5 * SECOND).is_empty());
    }

    #[test]
    fn timed_waits_are_long_parked_only_once_their_timer_is_overdue() {
        let mut m = Model::new(&Config::default());
        let mut ticker = parked(5, 0, 42);
        ticker.wake_at_ns = Some(12 * SECOND);
        m.apply(park(ticker));
        let mut stopped = parked(6, 0, 43);
        stopped.wake_at_ns = None;
        m.apply(park(stopped));
        let goids = |now| -> Vec<u64> {
            long_parked(&m, now, THRESHOLD)
                .iter()
                .map(|f| f.goid)
                .collect()
        };
        assert_eq!(goids(11 * SECOND), vec![6]);
        assert_eq!(goids(13 * SECOND), vec![6], "within the grace");
        assert_eq!(goids(14 * SECOND), vec![5, 6], "the timer is overdue");
        // At exit, a timed wait is not a leak, however old.
        m.apply(Input::TargetExit { ts_ns: 60 * SECOND });
        let at_exit: Vec<u64> = parked_at_exit(&m).iter().map(|f| f.goid).collect();
        assert_eq!(at_exit, vec![6]);
    }

    #[test]
    fn an_idle_pool_sharing_a_queue_is_not_long_parked() {
        let mut m = Model::new(&Config::default());
        let receive = |goid, addr| {
            let mut p = parked(goid, 0, 42);
            p.wait_reason = "chan receive".into();
            p.object = Object::Channel {
                addr,
                elem_type: None,
            };
            park(p)
        };
        m.apply(receive(5, 0x100));
        m.apply(receive(6, 0x100));
        m.apply(receive(7, 0x200));
        let goids: Vec<u64> = long_parked(&m, 20 * SECOND, THRESHOLD)
            .iter()
            .map(|f| f.goid)
            .collect();
        assert_eq!(goids, vec![7], "a lone receiver is still reported");
    }

    #[test]
    fn parked_at_exit_needs_an_exit() {
        let mut m = Model::new(&Config::default());
        m.apply(park(parked(5, SECOND, 42)));
        m.apply(park(system(2, 0, "runtime.forcegchelper")));
        assert!(parked_at_exit(&m).is_empty());
        m.apply(Input::TargetExit { ts_ns: 4 * SECOND });
        let found = parked_at_exit(&m);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].goid, 5);
        assert_eq!(found[0].rule, Rule::ParkedAtExit);
        assert_eq!(found[0].parked_ns, 3 * SECOND);
    }
}

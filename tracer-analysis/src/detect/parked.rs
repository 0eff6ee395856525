//! Rules about single goroutines: parked too long, or parked when the target
//! exited. Both are plain functions of the model, so asking twice never
//! double-reports.

use crate::findings::{GoroutineFinding, Rule};
use crate::model::Model;

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
    model
        .parked()
        .filter(|g| g.reportable() && g.age_ns(now) > threshold_ns && !known(g.goid()))
        .map(|g| GoroutineFinding::new(Rule::LongParked, g, now))
        .collect()
}

/// After the target exited, every reportable goroutine still parked: it can
/// never resume, which is what goleak calls a leak.
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
        .filter(|g| g.reportable() && !known(g.goid()))
        .map(|g| GoroutineFinding::new(Rule::ParkedAtExit, g, exit))
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

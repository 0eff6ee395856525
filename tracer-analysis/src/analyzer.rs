//! The pipeline in one place: inputs feed the model, detectors read it, and
//! what they find becomes a [`Report`].

use std::collections::{BTreeSet, HashSet};

use crate::config::{Config, ConfigError};
use crate::detect::{self, GrowingDetector};
use crate::findings::{Findings, Rule};
use crate::input::Input;
use crate::model::{GroupKey, Model};
use crate::report::Report;
use crate::summary::{Summary, SummaryInputs};

/// Model plus detectors, with memory of what was already announced so a
/// streaming caller reports each finding once.
#[derive(Debug, Clone)]
pub struct Analyzer {
    config: Config,
    model: Model,
    growing: GrowingDetector,
    /// (rule, goid) pairs already returned by [`Analyzer::tick`].
    announced: HashSet<(Rule, u64)>,
    /// `growing` groups already returned by [`Analyzer::tick`].
    announced_groups: BTreeSet<GroupKey>,
    /// Goroutine findings returned by [`Analyzer::tick`] in all.
    streamed: u64,
}

impl Analyzer {
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Analyzer {
            model: Model::new(&config),
            growing: GrowingDetector::new(&config),
            config,
            announced: HashSet::new(),
            announced_groups: BTreeSet::new(),
            streamed: 0,
        })
    }

    pub fn apply(&mut self, input: Input) {
        if let Input::Exit { goid, .. } = input {
            // Goids are never reused, so its announcements can go.
            for rule in Rule::ALL {
                self.announced.remove(&(rule, goid));
            }
        }
        self.model.apply(input);
    }

    /// Runs the detectors at `now_ns` and returns only what they had not
    /// reported before: once per goroutine and rule, once per growing group.
    /// Call it regularly (the `growing` rule samples on these calls).
    pub fn tick(&mut self, now_ns: u64) -> Findings {
        self.growing.tick(&self.model, now_ns);
        let threshold = self.config.park_threshold_ns();
        let announced = &self.announced;
        let mut goroutines = detect::long_parked_except(&self.model, now_ns, threshold, |goid| {
            announced.contains(&(Rule::LongParked, goid))
        });
        goroutines.extend(detect::parked_at_exit_except(&self.model, |goid| {
            announced.contains(&(Rule::ParkedAtExit, goid))
        }));
        goroutines.extend(detect::leaked_except(&self.model, now_ns, |goid| {
            announced.contains(&(Rule::Leaked, goid))
        }));
        let announced_groups = &self.announced_groups;
        let groups = self
            .growing
            .findings_except(&self.model, now_ns, |key| announced_groups.contains(key));

        self.streamed += goroutines.len() as u64;
        self.announced
            .extend(goroutines.iter().map(|g| (g.rule, g.goid)));
        self.announced_groups
            .extend(groups.iter().map(|g| GroupKey {
                site: g.site.clone(),
                created_by: g.created_by.clone(),
                wait_reason: g.wait_reason.clone(),
            }));
        self.forget_vanished();

        let mut findings = Findings { goroutines, groups };
        findings.sort();
        findings
    }

    /// Lost exit events would otherwise keep announcements forever; only pays
    /// for the sweep once they clearly outnumber the live goroutines.
    fn forget_vanished(&mut self) {
        let model = &self.model;
        if self.announced.len() > 2 * model.goroutines_tracked() + 1024 {
            self.announced.retain(|(_, goid)| model.knows(*goid));
        }
        let live: BTreeSet<&GroupKey> = model.groups().map(|(k, _)| k.as_ref()).collect();
        self.announced_groups.retain(|k| live.contains(k));
    }

    /// Everything that holds at `now_ns`, ages refreshed: goroutines parked past
    /// the threshold, goroutines parked at exit, and groups growing in the latest
    /// window.
    pub fn findings(&self, now_ns: u64) -> Findings {
        let mut goroutines =
            detect::long_parked(&self.model, now_ns, self.config.park_threshold_ns());
        goroutines.extend(detect::parked_at_exit(&self.model));
        goroutines.extend(detect::leaked(&self.model, now_ns));
        let groups = self.growing.findings(&self.model, now_ns);
        let mut findings = Findings { goroutines, groups };
        findings.sort();
        findings
    }

    pub fn summary(&self, now_ns: u64, inputs: SummaryInputs) -> Summary {
        Summary::new(inputs, &self.model, now_ns)
    }

    /// The complete report at `now_ns`, ready for any renderer. It says how
    /// many findings [`Analyzer::tick`] streamed no longer hold (the goroutine
    /// resumed or exited), so a report without findings never reads as if none
    /// had been streamed.
    pub fn report(&self, now_ns: u64, inputs: SummaryInputs) -> Report {
        let findings = self.findings(now_ns);
        let mut summary = self.summary(now_ns, inputs);
        let still = findings
            .goroutines
            .iter()
            .filter(|g| self.announced.contains(&(g.rule, g.goid)))
            .count() as u64;
        summary.findings_resolved = self.streamed.saturating_sub(still);
        Report::new(findings, summary)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn growing(&self) -> &GrowingDetector {
        &self.growing
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail_on::{should_fail, FailOn};
    use crate::fixtures::{exit, park, parked, ready, system, SECOND};
    use crate::report::text;

    fn analyzer() -> Analyzer {
        Analyzer::new(Config::default()).unwrap()
    }

    const SYSTEM_STARTS: [&str; 4] = [
        "runtime.gcBgMarkWorker",
        "runtime.bgsweep",
        "runtime.forcegchelper",
        "runtime.runfinq",
    ];

    #[test]
    fn rejects_invalid_config() {
        let config = Config {
            min_growth: 0,
            ..Config::default()
        };
        assert_eq!(
            Analyzer::new(config).err(),
            Some(ConfigError::ZeroMinGrowth)
        );
    }

    #[test]
    fn parked_at_snapshot_and_never_resumed_becomes_long_parked() {
        let mut a = analyzer();
        let mut p = parked(42, 95 * SECOND, 42);
        p.exact = false;
        a.apply(Input::Snapshot {
            ts_ns: 100 * SECOND,
            parked: vec![p],
            total_goroutines: 7,
            alive: None,
            still_parked: vec![],
        });
        assert!(a.tick(104 * SECOND).is_empty());
        let new = a.tick(106 * SECOND);
        assert_eq!(new.goroutines.len(), 1);
        let f = &new.goroutines[0];
        assert_eq!((f.rule, f.goid), (Rule::LongParked, 42));
        assert_eq!(f.parked_ns, 11 * SECOND);
        assert!(!f.exact);
        assert!(a.tick(110 * SECOND).is_empty(), "announced once");
        let now = a.findings(160 * SECOND);
        assert_eq!(now.goroutines.len(), 1, "refreshed, not duplicated");
        assert_eq!(now.goroutines[0].parked_ns, 65 * SECOND);
    }

    #[test]
    fn park_then_ready_is_no_finding_and_one_sample() {
        let mut a = analyzer();
        a.apply(park(parked(5, SECOND, 42)));
        a.tick(SECOND);
        a.apply(ready(3 * SECOND, 5, Some(2 * SECOND)));
        assert!(a.tick(60 * SECOND).is_empty());
        let report = a.report(60 * SECOND, SummaryInputs::default());
        assert!(report.findings.is_empty());
        assert_eq!(report.summary.histograms.len(), 1);
        assert_eq!(report.summary.histograms[0].count, 1);
        assert_eq!(report.summary.goroutines_seen, 1);
        assert_eq!(report.summary.goroutines_parked, 0);
        assert_eq!(report.summary.duration_ns, 59 * SECOND);
    }

    #[test]
    fn target_exit_reports_every_parked_user_goroutine() {
        let mut a = analyzer();
        for goid in 10..13 {
            a.apply(park(parked(goid, goid * SECOND, 42)));
        }
        a.apply(park(parked(20, SECOND, 50)));
        a.apply(ready(2 * SECOND, 20, Some(SECOND)));
        for (i, start) in SYSTEM_STARTS.iter().enumerate() {
            a.apply(park(system(2 + i as u64, 0, start)));
        }
        a.apply(Input::TargetExit { ts_ns: 15 * SECOND });
        let new = a.tick(16 * SECOND);
        let goids: Vec<(Rule, u64, u64)> = new
            .goroutines
            .iter()
            .map(|g| (g.rule, g.goid, g.parked_ns))
            .collect();
        assert_eq!(
            goids,
            vec![
                (Rule::ParkedAtExit, 10, 5 * SECOND),
                (Rule::ParkedAtExit, 11, 4 * SECOND),
                (Rule::ParkedAtExit, 12, 3 * SECOND),
            ]
        );
        // The target's clock stopped: nobody crosses the threshold afterwards.
        assert!(a.tick(600 * SECOND).is_empty());
        assert_eq!(a.findings(600 * SECOND).goroutines.len(), 3);
        let report = a.report(600 * SECOND, SummaryInputs::default());
        assert_eq!(report.sites.len(), 1);
        assert_eq!(report.sites[0].count, 3);
        assert_eq!(report.summary.duration_ns, 15 * SECOND);
    }

    #[test]
    fn system_goroutines_are_never_findings() {
        let mut a = analyzer();
        for t in 0..=60u64 {
            let start = SYSTEM_STARTS[t as usize % SYSTEM_STARTS.len()];
            a.apply(park(system(1000 + t, t * SECOND, start)));
            assert!(a.tick(t * SECOND).is_empty(), "at {t}s");
        }
        a.apply(Input::TargetExit { ts_ns: 61 * SECOND });
        assert!(a.tick(61 * SECOND).is_empty());
        assert!(a.findings(61 * SECOND).is_empty());
        assert_eq!(a.model().goroutines_parked(), 61);
    }

    #[test]
    fn one_finding_per_rule_per_goroutine() {
        let mut a = analyzer();
        a.apply(park(parked(5, 0, 42)));
        assert_eq!(a.tick(11 * SECOND).goroutines.len(), 1);
        a.apply(Input::TargetExit { ts_ns: 12 * SECOND });
        let new = a.tick(12 * SECOND);
        assert_eq!(new.rules(), vec![Rule::ParkedAtExit]);
        assert!(a.tick(13 * SECOND).is_empty());
        assert_eq!(
            a.findings(13 * SECOND).rules(),
            vec![Rule::LongParked, Rule::ParkedAtExit]
        );
    }

    #[test]
    fn a_goroutine_stuck_again_is_not_announced_again() {
        let mut a = analyzer();
        a.apply(park(parked(5, 0, 42)));
        assert_eq!(a.tick(11 * SECOND).len(), 1);
        a.apply(ready(12 * SECOND, 5, Some(12 * SECOND)));
        assert!(a.findings(13 * SECOND).is_empty());
        a.apply(park(parked(5, 13 * SECOND, 43)));
        assert!(a.tick(30 * SECOND).is_empty());
        let now = a.findings(30 * SECOND);
        assert_eq!(
            now.goroutines[0].site.line, 43,
            "the finding follows the new park"
        );
        a.apply(exit(31 * SECOND, 5));
        assert!(a.announced.is_empty());
    }

    #[test]
    fn growing_group_is_announced_once() {
        let mut a = analyzer();
        let mut announced = Vec::new();
        for t in 0..=40u64 {
            a.apply(park(parked(100 + t, t * SECOND, 42)));
            let new = a.tick(t * SECOND);
            announced.extend(new.groups.iter().map(|g| (t, g.count)));
        }
        assert_eq!(announced, vec![(30, 31)]);
        let now = a.findings(40 * SECOND);
        assert_eq!(now.groups.len(), 1);
        assert_eq!(now.groups[0].count, 41);
        assert!(should_fail(&now, &[FailOn::Leak]));
    }

    #[test]
    fn ignore_patterns_hide_matching_goroutines() {
        let mut a = Analyzer::new(Config {
            ignore: vec!["main.send".into()],
            ..Config::default()
        })
        .unwrap();
        a.apply(park(parked(5, 0, 42)));
        let mut other = parked(6, 0, 43);
        let mut frames = other.frames.to_vec();
        frames[3].function = "main.other".into();
        other.frames = frames.into();
        other.start_function = Some("main.other".into());
        a.apply(park(other));
        let found = a.tick(20 * SECOND);
        let goids: Vec<u64> = found.goroutines.iter().map(|g| g.goid).collect();
        assert_eq!(goids, vec![6]);
    }

    #[test]
    fn the_final_report_tells_of_streamed_findings_that_resolved() {
        let mut a = analyzer();
        a.apply(park(parked(5, 0, 42)));
        a.apply(park(parked(6, 0, 43)));
        assert_eq!(a.tick(11 * SECOND).len(), 2);
        a.apply(ready(12 * SECOND, 5, Some(12 * SECOND)));
        let report = a.report(13 * SECOND, SummaryInputs::default());
        assert_eq!(report.findings.goroutines.len(), 1);
        assert_eq!(report.summary.findings_resolved, 1);
        a.apply(exit(14 * SECOND, 6));
        let report = a.report(15 * SECOND, SummaryInputs::default());
        assert!(report.findings.is_empty());
        assert_eq!(report.summary.findings_resolved, 2);
        let mut out = Vec::new();
        text::write(&report, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "no goroutine is stuck now; 2 findings reported while tracing no longer hold"
            ),
            "{text}"
        );
    }

    #[test]
    fn report_renders_what_the_analyzer_found() {
        let mut a = analyzer();
        a.apply(park(parked(5, 0, 42)));
        a.apply(Input::TargetExit { ts_ns: 20 * SECOND });
        let report = a.report(
            20 * SECOND,
            SummaryInputs {
                events: 3,
                probes_attached: 9,
                ..SummaryInputs::default()
            },
        );
        let mut out = Vec::new();
        text::write(&report, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "1 goroutine parked at main.go:42 in main.send [chan send] — rule long_parked, oldest 20s\n"
        ));
        assert!(text.contains("— rule parked_at_exit, oldest 20s\n"));
        assert!(text.contains("summary: 3 events, 0 drops, 9 probes attached"));
        assert!(should_fail(&report.findings, &[FailOn::LongParked]));
    }
}

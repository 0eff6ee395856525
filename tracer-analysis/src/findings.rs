//! What the detectors conclude, in a form the reports only have to print.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::input::{Frame, Object};
use crate::model::ParkedGoroutine;

/// A group lists at most this many goids: enough to look a few up in a debugger,
/// few enough that a leak of a million goroutines stays a one-line finding.
pub const MAX_GROUP_GOIDS: usize = 20;

/// The rule that fired; its name is part of the stable JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Parked without resuming for longer than the park threshold.
    LongParked,
    /// Still parked when the target exited (goleak's rule).
    ParkedAtExit,
    /// A group of like goroutines kept growing over the leak window.
    Growing,
    /// The Go GC proved the goroutine unreachable (`_Gleaked`): it can never
    /// run again.
    Leaked,
}

impl Rule {
    pub const ALL: [Rule; 4] = [
        Rule::LongParked,
        Rule::ParkedAtExit,
        Rule::Growing,
        Rule::Leaked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::LongParked => "long_parked",
            Rule::ParkedAtExit => "parked_at_exit",
            Rule::Growing => "growing",
            Rule::Leaked => "leaked",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One goroutine a rule fired for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoroutineFinding {
    pub rule: Rule,
    pub goid: u64,
    pub wait_reason: Arc<str>,
    /// How long it had been parked when the finding was made.
    pub parked_ns: u64,
    /// False when the park time is an estimate (parked before attach).
    pub exact: bool,
    pub object: Object,
    /// Innermost first, exactly as the tracer read them.
    pub frames: Vec<Frame>,
    pub start_function: Option<Arc<str>>,
    pub created_by: Option<Frame>,
    pub parent_goid: Option<u64>,
    /// The first frame of user code, where the goroutine is blocked.
    pub site: Frame,
    /// In a Go test binary: the test, benchmark, example or fuzz target whose
    /// code started the goroutine (from the `go` statement's function), like
    /// goleak's per-test verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The Go GC proved the goroutine unreachable (Go's `_Gleaked`, shown as
    /// `(leaked)` in its dumps): nothing can ever wake it, whatever the rule.
    pub gc_proved_leak: bool,
}

/// The test a function belongs to: `TestLeak` for `pkg.TestLeak.func1`,
/// `BenchmarkX` for `pkg.(*T).BenchmarkX`... (Go's testing names: `Test`,
/// `Benchmark`, `Example` or `Fuzz`, then the end or a non-lowercase letter).
pub fn test_of(function: &str) -> Option<String> {
    // Past the package path: the last '/' then the first '.'.
    let tail = function.rsplit('/').next()?;
    let (_, names) = tail.split_once('.')?;
    names.split('.').find_map(|part| {
        let part = part.trim_start_matches("(*").trim_end_matches(')');
        ["Test", "Benchmark", "Example", "Fuzz"]
            .iter()
            .find_map(|prefix| {
                let rest = part.strip_prefix(prefix)?;
                let next = rest.chars().next();
                (next.is_none_or(|c| !c.is_lowercase())).then(|| part.to_string())
            })
    })
}

impl GoroutineFinding {
    pub fn new(rule: Rule, goroutine: &ParkedGoroutine, now_ns: u64) -> Self {
        let p = &goroutine.parked;
        GoroutineFinding {
            rule,
            goid: p.goid,
            wait_reason: p.wait_reason.clone(),
            parked_ns: goroutine.age_ns(now_ns),
            exact: p.exact,
            object: p.object.clone(),
            frames: p.frames.to_vec(),
            start_function: p.start_function.clone(),
            created_by: p.created_by.clone(),
            parent_goid: p.parent_goid,
            site: goroutine.site().clone(),
            test: p.created_by.as_ref().and_then(|c| test_of(&c.function)),
            gc_proved_leak: goroutine.leaked,
        }
    }
}

/// How a `growing` group changed over the window that made it fire.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Growth {
    /// Members at the start of the window.
    pub from: u64,
    /// Members at the end of the window.
    pub to: u64,
    /// Time between the two samples.
    pub window_ns: u64,
    pub per_minute: f64,
}

impl Growth {
    pub fn new(from: u64, to: u64, window_ns: u64) -> Self {
        let per_minute = if window_ns == 0 {
            0.0
        } else {
            to.saturating_sub(from) as f64 * 60e9 / window_ns as f64
        };
        Growth {
            from,
            to,
            window_ns,
            per_minute,
        }
    }
}

/// Goroutines blocked at one site for one reason, told as one finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFinding {
    pub rule: Rule,
    pub site: Frame,
    /// The `go` statement shared by every member; `None` when they differ or it
    /// is unknown.
    pub created_by: Option<Frame>,
    pub wait_reason: Arc<str>,
    pub count: u64,
    /// Age of the oldest member.
    pub oldest_ns: u64,
    /// Only for `growing`.
    pub growth: Option<Growth>,
    /// The oldest member, as the representative stack.
    pub example: GoroutineFinding,
    /// The lowest goids of the group, at most [`MAX_GROUP_GOIDS`].
    pub goids: Vec<u64>,
}

/// Collects a group's members one at a time without keeping them, so that a
/// group of a million goroutines costs one example and a list of goids.
#[derive(Debug)]
pub struct Members<'a, T> {
    count: u64,
    oldest: Option<(u64, u64, &'a T)>,
    goids: Vec<u64>,
}

impl<T> Default for Members<'_, T> {
    fn default() -> Self {
        Members {
            count: 0,
            oldest: None,
            goids: Vec::new(),
        }
    }
}

/// The summary of a group's members, ready to become a [`GroupFinding`].
#[derive(Debug)]
pub struct MemberSummary<'a, T> {
    pub count: u64,
    pub oldest_ns: u64,
    pub example: &'a T,
    pub goids: Vec<u64>,
}

impl<'a, T> Members<'a, T> {
    pub fn add(&mut self, goid: u64, age_ns: u64, member: &'a T) {
        self.count += 1;
        // Oldest first; on a tie the lowest goid, so the example is stable.
        let older = match self.oldest {
            None => true,
            Some((age, id, _)) => age_ns > age || (age_ns == age && goid < id),
        };
        if older {
            self.oldest = Some((age_ns, goid, member));
        }
        self.goids.push(goid);
        if self.goids.len() >= MAX_GROUP_GOIDS * 8 {
            self.trim();
        }
    }

    pub fn finish(mut self) -> Option<MemberSummary<'a, T>> {
        self.trim();
        let (oldest_ns, _, example) = self.oldest?;
        Some(MemberSummary {
            count: self.count,
            oldest_ns,
            example,
            goids: self.goids,
        })
    }

    fn trim(&mut self) {
        self.goids.sort_unstable();
        self.goids.dedup();
        self.goids.truncate(MAX_GROUP_GOIDS);
    }
}

/// Everything the detectors found at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Per-goroutine findings (`long_parked`, `parked_at_exit`), by rule, then
    /// oldest first.
    pub goroutines: Vec<GoroutineFinding>,
    /// Per-group findings (`growing`), largest first.
    pub groups: Vec<GroupFinding>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.goroutines.is_empty() && self.groups.is_empty()
    }

    pub fn len(&self) -> usize {
        self.goroutines.len() + self.groups.len()
    }

    /// Every rule that fired, once each.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules: Vec<Rule> = self
            .goroutines
            .iter()
            .map(|g| g.rule)
            .chain(self.groups.iter().map(|g| g.rule))
            .collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    /// Puts both lists in their documented order.
    pub fn sort(&mut self) {
        self.goroutines.sort_by(|a, b| {
            a.rule
                .cmp(&b.rule)
                .then(b.parked_ns.cmp(&a.parked_ns))
                .then(a.goid.cmp(&b.goid))
        });
        self.groups.sort_by(|a, b| {
            a.rule
                .cmp(&b.rule)
                .then(b.count.cmp(&a.count))
                .then(b.oldest_ns.cmp(&a.oldest_ns))
                .then_with(|| a.site.cmp(&b.site))
                .then_with(|| a.created_by.cmp(&b.created_by))
        });
    }

    /// The goroutine findings told per blocking site: one group per rule, site and
    /// wait reason, the way a reader triages a goroutine dump. Ordered by rule,
    /// then largest group first.
    /// The same findings with the goroutines grouped by site (see [`Self::by_site`]):
    /// what a report that must fit a screen shows, however many goroutines leak.
    pub fn grouped(&self) -> Findings {
        let mut groups = self.by_site();
        groups.extend(self.groups.iter().cloned());
        Findings {
            goroutines: Vec::new(),
            groups,
        }
    }

    pub fn by_site(&self) -> Vec<GroupFinding> {
        type Key<'a> = (Rule, &'a Frame, &'a str);
        let mut sites: BTreeMap<Key<'_>, SiteMembers<'_>> = BTreeMap::new();
        for g in &self.goroutines {
            let site = sites.entry((g.rule, &g.site, &*g.wait_reason)).or_default();
            site.members.add(g.goid, g.parked_ns, g);
            site.creators.add(g.created_by.as_ref());
        }
        let mut groups: Vec<GroupFinding> = sites
            .into_iter()
            .filter_map(|((rule, site, wait_reason), s)| {
                let m = s.members.finish()?;
                Some(GroupFinding {
                    rule,
                    site: site.clone(),
                    created_by: s.creators.shared().cloned(),
                    wait_reason: wait_reason.into(),
                    count: m.count,
                    oldest_ns: m.oldest_ns,
                    growth: None,
                    example: m.example.clone(),
                    goids: m.goids,
                })
            })
            .collect();
        groups.sort_by(|a, b| {
            a.rule
                .cmp(&b.rule)
                .then(b.count.cmp(&a.count))
                .then(b.oldest_ns.cmp(&a.oldest_ns))
                .then_with(|| a.site.cmp(&b.site))
                .then_with(|| a.wait_reason.cmp(&b.wait_reason))
        });
        groups
    }
}

#[derive(Default)]
struct SiteMembers<'a> {
    members: Members<'a, GoroutineFinding>,
    creators: Creators<'a>,
}

/// The `go` statement the members of a group share, if they share one.
#[derive(Default)]
enum Creators<'a> {
    #[default]
    NoneYet,
    Same(Option<&'a Frame>),
    Mixed,
}

impl<'a> Creators<'a> {
    fn add(&mut self, creator: Option<&'a Frame>) {
        *self = match *self {
            Creators::NoneYet => Creators::Same(creator),
            Creators::Same(c) if c == creator => Creators::Same(c),
            _ => Creators::Mixed,
        };
    }

    fn shared(&self) -> Option<&'a Frame> {
        match *self {
            Creators::Same(c) => c,
            Creators::NoneYet | Creators::Mixed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: Rule, goid: u64, line: u32, parked_ns: u64, creator: u32) -> GoroutineFinding {
        GoroutineFinding {
            rule,
            goid,
            wait_reason: "chan send".into(),
            parked_ns,
            exact: true,
            object: Object::None,
            frames: vec![Frame::new("main.send", "/src/main.go", line)],
            start_function: Some("main.worker".into()),
            created_by: Some(Frame::new("main.main", "/src/main.go", creator)),
            parent_goid: Some(1),
            site: Frame::new("main.send", "/src/main.go", line),
            test: None,
            gc_proved_leak: false,
        }
    }

    #[test]
    fn by_site_groups_per_rule_site_and_reason() {
        let findings = Findings {
            goroutines: vec![
                finding(Rule::LongParked, 10, 42, 5, 17),
                finding(Rule::LongParked, 11, 42, 9, 17),
                finding(Rule::LongParked, 12, 50, 1, 17),
                finding(Rule::ParkedAtExit, 10, 42, 5, 17),
            ],
            groups: vec![],
        };
        let groups = findings.by_site();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].rule, Rule::LongParked);
        assert_eq!(groups[0].count, 2);
        assert_eq!(groups[0].oldest_ns, 9);
        assert_eq!(groups[0].example.goid, 11);
        assert_eq!(groups[0].goids, vec![10, 11]);
        assert_eq!(groups[0].created_by.as_ref().map(|f| f.line), Some(17));
        assert_eq!(groups[1].site.line, 50);
        assert_eq!(groups[2].rule, Rule::ParkedAtExit);
    }

    #[test]
    fn by_site_drops_creator_when_members_differ() {
        let findings = Findings {
            goroutines: vec![
                finding(Rule::LongParked, 1, 42, 5, 17),
                finding(Rule::LongParked, 2, 42, 5, 18),
            ],
            groups: vec![],
        };
        let groups = findings.by_site();
        assert_eq!(groups[0].created_by, None);
        assert_eq!(groups[0].example.goid, 1, "ties go to the lowest goid");
    }

    #[test]
    fn members_keep_lowest_goids_only() {
        let mut m: Members<'_, ()> = Members::default();
        for goid in (0..1000u64).rev() {
            m.add(goid, goid, &());
        }
        let s = m.finish().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.oldest_ns, 999);
        assert_eq!(s.goids, (0..20).collect::<Vec<u64>>());
        assert!(Members::<'_, ()>::default().finish().is_none());
    }

    #[test]
    fn growth_rate_per_minute() {
        let g = Growth::new(10, 52, 30_000_000_000);
        assert_eq!(g.per_minute, 84.0);
        assert_eq!(Growth::new(5, 1, 10).per_minute, 0.0);
        assert_eq!(Growth::new(1, 5, 0).per_minute, 0.0);
    }

    #[test]
    fn rules_are_listed_once() {
        let findings = Findings {
            goroutines: vec![
                finding(Rule::ParkedAtExit, 1, 42, 5, 17),
                finding(Rule::LongParked, 2, 42, 5, 17),
                finding(Rule::LongParked, 3, 42, 5, 17),
            ],
            groups: vec![],
        };
        assert_eq!(findings.rules(), vec![Rule::LongParked, Rule::ParkedAtExit]);
        assert_eq!(findings.len(), 3);
    }
}

#[cfg(test)]
mod test_names {
    use super::test_of;

    #[test]
    fn tests_are_named_from_the_go_statements_function() {
        assert_eq!(
            test_of("example.com/pkg.TestLeak.func1").as_deref(),
            Some("TestLeak")
        );
        assert_eq!(test_of("pkg.TestLeak").as_deref(), Some("TestLeak"));
        assert_eq!(
            test_of("pkg.BenchmarkX.func2.1").as_deref(),
            Some("BenchmarkX")
        );
        assert_eq!(test_of("a/b.(*suite).TestAll").as_deref(), Some("TestAll"));
        assert_eq!(test_of("pkg.Test").as_deref(), Some("Test"));
        assert_eq!(test_of("pkg.Testify"), None);
        assert_eq!(test_of("main.main"), None);
        assert_eq!(test_of("testing.tRunner"), None);
    }
}

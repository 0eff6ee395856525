//! JSON Lines: one object per line, each with a `kind`. The schema is documented
//! in `docs/json.md` and is stable: fields may be added, never renamed or removed.

use std::io::Write;

use serde::Serialize;

use crate::findings::{Findings, GoroutineFinding, GroupFinding};
use crate::model::SiteHistogram;
use crate::report::{Report, ReportError};
use crate::summary::Summary;

/// Every line type, tagged with `kind` so a consumer can dispatch on one field.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line<'a> {
    Goroutine(&'a GoroutineFinding),
    Group(&'a GroupFinding),
    Histogram(&'a SiteHistogram),
    Summary(&'a Summary),
}

/// The whole report: goroutine findings, group findings, histograms, and a last
/// `summary` line, whose presence tells a reader the report is complete.
///
/// Unlike the text report, goroutine findings are not grouped by site: each is
/// its own line and consumers group as they like.
pub fn write(report: &Report, out: &mut dyn Write) -> Result<(), ReportError> {
    write_findings(&report.findings, out)?;
    for h in &report.summary.histograms {
        line(&Line::Histogram(h), out)?;
    }
    line(&Line::Summary(&report.summary), out)?;
    Ok(())
}

/// The whole report with goroutine findings grouped by site: one `group` line per
/// site (count, oldest, up to 20 goids, one full stack) instead of one line per
/// goroutine, so a leak of 20,000 goroutines is one line.
pub fn write_grouped(report: &Report, out: &mut dyn Write) -> Result<(), ReportError> {
    for g in report.sites.iter().chain(&report.findings.groups) {
        line(&Line::Group(g), out)?;
    }
    for h in &report.summary.histograms {
        line(&Line::Histogram(h), out)?;
    }
    line(&Line::Summary(&report.summary), out)?;
    Ok(())
}

/// Finding lines only, for a caller streaming findings as they fire.
pub fn write_findings(findings: &Findings, out: &mut dyn Write) -> Result<(), ReportError> {
    for g in &findings.goroutines {
        line(&Line::Goroutine(g), out)?;
    }
    for g in &findings.groups {
        line(&Line::Group(g), out)?;
    }
    Ok(())
}

fn line(line: &Line<'_>, out: &mut dyn Write) -> Result<(), ReportError> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Growth, Rule};
    use crate::input::{Frame, Object};
    use serde_json::Value;

    fn finding() -> GoroutineFinding {
        GoroutineFinding {
            rule: Rule::ParkedAtExit,
            goid: 42,
            wait_reason: "chan send".into(),
            parked_ns: 1_500_000_000,
            exact: true,
            object: Object::Channel {
                addr: 0xc000012345,
                elem_type: Some("int".into()),
            },
            frames: vec![
                Frame::new("runtime.gopark", "/go/src/runtime/proc.go", 460),
                Frame::new("main.leakySend", "/src/app/main.go", 42),
            ],
            start_function: Some("main.leakySend".into()),
            created_by: Some(Frame::new("main.main", "/src/app/main.go", 17)),
            parent_goid: Some(1),
            site: Frame::new("main.leakySend", "/src/app/main.go", 42),
            test: None,
            gc_proved_leak: false,
        }
    }

    fn report() -> Report {
        let mut example = finding();
        example.rule = Rule::Growing;
        let group = GroupFinding {
            rule: Rule::Growing,
            site: example.site.clone(),
            created_by: example.created_by.clone(),
            wait_reason: "chan send".into(),
            count: 52,
            oldest_ns: 30_000_000_000,
            growth: Some(Growth::new(10, 52, 30_000_000_000)),
            example,
            goids: vec![42, 43],
        };
        let summary = Summary {
            events: 10,
            drops: 1,
            probes_attached: 9,
            probes_failed: vec!["runtime.selectgo: missing".into()],
            symbols_missing: vec!["runtime.foo".into()],
            probe_hits: Default::default(),
            goroutines_seen: 3,
            goroutines_parked: 2,
            goroutines_dropped: 0,
            duration_ns: 5,
            stop: String::new(),
            program: None,
            output_lines_dropped: 0,
            findings_resolved: 0,
            histograms: vec![SiteHistogram {
                site: Frame::new("main.get", "/src/app/pool.go", 88),
                wait_reason: "chan send".into(),
                count: 1,
                p50_ns: 2,
                p99_ns: 3,
                max_ns: 4,
                total_ns: 5,
            }],
        };
        Report::new(
            Findings {
                goroutines: vec![finding()],
                groups: vec![group],
            },
            summary,
        )
    }

    fn lines() -> Vec<Value> {
        let mut out = Vec::new();
        write(&report(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn one_line_per_kind_summary_last() {
        let kinds: Vec<String> = lines()
            .iter()
            .map(|l| l["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["goroutine", "group", "histogram", "summary"]);
    }

    #[test]
    fn goroutine_line_fields() {
        let g = &lines()[0];
        assert_eq!(
            keys(g),
            [
                "created_by",
                "exact",
                "frames",
                "gc_proved_leak",
                "goid",
                "kind",
                "object",
                "parent_goid",
                "parked_ns",
                "rule",
                "site",
                "start_function",
                "wait_reason"
            ]
        );
        assert_eq!(g["rule"], "parked_at_exit");
        assert_eq!(g["goid"], 42);
        assert_eq!(g["parked_ns"], 1_500_000_000u64);
        assert_eq!(g["exact"], true);
        assert_eq!(g["gc_proved_leak"], false);
        assert_eq!(g["start_function"], "main.leakySend");
        assert_eq!(g["created_by"]["function"], "main.main");
        assert_eq!(g["created_by"]["line"], 17);
        assert_eq!(g["frames"][0]["function"], "runtime.gopark");
        assert_eq!(g["frames"][1]["file"], "/src/app/main.go");
        assert_eq!(g["object"]["kind"], "channel");
        assert_eq!(g["object"]["addr"], 0xc000012345u64);
        assert_eq!(g["object"]["elem_type"], "int");
    }

    #[test]
    fn group_line_fields() {
        let g = &lines()[1];
        assert_eq!(
            keys(g),
            [
                "count",
                "created_by",
                "example",
                "goids",
                "growth",
                "kind",
                "oldest_ns",
                "rule",
                "site",
                "wait_reason"
            ]
        );
        assert_eq!(g["rule"], "growing");
        assert_eq!(g["site"]["line"], 42);
        assert_eq!(g["growth"]["from"], 10);
        assert_eq!(g["growth"]["to"], 52);
        assert_eq!(g["growth"]["window_ns"], 30_000_000_000u64);
        assert_eq!(g["growth"]["per_minute"], 84.0);
        assert_eq!(g["goids"], serde_json::json!([42, 43]));
        assert_eq!(g["example"]["goid"], 42);
    }

    #[test]
    fn histogram_and_summary_fields() {
        let all = lines();
        let h = &all[2];
        assert_eq!(
            keys(h),
            [
                "count",
                "kind",
                "max_ns",
                "p50_ns",
                "p99_ns",
                "site",
                "total_ns",
                "wait_reason"
            ]
        );
        let s = &all[3];
        assert_eq!(
            keys(s),
            [
                "drops",
                "duration_ns",
                "events",
                "findings_resolved",
                "goroutines_dropped",
                "goroutines_parked",
                "goroutines_seen",
                "kind",
                "output_lines_dropped",
                "probe_hits",
                "probes_attached",
                "probes_failed",
                "symbols_missing"
            ]
        );
        assert_eq!(s["probes_failed"][0], "runtime.selectgo: missing");
        assert_eq!(s["drops"], 1);
    }

    #[test]
    fn every_object_kind_is_tagged() {
        for (object, kind) in [
            (Object::NilChannel, "nil_channel"),
            (Object::Mutex { addr: 1 }, "mutex"),
            (Object::RwMutex { addr: 1 }, "rw_mutex"),
            (Object::WaitGroup { addr: 1 }, "wait_group"),
            (Object::Semaphore { addr: 1 }, "semaphore"),
            (Object::Select { cases: 2 }, "select"),
            (Object::None, "none"),
        ] {
            let v = serde_json::to_value(&object).unwrap();
            assert_eq!(v["kind"], kind);
        }
    }

    #[test]
    fn unknowns_are_null() {
        let mut g = finding();
        g.start_function = None;
        g.created_by = None;
        g.parent_goid = None;
        let mut out = Vec::new();
        write_findings(
            &Findings {
                goroutines: vec![g],
                groups: vec![],
            },
            &mut out,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["start_function"].is_null());
        assert!(v["created_by"].is_null());
        assert!(v["parent_goid"].is_null());
    }
}

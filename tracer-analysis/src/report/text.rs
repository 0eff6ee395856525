//! The human report, in the words of Go's own goroutine dump
//! (`runtime/traceback.go`: `goroutineheader`, `traceback1`, `printcreatedby`),
//! so a reader who knows `SIGQUIT` output can read it without a legend.
//!
//! Differences from a Go dump: ages are printed for every goroutine (Go shows
//! them only past a minute) in the rule of [`human`], with `~` when the
//! park time is an estimate; function arguments are not printed (`f()`); and a
//! line after the stack names the object the goroutine waits on.

use std::io::Write;

use crate::findings::{Findings, GoroutineFinding, GroupFinding, Rule};
use crate::frames;
use crate::input::{Frame, Object};
use crate::model::SiteHistogram;
use crate::report::duration::{human, per_minute};
use crate::report::{Report, ReportError};
use crate::summary::Summary;

/// The whole report: findings grouped by site, growing groups, blocking
/// histograms, then the summary, which is printed even when everything is zero.
pub fn write(report: &Report, out: &mut dyn Write) -> Result<(), ReportError> {
    if report.sites.is_empty() && report.findings.groups.is_empty() {
        match report.summary.findings_resolved {
            0 => writeln!(out, "no stuck or leaking goroutines found")?,
            n => writeln!(
                out,
                "no goroutine is stuck now; {n} finding{} reported while tracing no longer hold{} (the goroutine resumed or exited)",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" },
            )?,
        }
        writeln!(out)?;
    }
    for group in report.sites.iter().chain(&report.findings.groups) {
        write_group(group, out)?;
        writeln!(out)?;
    }
    write_histograms(&report.summary.histograms, out)?;
    writeln!(out)?;
    write_summary(&report.summary, out)?;
    Ok(())
}

/// One line per finding, for a caller streaming findings as they fire.
pub fn write_findings(findings: &Findings, out: &mut dyn Write) -> Result<(), ReportError> {
    for g in &findings.goroutines {
        writeln!(out, "{}", goroutine_line(g))?;
    }
    for g in &findings.groups {
        // A site with one goroutine reads best as that goroutine.
        if g.rule != Rule::Growing && g.count == 1 {
            writeln!(out, "{}", goroutine_line(&g.example))?;
        } else {
            writeln!(out, "{}", group_header(g))?;
        }
    }
    Ok(())
}

/// A group: its header, one representative goroutine, and the other goids.
pub fn write_group(group: &GroupFinding, out: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(out, "{}", group_header(group))?;
    write_goroutine(&group.example, out)?;
    if group.count > 1 {
        let ids: Vec<String> = group.goids.iter().map(u64::to_string).collect();
        let more = group.count.saturating_sub(group.goids.len() as u64);
        write!(out, "goroutines {}", ids.join(", "))?;
        if more > 0 {
            write!(out, " and {more} more")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The first line of a group.
pub fn group_header(group: &GroupFinding) -> String {
    let at = format!(
        "{} in {}",
        location(&group.site),
        print_name(&group.site.function)
    );
    match (group.rule, &group.growth) {
        (Rule::Growing, Some(growth)) => {
            let who = match &group.created_by {
                Some(c) => format!(
                    "created by {} at {} and parked",
                    print_name(&c.function),
                    location(c)
                ),
                None => "parked".to_string(),
            };
            format!(
                "goroutines {who} at {at} grew from {} to {} in {} ({}) [{}] — rule {}",
                growth.from,
                growth.to,
                human(growth.window_ns),
                per_minute(growth.per_minute),
                group.wait_reason,
                group.rule,
            )
        }
        _ => {
            format!(
                "{} {} parked at {at} [{}] — rule {}{}, oldest {}",
                group.count,
                if group.count == 1 {
                    "goroutine"
                } else {
                    "goroutines"
                },
                group.wait_reason,
                group.rule,
                rule_note(group.rule),
                age(group.oldest_ns, group.example.exact),
            ) + &in_test(&group.example)
        }
    }
}

/// A one-line account of a goroutine finding.
pub fn goroutine_line(g: &GoroutineFinding) -> String {
    format!(
        "goroutine {} [{}, {}] parked at {} in {} — rule {}{}{}",
        g.goid,
        state(g),
        age(g.parked_ns, g.exact),
        location(&g.site),
        print_name(&g.site.function),
        g.rule,
        rule_note(g.rule),
        in_test(g),
    )
}

/// ` (test TestLeak)` when a test started the goroutine.
fn in_test(g: &GoroutineFinding) -> String {
    g.test
        .as_ref()
        .map_or(String::new(), |t| format!(" (test {t})"))
}

/// The wait reason as Go's dump prints it: `chan send (leaked)` for a goroutine
/// its GC proved unreachable.
fn state(g: &GoroutineFinding) -> String {
    if g.gc_proved_leak {
        format!("{} (leaked)", g.wait_reason)
    } else {
        g.wait_reason.to_string()
    }
}

/// What a rule's name alone does not say.
fn rule_note(rule: Rule) -> &'static str {
    match rule {
        Rule::Leaked => " (proved unreachable by the Go GC)",
        _ => "",
    }
}

/// A goroutine as a Go dump shows it, plus what it waits on.
pub fn write_goroutine(g: &GoroutineFinding, out: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(
        out,
        "goroutine {} [{}, {}]:",
        g.goid,
        state(g),
        age(g.parked_ns, g.exact)
    )?;
    for i in frames::go_dump_frames(&g.frames) {
        if let Some(f) = g.frames.get(i) {
            writeln!(
                out,
                "{}()\n\t{}:{}",
                print_name(&f.function),
                f.file,
                f.line
            )?;
        }
    }
    // Like printcreatedby: not for the main goroutine, nor when the creator is a
    // frame a dump would hide.
    if let Some(c) = &g.created_by {
        if g.goid != 1 && frames::shown_in_go_dump(&c.function, false) {
            write!(out, "created by {}", print_name(&c.function))?;
            if let Some(parent) = g.parent_goid.filter(|&p| p != 0) {
                write!(out, " in goroutine {parent}")?;
            }
            writeln!(out, "\n\t{}:{}", c.file, c.line)?;
        }
    }
    if let Some(line) = object_line(&g.object) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// What the goroutine waits on, or `None` when the probes could not tell.
pub fn object_line(object: &Object) -> Option<String> {
    Some(match object {
        Object::Channel {
            addr,
            elem_type: Some(t),
        } => format!("waiting on channel {addr:#x} (chan {t})"),
        Object::Channel {
            addr,
            elem_type: None,
        } => format!("waiting on channel {addr:#x}"),
        Object::NilChannel => "waiting on nil channel (blocks forever)".to_string(),
        Object::Mutex { addr } => format!("waiting on sync.Mutex {addr:#x}"),
        Object::RwMutex { addr } => format!("waiting on sync.RWMutex {addr:#x}"),
        Object::WaitGroup { addr } => format!("waiting on sync.WaitGroup {addr:#x}"),
        Object::Semaphore { addr } => format!("waiting on semaphore {addr:#x}"),
        Object::Select { cases: 0 } => {
            "waiting in select with no cases (blocks forever)".to_string()
        }
        Object::Select { cases: 1 } => "waiting in select with 1 case".to_string(),
        Object::Select { cases } => format!("waiting in select with {cases} cases"),
        Object::None => return None,
    })
}

/// Per-site blocking durations of the parks that ended.
pub fn write_histograms(
    histograms: &[SiteHistogram],
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    if histograms.is_empty() {
        writeln!(
            out,
            "blocking durations by site: no park ended with a known duration"
        )?;
        return Ok(());
    }
    writeln!(out, "blocking durations by site (parks that ended):")?;
    for h in histograms {
        writeln!(
            out,
            "{} in {} [{}]: {} {}, p50 {}, p99 {}, max {}",
            location(&h.site),
            print_name(&h.site.function),
            h.wait_reason,
            h.count,
            if h.count == 1 { "park" } else { "parks" },
            human(h.p50_ns),
            human(h.p99_ns),
            human(h.max_ns),
        )?;
    }
    Ok(())
}

/// The footer; every count is printed even when zero, so silence never hides a
/// blind spot.
pub fn write_summary(s: &Summary, out: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(
        out,
        "summary: {} events, {} drops, {} probes attached, {} failed, {} symbols missing",
        s.events,
        s.drops,
        s.probes_attached,
        s.probes_failed.len(),
        s.symbols_missing.len(),
    )?;
    if !s.probe_hits.is_empty() {
        let hits: Vec<String> = s
            .probe_hits
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        writeln!(out, "probe hits: {}", hits.join(", "))?;
    }
    for p in &s.probes_failed {
        writeln!(out, "probe failed: {p}")?;
    }
    for m in &s.symbols_missing {
        writeln!(out, "symbol missing: {m}")?;
    }
    writeln!(
        out,
        "goroutines: {} seen, {} parked, {} dropped; traced for {}",
        s.goroutines_seen,
        s.goroutines_parked,
        s.goroutines_dropped,
        human(s.duration_ns),
    )?;
    if s.output_lines_dropped > 0 {
        writeln!(
            out,
            "output: {} streamed lines dropped (the reader was too slow)",
            s.output_lines_dropped
        )?;
    }
    if !s.stop.is_empty() {
        writeln!(out, "stopped: {}", s.stop)?;
    }
    if let Some(p) = &s.program {
        writeln!(out, "program: {p}")?;
    }
    Ok(())
}

/// `file.go:42`: the base name is enough next to the function name.
fn location(f: &Frame) -> String {
    let base = f.file.rsplit('/').next().unwrap_or(&f.file);
    format!("{base}:{}", f.line)
}

fn age(ns: u64, exact: bool) -> String {
    if exact {
        human(ns)
    } else {
        format!("~{}", human(ns))
    }
}

/// Go's `funcNamePiecesForPrint`: a generic instantiation prints its shape
/// arguments as `[...]`.
fn print_name(name: &str) -> String {
    match (name.find('['), name.rfind(']')) {
        (Some(i), Some(j)) if j > i => format!("{}[...]{}", &name[..i], &name[j + 1..]),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Growth;

    const MINUTE: u64 = 60_000_000_000;

    fn leaky(goid: u64, parked_ns: u64) -> GoroutineFinding {
        GoroutineFinding {
            rule: Rule::LongParked,
            goid,
            wait_reason: "chan send".into(),
            parked_ns,
            exact: true,
            object: Object::Channel {
                addr: 0xc000012345,
                elem_type: Some("int".into()),
            },
            frames: vec![
                Frame::new("runtime.gopark", "/go/src/runtime/proc.go", 460),
                Frame::new("runtime.chansend", "/go/src/runtime/chan.go", 283),
                Frame::new("runtime.chansend1", "/go/src/runtime/chan.go", 161),
                Frame::new("main.leakySend", "/src/app/main.go", 42),
                Frame::new("main.main.gowrap1", "/src/app/main.go", 17),
                Frame::new("runtime.goexit", "/go/src/runtime/asm_amd64.s", 1700),
            ],
            start_function: Some("main.main.gowrap1".into()),
            created_by: Some(Frame::new("main.main", "/src/app/main.go", 17)),
            parent_goid: Some(1),
            site: Frame::new("main.leakySend", "/src/app/main.go", 42),
            test: None,
            gc_proved_leak: false,
        }
    }

    fn summary() -> Summary {
        Summary {
            events: 1234,
            drops: 0,
            probes_attached: 9,
            probes_failed: vec!["runtime.selectgo: uprobe: no such symbol".into()],
            symbols_missing: vec![],
            probe_hits: [("park".to_string(), 12)].into(),
            goroutines_seen: 57,
            goroutines_parked: 5,
            goroutines_dropped: 0,
            duration_ns: 6 * MINUTE,
            stop: String::new(),
            program: None,
            output_lines_dropped: 0,
            findings_resolved: 0,
            histograms: vec![SiteHistogram {
                site: Frame::new("main.(*pool).get", "/src/app/pool.go", 88),
                wait_reason: "chan send".into(),
                count: 12,
                p50_ns: 1_200_000,
                p99_ns: 40_000_000,
                max_ns: 1_300_000_000,
                total_ns: 2_000_000_000,
            }],
        }
    }

    #[test]
    fn golden_report() {
        let goroutines = vec![
            leaky(42, 5 * MINUTE + 7_000_000_000),
            leaky(43, 4 * MINUTE),
            leaky(44, 12_000_000_000),
        ];
        let mut grower = leaky(60, 30_000_000_000);
        grower.rule = Rule::Growing;
        let growing = GroupFinding {
            rule: Rule::Growing,
            site: grower.site.clone(),
            created_by: grower.created_by.clone(),
            wait_reason: "chan send".into(),
            count: 52,
            oldest_ns: 30_000_000_000,
            growth: Some(Growth::new(10, 52, 30_000_000_000)),
            example: grower,
            goids: (60..80).collect(),
        };
        let report = Report::new(
            Findings {
                goroutines,
                groups: vec![growing],
            },
            summary(),
        );
        let mut out = Vec::new();
        write(&report, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "\
3 goroutines parked at main.go:42 in main.leakySend [chan send] — rule long_parked, oldest 5 minutes
goroutine 42 [chan send, 5 minutes]:
main.leakySend()
\t/src/app/main.go:42
main.main.gowrap1()
\t/src/app/main.go:17
created by main.main in goroutine 1
\t/src/app/main.go:17
waiting on channel 0xc000012345 (chan int)
goroutines 42, 43, 44

goroutines created by main.main at main.go:17 and parked at main.go:42 in main.leakySend grew from 10 to 52 in 30s (84/min) [chan send] — rule growing
goroutine 60 [chan send, 30s]:
main.leakySend()
\t/src/app/main.go:42
main.main.gowrap1()
\t/src/app/main.go:17
created by main.main in goroutine 1
\t/src/app/main.go:17
waiting on channel 0xc000012345 (chan int)
goroutines 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79 and 32 more

blocking durations by site (parks that ended):
pool.go:88 in main.(*pool).get [chan send]: 12 parks, p50 1.2ms, p99 40ms, max 1.3s

summary: 1234 events, 0 drops, 9 probes attached, 1 failed, 0 symbols missing
probe hits: park 12
probe failed: runtime.selectgo: uprobe: no such symbol
goroutines: 57 seen, 5 parked, 0 dropped; traced for 6 minutes
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn empty_report_still_has_every_section() {
        let report = Report::new(Findings::default(), Summary::default());
        let mut out = Vec::new();
        write(&report, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
no stuck or leaking goroutines found

blocking durations by site: no park ended with a known duration

summary: 0 events, 0 drops, 0 probes attached, 0 failed, 0 symbols missing
goroutines: 0 seen, 0 parked, 0 dropped; traced for 0ns
"
        );
    }

    #[test]
    fn single_goroutine_group_and_estimated_age() {
        let mut g = leaky(7, 90_000_000_000);
        g.exact = false;
        g.rule = Rule::ParkedAtExit;
        g.created_by = None;
        g.object = Object::NilChannel;
        let report = Report::new(
            Findings {
                goroutines: vec![g],
                groups: vec![],
            },
            Summary::default(),
        );
        let mut out = Vec::new();
        write_group(&report.sites[0], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
1 goroutine parked at main.go:42 in main.leakySend [chan send] — rule parked_at_exit, oldest ~1 minute
goroutine 7 [chan send, ~1 minute]:
main.leakySend()
\t/src/app/main.go:42
main.main.gowrap1()
\t/src/app/main.go:17
waiting on nil channel (blocks forever)
"
        );
    }

    #[test]
    fn main_goroutine_and_runtime_creators_have_no_created_by() {
        let mut g = leaky(1, 1);
        let mut out = Vec::new();
        write_goroutine(&g, &mut out).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("created by"));
        g.goid = 9;
        g.created_by = Some(Frame::new(
            "runtime.gcenable",
            "/go/src/runtime/mgc.go",
            214,
        ));
        let mut out = Vec::new();
        write_goroutine(&g, &mut out).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("created by"));
    }

    #[test]
    fn runtime_only_stack_is_printed_whole() {
        let mut g = leaky(9, 1);
        g.frames = vec![
            Frame::new("runtime.gopark", "/go/src/runtime/proc.go", 460),
            Frame::new("runtime.bgsweep", "/go/src/runtime/mgcsweep.go", 300),
        ];
        let mut out = Vec::new();
        write_goroutine(&g, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("runtime.gopark()\n\t/go/src/runtime/proc.go:460\n"));
        assert!(text.contains("runtime.bgsweep()"));
    }

    #[test]
    fn object_lines() {
        let line = |o: Object| object_line(&o);
        assert_eq!(
            line(Object::Channel {
                addr: 0xc0001,
                elem_type: None
            })
            .as_deref(),
            Some("waiting on channel 0xc0001")
        );
        assert_eq!(
            line(Object::Mutex { addr: 0x10 }).as_deref(),
            Some("waiting on sync.Mutex 0x10")
        );
        assert_eq!(
            line(Object::RwMutex { addr: 0x10 }).as_deref(),
            Some("waiting on sync.RWMutex 0x10")
        );
        assert_eq!(
            line(Object::WaitGroup { addr: 0x10 }).as_deref(),
            Some("waiting on sync.WaitGroup 0x10")
        );
        assert_eq!(
            line(Object::Semaphore { addr: 0x10 }).as_deref(),
            Some("waiting on semaphore 0x10")
        );
        assert_eq!(
            line(Object::Select { cases: 0 }).as_deref(),
            Some("waiting in select with no cases (blocks forever)")
        );
        assert_eq!(
            line(Object::Select { cases: 3 }).as_deref(),
            Some("waiting in select with 3 cases")
        );
        assert_eq!(line(Object::None), None);
    }

    #[test]
    fn generic_names_print_like_go() {
        assert_eq!(
            print_name("main.Map[go.shape.int,go.shape.string].Get"),
            "main.Map[...].Get"
        );
        assert_eq!(print_name("main.f"), "main.f");
        assert_eq!(print_name("main.odd]x["), "main.odd]x[");
    }

    #[test]
    fn streaming_lines() {
        let findings = Findings {
            goroutines: vec![leaky(42, 12_000_000_000)],
            groups: vec![],
        };
        let mut out = Vec::new();
        write_findings(&findings, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "goroutine 42 [chan send, 12s] parked at main.go:42 in main.leakySend — rule long_parked\n"
        );
    }

    #[test]
    fn leaked_goroutines_read_as_go_dumps_them() {
        let mut g = leaky(42, 12_000_000_000);
        g.rule = Rule::Leaked;
        g.gc_proved_leak = true;
        assert_eq!(
            goroutine_line(&g),
            "goroutine 42 [chan send (leaked), 12s] parked at main.go:42 in main.leakySend — rule leaked (proved unreachable by the Go GC)"
        );
        let mut out = Vec::new();
        write_goroutine(&g, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("goroutine 42 [chan send (leaked), 12s]:\n"),
            "{text}"
        );
    }
}

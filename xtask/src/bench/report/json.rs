//! `results.json`: the figures of `results.md` with every sample and ratio, for
//! tools that compare benches. It reads the same rows and stats as the markdown and
//! computes nothing of its own, so the two files never disagree.
use super::json_writer::J;
use super::Report;
use crate::bench::samples::{Agent, AttachRun, FloodRun, Row};
use crate::bench::workloads::http::{HTTP_CONNS, HTTP_RATE_SHARE};
use crate::bench::workloads::locksites::SITE_FUNCS;

impl Report<'_> {
    pub fn json(&self) -> J {
        let p = &self.ctx.p;
        let agent = |a: &Agent| -> J {
            J::obj(vec![
                ("cpu_s", J::Num(a.cpu_s)),
                ("wall_s", J::Num(a.wall_s)),
                ("peak_rss_kb", J::Int(a.peak_rss_kb)),
                ("attached_s", J::opt(a.attached_s)),
                ("teardown_s", J::opt(a.teardown_s())),
                ("events", J::Int(a.events)),
                ("drops", J::Int(a.drops)),
                ("duration_ns", J::Int(a.duration_ns)),
                ("probe_hits", J::Int(a.hits)),
                ("park_probes_on", J::opt(a.parks_on)),
                ("lock_sites_on", J::opt(a.locks_on)),
                ("estimated_cost_percent", J::opt(a.estimated_cost_percent)),
                ("switches_off", J::Int(a.switches)),
                ("switch_ns", J::Int(a.switch_ns)),
            ])
        };
        let row = |r: &Row| -> J {
            let mut o = vec![
                ("workload", J::s(&r.workload)),
                ("config", J::s(r.config.id)),
                ("label", J::s(r.config.label)),
            ];
            if let Some(why) = &r.na {
                o.push(("unavailable", J::s(why)));
                return J::obj(o);
            }
            if r.n > 0 {
                o.push(("n", J::Int(r.n)));
            }
            o.extend([
                ("median_rate", J::opt(r.rate())),
                ("median_ratio", J::opt(r.ratio())),
                ("median_ratio_error", J::opt(r.ratio_error())),
                ("ratios", J::nums(&r.ratios)),
                (
                    "rates",
                    J::nums(&r.samples.iter().map(|s| s.rate).collect::<Vec<_>>()),
                ),
                ("agent", J::Arr(r.agents().into_iter().map(agent).collect())),
            ]);
            J::obj(o)
        };
        let part = |c: &super::parts::CostPart| -> J {
            J::obj(vec![
                ("config", J::s(c.config)),
                ("label", J::s(c.label)),
                ("hits_per_request", J::Num(c.hits_per_request)),
                ("machine_us_per_hit", J::opt(c.machine_us_per_hit)),
                ("agent_us_per_hit", J::opt(c.agent_us_per_hit)),
                ("switches_per_s", J::Num(c.switches_per_s)),
                ("ms_per_switch", J::opt(c.ms_per_switch)),
            ])
        };
        let (best, _) = self.drain();
        let flood = self
            .flood
            .iter()
            .map(|f| {
                J::obj(vec![
                    ("pairs", J::Int(f.pairs)),
                    ("n", J::Int(f.n)),
                    ("events_per_sec", J::Num(f.rate())),
                    ("events_per_sec_during_workload", J::Num(f.work_rate())),
                    ("workload_ns", J::Int(f.work_ns)),
                    ("agent_stopped_s", J::opt(f.paused_s)),
                    ("agent", agent(&f.agent)),
                ])
            })
            .collect();
        let attach_run = |r: &AttachRun| -> J {
            J::obj(vec![
                ("agent", agent(&r.agent)),
                (
                    "parked_reported",
                    r.snapshot.as_ref().map_or(J::Null, |s| J::Int(s.0)),
                ),
                (
                    "snapshot_read",
                    r.snapshot.as_ref().map_or(J::Null, |s| J::s(&s.1)),
                ),
            ])
        };
        let attach = self
            .attach
            .iter()
            .map(|a| {
                J::obj(vec![
                    ("mode", J::s(&a.mode)),
                    ("unavailable", a.na.as_deref().map_or(J::Null, J::s)),
                    ("runs", J::Arr(a.runs.iter().map(attach_run).collect())),
                ])
            })
            .collect();
        let bin = self.bin.map_or(J::Null, |b| {
            J::Obj(
                [
                    ("path".to_string(), J::s(&b.path.display().to_string())),
                    ("bytes".to_string(), J::Int(b.bytes)),
                    ("functions".to_string(), J::Int(b.funcs as u64)),
                    (
                        "sections".to_string(),
                        J::Obj(
                            b.sections
                                .iter()
                                .filter(|(n, _)| !n.is_empty())
                                .map(|(n, s)| (n.clone(), J::Int(*s)))
                                .collect(),
                        ),
                    ),
                ]
                .into(),
            )
        });
        let targets = self
            .targets()
            .iter()
            .map(|t| {
                J::obj(vec![
                    ("target", J::s(&t.what)),
                    ("measured", J::s(&t.measured)),
                    ("status", J::s(&t.status)),
                ])
            })
            .collect();
        J::obj(vec![
            ("quick", J::Bool(p.quick)),
            ("machine", J::s(&self.machine())),
            ("elapsed_s", J::Num(self.elapsed.as_secs_f64())),
            ("rounds", J::Int(p.rounds as u64)),
            ("targets", J::Arr(targets)),
            ("workloads", J::Arr(self.rows.iter().map(row).collect())),
            (
                "http",
                J::obj(vec![
                    ("seconds", J::Int(p.http_secs)),
                    ("conns", J::Int(u64::from(HTTP_CONNS))),
                    ("rounds", J::Int(p.http_rounds as u64)),
                    ("rows", J::Arr(self.http.iter().map(row).collect())),
                ]),
            ),
            (
                "http_lock_sites",
                J::obj(vec![
                    ("seconds", J::Int(p.http_secs)),
                    ("conns", J::Int(u64::from(HTTP_CONNS))),
                    ("site_functions", J::Int(SITE_FUNCS as u64)),
                    ("rows", J::Arr(self.sites.iter().map(row).collect())),
                ]),
            ),
            (
                "cost_parts",
                J::Arr(self.cost_parts().iter().map(part).collect()),
            ),
            (
                "http_fixed_rate",
                J::obj(vec![
                    ("seconds", J::Int(p.http_secs)),
                    ("conns", J::Int(u64::from(HTTP_CONNS))),
                    ("rounds", J::Int(p.http_rate_rounds as u64)),
                    ("share_of_untraced_rate", J::Num(HTTP_RATE_SHARE)),
                    ("unit", J::s("requests per second of service CPU time")),
                    ("rows", J::Arr(self.http_rate.iter().map(row).collect())),
                ]),
            ),
            (
                "flood",
                J::obj(vec![
                    ("max_rate_without_drop", J::opt(best.map(FloodRun::rate))),
                    ("runs", J::Arr(flood)),
                ]),
            ),
            (
                "attach",
                J::obj(vec![("binary", bin), ("modes", J::Arr(attach))]),
            ),
            (
                "snapshot",
                J::obj(vec![
                    ("goroutines", J::Int(p.snapshot_goroutines)),
                    (
                        "runs",
                        J::Arr(self.snapshot.iter().map(attach_run).collect()),
                    ),
                ]),
            ),
            (
                "agent_fleet",
                self.fleet.map_or(J::Null, |f| {
                    J::obj(vec![
                        ("targets", J::Int(f.targets as u64)),
                        ("attached", J::Int(f.attached as u64)),
                        ("peak_rss_kb", J::Int(f.agent.peak_rss_kb)),
                        ("cpu_s", J::Num(f.agent.cpu_s)),
                    ])
                }),
            ),
            (
                "slow_modes",
                J::Obj(
                    self.ctx
                        .slow
                        .iter()
                        .map(|(m, s)| (m.to_string(), J::Num(*s)))
                        .collect(),
                ),
            ),
            (
                "errors",
                J::Arr(self.errors.iter().map(|e| J::s(e)).collect()),
            ),
        ])
    }
}

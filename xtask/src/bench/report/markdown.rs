//! `results.md`: the method, the targets, the workload and HTTP tables, and what was
//! not measured and why. Wording and layout: medians and ratios come from `stats`,
//! never computed here, so the markdown and the JSON quote the same figures.
use super::format::{mb, opt_secs, thousands};
use super::Report;
use crate::bench::configs::{config, How};
use crate::bench::runner::SLOW_SESSION_SECS;
use crate::bench::samples::{Agent, Row};
use crate::bench::stats::{min_max, quartiles};
use crate::bench::workloads::http::{HTTP_CONNS, HTTP_RATE_SHARE};
use crate::bench::workloads::locksites::SITE_FUNCS;
use crate::bench::workloads::micro::WORKLOADS;
use std::fmt::Write as _;

impl Report<'_> {
    fn table(&self, md: &mut String, rows: &[Row], unit: &str) {
        let _ = writeln!(
            md,
            "| workload | config | ratio vs untraced (median) | ratio range | median {unit} \
             | agent CPU (share of its wall time) | agent peak RSS | tracer start / stop \
             | events/s | drops |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows {
            let name = if r.n > 0 && r.na.is_none() {
                format!("{} (n={})", r.workload, thousands(r.n as f64))
            } else {
                r.workload.clone()
            };
            if let Some(why) = &r.na {
                let short = if why.starts_with("mode not available") {
                    "n/a (mode not available)".to_string()
                } else {
                    format!("n/a ({why})")
                };
                let _ = writeln!(
                    md,
                    "| {name} | {} | {short} | | | | | | | |",
                    r.config.label
                );
                continue;
            }
            let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.3}"));
            let range = if r.once && r.ratios.len() == 1 {
                "1 run".to_string()
            } else {
                min_max(&r.ratios).map_or("-".into(), |(a, b)| format!("{a:.3}–{b:.3}"))
            };
            let rate = r.rate().map_or("-".into(), thousands);
            let (mut cpu, mut rss, mut startstop, mut eps, mut drops) = (
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            );
            if !r.agents().is_empty() {
                let c = r.agent_median(|a| Some(a.cpu_s));
                let share = r.agent_median(|a| Some(a.cpu_s / a.wall_s.max(1e-9)));
                cpu = format!("{} ({:.0}%)", opt_secs(c), share.unwrap_or(0.0) * 100.0);
                rss = r
                    .peak_kb()
                    .map_or("-".into(), |kb| format!("{:.1} MB", mb(kb)));
                startstop = format!(
                    "{} / {}",
                    opt_secs(r.agent_median(|a| a.attached_s)),
                    opt_secs(r.agent_median(Agent::teardown_s))
                );
                eps = r
                    .agent_median(|a| Some(a.events as f64 / (a.duration_ns.max(1) as f64 / 1e9)))
                    .map_or("-".into(), thousands);
                drops = r.drops().map_or("-".into(), |d| thousands(d as f64));
            }
            let _ = writeln!(
                md,
                "| {name} | {} | {ratio} | {range} | {rate} | {cpu} | {rss} | {startstop} | {eps} | {drops} |",
                r.config.label
            );
        }
    }

    /// An HTTP table: the median ratio with its standard error and the middle
    /// half of the ratios, the rounds, and what the budget did.
    fn http_table(&self, md: &mut String, rows: &[Row], unit: &str) {
        let _ = writeln!(
            md,
            "| workload | config | ratio vs untraced (median ± its error) | middle half of ratios \
             | rounds | median {unit} | probes on (parks / locks) | agent CPU (share of its wall time) \
             | events/s | drops |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows {
            if let Some(why) = &r.na {
                let _ = writeln!(
                    md,
                    "| {} | {} | n/a ({why}) | | | | | | | |",
                    r.workload, r.config.label
                );
                continue;
            }
            let ratio = match (r.ratio(), r.ratio_error()) {
                (Some(x), Some(e)) => format!("{x:.3} ± {e:.3}"),
                (Some(x), None) => format!("{x:.3}"),
                _ => "-".into(),
            };
            let iqr = quartiles(&r.ratios).map_or("-".into(), |(a, b)| format!("{a:.3}–{b:.3}"));
            let rate = r.rate().map_or("-".into(), thousands);
            let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
            let on = match (
                r.agent_median(|a| a.parks_on),
                r.agent_median(|a| a.locks_on),
            ) {
                (None, None) => String::new(),
                (p, None) => pct(p),
                (p, l) => format!("{} / {}", pct(p), pct(l)),
            };
            let (mut cpu, mut eps, mut drops) = (String::new(), String::new(), String::new());
            if !r.agents().is_empty() {
                let c = r.agent_median(|a| Some(a.cpu_s));
                let share = r.agent_median(|a| Some(a.cpu_s / a.wall_s.max(1e-9)));
                cpu = format!("{} ({:.0}%)", opt_secs(c), share.unwrap_or(0.0) * 100.0);
                eps = r
                    .agent_median(|a| Some(a.events as f64 / (a.duration_ns.max(1) as f64 / 1e9)))
                    .map_or("-".into(), thousands);
                drops = r.drops().map_or("-".into(), |d| thousands(d as f64));
            }
            let _ = writeln!(
                md,
                "| {} | {} | {ratio} | {iqr} | {} | {rate} | {on} | {cpu} | {eps} | {drops} |",
                r.workload,
                r.config.label,
                r.ratios.len()
            );
        }
    }

    /// Where the probes' cost goes (see `parts`).
    fn parts_md(&self, md: &mut String) {
        let parts = self.cost_parts();
        if parts.is_empty() {
            return;
        }
        md.push_str(
            "\n## Where the cost goes (saturated HTTP service)\n\nMachine time per hit = the \
             throughput lost, as machine time (all cores) per request, over the probe hits per \
             request; trap only = the probes count their hit and return; no stack = a record \
             without the user stack; agent = the tracer's own CPU time per hit (reading and \
             applying records). Switches: how often the budget detached the probes, and the \
             agent's time in one attach or detach (the kernel writes or removes the breakpoints \
             in those calls; the budget charges the agent's CPU time, switches included).\n\n\
             | config | hits per request | machine µs per hit | agent µs per hit | switches off per s \
             | agent ms per switch |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        for c in parts {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {} | {:.1} | {} |",
                c.label,
                c.hits_per_request,
                f(c.machine_us_per_hit),
                f(c.agent_us_per_hit),
                c.switches_per_s,
                f(c.ms_per_switch)
            );
        }
    }

    pub fn markdown(&self) -> String {
        let p = &self.ctx.p;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# tracer benchmark ({})\n\nMachine: {}. Bench took {:.0} s.\n",
            if p.quick {
                "quick smoke run: one iteration, tiny sizes — not a measurement"
            } else {
                "full"
            },
            self.machine(),
            self.elapsed.as_secs_f64()
        );
        let sizing = if p.quick {
            "Quick runs use fixed small sizes (the n in each row).".to_string()
        } else {
            format!(
                "Workload runs are sized to last about {} s each under every configuration \
                 (the n in each row).",
                p.run_secs
            )
        };
        let _ = writeln!(
            md,
            "Method: configurations alternate run by run (untraced, tracer modes, Go's tools, \
             then again, each round starting one configuration later) for {} round(s); a ratio is a configuration's throughput divided by \
             the untraced throughput of the same round, and the tables quote the median of \
             those ratios (1.000 = no cost, 0.900 = 10% slower). {sizing} A tracer mode whose \
             session costs more than {SLOW_SESSION_SECS} s on top of its workload runs once per \
             workload (\"1 run\", compared with the median untraced run){}. Traced runs use \
             `tracer run --format json --mode MODE -- ...`; snapshot mode (attach only) is one \
             `tracer attach PID --mode snapshot` halfway through the HTTP load. Agent CPU is \
             utime+stime of the tracer process and its share of the tracer's wall time; peak RSS \
             is its VmHWM sampled every few ms; tracer start / stop is the time from its start \
             to its \"attached\" line and from its \"stopped\" line to its exit; events/s and \
             drops come from its summary line. MB = 10^6 bytes.\n",
            p.rounds,
            if p.quick {
                ", and is skipped for the rest of a quick run"
            } else {
                ""
            },
        );
        md.push_str("## Targets\n\n| target | measured | status |\n|---|---|---|\n");
        for t in self.targets() {
            let _ = writeln!(md, "| {} | {} | {} |", t.what, t.measured, t.status);
        }
        let _ = writeln!(md, "\n## Workloads (ops/s)\n");
        for (w, op, _) in WORKLOADS {
            let _ = writeln!(md, "- {w}: one op = {op}");
        }
        md.push('\n');
        self.table(&mut md, self.rows, "ops/s");
        let _ = writeln!(
            md,
            "\n## net/http JSON service (requests/s)\n\n`bench -workload httpservice` on \
             127.0.0.1 driven by `loadgen -conns {HTTP_CONNS} -duration {}s` (50% /get, 30% \
             /put, 20% /work). One service process serves the whole table, as a user measures \
             a running service: every other window of load is untraced, and each other \
             window's ratio is its rate over the mean of the untraced windows just before and \
             just after it (the host's speed drifts by several percent within seconds); the \
             untraced row gives each untraced window against its own neighbours, the bench's \
             noise. Each traced window runs under `tracer attach PID --mode MODE` started \
             before it (once attached) and stopped after it (snapshot mode: one attach halfway \
             through); Go's tools, turned on by a flag at start, get a process of their own. \
             Every configuration runs {} round(s) ({} for the reference and \
             cost-part rows); the judged ones (the modes at the default budget) go on, up to {} \
             rounds, until the standard error of each median (1.2533 sd / sqrt(rounds)) is 1% \
             or less.\n",
            p.http_secs, p.http_rounds, p.reference_rounds, p.http_max_rounds
        );
        self.http_table(&mut md, self.http, "req/s");
        self.parts_md(&mut md);
        let rate = self
            .http
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
            .map_or("-".into(), |r| thousands((r * HTTP_RATE_SHARE).round()));
        let _ = writeln!(
            md,
            "\n## net/http JSON service at a fixed rate (requests per second of the service's CPU time)\n\n\
             The same service and mix, with loadgen pacing {rate} requests/s ({:.0}% of the untraced \
             saturated rate above) for {}s, {} round(s). The figure is requests over the service's \
             own CPU time (utime+stime, probe traps included; the agent's CPU is its own column): \
             the capacity it would have were it CPU-bound. On this 2-core machine it varies less \
             from run to run than saturated throughput, where the load generator and the service \
             contend for the same cores.\n",
            HTTP_RATE_SHARE * 100.0,
            p.http_secs,
            p.http_rate_rounds
        );
        self.http_table(&mut md, self.http_rate, "req per service CPU-second");
        if !self.sites.is_empty() {
            let _ = writeln!(
                md,
                "\n## The service with many lock sites (requests/s)\n\nThe same service and \
                 load, saturated, built with {SITE_FUNCS} generated functions that each take a \
                 lock at a site of their own (a `sync.Mutex`, or one in four an `RWMutex` read \
                 lock): each /get and /put calls 16 of them, so `--mode locks` probes some \
                 {} lock sites, as on a large real service.\n",
                thousands((SITE_FUNCS * 2) as f64)
            );
            self.http_table(&mut md, self.sites, "req/s");
        }
        self.flood_md(&mut md);
        self.attach_md(&mut md);
        self.snapshot_md(&mut md);
        self.fleet_md(&mut md);
        let mut na: Vec<_> = self.ctx.na.iter().collect();
        na.sort();
        if !na.is_empty() || !self.ctx.slow.is_empty() {
            md.push_str("\n## Not measured, or measured less\n\n");
            for (id, why) in na {
                let _ = writeln!(md, "- {}: {why}", config(id).label);
            }
            let mut slow: Vec<_> = self.ctx.slow.iter().collect();
            slow.sort_by(|a, b| a.0.cmp(b.0));
            for (mode, s) in slow {
                let _ = writeln!(
                    md,
                    "- {mode} mode: a session took {s:.1} s more than its workload; it ran \
                     once per workload{}",
                    if p.quick {
                        " and was skipped for the rest of the quick run"
                    } else {
                        ""
                    }
                );
            }
        }
        if !self.errors.is_empty() {
            md.push_str("\n## Errors\n\n");
            for e in self.errors {
                let _ = writeln!(md, "```\n{e}\n```");
            }
        }
        md
    }
}

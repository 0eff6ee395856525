//! The agent's sections of `results.md`: drain rate and what happens beyond it,
//! attach time on the large binary, snapshot with many goroutines. One row per run
//! or per pair count, not per configuration, hence tables of their own; layout
//! only, as in `markdown`.
use super::format::{mb, opt_secs, secs, thousands};
use super::Report;
use crate::bench::samples::{Agent, FloodRun};
use crate::bench::stats::{median, min_max};
use std::fmt::Write as _;

impl Report<'_> {
    pub fn flood_md(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "\n## Event drain (flood workload under `tracer run --mode parks --budget 0 --bench-copies 8`: each park record written 8 times by the kernel)\n\n\
             events/s = summary events / summary duration (the whole tracer session, \
             start-up and tear-down included; the figure the target is judged on); during the \
             workload = summary events / the workload's own run time.\n\n\
             | pairs | round trips | events | drops | events/s | events/s during the workload \
             | agent CPU | agent peak RSS | agent |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for f in self.flood {
            let pairs = match f.paused_s {
                Some(p) => format!("{} (agent stopped {p} s)", f.pairs),
                None => f.pairs.to_string(),
            };
            let _ = writeln!(
                md,
                "| {pairs} | {} | {} | {} | {} | {} | {} ({:.0}%) | {:.1} MB | exited normally with a summary |",
                thousands(f.n as f64),
                thousands(f.agent.events as f64),
                thousands(f.agent.drops as f64),
                thousands(f.rate()),
                thousands(f.work_rate()),
                secs(f.agent.cpu_s),
                f.agent.cpu_s / f.agent.wall_s.max(1e-9) * 100.0,
                mb(f.agent.peak_rss_kb)
            );
        }
        let (best, dropped) = self.drain();
        md.push('\n');
        match best {
            Some(b) => {
                let _ = writeln!(
                    md,
                    "Highest rate drained without a drop: {} events/s ({} pairs).",
                    thousands(b.rate()),
                    b.pairs
                );
            }
            None if self.flood.is_empty() => md.push_str("No flood run.\n"),
            None => md.push_str("Every flood run dropped events.\n"),
        }
        let full_speed: Vec<&FloodRun> =
            self.flood.iter().filter(|f| f.paused_s.is_none()).collect();
        if let Some(top) = full_speed
            .iter()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .filter(|_| full_speed.iter().all(|f| f.agent.drops == 0))
        {
            let _ = writeln!(
                md,
                "\nNo run at full speed dropped an event: the most the target produced under the \
                 probes on this machine was {} events/s, with the agent busy {:.0}% of its wall \
                 time, so the probes' cost in the target, not the agent, set the limit here.",
                thousands(top.rate()),
                top.agent.cpu_s / top.agent.wall_s.max(1e-9) * 100.0
            );
        }
        for f in dropped.iter().filter(|f| f.paused_s.is_none()) {
            let _ = writeln!(
                md,
                "\nBeyond it: {} pairs → {} events/s kept, {} dropped ({:.2}%), agent peak RSS \
                 {:.1} MB, agent alive to the end (summary printed).",
                f.pairs,
                thousands(f.rate()),
                thousands(f.agent.drops as f64),
                f.agent.drops as f64 / (f.agent.events + f.agent.drops).max(1) as f64 * 100.0,
                mb(f.agent.peak_rss_kb)
            );
        }
        let baseline = full_speed
            .iter()
            .map(|f| f.agent.peak_rss_kb)
            .max()
            .unwrap_or(0);
        for f in self.flood.iter().filter(|f| f.paused_s.is_some()) {
            let _ = writeln!(
                md,
                "\nOverload (the agent stopped with SIGSTOP for {} s in the middle of a {}-pair \
                 flood, so its ring buffer overflows): {} events kept, {} dropped ({:.1}%) and \
                 counted in the summary; agent peak RSS {:.1} MB (the largest full-speed run: \
                 {:.1} MB); the agent resumed and exited normally with its summary.",
                f.paused_s.unwrap_or_default(),
                f.pairs,
                thousands(f.agent.events as f64),
                thousands(f.agent.drops as f64),
                f.agent.drops as f64 / (f.agent.events + f.agent.drops).max(1) as f64 * 100.0,
                mb(f.agent.peak_rss_kb),
                mb(baseline)
            );
        }
    }

    pub fn attach_md(&self, md: &mut String) {
        let Some(bin) = self.bin else {
            md.push_str("\n## Attach time on a large Go binary\n\nNo binary (see Errors).\n");
            return;
        };
        let sec = |name: &str| -> f64 {
            let total: u64 = bin
                .sections
                .iter()
                .filter(|(n, _)| n == name || (name == ".debug" && n.starts_with(".debug")))
                .map(|(_, s)| s)
                .sum();
            total as f64 / 1e6
        };
        let _ = writeln!(
            md,
            "\n## Attach time on a large Go binary\n\n`{}`: {:.1} MB, {} generated functions \
             (.text {:.1} MB, .gopclntab {:.1} MB, .symtab {:.1} MB, DWARF {:.1} MB \
             compressed). `tracer attach PID --format json --duration 0s [--mode M]`: start to \
             exit (inspect, plan, load, attach, snapshot, report, detach), and start to its \
             \"attached\" line.\n\n\
             | mode | start to exit (median) | range | runs | start to attached | agent CPU | agent peak RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|",
            bin.path.display(),
            bin.bytes as f64 / 1e6,
            thousands(bin.funcs as f64),
            sec(".text"),
            sec(".gopclntab"),
            sec(".symtab"),
            sec(".debug"),
        );
        for a in self.attach {
            if let Some(why) = &a.na {
                let _ = writeln!(md, "| {} | n/a ({why}) | | | | | |", a.mode);
                continue;
            }
            let of = |f: &dyn Fn(&Agent) -> Option<f64>| -> Vec<f64> {
                a.runs.iter().filter_map(|r| f(&r.agent)).collect()
            };
            let walls = of(&|a| Some(a.wall_s));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1} MB |",
                a.mode,
                opt_secs(median(&walls)),
                min_max(&walls).map_or("-".into(), |(x, y)| format!("{}–{}", secs(x), secs(y))),
                a.runs.len(),
                opt_secs(median(&of(&|a| a.attached_s))),
                opt_secs(median(&of(&|a| Some(a.cpu_s)))),
                mb(a.runs
                    .iter()
                    .map(|r| r.agent.peak_rss_kb)
                    .max()
                    .unwrap_or(0)),
            );
        }
    }

    pub fn snapshot_md(&self, md: &mut String) {
        let n = self.ctx.p.snapshot_goroutines;
        let _ = writeln!(
            md,
            "\n## Snapshot with {} parked goroutines\n\n`tests/fixtures/many -n {n}`, then \
             `tracer attach PID --format json --duration 0s` (default mode).\n\n\
             | run | goroutines parked (tracer) | snapshot read (tracer) | start to exit | agent CPU | agent peak RSS |\n\
             |---:|---:|---:|---:|---:|---:|",
            thousands(n as f64),
        );
        for (i, r) in self.snapshot.iter().enumerate() {
            let (count, took) = r
                .snapshot
                .clone()
                .map_or(("-".into(), "no snapshot line".into()), |(n, t)| {
                    (thousands(n as f64), t)
                });
            let _ = writeln!(
                md,
                "| {} | {count} | {took} | {} | {} | {:.1} MB |",
                i + 1,
                secs(r.agent.wall_s),
                secs(r.agent.cpu_s),
                mb(r.agent.peak_rss_kb)
            );
        }
    }

    pub fn fleet_md(&self, md: &mut String) {
        let Some(f) = self.fleet else {
            return;
        };
        let per = |x: f64| x / f.targets.max(1) as f64;
        let _ = writeln!(
            md,
            "\n## tracer agent with {n} targets\n\n{n} `tests/fixtures/exits` processes (each \
             parked, 0 to 4 leaked goroutines), then `tracer agent --exe NAME --duration 8s` in \
             its default mode (watch): one trace per target, all in one process.\n\n\
             | targets | attached | agent peak RSS | per target | agent CPU | per target |\n\
             |---:|---:|---:|---:|---:|---:|\n\
             | {n} | {} | {:.1} MB | {:.2} MB | {} | {} |",
            f.attached,
            mb(f.agent.peak_rss_kb),
            per(mb(f.agent.peak_rss_kb)),
            secs(f.agent.cpu_s),
            secs(per(f.agent.cpu_s)),
            n = f.targets,
        );
    }
}

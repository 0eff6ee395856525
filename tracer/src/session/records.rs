//! The kernel's records, drained: each decoded once, applied to the model or the
//! lock watch, and, for `--events`, filtered and handed to the output. Lock records
//! written during a switch of the lock sites are skipped and forgotten by the
//! kernel, so they are sent again.
use super::Session;
use crate::decode::{self, Record};

impl Session<'_> {
    pub(super) fn drain_records(&mut self) {
        let Some(probes) = self.probes.as_mut() else {
            return;
        };
        let mut batch = Vec::new();
        probes.records(&mut batch);
        let probes = self.probes.as_ref().expect("checked above");
        let stack = |id| probes.stack(id);
        let mut live = Vec::new();
        let mut forget = Vec::new();
        for ev in &batch {
            self.events_seen += 1;
            match self.decoder.record(ev, &stack) {
                Record::Model(input) => self.analyzer.apply(input),
                Record::Edge { ts_ns, edge } => {
                    // Written while the lock sites were being switched: the edge
                    // may come from a stale hold; the kernel forgets it, so it is
                    // sent again when next seen.
                    if self.locks.untrusted(ts_ns) {
                        forget.push((edge.from, edge.to));
                    } else if let Some(f) = self.locks.edge(edge) {
                        self.out.lock(&f);
                    }
                }
                Record::SelfAcquire {
                    ts_ns,
                    goid,
                    lock,
                    read,
                    site,
                    stack,
                } => {
                    if !self.locks.untrusted(ts_ns) {
                        let model = self.analyzer.model();
                        if let Some(f) = self
                            .locks
                            .self_acquire(model, ts_ns, goid, lock, read, site, stack)
                        {
                            self.out.lock(&f);
                        }
                    }
                }
                Record::Skip => {}
            }
            if self.opts.events {
                let ev = self.decoder.live(ev, &stack);
                note_system(&mut self.system_goids, &ev);
                let system = &self.system_goids;
                if self.event_filter.keep(&ev, |g| system.contains(&g)) {
                    live.push(ev);
                }
            }
        }
        self.out.events(&live);
        let probes = self.probes.as_mut().expect("checked above");
        for (from, to) in forget {
            probes.forget_edge(from, to);
        }
    }
}

/// Learns which goroutines are the runtime's own from the events that name a start
/// function; forgets those that exit.
pub(super) fn note_system(system: &mut std::collections::HashSet<u64>, ev: &decode::LiveEvent) {
    if ev.event == "exit" {
        system.remove(&ev.goid);
    } else if ev.start_function.is_some()
        && tracer_analysis::system::is_system_goroutine(ev.start_function.as_deref())
    {
        system.insert(ev.goid);
    }
}

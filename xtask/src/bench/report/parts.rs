//! Where the probes' cost goes, from the saturated HTTP rows: the machine time
//! each probe hit costs (trap only, a record without a stack, a full record),
//! the agent's time per hit, and how often the budget switched probes and what
//! a switch took the agent. Derived from the rows alone, like every figure of
//! the report.
use super::Report;
use crate::bench::configs::{How, Role};
use crate::bench::samples::Row;
use std::thread;

pub struct CostPart {
    pub config: &'static str,
    pub label: &'static str,
    pub hits_per_request: f64,
    /// Machine time (all cores) each hit adds to a request: the throughput
    /// lost, over the hits per request.
    pub machine_us_per_hit: Option<f64>,
    /// The agent's CPU time per hit.
    pub agent_us_per_hit: Option<f64>,
    pub switches_per_s: f64,
    /// The agent's time in the system calls of one switch (attach or detach).
    pub ms_per_switch: Option<f64>,
}

impl Report<'_> {
    pub fn cost_parts(&self) -> Vec<CostPart> {
        let rows = self.http;
        let Some(base) = rows
            .iter()
            .find(|r| r.config.how == How::Untraced)
            .and_then(Row::rate)
        else {
            return Vec::new();
        };
        let cores = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let secs = self.ctx.p.http_secs as f64;
        rows.iter()
            .filter(|r| r.na.is_none())
            .filter(|r| {
                matches!(r.config.role, Role::Part) || matches!(r.config.id, "parks" | "locks")
            })
            .filter_map(|r| {
                let ratio = r.ratio()?;
                let rate = r.rate()?;
                let hits = r.agent_median(|a| Some(a.hits as f64))?;
                let requests = rate * secs;
                let per_req = hits / requests.max(1.0);
                let extra_us = cores * 1e6 / base * (1.0 / ratio.max(1e-6) - 1.0);
                let agent = r.agent_median(|a| Some(a.cpu_s))?;
                let switches = r.agent_median(|a| Some(a.switches as f64)).unwrap_or(0.0);
                let switch_ms = r.agent_median(|a| Some(a.switch_ns as f64 / 1e6));
                // Per hit only with the probes always on: a sampled row's loss
                // over its few hits says nothing.
                let always_on = r.agent_median(|a| a.parks_on).unwrap_or(0.0) >= 0.99;
                Some(CostPart {
                    config: r.config.id,
                    label: r.config.label,
                    hits_per_request: per_req,
                    machine_us_per_hit: (always_on && per_req > 0.01).then(|| extra_us / per_req),
                    agent_us_per_hit: (hits > 0.0).then(|| agent * 1e6 / hits),
                    switches_per_s: switches / secs,
                    // Each switch off is followed by one on: two calls.
                    ms_per_switch: switch_ms
                        .filter(|_| switches > 0.0)
                        .map(|ms| ms / (2.0 * switches)),
                })
            })
            .collect()
    }
}

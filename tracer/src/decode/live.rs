//! The `--events` view's vocabulary: one decoded event as a line of text or JSON.
//! Built by the decoder, printed by the output; it holds no state.
use super::symbols::is_runtime_frame;
use serde::Serialize;
use std::sync::Arc;
use tracer_analysis::Object;
use tracer_common::kind;
use tracer_inspect::lines::SourceFrame;

/// A decoded event in the form the `--events` view prints.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub event: &'static str,
    pub ts_ns: u64,
    pub goid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SourceFrame>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<SourceFrame>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waker_goid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub may_block: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_function: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<SourceFrame>,
}

pub fn event_name(k: u32) -> &'static str {
    match k {
        kind::PARK => "park",
        kind::READY => "resume",
        kind::EXECUTE => "execute",
        kind::EXIT => "exit",
        kind::CHAN_SEND => "chan_send",
        kind::CHAN_RECV => "chan_recv",
        kind::SELECT => "select",
        kind::LOCK_SLOW => "lock_slow",
        kind::SEMACQUIRE => "semacquire",
        kind::EXITING => "exiting",
        kind::BUDGET_SPENT => "budget_spent",
        _ => "unknown",
    }
}

/// First frame of user code: where the goroutine blocked, in the words of its source.
pub fn site(frames: &[SourceFrame]) -> Option<SourceFrame> {
    frames
        .iter()
        .find(|f| !is_runtime_frame(&f.function))
        .cloned()
}

impl LiveEvent {
    /// An event with nothing known yet but what happened, when and to whom.
    pub fn new(event: &'static str, ts_ns: u64, goid: u64) -> Self {
        LiveEvent {
            kind: "event",
            event,
            ts_ns,
            goid,
            wait_reason: None,
            object: None,
            site: None,
            frames: Vec::new(),
            parked_ns: None,
            waker_goid: None,
            may_block: None,
            start_function: None,
            created_by: None,
        }
    }

    pub fn text(&self, t0: u64) -> String {
        let t = self.ts_ns.saturating_sub(t0) as f64 / 1e9;
        let mut s = format!("{t:>10.6} goroutine {} {}", self.goid, self.event);
        if let Some(r) = &self.wait_reason {
            s.push_str(&format!(" [{r}]"));
        }
        if let Some(line) = self
            .object
            .as_ref()
            .and_then(tracer_analysis::report::text::object_line)
        {
            s.push_str(&format!(" ({line})"));
        }
        if let Some(b) = self.may_block {
            s.push_str(if b { " (may block)" } else { " (non-blocking)" });
        }
        if let Some(p) = self.parked_ns {
            s.push_str(&format!(" after {}", crate::report_fmt::human_ns(p)));
        }
        if let Some(w) = self.waker_goid {
            s.push_str(&format!(" woken by goroutine {w}"));
        }
        if let Some(f) = &self.site {
            s.push_str(&format!(" at {} ({}:{})", f.function, f.file, f.line));
        }
        s
    }
}

/// Which `--events` lines to print.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub goids: Vec<u64>,
    pub reason: Option<String>,
    pub site: Option<String>,
    /// Keep the runtime's own goroutines.
    pub runtime: bool,
}

impl EventFilter {
    /// Whether to print `ev`; `system` says whether a goroutine is known to be
    /// one of the runtime's own.
    pub fn keep(&self, ev: &LiveEvent, system: impl Fn(u64) -> bool) -> bool {
        if !self.goids.is_empty() && !self.goids.contains(&ev.goid) {
            return false;
        }
        if let Some(r) = &self.reason {
            if !ev
                .wait_reason
                .as_deref()
                .is_some_and(|w| w.contains(r.as_str()))
            {
                return false;
            }
        }
        if let Some(want) = &self.site {
            let at = ev.site.as_ref().map(|f| {
                let base = f.file.rsplit('/').next().unwrap_or(&f.file);
                format!("{} {base}:{}", f.function, f.line)
            });
            if !at.is_some_and(|a| a.contains(want.as_str())) {
                return false;
            }
        }
        self.runtime || !system(ev.goid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn park(goid: u64, reason: &str, function: &str, line: u32) -> LiveEvent {
        let mut ev = LiveEvent::new("park", 0, goid);
        ev.wait_reason = Some(reason.into());
        ev.site = Some(SourceFrame {
            function: function.into(),
            file: "/src/app/server.go".into(),
            line,
        });
        ev
    }

    #[test]
    fn filters_by_goroutine_reason_site_and_runtime() {
        let all = EventFilter::default();
        let ev = park(7, "chan send", "main.serve", 42);
        assert!(all.keep(&ev, |_| false));
        assert!(
            !all.keep(&ev, |g| g == 7),
            "runtime goroutines are left out"
        );
        let runtime = EventFilter {
            runtime: true,
            ..all.clone()
        };
        assert!(runtime.keep(&ev, |_| true));
        let goid = EventFilter {
            goids: vec![8],
            ..all.clone()
        };
        assert!(!goid.keep(&ev, |_| false));
        let reason = EventFilter {
            reason: Some("chan".into()),
            ..all.clone()
        };
        assert!(reason.keep(&ev, |_| false));
        assert!(!reason.keep(&LiveEvent::new("resume", 0, 7), |_| false));
        let site = EventFilter {
            site: Some("server.go:42".into()),
            ..all
        };
        assert!(site.keep(&ev, |_| false));
        assert!(!site.keep(&park(7, "chan send", "main.serve", 43), |_| false));
    }
}

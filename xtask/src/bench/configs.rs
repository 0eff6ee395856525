//! The configurations every workload runs under: untraced, each tracer mode, and Go's
//! own tools, by id, label and flags. Names only, nothing runs here: the runner, the
//! workloads and the report read this one list, so they agree on what a row is and
//! on the order the rounds rotate.

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum How {
    Untraced,
    /// `tracer run --mode MODE EXTRA... -- bench ...`
    Run {
        mode: &'static str,
        extra: &'static [&'static str],
    },
    /// `tracer attach PID --mode MODE` once, in the middle of the HTTP load (a mode
    /// the tracer offers for attach only).
    Attach {
        mode: &'static str,
    },
    /// The bench fixture's own flag turning on one of Go's tools.
    Go(&'static str),
}

impl How {
    pub fn mode(self) -> Option<&'static str> {
        match self {
            How::Run { mode, .. } | How::Attach { mode } => Some(mode),
            _ => None,
        }
    }
}

pub struct Config {
    pub id: &'static str,
    pub label: &'static str,
    pub how: How,
}

pub const CONFIGS: &[Config] = &[
    Config {
        id: "untraced",
        label: "untraced",
        how: How::Untraced,
    },
    Config {
        id: "snapshot",
        label: "tracer snapshot",
        how: How::Attach { mode: "snapshot" },
    },
    Config {
        id: "watch",
        label: "tracer watch",
        how: How::Run {
            mode: "watch",
            extra: &[],
        },
    },
    Config {
        id: "parks",
        label: "tracer parks",
        how: How::Run {
            mode: "parks",
            extra: &[],
        },
    },
    Config {
        id: "locks",
        label: "tracer locks (default budget)",
        how: How::Run {
            mode: "locks",
            extra: &[],
        },
    },
    Config {
        id: "locks-budget0",
        label: "tracer locks --budget 0",
        how: How::Run {
            mode: "locks",
            extra: &["--budget", "0"],
        },
    },
    Config {
        id: "blockprofile",
        label: "Go block+mutex profile, rate 1",
        how: How::Go("-blockprofile"),
    },
    Config {
        id: "trace",
        label: "Go runtime/trace",
        how: How::Go("-trace"),
    },
];

pub fn config(id: &str) -> &'static Config {
    CONFIGS.iter().find(|c| c.id == id).expect("known config")
}

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
    /// What the bench holds this configuration to.
    pub role: Role,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The untraced baseline.
    Baseline,
    /// A mode as users run it (default budget): its loss on the HTTP services
    /// must stay within the budget, and its median is measured to within 1%.
    Judged,
    /// For comparison (budget off, Go's tools): a few rounds.
    Reference,
    /// One part of the probes' cost (trap only, record without a stack, ...):
    /// on the saturated HTTP service only, a few rounds.
    Part,
}

/// The tracer's default `--budget`, in percent: what judged modes are held to.
pub const DEFAULT_BUDGET: f64 = 3.0;

pub const CONFIGS: &[Config] = &[
    Config {
        id: "untraced",
        label: "untraced",
        how: How::Untraced,
        role: Role::Baseline,
    },
    Config {
        id: "snapshot",
        label: "tracer snapshot",
        how: How::Attach { mode: "snapshot" },
        role: Role::Judged,
    },
    Config {
        id: "watch",
        label: "tracer watch",
        how: How::Run {
            mode: "watch",
            extra: &[],
        },
        role: Role::Judged,
    },
    Config {
        id: "parks",
        label: "tracer parks",
        how: How::Run {
            mode: "parks",
            extra: &[],
        },
        role: Role::Judged,
    },
    Config {
        id: "locks",
        label: "tracer locks (default budget)",
        how: How::Run {
            mode: "locks",
            extra: &[],
        },
        role: Role::Judged,
    },
    Config {
        id: "locks-budget0",
        label: "tracer locks --budget 0",
        how: How::Run {
            mode: "locks",
            extra: &["--budget", "0"],
        },
        role: Role::Reference,
    },
    Config {
        id: "blockprofile",
        label: "Go block+mutex profile, rate 1",
        how: How::Go("-blockprofile"),
        role: Role::Reference,
    },
    Config {
        id: "trace",
        label: "Go runtime/trace",
        how: How::Go("-trace"),
        role: Role::Reference,
    },
    Config {
        id: "parks-budget0",
        label: "tracer parks --budget 0",
        how: How::Run {
            mode: "parks",
            extra: &["--budget", "0"],
        },
        role: Role::Part,
    },
    Config {
        id: "parks-nostacks",
        label: "tracer parks --budget 0 --no-stacks",
        how: How::Run {
            mode: "parks",
            extra: &["--budget", "0", "--no-stacks"],
        },
        role: Role::Part,
    },
    Config {
        id: "parks-trap",
        label: "tracer parks --budget 0, trap only",
        how: How::Run {
            mode: "parks",
            extra: &["--budget", "0", "--bench-trap-only"],
        },
        role: Role::Part,
    },
    Config {
        id: "locks-trap",
        label: "tracer locks --budget 0, trap only",
        how: How::Run {
            mode: "locks",
            extra: &["--budget", "0", "--bench-trap-only"],
        },
        role: Role::Part,
    },
];

pub fn config(id: &str) -> &'static Config {
    CONFIGS.iter().find(|c| c.id == id).expect("known config")
}

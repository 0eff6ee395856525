//! How much the bench does, full and `--quick`, side by side: rounds, run lengths,
//! flood ladder, repetitions, goroutines, the generated binary's size. Numbers only:
//! what a quick run skips or does not judge is decided where it happens, so that
//! these stay a table one can read at a glance.

/// Size of the generated large binary.
#[derive(Clone, Copy)]
pub struct BigBin {
    pub name: &'static str,
    pub packages: usize,
    pub files: usize,
    pub funcs_per_file: usize,
    pub table_mib_per_package: usize,
}

pub struct Params {
    pub quick: bool,
    pub rounds: usize,
    /// Target length of one workload run (full bench).
    pub run_secs: f64,
    /// Rounds every HTTP configuration runs (saturated).
    pub http_rounds: usize,
    /// Rounds the judged configurations may go on to, until their medians are
    /// known to within 1%.
    pub http_max_rounds: usize,
    /// Rounds of the reference and cost-part configurations.
    pub reference_rounds: usize,
    /// Rounds at a fixed request rate (service CPU per request).
    pub http_rate_rounds: usize,
    pub http_secs: u64,
    pub flood_pairs: &'static [u64],
    pub flood_secs: f64,
    pub attach_reps: usize,
    pub snapshot_goroutines: u64,
    pub snapshot_reps: usize,
    /// Targets of one `tracer agent` (its memory per target).
    pub fleet_targets: usize,
    pub bigbin: BigBin,
}

impl Params {
    pub fn new(quick: bool) -> Self {
        if quick {
            Params {
                quick,
                rounds: 1,
                run_secs: 0.0,
                http_rounds: 1,
                http_max_rounds: 1,
                reference_rounds: 1,
                http_rate_rounds: 1,
                http_secs: 1,
                flood_pairs: &[64],
                flood_secs: 0.0,
                attach_reps: 1,
                snapshot_goroutines: 10_000,
                snapshot_reps: 1,
                fleet_targets: 5,
                bigbin: BigBin {
                    name: "bigbin-quick",
                    packages: 2,
                    files: 2,
                    funcs_per_file: 100,
                    table_mib_per_package: 1,
                },
            }
        } else {
            Params {
                quick,
                rounds: 5,
                run_secs: 0.5,
                // Loopback HTTP on two shared cores varies ±10% run to run: many
                // short alternating rounds give a steadier median than a few long.
                http_rounds: 10,
                http_max_rounds: 40,
                reference_rounds: 5,
                http_rate_rounds: 8,
                http_secs: 3,
                flood_pairs: &[1, 2, 4, 8, 64, 512, 4096],
                flood_secs: 2.0,
                attach_reps: 5,
                snapshot_goroutines: 100_000,
                snapshot_reps: 3,
                fleet_targets: 50,
                bigbin: BigBin {
                    name: "bigbin",
                    packages: 8,
                    files: 25,
                    funcs_per_file: 500,
                    table_mib_per_package: 7,
                },
            }
        }
    }
}

//! Tunables of the analysis, with defaults chosen so that a healthy service stays
//! quiet: a blocked receive for a few seconds is normal, ten is worth a look.

use std::time::Duration;

use thiserror::Error;

/// Settings shared by the model and the detectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// A goroutine parked longer than this without resuming is `long_parked`.
    pub park_threshold: Duration,
    /// How far back the `growing` detector looks for a rising group.
    pub leak_window: Duration,
    /// Samples per `leak_window`: the group count is sampled every
    /// `leak_window / leak_samples`, so a dip shorter than that can go unseen.
    pub leak_samples: u32,
    /// New members a group must gain over the window to count as growing; keeps a
    /// pool that is still starting up (or a jittery one) from firing.
    pub min_growth: u64,
    /// Upper bound of the goroutine table; beyond it new goroutines are counted
    /// as dropped instead of tracked, so a runaway target cannot exhaust memory.
    pub max_goroutines: usize,
    /// Upper bound of blocking sites with a duration histogram.
    pub max_sites: usize,
    /// Prefixes of function names never to report, like goleak's
    /// `IgnoreTopFunction` and `IgnoreAnyFunction`: matched against the start
    /// function, the blocking site and every frame of the stack (the top frame
    /// of a Go dump among them). Added to `system::BUILTIN_IGNORE`.
    pub ignore: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            park_threshold: Duration::from_secs(10),
            leak_window: Duration::from_secs(30),
            leak_samples: 6,
            min_growth: 3,
            max_goroutines: 1_000_000,
            max_sites: 10_000,
            ignore: Vec::new(),
        }
    }
}

/// A setting that would make a detector meaningless.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("leak window must be longer than zero")]
    ZeroLeakWindow,
    #[error("leak samples must be at least 1")]
    ZeroLeakSamples,
    #[error("leak window {window:?} is too short for {samples} samples")]
    WindowTooShort { window: Duration, samples: u32 },
    #[error("min growth must be at least 1, or every stable group would be growing")]
    ZeroMinGrowth,
    #[error("ignore pattern must not be empty: it would hide every goroutine")]
    EmptyIgnorePattern,
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.leak_window.is_zero() {
            return Err(ConfigError::ZeroLeakWindow);
        }
        if self.leak_samples == 0 {
            return Err(ConfigError::ZeroLeakSamples);
        }
        if self.sample_interval_ns() == 0 {
            return Err(ConfigError::WindowTooShort {
                window: self.leak_window,
                samples: self.leak_samples,
            });
        }
        if self.min_growth == 0 {
            return Err(ConfigError::ZeroMinGrowth);
        }
        if self.ignore.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyIgnorePattern);
        }
        Ok(())
    }

    pub fn park_threshold_ns(&self) -> u64 {
        duration_ns(self.park_threshold)
    }

    pub fn leak_window_ns(&self) -> u64 {
        duration_ns(self.leak_window)
    }

    /// Time between two samples of the `growing` detector.
    pub fn sample_interval_ns(&self) -> u64 {
        self.leak_window_ns() / u64::from(self.leak_samples.max(1))
    }
}

/// Durations beyond `u64` nanoseconds (584 years) saturate rather than wrap.
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.park_threshold_ns(), 10_000_000_000);
        assert_eq!(c.leak_window_ns(), 30_000_000_000);
        assert_eq!(c.sample_interval_ns(), 5_000_000_000);
        assert_eq!(c.min_growth, 3);
        assert_eq!(c.max_goroutines, 1_000_000);
    }

    #[test]
    fn rejects_meaningless_settings() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            bad(|c| c.leak_window = Duration::ZERO),
            Err(ConfigError::ZeroLeakWindow)
        );
        assert_eq!(
            bad(|c| c.leak_samples = 0),
            Err(ConfigError::ZeroLeakSamples)
        );
        assert!(matches!(
            bad(|c| c.leak_window = Duration::from_nanos(3)),
            Err(ConfigError::WindowTooShort { .. })
        ));
        assert_eq!(bad(|c| c.min_growth = 0), Err(ConfigError::ZeroMinGrowth));
        assert_eq!(
            bad(|c| c.ignore = vec![String::new()]),
            Err(ConfigError::EmptyIgnorePattern)
        );
    }

    #[test]
    fn huge_durations_saturate() {
        let c = Config {
            park_threshold: Duration::MAX,
            ..Config::default()
        };
        assert_eq!(c.park_threshold_ns(), u64::MAX);
    }
}

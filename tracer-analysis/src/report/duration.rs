//! Durations for people.
//!
//! The rule, everywhere a duration is printed:
//! - under a minute: Go's `time.Duration` units (`ns`, `µs`, `ms`, `s`) with
//!   three significant digits (`850µs`, `1.25ms`, `12.3s`, `12s`);
//! - from one minute to an hour: whole minutes in the words of Go's goroutine
//!   dump (`1 minute`, `5 minutes`);
//! - from one hour: hours with one decimal (`1.2h`, `30h`).
//!
//! Always truncated, never rounded up, so a printed age is never more than the
//! real one and a goroutine does not appear to cross a threshold early.

const MICROSECOND: u64 = 1_000;
const MILLISECOND: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

pub fn human(ns: u64) -> String {
    match ns {
        _ if ns < MICROSECOND => format!("{ns}ns"),
        _ if ns < MILLISECOND => format!("{}µs", significant(ns, MICROSECOND, 3)),
        _ if ns < SECOND => format!("{}ms", significant(ns, MILLISECOND, 3)),
        _ if ns < MINUTE => format!("{}s", significant(ns, SECOND, 3)),
        _ if ns < 2 * MINUTE => "1 minute".to_string(),
        _ if ns < HOUR => format!("{} minutes", ns / MINUTE),
        _ => format!("{}h", decimals(ns, HOUR, 1)),
    }
}

/// `ns / unit` truncated to `digits` significant digits (at least the integer
/// part), trailing zeros dropped.
fn significant(ns: u64, unit: u64, digits: u32) -> String {
    let whole = ns / unit;
    let whole_digits = whole.checked_ilog10().map_or(1, |d| d + 1);
    decimals(ns, unit, digits.saturating_sub(whole_digits))
}

/// `ns / unit` truncated to `places` decimals, trailing zeros dropped.
fn decimals(ns: u64, unit: u64, places: u32) -> String {
    let whole = ns / unit;
    if places == 0 {
        return whole.to_string();
    }
    let scale = 10u128.pow(places);
    let fraction = u128::from(ns % unit) * scale / u128::from(unit);
    let fraction = format!("{fraction:0width$}", width = places as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}

/// A growth rate: whole goroutines per minute from ten up, one decimal below.
pub fn per_minute(rate: f64) -> String {
    if !rate.is_finite() || rate <= 0.0 {
        "0/min".to_string()
    } else if rate >= 10.0 {
        format!("{}/min", rate.round())
    } else {
        let tenths = (rate * 10.0).floor() / 10.0;
        format!("{tenths}/min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_below_a_minute() {
        assert_eq!(human(0), "0ns");
        assert_eq!(human(999), "999ns");
        assert_eq!(human(850_000), "850µs");
        assert_eq!(human(1_250_000), "1.25ms");
        assert_eq!(human(1_259_999), "1.25ms");
        assert_eq!(human(40 * MILLISECOND), "40ms");
        assert_eq!(human(SECOND + 300 * MILLISECOND), "1.3s");
        assert_eq!(human(12 * SECOND), "12s");
        assert_eq!(human(12 * SECOND + 999 * MILLISECOND), "12.9s");
        assert_eq!(human(59 * SECOND + 999 * MILLISECOND), "59.9s");
    }

    #[test]
    fn minutes_like_a_go_dump() {
        assert_eq!(human(MINUTE), "1 minute");
        assert_eq!(human(MINUTE + 59 * SECOND), "1 minute");
        assert_eq!(human(5 * MINUTE + 30 * SECOND), "5 minutes");
        assert_eq!(human(HOUR - 1), "59 minutes");
    }

    #[test]
    fn hours_with_a_decimal() {
        assert_eq!(human(HOUR), "1h");
        assert_eq!(human(HOUR + 12 * MINUTE + 59 * SECOND), "1.2h");
        assert_eq!(human(30 * HOUR), "30h");
        assert!(human(u64::MAX).ends_with('h'));
    }

    #[test]
    fn rates() {
        assert_eq!(per_minute(84.0), "84/min");
        assert_eq!(per_minute(84.6), "85/min");
        assert_eq!(per_minute(2.56), "2.5/min");
        assert_eq!(per_minute(0.0), "0/min");
        assert_eq!(per_minute(f64::NAN), "0/min");
    }
}

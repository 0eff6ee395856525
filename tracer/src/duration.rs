//! Durations written the human way: `500ms`, `30s`, `5m`, `1h30m`.
use std::time::Duration;

/// The longest duration any flag takes: a year. Anything longer is a typo (or a
/// number meant for another unit), and would overflow the deadlines built from it.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration of at most [`MAX`]; zero is allowed (see [`parse_positive`]).
/// Never panics: an overflowing or malformed value is an error saying what is wrong.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration: expected e.g. 500ms, 30s, 5m, 1h30m".into());
    }
    if s.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: must not be negative (e.g. 30s)"
        ));
    }
    let too_long = || format!("duration {s:?} is longer than the limit of 365 days");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected a number then a unit (e.g. 500ms, 30s, 5m, 1h30m)"
            ));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| {
            format!(
                "invalid duration {s:?}: {:?} is not a number",
                &rest[..num_len]
            )
        })?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                ))
            }
        };
        // The digits-and-dots scan admits no sign, exponent, NaN or infinity, but a
        // long enough number of digits parses as infinity: the conversion catches it.
        let part = Duration::try_from_secs_f64(value * secs).map_err(|_| too_long())?;
        total = total.checked_add(part).ok_or_else(too_long)?;
    }
    if total > MAX {
        return Err(too_long());
    }
    Ok(total)
}

/// A duration flag that must be greater than zero (and at most [`MAX`]).
pub fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse(s)?;
    if d.is_zero() {
        return Err(format!(
            "duration {:?} must be greater than 0 (e.g. 30s)",
            s.trim()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("5x").is_err());
        assert!(parse("").is_err());
        assert!(parse("1..2s").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn huge_values_are_errors_not_panics() {
        for s in [
            "99999999999999999999h",
            "18446744073709551616s",
            &"9".repeat(400),
            "366d",
            "8761h",
            "365d1ns",
            "200d200d",
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains("365 days"), "{s}: {e}");
        }
        assert_eq!(parse("365d"), Ok(MAX));
        assert_eq!(parse("8760h"), Ok(MAX));
    }

    #[test]
    fn signs_and_special_floats_are_refused() {
        assert!(parse("-5s").unwrap_err().contains("negative"));
        for s in ["NaN", "nan", "inf", "-inf", "infs", "1e3s", "+5s"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn zero_is_refused_where_a_positive_duration_is_needed() {
        for s in ["0", "0s", "0ms", "0h0m", "0.0000000001s"] {
            let e = parse_positive(s).expect_err(s);
            assert!(e.contains("greater than 0"), "{s}: {e}");
        }
        assert_eq!(parse_positive("1ns"), Ok(Duration::from_nanos(1)));
        assert!(parse_positive("400d").unwrap_err().contains("365 days"));
    }
}

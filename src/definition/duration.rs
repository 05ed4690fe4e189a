//! Durations as administrators write them in definitions: `7d`, `36h`, `1d12h`, `90m`,
//! `30s`. Units: d (days), h, m, s; at least one part, no sign, no spaces; at most
//! [`MAX_DAYS`] days in all, so that every deadline computed from one stays a date.

use chrono::Duration;

/// The longest duration a definition may write: ten years (and a leap day or two).
pub const MAX_DAYS: i64 = 3660;

/// [`MAX_DAYS`] as written in messages.
pub const MAX_TEXT: &str = "3660d";

/// Parses `7d`, `1d12h`, `45m`; `None` for anything else (including zero-length input and
/// anything longer than [`MAX_DAYS`]).
pub fn parse(text: &str) -> Option<Duration> {
    let total = parse_unbounded(text)?;
    (total <= Duration::days(MAX_DAYS)).then_some(total)
}

fn parse_unbounded(text: &str) -> Option<Duration> {
    // Longer than any duration within the bound can be written: no arithmetic on it.
    if text.len() > 64 {
        return None;
    }
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut parts = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        // An absurd count (beyond a TimeDelta) is not a duration: refused, not a panic.
        let part = match c {
            'd' => Duration::try_days(n),
            'h' => Duration::try_hours(n),
            'm' => Duration::try_minutes(n),
            's' => Duration::try_seconds(n),
            _ => return None,
        }?;
        total = total.checked_add(&part)?;
        parts += 1;
    }
    (digits.is_empty() && parts > 0).then_some(total)
}

/// Writes a duration back in the same notation, largest units first (`1d12h`).
pub fn format(d: Duration) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{}", secs / size, unit));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_notations_used_in_definitions() {
        assert_eq!(parse("7d"), Some(Duration::days(7)));
        assert_eq!(parse("1d12h"), Some(Duration::hours(36)));
        assert_eq!(parse("90m"), Some(Duration::minutes(90)));
        assert_eq!(format(Duration::hours(36)), "1d12h");
        assert_eq!(parse(MAX_TEXT), Some(Duration::days(MAX_DAYS)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "7",
            "d",
            "7 days",
            "-1d",
            "1w",
            "1.5h",
            "99999999999999999d",
            "99999999999999d",
            "100000000d",
            "3661d",
            "3660d1s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} should not parse");
        }
    }
}

//! Go-style durations (`30s`, `10m`, `6h`, `1h30m`, `250ms`): the form `spec.syncInterval`, the
//! agent's flags and the plugin's `--timeout` take, as kubectl and Flux users write them.

use std::fmt;
use std::time::Duration;

/// A text that is not a Go-style duration; it says how to write one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.trim().is_empty() {
            write!(f, "empty duration; write e.g. 30s, 10m, 6h or 1h30m")
        } else {
            write!(f, "`{}` is not a duration; write e.g. 30s, 10m, 6h or 1h30m (units: ms, s, m, h)", self.0)
        }
    }
}

impl std::error::Error for DurationError {}

/// The other way round, for messages: `90s` → `1m30s`; `500ms`; `2h`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut text = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            text.push_str(&n.to_string());
            text.push(unit);
        }
    }
    text
}

/// Parses one or more `<number><unit>` with units `ms`, `s`, `m`, `h` (decimals allowed).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError(text.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return Err(invalid()),
        };
        total = Duration::try_from_secs_f64(seconds).ok().and_then(|d| total.checked_add(d)).ok_or_else(invalid)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations_parse() {
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn anything_else_is_an_error_that_says_how_to_write_one() {
        for text in ["", " ", "5", "5d", "m", "1h30", "-1s", "1..5s"] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.to_string().contains("write e.g. 30s, 10m, 6h or 1h30m"), "{text}: {err}");
        }
        assert_eq!(parse_duration("").unwrap_err().to_string(), "empty duration; write e.g. 30s, 10m, 6h or 1h30m");
    }
}

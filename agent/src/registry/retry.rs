//! When to try a registry request again, and how long to wait first.

use std::time::Duration;

/// Capped exponential backoff for 429, 5xx and connection failures, honouring `Retry-After`.
///
/// A plain struct (not constants) so tests can retry within milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; `1` never retries.
    pub max_attempts: u32,
    /// The wait before the first retry; each further retry doubles it.
    pub initial_backoff: Duration,
    /// The longest wait between attempts. A `Retry-After` longer than this ends the retries
    /// (the scan fails as rate limited and the caller comes back later) rather than holding a
    /// scan open for minutes.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn never() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The computed backoff before retry number `retry` (1-based), capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.checked_mul(factor).map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }

    /// How long to wait before retry number `retry` (1-based) after a failed attempt, or
    /// `None` to give up: attempts exhausted, or the server asked for a longer pause than
    /// `max_backoff`. The server's `Retry-After` wins over a shorter computed backoff.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry >= self.max_attempts {
            return None;
        }
        match retry_after {
            Some(asked) if asked > self.max_backoff => None,
            Some(asked) => Some(asked.max(self.backoff(retry))),
            None => Some(self.backoff(retry)),
        }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past
/// means "now".
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is a subset of RFC 2822.
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy();
        let waits: Vec<_> = (1..=4).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(p.backoff(200), p.max_backoff, "no overflow on huge retry counts");
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = policy();
        assert_eq!(p.delay(1, Some(Duration::from_millis(300))), Some(Duration::from_millis(300)));
        assert_eq!(p.delay(2, Some(Duration::from_millis(10))), Some(Duration::from_millis(200)));
        assert_eq!(p.delay(1, Some(Duration::from_secs(60))), None);
        assert_eq!(p.delay(5, None), None, "attempts exhausted");
        assert_eq!(RetryPolicy::never().delay(1, None), None);
    }

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

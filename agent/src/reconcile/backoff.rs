//! Backoff of one resource's failures that no spec change caused: a registry that refuses,
//! errs or does not answer (401, 404, 5xx, timeouts), a registry Secret missing or malformed,
//! and reconciles that fail on the Kubernetes API.
//!
//! Each consecutive failure of the same resource waits longer before the next try,
//! `retry-base × 2^(n-1)` capped at `retry-max` (the failed-run schedule, [`Retry`]); one
//! success resets it. After `retry-attempts` failed scans in a row the resource is reported
//! `Stalled`, but scans go on at the capped delay, so it recovers by itself once the registry
//! answers again.
//!
//! Counts live in memory per resource uid (a restarted agent starts again at the base delay).
//! A reconcile woken before the delay is up (by the agent's own status write, a Job event)
//! does not scan; a spec change or a new rescan request does, at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::reconcile::decide::Retry;
use crate::registry::ScanError;

/// What a scan was tried for: when it changes, the next scan is due at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub generation: i64,
    /// The rescan annotation's token.
    pub rescan: Option<String>,
}

/// The last of a run of failed scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFailure {
    /// Failures in a row.
    pub count: u32,
    pub at: jiff::Timestamp,
    pub trigger: Trigger,
}

impl ScanFailure {
    /// The wait before the next scan.
    pub fn delay(&self, retry: Retry) -> Duration {
        retry.delay(self.count)
    }

    /// Enough failures in a row to report `Stalled` (scans still go on).
    pub fn stalled(&self, retry: Retry) -> bool {
        self.count >= retry.attempts
    }

    /// The status message: the error, how many times in a row, when the next scan is.
    pub fn message(&self, error: &str, retry: Retry) -> String {
        let times = if self.count == 1 { "once".to_owned() } else { format!("{} times in a row", self.count) };
        format!("{error} (failed {times}; next scan in {})", human(self.delay(retry)))
    }
}

/// Whether to scan now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Scan,
    /// The backoff after the last failure is not over: look again after this.
    Wait(Duration),
}

pub fn gate(last: Option<&ScanFailure>, trigger: &Trigger, retry: Retry, now: jiff::Timestamp) -> Gate {
    let Some(last) = last.filter(|last| &last.trigger == trigger) else { return Gate::Scan };
    let elapsed = Duration::try_from(now.duration_since(last.at)).unwrap_or(Duration::ZERO);
    let delay = last.delay(retry);
    match delay.checked_sub(elapsed) {
        Some(left) if !left.is_zero() => Gate::Wait(left),
        _ => Gate::Scan,
    }
}

/// One more failure in a row for the same trigger, else the first for a new one.
pub fn next(last: Option<&ScanFailure>, trigger: Trigger, now: jiff::Timestamp) -> ScanFailure {
    let count = match last {
        Some(last) if last.trigger == trigger => last.count.saturating_add(1),
        _ => 1,
    };
    ScanFailure { count, at: now, trigger }
}

/// Scan errors retried with backoff: all but a spec that cannot parse (its fix is a spec
/// change, which wakes the resource anyway). "No tag satisfies" is not an error of the scan:
/// it waits for the next scheduled scan.
pub fn retried(err: &ScanError) -> bool {
    !matches!(
        err,
        ScanError::InvalidConstraint { .. } | ScanError::InvalidTagPolicy { .. } | ScanError::InvalidImageName { .. }
    )
}

pub use alustan_shared::duration::human;

/// The failed scans of every resource, by uid.
#[derive(Debug, Default)]
pub struct ScanFailures(Mutex<HashMap<String, ScanFailure>>);

impl ScanFailures {
    pub fn get(&self, uid: &str) -> Option<ScanFailure> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(uid).cloned()
    }

    /// Records a failure now; returns it with its count.
    pub fn record(&self, uid: &str, trigger: Trigger, now: jiff::Timestamp) -> ScanFailure {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let failure = next(map.get(uid), trigger, now);
        map.insert(uid.to_owned(), failure.clone());
        failure
    }

    /// A scan succeeded (or the resource is gone).
    pub fn clear(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

/// Reconciles that ended in an error, in a row, by uid: the requeue delay grows with them.
#[derive(Debug, Default)]
pub struct ErrorStreaks(Mutex<HashMap<String, u32>>);

impl ErrorStreaks {
    /// One more error in a row; returns how many.
    pub fn bump(&self, uid: &str) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(uid.to_owned()).or_default();
        *count = count.saturating_add(1);
        *count
    }

    pub fn reset(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Retry = Retry { base: Duration::from_secs(10), max: Duration::from_secs(60), attempts: 3 };

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn trigger(generation: i64) -> Trigger {
        Trigger { generation, rescan: None }
    }

    #[test]
    fn each_failure_in_a_row_waits_longer_up_to_the_cap() {
        let mut last = None;
        let mut delays = Vec::new();
        for i in 0..6 {
            let failure = next(last.as_ref(), trigger(1), at(i * 100));
            delays.push(failure.delay(RETRY).as_secs());
            last = Some(failure);
        }
        assert_eq!(delays, [10, 20, 40, 60, 60, 60]);
        assert_eq!(last.map(|l| l.count), Some(6));
    }

    #[test]
    fn no_scan_before_the_delay_is_up() {
        let failure = next(None, trigger(1), at(0));
        assert_eq!(gate(Some(&failure), &trigger(1), RETRY, at(4)), Gate::Wait(Duration::from_secs(6)));
        assert_eq!(gate(Some(&failure), &trigger(1), RETRY, at(10)), Gate::Scan);
        let third = next(Some(&next(Some(&failure), trigger(1), at(10))), trigger(1), at(30));
        assert_eq!(third.count, 3);
        assert_eq!(gate(Some(&third), &trigger(1), RETRY, at(50)), Gate::Wait(Duration::from_secs(20)));
        assert_eq!(gate(None, &trigger(1), RETRY, at(0)), Gate::Scan, "no failure: scan");
    }

    #[test]
    fn a_spec_change_or_a_rescan_request_scans_at_once_and_restarts_the_count() {
        let failure = next(Some(&next(None, trigger(1), at(0))), trigger(1), at(1));
        assert_eq!(gate(Some(&failure), &trigger(2), RETRY, at(2)), Gate::Scan);
        let rescan = Trigger { generation: 1, rescan: Some("now".into()) };
        assert_eq!(gate(Some(&failure), &rescan, RETRY, at(2)), Gate::Scan);
        assert_eq!(next(Some(&failure), trigger(2), at(3)).count, 1);
    }

    #[test]
    fn stalled_after_the_attempts_and_a_success_resets() {
        let failures = ScanFailures::default();
        let counts: Vec<(u32, bool)> = (0..4)
            .map(|i| {
                let f = failures.record("uid", trigger(1), at(i));
                (f.count, f.stalled(RETRY))
            })
            .collect();
        assert_eq!(counts, [(1, false), (2, false), (3, true), (4, true)]);
        failures.clear("uid");
        assert_eq!(failures.get("uid"), None);
        assert_eq!(failures.record("uid", trigger(1), at(9)).count, 1);
    }

    #[test]
    fn message_says_how_often_and_when_next() {
        let once = next(None, trigger(1), at(0));
        assert_eq!(once.message("HTTP 500", RETRY), "HTTP 500 (failed once; next scan in 10s)");
        let twice = next(Some(&once), trigger(1), at(1));
        assert_eq!(twice.message("x", RETRY), "x (failed 2 times in a row; next scan in 20s)");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn only_unparsable_specs_are_not_retried() {
        let invalid = ScanError::InvalidConstraint { constraint: "~>x".into(), message: "bad".into() };
        assert!(!retried(&invalid));
        let unauthorized = ScanError::Unauthorized {
            registry: "r".into(),
            repository: "x".into(),
            status: 401,
            hint: "check the Secret".into(),
        };
        assert!(retried(&unauthorized));
        let missing = ScanError::UnknownRepository { registry: "r".into(), repository: "x".into() };
        assert!(retried(&missing));
    }

    #[test]
    fn error_streaks_count_until_reset() {
        let streaks = ErrorStreaks::default();
        assert_eq!((streaks.bump("a"), streaks.bump("a"), streaks.bump("b")), (1, 2, 1));
        streaks.reset("a");
        assert_eq!(streaks.bump("a"), 1);
    }
}

//! Per registry host: a bounded pool of scans talking to it at once, and a backoff once it
//! stops answering.
//!
//! - **Pool.** A scan holds one of the host's `ScanSettings::per_host` slots while it lists or
//!   resolves a digest there, and nothing else while it waits for one: a registry that hangs
//!   ties up its own slots only, never another host's or the reconcile loop's.
//! - **Backoff.** A transport failure or a missed scan deadline ([`ScanError::is_host_failure`])
//!   pauses the host: scans of it fail at once with [`ScanError::HostBackoff`], which says when
//!   the next try is, until `initial × 2^(failures-1)` (capped) has passed. Failures of scans
//!   that were already running when a failure was counted do not count again (40 scans timing
//!   out together are one failure, not 40). Any answer — a success, or an error the registry
//!   sent — ends the backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ScanError, human};

/// The pool and backoff settings of every host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostPolicy {
    pub per_host: usize,
    pub initial: Duration,
    pub max: Duration,
}

impl HostPolicy {
    fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }
}

/// Every registry host scans have talked to.
pub(crate) struct Hosts {
    policy: HostPolicy,
    hosts: Mutex<HashMap<String, Host>>,
}

struct Host {
    slots: Arc<Semaphore>,
    trouble: Option<Trouble>,
}

/// A host that stopped answering.
struct Trouble {
    failures: u32,
    /// When the last failure was counted.
    at: Instant,
    until: Instant,
    next_try: jiff::Timestamp,
    cause: ScanError,
}

/// A slot of a host's pool, held while talking to it.
pub(crate) struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
    /// When the slot was granted: the work's start.
    pub started: Instant,
}

/// Marks a cell as waiting for a slot for as long as it lives (so a cancelled wait does not
/// leave the mark behind).
struct Queued<'a>(&'a AtomicBool);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Hosts {
    pub fn new(policy: HostPolicy) -> Self {
        Self { policy: HostPolicy { per_host: policy.per_host.max(1), ..policy }, hosts: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Host>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails fast while `registry` is backing off.
    pub fn check(&self, registry: &str) -> Result<(), ScanError> {
        let hosts = self.lock();
        match hosts.get(registry).and_then(|host| host.trouble.as_ref()) {
            Some(trouble) if trouble.until > Instant::now() => Err(ScanError::HostBackoff {
                registry: registry.to_owned(),
                failures: trouble.failures,
                next_try: trouble.next_try,
                cause: Box::new(trouble.cause.clone()),
            }),
            _ => Ok(()),
        }
    }

    /// Waits for a slot of `registry`'s pool (with `queued` set meanwhile), failing fast while
    /// the host backs off, before and after the wait.
    pub async fn acquire(&self, registry: &str, queued: &AtomicBool) -> Result<Permit, ScanError> {
        self.check(registry)?;
        let slots = {
            let mut hosts = self.lock();
            let host = hosts
                .entry(registry.to_owned())
                .or_insert_with(|| Host { slots: Arc::new(Semaphore::new(self.policy.per_host)), trouble: None });
            Arc::clone(&host.slots)
        };
        queued.store(true, Ordering::SeqCst);
        let mark = Queued(queued);
        // The pool's semaphore is never closed, so this always yields a slot.
        let slot = slots.acquire_owned().await.ok();
        drop(mark);
        self.check(registry)?;
        Ok(Permit { _slot: slot, started: Instant::now() })
    }

    /// Counts the outcome of work that started at `started`: a host failure starts or extends
    /// the backoff, anything else ends it.
    pub fn record(&self, registry: &str, started: Instant, outcome: Result<(), &ScanError>) {
        let mut hosts = self.lock();
        let Some(host) = hosts.get_mut(registry) else { return };
        match outcome {
            Err(err) if err.is_host_failure() => {
                let failures = match &host.trouble {
                    // Already counted while this work was running: the same outage.
                    Some(trouble) if trouble.at >= started => return,
                    Some(trouble) => trouble.failures.saturating_add(1),
                    None => 1,
                };
                let delay = self.policy.delay(failures);
                let now = Instant::now();
                let next_try = next_try(delay);
                tracing::warn!(
                    registry,
                    failures,
                    pause = %human(delay),
                    %next_try,
                    error = %err,
                    "registry host does not answer; pausing its scans"
                );
                host.trouble = Some(Trouble { failures, at: now, until: now + delay, next_try, cause: err.clone() });
            }
            _ => {
                if host.trouble.take().is_some() {
                    tracing::info!(registry, "registry host answers again; its scans resume");
                }
            }
        }
    }

    /// Forgets hosts nobody is scanning whose backoff (if any) ended more than `age` ago.
    pub fn prune(&self, age: Duration) {
        let now = Instant::now();
        self.lock().retain(|_, host| {
            Arc::strong_count(&host.slots) > 1
                || host.trouble.as_ref().is_some_and(|trouble| now.saturating_duration_since(trouble.until) < age)
        });
    }

    /// Hosts known.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Now + `delay`, rounded up to the second (the form status messages show).
fn next_try(delay: Duration) -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    let at = jiff::SignedDuration::try_from(delay).ok().and_then(|d| now.checked_add(d).ok()).unwrap_or(now);
    let round = jiff::TimestampRound::new().smallest(jiff::Unit::Second).mode(jiff::RoundMode::Ceil);
    at.round(round).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy { per_host: 2, initial: Duration::from_secs(10), max: Duration::from_secs(25) }
    }

    fn timeout(registry: &str) -> ScanError {
        ScanError::Transport {
            registry: registry.into(),
            repository: "r".into(),
            attempts: 4,
            message: "operation timed out".into(),
        }
    }

    #[test]
    fn delay_doubles_then_caps() {
        let delays: Vec<u64> = (1..=4).map(|n| policy().delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 25, 25]);
        assert_eq!(policy().delay(u32::MAX), Duration::from_secs(25), "no overflow");
    }

    #[tokio::test]
    async fn a_host_failure_pauses_the_host_until_an_answer() {
        let hosts = Hosts::new(policy());
        let flag = AtomicBool::new(false);
        let first = hosts.acquire("hung:5000", &flag).await.unwrap();
        let second = hosts.acquire("hung:5000", &flag).await.unwrap();
        hosts.record("hung:5000", first.started, Err(&timeout("hung:5000")));
        // The second scan ran during the failure counted: the same outage, still one failure.
        hosts.record("hung:5000", second.started, Err(&timeout("hung:5000")));
        drop((first, second));

        let err = hosts.acquire("hung:5000", &flag).await.map(|_| ()).unwrap_err();
        let ScanError::HostBackoff { failures, next_try, ref cause, .. } = err else { panic!("{err:?}") };
        assert_eq!(failures, 1);
        assert!(next_try > jiff::Timestamp::now(), "{next_try}");
        assert_eq!(**cause, timeout("hung:5000"));
        let text = err.to_string();
        assert!(text.starts_with("registry hung:5000 failed 1 time(s) in a row, so scans of it are paused until "));
        assert!(text.ends_with(
            "(last failure: cannot reach registry hung:5000 for r after 4 attempt(s): operation timed out)"
        ));
        assert_eq!(err.metric_label(), "host_backoff");
        assert_eq!(err.retry_at(), Some(next_try));
        assert!(err.is_transient());
        // Other hosts are not affected.
        assert!(hosts.acquire("other:5000", &flag).await.is_ok());

        // An answer (here: a 404) ends the pause.
        let started = Instant::now();
        hosts.record(
            "hung:5000",
            started,
            Err(&ScanError::UnknownRepository { registry: "h".into(), repository: "r".into() }),
        );
        assert!(hosts.check("hung:5000").is_ok());
        assert!(!flag.load(Ordering::SeqCst), "not queued any more");
    }

    #[tokio::test]
    async fn waiting_for_a_slot_is_flagged_and_bounded() {
        let hosts = Arc::new(Hosts::new(HostPolicy { per_host: 1, ..policy() }));
        let flag = Arc::new(AtomicBool::new(false));
        let held = hosts.acquire("busy:1", &flag).await.unwrap();
        let waiter = tokio::spawn({
            let (hosts, flag) = (Arc::clone(&hosts), Arc::clone(&flag));
            async move { hosts.acquire("busy:1", &flag).await.map(|permit| permit.started) }
        });
        let queued = tokio::time::timeout(Duration::from_secs(10), async {
            while !flag.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(queued.is_ok() && !waiter.is_finished(), "one slot per host: the second waits");
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
        assert!(!flag.load(Ordering::SeqCst));
        hosts.prune(Duration::ZERO);
        assert_eq!(hosts.len(), 0, "idle hosts are forgotten");
    }
}

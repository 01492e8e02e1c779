//! Scans outside the reconcile loop: [`Scanner::poll`] answers at once, from the cache or
//! with a result a background task left for the caller, and otherwise starts that task and
//! says the scan is pending. The task calls the caller's `wake` when the result is there (the
//! agent re-queues the resource), and the next poll takes it.
//!
//! Results are kept per waiter (a resource) *and* request: a poll asking for something else
//! (another constraint, image, credentials or a rescan) never gets the old request's result;
//! the old task is cancelled and a new one started. A result is taken once; one not taken
//! within `ScanSettings::result_ttl` is dropped ([`Scanner::prune`], or the next poll).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::credentials::Credentials;
use super::error::ScanError;
use super::reference::ImageRef;
use super::scan::{Progress, ScanKey, ScanReport, ScanRequest, Scanner};
use super::select::Constraint;

/// Who waits for a background scan: one per resource (the agent uses its uid).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WaiterId(String);

impl WaiterId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`ScanRequest`] owning its parts, so a background task can keep it.
#[derive(Debug, Clone)]
pub struct OwnedScanRequest {
    pub image: ImageRef,
    pub credentials: Credentials,
    pub constraint: Constraint,
    /// A listing younger than this is reused: the resource's `syncInterval`.
    pub max_age: Duration,
    /// List again even if a fresh listing exists (the rescan annotation).
    pub force: bool,
}

impl OwnedScanRequest {
    pub fn as_request(&self) -> ScanRequest<'_> {
        ScanRequest {
            image: &self.image,
            credentials: &self.credentials,
            constraint: &self.constraint,
            max_age: self.max_age,
            force: self.force,
        }
    }
}

impl From<ScanRequest<'_>> for OwnedScanRequest {
    fn from(request: ScanRequest<'_>) -> Self {
        Self {
            image: request.image.clone(),
            credentials: request.credentials.clone(),
            constraint: request.constraint.clone(),
            max_age: request.max_age,
            force: request.force,
        }
    }
}

/// What [`Scanner::poll`] found.
// Returned and matched at once, never stored: boxing the report would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ScanPoll {
    /// The scan's outcome: from the cache, a background scan of this very request, or a
    /// registry host backing off (an error at once).
    Ready(Result<ScanReport, ScanError>),
    /// A background scan of this request is running; `wake` will be called when it is done.
    Pending {
        /// When it started.
        since: jiff::Timestamp,
        /// It waits for a slot of the registry host's pool ("waiting for a registry slot"),
        /// rather than talking to the registry.
        queued: bool,
    },
}

/// What a result belongs to: the same waiter asking for the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestKey {
    scan: ScanKey,
    constraint: String,
    force: bool,
}

struct Slot {
    key: RequestKey,
    /// Which task may fill this slot: a replaced task finds another ticket and drops its result.
    ticket: u64,
    since: jiff::Timestamp,
    state: State,
}

enum State {
    Running { progress: Arc<Progress>, task: Task },
    Done { result: Box<Result<ScanReport, ScanError>>, at: Instant },
}

/// A background task, cancelled when its slot is dropped or replaced.
struct Task(Option<AbortHandle>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Background scans by waiter.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: Mutex<HashMap<WaiterId, Slot>>,
    tickets: AtomicU64,
    started: AtomicU64,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, HashMap<WaiterId, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves a task's result in its slot, if the slot is still that task's.
    fn finish(&self, waiter: &WaiterId, ticket: u64, result: Result<ScanReport, ScanError>) -> bool {
        let mut slots = self.lock();
        match slots.get_mut(waiter) {
            Some(slot) if slot.ticket == ticket => {
                // This very task: finishing, not to be cancelled.
                if let State::Running { task, .. } = &mut slot.state {
                    task.0 = None;
                }
                slot.state = State::Done { result: Box::new(result), at: Instant::now() };
                true
            }
            _ => false,
        }
    }

    /// Slots held (running or holding a result).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Drops results finished more than `age` ago.
    pub fn prune(&self, age: Duration) {
        self.lock().retain(|_, slot| match &slot.state {
            State::Running { .. } => true,
            State::Done { at, .. } => at.elapsed() < age,
        });
    }
}

impl Scanner {
    /// The outcome of `request` for `waiter` without waiting for a registry.
    ///
    /// - `Ready` at once when the cache answers (a fresh listing and the chosen tag's digest
    ///   already resolved; `force` never is), when the host is backing off
    ///   ([`ScanError::HostBackoff`]), or when a background scan of this same request for this
    ///   waiter has finished: its result is handed over once.
    /// - Otherwise `Pending`: a background task scans (listing, digest, retries, all within
    ///   `ScanSettings::deadline`, in the host's pool), keeps the result for this waiter and
    ///   request, then calls `wake`. Polls while it runs return `Pending` and start nothing
    ///   (their `wake` is dropped: the first one is called). A poll with a different request
    ///   cancels the waiter's task and drops any result of the old request.
    ///
    /// Must be called within a tokio runtime. `wake` is never called when `Ready` is returned.
    pub fn poll(&self, request: OwnedScanRequest, waiter: WaiterId, wake: impl FnOnce() + Send + 'static) -> ScanPoll {
        let inner = &self.inner;
        let key = RequestKey {
            scan: inner.key(&request.as_request()),
            constraint: request.constraint.identity().to_owned(),
            force: request.force,
        };
        let stale = {
            let mut slots = inner.waiters.lock();
            match slots.get(&waiter) {
                Some(slot) if slot.key == key => match &slot.state {
                    State::Running { progress, .. } => {
                        return ScanPoll::Pending { since: slot.since, queued: progress.queued() };
                    }
                    State::Done { at, .. } if at.elapsed() < inner.settings.result_ttl => {
                        if let Some(Slot { state: State::Done { result, .. }, .. }) = slots.remove(&waiter) {
                            return ScanPoll::Ready(*result);
                        }
                        None
                    }
                    State::Done { .. } => slots.remove(&waiter),
                },
                // Another request's task or result: cancelled or dropped (outside the lock).
                Some(_) => slots.remove(&waiter),
                None => None,
            }
        };
        drop(stale);
        if let Some(report) = inner.cached_report(&request.as_request()) {
            return ScanPoll::Ready(Ok(report));
        }
        if let Err(err) = inner.hosts.check(request.image.registry()) {
            return ScanPoll::Ready(Err(err));
        }

        let ticket = inner.waiters.tickets.fetch_add(1, Ordering::SeqCst);
        let since = jiff::Timestamp::now();
        let progress = Arc::new(Progress::default());
        let mut slots = inner.waiters.lock();
        inner.waiters.started.fetch_add(1, Ordering::SeqCst);
        // The task cannot store its result before the slot exists: `finish` needs this lock.
        let task = tokio::spawn({
            let (inner, progress, waiter) = (Arc::clone(inner), Arc::clone(&progress), waiter.clone());
            async move {
                let result = inner.scan(request.as_request(), &progress).await;
                tracing::debug!(
                    waiter = waiter.as_str(),
                    registry = request.image.registry(),
                    repository = request.image.repository(),
                    outcome = result.as_ref().map_or_else(ScanError::metric_label, |_| "ok"),
                    "background scan finished"
                );
                if inner.waiters.finish(&waiter, ticket, result) {
                    wake();
                }
            }
        });
        let slot =
            Slot { key, ticket, since, state: State::Running { progress, task: Task(Some(task.abort_handle())) } };
        let replaced = slots.insert(waiter, slot);
        drop(slots);
        drop(replaced);
        ScanPoll::Pending { since, queued: false }
    }

    /// Cancels `waiter`'s background scan and drops its result (the resource is gone).
    pub fn forget(&self, waiter: &WaiterId) {
        let removed = self.inner.waiters.lock().remove(waiter);
        drop(removed);
    }

    /// Background scans running now.
    pub fn scans_running(&self) -> usize {
        self.inner.waiters.lock().values().filter(|slot| matches!(slot.state, State::Running { .. })).count()
    }

    /// Background scans started since start (each poll that found nothing to answer with).
    pub fn scans_started(&self) -> u64 {
        self.inner.waiters.started.load(Ordering::SeqCst)
    }
}

//! The [`Scanner`] every resource shares: one tag listing per (registry, repository,
//! credentials) per interval, however many resources ask, and at most one in flight.
//!
//! Each key maps to a *flight*: a `tokio::sync::OnceCell` holding the listing's outcome.
//! Callers that find a flight still running wait on it (single-flight); callers that find a
//! fresh-enough listing reuse it; callers that find a stale one, a failed one, or that pass
//! `force` (the rescan annotation) replace it with a new flight. A failure is shared by the
//! callers that waited on that flight, never cached beyond it. Digests are resolved the same
//! way, once per (listing, tag), so a re-pushed tag is seen on the next listing.
//!
//! Credentials are part of the key as a salted SHA-256 (salt random per process), never as
//! the secret itself.
//!
//! Every listing and digest resolution holds a slot of its registry host's pool and obeys its
//! backoff ([`super::hosts`]), and a scan spends at most [`ScanSettings::deadline`] talking to
//! registries. [`Scanner::scan`] waits for the result; [`Scanner::poll`]
//! ([`super::background`]) runs the same scan in a task of its own and wakes the caller.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OnceCell;

use super::background::Waiters;
use super::client::{Deadline, RegistryClient};
use super::credentials::Credentials;
use super::error::ScanError;
use super::hosts::{HostPolicy, Hosts};
use super::reference::ImageRef;
pub use super::report::{ChosenImage, Listing, ScanReport};
use super::select::{Constraint, select};
use super::{digest, tags};

/// How scans are bounded; [`ScanSettings::default`] gives the agent's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSettings {
    /// The longest a scan spends talking to registries: listing and digest resolution, with
    /// every retry, wait between retries and auth handshake. Waiting for a host slot, or for
    /// a listing another scan is making, is not counted (the scan making it is bounded).
    /// Default 60 s.
    pub deadline: Duration,
    /// Listings and digest resolutions in progress against one registry host at once.
    /// Default 4.
    pub per_host: usize,
    /// How long scans of a host fail fast after its first transport failure or missed
    /// deadline; doubled per further failure in a row up to `host_backoff_max`. Default 10 s.
    pub host_backoff_initial: Duration,
    /// Default 5 min.
    pub host_backoff_max: Duration,
    /// How long the result of a background scan ([`Scanner::poll`]) waits to be taken; an
    /// older one is dropped and the next poll scans again. Default 5 min.
    pub result_ttl: Duration,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(60),
            per_host: 4,
            host_backoff_initial: Duration::from_secs(10),
            host_backoff_max: Duration::from_secs(300),
            result_ttl: Duration::from_secs(300),
        }
    }
}

/// What one resource asks of the scanner.
#[derive(Debug, Clone, Copy)]
pub struct ScanRequest<'a> {
    pub image: &'a ImageRef,
    pub credentials: &'a Credentials,
    pub constraint: &'a Constraint,
    /// A listing younger than this is reused: the resource's `syncInterval`.
    pub max_age: Duration,
    /// List again even if a fresh listing exists (the rescan annotation). Joins a listing
    /// already in flight rather than starting a second one.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ScanKey {
    registry: String,
    repository: String,
    credentials: [u8; 32],
}

/// A listing or digest resolution, in flight or done, shared by the scans that joined it.
#[derive(Debug)]
pub(crate) struct Cell<T> {
    value: OnceCell<Result<T, ScanError>>,
    /// Set while the scan doing the work waits for a slot of the host's pool.
    queued: Arc<AtomicBool>,
}

impl<T> Default for Cell<T> {
    fn default() -> Self {
        Self { value: OnceCell::new(), queued: Arc::default() }
    }
}

/// One listing in flight or done.
type Flight = Arc<Cell<Arc<Listing>>>;
/// One digest resolution of a listing's tag.
pub(crate) type DigestCell = Arc<Cell<String>>;

/// What a scan is waiting on, so a background scan can say "waiting for a registry slot".
#[derive(Default)]
pub(crate) struct Progress {
    watching: Mutex<Option<Arc<AtomicBool>>>,
}

impl Progress {
    fn watch<T>(&self, cell: &Cell<T>) {
        *self.watching.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&cell.queued));
    }

    /// Whether the listing or digest resolution the scan waits on waits for a host slot.
    pub fn queued(&self) -> bool {
        self.watching.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_some_and(|q| q.load(Ordering::SeqCst))
    }
}

/// The scan deadline, spent by the work a scan does itself.
struct Budget {
    total: Duration,
    spent: Duration,
}

impl Budget {
    /// The deadline of work starting at `started`: what is left of the budget.
    fn deadline(&self, started: Instant) -> Deadline {
        let left = self.total.saturating_sub(self.spent);
        Deadline { at: tokio::time::Instant::from_std(started + left), budget: self.total }
    }

    fn spend(&mut self, started: Instant) {
        self.spent += started.elapsed();
    }
}

/// Registry scans shared by every resource of the agent: cheap to clone (one shared state),
/// so background scans can outlive the call that started them.
#[derive(Clone)]
pub struct Scanner {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: RegistryClient,
    pub(crate) settings: ScanSettings,
    flights: Mutex<HashMap<ScanKey, Flight>>,
    salt: [u8; 16],
    /// Tag listings sent (shared with the `alustan_registry_listings_total` metric).
    listings_started: Counter,
    pub(crate) hosts: Hosts,
    pub(crate) waiters: Waiters,
}

impl Scanner {
    /// A scanner with the default [`ScanSettings`].
    pub fn new(client: RegistryClient) -> Self {
        Self::with_settings(client, ScanSettings::default())
    }

    pub fn with_settings(client: RegistryClient, settings: ScanSettings) -> Self {
        // Two independently seeded SipHash outputs: unpredictable enough to salt cache keys.
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&RandomState::new().hash_one(1u8).to_le_bytes());
        salt[8..].copy_from_slice(&RandomState::new().hash_one(2u8).to_le_bytes());
        let hosts = Hosts::new(HostPolicy {
            per_host: settings.per_host,
            initial: settings.host_backoff_initial,
            max: settings.host_backoff_max,
        });
        let inner = Inner {
            client,
            settings,
            flights: Mutex::new(HashMap::new()),
            salt,
            listings_started: Counter::default(),
            hosts,
            waiters: Waiters::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.inner.client
    }

    pub fn settings(&self) -> &ScanSettings {
        &self.inner.settings
    }

    /// Tag listings sent to registries since start (a metric; cache hits and callers that
    /// joined a listing in flight do not count).
    pub fn listings_started(&self) -> u64 {
        self.inner.listings_started.get()
    }

    /// The counter behind [`Scanner::listings_started`], for the metrics registry.
    pub fn listings_counter(&self) -> Counter {
        self.inner.listings_started.clone()
    }

    /// Drops finished listings older than `age` (and failed ones), so repositories no resource
    /// uses any more do not keep their tag lists in memory, and background results (see
    /// [`Scanner::poll`]) finished more than `age` or `result_ttl` ago. Work in progress stays.
    pub fn prune(&self, age: Duration) {
        let mut flights = self.inner.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.retain(|_, flight| match flight.value.get() {
            None => true,
            Some(Err(_)) => false,
            Some(Ok(listing)) => listing.started.elapsed() < age,
        });
        drop(flights);
        self.inner.hosts.prune(age);
        self.inner.waiters.prune(age.min(self.inner.settings.result_ttl));
    }

    /// Repositories (per credentials) with a listing cached or in flight.
    pub fn cached(&self) -> usize {
        self.inner.flights.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Lists (or reuses a listing of) the repository, selects the tag and resolves its digest,
    /// waiting for the result (see [`Scanner::poll`] for the same without waiting).
    /// Registry failures are errors; "no tag matches" is a report without a chosen image.
    pub async fn scan(&self, request: ScanRequest<'_>) -> Result<ScanReport, ScanError> {
        self.inner.scan(request, &Progress::default()).await
    }
}

impl Inner {
    pub(crate) async fn scan(&self, request: ScanRequest<'_>, progress: &Progress) -> Result<ScanReport, ScanError> {
        let mut budget = Budget { total: self.settings.deadline, spent: Duration::ZERO };
        let flight = self.flight(&request);
        progress.watch(&flight);
        let listing = flight
            .value
            .get_or_init(|| self.list(request.image, request.credentials, &flight.queued, &mut budget))
            .await
            .clone()?;
        let selection = select(&listing.tags, request.constraint);
        let chosen = match &selection.winner {
            Some(tag) => {
                let digest = self.digest(&listing, &request, tag, progress, &mut budget).await?;
                Some(ChosenImage { reference: request.image.pinned(&digest), tag: tag.clone(), digest })
            }
            None => None,
        };
        Ok(ScanReport { image: request.image.clone(), listing, selection, chosen })
    }

    /// The report of a scan that needs no registry request: a fresh listing is cached and the
    /// chosen tag's digest already resolved.
    pub(crate) fn cached_report(&self, request: &ScanRequest<'_>) -> Option<ScanReport> {
        if request.force {
            return None;
        }
        let flight = self.flights.lock().unwrap_or_else(PoisonError::into_inner).get(&self.key(request)).cloned()?;
        let Some(Ok(listing)) = flight.value.get() else { return None };
        if listing.started.elapsed() >= request.max_age {
            return None;
        }
        let selection = select(&listing.tags, request.constraint);
        let chosen = match &selection.winner {
            Some(tag) => {
                let cell = listing.digests.lock().unwrap_or_else(PoisonError::into_inner).get(tag).cloned()?;
                let Some(Ok(digest)) = cell.value.get() else { return None };
                Some(ChosenImage { reference: request.image.pinned(digest), tag: tag.clone(), digest: digest.clone() })
            }
            None => None,
        };
        Some(ScanReport { image: request.image.clone(), listing: Arc::clone(listing), selection, chosen })
    }

    pub(crate) fn key(&self, request: &ScanRequest<'_>) -> ScanKey {
        ScanKey {
            registry: request.image.registry().to_owned(),
            repository: request.image.repository().to_owned(),
            credentials: request.credentials.identity(&self.salt),
        }
    }

    /// The flight to wait on: the current one if reusable, else a new one in its place.
    fn flight(&self, request: &ScanRequest<'_>) -> Flight {
        let key = self.key(request);
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        let reusable = flights.get(&key).filter(|flight| match flight.value.get() {
            None => true,
            Some(Err(_)) => false,
            Some(Ok(listing)) => !request.force && listing.started.elapsed() < request.max_age,
        });
        if let Some(flight) = reusable {
            return Arc::clone(flight);
        }
        let flight = Flight::default();
        flights.insert(key, Arc::clone(&flight));
        flight
    }

    async fn list(
        &self,
        image: &ImageRef,
        credentials: &Credentials,
        queued: &AtomicBool,
        budget: &mut Budget,
    ) -> Result<Arc<Listing>, ScanError> {
        let permit = self.hosts.acquire(image.registry(), queued).await?;
        self.listings_started.inc();
        let (started, time) = (permit.started, jiff::Timestamp::now());
        let mut session = self.client.session(image, credentials, None);
        session.deadline = Some(budget.deadline(started));
        let result = tags::list_all(&mut session).await;
        budget.spend(started);
        self.hosts.record(image.registry(), started, result.as_ref().map(|_| ()));
        drop(permit);
        let duration = started.elapsed();
        match &result {
            Ok(list) => tracing::info!(
                registry = image.registry(),
                repository = image.repository(),
                tags = list.tags.len(),
                pages = list.pages,
                requests = session.requests,
                duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                "listed tags"
            ),
            Err(err) => tracing::warn!(
                registry = image.registry(),
                repository = image.repository(),
                reason = err.metric_label(),
                error = %err,
                "tag listing failed"
            ),
        }
        let list = result?;
        Ok(Arc::new(Listing {
            tags: list.tags,
            time,
            pages: list.pages,
            requests: session.requests,
            duration,
            started,
            authorization: session.authorization(),
            digests: Mutex::new(HashMap::new()),
        }))
    }

    /// The digest of `tag` as of this listing, resolved once however many resources chose it.
    async fn digest(
        &self,
        listing: &Listing,
        request: &ScanRequest<'_>,
        tag: &str,
        progress: &Progress,
        budget: &mut Budget,
    ) -> Result<String, ScanError> {
        let cell = {
            let mut digests = listing.digests.lock().unwrap_or_else(PoisonError::into_inner);
            let cell = digests.entry(tag.to_owned()).or_default();
            // A failed resolution is retried by the next caller, like a failed listing.
            if matches!(cell.value.get(), Some(Err(_))) {
                *cell = Arc::default();
            }
            Arc::clone(cell)
        };
        progress.watch(&cell);
        let image = request.image;
        cell.value
            .get_or_init(|| async {
                let permit = self.hosts.acquire(image.registry(), &cell.queued).await?;
                let mut session = self.client.session(image, request.credentials, listing.authorization.clone());
                session.deadline = Some(budget.deadline(permit.started));
                let digest = digest::resolve(&mut session, tag).await;
                budget.spend(permit.started);
                self.hosts.record(image.registry(), permit.started, digest.as_ref().map(|_| ()));
                if let Ok(digest) = &digest {
                    tracing::debug!(
                        registry = image.registry(),
                        repository = image.repository(),
                        tag,
                        digest,
                        "resolved digest"
                    );
                }
                digest
            })
            .await
            .clone()
    }
}

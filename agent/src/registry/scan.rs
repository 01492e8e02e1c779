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

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alustan_shared::RegistryScan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus_client::metrics::counter::Counter;
use reqwest::header::HeaderValue;
use tokio::sync::OnceCell;

use super::client::RegistryClient;
use super::credentials::Credentials;
use super::error::ScanError;
use super::reference::ImageRef;
use super::select::{Constraint, Selection, select};
use super::{digest, tags};

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

/// One listing of a repository's tags.
#[derive(Debug)]
pub struct Listing {
    /// Every tag, each once, in registry order.
    pub tags: Vec<String>,
    /// When the listing started.
    pub time: jiff::Timestamp,
    /// Tag pages fetched.
    pub pages: u32,
    /// HTTP requests the listing sent (pages, retries and auth retries; not the handshake).
    pub requests: u32,
    /// How long the listing took.
    pub duration: Duration,
    started: Instant,
    /// The listing's authorization, reused to resolve digests (a sensitive header value:
    /// `Debug` shows `Sensitive`).
    authorization: Option<HeaderValue>,
    digests: Mutex<HashMap<String, DigestCell>>,
}

/// The image a Job will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenImage {
    /// The tag exactly as in the registry.
    pub tag: String,
    /// Its manifest digest at scan time.
    pub digest: String,
    /// `repository@digest`, e.g. `docker.io/alustan/infra@sha256:…`.
    pub reference: String,
}

/// One resource's view of a scan: the shared listing, its own selection, the pinned image.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub image: ImageRef,
    pub listing: Arc<Listing>,
    pub selection: Selection,
    /// `None` when no tag satisfies the constraint (see [`ScanReport::chosen`]).
    pub chosen: Option<ChosenImage>,
}

impl ScanReport {
    /// The chosen image, or the "no tag satisfies the constraint" error (with the newest tags
    /// seen) for the resource's status.
    pub fn chosen(&self) -> Result<&ChosenImage, ScanError> {
        self.chosen.as_ref().ok_or_else(|| ScanError::NoMatchingTag {
            image: self.image.canonical(),
            constraint: self.selection.constraint.clone(),
            tag_count: self.selection.tag_count,
            newest: self.selection.newest_seen.clone(),
        })
    }

    /// `status.lastScan`.
    pub fn to_status(&self) -> RegistryScan {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        RegistryScan {
            time: Time(self.listing.time),
            image: self.image.canonical(),
            constraint: self.selection.constraint.clone(),
            tag_count: count(self.selection.tag_count),
            matching_count: count(self.selection.matching_count),
            newest_matching: self.selection.newest_matching.clone(),
            rejected: self.selection.rejected.clone(),
            selected_tag: self.chosen.as_ref().map(|c| c.tag.clone()),
            selected_digest: self.chosen.as_ref().map(|c| c.digest.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScanKey {
    registry: String,
    repository: String,
    credentials: [u8; 32],
}

/// One listing in flight or done; shared by the callers that joined it.
type Flight = Arc<OnceCell<Result<Arc<Listing>, ScanError>>>;
/// One digest resolution of a listing's tag.
type DigestCell = Arc<OnceCell<Result<String, ScanError>>>;

/// Registry scans shared by every resource of the agent.
pub struct Scanner {
    client: RegistryClient,
    flights: Mutex<HashMap<ScanKey, Flight>>,
    salt: [u8; 16],
    /// Tag listings sent (shared with the `alustan_registry_listings_total` metric).
    listings_started: Counter,
}

impl Scanner {
    pub fn new(client: RegistryClient) -> Self {
        // Two independently seeded SipHash outputs: unpredictable enough to salt cache keys.
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&RandomState::new().hash_one(1u8).to_le_bytes());
        salt[8..].copy_from_slice(&RandomState::new().hash_one(2u8).to_le_bytes());
        Self { client, flights: Mutex::new(HashMap::new()), salt, listings_started: Counter::default() }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Tag listings sent to registries since start (a metric; cache hits and callers that
    /// joined a listing in flight do not count).
    pub fn listings_started(&self) -> u64 {
        self.listings_started.get()
    }

    /// The counter behind [`Scanner::listings_started`], for the metrics registry.
    pub fn listings_counter(&self) -> Counter {
        self.listings_started.clone()
    }

    /// Drops finished listings older than `age` (and failed ones), so repositories no resource
    /// uses any more do not keep their tag lists in memory. Flights in progress stay.
    pub fn prune(&self, age: Duration) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.retain(|_, flight| match flight.get() {
            None => true,
            Some(Err(_)) => false,
            Some(Ok(listing)) => listing.started.elapsed() < age,
        });
    }

    /// Repositories (per credentials) with a listing cached or in flight.
    pub fn cached(&self) -> usize {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Lists (or reuses a listing of) the repository, selects the tag and resolves its digest.
    /// Registry failures are errors; "no tag matches" is a report without a chosen image.
    pub async fn scan(&self, request: ScanRequest<'_>) -> Result<ScanReport, ScanError> {
        let flight = self.flight(&request);
        let listing = flight.get_or_init(|| self.list(request.image, request.credentials)).await.clone()?;
        let selection = select(&listing.tags, request.constraint);
        let chosen = match &selection.winner {
            Some(tag) => {
                let digest = self.digest(&listing, request.image, request.credentials, tag).await?;
                Some(ChosenImage { reference: request.image.pinned(&digest), tag: tag.clone(), digest })
            }
            None => None,
        };
        Ok(ScanReport { image: request.image.clone(), listing, selection, chosen })
    }

    /// The flight to wait on: the current one if reusable, else a new one in its place.
    fn flight(&self, request: &ScanRequest<'_>) -> Flight {
        let key = ScanKey {
            registry: request.image.registry().to_owned(),
            repository: request.image.repository().to_owned(),
            credentials: request.credentials.identity(&self.salt),
        };
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        let reusable = flights.get(&key).filter(|flight| match flight.get() {
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

    async fn list(&self, image: &ImageRef, credentials: &Credentials) -> Result<Arc<Listing>, ScanError> {
        self.listings_started.inc();
        let (started, time) = (Instant::now(), jiff::Timestamp::now());
        let mut session = self.client.session(image, credentials, None);
        let result = tags::list_all(&mut session).await;
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
        image: &ImageRef,
        credentials: &Credentials,
        tag: &str,
    ) -> Result<String, ScanError> {
        let cell = {
            let mut digests = listing.digests.lock().unwrap_or_else(PoisonError::into_inner);
            let cell = digests.entry(tag.to_owned()).or_default();
            // A failed resolution is retried by the next caller, like a failed listing.
            if matches!(cell.get(), Some(Err(_))) {
                *cell = Arc::default();
            }
            Arc::clone(cell)
        };
        cell.get_or_init(|| async {
            let mut session = self.client.session(image, credentials, listing.authorization.clone());
            let digest = digest::resolve(&mut session, tag).await;
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

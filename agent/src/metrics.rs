//! Prometheus metrics (the `prometheus-client` crate, `OpenMetrics` text exposition) and the
//! `/metrics`, `/healthz` and `/readyz` endpoints (a tiny hyper server: three fixed GET routes).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::context::Context;
use crate::registry::{ScanError, ScanReport};

/// The exposition's content type (`OpenMetrics` text, which Prometheus scrapes natively).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionResultLabels {
    action: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RepositoryLabel {
    repository: String,
}

/// Every metric of the agent, registered once; clones of a metric share its value.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ReasonLabel, Counter>,
    reconciles_in_flight: Gauge,
    registry_scans: Counter,
    registry_scan_errors: Family<ReasonLabel, Counter>,
    registry_tags_seen: Family<RepositoryLabel, Gauge>,
    jobs_started: Family<ActionLabel, Counter>,
    jobs_finished: Family<ActionResultLabels, Counter>,
    drift_detected: Counter,
    leader: Gauge,
    /// Set once the process serves (readiness = the process is healthy, leader or standby).
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Counter::default())
    }
}

/// Counts a reconcile as in flight and observes its duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconciles_in_flight.dec();
        self.metrics.reconcile_duration.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// `listings`: the scanner's count of tag listings sent (see `Scanner::listings_counter`).
    pub fn new(listings: Counter) -> Self {
        let mut registry = Registry::default();
        // 5 ms to ~82 s: a reconcile is a few API calls, or a registry listing with retries.
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "alustan_reconcile_duration_seconds",
            "Time one reconcile took (registry scan, decision, Job and status writes)",
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<ReasonLabel, Counter>::default();
        registry.register("alustan_reconcile_errors", "Failed reconciles by reason", reconcile_errors.clone());
        let reconciles_in_flight = Gauge::default();
        registry.register(
            "alustan_reconciles_in_flight",
            "Reconciles running now (the queue-depth figure the controller exposes)",
            reconciles_in_flight.clone(),
        );
        let registry_scans = Counter::default();
        registry.register(
            "alustan_registry_scans",
            "Registry scans done by reconciles (a cached listing counts; see registry_listings)",
            registry_scans.clone(),
        );
        registry.register(
            "alustan_registry_listings",
            "Tag listings sent to registries (cache hits and joined listings do not count)",
            listings,
        );
        let registry_scan_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "alustan_registry_scan_errors",
            "Failed registry scans by reason",
            registry_scan_errors.clone(),
        );
        let registry_tags_seen = Family::<RepositoryLabel, Gauge>::default();
        registry.register(
            "alustan_registry_tags_seen",
            "Tags listed at the last scan of each repository",
            registry_tags_seen.clone(),
        );
        let jobs_started = Family::<ActionLabel, Counter>::default();
        registry.register("alustan_jobs_started", "Jobs created by action", jobs_started.clone());
        let jobs_finished = Family::<ActionResultLabels, Counter>::default();
        registry.register("alustan_jobs_finished", "Jobs finished by action and result", jobs_finished.clone());
        let drift_detected = Counter::default();
        registry.register(
            "alustan_drift_detected",
            "Plans of applied inputs that found changes (drift)",
            drift_detected.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "alustan_leader",
            "1 while this process runs the controller (holds the Lease)",
            leader.clone(),
        );
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            reconciles_in_flight,
            registry_scans,
            registry_scan_errors,
            registry_tags_seen,
            jobs_started,
            jobs_finished,
            drift_detected,
            leader,
            ready: AtomicBool::new(false),
        }
    }

    /// Call at the start of a reconcile; keep the timer until it ends.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles_in_flight.inc();
        ReconcileTimer { metrics: self, started: Instant::now() }
    }

    pub fn error(&self, reason: &'static str) {
        self.reconcile_errors.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// One reconcile's scan: counted, and its outcome (tags seen, or the failure's reason).
    pub fn registry_scanned(&self, scan: &Result<ScanReport, ScanError>) {
        self.registry_scans.inc();
        match scan {
            Ok(report) => self.tags_seen(report.image.canonical(), report.listing.tags.len()),
            Err(err) => {
                self.registry_scan_errors.get_or_create(&ReasonLabel { reason: err.metric_label() }).inc();
            }
        }
    }

    fn tags_seen(&self, repository: String, tags: usize) {
        let tags = i64::try_from(tags).unwrap_or(i64::MAX);
        self.registry_tags_seen.get_or_create(&RepositoryLabel { repository }).set(tags);
    }

    pub fn job_started(&self, action: &'static str) {
        self.jobs_started.get_or_create(&ActionLabel { action }).inc();
    }

    pub fn job_finished(&self, action: &'static str, result: &'static str) {
        self.jobs_finished.get_or_create(&ActionResultLabels { action, result }).inc();
    }

    pub fn drift_detected(&self) {
        self.drift_detected.inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The `OpenMetrics` text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would leave a partial text.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %err, "cannot encode metrics");
        }
        out
    }
}

fn respond(ctx: &Context, path: &str) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match path {
        "/metrics" => (StatusCode::OK, ctx.metrics.render(), CONTENT_TYPE),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" if ctx.metrics.ready.load(Ordering::Relaxed) => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned(), "text/plain"),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned(), "text/plain"),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = respond(&ctx, request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(err) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %err, "metrics connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_metric_with_its_labels() {
        let listings = Counter::default();
        let metrics = Metrics::new(listings.clone());
        listings.inc_by(3);
        {
            let _timer = metrics.reconcile_started();
            let text = metrics.render();
            assert!(text.contains("alustan_reconciles_in_flight 1\n"), "{text}");
        }
        metrics.error("kube");
        metrics.job_started("deploy");
        metrics.job_finished("deploy", "succeeded");
        metrics.registry_scanned(&Err(ScanError::Transport {
            registry: "r".into(),
            repository: "p".into(),
            attempts: 4,
            message: "refused".into(),
        }));
        metrics.tags_seen("ghcr.io/alustan/infra".into(), 12);
        metrics.tags_seen("ghcr.io/alustan/infra".into(), 13);
        metrics.set_leader(true);
        let text = metrics.render();
        for line in [
            "# TYPE alustan_reconcile_duration_seconds histogram\n",
            "alustan_reconcile_duration_seconds_count 1\n",
            "alustan_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "alustan_reconcile_duration_seconds_bucket{le=\"+Inf\"} 1\n",
            "alustan_reconciles_in_flight 0\n",
            "alustan_reconcile_errors_total{reason=\"kube\"} 1\n",
            "alustan_registry_listings_total 3\n",
            "alustan_registry_scans_total 1\n",
            "alustan_registry_scan_errors_total{reason=\"transport\"} 1\n",
            "alustan_jobs_started_total{action=\"deploy\"} 1\n",
            "alustan_jobs_finished_total{action=\"deploy\",result=\"succeeded\"} 1\n",
            "alustan_leader 1\n",
            "# TYPE alustan_registry_tags_seen gauge\n",
            "alustan_registry_tags_seen{repository=\"ghcr.io/alustan/infra\"} 13\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

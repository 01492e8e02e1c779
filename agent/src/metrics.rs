//! Prometheus metrics in the text exposition format, and the `/metrics`, `/healthz` and
//! `/readyz` endpoints (a tiny hyper server: three fixed GET routes).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::context::Context;

#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    reconcile_micros: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    jobs_started: Mutex<BTreeMap<&'static str, u64>>,
    jobs_finished: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Set once the controller runs (the CRD check passed).
    pub ready: AtomicBool,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *map.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.reconcile_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn error(&self, reason: &'static str) {
        bump(&self.errors, reason);
    }

    pub fn job_started(&self, action: &'static str) {
        bump(&self.jobs_started, action);
    }

    pub fn job_finished(&self, action: &'static str, result: &'static str) {
        bump(&self.jobs_finished, (action, result));
    }

    /// The text exposition; `listings` comes from the shared scanner.
    pub fn render(&self, listings: u64) -> String {
        let mut out = String::new();
        let reconciles = self.reconciles.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)] // seconds for a dashboard
        let seconds = self.reconcile_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "# HELP alustan_reconcile_duration_seconds Time spent reconciling.");
        let _ = writeln!(out, "# TYPE alustan_reconcile_duration_seconds summary");
        let _ = writeln!(out, "alustan_reconcile_duration_seconds_sum {seconds}");
        let _ = writeln!(out, "alustan_reconcile_duration_seconds_count {reconciles}");
        let _ = writeln!(out, "# HELP alustan_reconcile_errors_total Failed reconciles by reason.");
        let _ = writeln!(out, "# TYPE alustan_reconcile_errors_total counter");
        for (reason, n) in self.errors.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "alustan_reconcile_errors_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP alustan_registry_listings_total Tag listings sent to registries.");
        let _ = writeln!(out, "# TYPE alustan_registry_listings_total counter");
        let _ = writeln!(out, "alustan_registry_listings_total {listings}");
        let _ = writeln!(out, "# HELP alustan_jobs_started_total Jobs created by action.");
        let _ = writeln!(out, "# TYPE alustan_jobs_started_total counter");
        for (action, n) in self.jobs_started.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "alustan_jobs_started_total{{action=\"{action}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP alustan_jobs_finished_total Jobs finished by action and result.");
        let _ = writeln!(out, "# TYPE alustan_jobs_finished_total counter");
        for ((action, result), n) in self.jobs_finished.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "alustan_jobs_finished_total{{action=\"{action}\",result=\"{result}\"}} {n}");
        }
        out
    }
}

fn respond(ctx: &Context, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, ctx.metrics.render(ctx.scanner.listings_started())),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if ctx.metrics.ready.load(Ordering::Relaxed) => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
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
    fn renders_counters_with_labels() {
        let metrics = Metrics::default();
        metrics.reconciled(Duration::from_millis(1500));
        metrics.error("kube");
        metrics.job_started("deploy");
        metrics.job_finished("deploy", "succeeded");
        let text = metrics.render(3);
        assert!(text.contains("alustan_reconcile_duration_seconds_sum 1.5\n"), "{text}");
        assert!(text.contains("alustan_reconcile_duration_seconds_count 1\n"));
        assert!(text.contains("alustan_reconcile_errors_total{reason=\"kube\"} 1\n"));
        assert!(text.contains("alustan_registry_listings_total 3\n"));
        assert!(text.contains("alustan_jobs_started_total{action=\"deploy\"} 1\n"));
        assert!(text.contains("alustan_jobs_finished_total{action=\"deploy\",result=\"succeeded\"} 1\n"));
    }
}

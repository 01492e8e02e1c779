//! The alustan agent as a library: the pieces the `alustan-agent` binary is built from, each
//! usable and testable on its own.
//!
//! - [`registry`]: registry scanning and version selection — list every tag of an image,
//!   choose the newest one satisfying a semver constraint (and explain why), and pin it to a
//!   digest; one scan per repository and credentials per interval, shared by every resource,
//!   run in the background with a deadline and a bounded pool per registry host.
//! - [`reconcile`]: one pass per resource — bring ended runs into status, decide (pure, one run
//!   at a time), act, write status once; deletion the same way.
//! - [`runs`]: a run's Job, starting it with its seal, reading its outcome and outputs.
//! - [`leader`]: the Lease election; [`run_with_leader_election`] runs the loop only while
//!   this process leads. [`metrics`]: `/metrics`, `/healthz`, `/readyz`.

pub mod config;
pub mod context;
pub mod error;
pub mod graph;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod runs;

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{Controller, WatchStreamExt as _, controller, reflector, watcher};
use kube::{Api, api::ListParams};

pub use context::Context;
use error::StartupError;

/// Fails with a hint when the `Terraform` CRD is not installed (the watch would only retry).
pub async fn check_crd(client: &kube::Client) -> Result<(), StartupError> {
    let api: Api<alustan_shared::Terraform> = Api::all(client.clone());
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(StartupError::Config(format!(
            "the {}.{} CRD is not installed: kubectl apply -f crds/terraform.yaml (or install the Helm chart)",
            alustan_shared::PLURAL,
            alustan_shared::GROUP
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Objects per LIST page of the controller's watches.
const LIST_PAGE_SIZE: u32 = 100;
/// Jobs per LIST page of the Jobs' watch: whole Jobs (the wrapper script, env) are decoded
/// before being stripped for the cache, so smaller pages keep a restart's peak lower.
const JOB_PAGE_SIZE: u32 = 25;
/// Reconciles running at once (each holds a resource, its Jobs' reads and a registry scan).
const RECONCILE_CONCURRENCY: u16 = 32;

/// Runs the controller until `shutdown` resolves (then finishes the reconciles in flight).
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let (terraforms, jobs): (Api<alustan_shared::Terraform>, Api<Job>) = match &ctx.config.namespace {
        Some(namespace) => (Api::namespaced(client.clone(), namespace), Api::namespaced(client, namespace)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let managed = format!("{}={}", alustan_shared::meta::LABEL_MANAGED_BY, alustan_shared::meta::MANAGED_BY_VALUE);
    // The controller's cache holds every resource: without managedFields (never read, and as
    // large as the status itself) it costs far less memory. Smaller LIST pages and bounded
    // concurrency keep the start-up peak low with thousands of resources.
    let (reader, writer) = reflector::store();
    // The same watch feeds the dependency index: a change wakes the resources that depend on
    // it, a deletion also the ones it depended on (they may wait for it to go).
    let (dependency_wakes, woken_by_dependencies) = futures::channel::mpsc::unbounded();
    let (graph_ctx, cache) = (Arc::clone(&ctx), reader.clone());
    *ctx.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reader.clone());
    let terraforms = watcher(terraforms, watcher::Config::default().page_size(LIST_PAGE_SIZE))
        .default_backoff()
        .modify(|tf| tf.metadata.managed_fields = None)
        .reflect(writer)
        .inspect_ok(move |event| {
            let (tf, gone) = match event {
                watcher::Event::Apply(tf) | watcher::Event::InitApply(tf) => (tf, false),
                watcher::Event::Delete(tf) => (tf, true),
                // A (re-)list ended: deletions missed while disconnected drop out.
                watcher::Event::InitDone => return graph_ctx.graph.rebuild(&cache.state()),
                watcher::Event::Init => return,
            };
            for dependant in graph_ctx.graph.observe(tf, gone) {
                // A closed channel: the controller stopped; nothing to wake.
                let _ = dependency_wakes.unbounded_send(dependant);
            }
        })
        .applied_objects();
    let pruner = tokio::spawn(prune_scans(Arc::clone(&ctx)));
    let written_pruner = tokio::spawn(prune_written(Arc::clone(&ctx)));
    let (ingresses, ingress_watch) = crate::runs::gather::watch_ingresses(ctx.client.clone());
    *ctx.ingress_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ingresses);
    let (credentials, credential_watches) = crate::runs::credential_watch::watch(&ctx.client, &ctx.credential_sources);
    *ctx.credential_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = credentials;
    // Stopped with the controller, also when this future is dropped unfinished (a lost Lease
    // aborts it).
    let _helpers = AbortOnDrop([pruner, written_pruner, ingress_watch].into_iter().chain(credential_watches).collect());
    let scans_ended = ctx.connect_scan_wakes();
    // The Jobs' watch also keeps each Job's outcome: a pass reads how a run's Job stands there
    // rather than with a GET. The controller maps the Jobs it passes on to their owners: their
    // metadata and status are all it needs.
    ctx.job_outcomes.clear();
    let outcomes_ctx = Arc::clone(&ctx);
    let owned_jobs = watcher(jobs, watcher::Config::default().labels(&managed).page_size(JOB_PAGE_SIZE))
        .default_backoff()
        .modify(crate::runs::observe::keep_outcome_only)
        .inspect_ok(move |event| outcomes_ctx.job_outcomes.apply(event))
        .touched_objects();
    Controller::for_stream(terraforms, reader)
        .reconcile_on(scans_ended)
        .reconcile_on(woken_by_dependencies)
        .owns_stream(owned_jobs)
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile ended with an error");
            }
        })
        .await;
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Every sync interval, drops the scanner's tag lists older than two intervals: repositories no
/// resource uses any more must not stay in memory for the agent's lifetime. A resource with a
/// longer `spec.syncInterval` may then list its repository once more than it needed to.
async fn prune_scans(ctx: Arc<Context>) {
    let every = ctx.config.sync_interval.max(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        ctx.scanner.prune(every.saturating_mul(2));
    }
}

/// How long the agent's own status writes are remembered (see `reconcile::status::prune`):
/// at least the first, then until the controller's cache has them, at most the second.
const WRITTEN_KEPT: (std::time::Duration, std::time::Duration) =
    (std::time::Duration::from_secs(60), std::time::Duration::from_secs(600));

/// Every 30 s, drops the remembered status writes as [`WRITTEN_KEPT`] says.
async fn prune_written(ctx: Arc<Context>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(30));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let cache = ctx.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        reconcile::status::prune(&ctx.written, cache.as_ref(), WRITTEN_KEPT);
    }
}

/// Waits to hold the election's Lease, then runs the controller while renewing it. On
/// `shutdown` it stops the controller (reconciles in flight finish, still renewing) and then
/// releases the Lease so a standby takes over at once. Losing the Lease stops the controller at
/// once and returns the error: the process should exit non-zero and be restarted, as
/// controller-runtime does.
pub async fn run_with_leader_election(
    ctx: Arc<Context>,
    election: leader::ElectionConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), leader::LeaderError> {
    let elector = leader::Elector::new(ctx.client.clone(), election);
    let config = elector.config().clone();
    let mut shutdown = std::pin::pin!(shutdown);
    ctx.metrics.set_leader(false);
    tracing::info!(
        identity = config.identity,
        lease = config.lease_name,
        namespace = config.namespace,
        "waiting for leadership"
    );
    tokio::select! {
        () = elector.acquire() => {}
        () = &mut shutdown => return Ok(()),
    }
    ctx.metrics.set_leader(true);
    tracing::info!(
        identity = config.identity,
        lease = config.lease_name,
        namespace = config.namespace,
        "became the leader"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut controller = tokio::spawn(run(Arc::clone(&ctx), async move {
        let _ = stopped.await;
    }));
    let outcome = {
        let mut leading = std::pin::pin!(elector.keep_leading());
        tokio::select! {
            lost = &mut leading => Err(lost),
            ended = &mut controller => ended.map_err(|err| leader::LeaderError::ControllerCrashed(err.to_string())),
            () = &mut shutdown => {
                let _ = stop.send(());
                // Keep the Lease while the reconciles in flight finish, so no standby starts beside them.
                tokio::select! {
                    ended = &mut controller => ended.map_err(|err| leader::LeaderError::ControllerCrashed(err.to_string())),
                    lost = &mut leading => Err(lost),
                }
            }
        }
    };
    ctx.metrics.set_leader(false);
    if let Err(lost) = outcome {
        controller.abort();
        return Err(lost);
    }
    match elector.release().await {
        Ok(()) => tracing::info!(lease = config.lease_name, "released the Lease"),
        Err(err) => {
            tracing::warn!(lease = config.lease_name, error = %err, "cannot release the Lease; it expires by itself");
        }
    }
    Ok(())
}

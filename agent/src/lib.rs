//! The alustan agent as a library: the pieces the `alustan-agent` binary is built from, each
//! usable and testable on its own.
//!
//! - [`registry`]: registry scanning and version selection — list every tag of an image,
//!   choose the newest one satisfying a semver constraint (and explain why), and pin it to a
//!   digest; one scan per repository and credentials per interval, shared by every resource.
//! - [`decide`]: what to run next (pure); [`jobs`]: the Job of a run; [`outputs`]: results
//!   from logs; [`status`]: conditions and status writes; [`reconcile`]: the loop.

pub mod backoff;
pub mod config;
pub mod context;
pub mod decide;
pub mod error;
pub mod finalizer;
pub mod gather;
pub mod jobs;
pub mod log_lines;
pub mod metrics;
pub mod observe;
pub mod outputs;
pub mod reconcile;
pub mod registry;
pub mod status;

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{Controller, WatchStreamExt as _, controller, reflector, watcher};
use kube::{Api, api::ListParams};

pub use context::Context;
use error::Error;

/// Fails with a hint when the `Terraform` CRD is not installed (the watch would only retry).
pub async fn check_crd(client: &kube::Client) -> Result<(), Error> {
    let api: Api<alustan_shared::Terraform> = Api::all(client.clone());
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::InvalidSpec(format!(
            "the {}.{} CRD is not installed: kubectl apply -f crds/terraform.yaml (or install the Helm chart)",
            alustan_shared::PLURAL,
            alustan_shared::GROUP
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Objects per LIST page of the controller's watches.
const LIST_PAGE_SIZE: u32 = 100;
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
    let terraforms = watcher(terraforms, watcher::Config::default().page_size(LIST_PAGE_SIZE))
        .default_backoff()
        .modify(|tf| tf.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(terraforms, reader)
        .owns(jobs, watcher::Config::default().labels(&managed).page_size(LIST_PAGE_SIZE))
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

//! One reconcile of one `Terraform`, top to bottom, one [`pass::Pass`] at a time:
//! 1. [`results`]: runs recorded as running are brought up to date from their Jobs; results of
//!    those that ended go into status;
//! 2. [`decide`] (pure): what next — at most one run of a resource at a time; the registry is
//!    scanned ([`scan`]) only when the decision needs an image;
//! 3. [`act`]: start that run, or say in status why nothing starts;
//! 4. status is written once.
//!
//! Deletion ([`destroy`]) takes the same steps with the deletion decision. Every error of a
//! pass ends in status and a Warning Event from one place, [`Pass::fail`], its reason and
//! metric label taken from the error's category.

pub mod act;
pub mod backoff;
pub mod decide;
pub mod dependencies;
pub mod destroy;
pub mod pass;
pub mod plan;
pub mod results;
pub mod scan;
pub mod status;
pub mod validate;
pub mod variables_from;

use std::sync::Arc;
use std::time::Duration;

use alustan_shared::{State, Terraform, meta};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use decide::{Decision, Inputs, Policy, Wanted, decide};
use pass::Pass;
use scan::Scanned;
use status::Phase;

/// One reconcile, in one tracing span naming the resource and its generation.
#[tracing::instrument(
    name = "reconcile",
    skip_all,
    fields(
        namespace = tf.namespace().unwrap_or_default(),
        name = tf.name_any(),
        generation = tf.metadata.generation.unwrap_or_default()
    )
)]
pub async fn reconcile(tf: Arc<Terraform>, ctx: Arc<Context>) -> Result<Action> {
    // Counts the reconcile as in flight and times it, until dropped.
    let _timer = ctx.metrics.reconcile_started();
    let namespace = tf.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Terraform> = Api::namespaced(ctx.client.clone(), &namespace);
    let (uid, deleting) = (tf.uid().unwrap_or_default(), tf.metadata.deletion_timestamp.is_some());
    let resource = Arc::clone(&tf);
    let result = finalizer(&api, meta::FINALIZER, tf, |event| async {
        match event {
            Finalizer::Apply(tf) => run_pass(&tf, &ctx, false).await,
            Finalizer::Cleanup(tf) => run_pass(&tf, &ctx, true).await,
        }
    })
    .await;
    if result.is_ok() {
        ctx.reconcile_errors.reset(&uid);
    }
    if deleting && result.is_ok() {
        status::forget(&ctx.written, &uid);
        ctx.outputs_sizes.forget(&uid);
        ctx.pad_seeds.forget(&uid);
        ctx.scanner.forget(&crate::registry::WaiterId::new(&uid));
        ctx.scan_failures.clear(&uid);
    }
    match result {
        Ok(action) => Ok(action),
        Err(
            kube::runtime::finalizer::Error::ApplyFailed(err) | kube::runtime::finalizer::Error::CleanupFailed(err),
        ) => Err(err),
        // Adding or removing the finalizer was refused (a webhook, RBAC): outside any pass, so
        // reported here, in status and an Event like every other error.
        Err(other) => {
            let err = Error::Finalizer(other.to_string());
            if let Ok(mut pass) = Pass::new(&resource, &ctx) {
                pass.fail(&err).await;
                if let Err(write) = pass.write().await {
                    tracing::warn!(error = %write, "cannot write status");
                }
            }
            Err(err)
        }
    }
}

/// One pass: its steps, then one status write, whatever they ended in.
async fn run_pass(tf: &Terraform, ctx: &Context, deleting: bool) -> Result<Action> {
    let mut pass = Pass::new(tf, ctx)?;
    let outcome = if deleting { Box::pin(pass.delete()).await } else { Box::pin(pass.apply()).await };
    if let Err(err) = &outcome {
        pass.fail(err).await;
    }
    match pass.write().await {
        Ok(()) => outcome,
        // The pass's own error says more than the write's.
        Err(write) => {
            tracing::warn!(error = %write, "cannot write status");
            outcome.and(Err(write))
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller calls
pub fn error_policy(tf: Arc<Terraform>, err: &Error, ctx: Arc<Context>) -> Action {
    let sync = ctx.config.sync_interval;
    // Deletion going on keeps its own schedule: a run's watch, or the next destroy attempt.
    // Not a failure: no metric.
    if let Error::DeletionPending { retry_in } = err {
        return Action::requeue(retry_in.unwrap_or(sync).min(sync));
    }
    ctx.metrics.error(err.metric_label());
    // Only a change fixes it: the change wakes us; look again once an interval anyway.
    if err.needs_change() {
        return Action::requeue(sync);
    }
    // Each failure in a row of the same resource waits longer (a success resets the count).
    let failures = ctx.reconcile_errors.bump(&tf.uid().unwrap_or_default());
    let delay = ctx.retry().delay(failures);
    tracing::warn!(
        name = %tf.name_any(),
        namespace = tf.namespace().unwrap_or_default(),
        reason = err.metric_label(),
        error = %err,
        failures,
        retry_in = %backoff::human(delay),
        "reconcile failed"
    );
    Action::requeue(delay)
}

impl Pass<'_> {
    /// The pass of a resource that is not being deleted.
    async fn apply(&mut self) -> Result<Action> {
        self.sync_runs().await?;
        self.note_resume();
        let drift = validate::sync_interval(&self.tf.spec, self.ctx.config.sync_interval)?;
        self.check_dependencies()?;
        self.read_variables_from(self.waiting_for.is_some()).await?;
        let token = self.tf.resync_token();
        let decision = decide(&self.inputs(drift, token, None));
        if decision != Decision::Scan {
            tracing::debug!(decision = ?decision, "decided");
            return self.act(decision, None, token).await;
        }
        // A run will start: what it needs must be valid before the registry is even asked.
        validate::for_deploy(&self.tf.spec)?;
        let chosen = match self.scan_registry(drift).await {
            Scanned::Chosen(chosen) => chosen,
            Scanned::Reported(action) => return Ok(action),
        };
        let decision = decide(&self.inputs(drift, token, Some(&chosen.digest)));
        tracing::debug!(decision = ?decision, "decided");
        self.act(decision, Some(&chosen), token).await
    }

    /// The first pass after `spec.suspend` turned false records when (drift counts from it).
    fn note_resume(&mut self) {
        let reconciling =
            alustan_shared::conditions::find(&self.status.conditions, alustan_shared::conditions::RECONCILING);
        let was_suspended = reconciling.is_some_and(|c| c.reason == alustan_shared::conditions::reason::SUSPENDED);
        if was_suspended && !self.tf.spec.suspend {
            self.status.resumed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        }
    }

    fn inputs<'i>(&'i self, drift: Duration, token: Option<&'i str>, digest: Option<&'i str>) -> Inputs<'i> {
        Inputs {
            name: &self.name,
            uid: &self.uid,
            wanted: Wanted { generation: self.generation, fingerprint: &self.fingerprint, token, digest },
            suspend: self.tf.spec.suspend,
            has_post_deploy: self.tf.spec.post_deploy.is_some(),
            status: &self.status,
            now: jiff::Timestamp::now(),
            drift_interval: drift,
            retry: self.ctx.retry(),
            waiting_for: self.waiting_for.as_deref(),
            policy: Policy {
                plan_script: self.tf.spec.scripts.plan.is_some(),
                manual: self.tf.manual_approval(),
                drift: self.tf.spec.drift,
                plan_token: self.tf.plan_token(),
                approved: self.tf.approved_plan(),
                rejected: self.tf.rejected_plan(),
            },
        }
    }

    /// Reports a failed pass: `Error` with the error's reason in status, and a Warning Event
    /// once per message. Bookkeeping "errors" (deletion waiting) are not failures.
    async fn fail(&mut self, err: &Error) {
        if !err.reported() {
            return;
        }
        let message = err.to_string();
        let phase = if err.needs_change() { Phase::Stalled } else { Phase::Reconciling };
        self.warn_once(err.reason(), "Reconcile", &message).await;
        self.summarize(State::Error, phase, err.reason(), &message);
    }
}

//! Deletion, in the same steps as every pass: bring runs up to date, decide
//! ([`decide_deletion`]: a running run ends first, then destroy the image last applied, with the
//! deploy's backoff), act, write status. The kube-rs `finalizer` helper removes the finalizer
//! when this returns `Ok`, so "not yet" is [`Error::DeletionPending`].
//!
//! Deletion always ends: without a destroy script, with nothing applied, or with the
//! `alustan.io/skip-destroy` annotation the resource is released; a destroy that cannot even
//! start says why in status and an Event and how to release it. One rule releases without
//! destroying on the agent's own: a namespace being deleted refuses every new object, so the
//! destroy Job can never start there; the resource is then released with a Warning (the
//! infrastructure stays, as with skip-destroy) instead of holding the namespace forever.

use alustan_shared::{RunAction, State, conditions::reason, meta};
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{Decision, Deletion, Release, decide_deletion};
use super::pass::Pass;
use super::status::Phase;
use super::validate;
use crate::error::{Error, Result};
use crate::runs::jobs::job_name;

impl Pass<'_> {
    pub async fn delete(&mut self) -> Result<Action> {
        let skip_destroy = self.tf.annotations().get(meta::SKIP_DESTROY).is_some_and(|v| v == "true");
        let synced = self.sync_runs().await;
        // The skip annotation is the way out whatever failed: it only waits for a run still
        // going on the API server (never killed mid-apply).
        if skip_destroy && let Err(err) = &synced {
            tracing::warn!(error = %err, "runs cannot be brought up to date; skip-destroy releases the resource anyway");
            if let Some(record) = self.active_run().await? {
                return Err(self.wait_for(record));
            }
            return Ok(self.release(Release::SkipDestroy).await);
        }
        synced?;
        if !skip_destroy && let Some(waiting) = self.dependants_block_deletion() {
            return Err(waiting);
        }
        // The destroy needs the same variables as the deploy (its producers outlive it: they
        // wait for it to go).
        if !skip_destroy && self.tf.spec.scripts.destroy.is_some() && self.status.applied.is_some() {
            self.read_variables_from(false).await?;
        }
        let decision = decide_deletion(&Deletion {
            name: &self.name,
            uid: &self.uid,
            skip_destroy,
            has_destroy_script: self.tf.spec.scripts.destroy.is_some(),
            fingerprint: &self.fingerprint,
            status: &self.status,
            now: jiff::Timestamp::now(),
            retry: self.ctx.retry(),
        });
        tracing::debug!(decision = ?decision, "decided deletion");
        // Status may lag behind the cluster (a deletion that raced a run's start): before
        // releasing or destroying, the API server itself must show no run going.
        if matches!(decision, Decision::Release(_) | Decision::Destroy { .. })
            && let Some(record) = self.active_run().await?
        {
            return Err(self.wait_for(record));
        }
        match decision {
            Decision::Release(why) => Ok(self.release(why).await),
            Decision::Busy { job, action, .. } => {
                let message = if action == RunAction::Destroy {
                    format!("destroying ({job})")
                } else {
                    waiting_to_destroy(action, &job)
                };
                self.summarize(State::Progressing, Phase::Reconciling, reason::DESTROYING, &message);
                Err(Error::DeletionPending { retry_in: None })
            }
            Decision::Backoff { after, failures, .. } => {
                let last = self.last_destroy_message();
                let message = format!(
                    "destroy failed ({failures} of {} attempts), next attempt in {}: {last}. Set annotation {}=true to release the resource without destroying",
                    self.ctx.retry().attempts,
                    super::backoff::human(after),
                    meta::SKIP_DESTROY
                );
                self.summarize(State::Error, Phase::Reconciling, reason::SCRIPT_FAILED, &message);
                Err(Error::DeletionPending { retry_in: Some(after) })
            }
            Decision::Stalled { failures, .. } => {
                let last = self.last_destroy_message();
                let message = format!(
                    "destroy failed ({failures} of {} attempts): {last}. Fix spec.scripts.destroy (or the variables it uses) and it starts over, or set annotation {}=true to release the resource without destroying",
                    self.ctx.retry().attempts,
                    meta::SKIP_DESTROY
                );
                self.warn_once(reason::RETRIES_EXHAUSTED, "Destroy", &message).await;
                self.summarize(State::Error, Phase::Stalled, reason::RETRIES_EXHAUSTED, &message);
                Err(Error::DeletionPending { retry_in: None })
            }
            Decision::Destroy { key, round } => self.destroy(&key, round).await,
            other => {
                tracing::debug!(decision = ?other, "not a deletion decision");
                Err(Error::DeletionPending { retry_in: None })
            }
        }
    }

    fn last_destroy_message(&self) -> String {
        let last = self.status.history.iter().find(|r| r.action == RunAction::Destroy);
        last.and_then(|r| r.message.clone()).unwrap_or_default()
    }

    /// A run of this resource still going, read from the API server.
    async fn active_run(&self) -> Result<Option<alustan_shared::RunRecord>> {
        let label = meta::terraform_label_value(&self.name);
        crate::runs::start::active_run(&self.api(), &self.api(), &label, &self.uid, None).await
    }

    /// Records `run` (found running on the API server) and waits for it.
    fn wait_for(&mut self, run: alustan_shared::RunRecord) -> Error {
        let message = waiting_to_destroy(run.action, &run.job_name);
        super::status::push_run(&mut self.status, run);
        self.summarize(State::Progressing, Phase::Reconciling, reason::DESTROYING, &message);
        Error::DeletionPending { retry_in: None }
    }

    /// Whether the resource is still there with the agent's finalizer, read from the API
    /// server: a pass working from a cached copy after the release must start nothing.
    async fn still_held(&self) -> Result<bool> {
        // A LIST by name: the chart grants list, and nothing else reads resources one by one.
        let api: kube::Api<alustan_shared::Terraform> = self.api();
        let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={}", self.name));
        Ok(api.list(&by_name).await?.items.iter().any(|fresh| {
            fresh.uid().as_deref() == Some(self.uid.as_str()) && fresh.finalizers().iter().any(|f| f == meta::FINALIZER)
        }))
    }

    async fn destroy(&mut self, key: &str, round: u32) -> Result<Action> {
        if !self.still_held().await? {
            return Err(Error::DeletionPending { retry_in: None });
        }
        let script = self.tf.spec.scripts.destroy.clone().unwrap_or_default();
        let applied = self.status.applied.clone().ok_or(Error::MissingField("status.applied"))?;
        let started = match validate::for_destroy(&self.tf.spec) {
            Ok(()) => {
                let name = job_name(&self.name, RunAction::Destroy, key, round);
                let image = (applied.image.as_str(), applied.tag.as_str());
                self.start_run(
                    RunAction::Destroy,
                    name,
                    (&script, Vec::new()),
                    image,
                    None,
                    super::act::Extra::default(),
                )
                .await
            }
            Err(err) => Err(err),
        };
        match started {
            Ok(true) => {
                let message = format!("destroying {}", applied.tag);
                self.summarize(State::Progressing, Phase::Reconciling, reason::DESTROYING, &message);
                self.event(EventType::Normal, reason::DESTROYING, "Destroy", &message).await;
                Err(Error::DeletionPending { retry_in: None })
            }
            Ok(false) => Err(Error::DeletionPending { retry_in: None }),
            Err(err) if err.namespace_terminating() => {
                let message = format!(
                    "released without destroying: the namespace is being deleted and refuses the destroy Job ({err}); the infrastructure of {} is still in place",
                    applied.tag
                );
                tracing::warn!(message, "released without destroying");
                self.event(EventType::Warning, reason::DESTROY_SKIPPED, "Destroy", &message).await;
                Ok(Action::await_change())
            }
            Err(err) => {
                let hint = format!(
                    "destroy cannot start; fix it, or set annotation {}=true to release the resource without destroying",
                    meta::SKIP_DESTROY
                );
                Err(match err {
                    Error::InvalidSpec { field, message } => {
                        Error::InvalidSpec { field, message: format!("{message}; {hint}") }
                    }
                    Error::Rejected { object, message } => {
                        Error::Rejected { object, message: format!("{message}; {hint}") }
                    }
                    other => other,
                })
            }
        }
    }

    async fn release(&mut self, why: Release) -> Action {
        let tag = self.status.applied.as_ref().map(|a| a.tag.clone()).unwrap_or_default();
        match why {
            Release::SkipDestroy => {
                let note = format!("{} is set: released without destroying", meta::SKIP_DESTROY);
                self.event(EventType::Normal, reason::DESTROY_SKIPPED, "Destroy", &note).await;
            }
            Release::Destroyed => {
                let note = format!("destroy of {tag} succeeded");
                self.event(EventType::Normal, reason::DESTROYED, "Destroy", &note).await;
            }
            Release::NoDestroyScript | Release::NothingApplied => {}
        }
        Action::await_change()
    }
}

/// Status while deletion waits for run `job` to end.
pub(super) fn waiting_to_destroy(action: RunAction, job: &str) -> String {
    format!("deleting: waiting for {} run {job} to finish before destroying", crate::runs::jobs::action_label(action))
}

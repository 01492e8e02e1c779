//! Carries out one [`Decision`]: starts its run (the only way a run starts), or says in status
//! why nothing starts.

use alustan_shared::conditions::{self, reason};
use alustan_shared::{RunAction, State};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{Decision, Why};
use super::pass::Pass;
use super::status::{Phase, push_run};
use super::validate;
use crate::error::Result;
use crate::registry::ChosenImage;
use crate::runs::jobs::{self, PlanHandoff, RunSpec, action_label, job_name};
use crate::runs::start::{Started, start};

/// What a run carries beyond its script and image.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra<'a> {
    /// Why a deploy starts (status says it when the run must wait).
    pub why: Option<Why>,
    /// The approved plan a deploy applies.
    pub plan: Option<PlanHandoff<'a>>,
    /// Why a plan runs.
    pub trigger: Option<alustan_shared::PlanTrigger>,
}

impl Pass<'_> {
    /// Carries out a decision for a resource that is not being deleted.
    pub async fn act(
        &mut self,
        decision: Decision,
        chosen: Option<&ChosenImage>,
        token: Option<&str>,
    ) -> Result<Action> {
        let sync = self.ctx.config.sync_interval;
        match (decision, chosen) {
            (Decision::Nothing { recheck_after }, _) => {
                // The wanted inputs' runs succeeded: clear an Error left by a passing problem (a
                // registry outage, a Secret created late) that needed no new run.
                // Also after a change that runs nothing (resume, a new syncInterval): status must
                // say this generation is ready, not keep the suspended or scanning message.
                let settled = self.condition_is(conditions::READY, conditions::TRUE)
                    && self.condition_is(conditions::RECONCILING, conditions::FALSE)
                    && self.status.observed_generation == Some(self.generation);
                if !settled || !matches!(self.status.state, Some(State::Success | State::Completed)) {
                    let state = if self.tf.spec.post_deploy.is_some() { State::Completed } else { State::Success };
                    let tag = self.status.applied.as_ref().map(|a| a.tag.clone()).unwrap_or_default();
                    self.summarize(state, Phase::Ready, reason::SUCCEEDED, &format!("up to date: {tag} applied"));
                }
                Ok(Action::requeue(recheck_after.min(sync)))
            }
            (Decision::Busy { job, action, behind }, _) => {
                self.busy(&job, action, behind);
                Ok(Action::requeue(sync))
            }
            (Decision::Suspended, _) => {
                // Ready and state keep describing the last run; only "working on it" changes.
                self.note(conditions::FALSE, reason::SUSPENDED, "suspended: no runs until spec.suspend is false");
                Ok(Action::await_change())
            }
            (Decision::WaitingForDependency { dependency }, _) => Ok(self.wait_for_dependency(&dependency)),
            (Decision::Backoff { after, .. }, _) => Ok(Action::requeue(after.min(sync))),
            (Decision::Stalled { action, failures }, _) => {
                let last = self.status.history.iter().find(|r| r.action == action).and_then(|r| r.message.clone());
                // The cause first (the list shows the start of the message); the tail is in the run.
                let message = format!(
                    "{} failed {failures} times, last: {}; giving up until the spec, the image or a resync request changes (see `kubectl alustan logs {}`)",
                    action_label(action),
                    crate::runs::outputs::cause(&last.unwrap_or_default()),
                    self.name
                );
                if !self.condition_is(conditions::STALLED, conditions::TRUE) {
                    self.event(EventType::Warning, reason::RETRIES_EXHAUSTED, "Run", &message).await;
                }
                let state = self.status.state.unwrap_or(State::Failed);
                self.summarize(state, Phase::Stalled, reason::RETRIES_EXHAUSTED, &message);
                Ok(Action::requeue(sync))
            }
            (Decision::Deploy { key, round, why, plan }, Some(chosen)) => {
                let name = job_name(&self.name, RunAction::Deploy, &key, round);
                let image = (chosen.reference.as_str(), chosen.tag.as_str());
                let script = (self.tf.spec.scripts.deploy.as_str(), Vec::new());
                let secret = match &plan {
                    Some(id) => self.approved_plan_file(id).await?,
                    None => None,
                };
                let handoff = plan.as_deref().map(|id| PlanHandoff { id, secret: secret.as_deref() });
                let extra = Extra { why: Some(why), plan: handoff, trigger: None };
                if self.start_run(RunAction::Deploy, name, script, image, token, extra).await? {
                    if let Some(token) = token {
                        self.status.last_handled_reconcile_at = Some(token.to_owned());
                    }
                    let mut message = format!("deploying {} ({})", chosen.tag, why.as_str());
                    if let Some(id) = &plan {
                        message = format!("deploying {} (plan {id}, {})", chosen.tag, why.as_str());
                    }
                    self.plan_started(plan.as_deref()).await;
                    self.summarize(State::Progressing, Phase::Reconciling, reason::DEPLOYING, &message);
                    self.event(EventType::Normal, reason::DEPLOYING, "Deploy", &message).await;
                }
                Ok(Action::requeue(sync))
            }
            (Decision::PostDeploy { key, attempt }, Some(chosen)) => {
                let Some(post) = &self.tf.spec.post_deploy else { return Ok(Action::requeue(sync)) };
                let args = validate::post_deploy_flags(&post.args, &self.tf.spec.variables)?;
                let name = job_name(&self.name, RunAction::PostDeploy, &key, attempt);
                let image = (chosen.reference.as_str(), chosen.tag.as_str());
                let script = (post.script.as_str(), args);
                if self.start_run(RunAction::PostDeploy, name, script, image, token, Extra::default()).await? {
                    let message = format!("running post-deploy {} of {}", post.script, chosen.tag);
                    self.summarize(State::Success, Phase::Reconciling, reason::POST_DEPLOYING, &message);
                    self.event(EventType::Normal, reason::POST_DEPLOYING, "PostDeploy", &message).await;
                }
                Ok(Action::requeue(sync))
            }
            (Decision::Plan { key, round, why }, Some(chosen)) => {
                self.start_plan(&key, round, why, chosen, token).await?;
                Ok(Action::requeue(sync))
            }
            (Decision::AwaitingApproval { id }, _) => {
                self.awaiting_approval(&id);
                Ok(Action::requeue(sync))
            }
            (Decision::PlanRejected { id }, _) => {
                self.plan_rejected(&id).await;
                Ok(Action::requeue(sync))
            }
            (Decision::Drifted { id, recheck_after }, _) => {
                self.drift_left_alone(&id).await;
                Ok(Action::requeue(recheck_after.min(sync)))
            }
            // A deploy without a scanned image, or deletion decisions here: nothing to do yet.
            (other, _) => {
                tracing::debug!(decision = ?other, "nothing to carry out outside deletion");
                Ok(Action::requeue(sync))
            }
        }
    }

    /// Says in status what waits behind the running run (nothing changes when nothing waits).
    fn busy(&mut self, job: &str, action: RunAction, behind: Option<Why>) {
        let suspended = self.tf.spec.suspend;
        if behind.is_none() && !suspended {
            return;
        }
        let next = match behind {
            Some(Why::DigestChanged) => "deploying the new image".to_owned(),
            Some(Why::ResyncRequested) => "running the requested sync".to_owned(),
            Some(_) => format!("applying generation {}", self.generation),
            None => "suspending".to_owned(),
        };
        let mut message = format!("waiting for {} run {job} to finish before {next}", action_label(action));
        if suspended && behind.is_some() {
            message.push_str(" (suspended: it will wait for spec.suspend to be false)");
        }
        let state = self.status.state.unwrap_or(State::Progressing);
        self.summarize(state, Phase::Reconciling, reason::WAITING_FOR_RUN, &message);
    }

    /// Starts run `name` of `script` on `image` (reference, tag), applying the spec as it is
    /// now (`extra`: why, the approved plan a deploy applies, why a plan runs), and records it
    /// as running; `false` when another run of the resource is still
    /// active: that one is recorded as running instead and status says the new one (`why`)
    /// waits for it.
    pub async fn start_run(
        &mut self,
        action: RunAction,
        name: String,
        (script, extra_args): (&str, Vec<String>),
        (image, tag): (&str, &str),
        token: Option<&str>,
        extra: Extra<'_>,
    ) -> Result<bool> {
        let inputs = self.fingerprint.clone();
        let variables = &self.resolved;
        let (why, plan, trigger) = (extra.why, extra.plan, extra.trigger);
        let run =
            RunSpec { action, name, script, extra_args, image, tag, inputs: &inputs, token, variables, plan, trigger };
        let job = jobs::build(self.tf, &run, &self.ctx.jobs)?;
        let label = action_label(run.action);
        match start(self.ctx, &job, &self.resolved.sensitive).await? {
            Started::New => {
                self.ctx.metrics.job_started(label);
                tracing::info!(job = %run.name, action = label, "started run");
            }
            Started::Adopted => tracing::info!(job = %run.name, action = label, "adopted the run's existing Job"),
            Started::Busy(record) => {
                tracing::warn!(job = %record.job_name, wanted = %run.name, "another run of the resource is active: waiting for it");
                let (job, other) = (record.job_name.clone(), record.action);
                push_run(&mut self.status, *record);
                if action == RunAction::Destroy {
                    let message = super::destroy::waiting_to_destroy(other, &job);
                    self.summarize(State::Progressing, Phase::Reconciling, reason::DESTROYING, &message);
                } else {
                    self.busy(&job, other, why.or(Some(Why::SpecChanged)));
                }
                return Ok(false);
            }
        }
        push_run(&mut self.status, run.record(self.generation));
        Ok(true)
    }
}

//! The first step of every pass: runs recorded as running are brought up to date from their
//! Jobs, and the results of those that ended are written into status — outputs, applied image,
//! state — but only while the run still counts: a run that a newer successful deploy
//! superseded keeps its history record and changes nothing else.

use std::collections::BTreeMap;

use alustan_shared::{AppliedImage, RunAction, RunRecord, RunResult, State, conditions::reason, meta};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::pass::Pass;
use super::status::Phase;
use crate::error::{Error, Result};
use crate::runs::jobs::action_label;
use crate::runs::observe::{self, Outcome};
use crate::runs::outputs::{Collected, cause, log_tail};

/// Longest history message.
const RECORD_MESSAGE_CHARS: usize = 1024;

impl Pass<'_> {
    /// Brings every running record up to date from its Job.
    pub async fn sync_runs(&mut self) -> Result<()> {
        let jobs: Api<Job> = self.api();
        let running: Vec<RunRecord> =
            self.status.history.iter().filter(|r| r.result == RunResult::Running).cloned().collect();
        let pods: Api<Pod> = self.api();
        for record in running {
            // The watch's copy when it has the Job (the event that woke this pass is in it); a
            // GET when it does not yet (just created) or no more.
            let cached = self.ctx.cached_outcome(&self.namespace, &record.job_name);
            let outcome = match cached {
                Some(outcome) => Some(outcome),
                None => jobs.get_opt(&record.job_name).await?.as_ref().map(observe::outcome),
            };
            let outcome = match outcome {
                Some(outcome) => outcome,
                // A Job deleted by hand may leave its Pod running (orphaned, or terminating): the
                // run is over only once no Pod of it runs any more.
                None if observe::pod_active(&pods, &record.job_name).await? => Outcome::Running,
                None => Outcome::Failed { at: None, message: "the Job disappeared before it finished".into() },
            };
            match outcome {
                Outcome::Running => {}
                Outcome::Failed { at, message } => self.failed(&record, at, message).await?,
                Outcome::Succeeded { at } => self.succeeded(&record, at).await?,
            }
        }
        Ok(())
    }

    async fn failed(&mut self, record: &RunRecord, at: Option<Time>, message: String) -> Result<()> {
        let action = action_label(record.action);
        self.ctx.metrics.job_finished(action, "failed");
        let pods: Api<Pod> = self.api();
        let pod = observe::pod(&pods, &record.job_name).await?;
        // Status and the Event lead with the cause; the run's record keeps the log's tail.
        let (cause, tail) = match pod.as_ref().and_then(observe::termination) {
            Some((code, tail)) => {
                (format!("exit code {code}: {}", cause(&tail)), format!("exit code {code}: {}", log_tail(&tail)))
            }
            None => (message.clone(), message),
        };
        let summary = format!("{action} failed: {cause} (see `kubectl alustan logs {}`)", self.name);
        let full = format!("{action} failed ({}): {tail}", record.job_name);
        self.fail_run_with_log(record, at, summary, &full).await;
        Ok(())
    }

    async fn succeeded(&mut self, record: &RunRecord, at: Option<Time>) -> Result<()> {
        let action = action_label(record.action);
        self.ctx.metrics.job_finished(action, "succeeded");
        if let Some(newer) = self.superseded_by(record) {
            let text = format!("{action} succeeded; superseded by {newer}, its results were not applied");
            self.finish(&record.job_name, RunResult::Succeeded, at, &text);
            return Ok(());
        }
        match record.action {
            RunAction::Deploy => self.deployed(record, at).await,
            RunAction::PostDeploy => self.post_deployed(record, at).await,
            RunAction::Destroy => {
                self.finish(&record.job_name, RunResult::Succeeded, at, "destroy succeeded");
                Ok(())
            }
            RunAction::Plan => self.planned(record, at).await,
        }
    }

    /// A newer deploy that already succeeded (only an agent from before the one-run rule could
    /// have let one overtake this run).
    fn superseded_by(&self, record: &RunRecord) -> Option<String> {
        let index = self.status.history.iter().position(|r| r.job_name == record.job_name)?;
        self.status.history[..index]
            .iter()
            .find(|r| r.action == RunAction::Deploy && r.result == RunResult::Succeeded)
            .map(|r| r.job_name.clone())
    }

    /// What the run's log says. A log that cannot be read (its Pod gone, its node unreachable)
    /// is an error of the run, never of the pass: a pass that failed on it would keep the run
    /// "running" forever and hold every later run and the deletion behind it.
    pub(super) async fn collect(&self, job: &str, plan: bool) -> Collected {
        let pods: Api<Pod> = self.api();
        let secrets: Api<Secret> = self.api();
        let read = async {
            let Some(pod) = observe::pod(&pods, job).await? else {
                return Ok(Collected {
                    error: Some("its Pod is gone, so its log cannot be read".into()),
                    ..Collected::default()
                });
            };
            let _slot = self.ctx.pad_slots.acquire().await.map_err(|_| Error::ShuttingDown)?;
            let known = self.ctx.pad_seeds.take(&self.uid, job);
            observe::collect_log(&pods, &secrets, (&kube::ResourceExt::name_any(&pod), job), known, plan).await
        };
        read.await.unwrap_or_else(|err: Error| Collected {
            error: Some(format!("its log cannot be read: {err}")),
            ..Collected::default()
        })
    }

    /// Whether the run applied the spec inputs the resource has now.
    fn current(&self, record: &RunRecord) -> bool {
        record.inputs.as_ref().map_or(record.generation == Some(self.generation), |inputs| *inputs == self.fingerprint)
    }

    /// Ends `record` as failed: its history record, status (`Error` for a destroy: the
    /// resource is going away) and a Warning Event.
    pub(super) async fn fail_run(&mut self, record: &RunRecord, at: Option<Time>, text: String) {
        self.fail_run_with_log(record, at, text.clone(), &text).await;
    }

    /// [`Self::fail_run`] with the run's own, longer account (`record_text`: its log tail) kept
    /// in its history record only.
    async fn fail_run_with_log(&mut self, record: &RunRecord, at: Option<Time>, text: String, record_text: &str) {
        self.finish(&record.job_name, RunResult::Failed, at, record_text);
        // A drift check or a requested plan that failed changed nothing: state and Ready keep
        // describing the applied run; the message and a Warning say it.
        if record.action == RunAction::Plan && record.trigger != Some(alustan_shared::PlanTrigger::Change) {
            self.note(alustan_shared::conditions::FALSE, reason::SCRIPT_FAILED, &text);
            self.event(EventType::Warning, reason::SCRIPT_FAILED, "Run", &text).await;
            return;
        }
        let state = if record.action == RunAction::Destroy { State::Error } else { State::Failed };
        self.summarize(state, Phase::Reconciling, reason::SCRIPT_FAILED, &text);
        self.event(EventType::Warning, reason::SCRIPT_FAILED, "Run", &text).await;
    }

    async fn deployed(&mut self, record: &RunRecord, at: Option<Time>) -> Result<()> {
        let collected = self.collect(&record.job_name, false).await;
        // The next pad is sized to this file (an oversize one too, so a retry can print it; none: 0).
        if let Some(bytes) = collected.outputs_bytes.or(collected.error.is_none().then_some(0)) {
            self.ctx.outputs_sizes.remember(&self.uid, bytes);
        }
        if let Some(err) = collected.error {
            self.fail_run(record, at, format!("deploy succeeded but its outputs cannot be read: {err}")).await;
            return Ok(());
        }
        match self.write_sensitive(&collected.outputs.sensitive).await {
            Ok(secret) => self.status.sensitive_outputs_secret = secret,
            // Refused for good (quota, RBAC, a terminating namespace): the run's result is lost,
            // say so on the run; anything else is retried with the pass.
            Err(err @ Error::Rejected { .. }) => {
                self.fail_run(record, at, format!("deploy succeeded but its sensitive outputs cannot be kept: {err}"))
                    .await;
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        self.status.output = collected.outputs.plain;
        let ingresses = self.ctx.ingress_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.status.ingress_urls = crate::runs::gather::ingress_urls(&self.ctx.client, ingresses).await;
        let stores = self.ctx.credential_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.status.credentials =
            crate::runs::gather::credentials(&self.ctx.client, &self.ctx.credential_sources, &stores).await;
        let tag = record.tag.clone().unwrap_or_default();
        let at = at.unwrap_or_else(|| Time(jiff::Timestamp::now()));
        self.status.applied = Some(AppliedImage {
            image: record.image.clone(),
            tag: tag.clone(),
            digest: record.digest().unwrap_or_default().to_owned(),
            applied_at: Some(at.clone()),
        });
        self.finish(&record.job_name, RunResult::Succeeded, Some(at), "deploy succeeded");
        self.plan_applied(record).await;
        let message = format!("deployed {tag}");
        let ready = self.tf.spec.post_deploy.is_none() && self.current(record);
        let phase = if ready { Phase::Ready } else { Phase::Reconciling };
        self.summarize(State::Success, phase, reason::SUCCEEDED, &message);
        self.event(EventType::Normal, reason::SUCCEEDED, "Deploy", &message).await;
        Ok(())
    }

    async fn post_deployed(&mut self, record: &RunRecord, at: Option<Time>) -> Result<()> {
        let collected = self.collect(&record.job_name, false).await;
        let Some(value) = collected.post_deploy else {
            if let Some(err) = collected.error {
                self.fail_run(record, at, format!("post-deploy succeeded but {err}")).await;
                return Ok(());
            }
            let detail = collected.json_error.unwrap_or_else(|| "it printed no JSON object".into());
            let text = format!("post-deploy printed no JSON with a top-level `outputs` key: {detail}");
            self.fail_run(record, at, text).await;
            return Ok(());
        };
        self.status.post_deploy_output = Some(value);
        self.finish(&record.job_name, RunResult::Succeeded, at, "post-deploy succeeded");
        let message = format!("deployed {} and ran post-deploy", record.tag.as_deref().unwrap_or_default());
        let phase = if self.current(record) { Phase::Ready } else { Phase::Reconciling };
        self.summarize(State::Completed, phase, reason::SUCCEEDED, &message);
        self.event(EventType::Normal, reason::SUCCEEDED, "PostDeploy", &message).await;
        Ok(())
    }

    /// Marks the history record of `job` as ended.
    pub fn finish(&mut self, job: &str, result: RunResult, at: Option<Time>, message: &str) {
        if let Some(record) = self.status.history.iter_mut().find(|r| r.job_name == job) {
            record.result = result;
            record.completion_time = Some(at.unwrap_or_else(|| Time(jiff::Timestamp::now())));
            record.message = Some(message.chars().take(RECORD_MESSAGE_CHARS).collect());
        }
    }

    /// The Secret holding sensitive outputs (owned by the resource); `None` when there are none.
    async fn write_sensitive(&self, sensitive: &BTreeMap<String, serde_json::Value>) -> Result<Option<String>> {
        if sensitive.is_empty() {
            return Ok(None);
        }
        let name = meta::outputs_secret_name(&self.name);
        let data = sensitive
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (key.clone(), ByteString(text.into_bytes()))
            })
            .collect();
        let secret = Secret {
            metadata: self.owned_metadata(&name),
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Secret::default()
        };
        let api: Api<Secret> = self.api();
        api.patch(&name, &PatchParams::apply(meta::FIELD_MANAGER).force(), &Patch::Apply(&secret))
            .await
            .map_err(|err| Error::creating(format!("Secret {name}"), err))?;
        Ok(Some(name))
    }
}

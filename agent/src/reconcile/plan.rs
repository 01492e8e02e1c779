//! Plans: starting a plan run, keeping what it found (`status.plan`, the plan file in a
//! Secret), and saying in status what waits for whom — approval, rejection, drift left alone.
//! Which of these happens is [`super::decide`]'s answer; this carries it out.
//!
//! The plan file goes from the plan run to the deploy untouched: sealed through the plan
//! Job's log (see [`crate::runs::plan`]), kept in the Secret `{name}-plan` (owned by the
//! resource, annotated with the plan id), and mounted read-only into the deploy that applies
//! that id, after its id and SHA-256 are checked against `status.plan`. It is deleted once
//! applied, rejected or superseded by a plan without a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use alustan_shared::conditions::{self, reason};
use alustan_shared::{PlanDecision, PlanStatus, PlanTrigger, RunAction, RunRecord, RunResult, State, meta};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::events::EventType;

use super::act::Extra;
use super::decide::Why;
use super::pass::Pass;
use super::status::{Phase, set_condition};
use crate::error::{Error, Result};
use crate::registry::ChosenImage;
use crate::runs::jobs::job_name;
use crate::runs::plan::{Plan, digest, plan_id, read_bundle};

impl Pass<'_> {
    /// Starts plan `round` of the inputs of `key` on the chosen image.
    pub async fn start_plan(
        &mut self,
        key: &str,
        round: u32,
        why: Why,
        chosen: &ChosenImage,
        token: Option<&str>,
    ) -> Result<()> {
        let Some(script) = self.tf.spec.scripts.plan.clone() else { return Ok(()) };
        let newest = self.status.history.iter().find(|r| r.action == RunAction::Plan);
        let trigger = match (why, newest.and_then(|r| r.trigger)) {
            (Why::PlanRequested, _) => PlanTrigger::Request,
            // A retry keeps the failed plan's purpose (a requested plan never turns into a
            // drift check that could apply by itself).
            (Why::Retry, Some(trigger)) => trigger,
            _ if self.is_applied(Some(&self.fingerprint), Some(&chosen.digest), token) => PlanTrigger::Drift,
            _ => PlanTrigger::Change,
        };
        let name = job_name(&self.name, RunAction::Plan, key, round);
        let image = (chosen.reference.as_str(), chosen.tag.as_str());
        let extra = Extra { why: Some(why), plan: None, trigger: Some(trigger) };
        if !self.start_run(RunAction::Plan, name, (&script, Vec::new()), image, token, extra).await? {
            return Ok(());
        }
        if why == Why::PlanRequested {
            self.status.last_handled_plan_at = self.tf.plan_token().map(str::to_owned);
        }
        // The plan waiting until now will never be applied: this one replaces it.
        self.supersede_waiting_plan().await;
        let message = format!("planning {} ({})", chosen.tag, why.as_str());
        match trigger {
            PlanTrigger::Change => self.summarize(State::Progressing, Phase::Reconciling, reason::PLANNING, &message),
            // Asked for: say so; state and Ready keep describing the applied run.
            PlanTrigger::Request => self.note(conditions::TRUE, reason::PLANNING, &message),
            // A routine drift check stays quiet (its run record is all it writes): only what
            // it finds is news.
            PlanTrigger::Drift => return Ok(()),
        }
        self.event(EventType::Normal, reason::PLANNING, "Plan", &message).await;
        Ok(())
    }

    /// Whether the newest successful deploy applied these inputs (fingerprint, image digest,
    /// sync token): a plan of them checks for drift.
    fn is_applied(&self, inputs: Option<&str>, digest: Option<&str>, token: Option<&str>) -> bool {
        self.applied_record()
            .is_some_and(|r| r.inputs.as_deref() == inputs && r.digest() == digest && r.token.as_deref() == token)
    }

    /// Marks a plan still waiting (or detected) superseded and drops its file.
    async fn supersede_waiting_plan(&mut self) {
        let waiting = |p: &&mut PlanStatus| matches!(p.decision, PlanDecision::Pending | PlanDecision::Detected);
        let Some(plan) = self.status.plan.as_mut().filter(waiting) else { return };
        plan.decision = PlanDecision::Superseded;
        if plan.artifact_secret.take().is_some() {
            self.drop_plan_file().await;
        }
    }

    fn applied_record(&self) -> Option<&RunRecord> {
        self.status.history.iter().find(|r| r.action == RunAction::Deploy && r.result == RunResult::Succeeded)
    }

    /// Keeps what plan run `record` found: `status.plan`, its plan file, the `Drifted`
    /// condition when it planned the applied inputs.
    pub async fn planned(&mut self, record: &RunRecord, at: Option<Time>) -> Result<()> {
        let (plan, bundle) = match self.read_plan(record).await {
            Ok(read) => read,
            Err(text) => {
                self.fail_run(record, at, text).await;
                return Ok(());
            }
        };
        let id = plan_id(&record.job_name, record.generation.unwrap_or(self.generation), &digest(&bundle));
        let mut secret = None;
        if let Some(bytes) = &plan.artifact {
            match self.keep_plan_file(&id, bytes).await {
                Ok(name) => secret = Some(name),
                Err(err @ Error::Rejected { .. }) => {
                    self.fail_run(record, at, format!("plan succeeded but its plan file cannot be kept: {err}")).await;
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        } else if self.status.plan.as_ref().is_some_and(|p| p.artifact_secret.is_some()) {
            self.drop_plan_file().await;
        }
        let at = at.unwrap_or_else(|| Time(jiff::Timestamp::now()));
        let trigger = record.trigger.unwrap_or(PlanTrigger::Change);
        let changes = plan.counts.total() > 0;
        self.status.plan = Some(PlanStatus {
            id: id.clone(),
            job_name: record.job_name.clone(),
            generation: record.generation.unwrap_or(self.generation),
            tag: record.tag.clone(),
            digest: record.digest().map(str::to_owned),
            trigger,
            time: at.clone(),
            counts: plan.counts,
            changes: plan.changes.clone(),
            changes_omitted: i64::try_from(plan.omitted).unwrap_or(i64::MAX),
            artifact_digest: plan.artifact.as_deref().map(digest),
            artifact_secret: secret,
            decision: if changes { PlanDecision::Pending } else { PlanDecision::NoChanges },
        });
        self.finish(&record.job_name, RunResult::Succeeded, Some(at), &format!("plan {id}: {plan}"));
        if let Some(entry) = self.status.history.iter_mut().find(|r| r.job_name == record.job_name) {
            entry.plan = Some(id.clone());
        }
        // Drift is what a plan of the applied inputs finds; a plan of inputs since reverted
        // is nobody's drift.
        if self.is_applied(record.inputs.as_deref(), record.digest(), record.token.as_deref()) {
            self.drift_found(&id, &plan).await;
        } else if changes {
            let note = format!("plan {id}: {plan}; waiting for approval");
            self.event(EventType::Normal, reason::AWAITING_APPROVAL, "Plan", &note).await;
        }
        Ok(())
    }

    /// What plan run `record` handed back (its plan and the raw bundle), or why it cannot be
    /// used (the run's failure message; never a byte of the bundle).
    async fn read_plan(&self, record: &RunRecord) -> Result<(Plan, Vec<u8>), String> {
        let collected = self.collect(&record.job_name, true).await;
        if let Some(err) = collected.error {
            // The bundle is what the seal calls the outputs file.
            let limit = meta::PLAN_SEAL_BYTES / 1024;
            return Err(format!(
                "plan succeeded but its result cannot be read: {err} (a plan hands back at most {limit} KiB: the summary in ${} and the plan file in ${} together)",
                meta::ENV_PLAN,
                meta::ENV_PLAN_FILE
            ));
        }
        if let Some(bytes) = collected.outputs_bytes {
            // The next plan's pad is sized to this bundle (see `crate::runs::start`).
            self.ctx.outputs_sizes.remember(&crate::runs::start::plan_sizes_key(&self.uid), bytes);
        }
        let bundle = collected.bundle.unwrap_or_default();
        let plan = read_bundle(&bundle).map_err(|err| format!("plan: {err}"))?;
        if self.tf.manual_approval() && plan.artifact.is_none() {
            return Err(format!(
                "plan: the plan script wrote no plan file to ${}; with approval: Manual the deploy applies exactly the approved plan file (an empty plan's too), so one is needed (e.g. `terraform plan -out \"${}\"`)",
                meta::ENV_PLAN_FILE,
                meta::ENV_PLAN_FILE
            ));
        }
        Ok((plan, bundle))
    }

    /// Sets `Drifted` from a plan of the applied inputs; a change is a Warning Event and a metric.
    async fn drift_found(&mut self, id: &str, plan: &Plan) {
        if plan.counts.total() == 0 {
            self.set_drifted(false, &format!("plan {id} found no changes"));
            return;
        }
        let message = format!("plan {id} of the applied inputs found changes: {plan}");
        self.set_drifted(true, &message);
        self.ctx.metrics.drift_detected();
        self.event(EventType::Warning, reason::DRIFT_DETECTED, "Plan", &message).await;
    }

    /// The `Drifted` condition.
    fn set_drifted(&mut self, drifted: bool, message: &str) {
        let (value, why) =
            if drifted { (conditions::TRUE, reason::DRIFT_DETECTED) } else { (conditions::FALSE, reason::NO_DRIFT) };
        set_condition(&mut self.status, conditions::DRIFTED, value, why, message, self.generation);
    }

    /// The plan file Secret of approved plan `id`, checked: it must hold exactly the file
    /// planned. `None`: the plan script wrote no file (the deploy plans again itself).
    pub async fn approved_plan_file(&self, id: &str) -> Result<Option<String>> {
        let again = format!("run `kubectl alustan plan {}` to plan again", self.name);
        let Some(plan) = self.status.plan.as_ref().filter(|p| p.id == id) else {
            return Err(Error::PlanFile(format!("plan {id} is no longer the latest plan; {again}")));
        };
        // Whether a file was planned is what the digest says, never whether one is still kept.
        let Some(expected) = &plan.artifact_digest else {
            // Made before approval turned Manual: nothing would hold the deploy to it.
            if self.tf.manual_approval() {
                return Err(Error::PlanFile(format!(
                    "plan {id} has no plan file, and approval: Manual applies only a plan file; {again}"
                )));
            }
            return Ok(None);
        };
        let secret = &meta::plan_secret_name(&self.name);
        let api: Api<Secret> = self.api();
        let found = api.get_opt(secret).await?.filter(|s| self.owns(s));
        let holds = found.as_ref().is_some_and(|s| {
            let named = s.metadata.annotations.as_ref().and_then(|a| a.get(meta::PLAN_ID_ANNOTATION));
            let file = s.data.as_ref().and_then(|d| d.get(meta::PLAN_KEY));
            named.map(String::as_str) == Some(id) && file.is_some_and(|f| digest(&f.0) == *expected)
        });
        if !holds {
            return Err(Error::PlanFile(format!(
                "the plan file of plan {id} (Secret {secret}) is gone or is not the file planned; nothing was applied; {again}"
            )));
        }
        Ok(Some(secret.clone()))
    }

    /// A deploy started, applying plan `id` (or no plan: a plan still waiting is superseded).
    pub async fn plan_started(&mut self, id: Option<&str>) {
        match (id, self.status.plan.as_mut()) {
            (Some(id), Some(plan)) if plan.id == id => {
                if matches!(plan.decision, PlanDecision::Pending | PlanDecision::Detected) {
                    plan.decision = PlanDecision::Approved;
                }
            }
            _ => self.supersede_waiting_plan().await,
        }
    }

    /// Deploy `record` succeeded: the plan it applied is done with.
    pub async fn plan_applied(&mut self, record: &RunRecord) {
        if let Some(id) = record.plan.as_deref()
            && let Some(plan) = self.status.plan.as_mut().filter(|p| p.id == id)
        {
            plan.decision = PlanDecision::Applied;
            if plan.artifact_secret.take().is_some() {
                self.drop_plan_file().await;
            }
        }
        // Whatever drifted, the deploy just applied the inputs again.
        let drifted = conditions::find(&self.status.conditions, conditions::DRIFTED);
        if drifted.is_some_and(|c| c.status == conditions::TRUE) {
            let message = match record.plan.as_deref() {
                Some(id) => format!("plan {id} applied"),
                None => format!("deploy {} applied the inputs again", record.job_name),
            };
            self.set_drifted(false, &message);
        }
    }

    /// Status while plan `id` waits for approval.
    pub fn awaiting_approval(&mut self, id: &str) {
        let counts = self.status.plan.as_ref().map(PlanStatus::counts_text).unwrap_or_default();
        let name = &self.name;
        let mut message = format!(
            "plan {id} waits for approval: {counts}; approve with `kubectl alustan approve {name} --plan {id}` or reject with `kubectl alustan reject {name}`"
        );
        if let Some(other) = self.tf.approved_plan().filter(|other| *other != id) {
            let _ =
                write!(message, " (the approval on the resource names plan {other}, which a newer plan superseded)");
        }
        self.summarize(State::Planned, Phase::Reconciling, reason::AWAITING_APPROVAL, &message);
    }

    /// Status once plan `id` of new inputs was rejected.
    pub async fn plan_rejected(&mut self, id: &str) {
        let message = format!(
            "plan {id} was rejected: nothing applied; change the spec or run `kubectl alustan plan {}` to plan again",
            self.name
        );
        if self.mark_rejected(id).await {
            self.event(EventType::Normal, reason::PLAN_REJECTED, "Plan", &message).await;
        }
        self.summarize(State::Planned, Phase::Stalled, reason::PLAN_REJECTED, &message);
    }

    /// Status while drift found by plan `id` is left alone (`drift: Detect`, or the plan was
    /// rejected): state and Ready keep describing the applied run.
    pub async fn drift_left_alone(&mut self, id: &str) {
        let counts = self.status.plan.as_ref().map(PlanStatus::counts_text).unwrap_or_default();
        let rejected = self.tf.rejected_plan() == Some(id);
        let message = if rejected {
            self.mark_rejected(id).await;
            format!("drift found by plan {id}: {counts}; not applied (plan rejected)")
        } else {
            if let Some(plan) = self.status.plan.as_mut().filter(|p| p.id == id && p.decision == PlanDecision::Pending)
            {
                plan.decision = PlanDecision::Detected;
            }
            format!(
                "drift found by plan {id}: {counts}; not applied (drift: Detect); `kubectl alustan approve {} --plan {id}` applies it",
                self.name
            )
        };
        self.note(conditions::FALSE, reason::DRIFT_DETECTED, &message);
    }

    /// Marks plan `id` rejected and drops its file; `false` when it already was.
    async fn mark_rejected(&mut self, id: &str) -> bool {
        let Some(plan) = self.status.plan.as_mut().filter(|p| p.id == id) else { return false };
        if plan.decision == PlanDecision::Rejected {
            return false;
        }
        plan.decision = PlanDecision::Rejected;
        if plan.artifact_secret.take().is_some() {
            self.drop_plan_file().await;
        }
        true
    }

    /// Whether `secret` is this resource's (its controller), so never someone else's Secret
    /// of the same name is overwritten, deleted or trusted.
    fn owns(&self, secret: &Secret) -> bool {
        secret.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == self.uid)
    }

    /// Writes the plan file of plan `id` into the resource's plan Secret.
    async fn keep_plan_file(&self, id: &str, bytes: &[u8]) -> Result<String> {
        let name = meta::plan_secret_name(&self.name);
        let api: Api<Secret> = self.api();
        if api.get_opt(&name).await?.is_some_and(|s| !self.owns(&s)) {
            return Err(Error::Rejected {
                object: format!("Secret {name}"),
                message: "a Secret of that name exists that is not this resource's plan Secret: rename or delete it so plans can be kept".into(),
            });
        }
        let secret = Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(meta::PLAN_ID_ANNOTATION.to_owned(), id.to_owned())])),
                ..self.owned_metadata(&name)
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(meta::PLAN_KEY.to_owned(), ByteString(bytes.to_vec()))])),
            ..Secret::default()
        };
        api.patch(&name, &PatchParams::apply(meta::FIELD_MANAGER).force(), &Patch::Apply(&secret))
            .await
            .map_err(|err| Error::creating(format!("Secret {name}"), err))?;
        Ok(name)
    }

    /// Deletes the plan Secret (a plan file no run will apply). Failing to is only logged: the
    /// Secret goes with the resource, and a newer plan overwrites it.
    async fn drop_plan_file(&self) {
        let api: Api<Secret> = self.api();
        let name = meta::plan_secret_name(&self.name);
        // Only ours, and only the one read: a UID precondition.
        let uid = match api.get_opt(&name).await {
            Ok(Some(secret)) if self.owns(&secret) => secret.metadata.uid,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(secret = %name, error = %err, "cannot read the plan Secret to delete it");
                return;
            }
        };
        let preconditions = kube::api::Preconditions { uid, resource_version: None };
        let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => tracing::warn!(secret = %name, error = %err, "cannot delete the plan Secret"),
        }
    }
}

//! What to do next for one resource: pure functions of its wanted inputs and its status, so
//! every rule is unit-tested.
//!
//! **One run at a time.** A resource's runs (deploy, post-deploy, destroy) never overlap: while
//! any run is recorded as running, the answer is [`Decision::Busy`], whatever changed (a spec
//! edit, a new tag, a sync request, suspend, deletion). When the run ends, the *newest* inputs
//! are decided once; inputs that came and went while it ran are skipped, not queued.
//!
//! **Dependencies.** While a `dependsOn` entry is not Ready ([`Inputs::waiting_for`]), no
//! deploy or post-deploy starts ([`Decision::WaitingForDependency`]); a resource that is up to
//! date stays so (its dependency re-deploying is no reason to flap), and a run already going
//! goes on.
//!
//! **Plans.** With `approval: Manual` a deploy of new inputs goes through a plan: the plan
//! runs, its changes wait for its id to be approved ([`Decision::AwaitingApproval`]), and only
//! then the deploy applies that plan; a plan without changes is applied without asking. With a
//! plan script, the sync interval plans instead of re-deploying ([`Policy::drift`]): changes
//! are applied (`Correct`, through approval when `Manual`) or only reported (`Detect`). A
//! requested plan (`kubectl alustan plan`) never applies anything by itself.
//!
//! A deploy applies the wanted inputs when its record carries the same spec fingerprint, image
//! digest and sync token ([`Wanted`]); records written before those fields existed are matched
//! by their deterministic Job name (see [`crate::runs::jobs`]). Only the newest deploy counts:
//! after A → B → A the spec's A is deployed again, because B is what was applied last.

use std::time::Duration;

use alustan_shared::{DriftMode, PlanStatus, PlanTrigger, RunAction, RunRecord, RunResult, TerraformStatus};

use crate::runs::jobs::{post_key, round_of, run_key};

/// Retries of failed runs: `base * 2^(failures-1)` capped at `max`, `attempts` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub base: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Retry {
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What a deploy started now would apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub generation: i64,
    /// [`alustan_shared::TerraformSpec::inputs_fingerprint`].
    pub fingerprint: &'a str,
    /// The resync token from the annotations (alustan's, else Flux's).
    pub token: Option<&'a str>,
    /// The digest the registry scan chose; `None` until the registry was scanned.
    pub digest: Option<&'a str>,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub wanted: Wanted<'a>,
    pub suspend: bool,
    pub has_post_deploy: bool,
    pub status: &'a TerraformStatus,
    pub now: jiff::Timestamp,
    pub drift_interval: Duration,
    pub retry: Retry,
    /// The first `dependsOn` entry that is not Ready, and why (e.g. `ns/network: Deploying`).
    pub waiting_for: Option<&'a str>,
    /// Plans, approvals and drift.
    pub policy: Policy<'a>,
}

/// How changes and drift go through plans (from the spec and the annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy<'a> {
    /// `spec.scripts.plan` is set.
    pub plan_script: bool,
    /// `approval: Manual`.
    pub manual: bool,
    /// What the sync interval does (`spec.drift`; `None`: unset).
    pub drift: Option<DriftMode>,
    /// The plan request token (`alustan.io/plan-requested-at`).
    pub plan_token: Option<&'a str>,
    /// The approved plan id (`alustan.io/approve-plan`).
    pub approved: Option<&'a str>,
    /// The rejected plan id (`alustan.io/reject-plan`).
    pub rejected: Option<&'a str>,
}

/// Why a deploy starts (or waits behind a running run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    New,
    SpecChanged,
    DigestChanged,
    ResyncRequested,
    Retry,
    Drift,
    PlanRequested,
    Approved,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new resource",
            Self::SpecChanged => "spec changed",
            Self::DigestChanged => "new image digest",
            Self::ResyncRequested => "resync requested",
            Self::Retry => "retry after failure",
            Self::Drift => "drift interval elapsed",
            Self::PlanRequested => "plan requested",
            Self::Approved => "plan approved",
        }
    }
}

/// Why the finalizer may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `alustan.io/skip-destroy: "true"`: the infrastructure is left in place.
    SkipDestroy,
    NoDestroyScript,
    NothingApplied,
    Destroyed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Up to date; look again after `recheck_after` (the drift interval's end).
    Nothing { recheck_after: Duration },
    /// Run `job` is still going: nothing starts until it ends (its Job's watch wakes us).
    /// `behind`: newer inputs wait for it, and why.
    Busy { job: String, action: RunAction, behind: Option<Why> },
    /// `spec.suspend` and no run going.
    Suspended,
    /// The registry must be scanned before deciding (no digest yet).
    Scan,
    /// The last run of the wanted inputs failed; the next attempt is due `after`.
    Backoff { action: RunAction, failures: u32, after: Duration },
    /// Attempts are used up until the inputs change.
    Stalled { action: RunAction, failures: u32 },
    /// Start deploy `round` of the inputs of `key`; `plan`: the approved plan it applies.
    Deploy { key: String, round: u32, why: Why, plan: Option<String> },
    /// Start plan `round` of the inputs of `key`.
    Plan { key: String, round: u32, why: Why },
    /// Plan `id` has changes and waits for its id to be approved (or rejected).
    AwaitingApproval { id: String },
    /// Plan `id` was rejected: nothing runs until the inputs change or a plan is requested.
    PlanRejected { id: String },
    /// Plan `id` of the applied inputs found changes that `drift: Detect` leaves alone; the
    /// next drift check is due after `recheck_after`.
    Drifted { id: String, recheck_after: Duration },
    /// Start post-deploy `attempt` after the deploy whose post key is `key`.
    PostDeploy { key: String, attempt: u32 },
    /// Start destroy `round` of the applied image (`key`).
    Destroy { key: String, round: u32 },
    /// The resource may be released (deletion only).
    Release(Release),
    /// A run is due but a dependency is not Ready (which one, and why).
    WaitingForDependency { dependency: String },
}

/// The run still going, if any (the newest record that is running, of any action).
pub fn running(status: &TerraformStatus) -> Option<&RunRecord> {
    status.history.iter().find(|r| r.result == RunResult::Running)
}

fn elapsed_since(record: &RunRecord, now: jiff::Timestamp) -> Duration {
    let end = record.completion_time.as_ref().map_or(record.start_time.0, |t| t.0);
    now.duration_since(end).try_into().unwrap_or(Duration::ZERO)
}

fn failed(record: &RunRecord) -> bool {
    matches!(record.result, RunResult::Failed | RunResult::Error)
}

/// After `failures` failures in a row: retry when the backoff has passed, stall when the
/// attempts are used up.
fn after_failure(
    input_retry: Retry,
    now: jiff::Timestamp,
    failures: u32,
    last: &RunRecord,
    retry: Decision,
) -> Decision {
    let action = last.action;
    if failures >= input_retry.attempts {
        return Decision::Stalled { action, failures };
    }
    let delay = input_retry.delay(failures);
    let elapsed = elapsed_since(last, now);
    match delay.checked_sub(elapsed) {
        Some(after) if !after.is_zero() => Decision::Backoff { action, failures, after },
        _ => retry,
    }
}

/// The next round of `key`'s runs of `action`: one past the highest recorded.
fn next_round(status: &TerraformStatus, name: &str, action: RunAction, key: &str) -> u32 {
    status
        .history
        .iter()
        .filter(|r| r.action == action)
        .filter_map(|r| round_of(&r.job_name, name, action, key))
        .max()
        .map_or(0, |round| round.saturating_add(1))
}

impl Inputs<'_> {
    /// Whether deploy `record` applied the wanted inputs (digest known).
    fn applies_wanted(&self, record: &RunRecord, digest: &str, key: &str) -> bool {
        match &record.inputs {
            Some(inputs) => {
                inputs == self.wanted.fingerprint
                    && record.digest() == Some(digest)
                    && (self.wanted.token.is_none() || record.token.as_deref() == self.wanted.token)
            }
            None => round_of(&record.job_name, self.name, RunAction::Deploy, key).is_some(),
        }
    }

    /// What changed between run `record` and the wanted inputs (the digest only if known).
    fn change_since(&self, record: &RunRecord) -> Option<Why> {
        if self.wanted.digest.is_some_and(|digest| record.digest() != Some(digest)) {
            return Some(Why::DigestChanged);
        }
        if record.token.as_deref() != self.wanted.token && self.wanted.token.is_some() {
            return Some(Why::ResyncRequested);
        }
        match &record.inputs {
            Some(inputs) if inputs != self.wanted.fingerprint => Some(Why::SpecChanged),
            Some(_) => None,
            // A record from before fingerprints: its generation, if any, tells.
            None => (record.generation != Some(self.wanted.generation)).then_some(Why::SpecChanged),
        }
    }
}

/// What to do for a resource that is not being deleted.
pub fn decide(input: &Inputs<'_>) -> Decision {
    match (decide_runs(input), input.waiting_for) {
        (Decision::Deploy { .. } | Decision::PostDeploy { .. } | Decision::Plan { .. }, Some(dependency)) => {
            Decision::WaitingForDependency { dependency: dependency.to_owned() }
        }
        (decision, _) => decision,
    }
}

/// What to do, dependencies aside.
fn decide_runs(input: &Inputs<'_>) -> Decision {
    let status = input.status;
    if let Some(run) = running(status) {
        let behind = if run.action == RunAction::Destroy { None } else { input.change_since(run) };
        return Decision::Busy { job: run.job_name.clone(), action: run.action, behind };
    }
    if input.suspend {
        return Decision::Suspended;
    }
    let Some(digest) = input.wanted.digest else { return Decision::Scan };
    let key = run_key(input.uid, input.wanted.generation, digest, input.wanted.token);
    let round = next_round(status, input.name, RunAction::Deploy, &key);
    let gate = Gate { input, digest, key: &key, round };
    // A requested plan first: it applies nothing by itself.
    if input.policy.plan_script
        && input.policy.plan_token.is_some_and(|t| Some(t) != status.last_handled_plan_at.as_deref())
    {
        return gate.plan(Why::PlanRequested);
    }
    let deploys = status.history.iter().enumerate().filter(|(_, r)| r.action == RunAction::Deploy);
    let mut wanted_deploys = deploys.clone().map_while(|(_, r)| input.applies_wanted(r, digest, &key).then_some(r));
    let Some((index, latest)) = deploys.clone().next() else {
        let why = match &status.applied {
            None if status.history.is_empty() => Why::New,
            Some(applied) if applied.digest != digest => Why::DigestChanged,
            _ if input.wanted.token.is_some() && input.wanted.token != status.last_handled_reconcile_at.as_deref() => {
                Why::ResyncRequested
            }
            _ => Why::SpecChanged,
        };
        return gate.deploy(why, status.history.len());
    };
    if !input.applies_wanted(latest, digest, &key) {
        let why = input.change_since(latest).unwrap_or(Why::SpecChanged);
        return gate.deploy(why, index);
    }
    if failed(latest) {
        // Under manual approval a failed apply is planned again (its plan is stale now).
        if input.policy.manual && gate.newest_plan(index).is_some() {
            return gate.deploy(Why::Retry, index);
        }
        let failures = u32::try_from(wanted_deploys.by_ref().take_while(|r| failed(r)).count()).unwrap_or(u32::MAX);
        let retry = if input.policy.manual { gate.plan(Why::Retry) } else { gate.direct(Why::Retry, None) };
        return after_failure(input.retry, input.now, failures, latest, retry);
    }
    // The newest deploy applied the wanted inputs and succeeded: its post-deploy, then drift.
    let mut drift_from = latest;
    if input.has_post_deploy {
        // Every post-deploy newer than that deploy is one of its attempts (runs never overlap).
        let posts: Vec<&RunRecord> =
            status.history[..index].iter().filter(|r| r.action == RunAction::PostDeploy).collect();
        let post = post_key(&latest.job_name);
        let attempt = u32::try_from(posts.len()).unwrap_or(u32::MAX);
        match posts.first() {
            None => return Decision::PostDeploy { key: post, attempt: 0 },
            Some(p) if p.result == RunResult::Succeeded => drift_from = p,
            Some(p) => {
                let failures = u32::try_from(posts.iter().take_while(|r| failed(r)).count()).unwrap_or(u32::MAX);
                let retry = Decision::PostDeploy { key: post, attempt };
                return after_failure(input.retry, input.now, failures, p, retry);
            }
        }
    }
    // Plans of the applied inputs since: drift checks and requested plans.
    let since = status.history.iter().position(|r| r.job_name == drift_from.job_name).unwrap_or(0);
    let mut drifted = None;
    if let Some(plan) = gate.newest_plan(since) {
        if failed(plan) {
            let failures = gate.failed_plans(since);
            match after_failure(input.retry, input.now, failures, plan, gate.plan(Why::Retry)) {
                // A check of what is applied that keeps failing stalls nothing: the next one is
                // due an interval after the last attempt.
                Decision::Stalled { .. } => {}
                retry => return retry,
            }
        } else {
            match gate.summary(plan) {
                Some(summary) if summary.has_changes() => match gate.of_applied(summary) {
                    Some(decision) => return decision,
                    None => drifted = Some(summary.id.clone()),
                },
                _ => {}
            }
        }
        drift_from = plan;
    }
    // Time spent suspended does not count towards drift.
    let resumed = status.resumed_at.as_ref().and_then(|at| input.now.duration_since(at.0).try_into().ok());
    let elapsed = elapsed_since(drift_from, input.now).min(resumed.unwrap_or(Duration::MAX));
    let interval = input.drift_interval;
    match (interval.checked_sub(elapsed), input.policy.drift, drifted) {
        (_, Some(DriftMode::Off), _) => Decision::Nothing { recheck_after: interval },
        (Some(left), _, Some(id)) if !left.is_zero() => Decision::Drifted { id, recheck_after: left },
        (Some(left), _, None) if !left.is_zero() => Decision::Nothing { recheck_after: left },
        _ if input.policy.plan_script => gate.plan(Why::Drift),
        _ => gate.direct(Why::Drift, None),
    }
}

/// Where a deploy of the wanted inputs stands towards its plan.
struct Gate<'i, 'a> {
    input: &'i Inputs<'a>,
    digest: &'i str,
    key: &'i str,
    round: u32,
}

impl Gate<'_, '_> {
    fn direct(&self, why: Why, plan: Option<String>) -> Decision {
        Decision::Deploy { key: self.key.to_owned(), round: self.round, why, plan }
    }

    fn plan(&self, why: Why) -> Decision {
        let round = next_round(self.input.status, self.input.name, RunAction::Plan, self.key);
        Decision::Plan { key: self.key.to_owned(), round, why }
    }

    /// The newest plan run of the wanted inputs among the records newer than `before` (an
    /// index into the history, newest first).
    fn newest_plan(&self, before: usize) -> Option<&RunRecord> {
        let history = &self.input.status.history;
        history[..before.min(history.len())]
            .iter()
            .find(|r| r.action == RunAction::Plan && self.input.applies_wanted(r, self.digest, self.key))
    }

    /// Failed plan runs of the wanted inputs in a row, newest first, among those newer than `before`.
    fn failed_plans(&self, before: usize) -> u32 {
        let history = &self.input.status.history;
        let plans = history[..before.min(history.len())]
            .iter()
            .filter(|r| r.action == RunAction::Plan && self.input.applies_wanted(r, self.digest, self.key));
        u32::try_from(plans.take_while(|r| failed(r)).count()).unwrap_or(u32::MAX)
    }

    /// What plan run `record` found (`status.plan` while it is the latest plan).
    fn summary(&self, record: &RunRecord) -> Option<&PlanStatus> {
        self.input.status.plan.as_ref().filter(|p| p.job_name == record.job_name)
    }

    /// A deploy of new inputs (`why`; its plans are newer than history index `before`):
    /// straight away, or under manual approval through its plan.
    fn deploy(&self, why: Why, before: usize) -> Decision {
        if !self.input.policy.manual {
            return self.direct(why, None);
        }
        let Some(plan) = self.newest_plan(before) else { return self.plan(why) };
        if failed(plan) {
            let failures = self.failed_plans(before);
            return after_failure(self.input.retry, self.input.now, failures, plan, self.plan(Why::Retry));
        }
        let Some(summary) = self.summary(plan) else { return self.plan(why) };
        let policy = &self.input.policy;
        if !summary.has_changes() {
            // Nothing to approve: apply it (outputs and post-deploy follow as usual).
            return self.direct(why, Some(summary.id.clone()));
        }
        // A rejection is final for its plan: approving it afterwards applies nothing.
        if policy.rejected == Some(summary.id.as_str()) {
            return Decision::PlanRejected { id: summary.id.clone() };
        }
        if policy.approved == Some(summary.id.as_str()) {
            return self.direct(Why::Approved, Some(summary.id.clone()));
        }
        Decision::AwaitingApproval { id: summary.id.clone() }
    }

    /// What follows a plan of the applied inputs that found changes; `None`: drift left alone.
    fn of_applied(&self, summary: &PlanStatus) -> Option<Decision> {
        let policy = &self.input.policy;
        let id = summary.id.clone();
        if policy.rejected == Some(id.as_str()) {
            return None;
        }
        if policy.approved == Some(id.as_str()) {
            return Some(self.direct(Why::Approved, Some(id)));
        }
        if policy.drift == Some(DriftMode::Detect) {
            return None;
        }
        // Only a drift check corrects by itself, and only where drift is corrected.
        let corrects = matches!(policy.drift, None | Some(DriftMode::Correct));
        if summary.trigger == PlanTrigger::Drift && corrects && !policy.manual {
            return Some(self.direct(Why::Drift, Some(id)));
        }
        Some(Decision::AwaitingApproval { id })
    }
}

/// Everything the deletion decision depends on.
#[derive(Debug, Clone)]
pub struct Deletion<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    /// `alustan.io/skip-destroy: "true"`.
    pub skip_destroy: bool,
    pub has_destroy_script: bool,
    /// The spec's inputs fingerprint: a fixed destroy script (or its variables) starts over.
    pub fingerprint: &'a str,
    pub status: &'a TerraformStatus,
    pub now: jiff::Timestamp,
    pub retry: Retry,
}

/// What to do for a resource being deleted: let a running run end (never killed mid-apply,
/// even when skipping destroy), then destroy what was last applied, with the deploy's backoff.
pub fn decide_deletion(input: &Deletion<'_>) -> Decision {
    let status = input.status;
    if let Some(run) = running(status) {
        return Decision::Busy { job: run.job_name.clone(), action: run.action, behind: None };
    }
    if input.skip_destroy {
        return Decision::Release(Release::SkipDestroy);
    }
    if !input.has_destroy_script {
        return Decision::Release(Release::NoDestroyScript);
    }
    let Some(applied) = &status.applied else { return Decision::Release(Release::NothingApplied) };
    let key = destroy_key(input.uid, &applied.digest, input.fingerprint);
    let mut destroys =
        status.history.iter().filter(|r| round_of(&r.job_name, input.name, RunAction::Destroy, &key).is_some());
    let round = next_round(status, input.name, RunAction::Destroy, &key);
    match destroys.next() {
        None => Decision::Destroy { key, round },
        Some(last) if last.result == RunResult::Succeeded => Decision::Release(Release::Destroyed),
        Some(last) => {
            let failures = 1 + u32::try_from(destroys.take_while(|r| failed(r)).count()).unwrap_or(u32::MAX - 1);
            let retry = Decision::Destroy { key: key.clone(), round };
            after_failure(input.retry, input.now, failures, last, retry)
        }
    }
}

/// The identity of the destroy runs of an applied digest with the spec's inputs.
pub fn destroy_key(uid: &str, digest: &str, fingerprint: &str) -> String {
    alustan_shared::fingerprint(&[uid, digest, fingerprint, "destroy"])[..10].to_owned()
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "decide_plan_tests.rs"]
mod plan_tests;

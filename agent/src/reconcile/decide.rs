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
//! A deploy applies the wanted inputs when its record carries the same spec fingerprint, image
//! digest and sync token ([`Wanted`]); records written before those fields existed are matched
//! by their deterministic Job name (see [`crate::runs::jobs`]). Only the newest deploy counts:
//! after A → B → A the spec's A is deployed again, because B is what was applied last.

use std::time::Duration;

use alustan_shared::{RunAction, RunRecord, RunResult, TerraformStatus};

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
    /// Start deploy `round` of the inputs of `key`.
    Deploy { key: String, round: u32, why: Why },
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
        (Decision::Deploy { .. } | Decision::PostDeploy { .. }, Some(dependency)) => {
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
        return Decision::Deploy { key, round, why };
    };
    if !input.applies_wanted(latest, digest, &key) {
        let why = input.change_since(latest).unwrap_or(Why::SpecChanged);
        return Decision::Deploy { key, round, why };
    }
    if failed(latest) {
        let failures = u32::try_from(wanted_deploys.by_ref().take_while(|r| failed(r)).count()).unwrap_or(u32::MAX);
        let retry = Decision::Deploy { key, round, why: Why::Retry };
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
    // Time spent suspended does not count towards drift.
    let resumed = status.resumed_at.as_ref().and_then(|at| input.now.duration_since(at.0).try_into().ok());
    let elapsed = elapsed_since(drift_from, input.now).min(resumed.unwrap_or(Duration::MAX));
    match input.drift_interval.checked_sub(elapsed) {
        Some(left) if !left.is_zero() => Decision::Nothing { recheck_after: left },
        _ => Decision::Deploy { key, round, why: Why::Drift },
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

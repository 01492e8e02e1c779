//! What to do next for one resource: a pure function of the resource, its status and the
//! registry's answer, so every rule is unit-tested.
//!
//! The runs of the current inputs (uid, generation, digest, resync token) are found in
//! `status.history` by their deterministic Job names (see [`crate::runs::jobs`]): an unchanged
//! manifest re-applied by Argo CD or Flux keeps the same inputs, so nothing runs again.

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

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub generation: i64,
    pub suspend: bool,
    /// The resync token from the annotations (alustan's, else Flux's).
    pub token: Option<&'a str>,
    /// The digest the registry scan chose.
    pub digest: &'a str,
    pub has_post_deploy: bool,
    pub status: &'a TerraformStatus,
    pub now: jiff::Timestamp,
    pub drift_interval: Duration,
    pub retry: Retry,
}

/// Why a deploy starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    New,
    GenerationChanged,
    DigestChanged,
    ResyncRequested,
    Retry,
    Drift,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new resource",
            Self::GenerationChanged => "spec changed",
            Self::DigestChanged => "new image digest",
            Self::ResyncRequested => "resync requested",
            Self::Retry => "retry after failure",
            Self::Drift => "drift interval elapsed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Up to date (or suspended); look again after `recheck_after` if set.
    Nothing { suspended: bool, recheck_after: Option<Duration> },
    /// Start deploy `round` of the current inputs.
    Deploy { key: String, round: u32, why: Why },
    /// Start the post-deploy after deploy `deploy_round`.
    PostDeploy { key: String, deploy_round: u32, attempt: u32 },
    /// A Job is running (`None`: its watch wakes us) or a retry is due after the delay.
    Wait { after: Option<Duration> },
    /// Retries are exhausted until the inputs change.
    Stalled { action: RunAction, failures: u32 },
}

fn elapsed_since(record: &RunRecord, now: jiff::Timestamp) -> Duration {
    let end = record.completion_time.as_ref().map_or(record.start_time.0, |t| t.0);
    now.duration_since(end).try_into().unwrap_or(Duration::ZERO)
}

/// Runs of one action and key, newest first, with their round.
fn runs<'s>(
    history: &'s [RunRecord],
    name: &str,
    action: RunAction,
    key: &str,
) -> impl Iterator<Item = (u32, &'s RunRecord)> {
    history
        .iter()
        .filter(move |r| r.action == action)
        .filter_map(move |r| round_of(&r.job_name, name, action, key).map(|round| (round, r)))
}

/// Failed runs in a row at the head of `runs`.
fn failures<'s>(runs: impl Iterator<Item = (u32, &'s RunRecord)>) -> u32 {
    let count = runs.take_while(|(_, r)| matches!(r.result, RunResult::Failed | RunResult::Error)).count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// After a failure: retry when the backoff has passed, stall when attempts are used up.
fn after_failure(input: &Inputs<'_>, action: RunAction, failures: u32, last: &RunRecord, retry: Decision) -> Decision {
    if failures >= input.retry.attempts {
        return Decision::Stalled { action, failures };
    }
    let delay = input.retry.delay(failures);
    let elapsed = elapsed_since(last, input.now);
    if elapsed >= delay { retry } else { Decision::Wait { after: Some(delay.saturating_sub(elapsed)) } }
}

pub fn decide(input: &Inputs<'_>) -> Decision {
    if input.suspend {
        return Decision::Nothing { suspended: true, recheck_after: None };
    }
    let status = input.status;
    let key = run_key(input.uid, input.generation, input.digest, input.token);
    let lookup = key.clone();
    let mut deploys = runs(&status.history, input.name, RunAction::Deploy, &lookup).peekable();
    let Some(&(round, last)) = deploys.peek() else {
        let why = match &status.applied {
            None if status.history.is_empty() => Why::New,
            Some(applied) if applied.digest != input.digest => Why::DigestChanged,
            _ if input.token.is_some() && input.token != status.last_handled_reconcile_at.as_deref() => {
                Why::ResyncRequested
            }
            _ => Why::GenerationChanged,
        };
        return Decision::Deploy { key, round: 0, why };
    };
    match last.result {
        RunResult::Running => Decision::Wait { after: None },
        RunResult::Failed | RunResult::Error => {
            let retry = Decision::Deploy { key: key.clone(), round: round + 1, why: Why::Retry };
            after_failure(input, RunAction::Deploy, failures(deploys), last, retry)
        }
        RunResult::Succeeded => {
            let mut drift_from = last;
            if input.has_post_deploy {
                let post = post_key(&key, round);
                let mut posts = runs(&status.history, input.name, RunAction::PostDeploy, &post).peekable();
                match posts.peek() {
                    None => return Decision::PostDeploy { key, deploy_round: round, attempt: 0 },
                    Some(&(_, p)) if p.result == RunResult::Running => return Decision::Wait { after: None },
                    Some(&(attempt, p)) if p.result != RunResult::Succeeded => {
                        let retry =
                            Decision::PostDeploy { key: key.clone(), deploy_round: round, attempt: attempt + 1 };
                        return after_failure(input, RunAction::PostDeploy, failures(posts), p, retry);
                    }
                    Some(&(_, p)) => drift_from = p,
                }
            }
            let elapsed = elapsed_since(drift_from, input.now);
            if elapsed >= input.drift_interval {
                Decision::Deploy { key, round: round + 1, why: Why::Drift }
            } else {
                Decision::Nothing {
                    suspended: false,
                    recheck_after: Some(input.drift_interval.saturating_sub(elapsed)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alustan_shared::AppliedImage;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::runs::jobs::job_name;

    const HOUR: Duration = Duration::from_secs(3600);
    const RETRY: Retry = Retry { base: Duration::from_secs(10), max: Duration::from_secs(60), attempts: 3 };

    fn t0() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn at(secs: i64) -> jiff::Timestamp {
        t0() + jiff::SignedDuration::from_secs(secs)
    }

    fn inputs(status: &TerraformStatus) -> Inputs<'_> {
        Inputs {
            name: "tf",
            uid: "uid",
            generation: 1,
            suspend: false,
            token: None,
            digest: "sha256:a",
            has_post_deploy: false,
            status,
            now: at(100),
            drift_interval: HOUR,
            retry: RETRY,
        }
    }

    fn record(action: RunAction, job_name: String, result: RunResult, done: i64) -> RunRecord {
        RunRecord {
            action,
            job_name,
            image: "r@sha256:a".into(),
            tag: Some("v1".into()),
            start_time: Time(at(done - 1)),
            completion_time: (result != RunResult::Running).then(|| Time(at(done))),
            result,
            message: None,
        }
    }

    fn deploy(input: &Inputs<'_>, round: u32, result: RunResult, done: i64) -> RunRecord {
        let key = run_key(input.uid, input.generation, input.digest, input.token);
        record(RunAction::Deploy, job_name(input.name, RunAction::Deploy, &key, round), result, done)
    }

    fn post(input: &Inputs<'_>, deploy_round: u32, attempt: u32, result: RunResult, done: i64) -> RunRecord {
        let key = post_key(&run_key(input.uid, input.generation, input.digest, input.token), deploy_round);
        record(RunAction::PostDeploy, job_name(input.name, RunAction::PostDeploy, &key, attempt), result, done)
    }

    /// A status whose newest deploy (round 0, done at t=0) succeeded for the default inputs.
    fn deployed() -> TerraformStatus {
        let empty = TerraformStatus::default();
        let record = deploy(&inputs(&empty), 0, RunResult::Succeeded, 0);
        TerraformStatus {
            history: vec![record],
            applied: Some(AppliedImage {
                image: "r@sha256:a".into(),
                tag: "v1".into(),
                digest: "sha256:a".into(),
                applied_at: None,
            }),
            observed_generation: Some(1),
            ..TerraformStatus::default()
        }
    }

    fn why(decision: &Decision) -> Option<Why> {
        match decision {
            Decision::Deploy { why, .. } => Some(*why),
            _ => None,
        }
    }

    #[test]
    fn new_resource_deploys_round_zero() {
        let status = TerraformStatus::default();
        let decision = decide(&inputs(&status));
        assert!(matches!(decision, Decision::Deploy { round: 0, why: Why::New, .. }), "{decision:?}");
    }

    #[test]
    fn unchanged_re_apply_does_nothing_until_the_drift_interval() {
        let status = deployed();
        // Argo CD / Flux re-applying the same manifest changes neither generation nor tokens.
        assert_eq!(
            decide(&inputs(&status)),
            Decision::Nothing { suspended: false, recheck_after: Some(Duration::from_secs(3500)) }
        );
    }

    #[test]
    fn generation_change_deploys() {
        let status = deployed();
        let input = Inputs { generation: 2, ..inputs(&status) };
        assert_eq!(why(&decide(&input)), Some(Why::GenerationChanged));
    }

    #[test]
    fn digest_change_deploys() {
        let status = deployed();
        let input = Inputs { digest: "sha256:b", ..inputs(&status) };
        assert_eq!(why(&decide(&input)), Some(Why::DigestChanged));
    }

    #[test]
    fn new_resync_token_deploys_for_alustan_and_flux_tokens_alike() {
        let status = deployed();
        let input = Inputs { token: Some("2026-01-01T00:00:00Z"), ..inputs(&status) };
        assert_eq!(why(&decide(&input)), Some(Why::ResyncRequested));
        // The same token once handled does nothing.
        let mut handled = deployed();
        handled.history.insert(0, deploy(&input, 0, RunResult::Succeeded, 50));
        handled.last_handled_reconcile_at = Some("2026-01-01T00:00:00Z".into());
        let again = Inputs { status: &handled, ..input };
        assert!(matches!(decide(&again), Decision::Nothing { .. }));
    }

    #[test]
    fn drift_interval_elapsed_re_applies_as_the_next_round() {
        let status = deployed();
        let input = Inputs { now: at(3600), ..inputs(&status) };
        assert!(matches!(decide(&input), Decision::Deploy { round: 1, why: Why::Drift, .. }));
    }

    #[test]
    fn suspend_does_nothing_even_for_a_new_resource() {
        let status = TerraformStatus::default();
        let input = Inputs { suspend: true, ..inputs(&status) };
        assert_eq!(decide(&input), Decision::Nothing { suspended: true, recheck_after: None });
    }

    #[test]
    fn running_job_waits_for_its_watch() {
        let empty = TerraformStatus::default();
        let status =
            TerraformStatus { history: vec![deploy(&inputs(&empty), 0, RunResult::Running, 0)], ..empty.clone() };
        assert_eq!(decide(&inputs(&status)), Decision::Wait { after: None });
    }

    #[test]
    fn failed_runs_back_off_exponentially_then_stall() {
        let empty = TerraformStatus::default();
        let base = inputs(&empty);
        // One failure at t=95: retry after 10 s.
        let one = TerraformStatus { history: vec![deploy(&base, 0, RunResult::Failed, 95)], ..empty.clone() };
        assert_eq!(decide(&inputs(&one)), Decision::Wait { after: Some(Duration::from_secs(5)) });
        let later = Inputs { now: at(105), ..inputs(&one) };
        assert!(matches!(decide(&later), Decision::Deploy { round: 1, why: Why::Retry, .. }));
        // Two failures: 20 s.
        let two = TerraformStatus {
            history: vec![deploy(&base, 1, RunResult::Failed, 90), deploy(&base, 0, RunResult::Failed, 50)],
            ..empty.clone()
        };
        assert_eq!(decide(&inputs(&two)), Decision::Wait { after: Some(Duration::from_secs(10)) });
        // Three failures = attempts: stalled until something changes.
        let three = TerraformStatus {
            history: vec![
                deploy(&base, 2, RunResult::Error, 90),
                deploy(&base, 1, RunResult::Failed, 50),
                deploy(&base, 0, RunResult::Failed, 10),
            ],
            ..empty.clone()
        };
        assert_eq!(decide(&inputs(&three)), Decision::Stalled { action: RunAction::Deploy, failures: 3 });
        let changed = Inputs { generation: 2, ..inputs(&three) };
        assert!(matches!(decide(&changed), Decision::Deploy { round: 0, .. }));
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(RETRY.delay(1), Duration::from_secs(10));
        assert_eq!(RETRY.delay(3), Duration::from_secs(40));
        assert_eq!(RETRY.delay(30), Duration::from_secs(60));
    }

    #[test]
    fn post_deploy_follows_a_successful_deploy_once() {
        let status = deployed();
        let input = Inputs { has_post_deploy: true, ..inputs(&status) };
        assert!(matches!(decide(&input), Decision::PostDeploy { deploy_round: 0, attempt: 0, .. }));
        let mut running = deployed();
        running.history.insert(0, post(&input, 0, 0, RunResult::Running, 10));
        assert_eq!(decide(&Inputs { status: &running, ..input.clone() }), Decision::Wait { after: None });
        let mut done = deployed();
        done.history.insert(0, post(&input, 0, 0, RunResult::Succeeded, 10));
        assert!(matches!(decide(&Inputs { status: &done, ..input.clone() }), Decision::Nothing { .. }));
        let mut failed = deployed();
        failed.history.insert(0, post(&input, 0, 0, RunResult::Failed, 10));
        assert!(matches!(
            decide(&Inputs { status: &failed, ..input.clone() }),
            Decision::PostDeploy { deploy_round: 0, attempt: 1, .. }
        ));
    }
}

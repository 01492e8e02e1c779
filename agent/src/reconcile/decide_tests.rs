//! The decision table: every trigger while a run of older inputs is active, deploy, post-deploy
//! and destroy, backoff growth, Stalled and recovery.

use alustan_shared::AppliedImage;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::runs::jobs::job_name;

pub(super) const HOUR: Duration = Duration::from_secs(3600);
pub(super) const RETRY: Retry = Retry { base: Duration::from_secs(10), max: Duration::from_secs(60), attempts: 3 };
pub(super) const WANTED: Wanted<'static> =
    Wanted { generation: 1, fingerprint: "fp1", token: None, digest: Some("sha256:a") };

pub(super) fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

pub(super) fn inputs(status: &TerraformStatus) -> Inputs<'_> {
    Inputs {
        name: "tf",
        uid: "uid",
        wanted: WANTED,
        suspend: false,
        has_post_deploy: false,
        status,
        now: at(100),
        drift_interval: HOUR,
        retry: RETRY,
        waiting_for: None,
        policy: Policy::default(),
    }
}

/// A run of `wanted`'s inputs, finished at `done` (started a second before).
pub(super) fn run(action: RunAction, job_name: String, wanted: Wanted<'_>, result: RunResult, done: i64) -> RunRecord {
    RunRecord {
        action,
        job_name,
        image: format!("r@{}", wanted.digest.unwrap_or("sha256:a")),
        tag: Some("v1".into()),
        start_time: Time(at(done - 1)),
        completion_time: (result != RunResult::Running).then(|| Time(at(done))),
        result,
        message: None,
        generation: Some(wanted.generation),
        digest: None,
        token: wanted.token.map(str::to_owned),
        inputs: Some(wanted.fingerprint.to_owned()),
        plan: None,
        trigger: None,
    }
}

pub(super) fn key(wanted: Wanted<'_>) -> String {
    run_key("uid", wanted.generation, wanted.digest.unwrap_or_default(), wanted.token)
}

fn deploy(wanted: Wanted<'_>, round: u32, result: RunResult, done: i64) -> RunRecord {
    run(RunAction::Deploy, job_name("tf", RunAction::Deploy, &key(wanted), round), wanted, result, done)
}

fn post(of: &RunRecord, attempt: u32, result: RunResult, done: i64) -> RunRecord {
    run(
        RunAction::PostDeploy,
        job_name("tf", RunAction::PostDeploy, &post_key(&of.job_name), attempt),
        WANTED,
        result,
        done,
    )
}

fn status(history: Vec<RunRecord>) -> TerraformStatus {
    let applied = history.iter().find(|r| r.action == RunAction::Deploy && r.result == RunResult::Succeeded).map(|r| {
        AppliedImage {
            image: r.image.clone(),
            tag: "v1".into(),
            digest: r.digest().unwrap_or_default().into(),
            applied_at: None,
        }
    });
    TerraformStatus { history, applied, ..TerraformStatus::default() }
}

/// Deploy round 0 of the wanted inputs succeeded at t=0.
fn deployed() -> TerraformStatus {
    status(vec![deploy(WANTED, 0, RunResult::Succeeded, 0)])
}

#[test]
fn a_new_resource_deploys_round_zero_after_a_scan() {
    let empty = TerraformStatus::default();
    let unscanned = Inputs { wanted: Wanted { digest: None, ..WANTED }, ..inputs(&empty) };
    assert_eq!(decide(&unscanned), Decision::Scan);
    assert!(matches!(decide(&inputs(&empty)), Decision::Deploy { round: 0, why: Why::New, .. }));
}

#[test]
fn an_unchanged_re_apply_does_nothing_until_the_drift_interval_then_re_applies() {
    let status = deployed();
    // Argo CD / Flux re-applying the same manifest changes neither inputs nor tokens.
    assert_eq!(decide(&inputs(&status)), Decision::Nothing { recheck_after: Duration::from_secs(3500) });
    let later = Inputs { now: at(3600), ..inputs(&status) };
    assert!(matches!(decide(&later), Decision::Deploy { round: 1, why: Why::Drift, .. }));
}

#[test]
fn each_trigger_deploys_when_no_run_is_going() {
    let status = deployed();
    let cases = [
        (Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, Why::SpecChanged),
        (Wanted { digest: Some("sha256:b"), ..WANTED }, Why::DigestChanged),
        (Wanted { token: Some("t1"), ..WANTED }, Why::ResyncRequested),
    ];
    for (wanted, why) in cases {
        let decision = decide(&Inputs { wanted, ..inputs(&status) });
        assert!(matches!(decision, Decision::Deploy { round: 0, why: w, .. } if w == why), "{why:?}: {decision:?}");
    }
}

/// The heart of run safety: while a run of older inputs is going, no trigger starts anything.
#[test]
fn every_trigger_waits_while_a_run_of_older_inputs_is_active() {
    let running = status(vec![deploy(WANTED, 0, RunResult::Running, 0)]);
    let job = running.history[0].job_name.clone();
    let cases = [
        ("spec edit", Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, Some(Why::SpecChanged)),
        ("new digest", Wanted { digest: Some("sha256:b"), ..WANTED }, Some(Why::DigestChanged)),
        ("sync request", Wanted { token: Some("t1"), ..WANTED }, Some(Why::ResyncRequested)),
        ("a second sync request", Wanted { token: Some("t2"), ..WANTED }, Some(Why::ResyncRequested)),
        ("unscanned", Wanted { digest: None, ..WANTED }, None),
        ("nothing new", WANTED, None),
    ];
    for (what, wanted, behind) in cases {
        let decision = decide(&Inputs { wanted, ..inputs(&running) });
        assert_eq!(decision, Decision::Busy { job: job.clone(), action: RunAction::Deploy, behind }, "{what}");
    }
    // The drift interval passing during a long run.
    let late = Inputs { now: at(10 * 3600), ..inputs(&running) };
    assert!(matches!(decide(&late), Decision::Busy { .. }));
    // Suspend (and resume) during a run: the run finishes first.
    assert!(matches!(decide(&Inputs { suspend: true, ..inputs(&running) }), Decision::Busy { .. }));
    // A post-deploy going holds a new deploy too.
    let mut posting = deployed();
    let post_run = post(&posting.history[0], 0, RunResult::Running, 10);
    posting.history.insert(0, post_run);
    let edited = Inputs { wanted: Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, ..inputs(&posting) };
    assert!(matches!(
        decide(&edited),
        Decision::Busy { action: RunAction::PostDeploy, behind: Some(Why::SpecChanged), .. }
    ));
    // Deletion during a deploy waits for it.
    let deleting = Deletion {
        name: "tf",
        uid: "uid",
        skip_destroy: true,
        has_destroy_script: true,
        fingerprint: "fp1",
        status: &running,
        now: at(100),
        retry: RETRY,
    };
    assert!(matches!(decide_deletion(&deleting), Decision::Busy { behind: None, .. }));
}

#[test]
fn after_a_run_of_older_inputs_the_newest_inputs_run_once() {
    // Two edits arrived during the generation-1 deploy; it ended; generation 3 is wanted.
    let status = status(vec![deploy(WANTED, 0, RunResult::Succeeded, 50)]);
    let newest = Wanted { generation: 3, fingerprint: "fp3", ..WANTED };
    let decision = decide(&Inputs { wanted: newest, ..inputs(&status) });
    assert_eq!(decision, Decision::Deploy { key: key(newest), round: 0, why: Why::SpecChanged, plan: None });
    // With its run recorded, generation 2 is never run: A → B → A is the newest only.
    let mut ran = status.clone();
    ran.history.insert(0, deploy(newest, 0, RunResult::Succeeded, 90));
    assert!(matches!(decide(&Inputs { wanted: newest, ..inputs(&ran) }), Decision::Nothing { .. }));
    let back = decide(&Inputs { wanted: Wanted { generation: 4, ..WANTED }, ..inputs(&ran) });
    assert!(matches!(back, Decision::Deploy { why: Why::SpecChanged, .. }), "{back:?}");
}

#[test]
fn resume_runs_nothing_unless_inputs_changed_or_a_sync_was_requested() {
    // Suspend and resume bump the generation, not the fingerprint.
    let status = deployed();
    let resumed = Wanted { generation: 3, ..WANTED };
    assert_eq!(decide(&Inputs { suspend: true, wanted: resumed, ..inputs(&status) }), Decision::Suspended);
    assert!(matches!(decide(&Inputs { wanted: resumed, ..inputs(&status) }), Decision::Nothing { .. }));
    let synced = Wanted { token: Some("while-suspended"), ..resumed };
    assert!(matches!(
        decide(&Inputs { wanted: synced, ..inputs(&status) }),
        Decision::Deploy { why: Why::ResyncRequested, .. }
    ));
    let edited = Wanted { fingerprint: "fp2", ..resumed };
    assert!(matches!(
        decide(&Inputs { wanted: edited, ..inputs(&status) }),
        Decision::Deploy { why: Why::SpecChanged, .. }
    ));
}

#[test]
fn failed_deploys_back_off_exponentially_then_stall_until_the_inputs_change() {
    let one = status(vec![deploy(WANTED, 0, RunResult::Failed, 95)]);
    let backoff = Decision::Backoff { action: RunAction::Deploy, failures: 1, after: Duration::from_secs(5) };
    assert_eq!(decide(&inputs(&one)), backoff);
    let later = Inputs { now: at(105), ..inputs(&one) };
    assert!(matches!(decide(&later), Decision::Deploy { round: 1, why: Why::Retry, .. }));
    let two = status(vec![deploy(WANTED, 1, RunResult::Failed, 90), deploy(WANTED, 0, RunResult::Failed, 50)]);
    let backoff = Decision::Backoff { action: RunAction::Deploy, failures: 2, after: Duration::from_secs(10) };
    assert_eq!(decide(&inputs(&two)), backoff);
    let three = status(vec![
        deploy(WANTED, 2, RunResult::Error, 90),
        deploy(WANTED, 1, RunResult::Failed, 50),
        deploy(WANTED, 0, RunResult::Failed, 10),
    ]);
    assert_eq!(decide(&inputs(&three)), Decision::Stalled { action: RunAction::Deploy, failures: 3 });
    // Recovery: new inputs start again at round 0; so does a sync request.
    let changed = Inputs { wanted: Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, ..inputs(&three) };
    assert!(matches!(decide(&changed), Decision::Deploy { round: 0, why: Why::SpecChanged, .. }));
    let synced = Inputs { wanted: Wanted { token: Some("t"), ..WANTED }, ..inputs(&three) };
    assert!(matches!(decide(&synced), Decision::Deploy { round: 0, why: Why::ResyncRequested, .. }));
}

#[test]
fn backoff_is_capped() {
    assert_eq!(RETRY.delay(1), Duration::from_secs(10));
    assert_eq!(RETRY.delay(3), Duration::from_secs(40));
    assert_eq!(RETRY.delay(30), Duration::from_secs(60));
}

#[test]
fn post_deploy_follows_a_successful_deploy_once_and_retries_with_backoff() {
    let base = deployed();
    let input = |status| Inputs { has_post_deploy: true, ..inputs(status) };
    let first = post_key(&base.history[0].job_name);
    assert_eq!(decide(&input(&base)), Decision::PostDeploy { key: first.clone(), attempt: 0 });
    let mut done = base.clone();
    done.history.insert(0, post(&base.history[0], 0, RunResult::Succeeded, 10));
    assert!(matches!(decide(&input(&done)), Decision::Nothing { .. }));
    let mut failed_once = base.clone();
    failed_once.history.insert(0, post(&base.history[0], 0, RunResult::Failed, 10));
    assert_eq!(decide(&input(&failed_once)), Decision::PostDeploy { key: first, attempt: 1 });
    let mut exhausted = base.clone();
    for attempt in 0..3 {
        exhausted.history.insert(0, post(&base.history[0], attempt, RunResult::Failed, 10));
    }
    assert_eq!(decide(&input(&exhausted)), Decision::Stalled { action: RunAction::PostDeploy, failures: 3 });
    // A spec edit after the deploy skips the old inputs' post-deploy and deploys the new ones.
    let edited = Inputs { wanted: Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, ..input(&base) };
    assert!(matches!(decide(&edited), Decision::Deploy { why: Why::SpecChanged, .. }));
}

#[test]
fn records_from_before_fingerprints_are_matched_by_job_name() {
    let mut legacy = deploy(WANTED, 0, RunResult::Succeeded, 0);
    legacy.inputs = None;
    legacy.generation = None;
    let status = status(vec![legacy]);
    assert!(matches!(decide(&inputs(&status)), Decision::Nothing { .. }));
    let edited = Inputs { wanted: Wanted { generation: 2, ..WANTED }, ..inputs(&status) };
    assert!(matches!(decide(&edited), Decision::Deploy { why: Why::SpecChanged, .. }));
}

fn deletion(status: &TerraformStatus) -> Deletion<'_> {
    Deletion {
        name: "tf",
        uid: "uid",
        skip_destroy: false,
        has_destroy_script: true,
        fingerprint: "fp1",
        status,
        now: at(100),
        retry: RETRY,
    }
}

fn destroy(round: u32, result: RunResult, done: i64) -> RunRecord {
    let name = job_name("tf", RunAction::Destroy, &destroy_key("uid", "sha256:a", "fp1"), round);
    run(RunAction::Destroy, name, WANTED, result, done)
}

#[test]
fn deletion_destroys_what_was_applied_with_backoff_then_releases() {
    let empty = TerraformStatus::default();
    assert_eq!(decide_deletion(&deletion(&empty)), Decision::Release(Release::NothingApplied));
    let base = deployed();
    let no_script = Deletion { has_destroy_script: false, ..deletion(&base) };
    assert_eq!(decide_deletion(&no_script), Decision::Release(Release::NoDestroyScript));
    assert_eq!(
        decide_deletion(&Deletion { skip_destroy: true, ..deletion(&base) }),
        Decision::Release(Release::SkipDestroy)
    );
    let key = destroy_key("uid", "sha256:a", "fp1");
    assert_eq!(decide_deletion(&deletion(&base)), Decision::Destroy { key: key.clone(), round: 0 });
    let with = |records: Vec<RunRecord>| {
        let mut status = base.clone();
        for record in records.into_iter().rev() {
            status.history.insert(0, record);
        }
        status
    };
    let busy = with(vec![destroy(0, RunResult::Running, 50)]);
    assert!(matches!(decide_deletion(&deletion(&busy)), Decision::Busy { action: RunAction::Destroy, .. }));
    let failed_once = with(vec![destroy(0, RunResult::Failed, 95)]);
    let backoff = Decision::Backoff { action: RunAction::Destroy, failures: 1, after: Duration::from_secs(5) };
    assert_eq!(decide_deletion(&deletion(&failed_once)), backoff);
    let retry = Deletion { now: at(200), ..deletion(&failed_once) };
    assert_eq!(decide_deletion(&retry), Decision::Destroy { key, round: 1 });
    let exhausted = with(vec![
        destroy(2, RunResult::Failed, 90),
        destroy(1, RunResult::Failed, 50),
        destroy(0, RunResult::Failed, 10),
    ]);
    assert_eq!(decide_deletion(&deletion(&exhausted)), Decision::Stalled { action: RunAction::Destroy, failures: 3 });
    let destroyed = with(vec![destroy(1, RunResult::Succeeded, 90), destroy(0, RunResult::Failed, 50)]);
    assert_eq!(decide_deletion(&deletion(&destroyed)), Decision::Release(Release::Destroyed));
}

#[test]
fn resume_after_the_drift_interval_waits_a_whole_interval_from_the_resume() {
    let mut status = deployed();
    let resumed = Wanted { generation: 3, ..WANTED };
    // Suspended for ten hours; resumed a minute ago.
    status.resumed_at = Some(Time(at(10 * 3600 - 60)));
    let input = Inputs { wanted: resumed, now: at(10 * 3600), ..inputs(&status) };
    assert_eq!(decide(&input), Decision::Nothing { recheck_after: Duration::from_secs(3540) });
    let later = Inputs { now: at(11 * 3600), ..input };
    assert!(matches!(decide(&later), Decision::Deploy { why: Why::Drift, .. }));
}

#[test]
fn removing_the_sync_annotation_runs_nothing() {
    let status = status(vec![deploy(Wanted { token: Some("t1"), ..WANTED }, 0, RunResult::Succeeded, 0)]);
    assert!(matches!(decide(&inputs(&status)), Decision::Nothing { .. }));
}

#[test]
fn a_destroy_stalled_on_a_broken_script_starts_over_once_the_spec_is_fixed() {
    let mut status = deployed();
    for round in 0..3 {
        status.history.insert(0, destroy(round, RunResult::Failed, 10 + i64::from(round)));
    }
    assert!(matches!(decide_deletion(&deletion(&status)), Decision::Stalled { .. }));
    let fixed = Deletion { fingerprint: "fp2", ..deletion(&status) };
    assert_eq!(decide_deletion(&fixed), Decision::Destroy { key: destroy_key("uid", "sha256:a", "fp2"), round: 0 });
}

#[test]
fn a_dependency_not_ready_holds_every_run_due_but_not_an_up_to_date_resource() {
    let waiting = Some("default/network: not Ready (Deploying)");
    let empty = TerraformStatus::default();
    let new = Inputs { waiting_for: waiting, ..inputs(&empty) };
    let held = Decision::WaitingForDependency { dependency: "default/network: not Ready (Deploying)".into() };
    assert_eq!(decide(&new), held, "a new resource waits");
    // The scan still happens first: only a run due waits.
    let unscanned = Inputs { wanted: Wanted { digest: None, ..WANTED }, ..new.clone() };
    assert_eq!(decide(&unscanned), Decision::Scan);
    let status = deployed();
    let up_to_date = Inputs { waiting_for: waiting, ..inputs(&status) };
    assert!(matches!(decide(&up_to_date), Decision::Nothing { .. }), "up to date stays up to date");
    let changed = Inputs { wanted: Wanted { generation: 2, fingerprint: "fp2", ..WANTED }, ..up_to_date.clone() };
    assert_eq!(decide(&changed), held, "a spec change waits");
    let drift = Inputs { now: at(3600), ..up_to_date.clone() };
    assert_eq!(decide(&drift), held, "drift correction waits");
    // Released: the change deploys.
    assert!(matches!(decide(&Inputs { waiting_for: None, ..changed }), Decision::Deploy { why: Why::SpecChanged, .. }));
    // A run going goes on.
    let running = status_with_running();
    assert!(matches!(decide(&Inputs { waiting_for: waiting, ..inputs(&running) }), Decision::Busy { .. }));
}

fn status_with_running() -> TerraformStatus {
    status(vec![deploy(WANTED, 0, RunResult::Running, 1)])
}

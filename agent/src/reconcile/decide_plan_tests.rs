//! The plan table: manual approval of new inputs, stale and rejected plans, empty plans,
//! drift detection and correction, requested plans.

use alustan_shared::{PlanCounts, PlanDecision, PlanStatus, PlanTrigger};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::runs::jobs::job_name;

use super::tests::{HOUR, WANTED, at, key};

const NEWER: Wanted<'static> = Wanted { generation: 2, fingerprint: "fp2", token: None, digest: Some("sha256:a") };
const MANUAL: Policy<'static> =
    Policy { plan_script: true, manual: true, drift: None, plan_token: None, approved: None, rejected: None };

fn inputs<'a>(status: &'a TerraformStatus, wanted: Wanted<'a>, policy: Policy<'a>) -> Inputs<'a> {
    Inputs { wanted, policy, ..super::tests::inputs(status) }
}

/// Round `round` of `action` of `wanted`'s inputs, finished at `done`.
fn run(action: RunAction, round: u32, wanted: Wanted<'_>, result: RunResult, done: i64) -> RunRecord {
    super::tests::run(action, job_name("tf", action, &key(wanted), round), wanted, result, done)
}

/// `status.plan` for plan run `record`: id `p{round}` with `changes` creates.
fn summary(record: &RunRecord, changes: i64, trigger: PlanTrigger) -> PlanStatus {
    PlanStatus {
        id: format!("p-{}", record.job_name),
        job_name: record.job_name.clone(),
        generation: record.generation.unwrap_or_default(),
        tag: None,
        digest: None,
        trigger,
        time: record.completion_time.clone().unwrap_or(Time(at(0))),
        counts: PlanCounts { create: changes, ..PlanCounts::default() },
        changes: Vec::new(),
        changes_omitted: 0,
        artifact_digest: None,
        artifact_secret: None,
        decision: if changes > 0 { PlanDecision::Pending } else { PlanDecision::NoChanges },
    }
}

/// WANTED deployed at t=0, then `later` (newest first), with `plan` as `status.plan`.
fn with(later: Vec<RunRecord>, plan: Option<PlanStatus>) -> TerraformStatus {
    let mut history = later;
    history.push(run(RunAction::Deploy, 0, WANTED, RunResult::Succeeded, 0));
    TerraformStatus { history, plan, ..TerraformStatus::default() }
}

#[test]
fn manual_approval_plans_new_inputs_and_waits_for_that_plan_id() {
    let fresh = with(Vec::new(), None);
    let decision = decide(&inputs(&fresh, NEWER, MANUAL));
    assert_eq!(decision, Decision::Plan { key: key(NEWER), round: 0, why: Why::SpecChanged });
    let planned = run(RunAction::Plan, 0, NEWER, RunResult::Succeeded, 50);
    let waiting = with(vec![planned.clone()], Some(summary(&planned, 2, PlanTrigger::Change)));
    let id = format!("p-{}", planned.job_name);
    assert_eq!(decide(&inputs(&waiting, NEWER, MANUAL)), Decision::AwaitingApproval { id: id.clone() });
    // An approval of another id approves nothing.
    let stale = Policy { approved: Some("p-old"), ..MANUAL };
    assert_eq!(decide(&inputs(&waiting, NEWER, stale)), Decision::AwaitingApproval { id: id.clone() });
    let approved = Policy { approved: Some(&id), ..MANUAL };
    assert_eq!(
        decide(&inputs(&waiting, NEWER, approved)),
        Decision::Deploy { key: key(NEWER), round: 0, why: Why::Approved, plan: Some(id.clone()) }
    );
    let rejected = Policy { rejected: Some(&id), ..MANUAL };
    assert_eq!(decide(&inputs(&waiting, NEWER, rejected)), Decision::PlanRejected { id });
}

#[test]
fn a_newer_spec_while_planned_supersedes_the_plan() {
    let planned = run(RunAction::Plan, 0, NEWER, RunResult::Succeeded, 50);
    let waiting = with(vec![planned.clone()], Some(summary(&planned, 2, PlanTrigger::Change)));
    let newest = Wanted { generation: 3, fingerprint: "fp3", ..NEWER };
    let approved_old = Policy { approved: Some("p-old"), ..MANUAL };
    assert_eq!(
        decide(&inputs(&waiting, newest, approved_old)),
        Decision::Plan { key: key(newest), round: 0, why: Why::SpecChanged }
    );
}

#[test]
fn an_empty_plan_is_applied_without_asking() {
    let planned = run(RunAction::Plan, 0, NEWER, RunResult::Succeeded, 50);
    let empty = with(vec![planned.clone()], Some(summary(&planned, 0, PlanTrigger::Change)));
    let id = format!("p-{}", planned.job_name);
    assert_eq!(
        decide(&inputs(&empty, NEWER, MANUAL)),
        Decision::Deploy { key: key(NEWER), round: 0, why: Why::SpecChanged, plan: Some(id) }
    );
}

#[test]
fn failed_plans_back_off_then_stall() {
    let failed = run(RunAction::Plan, 0, NEWER, RunResult::Failed, 95);
    let once = with(vec![failed], None);
    assert!(matches!(
        decide(&inputs(&once, NEWER, MANUAL)),
        Decision::Backoff { action: RunAction::Plan, failures: 1, .. }
    ));
    let thrice = with(
        vec![
            run(RunAction::Plan, 2, NEWER, RunResult::Failed, 95),
            run(RunAction::Plan, 1, NEWER, RunResult::Failed, 60),
            run(RunAction::Plan, 0, NEWER, RunResult::Failed, 30),
        ],
        None,
    );
    assert_eq!(decide(&inputs(&thrice, NEWER, MANUAL)), Decision::Stalled { action: RunAction::Plan, failures: 3 });
}

#[test]
fn a_failed_approved_apply_is_planned_again_never_re_applied() {
    let planned = run(RunAction::Plan, 0, NEWER, RunResult::Succeeded, 10);
    let failed = run(RunAction::Deploy, 0, NEWER, RunResult::Failed, 20);
    let status = with(vec![failed, planned.clone()], Some(summary(&planned, 1, PlanTrigger::Change)));
    let id = format!("p-{}", planned.job_name);
    let approved = Policy { approved: Some(&id), ..MANUAL };
    let later = Inputs { now: at(1000), ..inputs(&status, NEWER, approved) };
    assert_eq!(decide(&later), Decision::Plan { key: key(NEWER), round: 1, why: Why::Retry });
}

#[test]
fn with_a_plan_script_the_interval_plans_instead_of_deploying() {
    let status = with(Vec::new(), None);
    let due = Inputs { now: at(3600), ..inputs(&status, WANTED, Policy { manual: false, ..MANUAL }) };
    assert_eq!(decide(&due), Decision::Plan { key: key(WANTED), round: 0, why: Why::Drift });
    let off = Inputs { policy: Policy { drift: Some(DriftMode::Off), ..due.policy }, ..due.clone() };
    assert_eq!(decide(&off), Decision::Nothing { recheck_after: HOUR });
    // Without a plan script the interval re-deploys, as before plans existed.
    let legacy = Inputs { policy: Policy::default(), ..due };
    assert!(matches!(decide(&legacy), Decision::Deploy { why: Why::Drift, plan: None, .. }));
}

#[test]
fn a_drift_check_without_changes_counts_as_the_last_apply() {
    let check = run(RunAction::Plan, 0, WANTED, RunResult::Succeeded, 3600);
    let status = with(vec![check.clone()], Some(summary(&check, 0, PlanTrigger::Drift)));
    let policy = Policy { manual: false, ..MANUAL };
    let soon = Inputs { now: at(3700), ..inputs(&status, WANTED, policy) };
    assert_eq!(decide(&soon), Decision::Nothing { recheck_after: Duration::from_secs(3500) });
    let next = Inputs { now: at(7200), ..inputs(&status, WANTED, policy) };
    assert_eq!(decide(&next), Decision::Plan { key: key(WANTED), round: 1, why: Why::Drift });
}

#[test]
fn drift_is_corrected_detected_or_held_for_approval() {
    let check = run(RunAction::Plan, 0, WANTED, RunResult::Succeeded, 3600);
    let status = with(vec![check.clone()], Some(summary(&check, 3, PlanTrigger::Drift)));
    let id = format!("p-{}", check.job_name);
    let now = at(3700);
    let auto = Policy { manual: false, ..MANUAL };
    assert_eq!(
        decide(&Inputs { now, ..inputs(&status, WANTED, auto) }),
        Decision::Deploy { key: key(WANTED), round: 1, why: Why::Drift, plan: Some(id.clone()) }
    );
    let detect = Policy { drift: Some(DriftMode::Detect), ..auto };
    assert_eq!(
        decide(&Inputs { now, ..inputs(&status, WANTED, detect) }),
        Decision::Drifted { id: id.clone(), recheck_after: Duration::from_secs(3500) }
    );
    // Detected drift is applied once approved; under manual approval it waits for that.
    let detect_approved = Policy { approved: Some(&id), ..detect };
    assert!(matches!(
        decide(&Inputs { now, ..inputs(&status, WANTED, detect_approved) }),
        Decision::Deploy { why: Why::Approved, .. }
    ));
    assert_eq!(decide(&Inputs { now, ..inputs(&status, WANTED, MANUAL) }), Decision::AwaitingApproval { id });
}

#[test]
fn a_requested_plan_runs_once_per_token_and_never_applies_by_itself() {
    let status = with(Vec::new(), None);
    let requested = Policy { manual: false, plan_token: Some("t1"), ..MANUAL };
    assert_eq!(
        decide(&inputs(&status, WANTED, requested)),
        Decision::Plan { key: key(WANTED), round: 0, why: Why::PlanRequested }
    );
    let mut check = run(RunAction::Plan, 0, WANTED, RunResult::Succeeded, 50);
    check.trigger = Some(PlanTrigger::Request);
    let mut answered = with(vec![check.clone()], Some(summary(&check, 1, PlanTrigger::Request)));
    answered.last_handled_plan_at = Some("t1".into());
    let id = format!("p-{}", check.job_name);
    assert_eq!(decide(&inputs(&answered, WANTED, requested)), Decision::AwaitingApproval { id });
    // Without a plan script a plan request is nothing to act on.
    let no_script = Policy { plan_script: false, ..requested };
    assert!(matches!(decide(&inputs(&status, WANTED, no_script)), Decision::Nothing { .. }));
}

#[test]
fn a_running_plan_holds_every_other_run() {
    let planning = run(RunAction::Plan, 0, NEWER, RunResult::Running, 50);
    let status = with(vec![planning.clone()], None);
    let newest = Wanted { generation: 3, fingerprint: "fp3", ..NEWER };
    assert!(matches!(
        decide(&inputs(&status, newest, MANUAL)),
        Decision::Busy { action: RunAction::Plan, behind: Some(Why::SpecChanged), .. }
    ));
}

#[test]
fn a_rejected_plan_stays_rejected_even_if_approved_afterwards() {
    let planned = run(RunAction::Plan, 0, NEWER, RunResult::Succeeded, 50);
    let waiting = with(vec![planned.clone()], Some(summary(&planned, 2, PlanTrigger::Change)));
    let id = format!("p-{}", planned.job_name);
    let both = Policy { approved: Some(&id), rejected: Some(&id), ..MANUAL };
    assert_eq!(decide(&inputs(&waiting, NEWER, both)), Decision::PlanRejected { id });
}

#[test]
fn only_a_drift_check_corrects_by_itself_and_never_with_drift_off() {
    let check = run(RunAction::Plan, 0, WANTED, RunResult::Succeeded, 3600);
    let now = at(3700);
    let auto = Policy { manual: false, ..MANUAL };
    let requested = with(vec![check.clone()], Some(summary(&check, 1, PlanTrigger::Request)));
    let id = format!("p-{}", check.job_name);
    assert_eq!(
        decide(&Inputs { now, ..inputs(&requested, WANTED, auto) }),
        Decision::AwaitingApproval { id: id.clone() }
    );
    let drift = with(vec![check.clone()], Some(summary(&check, 1, PlanTrigger::Drift)));
    let off = Policy { drift: Some(DriftMode::Off), ..auto };
    assert_eq!(decide(&Inputs { now, ..inputs(&drift, WANTED, off) }), Decision::AwaitingApproval { id });
}

#[test]
fn failing_drift_checks_retry_then_wait_an_interval_instead_of_stalling() {
    let auto = Policy { manual: false, ..MANUAL };
    let failed = with(
        vec![
            run(RunAction::Plan, 2, WANTED, RunResult::Failed, 3640),
            run(RunAction::Plan, 1, WANTED, RunResult::Failed, 3620),
            run(RunAction::Plan, 0, WANTED, RunResult::Failed, 3600),
        ],
        None,
    );
    let soon = Inputs { now: at(3700), ..inputs(&failed, WANTED, auto) };
    assert_eq!(decide(&soon), Decision::Nothing { recheck_after: Duration::from_secs(3540) });
    let next = Inputs { now: at(7240), ..inputs(&failed, WANTED, auto) };
    assert_eq!(decide(&next), Decision::Plan { key: key(WANTED), round: 3, why: Why::Drift });
    // One failure: retried after the backoff, as any run.
    let once = with(vec![run(RunAction::Plan, 0, WANTED, RunResult::Failed, 3690)], None);
    let retry = Inputs { now: at(3695), ..inputs(&once, WANTED, auto) };
    assert!(matches!(decide(&retry), Decision::Backoff { action: RunAction::Plan, .. }));
}

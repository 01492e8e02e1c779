//! Status writes: the whole status by server-side apply with the agent's field manager
//! (forced, the agent owns status), skipped when nothing changed so an unchanged resource costs
//! no API write; kstatus conditions with `observedGeneration`; history capped at ten.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use alustan_shared::{RunRecord, State, Terraform, TerraformStatus, conditions, meta};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::error::Result;

/// Runs kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;
/// Longest `status.message`.
const MESSAGE_CHARS: usize = 2048;

/// Sets a condition, keeping `lastTransitionTime` when its status does not change.
pub fn set_condition(
    status: &mut TerraformStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    generation: i64,
) {
    let now = Time(jiff::Timestamp::now());
    let existing = status.conditions.iter_mut().find(|c| c.type_ == type_);
    let transition = match &existing {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => now,
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: Some(generation),
        last_transition_time: transition,
    };
    match existing {
        Some(c) => *c = condition,
        None => status.conditions.push(condition),
    }
}

/// How the resource stands, for the three kstatus conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Working on it (a Job runs or a retry is due), or waiting for a plan's approval: not
    /// done, for kstatus (Flux and Argo CD health checks must not call an unapplied generation
    /// done).
    Reconciling,
    /// Up to date.
    Ready,
    /// Given up until something changes.
    Stalled,
}

/// Sets `state`, `message`, `observedGeneration` and the conditions together.
pub fn summarize(
    status: &mut TerraformStatus,
    generation: i64,
    state: State,
    phase: Phase,
    reason: &str,
    message: &str,
) {
    let message: String = message.chars().take(MESSAGE_CHARS).collect();
    status.state = Some(state);
    status.message = Some(message.clone());
    status.observed_generation = Some(generation);
    let (ready, reconciling, stalled) = match phase {
        Phase::Reconciling => (conditions::FALSE, conditions::TRUE, conditions::FALSE),
        Phase::Ready => (conditions::TRUE, conditions::FALSE, conditions::FALSE),
        Phase::Stalled => (conditions::FALSE, conditions::FALSE, conditions::TRUE),
    };
    set_condition(status, conditions::READY, ready, reason, &message, generation);
    set_condition(status, conditions::RECONCILING, reconciling, reason, &message, generation);
    set_condition(status, conditions::STALLED, stalled, reason, &message, generation);
}

/// Adds a run at the head of the history, dropping the oldest beyond the limit.
pub fn push_run(status: &mut TerraformStatus, record: RunRecord) {
    status.history.retain(|r| r.job_name != record.job_name);
    status.history.insert(0, record);
    // The newest run of each action stays, whatever came after it: decisions read the last
    // deploy and post-deploy, which a row of drift plans must not push out.
    while status.history.len() > HISTORY_LIMIT {
        let history = &status.history;
        let droppable =
            (0..history.len()).rev().find(|&i| history[..i].iter().any(|newer| newer.action == history[i].action));
        match droppable {
            Some(index) => status.history.remove(index),
            None => status.history.remove(history.len() - 1),
        };
    }
}

/// The agent's own last status write per resource uid, kept until its watch delivers it: the
/// resourceVersion of the object the write was computed from, and the status written. A
/// reconcile woken by the run's Job (whose event often arrives before the status write's) would
/// otherwise start from the stale cached status and redo the run's start: a second Job create
/// (refused, 409) and a second status write.
pub type Written = Mutex<HashMap<String, (String, TerraformStatus)>>;

/// The status a reconcile starts from: the agent's last write when the cached object is still
/// the one that write was computed from, else the object's own status (and the remembered write
/// is dropped: the cache has caught up, or someone else changed the object since).
pub fn current(written: &Written, tf: &Terraform) -> TerraformStatus {
    let uid = tf.uid().unwrap_or_default();
    let version = tf.resource_version().unwrap_or_default();
    let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
    match written.get(&uid) {
        Some((from, status)) if *from == version => return status.clone(),
        Some(_) => {
            written.remove(&uid);
        }
        None => {}
    }
    tf.status.clone().unwrap_or_default()
}

/// Writes `status` unless it equals `before` (what [`current`] gave), remembering it for
/// [`current`].
pub async fn write(
    api: &Api<Terraform>,
    tf: &Terraform,
    written: &Written,
    before: &TerraformStatus,
    status: &TerraformStatus,
) -> Result<()> {
    if before == status {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": format!("{}/{}", alustan_shared::GROUP, alustan_shared::VERSION),
        "kind": "Terraform",
        "status": status,
    });
    api.patch_status(&tf.name_any(), &PatchParams::apply(meta::FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    let from = tf.resource_version().unwrap_or_default();
    written.lock().unwrap_or_else(PoisonError::into_inner).insert(tf.uid().unwrap_or_default(), (from, status.clone()));
    Ok(())
}

/// Drops the remembered write of `tf`'s resource once the watch delivers a version other than
/// the one the write was computed from (the write itself, or a later change): otherwise every
/// resource's last status would stay in memory twice until its next reconcile.
pub fn caught_up(written: &Written, tf: &Terraform) {
    let (Some(uid), Some(version)) = (tf.metadata.uid.as_deref(), tf.metadata.resource_version.as_deref()) else {
        return;
    };
    let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
    if written.get(uid).is_some_and(|(from, _)| from != version) {
        written.remove(uid);
    }
}

/// Forgets a deleted resource.
pub fn forget(written: &Written, uid: &str) {
    written.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
}

#[cfg(test)]
mod tests {
    use alustan_shared::{RunAction, RunResult};

    use super::*;

    #[test]
    fn conditions_keep_transition_time_when_unchanged() {
        let mut status = TerraformStatus::default();
        summarize(&mut status, 1, State::Completed, Phase::Ready, "Succeeded", "ok");
        let first = status.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        summarize(&mut status, 1, State::Completed, Phase::Ready, "Succeeded", "ok");
        assert_eq!(first, status);
        let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", Some(1)));
        summarize(&mut status, 2, State::Failed, Phase::Stalled, "RetriesExhausted", "no");
        assert_eq!(conditions::find(&status.conditions, conditions::STALLED).unwrap().status, "True");
        assert_eq!(status.conditions.len(), 3);
    }

    #[test]
    fn a_remembered_write_is_dropped_once_the_watch_delivers_another_version() {
        let at = |version: &str| -> Terraform {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
                "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": version},
                "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}}
            }))
            .unwrap()
        };
        let written = Written::default();
        let mine = TerraformStatus { message: Some("mine".into()), ..TerraformStatus::default() };
        written.lock().unwrap().insert("u".into(), ("7".into(), mine.clone()));
        // The version the write was computed from: the write has not arrived yet.
        caught_up(&written, &at("7"));
        assert_eq!(current(&written, &at("7")), mine);
        // The write (or a later change) arrived: nothing is kept twice any more.
        caught_up(&written, &at("8"));
        assert!(written.lock().unwrap().is_empty());
    }

    #[test]
    fn history_is_capped_newest_first() {
        let mut status = TerraformStatus::default();
        for i in 0..12 {
            push_run(&mut status, record(RunAction::Deploy, format!("j{i}"), RunResult::Running));
        }
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].job_name, "j11");
    }

    fn record(action: RunAction, job_name: String, result: RunResult) -> RunRecord {
        RunRecord {
            action,
            job_name,
            image: "i".into(),
            tag: None,
            start_time: Time(jiff::Timestamp::now()),
            completion_time: None,
            result,
            message: None,
            generation: None,
            digest: None,
            token: None,
            inputs: None,
            plan: None,
            trigger: None,
        }
    }

    #[test]
    fn a_row_of_plans_never_pushes_out_the_last_deploy() {
        let record = |action, name: String| record(action, name, RunResult::Succeeded);
        let mut status = TerraformStatus::default();
        push_run(&mut status, record(RunAction::Deploy, "deploy".into()));
        push_run(&mut status, record(RunAction::PostDeploy, "post".into()));
        for i in 0..25 {
            push_run(&mut status, record(RunAction::Plan, format!("plan-{i}")));
        }
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].job_name, "plan-24");
        let names: Vec<&str> = status.history.iter().map(|r| r.job_name.as_str()).collect();
        assert_eq!(names[HISTORY_LIMIT - 2..], ["post", "deploy"], "{names:?}");
    }
}

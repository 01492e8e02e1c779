//! Status writes: the whole status by server-side apply with the agent's field manager
//! (forced, the agent owns status), skipped when nothing changed so an unchanged resource costs
//! no API write; kstatus conditions with `observedGeneration`; history capped at ten.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use alustan_shared::{RunRecord, State, Terraform, TerraformStatus, conditions, meta};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
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

/// The agent's own last status write per resource uid, kept until a reconcile finds the cache
/// past it or [`prune`] drops it, not as soon as the watch delivers it: a reconcile can still
/// be handed an older object after that (the scale bench saw it: 11 of 2,000 runs started
/// twice when writes were dropped on delivery). A reconcile woken by the run's Job (whose event
/// often arrives before the status write's) would otherwise start from the stale cached status
/// and redo the run's start: a second Job create (refused, 409) and a second status write.
pub type Written = Mutex<HashMap<String, LastWrite>>;

/// A status the agent wrote and its [`Basis`]: a cached object at one of those versions is
/// older than this status; at any other version (the write itself, or a later change by
/// someone else, which carries this status too) the cache has caught up.
#[derive(Debug, Clone)]
pub struct LastWrite {
    older: Basis,
    version: String,
    status: TerraformStatus,
    at: std::time::Instant,
    /// The resource's namespace and name, to find it in the controller's cache.
    key: (String, String),
}

impl LastWrite {
    /// Whether an object at `version` is older than this write: one of its basis, or (when
    /// both parse as integers, as etcd's revisions do) a smaller number. The latter also
    /// covers someone else's change made between two of the agent's writes, and a re-list
    /// served from a lagging cache (`resourceVersion=0`) handing back an older object.
    fn predates(&self, version: &str) -> bool {
        self.older.contains(version)
            || matches!((version.parse::<u64>(), self.version.parse::<u64>()), (Ok(seen), Ok(mine)) if seen < mine)
    }
}

/// The resourceVersions that predate the status a pass works on: the cached object's, or,
/// when the pass started from the agent's own last write, that write's and all it built on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Basis(Vec<String>);

/// How many versions a [`Basis`] keeps (passes chaining writes on a cache that lags; the
/// oldest are dropped first).
const BASIS_VERSIONS: usize = 8;

impl Basis {
    fn contains(&self, version: &str) -> bool {
        self.0.iter().any(|known| known == version)
    }

    /// This basis and `version`, a write built on it.
    fn and(&self, version: String) -> Self {
        let mut versions = self.0.clone();
        versions.push(version);
        if versions.len() > BASIS_VERSIONS {
            versions.drain(..versions.len() - BASIS_VERSIONS);
        }
        Self(versions)
    }
}

/// The status a reconcile starts from, and its basis: the agent's last write while the cached
/// object predates it, else the object's own status (and the remembered write is dropped).
pub fn current(written: &Written, tf: &Terraform) -> (TerraformStatus, Basis) {
    let uid = tf.uid().unwrap_or_default();
    let version = tf.resource_version().unwrap_or_default();
    let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
    match written.get(&uid) {
        Some(last) if last.predates(&version) => {
            return (last.status.clone(), last.older.and(last.version.clone()));
        }
        Some(_) => {
            written.remove(&uid);
        }
        None => {}
    }
    (tf.status.clone().unwrap_or_default(), Basis(vec![version]))
}

/// Writes `status` unless it equals `before` (what [`current`] gave, on `basis`), remembering
/// it for [`current`]; `basis` then includes the write.
pub async fn write(
    api: &Api<Terraform>,
    tf: &Terraform,
    written: &Written,
    (before, basis): (&TerraformStatus, &mut Basis),
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
    let patched = api
        .patch_status(&tf.name_any(), &PatchParams::apply(meta::FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    *basis = remember(written, tf, basis, patched.resource_version().unwrap_or_default(), status.clone());
    Ok(())
}

/// Records that `status`, computed on `basis`, was written as resourceVersion `version`; the
/// basis of what builds on it.
fn remember(written: &Written, tf: &Terraform, basis: &Basis, version: String, status: TerraformStatus) -> Basis {
    tracing::debug!(version, older = ?basis, "status written");
    let key = (tf.namespace().unwrap_or_default(), tf.name_any());
    let last = LastWrite { older: basis.clone(), version: version.clone(), status, at: std::time::Instant::now(), key };
    written.lock().unwrap_or_else(PoisonError::into_inner).insert(tf.uid().unwrap_or_default(), last);
    basis.and(version)
}

/// Drops the writes made at least `ages.0` ago that the controller's `cache` has caught up
/// with (its object is at a version that does not predate the write, or is gone), and any
/// made `ages.1` ago (a version that does not parse, a watch that stopped): without this
/// every resource's last status would stay in memory twice until its next reconcile, an
/// interval later. A reconcile can be handed an older object shortly after the watch
/// delivered a newer one (the scale bench saw it, within a second), hence the margin; were it
/// later still, it would at worst try the same run's start again, find its Job and adopt it.
pub fn prune(written: &Written, cache: Option<&Store<Terraform>>, ages: (std::time::Duration, std::time::Duration)) {
    let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
    written.retain(|uid, last| {
        let age = last.at.elapsed();
        if age < ages.0 {
            return true;
        }
        if age >= ages.1 {
            return false;
        }
        let Some(cache) = cache else { return true };
        let cached = cache.get(&ObjectRef::new(&last.key.1).within(&last.key.0));
        cached.is_some_and(|tf| {
            tf.uid().as_deref() == Some(uid.as_str()) && last.predates(&tf.resource_version().unwrap_or_default())
        })
    });
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

    fn at(version: &str) -> Terraform {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": version},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}}
        }))
        .unwrap()
    }

    fn said(message: &str) -> TerraformStatus {
        TerraformStatus { message: Some(message.into()), ..TerraformStatus::default() }
    }

    #[test]
    fn a_remembered_write_is_dropped_once_the_cache_has_it() {
        let written = Written::default();
        let (_, basis) = current(&written, &at("7"));
        remember(&written, &at("7"), &basis, "8".into(), said("mine"));
        // The cache still holds the version the write was computed from (or a re-list gave
        // it back: paged lists are snapshots).
        assert_eq!(current(&written, &at("7")).0, said("mine"));
        assert_eq!(current(&written, &at("7")).0, said("mine"));
        // The write arrived: nothing is kept twice any more.
        assert_eq!(current(&written, &at("8")).0, TerraformStatus::default());
        assert!(written.lock().unwrap().is_empty());
    }

    #[test]
    fn writes_are_pruned_once_the_cache_has_them_or_when_old() {
        use std::time::Duration;
        let written = Written::default();
        remember(&written, &at("7"), &Basis::default(), "8".into(), said("mine"));
        let (reader, mut writer) = kube::runtime::reflector::store::<Terraform>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(at("8")));
        prune(&written, Some(&reader), (Duration::from_secs(60), Duration::from_secs(600)));
        assert_eq!(written.lock().unwrap().len(), 1, "a fresh write stays, whatever the cache holds");
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(at("7")));
        prune(&written, Some(&reader), (Duration::ZERO, Duration::from_secs(600)));
        assert_eq!(written.lock().unwrap().len(), 1, "the cache still predates the write");
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(at("8")));
        prune(&written, Some(&reader), (Duration::ZERO, Duration::from_secs(600)));
        assert!(written.lock().unwrap().is_empty(), "the cache has the write");
        remember(&written, &at("7"), &Basis::default(), "9".into(), said("again"));
        prune(&written, None, (Duration::ZERO, Duration::ZERO));
        assert!(written.lock().unwrap().is_empty(), "too old");
    }

    #[test]
    fn a_cached_object_numbered_below_the_write_predates_it_even_if_someone_else_wrote_it() {
        let written = Written::default();
        let (_, basis) = current(&written, &at("7"));
        let basis = remember(&written, &at("7"), &basis, "8".into(), said("deploying"));
        // A user's annotation lands as 9 (carrying "deploying"); the agent writes 10 on 8.
        remember(&written, &at("7"), &basis, "10".into(), said("deployed"));
        assert_eq!(current(&written, &at("9")).0, said("deployed"), "9 is older than the agent's 10");
        // A re-list from a lagging cache hands back 7 again.
        assert_eq!(current(&written, &at("7")).0, said("deployed"));
        assert_eq!(current(&written, &at("12")).0, TerraformStatus::default());
    }

    #[test]
    fn a_pass_building_on_a_write_keeps_every_version_before_it_older() {
        let written = Written::default();
        let (_, basis) = current(&written, &at("7"));
        remember(&written, &at("7"), &basis, "8".into(), said("deployed"));
        // The next pass starts while the cache still holds 7: it works on "deployed".
        let (status, basis) = current(&written, &at("7"));
        assert_eq!(status, said("deployed"));
        // The pass writes 9 on top of it.
        let basis = remember(&written, &at("7"), &basis, "9".into(), said("post-deploy started"));
        // A reconcile finding 8 in the cache must not redo the post-deploy's start.
        assert_eq!(current(&written, &at("8")).0, said("post-deploy started"));
        // The same pass writing again builds on 9.
        remember(&written, &at("7"), &basis, "10".into(), said("completed"));
        assert_eq!(current(&written, &at("9")).0, said("completed"));
        // Someone else's change (11, after ours) or our write itself ends it.
        assert_eq!(current(&written, &at("11")).0, TerraformStatus::default());
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

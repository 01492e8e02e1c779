//! What a sync request will really do, judged from what the cluster says now: the resource's
//! spec and status, and the agent's Lease. `sync`, `resync` and the TUI's confirmation all
//! ask here, so they never promise a run that cannot happen.

use alustan_shared::Terraform;
use alustan_shared::conditions::{self, STALLED, TRUE, reason};
use jiff::Timestamp;

use crate::agent::AgentHealth;

/// Why no run starts now for a request (it is still recorded: it runs once this is resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// `spec.suspend` is true.
    Suspended,
    /// The agent refused this generation's spec; its first line of explanation.
    InvalidSpec(String),
    /// No agent holds its Lease: the short health (`stale 16s`, `not found`).
    AgentDown(String),
}

impl Blocker {
    /// One sentence for `name`, saying what happens to the request and what to do.
    pub fn sentence(&self, name: &str) -> String {
        match self {
            Blocker::Suspended => format!(
                "it is suspended; the request is kept and runs once it is resumed (`kubectl alustan resume {name}`)"
            ),
            Blocker::InvalidSpec(why) => {
                format!("its spec is invalid ({why}); fix the spec: the agent acts on the change by itself")
            }
            Blocker::AgentDown(health) => format!(
                "the agent is not running (agent: {health}); the request waits until it is back (`kubectl alustan version` says more)"
            ),
        }
    }
}

/// The first reason no run can start now, if any. An agent whose health is unknown (not looked
/// up, not allowed, not reachable) does not block: it may well be up.
pub fn blocker(object: &Terraform, agent: &AgentHealth, now: Timestamp) -> Option<Blocker> {
    if object.spec.suspend {
        return Some(Blocker::Suspended);
    }
    if let Some(why) = invalid_spec(object) {
        return Some(Blocker::InvalidSpec(why));
    }
    agent_down(agent, now)
}

/// [`Blocker::AgentDown`] when the Lease says no agent runs (unknown health is not down).
pub fn agent_down(agent: &AgentHealth, now: Timestamp) -> Option<Blocker> {
    match agent {
        AgentHealth::Leader(leader) if !leader.is_up(now) => Some(Blocker::AgentDown(agent.short(now))),
        AgentHealth::NotFound { .. } => Some(Blocker::AgentDown("not found".to_owned())),
        _ => None,
    }
}

/// The agent's word that the CURRENT generation's spec is invalid (a later edit may fix it).
pub fn invalid_spec(object: &Terraform) -> Option<String> {
    let status = object.status.as_ref()?;
    let stalled = conditions::find(&status.conditions, STALLED)?;
    let current = object.metadata.generation.is_none_or(|g| stalled.observed_generation == Some(g));
    (stalled.status == TRUE && stalled.reason == reason::INVALID_SPEC && current)
        .then(|| stalled.message.lines().next().unwrap_or_default().to_owned())
}

/// The TUI's confirmation question for a sync (`resync`: rescan first).
pub fn question(key: &str, object: &Terraform, agent: &AgentHealth, now: Timestamp, resync: bool) -> String {
    let verb = if resync { "Resync" } else { "Sync" };
    let name = object.metadata.name.as_deref().unwrap_or_default();
    if let Some(blocker) = blocker(object, agent, now) {
        return format!("{verb} {key}? Nothing runs now: {}.", blocker.sentence(name));
    }
    let first = if resync { "The registry is rescanned, then a run starts" } else { "A run starts now" };
    match agent {
        AgentHealth::Leader(_) => format!("{verb} {key}? {first}."),
        _ => format!("{verb} {key}? {first} if the agent is running (its health is unknown: agent ?)."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Leader;
    use jiff::SignedDuration;

    const NOW: Timestamp = Timestamp::constant(1_768_046_400, 0);

    fn object(suspend: bool, stalled: Option<(&str, i64)>) -> Terraform {
        let conditions: Vec<serde_json::Value> = stalled
            .map(|(reason, generation)| {
                serde_json::json!({"type": "Stalled", "status": "True", "reason": reason,
                    "message": "postDeploy.args names TF_VAR_x, not in spec.variables\nmore",
                    "lastTransitionTime": "2026-01-10T11:00:00Z", "observedGeneration": generation})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": "web", "namespace": "apps", "generation": 2},
            "spec": {"scripts": {"deploy": "deploy"}, "suspend": suspend,
                     "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn lease(renewed_ago: i64) -> AgentHealth {
        AgentHealth::Leader(Leader {
            namespace: "alustan-system".into(),
            lease: "alustan-agent".into(),
            holder: Some("agent-0".into()),
            renewed: Some(NOW - SignedDuration::from_secs(renewed_ago)),
            duration: crate::agent::DEFAULT_LEASE_DURATION,
        })
    }

    #[test]
    fn a_suspended_resource_runs_nothing_and_says_how_to_resume() {
        let question = question("apps/web", &object(true, None), &lease(1), NOW, false);
        assert_eq!(
            question,
            "Sync apps/web? Nothing runs now: it is suspended; the request is kept and runs once it is resumed (`kubectl alustan resume web`)."
        );
    }

    #[test]
    fn an_invalid_spec_of_this_generation_blocks_but_an_older_one_does_not() {
        let invalid = object(false, Some((reason::INVALID_SPEC, 2)));
        assert_eq!(
            blocker(&invalid, &lease(1), NOW),
            Some(Blocker::InvalidSpec("postDeploy.args names TF_VAR_x, not in spec.variables".into()))
        );
        assert_eq!(blocker(&object(false, Some((reason::INVALID_SPEC, 1))), &lease(1), NOW), None);
        assert_eq!(blocker(&object(false, Some((reason::RETRIES_EXHAUSTED, 2))), &lease(1), NOW), None);
    }

    #[test]
    fn a_stale_or_missing_agent_blocks_an_unknown_one_is_said() {
        let fine = object(false, None);
        assert_eq!(blocker(&fine, &lease(16), NOW), Some(Blocker::AgentDown("stale 16s".into())));
        assert!(
            question("apps/web", &fine, &lease(16), NOW, false).contains("the agent is not running (agent: stale 16s)")
        );
        let missing = AgentHealth::NotFound { namespace: None };
        assert_eq!(blocker(&fine, &missing, NOW), Some(Blocker::AgentDown("not found".into())));
        assert_eq!(question("apps/web", &fine, &lease(1), NOW, false), "Sync apps/web? A run starts now.");
        assert_eq!(
            question("apps/web", &fine, &lease(1), NOW, true),
            "Resync apps/web? The registry is rescanned, then a run starts."
        );
        assert!(question("apps/web", &fine, &AgentHealth::Unknown, NOW, false).contains("its health is unknown"));
    }
}

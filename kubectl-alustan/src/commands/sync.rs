//! `sync NAME [--wait]` / `resync NAME [--wait]`: ask the agent for a run through annotations
//! (never the spec, which GitOps tools own), then optionally wait for the agent's echo
//! (`status.lastHandledReconcileAt`) and the end of that run, Flux-style.

use std::collections::HashSet;
use std::time::Duration;

use alustan_shared::conditions::{self, RECONCILING, TRUE};
use alustan_shared::meta::{PLAN_REQUESTED_AT, RESCAN_REQUESTED_AT, RESYNC_REQUESTED_AT};
use alustan_shared::{PlanTrigger, RunAction, RunRecord, RunResult, State, Terraform, TerraformStatus};
use futures::StreamExt as _;
use jiff::Timestamp;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

use super::{RESOURCE, key};
use crate::agent;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::outlook::{self, Blocker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sync,
    Resync,
    /// A plan (`kubectl alustan plan`): never applied until approved.
    Plan,
}

/// The annotations to set for a request; the token is an RFC 3339 time.
pub fn annotations(kind: Kind, token: &str) -> serde_json::Value {
    match kind {
        Kind::Sync => json!({ RESYNC_REQUESTED_AT: token }),
        Kind::Resync => json!({ RESCAN_REQUESTED_AT: token, RESYNC_REQUESTED_AT: token }),
        Kind::Plan => json!({ PLAN_REQUESTED_AT: token }),
    }
}

/// Sets the request annotations; returns the token the agent will echo.
pub async fn request(conn: &Connection, name: &str, kind: Kind) -> Result<String, CliError> {
    request_returning(conn, name, kind).await.map(|(token, _)| token)
}

pub(crate) async fn request_returning(
    conn: &Connection,
    name: &str,
    kind: Kind,
) -> Result<(String, Terraform), CliError> {
    let token = Timestamp::now().to_string();
    let object =
        super::merge_patch(conn, name, &json!({"metadata": {"annotations": annotations(kind, &token)}})).await?;
    Ok((token, object))
}

/// What the user asked: which request, and whether (and how long) to wait for its run.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub kind: Kind,
    pub wait: bool,
    pub timeout: Duration,
}

pub async fn run(
    conn: &Connection,
    name: &str,
    request: Request,
    agent_namespace: Option<&str>,
) -> Result<(), CliError> {
    let (token, before) = request_returning(conn, name, request.kind).await?;
    let what = match request.kind {
        Kind::Sync => "sync",
        Kind::Resync => "rescan and sync",
        Kind::Plan => "plan",
    };
    crate::outln!("terraform {}/{name}: {what} requested at {token}", conn.namespace);
    // Say at once when no run can follow; `--wait` then ends with that cause's exit code.
    if !runnable(conn, name, &before, request.wait, agent_namespace).await? {
        return Ok(());
    }
    if !request.wait {
        return Ok(());
    }
    let object = follow(conn, name, Goal::Sync(&token), agent_namespace, &before, request.timeout).await?;
    let state = ended_well(conn, name, &object)?;
    crate::outln!("terraform {}: run ended {}", key(&object), state.map_or("(no state)", State::as_str));
    Ok(())
}

/// The state a followed run ended in, or the error of a run that ended `Failed` or `Error`.
pub(crate) fn ended_well(conn: &Connection, name: &str, object: &Terraform) -> Result<Option<State>, CliError> {
    let state = object.status.as_ref().and_then(|s| s.state);
    let message = object.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    if let Some(failed @ (State::Failed | State::Error)) = state {
        // The agent's message names the logs command already; older agents' do not.
        let see = if message.contains("kubectl alustan logs") {
            String::new()
        } else {
            format!("\n  see: kubectl alustan logs {name} -n {}", conn.namespace)
        };
        return Err(CliError::RunFailed(format!("terraform {} run ended {failed}: {message}{see}", key(object))));
    }
    Ok(state)
}

/// Says at once when no run can follow a request made on `before`: `Ok(true)` when one can.
/// With `wait`, a blocked request is an error with that cause's exit code; without, a note.
pub(crate) async fn runnable(
    conn: &Connection,
    name: &str,
    before: &Terraform,
    wait: bool,
    agent_namespace: Option<&str>,
) -> Result<bool, CliError> {
    let agent = agent::health(&conn.client, agent_namespace).await;
    let Some(blocker) = outlook::blocker(before, &agent, Timestamp::now()) else { return Ok(true) };
    let text = format!("terraform {}: nothing runs now: {}", key(before), blocker.sentence(name));
    if wait {
        return Err(blocked(&blocker, text));
    }
    crate::errln!("note: {text}");
    Ok(false)
}

/// Follows the object until `goal` is reached (see [`Wait`]), within `timeout`.
pub(crate) async fn follow(
    conn: &Connection,
    name: &str,
    goal: Goal<'_>,
    agent_namespace: Option<&str>,
    before: &Terraform,
    timeout: Duration,
) -> Result<Terraform, CliError> {
    let wait = Wait { conn, name, goal, agent_namespace, before: before.status.clone().unwrap_or_default() };
    match tokio::time::timeout(timeout, wait.run()).await {
        Ok(result) => result,
        Err(_) => Err(CliError::Timeout(format!("{}s waiting for {}/{name}", timeout.as_secs(), conn.namespace))),
    }
}

/// The error (and so the exit code) of a request no run can follow.
fn blocked(blocker: &Blocker, text: String) -> CliError {
    match blocker {
        Blocker::Suspended => CliError::Suspended(text),
        Blocker::InvalidSpec(_) => CliError::InvalidSpec(text),
        Blocker::AgentDown(_) => CliError::AgentDown(text),
    }
}

/// What a `--wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal<'a> {
    /// The run answering the sync request `token`.
    Sync(&'a str),
    /// The plan run answering the plan request `token`.
    Plan(&'a str),
    /// The deploy applying the approved plan of this id.
    Apply(&'a str),
}

impl Goal<'_> {
    /// Whether the agent has acted on the request (a run answering it started).
    pub fn answered(&self, status: &TerraformStatus) -> bool {
        match self {
            Goal::Sync(token) => status.last_handled_reconcile_at.as_deref() == Some(*token),
            Goal::Plan(token) => status.last_handled_plan_at.as_deref() == Some(*token),
            Goal::Apply(id) => {
                status.history.iter().any(|r| r.action == RunAction::Deploy && r.plan.as_deref() == Some(*id))
            }
        }
    }

    /// Whether the agent has acted on the request and the run it started is over.
    pub fn finished(&self, object: &Terraform) -> bool {
        let Some(status) = &object.status else { return false };
        let reconciling = conditions::find(&status.conditions, RECONCILING).is_some_and(|c| c.status == TRUE);
        let settled = status.state != Some(State::Progressing) && !reconciling;
        match self {
            Goal::Sync(_) => self.answered(status) && settled,
            // A plan run is over once it failed, or succeeded and its summary is in status.
            Goal::Plan(_) => {
                self.answered(status)
                    && requested_plan(status).is_some_and(|run| match run.result {
                        RunResult::Running => false,
                        RunResult::Succeeded => status.plan.as_ref().is_some_and(|p| p.job_name == run.job_name),
                        RunResult::Failed | RunResult::Error => true,
                    })
            }
            // A newer plan superseding the approved one ends the wait too: nothing more comes.
            Goal::Apply(id) => (self.answered(status) && settled) || status.plan.as_ref().is_some_and(|p| p.id != *id),
        }
    }
}

/// The newest plan run a `plan` request started.
pub fn requested_plan(status: &TerraformStatus) -> Option<&RunRecord> {
    status.history.iter().find(|r| r.action == RunAction::Plan && r.trigger == Some(PlanTrigger::Request))
}

/// One progress line: state, Reconciling reason, message.
fn progress(object: &Terraform) -> String {
    let status = object.status.as_ref();
    let state = status.and_then(|s| s.state).map_or("Pending", State::as_str);
    let reason = status
        .and_then(|s| conditions::find(&s.conditions, RECONCILING))
        .filter(|c| c.status == TRUE)
        .map(|c| format!(" ({})", c.reason))
        .unwrap_or_default();
    let message = crate::tui::format::message(object);
    format!("{state}{reason}: {message}")
}

/// How often a `--wait` looks at the agent's Lease again (it may stop while we wait).
const AGENT_RECHECK: Duration = Duration::from_secs(5);

/// How long the end of a run waits for its log to finish printing.
const LOG_GRACE: Duration = Duration::from_secs(5);

/// One `--wait`: what it waits for and the status as it was when the request was made.
struct Wait<'a> {
    conn: &'a Connection,
    name: &'a str,
    goal: Goal<'a>,
    agent_namespace: Option<&'a str>,
    before: TerraformStatus,
}

impl Wait<'_> {
    /// Watches the one object until its goal is [`Goal::finished`], printing a line whenever
    /// the progress of THIS request changes and streaming the log of every run that appears
    /// meanwhile.
    async fn run(&self) -> Result<Terraform, CliError> {
        let mut logs = Vec::new();
        let result = self.watch(&mut logs).await;
        // Let the logs catch up with the end of their pods, briefly.
        for task in logs {
            let abort = task.abort_handle();
            if tokio::time::timeout(LOG_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        result
    }

    async fn watch(&self, logs: &mut Vec<tokio::task::JoinHandle<()>>) -> Result<Terraform, CliError> {
        let conn = self.conn;
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let stream = watcher(super::namespaced(conn), config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        // Runs already in the history are not this request's: only new ones get their log streamed.
        let mut known: HashSet<String> = self.before.history.iter().map(|r| r.job_name.clone()).collect();
        let mut last = String::new();
        let mut picked_up = false;
        let mut agent_check = tokio::time::interval(AGENT_RECHECK);
        agent_check.tick().await;
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = agent_check.tick() => {
                    let agent = agent::health(&conn.client, self.agent_namespace).await;
                    if let Some(blocker @ Blocker::AgentDown(_)) = outlook::agent_down(&agent, Timestamp::now()) {
                        let text = format!("terraform {}/{}: the run cannot go on: {}", conn.namespace, self.name, blocker.sentence(self.name));
                        return Err(blocked(&blocker, text));
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            let event = event.map_err(|e| CliError::Other(format!("watch {RESOURCE}: {e}")))?;
            let object = match event {
                watcher::Event::Apply(object) | watcher::Event::InitApply(object) => object,
                watcher::Event::Delete(_) => {
                    return Err(CliError::Other(format!(
                        "terraform {}/{} was deleted while waiting",
                        conn.namespace, self.name
                    )));
                }
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            let status = object.status.clone().unwrap_or_default();
            let new_runs: Vec<String> = status
                .history
                .iter()
                .filter(|r| known.insert(r.job_name.clone()))
                .map(|r| r.job_name.clone())
                .collect();
            // Until the agent answers, what status says is about an earlier run: not shown.
            picked_up = picked_up || !new_runs.is_empty() || self.goal.answered(&status) || status != self.before;
            if !picked_up {
                if object.spec.suspend {
                    let blocker = Blocker::Suspended;
                    let text = format!("terraform {}: nothing runs now: {}", key(&object), blocker.sentence(self.name));
                    return Err(blocked(&blocker, text));
                }
                continue;
            }
            if let Some(why) = outlook::invalid_spec(&object) {
                let blocker = Blocker::InvalidSpec(why);
                let text = format!("terraform {}: no run: {}", key(&object), blocker.sentence(self.name));
                return Err(blocked(&blocker, text));
            }
            for job in new_runs {
                let namespace = object.metadata.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
                logs.push(tokio::spawn(super::logs::follow_job(conn.clone(), namespace, job)));
            }
            let line = progress(&object);
            if line != last {
                crate::outln!("{} {line}", Timestamp::now().strftime("%H:%M:%S"));
                last = line;
            }
            if self.goal.finished(&object) {
                return Ok(object);
            }
        }
        Err(CliError::Other("the watch ended before the run did".into()))
    }
}

//! `sync NAME [--wait]` / `resync NAME [--wait]`: ask the agent for a run through annotations
//! (never the spec, which GitOps tools own), then optionally wait for the agent's echo
//! (`status.lastHandledReconcileAt`) and the end of that run, Flux-style.

use std::collections::HashSet;
use std::time::Duration;

use alustan_shared::conditions::{self, RECONCILING, TRUE};
use alustan_shared::meta::{RESCAN_REQUESTED_AT, RESYNC_REQUESTED_AT};
use alustan_shared::{State, Terraform};
use futures::StreamExt as _;
use jiff::Timestamp;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

use super::{RESOURCE, key};
use crate::errors::CliError;
use crate::kube_client::Connection;

/// `resync --wait` has no `--timeout` flag; it waits as long as `sync`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sync,
    Resync,
}

/// The annotations to set for a request; the token is an RFC 3339 time.
pub fn annotations(kind: Kind, token: &str) -> serde_json::Value {
    match kind {
        Kind::Sync => json!({ RESYNC_REQUESTED_AT: token }),
        Kind::Resync => json!({ RESCAN_REQUESTED_AT: token, RESYNC_REQUESTED_AT: token }),
    }
}

/// Sets the request annotations; returns the token the agent will echo.
pub async fn request(conn: &Connection, name: &str, kind: Kind) -> Result<String, CliError> {
    request_returning(conn, name, kind).await.map(|(token, _)| token)
}

async fn request_returning(conn: &Connection, name: &str, kind: Kind) -> Result<(String, Terraform), CliError> {
    let token = Timestamp::now().to_string();
    let object =
        super::merge_patch(conn, name, &json!({"metadata": {"annotations": annotations(kind, &token)}})).await?;
    Ok((token, object))
}

pub async fn run(conn: &Connection, name: &str, kind: Kind, wait: bool, timeout: Duration) -> Result<(), CliError> {
    let (token, before) = request_returning(conn, name, kind).await?;
    let what = if kind == Kind::Sync { "sync" } else { "rescan and sync" };
    println!("terraform {}/{name}: {what} requested at {token}", conn.namespace);
    if !wait {
        return Ok(());
    }
    // Runs already in the history are not this request's: only new ones get their log streamed.
    let known: HashSet<String> = before.status.iter().flat_map(|s| &s.history).map(|r| r.job_name.clone()).collect();
    let outcome = tokio::time::timeout(timeout, wait_for(conn, name, &token, known)).await;
    let Ok(result) = outcome else {
        return Err(CliError::Timeout(format!("{}s waiting for {}/{name}", timeout.as_secs(), conn.namespace)));
    };
    let object = result?;
    let state = object.status.as_ref().and_then(|s| s.state);
    let message = object.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    if let Some(failed @ (State::Failed | State::Error)) = state {
        return Err(CliError::RunFailed(format!(
            "terraform {} run ended {failed}: {message}\n  see: kubectl alustan logs {name} -n {}",
            key(&object),
            conn.namespace
        )));
    }
    println!("terraform {}: run ended {}", key(&object), state.map_or("(no state)", State::as_str));
    Ok(())
}

/// Whether the agent has handled `token` and the run it started is over.
pub fn finished(object: &Terraform, token: &str) -> bool {
    let Some(status) = &object.status else { return false };
    let reconciling = conditions::find(&status.conditions, RECONCILING).is_some_and(|c| c.status == TRUE);
    status.last_handled_reconcile_at.as_deref() == Some(token)
        && status.state != Some(State::Progressing)
        && !reconciling
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

/// Watches the one object until [`finished`], printing a line whenever its progress changes
/// and streaming the log of every run that appears meanwhile.
async fn wait_for(
    conn: &Connection,
    name: &str,
    token: &str,
    mut known: HashSet<String>,
) -> Result<Terraform, CliError> {
    let mut logs = Vec::new();
    let result = watch_until_finished(conn, name, token, &mut known, &mut logs).await;
    // Let the logs catch up with the end of their pods, briefly.
    for task in logs {
        let abort = task.abort_handle();
        if tokio::time::timeout(LOG_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
    result
}

/// How long the end of a run waits for its log to finish printing.
const LOG_GRACE: Duration = Duration::from_secs(5);

async fn watch_until_finished(
    conn: &Connection,
    name: &str,
    token: &str,
    known: &mut HashSet<String>,
    logs: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Terraform, CliError> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(super::namespaced(conn), config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut last = String::new();
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| CliError::Other(format!("watch {RESOURCE}: {e}")))?;
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                for run in object.status.iter().flat_map(|s| &s.history) {
                    if known.insert(run.job_name.clone()) {
                        let namespace = object.metadata.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
                        logs.push(tokio::spawn(super::logs::follow_job(conn.clone(), namespace, run.job_name.clone())));
                    }
                }
                let line = progress(&object);
                if line != last {
                    println!("{} {line}", Timestamp::now().strftime("%H:%M:%S"));
                    last = line;
                }
                if finished(&object, token) {
                    return Ok(object);
                }
            }
            watcher::Event::Delete(_) => {
                return Err(CliError::Other(format!("terraform {}/{name} was deleted while waiting", conn.namespace)));
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    Err(CliError::Other("the watch ended before the run did".into()))
}

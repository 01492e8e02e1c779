//! `plan NAME [--wait]`, `approve|reject NAME [--plan ID] [--wait]`, `show-plan NAME [-o]`:
//! plans through annotations (never the spec, which GitOps tools own), as `sync` asks for runs.
//! An approval or rejection names the plan id it was checked against, and is written only
//! while that plan is still the current one (the write is conditional on the object read).

use std::io::IsTerminal as _;
use std::time::Duration;

use alustan_shared::{PlanAction, PlanStatus, RunResult, Terraform};
use jiff::Timestamp;
use serde_json::json;

use super::key;
use super::sync::{self, Goal};
use crate::cli::DataFormat;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::plans::{self, Refusal, Verdict};

/// Whether (and how long) a command follows the run it asked for.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    pub wait: bool,
    pub timeout: Duration,
}

/// `plan NAME`: sets `alustan.io/plan-requested-at`; `--wait` follows that plan run and prints
/// what it found.
pub async fn request(
    conn: &Connection,
    name: &str,
    follow: Follow,
    agent_namespace: Option<&str>,
) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    if object.spec.scripts.plan.is_none() {
        return Err(Refusal::NoPlanScript { key: key(&object) }.into());
    }
    let (token, before) = sync::request_returning(conn, name, sync::Kind::Plan).await?;
    crate::outln!("terraform {}: plan requested at {token}", key(&before));
    if !sync::runnable(conn, name, &before, follow.wait, agent_namespace).await? || !follow.wait {
        return Ok(());
    }
    let object = sync::follow(conn, name, Goal::Plan(&token), agent_namespace, &before, follow.timeout).await?;
    let status = object.status.clone().unwrap_or_default();
    let run = sync::requested_plan(&status);
    if let Some(run) = run.filter(|r| matches!(r.result, RunResult::Failed | RunResult::Error)) {
        let message = run.message.as_deref().unwrap_or_default();
        return Err(CliError::RunFailed(format!(
            "terraform {} plan run {} ended {:?}: {message}\n  see: kubectl alustan logs {name} -n {}",
            key(&object),
            run.job_name,
            run.result,
            conn.namespace
        )));
    }
    match &status.plan {
        Some(plan) => print_plan(name, plan),
        None => crate::outln!("terraform {}: the plan run ended, but status has no plan", key(&object)),
    }
    Ok(())
}

/// Approves or rejects the current plan of `name` (it must be `wanted`, when given); returns
/// the plan written for. Shared by the command line and the TUI.
pub async fn decide(
    conn: &Connection,
    name: &str,
    verdict: Verdict,
    wanted: Option<&str>,
) -> Result<(Terraform, PlanStatus), CliError> {
    // The write carries the resourceVersion read: a plan that changed in between is checked
    // again (and a superseded one refused) rather than approved unseen.
    const ATTEMPTS: u32 = 3;
    for _ in 1..ATTEMPTS {
        if let Some(done) = decide_once(conn, name, verdict, wanted).await? {
            return Ok(done);
        }
        tracing::debug!(name, "the resource changed while deciding its plan; checking again");
    }
    decide_once(conn, name, verdict, wanted).await?.ok_or_else(|| {
        CliError::Other(format!(
            "terraform {}/{name} kept changing while writing the {}: try again",
            conn.namespace,
            verdict.verb()
        ))
    })
}

/// One read, check and conditional write; `None` when the object changed in between.
async fn decide_once(
    conn: &Connection,
    name: &str,
    verdict: Verdict,
    wanted: Option<&str>,
) -> Result<Option<(Terraform, PlanStatus)>, CliError> {
    let object = super::get(conn, name).await?;
    let plan = plans::check(&object, verdict, wanted)?.clone();
    let patch = json!({"metadata": {
        "resourceVersion": object.metadata.resource_version,
        "annotations": {verdict.annotation(): plan.id},
    }});
    Ok(super::merge_patch_unchanged(conn, name, &patch).await?.map(|written| (written, plan)))
}

/// `approve` / `reject NAME [--plan ID] [--wait]`.
pub async fn verdict(
    conn: &Connection,
    name: &str,
    verdict: Verdict,
    wanted: Option<&str>,
    follow: Follow,
    agent_namespace: Option<&str>,
) -> Result<(), CliError> {
    let (before, plan) = decide(conn, name, verdict, wanted).await?;
    crate::outln!("terraform {}: {} plan {}: {}", key(&before), verdict.past(), plan.id, plan.counts_text());
    if verdict == Verdict::Reject || !follow.wait {
        return Ok(());
    }
    if !sync::runnable(conn, name, &before, true, agent_namespace).await? {
        return Ok(());
    }
    let object = sync::follow(conn, name, Goal::Apply(&plan.id), agent_namespace, &before, follow.timeout).await?;
    let now_plan = object.status.as_ref().and_then(|s| s.plan.as_ref());
    if let Some(newer) = now_plan.filter(|p| p.id != plan.id) {
        return Err(CliError::RunFailed(format!(
            "terraform {}: plan {} was superseded by plan {} before it was applied; `kubectl alustan show-plan {name}` shows it",
            key(&object),
            plan.id,
            newer.id
        )));
    }
    let state = sync::ended_well(conn, name, &object)?;
    let state = state.map_or("(no state)", alustan_shared::State::as_str);
    crate::outln!("terraform {}: plan {} applied, run ended {state}", key(&object), plan.id);
    Ok(())
}

/// `show-plan NAME [-o json|yaml]`: the plan text, or `status.plan` itself.
pub async fn show(conn: &Connection, name: &str, output: Option<DataFormat>) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let plan = plans::current(&object)?;
    let encode = |e: String| CliError::Other(format!("encoding the plan: {e}"));
    match output {
        Some(DataFormat::Json) => {
            let text = serde_json::to_string_pretty(plan).map_err(|e| encode(e.to_string()))?;
            crate::outln!("{text}");
        }
        Some(DataFormat::Yaml) => crate::out!("{}", serde_yaml::to_string(plan).map_err(|e| encode(e.to_string()))?),
        None => print_plan(name, plan),
    }
    Ok(())
}

/// The plan's text, each changed address coloured by its action on a terminal.
fn print_plan(name: &str, plan: &PlanStatus) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for line in plans::lines(name, plan, Timestamp::now(), None) {
        match line.action.filter(|_| colour) {
            Some(action) => crate::outln!("\x1b[{}m{}\x1b[0m", ansi(action), line.text),
            None => crate::outln!("{}", line.text),
        }
    }
}

/// Terraform's colours: green create, yellow update, red delete, magenta replace.
fn ansi(action: PlanAction) -> u8 {
    match action {
        PlanAction::Create => 32,
        PlanAction::Update => 33,
        PlanAction::Delete => 31,
        PlanAction::Replace => 35,
    }
}

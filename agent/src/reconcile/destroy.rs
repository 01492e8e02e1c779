//! Deletion. With `scripts.destroy` set, its Job runs with the last applied digest and the
//! finalizer goes only after it succeeds (failures retry with backoff; the skip-destroy
//! annotation releases the resource and leaves the infrastructure). Without a destroy script,
//! or when nothing was ever applied, the resource is released at once: it never hangs.
//!
//! The kube-rs `finalizer` helper removes the finalizer when cleanup returns `Ok`, so waiting
//! for the destroy Job is the [`Error::DestroyPending`] "error".

use alustan_shared::{
    AppliedImage, RunAction, RunRecord, RunResult, State, Terraform, TerraformStatus, conditions::reason, meta,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::reconcile::event;
use crate::reconcile::status::{self, Phase, push_run, summarize};
use crate::runs::jobs::{RunSpec, job_name, round_of, run_key};
use crate::runs::observe::{self, Outcome};

#[allow(clippy::too_many_lines)] // one linear sequence of steps, clearer unsplit
pub async fn cleanup(tf: &Terraform, ctx: &Context) -> Result<Action> {
    if tf.annotations().get(meta::SKIP_DESTROY).is_some_and(|v| v == "true") {
        event(
            ctx,
            tf,
            EventType::Normal,
            "DestroySkipped",
            "Destroy",
            format!("{} is set: released without destroying", meta::SKIP_DESTROY),
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(script) = tf.spec.scripts.destroy.as_deref() else {
        return Ok(Action::await_change());
    };
    // A deploy still running would race the destroy: let it finish first, so its result and
    // the digest it applied are in status before destroying.
    let server = status::current(&ctx.written, tf);
    let mut synced = server.clone();
    crate::reconcile::sync_runs(tf, ctx, &mut synced).await?;
    if synced.history.iter().any(|r| r.result == RunResult::Running && r.action != RunAction::Destroy) {
        let message = "deleting: waiting for the running Job to finish before destroying";
        write_status(tf, ctx, &server, synced, State::Progressing, Phase::Reconciling, reason::DESTROYING, message)
            .await?;
        return Err(Error::DestroyPending);
    }
    let Some(applied) = synced.applied.clone() else {
        // Nothing was ever applied: nothing to destroy, release at once.
        return Ok(Action::await_change());
    };
    let name = tf.name_any();
    let namespace = tf.namespace().unwrap_or_default();
    let uid = tf.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let key = run_key(&uid, 0, &applied.digest, Some("destroy"));
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{}={name},{}=destroy", meta::LABEL_TERRAFORM, meta::LABEL_ACTION);
    let mut ours: Vec<(u32, Job)> = jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|job| round_of(&job.name_any(), &name, RunAction::Destroy, &key).map(|round| (round, job)))
        .collect();
    ours.sort_by_key(|(round, _)| *round);
    // Every destroy attempt is in status.history, kept up to date from its Job.
    for (_, job) in &ours {
        record_destroy(&mut synced, job, &applied, None);
    }
    let retry = ctx.retry();
    let next_round = match ours.last() {
        None => 0,
        Some((round, job)) => match observe::outcome(job) {
            Outcome::Running => {
                let message = format!("destroying {}", applied.tag);
                write_status(
                    tf,
                    ctx,
                    &server,
                    synced,
                    State::Progressing,
                    Phase::Reconciling,
                    reason::DESTROYING,
                    &message,
                )
                .await?;
                return Err(Error::DestroyPending);
            }
            Outcome::Succeeded { .. } => {
                let message = format!("destroyed {}; releasing the resource", applied.tag);
                write_status(
                    tf,
                    ctx,
                    &server,
                    synced,
                    State::Progressing,
                    Phase::Reconciling,
                    reason::DESTROYING,
                    &message,
                )
                .await?;
                event(
                    ctx,
                    tf,
                    EventType::Normal,
                    "Destroyed",
                    "Destroy",
                    format!("destroy of {} succeeded", applied.tag),
                )
                .await;
                return Ok(Action::await_change());
            }
            Outcome::Failed { at, message } => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let pod = observe::pod(&pods, &job.name_any()).await?;
                let detail = pod.as_ref().and_then(observe::termination).map_or(message, |(code, tail)| {
                    format!("exit code {code}: {}", crate::runs::outputs::log_tail(&tail))
                });
                record_destroy(&mut synced, job, &applied, Some(format!("destroy failed: {detail}")));
                let failures = round + 1;
                let message = format!(
                    "destroy failed ({failures} of {} attempts): {detail}. Set annotation {}=true to release the resource without destroying",
                    retry.attempts,
                    meta::SKIP_DESTROY
                );
                // Out of attempts: Stalled until the skip annotation (or a fixed destroy
                // script, deployed by hand) lets it go.
                let exhausted = failures >= retry.attempts;
                let phase = if exhausted { Phase::Stalled } else { Phase::Reconciling };
                write_status(tf, ctx, &server, synced.clone(), State::Error, phase, reason::SCRIPT_FAILED, &message)
                    .await?;
                let elapsed = at.map_or(std::time::Duration::ZERO, |t| {
                    jiff::Timestamp::now().duration_since(t.0).try_into().unwrap_or_default()
                });
                let retry_in = retry.delay(failures).checked_sub(elapsed).filter(|left| !left.is_zero());
                if exhausted || retry_in.is_some() {
                    event(ctx, tf, EventType::Warning, reason::SCRIPT_FAILED, "Destroy", message.clone()).await;
                    return Err(Error::DestroyFailed { message, retry_in: retry_in.filter(|_| !exhausted) });
                }
                round + 1
            }
        },
    };
    let run = RunSpec {
        action: RunAction::Destroy,
        name: job_name(&name, RunAction::Destroy, &key, next_round),
        script,
        extra_args: Vec::new(),
        image: &applied.image,
        tag: &applied.tag,
    };
    let job = crate::runs::jobs::build(tf, &run, &ctx.jobs)?;
    // Created before (a retried reconcile): adopt it.
    if crate::runs::start::create(ctx, &job).await? {
        ctx.metrics.job_started(crate::runs::jobs::action_label(RunAction::Destroy));
    }
    record_destroy(&mut synced, &job, &applied, None);
    let message = format!("destroying {}", applied.tag);
    event(ctx, tf, EventType::Normal, reason::DESTROYING, "Destroy", message.clone()).await;
    write_status(tf, ctx, &server, synced, State::Progressing, Phase::Reconciling, reason::DESTROYING, &message)
        .await?;
    Err(Error::DestroyPending)
}

/// Adds or updates the history record of a destroy Job: its result and times from the Job,
/// `message` when given (a record keeps the one it has otherwise).
fn record_destroy(status: &mut TerraformStatus, job: &Job, applied: &AppliedImage, message: Option<String>) {
    let (result, finished) = match observe::outcome(job) {
        Outcome::Running => (RunResult::Running, None),
        Outcome::Succeeded { at } => (RunResult::Succeeded, Some(at.unwrap_or_else(now))),
        Outcome::Failed { at, .. } => (RunResult::Failed, Some(at.unwrap_or_else(now))),
    };
    let message = message.map(|m| m.chars().take(1024).collect());
    let job_name = job.name_any();
    if let Some(record) = status.history.iter_mut().find(|r| r.job_name == job_name) {
        record.result = result;
        record.completion_time = finished.or_else(|| record.completion_time.take());
        if message.is_some() {
            record.message = message;
        }
        return;
    }
    let started = job.metadata.creation_timestamp.clone().unwrap_or_else(now);
    push_run(
        status,
        RunRecord {
            action: RunAction::Destroy,
            job_name,
            image: applied.image.clone(),
            tag: Some(applied.tag.clone()),
            start_time: started,
            completion_time: finished,
            result,
            message,
        },
    );
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

#[allow(clippy::too_many_arguments)] // private; every call passes the same first four
async fn write_status(
    tf: &Terraform,
    ctx: &Context,
    server: &TerraformStatus,
    mut status: TerraformStatus,
    state: State,
    phase: Phase,
    why: &str,
    message: &str,
) -> Result<()> {
    summarize(&mut status, tf.metadata.generation.unwrap_or_default(), state, phase, why, message);
    let api: Api<Terraform> = Api::namespaced(ctx.client.clone(), &tf.namespace().unwrap_or_default());
    status::write(&api, tf, &ctx.written, server, &status).await
}

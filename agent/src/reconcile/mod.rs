//! One reconcile of one `Terraform`: bring finished runs into status, scan the registry,
//! decide, start at most one Job, write status once.

pub mod backoff;
pub mod decide;
pub mod destroy;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alustan_shared::{
    AppliedImage, RegistryScan, RunAction, RunRecord, RunResult, State, Terraform, TerraformStatus, conditions,
    conditions::reason, meta,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource as _, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::reconcile::decide::{Decision, Inputs, decide};
use crate::registry::{
    ChosenImage, Constraint, DockerConfig, ImageRef, ScanError, ScanReport, ScanRequest, SecretSource, credentials_for,
};
use crate::runs::jobs::{self, RunSpec, action_label, job_name, post_key};
use crate::runs::observe::{self, Outcome};
use crate::runs::outputs::excerpt;
use backoff::Gate;
use status::{Phase, push_run, summarize};

pub async fn reconcile(tf: Arc<Terraform>, ctx: Arc<Context>) -> Result<Action> {
    // Counts the reconcile as in flight and times it, until dropped.
    let _timer = ctx.metrics.reconcile_started();
    let namespace = tf.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Terraform> = Api::namespaced(ctx.client.clone(), &namespace);
    let (uid, deleting) = (tf.uid().unwrap_or_default(), tf.metadata.deletion_timestamp.is_some());
    let result = finalizer(&api, meta::FINALIZER, tf, |event| async {
        match event {
            Finalizer::Apply(tf) => Box::pin(apply(&tf, &ctx)).await,
            Finalizer::Cleanup(tf) => Box::pin(crate::reconcile::destroy::cleanup(&tf, &ctx)).await,
        }
    })
    .await;
    if result.is_ok() {
        ctx.reconcile_errors.reset(&uid);
    }
    if deleting && result.is_ok() {
        status::forget(&ctx.written, &uid);
        ctx.scan_failures.clear(&uid);
    }
    result.map_err(|err| match err {
        kube::runtime::finalizer::Error::ApplyFailed(err) | kube::runtime::finalizer::Error::CleanupFailed(err) => err,
        other => Error::Finalizer(other.to_string()),
    })
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller calls
pub fn error_policy(tf: Arc<Terraform>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(err.metric_label());
    // Waiting for a destroy Job is not a failure; its watch wakes us.
    if matches!(err, Error::DestroyPending) {
        return Action::requeue(ctx.config.sync_interval.min(Duration::from_secs(60)));
    }
    // A failed destroy keeps its own schedule (its attempts' backoff); once they are used up,
    // the skip annotation (a watched change) is what releases the resource.
    if let Error::DestroyFailed { retry_in, .. } = err {
        return Action::requeue(retry_in.unwrap_or(ctx.config.sync_interval));
    }
    // Each failure in a row of the same resource waits longer (a success resets the count).
    let failures = ctx.reconcile_errors.bump(&tf.uid().unwrap_or_default());
    let delay = ctx.retry().delay(failures);
    tracing::warn!(
        name = %tf.name_any(),
        namespace = tf.namespace().unwrap_or_default(),
        reason = err.metric_label(),
        error = %err,
        failures,
        retry_in = %crate::reconcile::backoff::human(delay),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Publishes an Event; failing to is logged, never fatal.
pub async fn event(ctx: &Context, tf: &Terraform, type_: EventType, reason: &str, action: &str, note: String) {
    let event =
        Event { type_, reason: reason.into(), note: Some(excerpt_note(&note)), action: action.into(), secondary: None };
    if let Err(err) = ctx.recorder.publish(&event, &tf.object_ref(&())).await {
        tracing::warn!(name = %tf.name_any(), error = %err, "cannot publish event");
    }
}

fn excerpt_note(note: &str) -> String {
    note.chars().take(1000).collect()
}

/// The resync token: alustan's annotation, else Flux's.
pub fn resync_token(tf: &Terraform) -> Option<&str> {
    let annotations = tf.annotations();
    annotations
        .get(meta::RESYNC_REQUESTED_AT)
        .or_else(|| annotations.get(meta::FLUX_RECONCILE_REQUESTED_AT))
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}

fn drift_interval(tf: &Terraform, ctx: &Context) -> Result<Duration> {
    match &tf.spec.sync_interval {
        Some(text) => alustan_shared::duration::parse_duration(text)
            .map_err(|err| Error::InvalidSpec(format!("spec.syncInterval: {err}"))),
        None => Ok(ctx.config.sync_interval),
    }
}

async fn apply(tf: &Terraform, ctx: &Context) -> Result<Action> {
    let api: Api<Terraform> = Api::namespaced(ctx.client.clone(), &tf.namespace().unwrap_or_default());
    let before = status::current(&ctx.written, tf);
    let mut status = before.clone();
    let generation = tf.metadata.generation.unwrap_or_default();

    sync_runs(tf, ctx, &mut status).await?;
    let action = plan(tf, ctx, &mut status, generation).await;
    status::write(&api, tf, &ctx.written, &before, &status).await?;
    action
}

/// Starts what [`decide`] asks for; records it in `status`.
async fn plan(tf: &Terraform, ctx: &Context, status: &mut TerraformStatus, generation: i64) -> Result<Action> {
    if tf.spec.suspend {
        // Ready and state keep describing the last run; only "working on it" changes.
        let message = "suspended: no runs until spec.suspend is false";
        status.message = Some(message.into());
        status.observed_generation = Some(generation);
        status::set_condition(
            status,
            conditions::RECONCILING,
            conditions::FALSE,
            reason::SUSPENDED,
            message,
            generation,
        );
        return Ok(Action::await_change());
    }
    let drift = match drift_interval(tf, ctx) {
        Ok(drift) => drift,
        Err(err) => return Ok(spec_error(tf, ctx, status, generation, reason::INVALID_SPEC, &err.to_string()).await),
    };
    let uid = tf.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let trigger = backoff::Trigger { generation, rescan: tf.annotations().get(meta::RESCAN_REQUESTED_AT).cloned() };
    let last_failure = ctx.scan_failures.get(&uid);
    if let Gate::Wait(after) = backoff::gate(last_failure.as_ref(), &trigger, ctx.retry(), jiff::Timestamp::now()) {
        return Ok(Action::requeue(after));
    }
    let handled_rescan = status.last_handled_rescan_at.clone();
    let scanned = scan(tf, ctx, status, drift).await;
    ctx.metrics.registry_scanned(&scanned);
    let report = match scanned {
        Ok(report) => {
            ctx.scan_failures.clear(&uid);
            report
        }
        Err(err) if backoff::retried(&err) => {
            return Ok(registry_error(tf, ctx, status, generation, trigger, &err.to_string()).await);
        }
        Err(err) => return Ok(spec_error(tf, ctx, status, generation, reason::INVALID_SPEC, &err.to_string()).await),
    };
    let scanned = report.to_status();
    // A handled rescan request always shows its scan.
    let rescanned = status.last_handled_rescan_at != handled_rescan;
    if rescanned || !recorded_scan_holds(status.last_scan.as_ref(), &scanned, drift, jiff::Timestamp::now()) {
        status.last_scan = Some(scanned);
    }
    let chosen = match report.chosen() {
        Ok(chosen) => chosen.clone(),
        Err(err) => return Ok(spec_error(tf, ctx, status, generation, reason::REGISTRY_ERROR, &err.to_string()).await),
    };
    let token = resync_token(tf);
    let input = Inputs {
        name: &tf.name_any(),
        uid: &uid,
        generation,
        suspend: false,
        token,
        digest: &chosen.digest,
        has_post_deploy: tf.spec.post_deploy.is_some(),
        status,
        now: jiff::Timestamp::now(),
        drift_interval: drift,
        retry: ctx.retry(),
    };
    let decision = decide(&input);
    tracing::debug!(name = %tf.name_any(), decision = ?decision, "decided");
    act(tf, ctx, status, generation, decision, &chosen, token).await
}

/// Carries out a decision.
async fn act(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    generation: i64,
    decision: Decision,
    chosen: &ChosenImage,
    token: Option<&str>,
) -> Result<Action> {
    let sync = ctx.config.sync_interval;
    match decision {
        Decision::Nothing { recheck_after, .. } => {
            // The current inputs' runs succeeded: clear an Error left by a passing problem (a
            // registry outage, a Secret created late) that needed no new run.
            if !matches!(status.state, Some(State::Success | State::Completed)) {
                let state = if tf.spec.post_deploy.is_some() { State::Completed } else { State::Success };
                let message = format!("up to date: {} applied", chosen.tag);
                summarize(status, generation, state, Phase::Ready, reason::SUCCEEDED, &message);
            }
            Ok(Action::requeue(recheck_after.unwrap_or(sync).min(sync)))
        }
        Decision::Wait { after } => Ok(Action::requeue(after.unwrap_or(sync).min(sync))),
        Decision::Stalled { action, failures } => {
            let last = status.history.first().and_then(|r| r.message.clone()).unwrap_or_default();
            let message = format!(
                "{} failed {failures} times; giving up until the spec, the image or a resync request changes. Last failure: {last}",
                action_label(action)
            );
            if status.conditions.iter().all(|c| c.type_ != alustan_shared::conditions::STALLED || c.status != "True") {
                event(ctx, tf, EventType::Warning, reason::RETRIES_EXHAUSTED, "Run", message.clone()).await;
            }
            summarize(
                status,
                generation,
                status.state.unwrap_or(State::Failed),
                Phase::Stalled,
                reason::RETRIES_EXHAUSTED,
                &message,
            );
            Ok(Action::requeue(sync))
        }
        Decision::Deploy { key, round, why } => {
            let job = job_name(&tf.name_any(), RunAction::Deploy, &key, round);
            let run = RunSpec {
                action: RunAction::Deploy,
                name: job,
                script: &tf.spec.scripts.deploy,
                extra_args: Vec::new(),
                image: &chosen.reference,
                tag: &chosen.tag,
            };
            if let Some(token) = token {
                status.last_handled_reconcile_at = Some(token.to_owned());
            }
            let message = format!("deploying {} ({})", chosen.tag, why.as_str());
            if let Err(err) = start(tf, ctx, status, &run).await {
                return seal_conflict(tf, ctx, status, generation, err).await;
            }
            summarize(status, generation, State::Progressing, Phase::Reconciling, reason::DEPLOYING, &message);
            event(ctx, tf, EventType::Normal, reason::DEPLOYING, "Deploy", message).await;
            Ok(Action::requeue(sync))
        }
        Decision::PostDeploy { key, deploy_round, attempt } => {
            let Some(post) = &tf.spec.post_deploy else { return Ok(Action::requeue(sync)) };
            let args = match post_deploy_args(&post.args, &tf.spec.variables) {
                Ok(args) => args,
                Err(message) => {
                    return Ok(spec_error(tf, ctx, status, generation, reason::INVALID_SPEC, &message).await);
                }
            };
            let job = job_name(&tf.name_any(), RunAction::PostDeploy, &post_key(&key, deploy_round), attempt);
            let run = RunSpec {
                action: RunAction::PostDeploy,
                name: job,
                script: &post.script,
                extra_args: args,
                image: &chosen.reference,
                tag: &chosen.tag,
            };
            if let Err(err) = start(tf, ctx, status, &run).await {
                return seal_conflict(tf, ctx, status, generation, err).await;
            }
            let message = format!("running post-deploy {} of {}", post.script, chosen.tag);
            summarize(status, generation, State::Success, Phase::Reconciling, reason::POST_DEPLOYING, &message);
            event(ctx, tf, EventType::Normal, reason::POST_DEPLOYING, "PostDeploy", message).await;
            Ok(Action::requeue(sync))
        }
    }
}

/// `--name=value` in ascending order of name; value from the named variable.
pub fn post_deploy_args(
    args: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    args.iter()
        .map(|(name, variable)| match variables.get(variable) {
            Some(value) => Ok(format!("--{name}={value}")),
            None => {
                Err(format!("postDeploy.args.{name} names variable {variable}, which spec.variables does not define"))
            }
        })
        .collect()
}

/// Something only a change can fix: Error, Stalled, a Warning Event (once per message).
async fn spec_error(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    generation: i64,
    why: &str,
    message: &str,
) -> Action {
    if status.message.as_deref() != Some(message) || status.state != Some(State::Error) {
        event(ctx, tf, EventType::Warning, why, "Reconcile", message.to_owned()).await;
    }
    summarize(status, generation, State::Error, Phase::Stalled, why, message);
    Action::requeue(ctx.config.sync_interval)
}

/// A run that cannot start because a Secret of its seal's name is not the agent's: Error, a
/// Warning Event, and another try after `retry-base` (deleting the Secret is no watched change).
/// Every other error stays the reconcile's.
async fn seal_conflict(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    generation: i64,
    err: Error,
) -> Result<Action> {
    let Error::Seal(crate::runs::seal::SealError::Foreign(_)) = &err else { return Err(err) };
    let message = err.to_string();
    if status.message.as_deref() != Some(message.as_str()) {
        event(ctx, tf, EventType::Warning, reason::SEAL_CONFLICT, "Run", message.clone()).await;
    }
    summarize(status, generation, State::Error, Phase::Reconciling, reason::SEAL_CONFLICT, &message);
    Ok(Action::requeue(ctx.config.retry_base))
}

/// A scan failure a spec change did not cause: Error, a Warning Event, and the next scan after
/// a delay that grows with each failure in a row (see [`crate::reconcile::backoff`]).
async fn registry_error(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    generation: i64,
    trigger: backoff::Trigger,
    error: &str,
) -> Action {
    let retry = ctx.retry();
    let failure = ctx.scan_failures.record(&tf.uid().unwrap_or_default(), trigger, jiff::Timestamp::now());
    let delay = failure.delay(retry);
    let phase = if failure.stalled(retry) { Phase::Stalled } else { Phase::Reconciling };
    summarize(status, generation, State::Error, phase, reason::REGISTRY_ERROR, &failure.message(error, retry));
    // kube's recorder folds repeats (same type, reason and action) into one event series
    // counting them, keeping the first note: the status message has the current count.
    event(ctx, tf, EventType::Warning, reason::REGISTRY_ERROR, "Scan", error.to_owned()).await;
    Action::requeue(delay)
}

/// Whether `status.lastScan` may stay as it is after a scan found `scanned`: the same result
/// (everything but the time) from a scan younger than the sync interval. So a restarted agent,
/// whose first scans are new listings, rewrites no status; `lastScan.time` moves on once per
/// interval, with the periodic rescan.
fn recorded_scan_holds(
    recorded: Option<&RegistryScan>,
    scanned: &RegistryScan,
    interval: Duration,
    now: jiff::Timestamp,
) -> bool {
    let Some(recorded) = recorded else { return false };
    let fresh = jiff::SignedDuration::try_from(interval)
        .ok()
        .and_then(|interval| recorded.time.0.checked_add(interval).ok())
        .is_some_and(|due| due > now);
    fresh && RegistryScan { time: scanned.time.clone(), ..recorded.clone() } == *scanned
}

async fn scan(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    max_age: Duration,
) -> Result<ScanReport, ScanError> {
    let registry = &tf.spec.container_registry;
    let image = ImageRef::parse(&registry.image_name, registry.provider)?;
    let constraint = Constraint::parse(&registry.semantic_version)?;
    let resource_config = match &registry.secret_ref {
        Some(secret) => Some(read_docker_config(tf, ctx, &secret.name).await?),
        None => None,
    };
    let credentials = credentials_for(resource_config.as_ref(), ctx.docker_config.as_ref(), image.registry())?;
    let rescan = tf.annotations().get(meta::RESCAN_REQUESTED_AT).cloned();
    let force = rescan.is_some() && rescan != status.last_handled_rescan_at;
    let report = ctx
        .scanner
        .scan(ScanRequest { image: &image, credentials: &credentials, constraint: &constraint, max_age, force })
        .await?;
    if force {
        status.last_handled_rescan_at = rescan;
    }
    Ok(report)
}

async fn read_docker_config(tf: &Terraform, ctx: &Context, name: &str) -> Result<DockerConfig, ScanError> {
    let namespace = tf.namespace().unwrap_or_default();
    let source = SecretSource::SecretRef { namespace: namespace.clone(), name: name.to_owned() };
    let malformed = |reason: String| ScanError::MalformedSecret { secret: source.clone(), reason };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(malformed("the Secret does not exist".into())),
        Err(err) => return Err(malformed(format!("cannot read it: {err}"))),
    };
    let data = secret.data.unwrap_or_default();
    let bytes = data.get(".dockerconfigjson").ok_or_else(|| malformed("it has no .dockerconfigjson key".into()))?;
    DockerConfig::parse(source.clone(), &bytes.0)
}

/// Creates the run's Job (adopting one that already exists) and records it as running.
async fn start(tf: &Terraform, ctx: &Context, status: &mut TerraformStatus, run: &RunSpec<'_>) -> Result<()> {
    let job = jobs::build(tf, run, &ctx.jobs)?;
    // Same inputs, same name: a Job from before a restart is adopted, never doubled.
    if crate::runs::start::create(ctx, &job).await? {
        ctx.metrics.job_started(action_label(run.action));
        tracing::info!(name = %tf.name_any(), job = %run.name, action = action_label(run.action), "started run");
    } else {
        tracing::info!(name = %tf.name_any(), job = %run.name, action = action_label(run.action), "adopted the run's existing Job");
    }
    push_run(
        status,
        RunRecord {
            action: run.action,
            job_name: run.name.clone(),
            image: run.image.to_owned(),
            tag: Some(run.tag.to_owned()),
            start_time: Time(jiff::Timestamp::now()),
            completion_time: None,
            result: RunResult::Running,
            message: None,
        },
    );
    Ok(())
}

/// Brings running history records up to date from their Jobs; applies results.
pub(crate) async fn sync_runs(tf: &Terraform, ctx: &Context, status: &mut TerraformStatus) -> Result<()> {
    let namespace = tf.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let running: Vec<(usize, RunRecord)> = status
        .history
        .iter()
        .enumerate()
        .filter(|(_, r)| r.result == RunResult::Running && r.action != RunAction::Destroy)
        .map(|(i, r)| (i, r.clone()))
        .collect();
    for (index, record) in running {
        let outcome = match jobs.get_opt(&record.job_name).await? {
            Some(job) => observe::outcome(&job),
            None => Outcome::Failed { at: None, message: "the Job disappeared before it finished".into() },
        };
        let generation = tf.metadata.generation.unwrap_or_default();
        match outcome {
            Outcome::Running => {}
            Outcome::Failed { at, message } => {
                ctx.metrics.job_finished(action_label(record.action), "failed");
                let pod = observe::pod(&pods, &record.job_name).await?;
                let detail = pod.as_ref().and_then(observe::termination).map_or(message, |(code, tail)| {
                    format!("exit code {code}: {}", crate::runs::outputs::log_tail(&tail))
                });
                let text = format!("{} failed ({}): {detail}", action_label(record.action), record.job_name);
                finish(status, index, RunResult::Failed, at, &text);
                summarize(status, generation, State::Failed, Phase::Reconciling, reason::SCRIPT_FAILED, &text);
                event(ctx, tf, EventType::Warning, reason::SCRIPT_FAILED, "Run", text).await;
            }
            Outcome::Succeeded { at } => {
                ctx.metrics.job_finished(action_label(record.action), "succeeded");
                let collected = match observe::pod(&pods, &record.job_name).await? {
                    Some(pod) => {
                        let _slot = ctx.pad_slots.acquire().await.map_err(|_| Error::ShuttingDown)?;
                        observe::collect_log(&pods, &secrets, &pod.name_any(), &record.job_name).await?
                    }
                    None => crate::runs::outputs::Collected::default(),
                };
                succeeded(tf, ctx, status, index, &record, at, collected, generation).await?;
            }
        }
    }
    Ok(())
}

fn finish(status: &mut TerraformStatus, index: usize, result: RunResult, at: Option<Time>, message: &str) {
    if let Some(record) = status.history.get_mut(index) {
        record.result = result;
        record.completion_time = Some(at.unwrap_or_else(|| Time(jiff::Timestamp::now())));
        record.message = Some(message.chars().take(1024).collect());
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
async fn succeeded(
    tf: &Terraform,
    ctx: &Context,
    status: &mut TerraformStatus,
    index: usize,
    record: &RunRecord,
    at: Option<Time>,
    collected: crate::runs::outputs::Collected,
    generation: i64,
) -> Result<()> {
    let fail = |status: &mut TerraformStatus, text: String| {
        finish(status, index, RunResult::Failed, at.clone(), &text);
        summarize(status, generation, State::Failed, Phase::Reconciling, reason::SCRIPT_FAILED, &text);
        text
    };
    match record.action {
        RunAction::Deploy => {
            if let Some(err) = collected.error {
                let text = fail(status, format!("deploy succeeded but its outputs cannot be read: {err}"));
                event(ctx, tf, EventType::Warning, reason::SCRIPT_FAILED, "Deploy", text).await;
                return Ok(());
            }
            status.sensitive_outputs_secret = write_sensitive(tf, ctx, &collected.outputs.sensitive).await?;
            status.output = collected.outputs.plain;
            status.ingress_urls = crate::runs::gather::ingress_urls(&ctx.client).await;
            status.credentials = crate::runs::gather::credentials(&ctx.client, &ctx.credential_sources).await;
            let digest = record.image.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
            let tag = record.tag.clone().unwrap_or_default();
            status.applied = Some(AppliedImage {
                image: record.image.clone(),
                tag: tag.clone(),
                digest,
                applied_at: Some(at.clone().unwrap_or_else(|| Time(jiff::Timestamp::now()))),
            });
            finish(status, index, RunResult::Succeeded, at, "deploy succeeded");
            let message = format!("deployed {tag}");
            let phase = if tf.spec.post_deploy.is_some() { Phase::Reconciling } else { Phase::Ready };
            summarize(status, generation, State::Success, phase, reason::SUCCEEDED, &message);
            event(ctx, tf, EventType::Normal, reason::SUCCEEDED, "Deploy", message).await;
        }
        RunAction::PostDeploy => {
            if let Some(value) = collected.post_deploy {
                status.post_deploy_output = Some(value);
                finish(status, index, RunResult::Succeeded, at, "post-deploy succeeded");
                let message = format!("deployed {} and ran post-deploy", record.tag.as_deref().unwrap_or_default());
                summarize(status, generation, State::Completed, Phase::Ready, reason::SUCCEEDED, &message);
                event(ctx, tf, EventType::Normal, reason::SUCCEEDED, "PostDeploy", message).await;
            } else {
                let detail = collected.json_error.unwrap_or_else(|| "it printed no JSON object".into());
                let text =
                    fail(status, format!("post-deploy printed no JSON with a top-level `outputs` key: {detail}"));
                event(ctx, tf, EventType::Warning, reason::SCRIPT_FAILED, "PostDeploy", text).await;
            }
        }
        RunAction::Destroy => {}
    }
    Ok(())
}

/// The Secret holding sensitive outputs (owned by the resource); `None` when there are none.
async fn write_sensitive(
    tf: &Terraform,
    ctx: &Context,
    sensitive: &BTreeMap<String, serde_json::Value>,
) -> Result<Option<String>> {
    if sensitive.is_empty() {
        return Ok(None);
    }
    let name = format!("{}-outputs", tf.name_any());
    let data = sensitive
        .iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), ByteString(text.into_bytes()))
        })
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: tf.namespace(),
            owner_references: tf.controller_owner_ref(&()).map(|o| vec![o]),
            labels: Some(BTreeMap::from([
                (meta::LABEL_MANAGED_BY.to_owned(), meta::MANAGED_BY_VALUE.to_owned()),
                (meta::LABEL_TERRAFORM.to_owned(), tf.name_any()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &tf.namespace().unwrap_or_default());
    api.patch(&name, &PatchParams::apply(meta::FIELD_MANAGER).force(), &Patch::Apply(&secret)).await?;
    Ok(Some(name))
}

/// The excerpt helper re-exported for the finalizer's messages.
pub fn short(text: &str) -> String {
    excerpt(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_annotations(annotations: &[(&str, &str)]) -> Terraform {
        let mut tf: Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "t"},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}}
        }))
        .unwrap();
        tf.metadata.annotations = Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        tf
    }

    #[test]
    fn resync_token_prefers_alustan_then_flux() {
        assert_eq!(resync_token(&with_annotations(&[])), None);
        assert_eq!(resync_token(&with_annotations(&[(meta::FLUX_RECONCILE_REQUESTED_AT, "f1")])), Some("f1"));
        let both = with_annotations(&[(meta::FLUX_RECONCILE_REQUESTED_AT, "f1"), (meta::RESYNC_REQUESTED_AT, "a1")]);
        assert_eq!(resync_token(&both), Some("a1"));
        assert_eq!(resync_token(&with_annotations(&[(meta::RESYNC_REQUESTED_AT, "")])), None);
    }

    fn scan_at(time: &str, digest: &str) -> RegistryScan {
        RegistryScan {
            time: Time(time.parse().unwrap()),
            image: "registry.example/infra".into(),
            constraint: "^1".into(),
            tag_count: 2,
            matching_count: 2,
            newest_matching: vec!["v1.1.0".into()],
            rejected: Vec::new(),
            selected_tag: Some("v1.1.0".into()),
            selected_digest: Some(digest.into()),
        }
    }

    #[test]
    fn a_recorded_scan_holds_while_fresh_and_equal_but_for_its_time() {
        let hour = Duration::from_secs(3600);
        let recorded = scan_at("2025-01-01T10:00:00Z", "sha256:a");
        let now: jiff::Timestamp = "2025-01-01T10:30:00Z".parse().unwrap();
        let later = scan_at("2025-01-01T10:29:00Z", "sha256:a");
        assert!(recorded_scan_holds(Some(&recorded), &later, hour, now));
        // A different result, an interval gone by, or nothing recorded: the new scan is written.
        assert!(!recorded_scan_holds(Some(&recorded), &scan_at("2025-01-01T10:29:00Z", "sha256:b"), hour, now));
        let next_interval: jiff::Timestamp = "2025-01-01T11:00:01Z".parse().unwrap();
        assert!(!recorded_scan_holds(Some(&recorded), &later, hour, next_interval));
        assert!(!recorded_scan_holds(None, &later, hour, now));
    }

    #[test]
    fn post_deploy_args_are_sorted_by_name_and_need_their_variable() {
        let args =
            BTreeMap::from([("workspace".into(), "TF_VAR_ws".into()), ("region".into(), "TF_VAR_region".into())]);
        let vars = BTreeMap::from([("TF_VAR_ws".into(), "staging".into()), ("TF_VAR_region".into(), "eu".into())]);
        assert_eq!(post_deploy_args(&args, &vars).unwrap(), ["--region=eu", "--workspace=staging"]);
        let missing = post_deploy_args(&args, &BTreeMap::new()).unwrap_err();
        assert!(missing.contains("postDeploy.args.region names variable TF_VAR_region"), "{missing}");
    }
}

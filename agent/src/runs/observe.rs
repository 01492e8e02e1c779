//! A Job's outcome and its log, read from the API (never polled: the Job watch wakes the
//! reconcile that calls this).

use alustan_shared::meta;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ListParams, LogParams};

use crate::error::Result;
use crate::runs::outputs::{Collected, LogCollector, PLAN_BLOCK_BYTES, collect_with};
use crate::runs::seal::{Pad, SealError};

/// How a Job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Running,
    Succeeded {
        at: Option<Time>,
    },
    /// `message`: the container's termination message (the log tail, as
    /// `FallbackToLogsOnError` makes it) or the Job's failure reason.
    Failed {
        at: Option<Time>,
        message: String,
    },
}

pub fn outcome(job: &Job) -> Outcome {
    let Some(status) = &job.status else { return Outcome::Running };
    let finished = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    match finished {
        None => Outcome::Running,
        Some(c) if c.type_ == "Complete" => {
            Outcome::Succeeded { at: status.completion_time.clone().or(c.last_transition_time.clone()) }
        }
        Some(c) => Outcome::Failed {
            at: c.last_transition_time.clone(),
            message: [c.reason.as_deref(), c.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": "),
        },
    }
}

/// Strips a Job to what [`outcome`] and the controller's owner mapping read (its metadata
/// without labels, annotations and managedFields; its status): what the Jobs' watch passes on.
pub fn keep_outcome_only(job: &mut Job) {
    job.spec = None;
    job.metadata.managed_fields = None;
    job.metadata.annotations = None;
    job.metadata.labels = None;
}

/// The Job's Pod (the newest, should there be several).
pub async fn pod(pods: &Api<Pod>, job: &str) -> Result<Option<Pod>> {
    let mut list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await?.items;
    list.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
    Ok(list.pop())
}

/// Whether a Pod of Job `job` still runs (or is still being stopped).
pub async fn pod_active(pods: &Api<Pod>, job: &str) -> Result<bool> {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await?.items;
    Ok(list.iter().any(running))
}

/// A Pod that is pending, running, or terminating (its containers may still be working).
pub fn running(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase, Some("Succeeded" | "Failed"))
        || matches!(phase, None | Some("Pending" | "Running" | "Unknown"))
}

/// The exit code and termination message of the Pod's container.
pub fn termination(pod: &Pod) -> Option<(i32, String)> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let terminated = status.state.as_ref()?.terminated.as_ref()?;
    Some((terminated.exit_code, terminated.message.clone().unwrap_or_default()))
}

/// Streams the Pod's log through a [`crate::runs::outputs::LogCollector`] (bounded memory, long
/// lines cut: see [`crate::runs::log_lines`]) and unseals its outputs block with the Job's pad:
/// `known` (expanded from its seed kept in memory) or read from its seal Secret.
/// `plan`: the Job is a plan run, whose block is its plan bundle (left in
/// [`Collected::bundle`], unparsed).
pub async fn collect_log(
    pods: &Api<Pod>,
    secrets: &Api<Secret>,
    (pod, job): (&str, &str),
    known: Option<std::result::Result<Pad, SealError>>,
    plan: bool,
) -> Result<Collected> {
    let stream = pods.log_stream(pod, &LogParams::default()).await?;
    let collector = if plan { LogCollector::with_block_limit(job, PLAN_BLOCK_BYTES) } else { LogCollector::new(job) };
    let mut collected = collect_with(Box::pin(stream), collector).await.map_err(kube::Error::ReadEvents)?.collected;
    if collected.sealed.is_some() {
        let name = meta::seal_secret_name(job);
        // A pad that is gone fails the run (nothing can read its outputs any more); an API
        // error is the reconcile's, retried.
        let pad = match known {
            Some(pad) => pad,
            None => match secrets.get_opt(&name).await? {
                Some(secret) => Pad::from_secret(&secret),
                None => Err(SealError::SecretMissing(name)),
            },
        };
        if plan { collected.unseal_bundle(pad) } else { collected.unseal(pad) }
    }
    Ok(collected)
}

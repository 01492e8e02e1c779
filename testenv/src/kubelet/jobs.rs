//! The Job controller half: for each batch/v1 Job, one Pod at a time from its template (labels
//! `job-name`, `controller-uid` and their `batch.kubernetes.io/` forms, a controller
//! ownerReference), counting succeeded/failed Pods into `status`, honouring `backoffLimit`,
//! `activeDeadlineSeconds` (kills the Pods, reason `DeadlineExceeded`) and
//! `ttlSecondsAfterFinished` (deletes the finished Job; garbage collection removes its Pods).
//! Kubernetes docs: "Jobs" (pod backoff failure policy, job termination and cleanup, TTL).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use super::{KubeletError, KubeletOptions};

struct Context {
    client: kube::Client,
    options: Arc<KubeletOptions>,
}

pub async fn run(client: kube::Client, options: Arc<KubeletOptions>) {
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let context = Arc::new(Context { client, options });
    Controller::new(jobs, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .run(reconcile, on_error, context)
        .for_each(|_| async {})
        .await;
}

fn on_error(_: Arc<Job>, error: &KubeletError, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "job controller: reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(job: Arc<Job>, context: Arc<Context>) -> Result<Action, KubeletError> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_else(|| "default".to_owned());
    let name = job.name_any();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(context.client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let status = job.status.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    // Whole seconds, as Kubernetes serialises times: keeps the status comparison stable.
    let now = Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| Timestamp::now());

    if let Some(finished_at) = finished_at(&job) {
        let Some(ttl) = spec.ttl_seconds_after_finished else { return Ok(Action::await_change()) };
        let expires = finished_at + jiff::SignedDuration::from_secs(i64::from(ttl));
        if expires <= now {
            let params =
                DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
            jobs.delete(&name, &params).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(unsigned(expires.duration_since(now))));
    }

    let owned = pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}"))).await?;
    let phase = |pod: &Pod| pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".to_owned());
    let active: Vec<&Pod> = owned
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
        .collect();
    let succeeded = owned.items.iter().filter(|p| phase(p) == "Succeeded").count();
    let failed = owned.items.iter().filter(|p| phase(p) == "Failed").count();
    let completions = usize::try_from(spec.completions.unwrap_or(1)).unwrap_or(1);
    let backoff_limit = usize::try_from(spec.backoff_limit.unwrap_or(6)).unwrap_or(6);
    let start_time = status.start_time.as_ref().map_or(now, |t| t.0);
    let stamp = now.to_string();
    let deadline = spec.active_deadline_seconds.map(|s| start_time + jiff::SignedDuration::from_secs(s));

    let mut fields = json!({
        "startTime": start_time.to_string(),
        "active": active.len(), "succeeded": succeeded, "failed": failed,
        "ready": active.iter().filter(|p| phase(p) == "Running").count(),
    });
    let mut requeue = deadline.map(|d| unsigned(d.duration_since(now)));
    let finish = |condition: &str, reason: &str, message: &str| {
        let mut conditions = vec![
            json!({"type": if condition == "Complete" { "SuccessCriteriaMet" } else { "FailureTarget" },
            "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp}),
        ];
        conditions.push(json!({"type": condition, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}));
        conditions
    };
    if succeeded >= completions {
        fields["conditions"] =
            json!(finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods"));
        fields["completionTime"] = json!(stamp);
        fields["active"] = json!(0);
        requeue = spec.ttl_seconds_after_finished.map(|t| Duration::from_secs(u64::try_from(t).unwrap_or(0)));
    } else if failed > backoff_limit {
        kill(&pods, &active).await?;
        fields["conditions"] =
            json!(finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"));
        fields["active"] = json!(0);
        requeue = spec.ttl_seconds_after_finished.map(|t| Duration::from_secs(u64::try_from(t).unwrap_or(0)));
    } else if deadline.is_some_and(|d| d <= now) {
        kill(&pods, &active).await?;
        fields["conditions"] =
            json!(finish("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"));
        fields["active"] = json!(0);
        requeue = spec.ttl_seconds_after_finished.map(|t| Duration::from_secs(u64::try_from(t).unwrap_or(0)));
    } else if active.is_empty() {
        if failed > 0 && recently_failed(&owned.items, now, context.options.retry_backoff) {
            requeue = Some(context.options.retry_backoff);
        } else {
            pods.create(&PostParams::default(), &pod_for(&job, &uid, &context.options.node_name)?).await?;
            fields["active"] = json!(1);
        }
    }
    if status_differs(&job, &fields) {
        jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": fields}))).await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn finished_at(job: &Job) -> Option<Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map_or_else(Timestamp::now, |t| t.0))
}

fn recently_failed(pods: &[Pod], now: Timestamp, backoff: Duration) -> bool {
    let backoff = jiff::SignedDuration::try_from(backoff).unwrap_or_default();
    pods.iter().filter_map(|p| p.metadata.creation_timestamp.as_ref()).any(|created| created.0 + backoff > now)
}

async fn kill(pods: &Api<Pod>, active: &[&Pod]) -> Result<(), KubeletError> {
    for pod in active {
        match pods.delete(&pod.name_any(), &DeleteParams::default()).await {
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Ok(_) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// A Pod from the Job's template, labelled and owned as the real Job controller does it.
fn pod_for(job: &Job, uid: &str, node_name: &str) -> Result<Pod, KubeletError> {
    let name = job.name_any();
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = Pod { metadata: template.metadata.unwrap_or_default(), spec: template.spec, status: None };
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("controller-uid", uid),
        ("job-name", name.as_str()),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    pod.metadata.generate_name = Some(format!("{name}-"));
    pod.metadata.name = None;
    pod.metadata.namespace.clone_from(&job.metadata.namespace);
    let owner = job.controller_owner_ref(&()).ok_or_else(|| KubeletError::Config(format!("job {name} has no uid")))?;
    pod.metadata.owner_references = Some(vec![owner]);
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node_name.to_owned());
    }
    Ok(pod)
}

fn status_differs(job: &Job, fields: &Value) -> bool {
    let current = serde_json::to_value(job.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    fields.as_object().is_some_and(|f| {
        f.iter().any(|(k, v)| {
            let now = current.get(k).cloned().unwrap_or(Value::Null);
            // Counts absent on the server mean zero.
            !(now == *v || (now.is_null() && *v == json!(0)))
        })
    })
}

fn unsigned(duration: jiff::SignedDuration) -> Duration {
    Duration::try_from(duration).unwrap_or(Duration::ZERO).max(Duration::from_millis(100))
}

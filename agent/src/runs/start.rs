//! Starting a run's Job, the only place a Job is created. First the guard of the one-run rule,
//! read from the API server itself rather than from status (which a crash between creating a
//! Job and writing status leaves behind): another Job of the resource still active means no
//! start. Then the seal (see [`crate::runs::seal`]): the pad Secret first, so the Pod never
//! waits for its volume; then the Job; then the Secret is handed to the Job, so it is
//! garbage-collected with it (until then the resource owns it, so a failed start leaks nothing
//! for longer than the resource lives).

use alustan_shared::meta;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::runs::seal::Pad;

/// How a start ended.
#[derive(Debug)]
pub enum Started {
    /// The Job was created.
    New,
    /// A Job of that name existed already (same inputs: adopted, and so is its pad, never
    /// replaced).
    Adopted,
    /// Another Job of the resource is still active: nothing was created.
    Busy(Box<Job>),
}

/// Starts `job` (with its seal Secret) unless another Job of the same resource is active.
pub async fn start(ctx: &Context, job: &Job) -> Result<Started> {
    let client = &ctx.client;
    let namespace = job.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = job.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let resource = job.labels().get(meta::LABEL_TERRAFORM).cloned().unwrap_or_default();
    let owner = job.owner_references().first().map(|o| o.uid.clone()).unwrap_or_default();
    if let Some(active) = active_job(&jobs, &resource, &owner, Some(&name)).await? {
        return Ok(Started::Busy(Box::new(active)));
    }
    let _slot = ctx.pad_slots.acquire().await.map_err(|_| Error::ShuttingDown)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let seal_name = meta::seal_secret_name(&name);
    let pad = Pad::generate()?;
    let secret = pad.to_secret(ObjectMeta {
        name: Some(seal_name.clone()),
        namespace: Some(namespace.clone()),
        labels: job.metadata.labels.clone(),
        owner_references: job.metadata.owner_references.clone(),
        ..ObjectMeta::default()
    });
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        // A pad of this run from before (a retried reconcile, a restarted agent): keep it, but
        // only if it is really ours. A Secret someone else planted under that name would make
        // the pad known to them; one being deleted would vanish under the Job.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = secrets.get(&seal_name).await?;
            let owners = job.metadata.owner_references.iter().flatten().map(|o| o.uid.as_str());
            let ours = existing
                .owner_references()
                .iter()
                .any(|o| (o.kind == "Job" && o.name == name) || owners.clone().any(|uid| uid == o.uid));
            if !ours || existing.metadata.deletion_timestamp.is_some() {
                return Err(crate::runs::seal::SealError::Foreign(seal_name).into());
            }
        }
        Err(err) => return Err(Error::creating(format!("Secret {seal_name}"), err)),
    }
    let (started, job) = match jobs.create(&PostParams::default(), job).await {
        Ok(job) => (Started::New, job),
        Err(kube::Error::Api(status)) if status.code == 409 => (Started::Adopted, jobs.get(&name).await?),
        Err(err) => return Err(Error::creating(format!("Job {name}"), err)),
    };
    // No blockOwnerDeletion: it would need update on jobs/finalizers, and nothing waits for
    // the pad before deleting a Job.
    let owner = OwnerReference {
        block_owner_deletion: None,
        ..job.controller_owner_ref(&()).ok_or(Error::MissingField("Job metadata.uid"))?
    };
    let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
    secrets.patch(&seal_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(started)
}

/// A Job of the resource (its label value `resource`, its controller `owner` uid) that has not
/// finished, other than `except`: read from the API server, not from a cache or status.
pub async fn active_job(jobs: &Api<Job>, resource: &str, owner: &str, except: Option<&str>) -> Result<Option<Job>> {
    let selector = format!("{}={resource}", meta::LABEL_TERRAFORM);
    let candidates = jobs.list(&ListParams::default().labels(&selector)).await?.items;
    Ok(candidates.into_iter().find(|job| {
        job.metadata.name.as_deref() != except
            && job.owner_references().first().is_some_and(|o| o.uid == owner)
            && job.metadata.deletion_timestamp.is_none()
            && crate::runs::observe::outcome(job) == crate::runs::observe::Outcome::Running
    }))
}

//! Starting a run's Job with its seal (see [`crate::runs::seal`]): the pad Secret first, so the Pod
//! never waits for its volume; then the Job; then the Secret is handed to the Job, so it is
//! garbage-collected with it (until then the resource owns it, so a failed start leaks
//! nothing for longer than the resource lives).

use alustan_shared::meta;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource as _, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::runs::seal::Pad;

/// Creates `job` and its seal Secret; `true` when the Job is new, `false` when one of that
/// name existed already (same inputs: adopted, and so is its pad, never replaced).
pub async fn create(ctx: &Context, job: &Job) -> Result<bool> {
    let _slot = ctx.pad_slots.acquire().await.map_err(|_| Error::ShuttingDown)?;
    let client = &ctx.client;
    let namespace = job.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = job.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
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
        Err(err) => return Err(err.into()),
    }
    let (created, job) = match jobs.create(&PostParams::default(), job).await {
        Ok(job) => (true, job),
        Err(kube::Error::Api(status)) if status.code == 409 => (false, jobs.get(&name).await?),
        Err(err) => return Err(err.into()),
    };
    // No blockOwnerDeletion: it would need update on jobs/finalizers, and nothing waits for
    // the pad before deleting a Job.
    let owner = OwnerReference {
        block_owner_deletion: None,
        ..job.controller_owner_ref(&()).ok_or(Error::MissingField("Job metadata.uid"))?
    };
    let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
    secrets.patch(&seal_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(created)
}

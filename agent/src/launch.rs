//! Starting a run's Job with its seal (see [`crate::seal`]): the pad Secret first, so the Pod
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
use crate::seal::Pad;

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
        // A pad that exists belongs to a Job of the same name (or one about to be): keep it.
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
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

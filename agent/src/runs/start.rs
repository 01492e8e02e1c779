//! Starting a run's Job, the only place a Job is created. First the guard of the one-run rule,
//! read from the API server itself rather than from status (which a crash between creating a
//! Job and writing status leaves behind): another Job of the resource still active means no
//! start. Then the seal Secret (see [`crate::runs::seal`]) if the run needs one (a deploy's
//! pad, sensitive variables): first, so the Pod never waits for its volume and no Secret
//! planted under its name can ever be mounted (a 409 of one that is not ours stops the run
//! before any Job exists); then the Job; then the Secret is handed to the Job, so it is
//! garbage-collected with it (until then the resource owns it, so a failed start leaks nothing
//! for longer than the resource lives).

use std::collections::BTreeMap;

use alustan_shared::meta;
use alustan_shared::{RunAction, RunRecord};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::runs::seal::{Pad, PadSeed, SealError};
use crate::runs::{jobs, observe};

/// How a start ended.
#[derive(Debug)]
pub enum Started {
    /// The Job was created.
    New,
    /// A Job of that name existed already (same inputs: adopted, and so is its pad, never
    /// replaced).
    Adopted,
    /// Another run of the resource is still active (its Job, or a Pod of it): nothing was
    /// created; its record.
    Busy(Box<RunRecord>),
}

/// Starts `job` (with its seal Secret: the pad if the Job mounts one, and the run's
/// `sensitive` variables) unless another Job of the same resource is active.
pub async fn start(ctx: &Context, job: &Job, sensitive: &BTreeMap<String, String>) -> Result<Started> {
    let client = &ctx.client;
    let namespace = job.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = job.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let resource = job.labels().get(meta::LABEL_TERRAFORM).cloned().unwrap_or_default();
    let owner = job.owner_references().first().map(|o| o.uid.clone()).unwrap_or_default();
    // The slot first: the check and the create then follow each other closely.
    let _slot = ctx.pad_slots.acquire().await.map_err(|_| Error::ShuttingDown)?;
    if let Some(active) = active_run(&jobs, &pods, &resource, &owner, Some(&name)).await? {
        return Ok(Started::Busy(Box::new(active)));
    }
    let plan = job.labels().get(meta::LABEL_ACTION).is_some_and(|a| a == jobs::action_label(RunAction::Plan));
    // A plan's pad is sized to its resource's last plan bundle, as a deploy's to its outputs.
    let pad_bytes = if plan {
        crate::runs::seal::plan_pad_bytes(ctx.outputs_sizes.last(&plan_sizes_key(&owner)))
    } else {
        crate::runs::seal::pad_bytes(ctx.outputs_sizes.last(&owner))
    };
    let seed = if jobs::mounts_pad(job) { Some(PadSeed::generate()?) } else { None };
    let pad = seed.as_ref().map(|seed| Pad::from_seed(seed, pad_bytes)).transpose()?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let seal = seal_secret(job, pad.as_ref(), sensitive)?;
    drop(pad);
    if let Some(secret) = &seal {
        // Whatever a failed or earlier attempt remembered for this run may not be what the
        // Secret holds now.
        ctx.pad_seeds.forget_run(&owner, &name);
        if create_seal(&secrets, job, secret).await?
            && let Some(seed) = seed
        {
            // This pad is the one the Job mounts (a seal kept from before is not): reading
            // the outputs back can expand the seed instead of reading the Secret.
            ctx.pad_seeds.remember(&owner, &name, seed, pad_bytes);
        }
    }
    let (started, job) = match jobs.create(&PostParams::default(), job).await {
        Ok(job) => (Started::New, job),
        Err(kube::Error::Api(status)) if status.code == 409 => (Started::Adopted, jobs.get(&name).await?),
        Err(err) => return Err(Error::creating(format!("Job {name}"), err)),
    };
    if let Some(secret) = &seal {
        // No blockOwnerDeletion: it would need update on jobs/finalizers, and nothing waits
        // for the pad before deleting a Job.
        let owner = OwnerReference {
            block_owner_deletion: None,
            ..job.controller_owner_ref(&()).ok_or(Error::MissingField("Job metadata.uid"))?
        };
        let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
        secrets.patch(&secret.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(started)
}

/// The key under which the size of resource `uid`'s last plan bundle is remembered.
pub fn plan_sizes_key(uid: &str) -> String {
    format!("{uid}/plan")
}

/// Creates the seal Secret (`true`), or keeps one of this run from before (a retried
/// reconcile, a restarted agent) if it is really ours (`false`). A Secret someone else planted
/// under that name would make the pad known to them; one being deleted would vanish under the
/// Job.
async fn create_seal(secrets: &Api<Secret>, job: &Job, secret: &Secret) -> Result<bool> {
    let seal_name = secret.name_any();
    match secrets.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = secrets.get(&seal_name).await?;
            let name = job.name_any();
            let owners = job.metadata.owner_references.iter().flatten().map(|o| o.uid.as_str());
            let ours = existing
                .owner_references()
                .iter()
                .any(|o| (o.kind == "Job" && o.name == name) || owners.clone().any(|uid| uid == o.uid));
            if !ours || existing.metadata.deletion_timestamp.is_some() {
                return Err(SealError::Foreign(seal_name).into());
            }
            Ok(false)
        }
        Err(err) => Err(Error::creating(format!("Secret {seal_name}"), err)),
    }
}

/// The seal Secret of `job`: `pad`, and the run's `sensitive` variables, owned by the Job's
/// owner (the resource) until the Job exists; `None` when the run needs neither.
pub fn seal_secret(job: &Job, pad: Option<&Pad>, sensitive: &BTreeMap<String, String>) -> Result<Option<Secret>> {
    if pad.is_none() && sensitive.is_empty() {
        return Ok(None);
    }
    let name = job.metadata.name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let metadata = ObjectMeta {
        name: Some(meta::seal_secret_name(name)),
        namespace: job.metadata.namespace.clone(),
        labels: job.metadata.labels.clone(),
        owner_references: job.metadata.owner_references.clone(),
        ..ObjectMeta::default()
    };
    let mut secret = match pad {
        Some(pad) => pad.to_secret(metadata),
        None => Secret { metadata, type_: Some("Opaque".into()), immutable: Some(true), ..Secret::default() },
    };
    let data = secret.data.get_or_insert_default();
    for (name, value) in sensitive {
        data.insert(jobs::sensitive_key(name), k8s_openapi::ByteString(value.clone().into_bytes()));
    }
    Ok(Some(secret))
}

/// A run of the resource (its label value `resource`, its controller `owner` uid) still going,
/// other than Job `except`: a Job that has not finished, or a Pod still running whose Job was
/// deleted. Read from the API server, not from a cache or status.
pub async fn active_run(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    resource: &str,
    owner: &str,
    except: Option<&str>,
) -> Result<Option<RunRecord>> {
    let selector = ListParams::default().labels(&format!("{}={resource}", meta::LABEL_TERRAFORM));
    let candidates = jobs.list(&selector).await?.items;
    let active = candidates.iter().find(|job| {
        job.metadata.name.as_deref() != except
            && job.owner_references().first().is_some_and(|o| o.uid == owner)
            && job.metadata.deletion_timestamp.is_none()
            && observe::outcome(job) == observe::Outcome::Running
    });
    if let Some(job) = active {
        return Ok(Some(jobs::record_of(job)));
    }
    // Pods carry the same label; one of a resource of the same name deleted and created again
    // works on the same state too, so it counts whatever its owner.
    let pods = pods.list(&selector).await?.items;
    Ok(pods
        .iter()
        .find(|pod| pod.labels().get("job-name").map(String::as_str) != except && observe::running(pod))
        .map(jobs::record_of_pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_secret_is_owned_like_its_job_and_only_made_when_needed() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "tf-deploy-k-0", "namespace": "ns", "labels": {"a": "b"},
                         "ownerReferences": [{"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
                                              "name": "tf", "uid": "tf-uid", "controller": true}]}
        }))
        .unwrap();
        assert!(seal_secret(&job, None, &BTreeMap::new()).unwrap().is_none());
        let pad = Pad::from_bytes(vec![1; 8]);
        let sensitive = BTreeMap::from([("TF_VAR_pw".to_owned(), "s3cret".to_owned())]);
        let secret = seal_secret(&job, Some(&pad), &sensitive).unwrap().unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("tf-deploy-k-0-seal"));
        assert_eq!(secret.metadata.owner_references, job.metadata.owner_references);
        assert_eq!(secret.metadata.labels, job.metadata.labels);
        let data = secret.data.unwrap();
        assert_eq!(data[meta::SEAL_KEY].0, vec![1; 8]);
        assert_eq!(data["variable.TF_VAR_pw"].0, b"s3cret");
        let variables_only = seal_secret(&job, None, &sensitive).unwrap().unwrap().data.unwrap();
        assert!(!variables_only.contains_key(meta::SEAL_KEY) && variables_only.contains_key("variable.TF_VAR_pw"));
    }
}

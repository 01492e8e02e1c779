//! The batch/v1 Job of one run, and the deterministic names that make runs idempotent: the
//! same inputs always give the same name, so a restarted agent adopts the Job it created
//! instead of starting a second one.
//!
//! Name: `{resource ≤32}-{deploy|post|destroy}-{key}-{round}` where `key` hashes (uid, generation, digest,
//! resync token) and `round` counts retries and drift re-applies of the same inputs.

use std::collections::BTreeMap;

use alustan_shared::{RunAction, RunRecord, RunResult, Terraform, meta};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference, Pod, PodSpec,
    PodTemplateSpec, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::{Resource as _, ResourceExt as _};

use crate::error::{Error, Result};
use crate::runs::seal::SEAL_DIR;

/// Where the outputs file lives in the Job (an emptyDir, writable whatever the image).
const OUTPUTS_DIR: &str = "/alustan";
/// The volume of the run's seal Secret.
const SEAL_VOLUME: &str = "alustan-seal";
/// The volume of the approved plan file a deploy applies.
const PLAN_VOLUME: &str = "alustan-plan";
/// Where it is mounted.
const PLAN_DIR: &str = "/alustan-plan";

/// Runs the script (`$1`, args after it), then, on success, prints the outputs file sealed
/// (see [`crate::runs::seal`]) between the markers if the run has a pad (a deploy or a plan)
/// and the file is not empty: nothing more runs otherwise; a plan run's outputs file is its
/// plan bundle (see [`crate::runs::plan`]). A bare script name found in the working
/// directory runs as `./name`.
pub fn wrapper() -> String {
    format!(
        r#"s="$1"; shift
case "$s" in */*) ;; *) if [ -f "./$s" ]; then s="./$s"; fi ;; esac
"$s" "$@"
rc=$?
if [ "$rc" -eq 0 ] && [ "$ALUSTAN_ACTION" = plan ]; then
  if [ -s "$ALUSTAN_PLAN" ]; then
    {{ wc -c < "$ALUSTAN_PLAN"; cat "$ALUSTAN_PLAN"; if [ -f "$ALUSTAN_PLAN_FILE" ]; then cat "$ALUSTAN_PLAN_FILE"; fi; }} > "$ALUSTAN_OUTPUTS"
  else
    printf '0\n' > "$ALUSTAN_OUTPUTS"
  fi
fi
if [ "$rc" -eq 0 ] && [ -n "$ALUSTAN_SEAL" ] && [ -s "$ALUSTAN_OUTPUTS" ]; then
  printf '\n%s\n' "$ALUSTAN_OUTPUTS_BEGIN"
{}  printf '%s\n' "$ALUSTAN_OUTPUTS_END"
fi
exit "$rc"
"#,
        crate::runs::seal::print_sealed_block()
    )
}

/// The spec field holding the script of `action`.
pub fn script_field(action: RunAction) -> &'static str {
    match action {
        RunAction::Deploy => "spec.scripts.deploy",
        RunAction::PostDeploy => "spec.postDeploy.script",
        RunAction::Destroy => "spec.scripts.destroy",
        RunAction::Plan => "spec.scripts.plan",
    }
}

/// The action's short form in Job names and labels.
pub fn action_label(action: RunAction) -> &'static str {
    match action {
        RunAction::Deploy => "deploy",
        RunAction::PostDeploy => "post-deploy",
        RunAction::Destroy => "destroy",
        RunAction::Plan => "plan",
    }
}

/// The identity of a deploy's inputs.
pub fn run_key(uid: &str, generation: i64, digest: &str, token: Option<&str>) -> String {
    alustan_shared::fingerprint(&[uid, &generation.to_string(), digest, token.unwrap_or("")])[..10].to_owned()
}

/// The identity of the post-deploy runs following the deploy Job `deploy_job`.
pub fn post_key(deploy_job: &str) -> String {
    alustan_shared::fingerprint(&[deploy_job, "post"])[..10].to_owned()
}

fn prefix(resource: &str, action: RunAction, key: &str) -> String {
    let short: String = resource.chars().take(32).collect();
    let short = short.trim_end_matches(['-', '.']);
    let action = match action {
        RunAction::Deploy => "deploy",
        RunAction::PostDeploy => "post",
        RunAction::Destroy => "destroy",
        RunAction::Plan => "plan",
    };
    format!("{short}-{action}-{key}-")
}

/// The Job name of `round` of a run (at most 63 characters).
pub fn job_name(resource: &str, action: RunAction, key: &str, round: u32) -> String {
    format!("{}{round}", prefix(resource, action, key))
}

/// The round of `job_name` if it is a run of `key`.
pub fn round_of(job_name: &str, resource: &str, action: RunAction, key: &str) -> Option<u32> {
    job_name.strip_prefix(&prefix(resource, action, key))?.parse().ok()
}

/// Agent-wide Job settings.
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    pub active_deadline_seconds: i64,
    pub ttl_seconds_after_finished: i32,
    pub service_account: Option<String>,
    pub image_pull_secrets: Vec<String>,
}

/// One run to start.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub action: RunAction,
    pub name: String,
    /// The script string (`destroy -c`).
    pub script: &'a str,
    /// Extra arguments after the script's own (post-deploy `--name=value`).
    pub extra_args: Vec<String>,
    /// `repository@sha256:…`
    pub image: &'a str,
    pub tag: &'a str,
    /// The spec fingerprint the run applies (see `TerraformSpec::inputs_fingerprint`).
    pub inputs: &'a str,
    /// The sync request token it answers.
    pub token: Option<&'a str>,
    /// `spec.variablesFrom`'s values; sensitive ones are read from the run's seal Secret.
    pub variables: &'a crate::reconcile::variables_from::Resolved,
    /// A deploy of an approved plan: the plan it applies.
    pub plan: Option<PlanHandoff<'a>>,
    /// A plan run: why it runs.
    pub trigger: Option<alustan_shared::PlanTrigger>,
}

/// The approved plan a deploy applies: its id and the Secret holding its plan file (mounted
/// read-only where `$ALUSTAN_PLAN_FILE` points; `None`: the plan script wrote none).
#[derive(Debug, Clone, Copy)]
pub struct PlanHandoff<'a> {
    pub id: &'a str,
    pub secret: Option<&'a str>,
}

impl RunSpec<'_> {
    /// The history record of this run, started now, as it applies `generation`.
    pub fn record(&self, generation: i64) -> RunRecord {
        RunRecord {
            action: self.action,
            job_name: self.name.clone(),
            image: self.image.to_owned(),
            tag: Some(self.tag.to_owned()),
            start_time: Time(jiff::Timestamp::now()),
            completion_time: None,
            result: RunResult::Running,
            message: None,
            generation: Some(generation),
            digest: self.image.rsplit_once('@').map(|(_, digest)| digest.to_owned()),
            token: self.token.map(str::to_owned),
            inputs: Some(self.inputs.to_owned()),
            plan: self.plan.map(|p| p.id.to_owned()),
            trigger: self.trigger,
        }
    }
}

/// The history record of a Job found running that status does not know (a status write lost
/// to a crash, or an older agent's run): what it applies, read back from its labels and
/// annotations.
pub fn record_of(job: &Job) -> RunRecord {
    let container = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.containers.first());
    record_from(&job.metadata, job.metadata.name.clone().unwrap_or_default(), container)
}

/// The record of a run known only by its Pod (its Job deleted, the Pod still running): what
/// its labels and container say.
pub fn record_of_pod(pod: &Pod) -> RunRecord {
    let job = pod.labels().get("job-name").cloned().unwrap_or_else(|| pod.name_any());
    let container = pod.spec.as_ref().and_then(|s| s.containers.first());
    record_from(&pod.metadata, job, container)
}

fn record_from(metadata: &ObjectMeta, job_name: String, container: Option<&Container>) -> RunRecord {
    let labels = metadata.labels.clone().unwrap_or_default();
    let annotations = metadata.annotations.clone().unwrap_or_default();
    let action = match labels.get(meta::LABEL_ACTION).map(String::as_str) {
        Some("post-deploy") => RunAction::PostDeploy,
        Some("destroy") => RunAction::Destroy,
        Some("plan") => RunAction::Plan,
        _ => RunAction::Deploy,
    };
    let env = |name: &str| container.and_then(|c| c.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone());
    RunRecord {
        action,
        job_name,
        image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
        tag: env("ALUSTAN_TAG"),
        start_time: metadata.creation_timestamp.clone().unwrap_or_else(|| Time(jiff::Timestamp::now())),
        completion_time: None,
        result: RunResult::Running,
        message: None,
        generation: labels.get(meta::LABEL_GENERATION).and_then(|g| g.parse().ok()),
        digest: None,
        token: annotations.get(ANNOTATION_TOKEN).cloned(),
        inputs: annotations.get(ANNOTATION_INPUTS).cloned(),
        plan: annotations.get(ANNOTATION_PLAN).cloned(),
        trigger: annotations.get(ANNOTATION_TRIGGER).and_then(|t| serde_json::from_value(serde_json::json!(t)).ok()),
    }
}

/// Annotation on a run's Job: the spec fingerprint it applies.
const ANNOTATION_INPUTS: &str = "alustan.io/inputs";
/// Annotation on a run's Job: the sync request token it answers.
const ANNOTATION_TOKEN: &str = "alustan.io/token";
/// Annotation on a deploy's Job: the approved plan it applies.
const ANNOTATION_PLAN: &str = "alustan.io/plan";
/// Annotation on a plan's Job: why it runs.
const ANNOTATION_TRIGGER: &str = "alustan.io/trigger";

/// A plan trigger as written in the Job's annotation (and status).
fn trigger_name(trigger: alustan_shared::PlanTrigger) -> &'static str {
    match trigger {
        alustan_shared::PlanTrigger::Change => "Change",
        alustan_shared::PlanTrigger::Drift => "Drift",
        alustan_shared::PlanTrigger::Request => "Request",
    }
}

/// The markers around the outputs file in the log of Job `job`.
pub fn markers(job: &str) -> (String, String) {
    meta::outputs_markers(job)
}

/// The labels of a run's Job, its Pod and its seal Secret.
pub fn labels(tf: &Terraform, action: RunAction) -> BTreeMap<String, String> {
    BTreeMap::from([
        (meta::LABEL_MANAGED_BY.to_owned(), meta::MANAGED_BY_VALUE.to_owned()),
        (
            meta::LABEL_TERRAFORM.to_owned(),
            meta::terraform_label_value(tf.metadata.name.as_deref().unwrap_or_default()),
        ),
        (meta::LABEL_ACTION.to_owned(), action_label(action).to_owned()),
        (meta::LABEL_GENERATION.to_owned(), tf.metadata.generation.unwrap_or_default().to_string()),
    ])
}

/// Builds the Job for `run` of `tf`.
pub fn build(tf: &Terraform, run: &RunSpec<'_>, settings: &JobSettings) -> Result<Job> {
    let name = tf.metadata.name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let owner = tf.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
    let mut words = crate::reconcile::validate::script_words(script_field(run.action), run.script)?;
    words.extend(run.extra_args.iter().cloned());
    let mut command = vec!["/bin/sh".to_owned(), "-c".to_owned(), wrapper(), "alustan-run".to_owned()];
    command.extend(words);

    let generation = tf.metadata.generation.unwrap_or_default().to_string();
    let labels = labels(tf, run.action);
    let (begin, end) = markers(&run.name);
    let seal_name = meta::seal_secret_name(&run.name);
    let mut env = variables_env(tf, run.variables, &seal_name);
    // Only a deploy has an outputs file to seal (the outputs contract), and a plan its plan
    // bundle: only they get a pad.
    let pad = matches!(run.action, RunAction::Deploy | RunAction::Plan);
    if pad {
        env.push(env_var(meta::ENV_SEAL_FILE, &format!("{SEAL_DIR}/{}", meta::SEAL_KEY)));
    }
    env.extend([
        env_var(meta::ENV_OUTPUTS_FILE, &format!("{OUTPUTS_DIR}/outputs.json")),
        env_var("ALUSTAN_OUTPUTS_BEGIN", &begin),
        env_var("ALUSTAN_OUTPUTS_END", &end),
        env_var("ALUSTAN_ACTION", action_label(run.action)),
        env_var("ALUSTAN_TERRAFORM", &name),
        env_var("ALUSTAN_NAMESPACE", tf.metadata.namespace.as_deref().unwrap_or("default")),
        env_var("ALUSTAN_GENERATION", &generation),
        env_var("ALUSTAN_IMAGE", run.image),
        env_var("ALUSTAN_TAG", run.tag),
    ]);
    let (mut volumes, mut mounts) = run_volumes(pad.then_some(seal_name));
    add_plan_files(run, &mut env, &mut mounts, &mut volumes);
    let container = Container {
        name: "run".into(),
        image: Some(run.image.to_owned()),
        command: Some(command),
        env: Some(env),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let service_account = tf.spec.service_account_name.clone().or_else(|| settings.service_account.clone());
    // The resource's registry Secret (a docker config, as imagePullSecrets want) lets the
    // kubelet pull the image the scan found with the same credentials.
    let mut pull_names = settings.image_pull_secrets.clone();
    if let Some(secret) = &tf.spec.container_registry.secret_ref
        && !pull_names.contains(&secret.name)
    {
        pull_names.push(secret.name.clone());
    }
    let pull_secrets =
        (!pull_names.is_empty()).then(|| pull_names.into_iter().map(|name| LocalObjectReference { name }).collect());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(run.name.clone()),
            namespace: tf.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(
                [
                    (ANNOTATION_INPUTS, Some(run.inputs)),
                    (ANNOTATION_TOKEN, run.token),
                    (ANNOTATION_PLAN, run.plan.map(|p| p.id)),
                    (ANNOTATION_TRIGGER, run.trigger.map(trigger_name)),
                ]
                .into_iter()
                .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
                .collect(),
            ),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(settings.active_deadline_seconds),
            ttl_seconds_after_finished: Some(settings.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: service_account,
                    image_pull_secrets: pull_secrets,
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// Where a plan run writes its summary and plan file; where a deploy of an approved plan
/// reads the plan file (its Secret, mounted read-only).
fn add_plan_files(run: &RunSpec<'_>, env: &mut Vec<EnvVar>, mounts: &mut Vec<VolumeMount>, volumes: &mut Vec<Volume>) {
    if run.action == RunAction::Plan {
        env.push(env_var(meta::ENV_PLAN, &format!("{OUTPUTS_DIR}/plan.json")));
        env.push(env_var(meta::ENV_PLAN_FILE, &format!("{OUTPUTS_DIR}/plan.bin")));
    }
    if let Some(secret) = run.plan.and_then(|p| p.secret) {
        env.push(env_var(meta::ENV_PLAN_FILE, &format!("{PLAN_DIR}/{}", meta::PLAN_KEY)));
        mounts.push(VolumeMount {
            name: PLAN_VOLUME.into(),
            mount_path: PLAN_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(secret_volume(PLAN_VOLUME, secret.to_owned(), meta::PLAN_KEY));
    }
}

/// The outputs file's emptyDir and, for a run with a pad, its seal Secret (`seal_name`):
/// volumes and the container's mounts.
fn run_volumes(seal_name: Option<String>) -> (Vec<Volume>, Vec<VolumeMount>) {
    let outputs =
        Volume { name: "alustan".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() };
    let mut volumes = vec![outputs];
    let mut mounts =
        vec![VolumeMount { name: "alustan".into(), mount_path: OUTPUTS_DIR.into(), ..VolumeMount::default() }];
    if let Some(seal_name) = seal_name {
        volumes.push(seal_volume(seal_name));
        mounts.push(VolumeMount {
            name: SEAL_VOLUME.into(),
            mount_path: SEAL_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    (volumes, mounts)
}

/// Whether `job` mounts a pad (its seal Secret must then hold one: see `crate::runs::start`).
pub fn mounts_pad(job: &Job) -> bool {
    let volumes = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.volumes.as_ref());
    volumes.is_some_and(|volumes| volumes.iter().any(|v| v.name == SEAL_VOLUME))
}

/// The pad, created by the agent right after the Job (see `crate::runs::start`); only its pad
/// key: the Secret also holds sensitive variables, read as env.
fn seal_volume(seal_name: String) -> Volume {
    secret_volume(SEAL_VOLUME, seal_name, meta::SEAL_KEY)
}

/// Volume `name` of one key of Secret `secret`, as a file named after the key.
fn secret_volume(name: &str, secret: String, key: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: Some(vec![KeyToPath { key: key.to_owned(), path: key.to_owned(), ..KeyToPath::default() }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The variables of a run: the spec's, then `variablesFrom`'s, whose sensitive values the
/// container reads from the run's seal Secret (never written in the Job).
fn variables_env(
    tf: &Terraform,
    resolved: &crate::reconcile::variables_from::Resolved,
    seal_name: &str,
) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = tf.spec.variables.iter().chain(&resolved.plain).map(|(k, v)| env_var(k, v)).collect();
    env.extend(resolved.sensitive.keys().map(|name| EnvVar {
        name: name.clone(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: seal_name.to_owned(),
                key: sensitive_key(name),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }));
    env
}

/// The seal Secret's key holding sensitive variable `name`.
pub fn sensitive_key(name: &str) -> String {
    format!("variable.{name}")
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terraform() -> Terraform {
        let mut tf: Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": "staging-cluster", "namespace": "ns", "uid": "u1", "generation": 3},
            "spec": {"variables": {"TF_VAR_a": "1"}, "scripts": {"deploy": "deploy", "destroy": "destroy -c 'two words'"},
                     "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}}
        }))
        .unwrap();
        tf.spec.service_account_name = None;
        tf
    }

    #[test]
    fn names_are_deterministic_bounded_and_parseable() {
        let key = run_key("u1", 3, "sha256:aa", None);
        assert_eq!(key, run_key("u1", 3, "sha256:aa", None));
        assert_ne!(key, run_key("u1", 3, "sha256:aa", Some("t")));
        assert_ne!(key, run_key("u1", 4, "sha256:aa", None));
        assert_ne!(key, run_key("u2", 3, "sha256:aa", None));
        let long = "a".repeat(253);
        let name = job_name(&long, RunAction::PostDeploy, &key, 4_000_000_000);
        assert!(name.len() <= 63, "{name}");
        assert_eq!(round_of(&name, &long, RunAction::PostDeploy, &key), Some(4_000_000_000));
        assert_eq!(round_of(&name, &long, RunAction::Deploy, &key), None);
        assert_eq!(job_name("tf", RunAction::Deploy, "abc", 0), "tf-deploy-abc-0");
    }

    #[test]
    fn job_has_the_contract_fields() {
        let tf = terraform();
        let run = RunSpec {
            action: RunAction::Destroy,
            name: "staging-cluster-destroy-k-0".into(),
            script: tf.spec.scripts.destroy.as_deref().unwrap(),
            extra_args: vec![],
            image: "r/x@sha256:aa",
            tag: "v1",
            inputs: "fp",
            token: Some("t1"),
            variables: &crate::reconcile::variables_from::Resolved::default(),
            plan: None,
            trigger: None,
        };
        let settings = JobSettings {
            active_deadline_seconds: 60,
            ttl_seconds_after_finished: 120,
            service_account: Some("runner".into()),
            image_pull_secrets: vec!["pull".into()],
        };
        let job = build(&tf, &run, &settings).unwrap();
        let value = serde_json::to_value(&job).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["backoffLimit"], 0);
        assert_eq!(spec["activeDeadlineSeconds"], 60);
        assert_eq!(spec["ttlSecondsAfterFinished"], 120);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "runner");
        assert_eq!(pod["imagePullSecrets"][0]["name"], "pull");
        let mut private = tf.clone();
        private.spec.container_registry.secret_ref = Some(alustan_shared::SecretReference { name: "regcred".into() });
        let pulls = serde_json::to_value(build(&private, &run, &settings).unwrap()).unwrap()["spec"]["template"]["spec"]
            ["imagePullSecrets"]
            .clone();
        assert_eq!(pulls, serde_json::json!([{"name": "pull"}, {"name": "regcred"}]));
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "r/x@sha256:aa");
        assert_eq!(container["terminationMessagePolicy"], "FallbackToLogsOnError");
        let command: Vec<&str> = container["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(command[..2], ["/bin/sh", "-c"]);
        assert_eq!(command[3..], ["alustan-run", "destroy", "-c", "two words"]);
        assert_eq!(value["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(value["metadata"]["labels"][meta::LABEL_ACTION], "destroy");
        // What the run applies can be read back from the Job alone (adopting it after a crash).
        let record = record_of(&job);
        assert_eq!(
            (record.action, record.generation, record.token.as_deref()),
            (RunAction::Destroy, Some(3), Some("t1"))
        );
        assert_eq!((record.inputs.as_deref(), record.image.as_str()), (Some("fp"), "r/x@sha256:aa"));
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "TF_VAR_a" && e["value"] == "1"));
        assert!(env.iter().any(|e| e["name"] == meta::ENV_OUTPUTS_FILE));
        // A destroy has no outputs file to seal: no pad, no seal volume.
        assert!(!env.iter().any(|e| e["name"] == meta::ENV_SEAL_FILE));
        assert!(!mounts_pad(&job));
        assert!(pod["volumes"].as_array().unwrap().iter().all(|v| v["name"] != SEAL_VOLUME));
    }

    #[test]
    fn only_a_deploy_or_a_plan_mounts_its_pad_where_alustan_seal_points() {
        let tf = terraform();
        let variables = crate::reconcile::variables_from::Resolved::default();
        let run = |action| RunSpec {
            action,
            name: "staging-cluster-deploy-k-0".into(),
            script: "deploy",
            extra_args: vec![],
            image: "r/x@sha256:aa",
            tag: "v1",
            inputs: "fp",
            token: None,
            variables: &variables,
            plan: None,
            trigger: None,
        };
        let job = build(&tf, &run(RunAction::Deploy), &JobSettings::default()).unwrap();
        assert!(mounts_pad(&job));
        let value = serde_json::to_value(&job).unwrap();
        let pod = &value["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == meta::ENV_SEAL_FILE && e["value"] == "/alustan-seal/pad"));
        let seal = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == SEAL_VOLUME).unwrap();
        assert_eq!(seal["secret"]["secretName"], "staging-cluster-deploy-k-0-seal");
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mount = mounts.iter().find(|m| m["name"] == SEAL_VOLUME).unwrap();
        assert_eq!((mount["mountPath"].as_str(), mount["readOnly"].as_bool()), (Some("/alustan-seal"), Some(true)));
        assert!(!mounts_pad(&build(&tf, &run(RunAction::PostDeploy), &JobSettings::default()).unwrap()));
        // A plan hands back its summary and plan file sealed; it writes them where the env says.
        let plan = serde_json::to_value(build(&tf, &run(RunAction::Plan), &JobSettings::default()).unwrap()).unwrap();
        let env = plan["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
        let value_of = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
        assert_eq!(value_of(meta::ENV_SEAL_FILE), Some(serde_json::json!("/alustan-seal/pad")));
        assert_eq!(value_of(meta::ENV_PLAN), Some(serde_json::json!("/alustan/plan.json")));
        assert_eq!(value_of(meta::ENV_PLAN_FILE), Some(serde_json::json!("/alustan/plan.bin")));
        // A deploy of an approved plan reads its file from the plan Secret, read-only.
        let handoff =
            RunSpec { plan: Some(PlanHandoff { id: "3-ab", secret: Some("web-plan") }), ..run(RunAction::Deploy) };
        let deploy = serde_json::to_value(build(&tf, &handoff, &JobSettings::default()).unwrap()).unwrap();
        let pod = &deploy["spec"]["template"]["spec"];
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == PLAN_VOLUME).unwrap();
        assert_eq!(volume["secret"]["secretName"], "web-plan");
        let env = pod["containers"][0]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == meta::ENV_PLAN_FILE && e["value"] == "/alustan-plan/plan"));
        assert_eq!(deploy["metadata"]["annotations"]["alustan.io/plan"], "3-ab");
    }
}

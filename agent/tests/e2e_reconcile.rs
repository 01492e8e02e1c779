//! The agent end to end on testenv: the API server, the real registry and the process kubelet
//! running the image's scripts. Each test has its own environment.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e;

use std::collections::BTreeMap;
use std::time::Duration;

use alustan_shared::{RunAction, RunResult, State, conditions, meta};
use e2e::Agent;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

const DEPLOY: &str = r#"echo "Terraform will perform the following actions:"
echo "Plan: 3 to add, 0 to change, 0 to destroy."
echo "Apply complete! Resources: 3 added, 0 changed, 0 destroyed."
cat > "$ALUSTAN_OUTPUTS" <<'JSON'
{"cluster_name":{"value":"staging","sensitive":false,"type":"string"},"vpc_id":{"value":"vpc-0abc","sensitive":false,"type":"string"},"db_password":{"value":"hunter2-s3cret","sensitive":true,"type":"string"}}
JSON
"#;

const AWS_RESOURCE: &str = r#"echo "collecting AWS resources"
echo '{"outputs": {"ec2": [{"id": "i-0123", "type": "t3.medium"}], "rds": [{"id": "staging-db"}], "loadBalancers": [{"dns": "lb.example.com"}], "args": "'"$*"'"}}'
echo "done"
"#;

const DESTROY: &str = "echo \"destroying with $*\"\n";

fn is_state(state: State) -> impl Fn(&alustan_shared::Terraform) -> bool {
    move |tf| tf.status.as_ref().and_then(|s| s.state) == Some(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_cr_completes_reapply_is_idle_resync_redeploys_and_delete_destroys() {
    let agent = Agent::start(&[("deploy", DEPLOY), ("aws-resource", AWS_RESOURCE), ("destroy", DESTROY)]).await;
    let mut tf = agent.example();
    // postDeploy.args name TF_VAR_workspace and TF_VAR_region, which the original example does
    // not define; a missing variable is an Error by design, so the test defines them.
    tf.spec.variables.insert("TF_VAR_workspace".into(), "staging".into());
    tf.spec.variables.insert("TF_VAR_region".into(), "eu-west-1".into());
    // What the deploy would have installed: an Ingress, Argo CD's and Grafana's Secrets.
    install_tools(&agent).await;
    agent.create(&tf).await;

    let done = agent.wait_for("staging-cluster", "Completed", is_state(State::Completed)).await;
    let status = done.status.clone().unwrap();
    assert_eq!(
        status.output,
        BTreeMap::from([("cluster_name".into(), json!("staging")), ("vpc_id".into(), json!("vpc-0abc"))])
    );
    assert!(!serde_json::to_string(&status).unwrap().contains("hunter2"), "a sensitive value leaked into status");
    let secret_name = status.sensitive_outputs_secret.clone().unwrap();
    let secret = Api::<Secret>::namespaced(agent.client.clone(), "default").get(&secret_name).await.unwrap();
    assert_eq!(secret.data.unwrap()["db_password"].0, b"hunter2-s3cret");
    assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, done.metadata.uid.clone().unwrap());
    deploy_log_is_sealed(&agent, &status).await;
    let post = status.post_deploy_output.clone().unwrap();
    assert_eq!(post["outputs"]["ec2"][0]["id"], "i-0123");
    // Arguments in ascending order of name.
    assert_eq!(post["outputs"]["args"], "--region=eu-west-1 --workspace=staging");
    let applied = status.applied.clone().unwrap();
    assert_eq!(applied.tag, "v1.0.1");
    assert!(applied.digest.starts_with("sha256:") && applied.image.ends_with(&applied.digest));
    let scan = status.last_scan.clone().unwrap();
    assert_eq!((scan.tag_count, scan.selected_tag.as_deref()), (3, Some("v1.0.1")));
    let actions: Vec<(RunAction, RunResult)> = status.history.iter().map(|r| (r.action, r.result)).collect();
    assert_eq!(actions, [(RunAction::PostDeploy, RunResult::Succeeded), (RunAction::Deploy, RunResult::Succeeded)]);
    let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
    assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", done.metadata.generation));
    assert_eq!(
        status.ingress_urls,
        BTreeMap::from([("default".into(), vec!["http://plain.example.com".into(), "https://app.example.com".into()])])
    );
    let argocd = &status.credentials["argocd"];
    assert_eq!(argocd.username, "admin");
    assert_eq!(
        (
            argocd.password_secret_ref.namespace.as_str(),
            argocd.password_secret_ref.name.as_str(),
            argocd.password_secret_ref.key.as_str()
        ),
        ("argocd", "argocd-initial-admin-secret", "password")
    );
    assert_eq!(status.credentials["grafana"].username, "grafana-admin");
    assert!(!serde_json::to_string(&status).unwrap().contains("pa55"), "a password leaked into status");
    assert!(done.finalizers().contains(&meta::FINALIZER.to_owned()));
    assert_eq!(agent.job_names().await.len(), 2);
    let metrics = reqwest::get(format!("{}/metrics", agent.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("alustan_jobs_started_total{action=\"deploy\"} 1\n"), "{metrics}");
    assert!(
        metrics.contains("alustan_jobs_finished_total{action=\"post-deploy\",result=\"succeeded\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("alustan_registry_listings_total 1\n"), "{metrics}");
    let tags_seen = format!("alustan_registry_tags_seen{{repository=\"{}\"}} 3\n", agent.image_name);
    assert!(metrics.contains(&tags_seen), "{metrics}");
    assert!(metrics.contains("# TYPE alustan_reconcile_duration_seconds histogram\n"), "{metrics}");
    assert!(!metrics.contains("alustan_reconcile_duration_seconds_count 0\n"), "{metrics}");
    assert!(!metrics.contains("alustan_registry_scans_total 0\n"), "{metrics}");
    assert!(!metrics.contains("alustan_registry_scan_errors_total"), "{metrics}");
    let ready = reqwest::get(format!("{}/readyz", agent.metrics_url)).await.unwrap();
    assert_eq!(ready.status(), 200);

    // Argo CD re-applying the unchanged manifest (its own field manager) starts nothing.
    let mut manifest = serde_json::to_value(&tf).unwrap();
    manifest["metadata"] = json!({"name": "staging-cluster", "namespace": "default"});
    agent
        .terraforms
        .patch("staging-cluster", &PatchParams::apply("argocd-controller").force(), &Patch::Apply(&manifest))
        .await
        .unwrap();
    let writes = |agent: &Agent| {
        agent
            .env
            .requests()
            .count(|r| r.resource == "terraforms" && matches!(r.method.as_str(), "PATCH" | "PUT" | "POST"))
    };
    let writes_before = writes(&agent);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(agent.job_names().await.len(), 2, "a re-apply of the same manifest started a Job");
    // The reconcile it triggered found nothing to change: no status write either.
    assert_eq!(writes(&agent), writes_before, "an unchanged resource was written to");
    let after = agent.terraforms.get("staging-cluster").await.unwrap();
    assert_eq!(after.status.unwrap().history.len(), 2);

    // The resync annotation runs deploy (and post-deploy) again and is echoed.
    let token = "2026-11-22T05:00:00Z";
    let patch = json!({"metadata": {"annotations": {meta::RESYNC_REQUESTED_AT: token}}});
    agent.terraforms.patch("staging-cluster", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let resynced = agent
        .wait_for("staging-cluster", "resync handled", |tf| {
            let s = tf.status.as_ref().unwrap();
            s.last_handled_reconcile_at.as_deref() == Some(token)
                && s.state == Some(State::Completed)
                && s.history.len() == 4
        })
        .await;
    assert_eq!(agent.job_names().await.len(), 4);
    assert_eq!(resynced.status.unwrap().history[1].action, RunAction::Deploy);

    // Deletion runs destroy, then releases the resource.
    agent.terraforms.delete("staging-cluster", &DeleteParams::default()).await.unwrap();
    agent.wait_gone("staging-cluster").await;
    let reasons: Vec<String> = agent.event_reasons("staging-cluster").await.into_iter().map(|(r, _)| r).collect();
    assert!(reasons.iter().any(|r| r == "Destroying") && reasons.iter().any(|r| r == "Destroyed"), "{reasons:?}");
}

/// The deploy Job's log, read through the `pods/log` API, holds the markers and a sealed block
/// but no output value; its pad Secret existed before the Pod (no `FailedMount`) and is owned
/// by the Job, with the Job's labels.
async fn deploy_log_is_sealed(agent: &Agent, status: &alustan_shared::TerraformStatus) {
    let job = status.history.iter().find(|r| r.action == RunAction::Deploy).unwrap().job_name.clone();
    let pods: Api<Pod> = Api::namespaced(agent.client.clone(), "default");
    let pod = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.unwrap().items.remove(0);
    let log = pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap();
    let (begin, end) = meta::outputs_markers(&job);
    assert!(log.contains(&format!("\n{begin}\n{} ", meta::SEALED_HEADER)) && log.contains(&end), "{log}");
    for value in ["hunter2", "vpc-0abc", "staging\""] {
        assert!(!log.contains(value), "{value} is in the deploy log:\n{log}");
    }
    let secret =
        Api::<Secret>::namespaced(agent.client.clone(), "default").get(&meta::seal_secret_name(&job)).await.unwrap();
    let job = agent.jobs.get(&job).await.unwrap();
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), &owner.uid), ("Job", job.metadata.uid.as_ref().unwrap()));
    assert_eq!(secret.metadata.labels, job.metadata.labels);
    assert_eq!(secret.data.unwrap()[meta::SEAL_KEY].0.len(), meta::SEAL_BYTES);
    let reasons = agent.event_reasons(&pod.name_any()).await;
    assert!(reasons.iter().all(|(reason, _)| reason != "FailedMount"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deploy_is_failed_with_the_log_tail_then_stalled() {
    let agent =
        Agent::start(&[("deploy", "echo planning\necho 'Error: creating VPC: UnauthorizedOperation' >&2\nexit 1\n")])
            .await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    tf.spec.scripts.destroy = None;
    agent.create(&tf).await;
    let failed = agent.wait_for("staging-cluster", "Failed", is_state(State::Failed)).await;
    let message = failed.status.unwrap().message.unwrap();
    // One concise cause: the failing step and Terraform's `Error:` line; the tail is in the run.
    let first = "deploy failed: exit code 1: Error: creating VPC: UnauthorizedOperation (see `kubectl alustan logs staging-cluster`)";
    // The first failure shows for the retry's 1 s backoff: a slow server (the real control
    // plane on a busy CI machine) can let the poll see only the second, which names the same
    // cause.
    let stalled_prefix = "deploy failed 2 times, last: Error: creating VPC: UnauthorizedOperation; giving up";
    assert!(message == first || message.starts_with(stalled_prefix), "{message}");
    let record = failed_record(&agent).await;
    assert!(record.contains("planning") && record.contains("UnauthorizedOperation"), "{record}");
    let warnings = agent.warnings("staging-cluster", "ScriptFailed").await;
    assert!(
        warnings.iter().any(|(note, _)| note.contains("exit code 1: Error: creating VPC: UnauthorizedOperation")),
        "{warnings:?}"
    );
    // Two attempts (the test's retry budget), then Stalled until something changes.
    let stalled = agent
        .wait_for("staging-cluster", "Stalled", |tf| {
            tf.status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::STALLED))
                .is_some_and(|c| c.status == "True")
        })
        .await;
    let status = stalled.status.unwrap();
    let message = status.message.clone().unwrap();
    assert!(
        message.starts_with("deploy failed 2 times, last: Error: creating VPC: UnauthorizedOperation; giving up"),
        "the cause leads: {message}"
    );
    assert!(!message.contains("planning"), "the log tail is in the run record only: {message}");
    assert_eq!(status.history.len(), 2);
    assert!(status.history.iter().all(|r| r.result == RunResult::Failed));
    assert_eq!(agent.job_names().await.len(), 2);
    // No destroy script: deletion releases at once.
    agent.terraforms.delete("staging-cluster", &DeleteParams::default()).await.unwrap();
    agent.wait_gone("staging-cluster").await;
}

/// A Terraform-style `~>` constraint is refused at admission with the way to write it (the
/// CRD's CEL rule); the agent's own parse error (with the same hint) has unit tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_style_constraint_is_refused_at_admission_with_a_hint() {
    let agent = Agent::start(&[("deploy", "echo never\n")]).await;
    let mut tf = agent.example();
    tf.spec.container_registry.semantic_version = "~> 1.0".into();
    let refused = agent.terraforms.create(&kube::api::PostParams::default(), &tf).await.unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("`~>` is Terraform's constraint syntax; here write `~1.2.0`"), "{text}");
    assert!(!text.contains("not a semantic version constraint"), "one message for `~>`: {text}");
    tf.spec.container_registry.semantic_version = "banana".into();
    let refused = agent.terraforms.create(&kube::api::PostParams::default(), &tf).await.unwrap_err();
    assert!(refused.to_string().contains("not a semantic version constraint"), "{refused}");
    assert!(agent.job_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_resource_without_destroy_script_is_released_at_once() {
    let mut agent = Agent::start(&[("deploy", DEPLOY)]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    tf.spec.scripts.destroy = None;
    agent.create(&tf).await;
    let done = agent.wait_for("staging-cluster", "Success", is_state(State::Success)).await;
    let ready = conditions::find(&done.status.as_ref().unwrap().conditions, conditions::READY).unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(agent.job_names().await.len(), 1);
    agent.terraforms.delete("staging-cluster", &DeleteParams::default()).await.unwrap();
    agent.wait_gone("staging-cluster").await;
    let reasons: Vec<String> = agent.event_reasons("staging-cluster").await.into_iter().map(|(r, _)| r).collect();
    assert!(!reasons.iter().any(|r| r == "Destroying"), "no destroy may run: {reasons:?}");
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_outputs_and_post_deploy_without_json_fail_clearly() {
    let agent = Agent::start(&[
        ("deploy-bad", "echo applying\necho 'not json; password=hunter2' > \"$ALUSTAN_OUTPUTS\"\n"),
        ("deploy", DEPLOY),
        ("no-json", "echo 'resources:'\necho '{\"outputs\": [1,, 2]}'\n"),
    ])
    .await;
    let mut bad_outputs = agent.example();
    bad_outputs.metadata.name = Some("bad-outputs".into());
    bad_outputs.spec.scripts.deploy = "deploy-bad".into();
    bad_outputs.spec.post_deploy = None;
    agent.create(&bad_outputs).await;
    let mut no_json = agent.example();
    no_json.metadata.name = Some("no-json".into());
    no_json.spec.post_deploy.as_mut().unwrap().script = "no-json".into();
    no_json.spec.post_deploy.as_mut().unwrap().args.clear();
    agent.create(&no_json).await;

    let failed = agent.wait_for("bad-outputs", "Failed", is_state(State::Failed)).await;
    let message = failed.status.unwrap().message.unwrap();
    assert!(message.contains("outputs file is not JSON") && !message.contains("hunter2"), "{message}");
    let warnings = agent.warnings("bad-outputs", "ScriptFailed").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("outputs file is not JSON")), "{warnings:?}");
    assert!(warnings.iter().all(|(note, _)| !note.contains("hunter2")), "{warnings:?}");
    let failed = agent.wait_for("no-json", "Failed", is_state(State::Failed)).await;
    let status = failed.status.unwrap();
    let message = status.message.unwrap();
    assert!(message.contains("post-deploy printed no JSON") && message.contains("{\"outputs\": [1,, 2]}"), "{message}");
    let warnings = agent.warnings("no-json", "ScriptFailed").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("post-deploy printed no JSON")), "{warnings:?}");
    // The deploy itself succeeded and was applied.
    assert_eq!(status.applied.unwrap().tag, "v1.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_the_running_job() {
    let mut agent = Agent::start(&[("deploy", &format!("sleep 3\n{DEPLOY}"))]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    agent
        .wait_for("staging-cluster", "a running deploy", |tf| {
            tf.status.as_ref().is_some_and(|s| s.history.first().is_some_and(|r| r.result == RunResult::Running))
        })
        .await;
    agent.restart().await;
    let done = agent.wait_for("staging-cluster", "Success", is_state(State::Success)).await;
    assert_eq!(agent.job_names().await.len(), 1, "the restarted agent started a second Job");
    assert_eq!(done.status.unwrap().history.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_matching_tag_is_deployed_after_a_rescan_request() {
    let agent = Agent::start(&[("deploy", DEPLOY)]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    let first = agent.wait_for("staging-cluster", "Success", is_state(State::Success)).await;
    let first_digest = first.status.unwrap().applied.unwrap().digest;

    agent.push_other("v1.0.2", &[("deploy", "echo 'Apply complete! v1.0.2'\n")]).await;
    // The scan cache lasts the sync interval (1h here); the rescan annotation bypasses it.
    let token = "rescan-1";
    let patch = json!({"metadata": {"annotations": {meta::RESCAN_REQUESTED_AT: token}}});
    agent.terraforms.patch("staging-cluster", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let second = agent
        .wait_for("staging-cluster", "v1.0.2 applied", |tf| {
            tf.status.as_ref().is_some_and(|s| {
                s.applied.as_ref().is_some_and(|a| a.tag == "v1.0.2") && s.state == Some(State::Success)
            })
        })
        .await;
    let status = second.status.unwrap();
    assert_eq!(status.last_handled_rescan_at.as_deref(), Some(token));
    assert_ne!(status.applied.unwrap().digest, first_digest);
    assert_eq!(status.last_scan.unwrap().selected_tag.as_deref(), Some("v1.0.2"));
    assert_eq!(agent.job_names().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_registry_secret_is_an_error_naming_it() {
    let agent = Agent::start(&[("deploy", DEPLOY)]).await;
    let mut tf = agent.example();
    tf.spec.container_registry.secret_ref = Some(alustan_shared::SecretReference { name: "registry-creds".into() });
    agent.create(&tf).await;
    let errored = agent.wait_for("staging-cluster", "Error", is_state(State::Error)).await;
    let message = errored.status.unwrap().message.unwrap();
    assert!(message.contains("Secret default/registry-creds") && message.contains("does not exist"), "{message}");
    let warnings = agent.warnings("staging-cluster", "RegistryError").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("default/registry-creds")), "{warnings:?}");
    assert!(agent.job_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_during_a_deploy_waits_for_it_then_destroys() {
    let agent = Agent::start(&[("deploy", &format!("sleep 2\n{DEPLOY}")), ("destroy", DESTROY)]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    agent
        .wait_for("staging-cluster", "a running deploy", |tf| {
            tf.status.as_ref().is_some_and(|s| s.history.first().is_some_and(|r| r.result == RunResult::Running))
        })
        .await;
    agent.terraforms.delete("staging-cluster", &DeleteParams::default()).await.unwrap();
    agent.wait_gone("staging-cluster").await;
    let reasons: Vec<String> = agent.event_reasons("staging-cluster").await.into_iter().map(|(r, _)| r).collect();
    // The deploy finished (and was recorded) before the destroy started.
    let succeeded = reasons.iter().position(|r| r == "Succeeded").expect("deploy finished");
    let destroying = reasons.iter().position(|r| r == "Destroying").expect("destroy ran");
    assert!(succeeded < destroying, "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "Destroyed"), "{reasons:?}");
}

async fn install_tools(agent: &Agent) {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::api::PostParams;
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(agent.client.clone());
    for ns in ["argocd", "monitoring"] {
        let _ = namespaces.create(&pp, &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap()).await;
    }
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "app.example.com"}, {"host": "plain.example.com"}], "tls": [{"hosts": ["app.example.com"]}]}});
    let ingresses: Api<Ingress> = Api::namespaced(agent.client.clone(), "default");
    ingresses.create(&pp, &serde_json::from_value(ingress).unwrap()).await.unwrap();
    for (ns, name, data) in [
        ("argocd", "argocd-initial-admin-secret", json!({"password": "pa55-argo"})),
        ("monitoring", "grafana", json!({"admin-user": "grafana-admin", "admin-password": "pa55-grafana"})),
    ] {
        let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), ns);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        secrets.create(&pp, &serde_json::from_value(secret).unwrap()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tag_satisfying_the_constraint_is_an_error_naming_the_newest_tags() {
    let agent = Agent::start(&[("deploy", "echo never\n")]).await;
    let mut tf = agent.example();
    tf.spec.container_registry.semantic_version = "~9.0".into();
    agent.create(&tf).await;
    let errored = agent.wait_for("staging-cluster", "Error", is_state(State::Error)).await;
    let status = errored.status.unwrap();
    let message = status.message.unwrap();
    assert!(message.contains("satisfies \"~9.0\""), "{message}");
    assert!(message.contains("v2.0.0"), "the newest tags seen are named: {message}");
    let scan = status.last_scan.expect("the scan is recorded even when nothing matched");
    assert_eq!((scan.matching_count, scan.selected_tag), (0, None));
    let events = agent.event_reasons("staging-cluster").await;
    assert!(events.iter().any(|(reason, note)| reason == "RegistryError" && note.contains("~9.0")), "{events:?}");
    assert!(agent.job_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_does_not_exist_is_an_error_naming_it() {
    let agent = Agent::start(&[("deploy", "echo never\n")]).await;
    let mut tf = agent.example();
    tf.spec.container_registry.image_name = format!("{}-missing", agent.image_name);
    agent.create(&tf).await;
    let errored = agent.wait_for("staging-cluster", "Error", is_state(State::Error)).await;
    let message = errored.status.unwrap().message.unwrap();
    assert!(message.contains("does not exist") && message.contains("-missing"), "{message}");
    let events = agent.event_reasons("staging-cluster").await;
    assert!(events.iter().any(|(reason, _)| reason == "RegistryError"), "{events:?}");
    assert!(agent.job_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_registry_secret_is_an_error_that_never_quotes_it() {
    let agent = Agent::start(&[("deploy", DEPLOY)]).await;
    // Opaque, so the API accepts a body that is not a docker config (a real apiserver checks
    // the JSON only for type kubernetes.io/dockerconfigjson).
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broken-creds", "namespace": "default"},
        "stringData": {".dockerconfigjson": "{\"auths\": {\"x\": {\"auth\": \"not-base64-sup3r-s3cret\"}}"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(agent.client.clone(), "default")
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();
    let mut tf = agent.example();
    tf.spec.container_registry.secret_ref = Some(alustan_shared::SecretReference { name: "broken-creds".into() });
    agent.create(&tf).await;
    let errored = agent.wait_for("staging-cluster", "Error", is_state(State::Error)).await;
    let message = errored.status.unwrap().message.unwrap();
    assert!(message.contains("default/broken-creds"), "names the Secret: {message}");
    assert!(!message.contains("sup3r-s3cret"), "never quotes the Secret: {message}");
    let events = agent.event_reasons("staging-cluster").await;
    assert!(events.iter().all(|(_, note)| !note.contains("sup3r-s3cret")), "{events:?}");
    assert!(
        events.iter().any(|(reason, note)| reason == "RegistryError" && note.contains("default/broken-creds")),
        "{events:?}"
    );
    assert!(agent.job_names().await.is_empty());
}

/// The newest run record's message of `staging-cluster`.
async fn failed_record(agent: &Agent) -> String {
    let tf = agent.terraforms.get("staging-cluster").await.unwrap();
    tf.status.and_then(|s| s.history.first().and_then(|r| r.message.clone())).unwrap_or_default()
}

//! Helpers for the end-to-end tests: a `TestEnv`, Terraforms with realistic statuses written the
//! way the agent writes them, and the plugin run as a real process (`tokio::process`, so the
//! in-process test server keeps serving while the plugin talks to it).

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use alustan_shared::Terraform;
use alustan_testenv::TestEnv;
use alustan_testenv::registry::ImageConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-alustan");

/// Runs the plugin binary with `--kubeconfig` and nothing from the environment's kubeconfig.
pub async fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub async fn namespace(client: &kube::Client, name: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).unwrap();
    Api::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
}

/// A Terraform as a user would apply it.
pub async fn create(client: &kube::Client, namespace: &str, name: &str) -> Terraform {
    let object: Terraform = serde_json::from_value(json!({
        "apiVersion": "alustan.io/v1alpha1",
        "kind": "Terraform",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "platform"}},
        "spec": {
            "variables": {"TF_VAR_region": "eu-west-1"},
            "scripts": {"deploy": "deploy", "destroy": "destroy -c"},
            "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"},
        }
    }))
    .unwrap();
    Api::namespaced(client.clone(), namespace).create(&PostParams::default(), &object).await.unwrap()
}

/// Merge-patches `/status` as the agent would.
pub async fn set_status(client: &kube::Client, namespace: &str, name: &str, status: Value) -> Terraform {
    let api: Api<Terraform> = Api::namespaced(client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await.unwrap()
}

pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-10T11:00:00Z", "observedGeneration": 1})
}

/// What the agent writes after a successful deploy.
pub fn completed_status(namespace: &str) -> Value {
    json!({
        "state": "Completed",
        "message": "deploy succeeded",
        "observedGeneration": 1,
        "output": {"cluster_name": "staging", "endpoint": "https://10.0.0.1:6443", "node_count": 3},
        "ingressURLs": {"argocd": ["https://argocd.example.com"]},
        "credentials": {
            "argocd": {"username": "admin", "passwordSecretRef": {"namespace": namespace, "name": "argocd-admin", "key": "password"}},
            "grafana": {"username": "root", "passwordSecretRef": {"namespace": namespace, "name": "grafana-admin", "key": "password"}}
        },
        "postDeployOutput": {"dns": "ok"},
        "conditions": [
            condition("Ready", "True", "Succeeded", "deploy of 1.0.3 succeeded"),
            condition("Reconciling", "False", "Succeeded", ""),
        ],
        "applied": {"image": "alustan/infrastructure", "tag": "1.0.3",
                    "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    "appliedAt": "2026-01-10T11:00:00Z"},
        "lastScan": {"time": "2026-01-10T10:59:00Z", "image": "alustan/infrastructure", "constraint": "~1.0.0",
                     "tagCount": 6, "matchingCount": 3, "newestMatching": ["1.0.3", "1.0.2", "1.0.1"],
                     "rejected": [{"tag": "latest", "reason": "NotSemver"}, {"tag": "1.1.0", "reason": "OutsideConstraint"},
                                  {"tag": "1.0.4-rc.1", "reason": "Prerelease"}],
                     "selectedTag": "1.0.3",
                     "selectedDigest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        "history": [
            {"action": "Deploy", "jobName": "staging-deploy-2", "image": "alustan/infrastructure:1.0.3", "tag": "1.0.3",
             "startTime": "2026-01-10T10:59:30Z", "completionTime": "2026-01-10T11:00:00Z", "result": "Succeeded"},
            {"action": "Deploy", "jobName": "staging-deploy-1", "image": "alustan/infrastructure:1.0.2", "tag": "1.0.2",
             "startTime": "2026-01-09T10:00:00Z", "completionTime": "2026-01-09T10:01:00Z", "result": "Failed",
             "message": "exit code 1"}
        ]
    })
}

/// Pushes an image whose `/deploy` prints two lines, runs it as Job `job` and waits for its pod
/// to finish.
pub async fn run_job(env: &TestEnv, job_name: &str) {
    let client = env.client().unwrap();
    let image_dir = tempfile::tempdir().unwrap();
    let script = image_dir.path().join("deploy");
    // Ends with a sealed outputs block, as the agent's wrapper prints it.
    let (begin, end) = alustan_shared::meta::outputs_markers(job_name);
    let block = format!("{begin}\nsealed 40\n{}\n{}\n{end}", "9f".repeat(32), "0e".repeat(8));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho 'terraform apply: 3 added'\necho 'outputs written'\necho '{block}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
    env.registry().push_dir("iac", &["1.0.3"], image_dir.path(), &config).await.unwrap();
    let image = format!("{}/iac:1.0.3", env.registry().host_port());
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job_name, "namespace": "default"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "deploy", "image": image, "command": ["/deploy"]}]}}},
    }))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), "default").create(&PostParams::default(), &job).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods.list(&ListParams::default().labels(&format!("job-name={job_name}"))).await.unwrap();
        let phase = list.items.first().and_then(|p| p.status.as_ref()).and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the Job's pod did not finish: {phase:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The agent's leader-election Lease as the agent keeps it: the chart's labels, 15 s duration,
/// held by `holder`, last renewed `renewed_ago` before now. Creates it, or replaces its spec.
pub async fn agent_lease(client: &kube::Client, namespace: &str, holder: &str, renewed_ago: Duration) {
    use k8s_openapi::api::coordination::v1::Lease;
    let renewed = jiff::Timestamp::now() - jiff::SignedDuration::try_from(renewed_ago).unwrap();
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "alustan-agent", "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "alustan", "app.kubernetes.io/component": "agent",
                                "app.kubernetes.io/instance": "alustan"}},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": renewed.to_string(), "renewTime": renewed.to_string()},
    }))
    .unwrap();
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply("agent-test").force();
    api.patch("alustan-agent", &params, &Patch::Apply(&lease)).await.unwrap();
}

/// The agent as its Lease shows it while it runs: renewed every 2 s until the task is aborted
/// (a `--wait` ends at once, exit 6, when no agent holds its Lease).
pub async fn agent_up(client: &kube::Client) -> tokio::task::JoinHandle<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if namespaces.get_opt("alustan-system").await.unwrap().is_none() {
        namespace(client, "alustan-system").await;
    }
    agent_lease(client, "alustan-system", "alustan-agent-0", Duration::ZERO).await;
    let client = client.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            agent_lease(&client, "alustan-system", "alustan-agent-0", Duration::ZERO).await;
        }
    })
}

/// A PATH on which kubectl finds this build's plugin, as after `cargo install`.
pub fn plugin_path() -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-plugin-path");
    std::fs::create_dir_all(&dir).unwrap();
    let completer = env!("CARGO_BIN_EXE_kubectl_complete-alustan");
    for (name, target) in [("kubectl-alustan", BIN), ("kubectl_complete-alustan", completer)] {
        // Tests run in parallel processes: another one may have made the link already.
        let _ = std::os::unix::fs::symlink(target, dir.join(name));
    }
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// `kubectl alustan ARGS…` through kubectl's own plugin look-up, with `kubeconfig` only.
pub fn kubectl_alustan(kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("kubectl");
    command
        .arg("alustan")
        .args(args)
        .env("PATH", plugin_path())
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-cache"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `kubectl alustan ARGS…` to the end.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_alustan(kubeconfig, args).output().await.unwrap()
}

/// An Event about `default/staging` (uid `uid`) as the agent's recorder leaves it:
/// `(name, reason, type, note, at, count)`.
pub async fn staging_event(client: &kube::Client, uid: &str, event: (&str, &str, &str, &str, &str, i32)) {
    let (name, reason, type_, note, at, count) = event;
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "name": "staging",
                           "namespace": "default", "uid": uid},
        "reason": reason, "message": note, "type": type_, "source": {"component": "alustan-agent"},
        "count": count, "firstTimestamp": at, "lastTimestamp": at,
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default").create(&PostParams::default(), &event).await.unwrap();
}

/// Binds a Role `name` with the one rule `allowed` in `namespace` to the user `viewer` (as admin).
pub async fn grant_viewer(admin: &kube::Client, namespace: &str, name: &str, allowed: serde_json::Value) {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": [allowed],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("viewer-{name}"), "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
    });
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &serde_json::from_value(role).unwrap())
        .await
        .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &serde_json::from_value(binding).unwrap())
        .await
        .unwrap();
}

/// An RBAC-enforcing env (no kubelet) with a user `viewer` (token `viewer-token`) allowed
/// nothing yet, and an admin client.
pub async fn env_with_viewer() -> (TestEnv, kube::Client) {
    let api = alustan_testenv::apiserver::ApiServerOptions {
        rbac: true,
        tokens: vec![("viewer-token".into(), alustan_testenv::apiserver::UserInfo::user("viewer", &[]))],
        ..alustan_testenv::apiserver::ApiServerOptions::default()
    };
    let env = TestEnv::start_with(alustan_testenv::TestEnvOptions { api, kubelet: false, ..Default::default() })
        .await
        .unwrap();
    let admin = env.client().unwrap();
    (env, admin)
}

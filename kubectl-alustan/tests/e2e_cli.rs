//! The plugin's commands end to end against the test API server: the built binary, and once
//! through kubectl's own plugin mechanism. The tests play the agent by writing statuses.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use std::time::Duration;

use alustan_shared::Terraform;
use alustan_shared::meta::{RESCAN_REQUESTED_AT, RESYNC_REQUESTED_AT};
use alustan_testenv::{TestEnv, TestEnvOptions};
use e2e_support::{code, completed_status, condition, create, plugin, set_status, stderr, stdout};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

async fn secret(client: &kube::Client, name: &str, password: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {"password": password},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default").create(&PostParams::default(), &secret).await.unwrap();
}

#[tokio::test]
async fn get_describe_outputs_credentials_suspend() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    let kc = env.kubeconfig();
    let staging = create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;
    e2e_support::namespace(&client, "infra").await;
    create(&client, "infra", "network").await;
    set_status(
        &client,
        "infra",
        "network",
        json!({"state": "Failed", "message": "deploy failed: exit code 1\nError: quota exceeded",
               "conditions": [condition("Ready", "False", "DeployFailed", "exit code 1")]}),
    )
    .await;

    // get -A: kubectl's columns, NAMESPACE first.
    let out = plugin(kc, &["get", "-A"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAMESPACE", "NAME", "STATE", "VERSION", "READY", "SUSPENDED", "AGE"]
    );
    assert!(
        lines.iter().any(|l| l.split_whitespace().take(5).eq(["default", "staging", "Completed", "1.0.3", "True"])),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.split_whitespace().take(5).eq(["infra", "network", "Failed", "<none>", "False"])),
        "{text}"
    );

    // wide adds the message on one line; the namespace comes from the kubeconfig context.
    let out = plugin(kc, &["get", "-o", "wide"]).await;
    assert!(stdout(&out).starts_with("NAME"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("network"));
    let out = plugin(kc, &["-n", "infra", "get", "-o", "wide"]).await;
    assert!(stdout(&out).contains("deploy failed: exit code 1 ⏎ Error: quota exceeded"), "{}", stdout(&out));
    let out = plugin(kc, &["get", "-A", "-l", "team=nobody"]).await;
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("No resources found"));
    let out = plugin(kc, &["get", "staging", "-o", "json"]).await;
    let parsed: Terraform = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.metadata.name.as_deref(), Some("staging"));

    // not found: the similar names are listed.
    let out = plugin(kc, &["describe", "stagng"]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("not found in namespace \"default\"") && stderr(&out).contains("did you mean: staging"),
        "{}",
        stderr(&out)
    );

    // describe: the scan explanation, conditions, references, runs and Events.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "staging.1", "namespace": "default"},
        "involvedObject": {"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "name": "staging",
                           "namespace": "default", "uid": staging.metadata.uid.clone().unwrap()},
        "reason": "DeploySucceeded", "message": "deploy of 1.0.3 succeeded", "type": "Normal",
        "source": {"component": "alustan-agent"}, "count": 1,
        "firstTimestamp": "2026-01-10T11:00:00Z", "lastTimestamp": "2026-01-10T11:00:00Z",
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let out = plugin(kc, &["describe", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "Why this version (last registry scan)",
        "~1.0.0 matched 3 of 6 tags",
        "latest (not semver), 1.1.0 (outside constraint), 1.0.4-rc.1 (prerelease)",
        "Selected:",
        "1.0.3 sha256:0123456789ab",
        "Ready       True    Succeeded",
        "https://argocd.example.com",
        "argocd: user admin, password in default/argocd-admin key password",
        "\"dns\": \"ok\"",
        "Deploy      Failed    1.0.2",
        "Events:",
        "DeploySucceeded",
        "alustan-agent",
    ] {
        assert!(text.contains(expected), "describe lacks {expected:?}:\n{text}");
    }

    outputs_credentials_suspend_version(&client, kc).await;
}

async fn outputs_credentials_suspend_version(client: &kube::Client, kc: &std::path::Path) {
    // outputs -o json is exactly status.output.
    let out = plugin(kc, &["outputs", "staging", "-o", "json"]).await;
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, completed_status("default")["output"]);

    // credentials: masked; --reveal as admin prints the one present, names the missing one.
    let out = plugin(kc, &["credentials", "staging"]).await;
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("********") && !stdout(&out).contains("s3cret"));
    secret(client, "argocd-admin", "s3cret-argo").await;
    let out = plugin(kc, &["credentials", "staging", "--reveal"]).await;
    assert!(stdout(&out).contains("s3cret-argo"), "{}", stdout(&out));
    assert_eq!(code(&out), 1, "grafana's Secret is missing");
    assert!(stderr(&out).contains("Secret \"grafana-admin\" not found in namespace \"default\""), "{}", stderr(&out));
    secret(client, "grafana-admin", "s3cret-graf").await;
    let out = plugin(kc, &["credentials", "staging", "--reveal"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("s3cret-graf"));

    // suspend/resume patch spec.suspend and warn about GitOps.
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let out = plugin(kc, &["suspend", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("make the change in git"));
    assert!(api.get("staging").await.unwrap().spec.suspend);
    let out = plugin(kc, &["resume", "--all", "-A"]).await;
    assert_eq!(code(&out), 2, "--all without a terminal needs --yes");
    assert!(stderr(&out).contains("--yes"));
    let out = plugin(kc, &["resume", "--all", "--yes", "-A"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!api.get("staging").await.unwrap().spec.suspend);
    // Resume says whether a run starts (this resource never deployed: one does).
    assert!(stdout(&out).contains("terraform default/staging resumed: "), "{}", stdout(&out));
    assert!(stdout(&out).contains("a deploy"), "{}", stdout(&out));

    // version: the agent is not deployed here; the user is told how to install it or where to look.
    let out = plugin(kc, &["version"]).await;
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(
        text.contains(
            "agent: not found (no Lease labelled app.kubernetes.io/name=alustan,app.kubernetes.io/component=agent in any namespace)"
        ),
        "{text}"
    );
    assert!(text.contains("is the agent installed? `helm install alustan"), "{text}");
    assert!(text.contains("--agent-namespace NS"), "{text}");
    assert!(text.contains("agent version: not found"), "{text}");
}

/// The test plays the agent: waits for the annotation, then reports the run.
async fn play_agent(client: kube::Client, name: &'static str, end: &'static str) -> String {
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let token = loop {
        let object = api.get(name).await.unwrap();
        if let Some(token) = object.metadata.annotations.and_then(|a| a.get(RESYNC_REQUESTED_AT).cloned()) {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    set_status(
        &client,
        "default",
        name,
        json!({"state": "Progressing", "message": "deploying 1.0.3",
               "conditions": [condition("Reconciling", "True", "Deploying", "deploying 1.0.3")]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_status(
        &client,
        "default",
        name,
        json!({"state": end, "message": format!("deploy {end}"), "lastHandledReconcileAt": token,
               "conditions": [condition("Reconciling", "False", end, "")]}),
    )
    .await;
    token
}

#[tokio::test]
async fn sync_wait_follows_the_run_and_fails_with_it() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    let kc = env.kubeconfig().to_path_buf();
    let before = create(&client, "default", "staging").await;
    create(&client, "default", "broken").await;
    let _agent = e2e_support::agent_up(&client).await;

    let agent = tokio::spawn(play_agent(client.clone(), "staging", "Completed"));
    let out = plugin(&kc, &["sync", "staging", "--wait", "--timeout", "60s"]).await;
    let token = agent.await.unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("requested at {token}")), "{text}");
    assert!(text.contains("Progressing (Deploying): deploying 1.0.3"), "{text}");
    assert!(text.contains("run ended Completed"), "{text}");
    // Only the annotation changed: the spec (GitOps-owned) did not.
    let after = Api::<Terraform>::namespaced(client.clone(), "default").get("staging").await.unwrap();
    assert_eq!(after.spec, before.spec);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert!(token.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {token}");

    let agent = tokio::spawn(play_agent(client.clone(), "broken", "Failed"));
    let out = plugin(&kc, &["sync", "broken", "--wait", "--timeout", "60s"]).await;
    agent.await.unwrap();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("run ended Failed: deploy Failed"), "{}", stderr(&out));

    // Nobody answers: --timeout ends the wait with exit 3 and says where to look.
    let out = plugin(&kc, &["sync", "broken", "--wait", "--timeout", "1s"]).await;
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("timed out after 1s"), "{}", stderr(&out));

    // resync sets the rescan annotation too, with the same token.
    let out = plugin(&kc, &["resync", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let annotations =
        Api::<Terraform>::namespaced(client, "default").get("staging").await.unwrap().metadata.annotations.unwrap();
    assert_eq!(annotations.get(RESCAN_REQUESTED_AT), annotations.get(RESYNC_REQUESTED_AT));
    assert!(annotations.contains_key(RESCAN_REQUESTED_AT));
}

#[tokio::test]
async fn crd_not_installed_says_how_to_install_it() {
    let env = TestEnv::start_with(TestEnvOptions { crds_dir: None, kubelet: false, ..TestEnvOptions::default() })
        .await
        .unwrap();
    for args in [&["get", "-A"][..], &["describe", "staging"][..]] {
        let out = plugin(env.kubeconfig(), args).await;
        assert_eq!(code(&out), 1, "{args:?}");
        let text = stderr(&out);
        assert!(text.contains("the Terraform CRD (terraforms.alustan.io) is not installed"), "{text}");
        assert!(text.contains("kubectl apply -f crds/terraform.yaml"), "{text}");
    }
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = tokio::process::Command::new(e2e_support::BIN).args(["get", "-o", "xml"]).output().await.unwrap();
    assert_eq!(code(&out), 2);
}

/// testenv serves no apps/v1 Deployments, so the agent is found through its Pod (the fallback),
/// by the chart's labels; `--agent-namespace` restricts the look-up.
#[tokio::test]
async fn version_names_the_agent_from_its_pod() {
    let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "alustan-agent-5d8f", "namespace": "default",
                     "labels": {"app.kubernetes.io/name": "alustan", "app.kubernetes.io/component": "agent",
                                "app.kubernetes.io/instance": "alustan"}},
        "spec": {"containers": [{"name": "agent", "image": "ghcr.io/alustan/agent:0.3.1"}]},
    }))
    .unwrap();
    Api::namespaced(env.client().unwrap(), "default").create(&PostParams::default(), &pod).await.unwrap();
    let out = plugin(env.kubeconfig(), &["version"]).await;
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with(&format!("kubectl-alustan {}", env!("CARGO_PKG_VERSION"))), "{}", stdout(&out));
    assert!(stdout(&out).contains("agent version: 0.3.1 (default/alustan-agent-5d8f)"), "{}", stdout(&out));
    let out = plugin(env.kubeconfig(), &["version", "--agent-namespace", "default"]).await;
    assert!(stdout(&out).contains("agent version: 0.3.1 (default/alustan-agent-5d8f)"), "{}", stdout(&out));
    let out = plugin(env.kubeconfig(), &["version", "--agent-namespace", "kube-system"]).await;
    assert!(stdout(&out).contains("agent version: not found"), "{}", stdout(&out));
    assert!(stdout(&out).contains("in namespace \"kube-system\""), "{}", stdout(&out));
}

/// The agent's health comes from its leader-election Lease: fresh → up, past renewTime +
/// leaseDuration → stale, none in the namespace asked for → not found.
#[tokio::test]
async fn version_reports_agent_health_from_its_lease() {
    let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
    let client = env.client().unwrap();
    e2e_support::namespace(&client, "alustan-system").await;
    e2e_support::agent_lease(&client, "alustan-system", "alustan-agent-7d9f-x2", Duration::from_secs(1)).await;
    let out = plugin(env.kubeconfig(), &["version"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("agent: up (leader alustan-agent-7d9f-x2, renewed "), "{text}");

    // The agent stopped renewing 3 minutes ago.
    e2e_support::agent_lease(&client, "alustan-system", "alustan-agent-7d9f-x2", Duration::from_secs(181)).await;
    let out = plugin(env.kubeconfig(), &["version", "--agent-namespace", "alustan-system"]).await;
    assert!(stdout(&out).contains("agent: stale (last renewed 3m"), "{}", stdout(&out));
    assert!(stdout(&out).contains("ago by alustan-agent-7d9f-x2)"), "{}", stdout(&out));

    // Looking in another namespace finds nothing, and says where it looked.
    let out = plugin(env.kubeconfig(), &["version", "--agent-namespace", "default"]).await;
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("agent: not found (no Lease labelled"), "{}", stdout(&out));
    assert!(stdout(&out).contains("in namespace \"default\")"), "{}", stdout(&out));
}

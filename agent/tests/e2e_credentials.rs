//! `--credential-sources` end to end: what `status.credentials` holds after a deploy, as the
//! chart's ServiceAccount (Secrets `get`, and `list`/`watch` of the sources' names only).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses some of the shared helpers
mod e2e;

use alustan_shared::State;
use e2e::Agent;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const DEPLOY: &str = "echo deployed\n";

async fn secret(agent: &Agent, namespace: &str, name: &str, data: serde_json::Value) {
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(agent.client.clone());
    let _ = namespaces.create(&pp, &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap()).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), namespace);
    secrets.create(&pp, &serde_json::from_value(secret).unwrap()).await.unwrap();
}

async fn deployed(agent: &Agent) -> alustan_shared::TerraformStatus {
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    let done = agent
        .wait_for("staging-cluster", "Success", |tf| tf.status.as_ref().and_then(|s| s.state) == Some(State::Success))
        .await;
    done.status.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_source_replaces_the_defaults_and_its_first_present_secret_wins() {
    let sources = json!([{
        "name": "vault",
        "namespace": "vault",
        "secrets": [{"name": "vault-root", "key": "token"}, {"name": "vault-unseal", "key": "root-token"}],
        "usernameKey": "user",
        "username": "root"
    }, {
        "name": "keycloak",
        "namespace": "keycloak",
        "secrets": [{"name": "keycloak-admin", "key": "password"}],
        "username": "kc-admin"
    }]);
    let agent = Agent::start_with(&[("deploy", DEPLOY)], &[], |config| {
        config.credential_sources = Some(sources.to_string());
    })
    .await;
    // vault-root is absent: the second candidate wins; its username comes from usernameKey.
    secret(&agent, "vault", "vault-unseal", json!({"root-token": "s3cr3t-vault", "user": "operator"})).await;
    // keycloak-admin lacks the key: nothing for keycloak.
    secret(&agent, "keycloak", "keycloak-admin", json!({"other": "x"})).await;
    // A default source's Secret: not looked at once the list is configured.
    secret(&agent, "argocd", "argocd-initial-admin-secret", json!({"password": "pa55-argo"})).await;

    let status = deployed(&agent).await;
    assert_eq!(status.credentials.keys().collect::<Vec<_>>(), ["vault"]);
    let vault = &status.credentials["vault"];
    assert_eq!(vault.username, "operator");
    let reference = &vault.password_secret_ref;
    assert_eq!(
        (reference.namespace.as_str(), reference.name.as_str(), reference.key.as_str()),
        ("vault", "vault-unseal", "root-token")
    );
    let text = serde_json::to_string(&status).unwrap();
    assert!(!text.contains("s3cr3t-vault") && !text.contains("pa55-argo"), "a password leaked into status");
    // The sources' Secrets came from their watches (by name, as the chart's resourceNames
    // allow), not from a GET per deploy: created after the agent started, they were still seen.
    let agent_reads: Vec<_> = agent
        .env
        .requests()
        .records()
        .into_iter()
        .filter(|r| r.user.starts_with("system:serviceaccount:") && r.resource == "secrets")
        .filter(|r| r.namespace == "vault" || r.namespace == "keycloak")
        .collect();
    let verbs = |verb: &str| agent_reads.iter().filter(|r| r.verb == verb).count();
    assert_eq!(verbs("get"), 0, "{agent_reads:#?}");
    // Each watch starts with a list by the same name (the real API server's audit log records
    // a watch only once it ends).
    assert!(verbs("list") >= 3 && agent_reads.iter().all(|r| r.query.contains("metadata.name")), "{agent_reads:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_list_gathers_no_credentials() {
    let agent = Agent::start_with(&[("deploy", DEPLOY)], &[], |config| {
        config.credential_sources = Some("[]".into());
    })
    .await;
    secret(&agent, "argocd", "argocd-initial-admin-secret", json!({"password": "pa55-argo"})).await;
    let status = deployed(&agent).await;
    assert!(status.credentials.is_empty(), "{:?}", status.credentials);
    // Nothing was even read.
    let reads = agent
        .env
        .requests()
        .records()
        .into_iter()
        .filter(|r| r.user.starts_with("system:serviceaccount:") && r.resource == "secrets" && r.verb == "get")
        .count();
    assert_eq!(reads, 0);
}

//! `tree` and describe's dependency lines end to end against the test API server: the built
//! binary, with statuses written as the agent writes them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use alustan_shared::Terraform;
use alustan_testenv::TestEnv;
use e2e_support::{code, condition, plugin, set_status, stderr, stdout};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

async fn apply(client: &kube::Client, namespace: &str, name: &str, extra: serde_json::Value) {
    let mut object = json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scripts": {"deploy": "deploy"},
                 "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"}}
    });
    for (key, value) in extra.as_object().unwrap() {
        object["spec"][key] = value.clone();
    }
    let object: Terraform = serde_json::from_value(object).unwrap();
    Api::namespaced(client.clone(), namespace).create(&PostParams::default(), &object).await.unwrap();
}

#[tokio::test]
async fn tree_draws_needs_and_dependants_and_describe_says_where_variables_come_from() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    let kc = env.kubeconfig();
    e2e_support::namespace(&client, "security").await;
    apply(&client, "default", "network", json!({})).await;
    apply(&client, "security", "iam", json!({})).await;
    apply(
        &client,
        "default",
        "cluster",
        json!({"dependsOn": [{"name": "network"}, {"name": "iam", "namespace": "security"}],
               "variablesFrom": [{"kind": "Terraform", "name": "network", "variables": {"TF_VAR_vpc_id": "vpc_id"}},
                                 {"kind": "Secret", "name": "api", "variables": {"TF_VAR_key": "key"}}]}),
    )
    .await;
    apply(&client, "default", "app", json!({"dependsOn": [{"name": "cluster"}]})).await;
    let ready = json!({"state": "Success", "conditions": [condition("Ready", "True", "Succeeded", "up to date")]});
    for (namespace, name) in [("default", "network"), ("security", "iam"), ("default", "cluster")] {
        set_status(&client, namespace, name, ready.clone()).await;
    }
    let waiting = condition("Ready", "False", "DependencyNotReady", "waiting for dependency default/cluster");
    set_status(&client, "default", "app", json!({"state": "Progressing", "conditions": [waiting]})).await;

    // The other namespace's dependency is read by name, outside the listed scope.
    let out = plugin(kc, &["tree", "cluster"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "default/cluster  Success, Ready\n\
         ├── depends on default/network  Success, Ready\n\
         ├── depends on security/iam  Success, Ready\n\
         └── reads outputs of default/network  Success, Ready\n\
         needed by:\n\
         └── default/app  Progressing, not Ready (DependencyNotReady)\n"
    );
    let out = plugin(kc, &["tree", "missing"]).await;
    assert_ne!(code(&out), 0);

    let out = plugin(kc, &["describe", "cluster"]).await;
    let text = stdout(&out);
    assert!(text.contains("Depends on:    default/network, security/iam\n"), "{text}");
    assert!(text.contains("Variable from: TF_VAR_vpc_id ← output vpc_id of Terraform default/network\n"), "{text}");
    assert!(text.contains("Variable from: TF_VAR_key ← key key of Secret api (sensitive)\n"), "{text}");
}

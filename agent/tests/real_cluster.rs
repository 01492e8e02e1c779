//! An end-to-end check against a REAL cluster (kind, k3d, or any), ignored by default because
//! CI has none. Recipe (README, "Testing against a real cluster"):
//!
//! ```sh
//! kind create cluster
//! helm install alustan charts/alustan -n alustan-system --create-namespace \
//!   --set image.repository=... --set image.tag=...
//! ALUSTAN_E2E_IMAGE=ghcr.io/you/infrastructure ALUSTAN_E2E_CONSTRAINT='>=1.0.0' \
//!   cargo test -p alustan-agent --test real_cluster -- --ignored --nocapture
//! ```
//!
//! It uses the current kubeconfig context, creates a namespace of its own, applies one
//! `Terraform` whose image is `ALUSTAN_E2E_IMAGE` (its `deploy` script must succeed; set
//! `ALUSTAN_E2E_DEPLOY` if it is not called `deploy`), waits for `Ready=True`, checks the status
//! the agent wrote, then deletes the namespace.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alustan_shared::{State, Terraform, conditions};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test]
#[ignore = "needs a real cluster with the chart installed: see README, Testing against a real cluster"]
async fn a_terraform_on_a_real_cluster_becomes_ready() {
    let image = std::env::var("ALUSTAN_E2E_IMAGE").expect("set ALUSTAN_E2E_IMAGE to an IaC image repository");
    let timeout = Duration::from_secs(env_or("ALUSTAN_E2E_TIMEOUT_SECONDS", "600").parse().unwrap());
    let client = Client::try_default().await.expect("a kubeconfig with a current context");
    let namespace = format!("alustan-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(namespace.clone()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();

    let terraforms: Api<Terraform> = Api::namespaced(client, &namespace);
    let mut scripts = serde_json::json!({"deploy": env_or("ALUSTAN_E2E_DEPLOY", "deploy")});
    if let Ok(destroy) = std::env::var("ALUSTAN_E2E_DESTROY") {
        scripts["destroy"] = destroy.into();
    }
    let tf: Terraform = serde_json::from_value(serde_json::json!({
        "apiVersion": "alustan.io/v1alpha1",
        "kind": "Terraform",
        "metadata": {"name": "e2e"},
        "spec": {
            "scripts": scripts,
            "containerRegistry": {
                "provider": "oci",
                "imageName": image,
                "semanticVersion": env_or("ALUSTAN_E2E_CONSTRAINT", "*"),
            },
        },
    }))
    .unwrap();
    terraforms.create(&PostParams::default(), &tf).await.unwrap();

    let start = Instant::now();
    let tf = loop {
        let tf = terraforms.get("e2e").await.unwrap();
        let status = tf.status.clone().unwrap_or_default();
        if conditions::find(&status.conditions, conditions::READY).is_some_and(|c| c.status == conditions::TRUE) {
            break tf;
        }
        assert!(
            !matches!(status.state, Some(State::Failed | State::Error)),
            "the run ended {:?}: {}",
            status.state,
            status.message.unwrap_or_default()
        );
        assert!(start.elapsed() < timeout, "not Ready after {timeout:?}: {status:#?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let status = tf.status.unwrap();
    let applied = status.applied.expect("status.applied names the image");
    assert!(applied.image.starts_with(&image), "applied {} is not from {image}", applied.image);
    assert!(applied.digest.starts_with("sha256:"), "applied digest {}", applied.digest);
    assert_eq!(status.state, Some(State::Completed));

    namespaces.delete(&namespace, &DeleteParams::default()).await.unwrap();
}

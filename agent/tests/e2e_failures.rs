//! Every failure reaches the user: each class ends in a specific status message and a Warning
//! Event within a bounded time, and a deletion always ends.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses part of the harness
mod e2e;

use alustan_shared::{State, Terraform, conditions, meta};
use e2e::Agent;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};

const DEPLOY: &str = "echo deployed\n";

fn message(tf: &Terraform) -> String {
    tf.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default()
}

fn state(tf: &Terraform) -> Option<State> {
    tf.status.as_ref().and_then(|s| s.state)
}

/// An `Error` naming `field`, `Stalled`, a Warning Event with that reason, and no Job.
async fn assert_spec_error(agent: &Agent, name: &str, field: &str) {
    let failed = agent.wait_for(name, field, |tf| state(tf) == Some(State::Error) && message(tf).contains(field)).await;
    let stalled = failed.status.as_ref().and_then(|s| conditions::find(&s.conditions, conditions::STALLED).cloned());
    assert_eq!(stalled.map(|c| c.status), Some("True".to_owned()), "{:#?}", failed.status);
    let warnings = agent.warnings(name, conditions::reason::INVALID_SPEC).await;
    assert!(warnings.iter().any(|(note, _)| note.contains(field)), "{warnings:?}");
    assert!(agent.job_names().await.is_empty(), "no Job runs for an invalid spec");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_errors_are_reported_before_any_job_naming_the_field() {
    let agent = Agent::start(&[("deploy", DEPLOY)]).await;
    let mut unbalanced = agent.example();
    unbalanced.metadata.name = Some("unbalanced".into());
    unbalanced.spec.scripts.deploy = "deploy 'oops".into();
    agent.create(&unbalanced).await;
    let mut bad_var = agent.example();
    bad_var.metadata.name = Some("bad-var".into());
    bad_var.spec.variables.insert("1BAD".into(), "x".into());
    agent.create(&bad_var).await;
    let mut missing = agent.example();
    missing.metadata.name = Some("missing-arg".into());
    missing.spec.variables.remove("TF_VAR_region");
    agent.create(&missing).await;
    assert_spec_error(&agent, "unbalanced", "spec.scripts.deploy").await;
    assert_spec_error(&agent, "bad-var", "spec.variables[\"1BAD\"]").await;
    assert_spec_error(&agent, "missing-arg", "spec.postDeploy.args.region").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_253_character_name_deploys_with_outputs_and_is_destroyed() {
    let agent = Agent::start(&[
        ("deploy", "echo '{\"vpc\":{\"value\":\"v\",\"sensitive\":false},\"pw\":{\"value\":\"p\",\"sensitive\":true}}' > \"$ALUSTAN_OUTPUTS\"\n"),
        ("aws-resource", "echo '{\"outputs\": {}}'\n"),
        ("destroy", "echo destroyed\n"),
    ])
    .await;
    let name = format!("{}.{}", "a".repeat(126), "b".repeat(126));
    assert_eq!(name.len(), 253);
    let mut tf = agent.example();
    tf.metadata.name = Some(name.clone());
    agent.create(&tf).await;
    let done = agent.wait_for(&name, "Completed", |tf| state(tf) == Some(State::Completed)).await;
    let status = done.status.unwrap();
    assert_eq!(status.output["vpc"], "v");
    let secret = status.sensitive_outputs_secret.expect("the sensitive outputs Secret");
    assert!(secret.len() <= 253, "{secret}");
    agent.terraforms.delete(&name, &DeleteParams::default()).await.unwrap();
    agent.wait_gone(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsplittable_destroy_script_says_how_to_release_and_skip_destroy_does() {
    let agent = Agent::start(&[("deploy", DEPLOY), ("aws-resource", "echo '{\"outputs\": {}}'\n")]).await;
    let tf = agent.example();
    agent.create(&tf).await;
    agent.wait_for("staging-cluster", "Completed", |tf| state(tf) == Some(State::Completed)).await;
    // Broken after the deploy (a spec edit), then deleted.
    let patch = serde_json::json!({"spec": {"scripts": {"destroy": "destroy \"unterminated"}}});
    agent
        .terraforms
        .patch("staging-cluster", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    agent.terraforms.delete("staging-cluster", &DeleteParams::default()).await.unwrap();
    let stuck = agent
        .wait_for("staging-cluster", "a destroy that cannot start", |tf| {
            state(tf) == Some(State::Error) && message(tf).contains("spec.scripts.destroy")
        })
        .await;
    assert!(message(&stuck).contains(meta::SKIP_DESTROY), "says how to release it: {}", message(&stuck));
    let warnings = agent.warnings("staging-cluster", conditions::reason::INVALID_SPEC).await;
    assert!(warnings.iter().any(|(note, _)| note.contains("spec.scripts.destroy")), "{warnings:?}");
    let skip = serde_json::json!({"metadata": {"annotations": {meta::SKIP_DESTROY: "true"}}});
    agent
        .terraforms
        .patch("staging-cluster", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&skip))
        .await
        .unwrap();
    agent.wait_gone("staging-cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_namespace_ends_even_though_destroy_cannot_start_there() {
    let agent = Agent::start(&[
        ("deploy", DEPLOY),
        ("aws-resource", "echo '{\"outputs\": {}}'\n"),
        ("destroy", "echo destroyed\n"),
    ])
    .await;
    let namespaces: Api<Namespace> = Api::all(agent.client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta { name: Some("doomed".into()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let mut tf = agent.example();
    tf.metadata.namespace = Some("doomed".into());
    let api: Api<Terraform> = Api::namespaced(agent.client.clone(), "doomed");
    api.create(&PostParams::default(), &tf).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let current = api.get("staging-cluster").await.unwrap();
        if state(&current) == Some(State::Completed) {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "not Completed: {:#?}", current.status);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The terminating namespace refuses the destroy's Job (a destroy has no seal Secret unless
    // it has sensitive variables) and the Events with 403.
    agent.expect_forbidden("/api/v1/namespaces/doomed/");
    agent.expect_forbidden("/apis/batch/v1/namespaces/doomed/");
    agent.expect_forbidden("/apis/events.k8s.io/v1/namespaces/doomed/");
    namespaces.delete("doomed", &DeleteParams::default()).await.unwrap();
    let start = std::time::Instant::now();
    while let Some(left) = api.get_opt("staging-cluster").await.unwrap() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the resource still holds the namespace: {:?} {:#?}",
            left.finalizers(),
            left.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A listener that accepts connections and never answers: a hung registry.
async fn silent_registry() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (host, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_registry_delays_only_its_own_resources_which_report_it() {
    let (hung, _listener) = silent_registry().await;
    let agent = Agent::start_with(
        &[("deploy", DEPLOY), ("aws-resource", "echo '{\"outputs\": {}}'\n")],
        std::slice::from_ref(&hung),
        |config| {
            config.registry_timeout = std::time::Duration::from_secs(2);
            config.scan_deadline = std::time::Duration::from_secs(6);
            config.scans_per_registry = 2;
        },
    )
    .await;
    // Forty resources on the hung registry first (more than the 32 reconcile slots), then one on
    // the healthy registry.
    for i in 0..HUNG {
        let mut tf = agent.example();
        tf.metadata.name = Some(format!("hung-{i}"));
        tf.spec.container_registry.image_name = format!("{hung}/team/infra");
        agent.create(&tf).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    agent.create(&agent.example()).await;
    agent.wait_for("staging-cluster", "Completed", |tf| state(tf) == Some(State::Completed)).await;
    let healthy = started.elapsed();
    println!("healthy resource Completed {healthy:?} after {HUNG} resources on a hung registry");
    assert!(
        healthy < std::time::Duration::from_secs(15),
        "the healthy resource waited {healthy:?} behind a hung registry"
    );
    // Every hung resource ends in an Error naming its registry within the deadline and slack.
    for i in 0..HUNG {
        let name = format!("hung-{i}");
        let failed = agent
            .wait_for(&name, "a registry error", |tf| state(tf) == Some(State::Error) && message(tf).contains(&hung))
            .await;
        let text = message(&failed);
        assert!(text.contains("within 6s") || text.contains("paused") || text.contains("timed out"), "{text}");
    }
    println!("every hung resource reported its registry error after {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

const HUNG: usize = 40;

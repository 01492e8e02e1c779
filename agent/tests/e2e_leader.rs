//! Leader election end to end: replicas of the agent on one testenv, each running
//! `run_with_leader_election` as the chart's ServiceAccount (so with only the Role's `create`
//! and `get`/`update` on the named Lease).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses some of the shared helpers
mod e2e;

use std::time::{Duration, Instant};

use alustan_shared::State;
use e2e::Agent;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

const DEPLOY: &str = "echo deployed\n";

async fn leases(agent: &Agent) -> (Api<Lease>, String) {
    let (name, namespace) = Agent::lease_location().await;
    (Api::namespaced(agent.client.clone(), &namespace), name)
}

/// The Lease's spec once `check` holds (polls; panics after 40 s).
async fn wait_lease(agent: &Agent, what: &str, check: impl Fn(&LeaseSpec) -> bool) -> Lease {
    let (api, name) = leases(agent).await;
    let start = Instant::now();
    loop {
        if let Some(lease) = api.get_opt(&name).await.unwrap()
            && check(lease.spec.as_ref().unwrap())
        {
            return lease;
        }
        assert!(start.elapsed() < Duration::from_secs(40), "timed out waiting for the Lease: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn holder(spec: &LeaseSpec) -> &str {
    spec.holder_identity.as_deref().unwrap_or_default()
}

async fn metrics(url: &str) -> String {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The example resource with only a deploy script (one Job per run).
fn resource(agent: &Agent, name: &str) -> alustan_shared::Terraform {
    let mut tf = agent.example();
    tf.metadata.name = Some(name.into());
    tf.spec.post_deploy = None;
    tf
}

fn succeeded(tf: &alustan_shared::Terraform) -> bool {
    tf.status.as_ref().and_then(|s| s.state) == Some(State::Success)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_holder_and_only_it_runs_jobs() {
    let mut agent = Agent::start(&[("deploy", DEPLOY)]).await;
    agent.stop_unelected().await;
    let a = agent.spawn_elected("agent-a").await;
    let b = agent.spawn_elected("agent-b").await;
    let lease = wait_lease(&agent, "a holder", |s| !holder(s).is_empty()).await;
    let spec = lease.spec.clone().unwrap();
    let (leader, standby) = if holder(&spec) == "agent-a" { (&a, &b) } else { (&b, &a) };
    assert_eq!(holder(&spec), leader.identity);
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
    let labels = lease.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "alustan");
    assert_eq!(labels["app.kubernetes.io/component"], "agent");

    agent.create(&resource(&agent, "one")).await;
    agent.wait_for("one", "Success", succeeded).await;
    assert_eq!(agent.job_names().await.len(), 1);
    let leading = metrics(&leader.metrics_url).await;
    assert!(leading.contains("alustan_leader 1\n"), "{leading}");
    assert!(leading.contains("alustan_jobs_started_total{action=\"deploy\"} 1\n"), "{leading}");
    let standing_by = metrics(&standby.metrics_url).await;
    assert!(standing_by.contains("alustan_leader 0\n"), "{standing_by}");
    assert!(
        standing_by.contains("alustan_reconcile_duration_seconds_count 0\n"),
        "the standby reconciled: {standing_by}"
    );
    assert!(!standing_by.contains("alustan_jobs_started_total"), "{standing_by}");
    // The standby is ready (healthy) all the same.
    assert_eq!(reqwest::get(format!("{}/readyz", standby.metrics_url)).await.unwrap().status(), 200);

    // The leader keeps renewing (every 2 s) in the same term.
    let renewed = spec.renew_time.clone().unwrap().0;
    let later = wait_lease(&agent, "a renewal", |s| s.renew_time.as_ref().is_some_and(|t| t.0 > renewed)).await;
    let later = later.spec.unwrap();
    assert_eq!(holder(&later), leader.identity);
    assert_eq!(later.acquire_time, spec.acquire_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_releases_the_lease_and_the_standby_takes_over_before_expiry() {
    let mut agent = Agent::start(&[("deploy", DEPLOY)]).await;
    agent.stop_unelected().await;
    let mut first = agent.spawn_elected("agent-first").await;
    wait_lease(&agent, "the first replica leads", |s| holder(s) == "agent-first").await;
    let second = agent.spawn_elected("agent-second").await;

    let stopped_at = jiff::Timestamp::now();
    first.stop();
    let ended = tokio::time::timeout(Duration::from_secs(30), &mut first.task).await.unwrap().unwrap();
    assert!(ended.is_ok(), "a graceful stop is not an error: {ended:?}");
    assert!(metrics(&first.metrics_url).await.contains("alustan_leader 0\n"));

    let lease = wait_lease(&agent, "the standby leads", |s| holder(s) == "agent-second").await;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
    // The first leader renewed at most 2 s before stopping, so waiting for expiry would take
    // at least 13 s more: an earlier acquisition means the Lease was released.
    let acquired = spec.acquire_time.unwrap().0;
    assert!(acquired.duration_since(stopped_at) < jiff::SignedDuration::from_secs(10), "acquired at {acquired}");

    agent.create(&resource(&agent, "after")).await;
    agent.wait_for("after", "Success", succeeded).await;
    let text = metrics(&second.metrics_url).await;
    assert!(
        text.contains("alustan_leader 1\n") && text.contains("alustan_jobs_started_total{action=\"deploy\"} 1\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_of_a_dead_holder_is_taken_only_after_it_expires() {
    let mut agent = Agent::start(&[("deploy", DEPLOY)]).await;
    agent.stop_unelected().await;
    let (api, name) = leases(&agent).await;
    let dead_renewal = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(10);
    let stale = Lease {
        metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("dead-pod".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(dead_renewal)),
            renew_time: Some(MicroTime(dead_renewal)),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }),
    };
    api.create(&PostParams::default(), &stale).await.unwrap();

    let replica = agent.spawn_elected("agent-new").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = api.get(&name).await.unwrap().spec.unwrap();
    assert_eq!(holder(&before), "dead-pod", "taken before it expired");
    assert!(metrics(&replica.metrics_url).await.contains("alustan_leader 0\n"));

    let lease = wait_lease(&agent, "the new replica leads", |s| holder(s) == "agent-new").await;
    let spec = lease.spec.unwrap();
    let expiry = dead_renewal + jiff::SignedDuration::from_secs(15);
    assert!(spec.acquire_time.unwrap().0 >= expiry, "acquired before the dead holder's Lease expired");
    assert_eq!(spec.lease_transitions, Some(3));
    // The new leader's gauge follows once its controller starts.
    let start = Instant::now();
    while !metrics(&replica.metrics_url).await.contains("alustan_leader 1\n") {
        assert!(start.elapsed() < Duration::from_secs(10), "alustan_leader stayed 0");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_sees_another_holder_stops_with_an_error() {
    let mut agent = Agent::start(&[("deploy", DEPLOY)]).await;
    agent.stop_unelected().await;
    let mut replica = agent.spawn_elected("agent-a").await;
    wait_lease(&agent, "the replica leads", |s| holder(s) == "agent-a").await;
    // Another process takes the Lease (as an admin would by force); a 409 means the replica
    // renewed in between: read again.
    let (api, name) = leases(&agent).await;
    loop {
        let mut lease = api.get(&name).await.unwrap();
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = Some("usurper".into());
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("{err}"),
        }
    }

    let ended = tokio::time::timeout(Duration::from_secs(30), &mut replica.task).await.unwrap().unwrap();
    let err = ended.unwrap_err().to_string();
    assert!(err.contains("lost the leader election Lease") && err.contains("usurper"), "{err}");
    assert!(metrics(&replica.metrics_url).await.contains("alustan_leader 0\n"));
    // It does not release what it no longer holds.
    assert_eq!(holder(&api.get(&name).await.unwrap().spec.unwrap()), "usurper");
}

//! Stacks that build on each other, end to end: `dependsOn` (waiting, release by the
//! dependency's watch, cycles, deletion order, the cross-namespace opt-in), `variablesFrom`
//! (outputs flowing from one resource to the next, sensitive ones never in the consumer's
//! status, Events, Job or logs, nor the agent's, a consumed change re-running once) and tag
//! policies on build tags.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses some of the shared helpers
mod e2e;

use std::time::Duration;

use alustan_shared::RejectionReason::{FilteredOut, OutsideConstraint};
use alustan_shared::{State, Terraform, conditions};
use e2e::Agent;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

/// The token the network is given and the cluster receives as a sensitive output.
const TOKEN: &str = "tok-s3cret-42";

/// One image for every layer: the network outputs `vpc_id` and a sensitive `admin_token`; the
/// cluster reports what it received (the token only as whether it matched).
const DEPLOY: &str = r#"case "$ALUSTAN_TERRAFORM" in
  network)
    echo "network with $TF_VAR_vpc"
    cat > "$ALUSTAN_OUTPUTS" <<JSON
{"vpc_id":{"value":"$TF_VAR_vpc","sensitive":false,"type":"string"},"admin_token":{"value":"$TF_VAR_token","sensitive":true,"type":"string"}}
JSON
    ;;
  *)
    echo "cluster in $TF_VAR_vpc_id"
    if [ "$TF_VAR_token" = "tok-s3cret-42" ]; then ok=yes; else ok=no; fi
    cat > "$ALUSTAN_OUTPUTS" <<JSON
{"seen_vpc":{"value":"$TF_VAR_vpc_id","sensitive":false,"type":"string"},"token_ok":{"value":"$ok","sensitive":false,"type":"string"}}
JSON
    ;;
esac
"#;

const DESTROY: &str = "echo \"destroying $ALUSTAN_TERRAFORM\"\n";

/// Everything the agent logs in this test process, at trace level (each test runs in its own
/// process under nextest).
#[derive(Clone, Default)]
struct AgentLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for AgentLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AgentLogs {
    fn capture() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("alustan_agent=trace,kube=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn resource(agent: &Agent, name: &str, spec: &serde_json::Value) -> Terraform {
    let mut tf = agent.example();
    tf.metadata.name = Some(name.to_owned());
    tf.spec.post_deploy = None;
    tf.spec.variables.clear();
    let mut value = serde_json::to_value(&tf).unwrap();
    for (key, field) in spec.as_object().unwrap() {
        value["spec"][key] = field.clone();
    }
    serde_json::from_value(value).unwrap()
}

fn network(agent: &Agent, vpc: &str) -> Terraform {
    resource(agent, "network", &json!({"variables": {"TF_VAR_vpc": vpc, "TF_VAR_token": TOKEN}}))
}

fn cluster(agent: &Agent) -> Terraform {
    resource(
        agent,
        "cluster",
        &json!({
            "dependsOn": [{"name": "network"}],
            "variablesFrom": [{"kind": "Terraform", "name": "network",
                               "variables": {"TF_VAR_vpc_id": "vpc_id", "TF_VAR_token": "admin_token"}}]
        }),
    )
}

fn ready_reason(tf: &Terraform) -> Option<(String, String)> {
    let ready = conditions::find(&tf.status.as_ref()?.conditions, conditions::READY)?;
    Some((ready.reason.clone(), ready.message.clone()))
}

fn output(tf: &Terraform, name: &str) -> Option<serde_json::Value> {
    tf.status.as_ref()?.output.get(name).cloned()
}

async fn deploy_jobs(agent: &Agent, name: &str) -> Vec<String> {
    agent.job_names().await.into_iter().filter(|j| j.starts_with(&format!("{name}-deploy-"))).collect()
}

/// Every log line of `name`'s runs.
async fn run_logs(agent: &Agent, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(agent.client.clone(), "default");
    let selector = format!("{}={name}", alustan_shared::meta::LABEL_TERRAFORM);
    let mut logs = String::new();
    for pod in pods.list(&ListParams::default().labels(&selector)).await.unwrap() {
        logs.push_str(&pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap_or_default());
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependant_waits_for_its_dependency_reads_its_outputs_and_reruns_once_per_consumed_change() {
    let agent_logs = AgentLogs::capture();
    let agent = Agent::start(&[("deploy", DEPLOY), ("destroy", DESTROY)]).await;
    // The cluster first: it waits, saying for what, and runs nothing.
    agent.create(&cluster(&agent)).await;
    let waiting = agent
        .wait_for("cluster", "DependencyNotReady", |tf| {
            ready_reason(tf).is_some_and(|(reason, _)| reason == conditions::reason::DEPENDENCY_NOT_READY)
        })
        .await;
    let (_, message) = ready_reason(&waiting).unwrap();
    assert_eq!(
        message,
        "waiting for dependency default/network: does not exist (or is in a namespace the agent does not watch)"
    );
    assert!(deploy_jobs(&agent, "cluster").await.is_empty());

    // The network appears and deploys: its change (a watch, not a timer: the sync interval is
    // an hour) releases the cluster, which receives its outputs.
    agent.create(&network(&agent, "vpc-1")).await;
    agent.wait_for("network", "Success", |tf| tf.status.as_ref().and_then(|s| s.state) == Some(State::Success)).await;
    let done = agent
        .wait_for("cluster", "deployed with the network's outputs", |tf| output(tf, "seen_vpc") == Some(json!("vpc-1")))
        .await;
    assert_eq!(output(&done, "token_ok"), Some(json!("yes")), "the sensitive output reached the run");
    assert_eq!(deploy_jobs(&agent, "cluster").await.len(), 1);

    // The sensitive value never reaches the consumer's status, Events, Job spec or logs.
    let status = serde_json::to_string(&done.status).unwrap();
    assert!(!status.contains(TOKEN), "the token leaked into the cluster's status: {status}");
    let events = agent.event_reasons("cluster").await;
    assert!(events.iter().all(|(_, message)| !message.contains(TOKEN)), "{events:?}");
    let job = agent.jobs.get(&deploy_jobs(&agent, "cluster").await[0]).await.unwrap();
    let job_text = serde_json::to_string(&job).unwrap();
    assert!(!job_text.contains(TOKEN), "the token is in the Job spec: {job_text}");
    let env = job.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let token = env.iter().find(|e| e.name == "TF_VAR_token").unwrap();
    assert!(token.value.is_none() && token.value_from.as_ref().unwrap().secret_key_ref.is_some());
    assert!(env.iter().any(|e| e.name == "TF_VAR_vpc_id" && e.value.as_deref() == Some("vpc-1")));
    let logs = run_logs(&agent, "cluster").await;
    assert!(logs.contains("cluster in vpc-1") && !logs.contains(TOKEN), "{logs}");

    // The network's vpc changes: the cluster re-runs once with the new value, then rests.
    agent
        .terraforms
        .patch(
            "network",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"variables": {"TF_VAR_vpc": "vpc-2"}}})),
        )
        .await
        .unwrap();
    agent.wait_for("cluster", "the new vpc", |tf| output(tf, "seen_vpc") == Some(json!("vpc-2"))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(deploy_jobs(&agent, "cluster").await.len(), 2, "exactly one re-run per consumed change");
    let cluster = agent.terraforms.get("cluster").await.unwrap();
    assert_eq!(cluster.status.unwrap().state, Some(State::Success));
    // Nor the agent's own log, at trace level.
    let agent_logs = agent_logs.text();
    assert!(agent_logs.contains("started run") && agent_logs.contains("cluster-deploy-"), "no capture: {agent_logs}");
    assert!(!agent_logs.contains(TOKEN), "the token is in the agent's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_dependency_waits_until_its_dependants_are_destroyed() {
    let agent = Agent::start(&[("deploy", DEPLOY), ("destroy", DESTROY)]).await;
    agent.create(&network(&agent, "vpc-1")).await;
    agent.create(&cluster(&agent)).await;
    agent.wait_for("cluster", "deployed", |tf| output(tf, "seen_vpc") == Some(json!("vpc-1"))).await;

    agent.terraforms.delete("network", &DeleteParams::default()).await.unwrap();
    let held = agent
        .wait_for("network", "DependantsExist", |tf| {
            ready_reason(tf).is_some_and(|(reason, _)| reason == conditions::reason::DEPENDANTS_EXIST)
        })
        .await;
    let (_, message) = ready_reason(&held).unwrap();
    assert!(message.contains("to be deleted first: default/cluster"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let destroys = |names: Vec<String>, name: &str| {
        names.into_iter().filter(|j| j.starts_with(&format!("{name}-destroy-"))).count()
    };
    assert_eq!(destroys(agent.job_names().await, "network"), 0, "the network is not destroyed under a live cluster");

    // The cluster goes (destroyed first), then the network follows on its own.
    agent.terraforms.delete("cluster", &DeleteParams::default()).await.unwrap();
    agent.wait_gone("cluster").await;
    agent.wait_gone("network").await;
    let destroyed =
        |events: Vec<(String, String)>| events.iter().any(|(reason, _)| reason == conditions::reason::DESTROYED);
    assert!(destroyed(agent.event_reasons("cluster").await) && destroyed(agent.event_reasons("network").await));
    let cluster_done = event_time(&agent, "cluster", conditions::reason::DESTROYED).await;
    let network_started = event_time(&agent, "network", conditions::reason::DESTROYING).await;
    assert!(cluster_done <= network_started, "the network's destroy started after the cluster's ended");
}

/// When the first Event of `reason` about `name` happened.
async fn event_time(agent: &Agent, name: &str, reason: &str) -> jiff::Timestamp {
    let events = agent.events_about(name, reason).await;
    let first = events.into_iter().find_map(|e| e.event_time.map(|t| t.0));
    first.unwrap_or_else(|| panic!("no {reason} Event about {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_missing_outputs_and_cross_namespace_refs_are_errors_naming_them_and_a_cycle_deletes() {
    let agent = Agent::start(&[("deploy", DEPLOY), ("destroy", DESTROY)]).await;
    let is_error = |tf: &Terraform| tf.status.as_ref().and_then(|s| s.state) == Some(State::Error);
    let message = |tf: Terraform| tf.status.unwrap().message.unwrap_or_default();

    agent.create(&resource(&agent, "a", &json!({"dependsOn": [{"name": "b"}]}))).await;
    agent.create(&resource(&agent, "b", &json!({"dependsOn": [{"name": "a"}]}))).await;
    let a = agent.wait_for("a", "the cycle error", |tf| is_error(tf) && message(tf.clone()).contains("cycle")).await;
    assert_eq!(
        message(a),
        "spec.dependsOn: dependency cycle default/a → default/b → default/a: remove one of these dependsOn entries"
    );

    agent.create(&network(&agent, "vpc-1")).await;
    let consumer = resource(
        &agent,
        "app",
        &json!({"dependsOn": [{"name": "network"}],
               "variablesFrom": [{"kind": "Terraform", "name": "network", "variables": {"TF_VAR_subnet": "subnet_id"}}]}),
    );
    agent.create(&consumer).await;
    let app = agent
        .wait_for("app", "the missing output error", |tf| is_error(tf) && message(tf.clone()).contains("no output"))
        .await;
    assert_eq!(
        message(app.clone()),
        "spec.variablesFrom[0]: Terraform default/network has no output \"subnet_id\" (its outputs: vpc_id; sensitive: admin_token)"
    );
    assert!(!serde_json::to_string(&app.status).unwrap().contains(TOKEN));
    assert_eq!(ready_reason(&app).unwrap().0, conditions::reason::VARIABLES_FROM_ERROR);

    let other = resource(&agent, "remote", &json!({"dependsOn": [{"name": "network", "namespace": "infra"}]}));
    agent.create(&other).await;
    let remote = agent.wait_for("remote", "the cross-namespace refusal", is_error).await;
    assert!(
        message(remote.clone()).starts_with(
            "spec.dependsOn[0].namespace: refers to infra/network in another namespace; cross-namespace references are off"
        ),
        "{:?}",
        remote.status
    );
    assert!(message(remote.clone()).contains("--allow-cross-namespace-refs"));
    let stalled = conditions::find(&remote.status.unwrap().conditions, conditions::STALLED).unwrap().status.clone();
    assert_eq!(stalled, "True", "only a spec change can fix it");
    let jobs = agent.job_names().await;
    assert!(jobs.iter().all(|j| j.starts_with("network-")), "only the network ran: {jobs:?}");

    // The members of the cycle (nothing applied, nothing to destroy) do not wait for each other.
    for name in ["a", "b"] {
        agent.terraforms.delete(name, &DeleteParams::default()).await.unwrap();
    }
    agent.wait_gone("a").await;
    agent.wait_gone("b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_tags_deploy_the_newest_build_of_the_newest_matching_version() {
    let agent = Agent::start(&[("deploy", "echo \"deploying $ALUSTAN_TAG\"\n")]).await;
    let deploy = [("deploy", "echo \"deploying $ALUSTAN_TAG\"\n")];
    for tag in [
        "v1.2.2.2022-01-15t161730814Z.9eabf5b5",
        "v1.2.2.2022-01-16t090000000Z.1c2d3e4f",
        "v1.3.0.2022-01-17t090000000Z.aaaaaaaa",
    ] {
        agent.push_other(tag, &deploy).await;
    }
    let tf = resource(
        &agent,
        "built",
        &json!({"containerRegistry": {
            "provider": "oci", "imageName": agent.image_name, "semanticVersion": "~1.2",
            "filterTags": {"pattern": r"^v(?P<version>\d+\.\d+\.\d+)\.(?P<build>\d{4}-\d{2}-\d{2}t\d{9}Z)\.(?P<sha>[0-9a-f]{8})$",
                           "extract": "$version"}
        }}),
    );
    agent.create(&tf).await;
    let done =
        agent.wait_for("built", "Success", |tf| tf.status.as_ref().and_then(|s| s.state) == Some(State::Success)).await;
    let status = done.status.unwrap();
    let applied = status.applied.unwrap();
    assert_eq!(applied.tag, "v1.2.2.2022-01-16t090000000Z.1c2d3e4f", "the full original tag");
    assert!(applied.image.ends_with(&format!("@{}", applied.digest)), "digest-pinned: {}", applied.image);
    let scan = status.last_scan.unwrap();
    let rejected: Vec<(String, alustan_shared::RejectionReason)> =
        scan.rejected.into_iter().map(|r| (r.tag, r.reason)).collect();
    assert_eq!(
        rejected,
        [
            ("v1.3.0.2022-01-17t090000000Z.aaaaaaaa".to_owned(), OutsideConstraint),
            ("v2.0.0".to_owned(), FilteredOut),
            ("v1.0.1".to_owned(), FilteredOut),
            ("v1.0.0".to_owned(), FilteredOut)
        ]
    );
    assert!(scan.constraint.starts_with("~1.2 of tags matching"), "{}", scan.constraint);
    assert!(run_logs(&agent, "built").await.contains("deploying v1.2.2.2022-01-16t090000000Z.1c2d3e4f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_opt_in_a_dependency_in_another_namespace_releases_and_feeds_its_dependant() {
    let scripts = [("deploy", DEPLOY), ("destroy", DESTROY)];
    let agent = Agent::start_with(&scripts, &[], |config| config.allow_cross_namespace_refs = true).await;
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta { name: Some("infra".into()), ..Default::default() },
        ..Default::default()
    };
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(agent.client.clone());
    namespaces.create(&kube::api::PostParams::default(), &namespace).await.unwrap();
    let mut consumer = cluster(&agent);
    consumer.spec.depends_on[0].namespace = Some("infra".into());
    consumer.spec.variables_from[0].namespace = Some("infra".into());
    agent.create(&consumer).await;
    agent
        .wait_for("cluster", "waiting for infra/network", |tf| {
            ready_reason(tf).is_some_and(|(_, message)| message.starts_with("waiting for dependency infra/network"))
        })
        .await;
    let mut producer = network(&agent, "vpc-infra");
    producer.metadata.namespace = Some("infra".into());
    let infra: Api<Terraform> = Api::namespaced(agent.client.clone(), "infra");
    infra.create(&kube::api::PostParams::default(), &producer).await.unwrap();
    let done = agent.wait_for("cluster", "deployed", |tf| output(tf, "seen_vpc") == Some(json!("vpc-infra"))).await;
    assert_eq!(output(&done, "token_ok"), Some(json!("yes")), "the sensitive output from the other namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_fill_variables_the_secret_one_only_through_the_run_secret() {
    let deploy = r#"echo "size $TF_VAR_size"
if [ "$TF_VAR_api_key" = "k3y-s3cret-99" ]; then ok=yes; else ok=no; fi
cat > "$ALUSTAN_OUTPUTS" <<JSON
{"size":{"value":"$TF_VAR_size","sensitive":false,"type":"string"},"key_ok":{"value":"$ok","sensitive":false,"type":"string"}}
JSON
"#;
    let agent = Agent::start(&[("deploy", deploy)]).await;
    let settings =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"size": "large"}});
    let key = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api"}, "stringData": {"key": "k3y-s3cret-99"}});
    let post = kube::api::PostParams::default();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(agent.client.clone(), "default")
        .create(&post, &serde_json::from_value(settings).unwrap())
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(agent.client.clone(), "default")
        .create(&post, &serde_json::from_value(key).unwrap())
        .await
        .unwrap();
    let sources = |secret_key: &str| {
        json!({"variablesFrom": [
            {"kind": "ConfigMap", "name": "settings", "variables": {"TF_VAR_size": "size"}},
            {"kind": "Secret", "name": "api", "variables": {"TF_VAR_api_key": secret_key}}
        ]})
    };
    agent.create(&resource(&agent, "app", &sources("key"))).await;
    let done = agent.wait_for("app", "deployed", |tf| output(tf, "key_ok").is_some()).await;
    assert_eq!((output(&done, "size"), output(&done, "key_ok")), (Some(json!("large")), Some(json!("yes"))));
    let job = serde_json::to_string(&agent.jobs.get(&deploy_jobs(&agent, "app").await[0]).await.unwrap()).unwrap();
    assert!(!job.contains("k3y-s3cret-99") && job.contains("large"), "{job}");
    assert!(!serde_json::to_string(&done.status).unwrap().contains("k3y-s3cret-99"));

    // A key the Secret does not have: an error naming it and the keys there are, never values.
    agent.create(&resource(&agent, "broken", &sources("token"))).await;
    let broken = agent
        .wait_for("broken", "the missing key error", |tf| {
            tf.status.as_ref().and_then(|s| s.state) == Some(State::Error)
        })
        .await;
    assert_eq!(
        broken.status.unwrap().message.unwrap(),
        "spec.variablesFrom[1]: Secret default/api has no key \"token\" (its keys: key)"
    );
}

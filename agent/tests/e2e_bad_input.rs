//! Bad input end to end on testenv: registry failures (401, 404 manifest, 500, timeout) seen
//! through a fault-injecting proxy in front of the real registry, a log over 1 MiB, and a
//! destroy that keeps failing while the resource is being deleted.
//!
//! The agent runs with `retry-base` 1 s, `retry-max` 2 s and `retry-attempts` 2, so a
//! registry failure waits 1 s, then 2 s, then 2 s… and is `Stalled` from the second in a row.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/proxy.rs"]
mod proxy;

#[allow(dead_code)] // each test binary uses some of the helpers
mod e2e;

use std::sync::{Arc, Mutex};

use alustan_shared::{RunAction, RunResult, State, Terraform, conditions, meta};
use base64::Engine as _;
use e2e::{Agent, REPO};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use proxy::Proxy;
use serde_json::json;

const NAME: &str = "staging-cluster";

const DEPLOY: &str = r#"echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
echo '{"vpc_id":{"value":"vpc-0abc","sensitive":false,"type":"string"}}' > "$ALUSTAN_OUTPUTS"
"#;

const AWS_RESOURCE: &str = r#"echo '{"outputs": {"ec2": [{"id": "i-0123"}]}}'
"#;

const SCRIPTS: &[(&str, &str)] = &[("deploy", DEPLOY), ("aws-resource", AWS_RESOURCE)];

/// An agent (and kubelet) reaching the registry through a proxy, the proxy, and the example
/// resource pointed at the proxy (post-deploy included, so success ends `Completed`).
async fn behind_proxy(
    scripts: &[(&str, &str)],
    configure: impl FnOnce(&mut alustan_agent::config::Config),
) -> (Agent, Proxy, Terraform) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let agent = Agent::start_with(scripts, std::slice::from_ref(&host), configure).await;
    let proxy = Proxy::start_on(listener, agent.env.registry().host_port());
    let mut tf = agent.example();
    tf.spec.container_registry.image_name = format!("{host}/{REPO}");
    tf.spec.variables.insert("TF_VAR_workspace".into(), "staging".into());
    tf.spec.variables.insert("TF_VAR_region".into(), "eu-west-1".into());
    tf.spec.scripts.destroy = None;
    (agent, proxy, tf)
}

fn message(tf: &Terraform) -> &str {
    tf.status.as_ref().and_then(|s| s.message.as_deref()).unwrap_or_default()
}

fn state(tf: &Terraform) -> Option<State> {
    tf.status.as_ref().and_then(|s| s.state)
}

fn condition(tf: &Terraform, type_: &str) -> String {
    let status = tf.status.as_ref().unwrap();
    conditions::find(&status.conditions, type_).map(|c| c.status.clone()).unwrap_or_default()
}

/// Every version of the resource the agent writes, from a watch started before it exists.
struct Seen {
    versions: Arc<Mutex<Vec<Terraform>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Seen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Seen {
    /// Every version seen once one satisfies `check`; panics after 60 s.
    async fn wait_for(&self, what: &str, check: impl Fn(&Terraform) -> bool) -> Vec<Terraform> {
        let start = std::time::Instant::now();
        loop {
            let versions = self.versions.lock().unwrap().clone();
            if versions.iter().any(&check) {
                return versions;
            }
            let last = versions.last().and_then(|tf| tf.status.clone());
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "timed out waiting for {what}: {last:#?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

fn watch(agent: &Agent) -> Seen {
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let stream = watcher(agent.terraforms.clone(), config).default_backoff().applied_objects();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&versions);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Ok(tf) = item {
                sink.lock().unwrap().push(tf);
            }
        }
    });
    Seen { versions, task }
}

/// Waits for `failures` failed scans in a row, then checks that the agent reported each one
/// in order: `Error`, the count, and the delay the schedule gives it (1 s, 2 s, 2 s…), with
/// `Stalled` from the retry budget (2) on. Returns the resource at the last.
async fn wait_for_failures(seen: &Seen, failures: u32, cause: &str) -> Terraform {
    let expected: Vec<String> = (1..=failures)
        .map(|n| {
            let times = if n == 1 { "failed once".to_owned() } else { format!("failed {n} times in a row") };
            format!("({times}; next scan in {})", if n == 1 { "1s" } else { "2s" })
        })
        .collect();
    let last = expected.last().unwrap().clone();
    let versions = seen.wait_for(&last, |tf| message(tf).contains(cause) && message(tf).ends_with(&last)).await;
    let mut reported: Vec<&Terraform> = versions.iter().filter(|tf| message(tf).contains("(failed ")).collect();
    reported.dedup_by(|a, b| message(a) == message(b));
    let messages: Vec<&str> = reported.iter().map(|tf| message(tf)).collect();
    assert_eq!(messages.len(), expected.len(), "{messages:#?}");
    for (n, (tf, suffix)) in reported.iter().zip(&expected).enumerate() {
        assert!(message(tf).contains(cause) && message(tf).ends_with(suffix.as_str()), "{messages:#?}");
        assert_eq!(state(tf), Some(State::Error));
        let (reconciling, stalled) = (condition(tf, conditions::RECONCILING), condition(tf, conditions::STALLED));
        let expected = if n + 1 >= 2 { ("False", "True") } else { ("True", "False") };
        assert_eq!((reconciling.as_str(), stalled.as_str()), expected, "after {} failures", n + 1);
    }
    (*reported.last().unwrap()).clone()
}

async fn wait_completed(agent: &Agent) -> Terraform {
    let done = agent.wait_for(NAME, "Completed", |tf| state(tf) == Some(State::Completed)).await;
    assert_eq!(condition(&done, conditions::READY), "True");
    assert_eq!(condition(&done, conditions::STALLED), "False");
    let status = done.status.clone().unwrap();
    assert_eq!(status.output["vpc_id"], "vpc-0abc");
    assert_eq!(status.post_deploy_output.unwrap()["outputs"]["ec2"][0]["id"], "i-0123");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_500_is_retried_with_growing_delays_then_recovers() {
    let (agent, proxy, tf) = behind_proxy(SCRIPTS, |_| {}).await;
    proxy.fail_tag_lists(u32::MAX, 500, None);
    let seen = watch(&agent);
    agent.create(&tf).await;

    let failing = wait_for_failures(&seen, 3, "HTTP 500").await;
    let message = message(&failing).to_owned();
    let registry = proxy.host_port();
    assert!(
        message.starts_with(&format!("registry {registry} answered HTTP 500 for {REPO} after 4 attempt(s)")),
        "{message}"
    );
    // Each scan is four requests (the client's own retries of a 5xx); three scans are done, a
    // fourth may be under way. Without the backoff the agent's own status writes would wake
    // it into scan after scan.
    let lists = proxy.count("/tags/list");
    assert!((12..=16).contains(&lists), "{lists} tag-list requests after three failed scans");
    let warnings = agent.warnings(NAME, "RegistryError").await;
    assert_eq!(warnings.len(), 1, "one event series: {warnings:?}");
    assert!(warnings[0].0.contains("HTTP 500") && warnings[0].1 >= 3, "{warnings:?}");
    assert!(agent.job_names().await.is_empty());

    proxy.fail_tag_lists(0, 500, None);
    let done = wait_completed(&agent).await;
    assert!(message_of(&done).starts_with("deployed v1.0.1"), "{}", message_of(&done));
    assert_eq!(agent.job_names().await.len(), 2);
}

fn message_of(tf: &Terraform) -> String {
    message(tf).to_owned()
}

/// A `kubernetes.io/dockerconfigjson` Secret for `registry`.
fn docker_config(name: &str, registry: &str, user: &str, password: &str) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {registry: {"auth": auth}}}).to_string();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {".dockerconfigjson": config},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_401_for_wrong_credentials_is_retried_until_the_secret_is_fixed() {
    let (agent, proxy, mut tf) = behind_proxy(SCRIPTS, |_| {}).await;
    proxy.require_bearer("ci", "right-pa55");
    let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), "default");
    let registry = proxy.host_port();
    secrets
        .create(&PostParams::default(), &docker_config("registry-creds", &registry, "ci", "wr0ng-pa55"))
        .await
        .unwrap();
    tf.spec.container_registry.secret_ref = Some(alustan_shared::SecretReference { name: "registry-creds".into() });
    let seen = watch(&agent);
    agent.create(&tf).await;

    let failing = wait_for_failures(&seen, 2, "HTTP 401").await;
    let message = message_of(&failing);
    assert!(message.starts_with(&format!("registry {registry} refused access to {REPO} (HTTP 401)")), "{message}");
    assert!(message.contains("default/registry-creds"), "names the Secret to check: {message}");
    // The token endpoint was asked once per scan, with the wrong password each time.
    assert!(proxy.count("/token") >= 2, "{:?}", proxy.requests());
    let warnings = agent.warnings(NAME, "RegistryError").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("HTTP 401")), "{warnings:?}");
    let everything = format!("{:?}{warnings:?}", failing.status);
    assert!(!everything.contains("wr0ng-pa55") && !everything.contains("right-pa55"), "a password leaked");

    // Fixing the Secret is picked up by the next scan (Secrets are not watched): the deploy
    // pulls through the same Secret (its imagePullSecret).
    let fixed = docker_config("registry-creds", &registry, "ci", "right-pa55");
    secrets.replace("registry-creds", &PostParams::default(), &fixed).await.unwrap();
    wait_completed(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stops_answering_times_out_and_is_retried_until_it_answers() {
    let (agent, proxy, tf) = behind_proxy(SCRIPTS, |config| {
        config.registry_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    proxy.hang();
    let seen = watch(&agent);
    agent.create(&tf).await;

    let failing = wait_for_failures(&seen, 2, "cannot reach registry").await;
    let message = message_of(&failing);
    let registry = proxy.host_port();
    // The second scan fails fast: the host is paused after the first one's failure, and the
    // message says so with that failure as its cause.
    assert!(
        message.starts_with(&format!("registry {registry} failed 1 time(s) in a row, so scans of it are paused")),
        "{message}"
    );
    assert!(message.contains(&format!("cannot reach registry {registry} for {REPO} after 4 attempt(s)")), "{message}");
    assert!(message.contains("timed out"), "{message}");
    let lists = proxy.count("/tags/list");
    assert!(
        (4..=6).contains(&lists),
        "{lists} tag-list requests: only the first scan may reach a registry that timed out"
    );
    let warnings = agent.warnings(NAME, "RegistryError").await;
    assert!(warnings.iter().any(|(note, count)| note.contains("cannot reach registry") && *count >= 2), "{warnings:?}");

    proxy.resume();
    wait_completed(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_tag_whose_manifest_is_gone_is_an_error_until_it_is_back() {
    let (agent, proxy, tf) = behind_proxy(SCRIPTS, |_| {}).await;
    proxy.fail_manifests(u32::MAX, 404);
    let seen = watch(&agent);
    agent.create(&tf).await;

    let failing = wait_for_failures(&seen, 2, "HTTP 404").await;
    let message = message_of(&failing);
    let registry = proxy.host_port();
    assert!(
        message.starts_with(&format!(
            "registry {registry} lists tag v1.0.1 of {REPO} but answers HTTP 404 for its manifest"
        )),
        "{message}"
    );
    // The listing is reused; only the manifest is asked again, once per scan.
    // Two scans (a third may have started): the backoff holds back the reconciles the agent's
    // own status writes trigger.
    let manifests = proxy.count("/manifests/v1.0.1");
    assert!((2..=3).contains(&manifests), "{manifests} manifest requests: {:?}", proxy.requests());
    assert!(agent.job_names().await.is_empty(), "no Job for an image that cannot be resolved");
    let warnings = agent.warnings(NAME, "RegistryError").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("HTTP 404 for its manifest")), "{warnings:?}");

    proxy.fail_manifests(0, 404);
    wait_completed(&agent).await;
}

/// Prints 1.1 MiB in 1 KiB lines and one 1 MiB line without a newline until the end.
const CHATTY: &str = r"i=0
while [ $i -lt 1100 ]; do printf 'plan line %06d %01010d\n' $i 0; i=$((i+1)); done
head -c 1048576 /dev/zero | tr '\0' x
echo
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_over_one_mib_keeps_outputs_and_only_a_bounded_tail() {
    let deploy = format!("{CHATTY}{DEPLOY}");
    // One stream: stdout and stderr are two pipes read side by side (as a container runtime
    // reads them), so a line on stderr may land before the end of stdout in the log.
    let failing = format!("exec >&2\n{CHATTY}echo 'Error: the last words before failing'\nexit 3\n");
    let agent = Agent::start(&[("deploy", &deploy), ("deploy-fails", &failing), ("aws-resource", AWS_RESOURCE)]).await;
    let mut tf = agent.example();
    tf.spec.variables.insert("TF_VAR_workspace".into(), "staging".into());
    tf.spec.variables.insert("TF_VAR_region".into(), "eu-west-1".into());
    tf.spec.scripts.destroy = None;
    agent.create(&tf).await;
    let mut fails = tf.clone();
    fails.metadata.name = Some("fails".into());
    fails.spec.scripts.deploy = "deploy-fails".into();
    agent.create(&fails).await;

    // The outputs block after 2 MiB of log is still found.
    let done = wait_completed(&agent).await;
    let status = done.status.unwrap();
    assert!(serde_json::to_string(&status).unwrap().len() < 16 * 1024, "status stays small");

    let failed = agent.wait_for("fails", "Failed", |tf| state(tf) == Some(State::Failed)).await;
    let status = failed.status.unwrap();
    let message = status.message.unwrap();
    // The first failure's message or, once retries are spent, the Stalled one: both lead with
    // the cause; the exit code is in the run record.
    assert!(message.contains("the last words before failing"), "{message}");
    assert!(message.len() <= 2048, "the message holds a bounded tail: {} bytes", message.len());
    let record = status.history.first().unwrap().message.clone().unwrap();
    assert!(record.contains("exit code 3") && record.contains("the last words before failing"), "{record}");
    assert!(record.chars().count() <= 1024, "the history record is bounded: {} chars", record.chars().count());
    let notes = agent.event_reasons("fails").await;
    let (_, note) = notes.iter().find(|(reason, _)| reason == "ScriptFailed").expect("a ScriptFailed event");
    assert!(note.contains("the last words before failing"), "{note}");
    assert!(note.chars().count() <= 1000, "the Event note is bounded: {} chars", note.chars().count());
}

const FAILING_DESTROY: &str = "echo 'Error: deleting VPC: DependencyViolation' >&2\nexit 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destroy_is_recorded_retried_then_released_by_the_skip_annotation() {
    let agent = Agent::start(&[("deploy", DEPLOY), ("destroy", FAILING_DESTROY)]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    let deployed = agent.wait_for(NAME, "Success", |tf| state(tf) == Some(State::Success)).await;
    let applied = deployed.status.unwrap().applied.unwrap();

    let seen = watch(&agent);
    agent.terraforms.delete(NAME, &DeleteParams::default()).await.unwrap();
    let given_up = agent
        .wait_for(NAME, "two failed destroys", |tf| {
            state(tf) == Some(State::Error) && message(tf).contains("destroy failed (2 of 2 attempts)")
        })
        .await;
    assert!(
        given_up.metadata.deletion_timestamp.is_some() && given_up.finalizers().contains(&meta::FINALIZER.to_owned())
    );
    assert_eq!(condition(&given_up, conditions::STALLED), "True");
    // After the first failure it was retrying (Reconciling), not yet Stalled.
    let versions = seen.wait_for("the first failure", |tf| message(tf).contains("(1 of 2 attempts)")).await;
    let first = versions.iter().find(|tf| message(tf).contains("(1 of 2 attempts)")).unwrap();
    assert_eq!(state(first), Some(State::Error));
    let phase = (condition(first, conditions::RECONCILING), condition(first, conditions::STALLED));
    assert_eq!((phase.0.as_str(), phase.1.as_str()), ("True", "False"));
    let status = given_up.status.clone().unwrap();
    assert!(status.message.unwrap().contains(meta::SKIP_DESTROY), "says how to release it");
    let destroys: Vec<_> = status.history.iter().filter(|r| r.action == RunAction::Destroy).collect();
    assert_eq!(destroys.len(), 2, "{:#?}", status.history);
    assert_ne!(destroys[0].job_name, destroys[1].job_name);
    for record in &destroys {
        assert_eq!(record.result, RunResult::Failed);
        assert_eq!(record.image, applied.image, "destroy runs the applied digest");
        assert_eq!(record.tag.as_deref(), Some(applied.tag.as_str()));
        let finished = record.completion_time.as_ref().expect("a finish time").0;
        assert!(record.start_time.0 <= finished);
        assert!(record.message.as_deref().unwrap_or_default().contains("DependencyViolation"), "{record:?}");
    }
    // Newest first; the second attempt started after the first had failed.
    assert!(destroys[0].start_time.0 >= destroys[1].completion_time.as_ref().unwrap().0);
    assert_eq!(status.history.last().unwrap().action, RunAction::Deploy, "the deploy stays in history");
    let warnings = agent.warnings(NAME, "ScriptFailed").await;
    assert!(warnings.iter().any(|(note, _)| note.contains("destroy failed")), "{warnings:?}");
    // The retry budget is spent: no third attempt.
    let jobs = agent.job_names().await;
    assert_eq!(jobs.iter().filter(|j| j.contains("-destroy-")).count(), 2, "{jobs:?}");

    let patch = json!({"metadata": {"annotations": {meta::SKIP_DESTROY: "true"}}});
    agent.terraforms.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    agent.wait_gone(NAME).await;
    let reasons: Vec<String> = agent.event_reasons(NAME).await.into_iter().map(|(r, _)| r).collect();
    assert!(reasons.iter().any(|r| r == "DestroySkipped"), "{reasons:?}");
}

/// A Secret planted under the name of a run's seal would make the pad known to whoever planted
/// it: the agent refuses to start that run (Error, a Warning Event, the Secret untouched) and
/// starts it once the Secret is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_secret_named_like_a_runs_seal_stops_that_run_until_it_is_deleted() {
    let agent = Agent::start(&[("deploy", "echo 'Error: quota exceeded' >&2\nexit 1\n")]).await;
    let mut tf = agent.example();
    tf.spec.post_deploy = None;
    agent.create(&tf).await;
    // The first round's Job names the second round's: the same prefix, round 1.
    let first = loop {
        if let Some(name) = agent.job_names().await.into_iter().find(|n| n.ends_with("-0")) {
            break name;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let second = format!("{}1", first.strip_suffix('0').unwrap());
    let planted_name = meta::seal_secret_name(&second);
    let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), "default");
    let planted: Secret = serde_json::from_value(json!({
        "metadata": {"name": planted_name},
        "stringData": {meta::SEAL_KEY: "known to whoever planted it"},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &planted).await.unwrap();

    let refused = agent
        .wait_for(NAME, "the second round refused", |tf| {
            state(tf) == Some(State::Error) && message(tf).contains("is not this run's seal")
        })
        .await;
    assert!(message(&refused).contains(&planted_name), "{}", message(&refused));
    assert!(!agent.job_names().await.contains(&second), "a Job started with a foreign pad");
    let warnings = agent.warnings(NAME, conditions::reason::SEAL_CONFLICT).await;
    assert!(warnings.iter().any(|(note, _)| note.contains("delete it so the run can start")), "{warnings:?}");
    let untouched = secrets.get(&planted_name).await.unwrap();
    assert!(untouched.owner_references().is_empty(), "the agent adopted the planted Secret");

    secrets.delete(&planted_name, &DeleteParams::default()).await.unwrap();
    let started = std::time::Instant::now();
    while !agent.job_names().await.contains(&second) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "round 1 never started after the Secret went");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

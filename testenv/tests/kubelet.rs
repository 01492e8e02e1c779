//! The process kubelet end to end: Jobs created through the test API server run the image's
//! scripts (pulled from the real registry) under bubblewrap; their status, exit codes,
//! termination messages and logs come back exactly as a real cluster reports them, read with
//! kube-rs and with the real kubectl.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers may panic

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use alustan_testenv::apiserver::{ApiServer, ApiServerOptions};
use alustan_testenv::kubelet::{Kubelet, KubeletOptions};
use alustan_testenv::registry::{ImageConfig, Registry, RegistryOptions};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

struct Env {
    server: ApiServer,
    registry: Registry,
    kubelet: Kubelet,
    dir: tempfile::TempDir,
}

async fn start(registry: RegistryOptions) -> Env {
    let server = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let registry = Registry::start(registry).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = KubeletOptions::new(dir.path().join("kubelet"));
    options.insecure_registries.push(registry.host_port().to_owned());
    options.retry_backoff = Duration::from_millis(200);
    options.api_server = Some(server.addr());
    let kubelet = Kubelet::start(server.client().unwrap(), server.pod_logs().clone(), options);
    Env { server, registry, kubelet, dir }
}

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An image with a few scripts, pushed as `iac:1.0.0`; returns `host:port/iac:1.0.0`.
async fn push_scripts(env: &Env) -> String {
    let image_dir = env.dir.path().join("image");
    std::fs::create_dir_all(&image_dir).unwrap();
    script(
        &image_dir,
        "print-env",
        "echo \"greeting=$GREETING secret=$FROM_SECRET workdir=$(pwd)\"\necho written > /workspace/out\ncat /workspace/out\n",
    );
    // stdout and stderr are separate pipes, so their relative order in the log is not fixed
    // (as on a real node); the stderr line comes first so the tail is deterministic.
    script(
        &image_dir,
        "fail",
        "echo 'to stderr' >&2\nfor i in $(seq 1 100); do echo \"log line $i\"; done\necho boom\nexit 3\n",
    );
    script(&image_dir, "show", "echo \"map=$FROM_MAP maybe=${MAYBE-unset} pod=$POD\"\n");
    script(
        &image_dir,
        "whoami",
        "d=/var/run/secrets/kubernetes.io/serviceaccount\n\
         echo \"api=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\"\n\
         [ -e $d/token ] || { echo no-token; exit 0; }\n\
         echo \"ns=$(cat $d/namespace)\"\n\
         (echo x > $d/token) 2>/dev/null && echo writable || echo read-only\n\
         echo \"token=$(cat $d/token)\"\n",
    );
    script(&image_dir, "sleep-long", "echo started\nsleep 31\necho never\n");
    script(&image_dir, "message", "echo 'on stderr' >&2\necho 'custom message' > /dev/termination-log\nexit 1\n");
    let config = ImageConfig {
        env: vec!["GREETING=from-image".into()],
        working_dir: Some("/".into()),
        ..ImageConfig::default()
    };
    env.registry.push_dir("iac", &["1.0.0"], &image_dir, &config).await.unwrap();
    format!("{}/iac:1.0.0", env.registry.host_port())
}

fn job(name: &str, image: &str, command: &[&str], extra: serde_json::Value) -> Job {
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "run", "image": image, "command": command,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}],
            "volumes": [{"name": "workspace", "emptyDir": {}}],
        }}},
    });
    merge(&mut job, extra);
    serde_json::from_value(job).unwrap()
}

fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// Waits until the Job has a Complete or Failed condition; returns (type, reason).
async fn wait_finished(jobs: &Api<Job>, name: &str) -> (String, String) {
    eventually(&format!("job {name} finished"), Duration::from_secs(30), async || {
        let job = jobs.get(name).await.unwrap();
        let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
        let done =
            conditions.into_iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
        done.map(|c| (c.type_, c.reason.unwrap_or_default()))
    })
    .await
}

/// Polls `check` every 100 ms until it yields something; panics naming `what` after `limit`.
async fn eventually<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {limit:?}: {what}");
}

/// The `state.waiting` of the first container of the Job's first Pod, once there is one.
async fn waiting_of(env: &Env, job: &str) -> Option<k8s_openapi::api::core::v1::ContainerStateWaiting> {
    let pods = job_pods(env, job).await;
    pods.first()?.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.waiting.clone()
}

async fn job_pods(env: &Env, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(env.server.client().unwrap(), "default");
    pods.list(&ListParams::default().labels(&format!("job-name={name}"))).await.unwrap().items
}

fn terminated(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .expect("terminated")
}

#[tokio::test]
async fn job_runs_the_image_script_with_env_volumes_and_logs_readable_by_kubectl() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let client = env.server.client().unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vars"}, "data": {"token": "czNjcjN0"}});
    secrets.create(&PostParams::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let extra = json!({"spec": {"template": {"spec": {"containers": [{"name": "run", "image": image, "command": ["/print-env"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "env": [{"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "vars", "key": "token"}}}]}]}}}});
    jobs.create(&PostParams::default(), &job("print", &image, &["/print-env"], extra)).await.unwrap();
    assert_eq!(wait_finished(&jobs, "print").await.0, "Complete");

    let status = jobs.get("print").await.unwrap().status.unwrap();
    assert_eq!((status.succeeded, status.failed.unwrap_or(0)), (Some(1), 0));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let pods = job_pods(&env, "print").await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(terminated(pod).exit_code, 0);
    assert_eq!(terminated(pod).reason.as_deref(), Some("Completed"));
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));

    // The real kubectl reads the log through the Job.
    let kubeconfig = env.dir.path().join("kubeconfig");
    env.server.write_kubeconfig(&kubeconfig, "admin", None).unwrap();
    // tokio's Command: the in-process server must keep serving while kubectl runs.
    let output = tokio::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--cache-dir",
            env.dir.path().join("cache").to_str().unwrap(),
        ])
        .args(["logs", "job/print"])
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kubectl logs failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(log, "greeting=from-image secret=s3cr3t workdir=/\nwritten\n");
}

#[tokio::test]
async fn failing_script_fails_the_job_with_the_log_tail_as_termination_message() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    jobs.create(&PostParams::default(), &job("fails", &image, &["/fail"], json!({}))).await.unwrap();
    assert_eq!(wait_finished(&jobs, "fails").await, ("Failed".to_owned(), "BackoffLimitExceeded".to_owned()));
    let pods = job_pods(&env, "fails").await;
    assert_eq!(pods.len(), 1, "backoffLimit 0 allows no retry");
    let state = terminated(&pods[0]);
    assert_eq!((state.exit_code, state.reason.as_deref()), (3, Some("Error")));
    let message = state.message.unwrap();
    assert!(message.ends_with("log line 100\nboom"), "{message}");
    assert_eq!(message.lines().count(), 80);
    assert_eq!(pods[0].status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn termination_message_file_wins_over_the_log() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    jobs.create(&PostParams::default(), &job("msg", &image, &["/message"], json!({}))).await.unwrap();
    wait_finished(&jobs, "msg").await;
    let pod = job_pods(&env, "msg").await.remove(0);
    assert_eq!(terminated(&pod).message.as_deref(), Some("custom message\n"));
    let (log, finished) =
        env.server.pod_logs().read_from("default", pod.metadata.name.as_deref().unwrap(), "run", 0).unwrap();
    assert!(finished, "the log is complete once the container exits");
    assert_eq!(String::from_utf8_lossy(&log), "on stderr\n", "stderr is part of the pod log");
}

#[tokio::test]
async fn active_deadline_kills_the_process_and_fails_the_job() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    jobs.create(
        &PostParams::default(),
        &job("slow", &image, &["/sleep-long"], json!({"spec": {"activeDeadlineSeconds": 2}})),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(wait_finished(&jobs, "slow").await, ("Failed".to_owned(), "DeadlineExceeded".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(15), "the deadline must end the job long before the script would");
    // The pod was deleted, which kills the sandbox: no process of it may remain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leftover = std::process::Command::new("pgrep").args(["-f", "sleep 31"]).output().unwrap();
    assert!(String::from_utf8_lossy(&leftover.stdout).trim().is_empty(), "sleep survived the deadline");
}

#[tokio::test]
async fn missing_image_reports_err_image_pull_with_the_registry_message() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = format!("{}/nothing-here:1.0.0", env.registry.host_port());
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    jobs.create(&PostParams::default(), &job("nopull", &image, &["/x"], json!({}))).await.unwrap();
    let waiting = eventually("ErrImagePull reported", Duration::from_secs(10), async || {
        waiting_of(&env, "nopull")
            .await
            .filter(|w| matches!(w.reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")))
    })
    .await;
    let message = waiting.message.unwrap_or_default();
    assert!(message.contains("nothing-here"), "{message}");
    // pods/log says why there is no log yet, in the kubelet's words.
    let pod = job_pods(&env, "nopull").await[0].metadata.name.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(env.server.client().unwrap(), "default");
    let err = pods.logs(&pod, &kube::api::LogParams::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("container \"run\" in pod \"{pod}\" is waiting to start: image can't be pulled")),
        "{err}"
    );
}

#[tokio::test]
async fn private_registry_is_pulled_with_image_pull_secrets() {
    let env = start(RegistryOptions::htpasswd("puller", "pw-123")).await;
    let image = push_scripts(&env).await;
    let client = env.server.client().unwrap();
    let config = json!({"auths": {env.registry.host_port(): {"username": "puller", "password": "pw-123"}}}).to_string();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config}});
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &serde_json::from_value(secret).unwrap())
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let extra = json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "pull"}]}}}});
    jobs.create(&PostParams::default(), &job("private", &image, &["/print-env"], extra)).await.unwrap();
    assert_eq!(wait_finished(&jobs, "private").await.0, "Complete");
}

#[tokio::test]
async fn finished_job_is_deleted_after_its_ttl_with_its_pods() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    jobs.create(
        &PostParams::default(),
        &job("short-lived", &image, &["/message"], json!({"spec": {"ttlSecondsAfterFinished": 1}})),
    )
    .await
    .unwrap();
    // Only a finished Job is deleted by its TTL; a loaded machine may miss the short moment it
    // is finished but still there, so the wait accepts either and then requires it gone.
    eventually("the job finished or already deleted", Duration::from_secs(30), async || {
        let job = jobs.get_opt("short-lived").await.unwrap();
        let finished =
            job.as_ref().and_then(|j| j.status.as_ref()).and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                c.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
        (job.is_none() || finished).then_some(())
    })
    .await;
    eventually("the job and its pods deleted after ttlSecondsAfterFinished", Duration::from_secs(10), async || {
        let gone =
            jobs.get_opt("short-lived").await.unwrap().is_none() && job_pods(&env, "short-lived").await.is_empty();
        gone.then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_image_is_pulled_and_unpacked_once_per_digest() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    for name in ["first", "second"] {
        jobs.create(&PostParams::default(), &job(name, &image, &["/message"], json!({}))).await.unwrap();
    }
    wait_finished(&jobs, "first").await;
    wait_finished(&jobs, "second").await;
    assert_eq!(env.kubelet.image_pulls(), 1);
}

#[tokio::test]
async fn deleting_a_running_job_kills_its_process() {
    let env = start(RegistryOptions::anonymous()).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    let marker = "sleep 47"; // a duration no other test sleeps, so pgrep finds only this one
    let script_dir = env.dir.path().join("image2");
    std::fs::create_dir_all(&script_dir).unwrap();
    script(&script_dir, "wait", &format!("echo started\n{marker}\n"));
    env.registry.push_dir("waiter", &["1"], &script_dir, &ImageConfig::default()).await.unwrap();
    let waiter = format!("{}/waiter:1", env.registry.host_port());
    jobs.create(&PostParams::default(), &job("doomed", &waiter, &["/wait"], json!({}))).await.unwrap();
    let running = |pods: &[Pod]| {
        pods.first().and_then(|p| p.status.as_ref()).and_then(|s| s.phase.clone()) == Some("Running".into())
    };
    eventually("the doomed pod running", Duration::from_secs(10), async || {
        running(&job_pods(&env, "doomed").await).then_some(())
    })
    .await;
    let alive = || {
        let out = std::process::Command::new("pgrep").args(["-f", marker]).output().unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    // Running is reported when bubblewrap starts; the script reaches its sleep a moment later.
    eventually("the script running", Duration::from_secs(10), async || alive().then_some(())).await;
    let background = kube::api::DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..Default::default()
    };
    jobs.delete("doomed", &background).await.unwrap();
    eventually("the process killed with its Job", Duration::from_secs(10), async || (!alive()).then_some(())).await;
}

#[tokio::test]
async fn env_from_config_maps_optional_refs_and_field_refs() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let client = env.server.client().unwrap();
    let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"region": "eu-west-1"}});
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &serde_json::from_value(map).unwrap())
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let extra = json!({"spec": {"template": {"spec": {"containers": [{"name": "run", "image": image, "command": ["/show"],
    "env": [
        {"name": "FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
        {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": true}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]}]}}}});
    jobs.create(&PostParams::default(), &job("show", &image, &["/show"], extra)).await.unwrap();
    assert_eq!(wait_finished(&jobs, "show").await.0, "Complete");
    let pod = job_pods(&env, "show").await.remove(0);
    let (log, _) = env.server.pod_logs().read_from("default", pod.metadata.name.as_deref().unwrap(), "run", 0).unwrap();
    assert_eq!(String::from_utf8_lossy(&log), "map=eu-west-1 maybe=unset pod=default\n");
}

#[tokio::test]
async fn a_missing_secret_is_a_create_container_config_error() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    let extra = json!({"spec": {"template": {"spec": {"containers": [{"name": "run", "image": image, "command": ["/show"],
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "token"}}}]}]}}}});
    jobs.create(&PostParams::default(), &job("noconfig", &image, &["/show"], extra)).await.unwrap();
    let waiting = eventually("CreateContainerConfigError reported", Duration::from_secs(10), async || {
        waiting_of(&env, "noconfig").await.filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    assert_eq!(waiting.message.as_deref(), Some("secret \"nope\" not found"));
}

#[tokio::test]
async fn containers_get_the_api_address_and_their_service_account_token_unless_automount_is_off() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let client = env.server.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job("whoami", &image, &["/whoami"], json!({}))).await.unwrap();
    let off = json!({"spec": {"template": {"spec": {"automountServiceAccountToken": false}}}});
    jobs.create(&PostParams::default(), &job("no-token", &image, &["/whoami"], off)).await.unwrap();
    let missing = json!({"spec": {"template": {"spec": {"serviceAccountName": "missing"}}}});
    jobs.create(&PostParams::default(), &job("missing-sa", &image, &["/whoami"], missing)).await.unwrap();
    assert_eq!(wait_finished(&jobs, "whoami").await.0, "Complete");
    assert_eq!(wait_finished(&jobs, "no-token").await.0, "Complete");

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let log_of = async |job: &str| {
        let pod = job_pods(&env, job).await[0].metadata.name.clone().unwrap();
        pods.logs(&pod, &kube::api::LogParams::default()).await.unwrap()
    };
    let api = format!("api={}", env.server.addr());
    let log = log_of("whoami").await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[..3], [api.as_str(), "ns=default", "read-only"], "{log}");
    let token = lines[3].strip_prefix("token=").unwrap();
    assert!(!token.is_empty());
    assert_eq!(log_of("no-token").await, format!("{api}\nno-token\n"));

    // The token authenticates as the Pod's ServiceAccount.
    let as_pod = env.server.client_with_token(Some(token)).unwrap();
    Api::<Secret>::namespaced(as_pod, "default").list(&ListParams::default()).await.unwrap();
    let by_account = env.server.requests().count(|r| r.user == "system:serviceaccount:default:default");
    assert_eq!(by_account, 1);

    // A Pod naming a ServiceAccount that does not exist does not start.
    let waiting = eventually("missing-sa waiting", Duration::from_secs(30), async || {
        waiting_of(&env, "missing-sa").await.filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    assert!(waiting.message.unwrap().contains(r#"serviceaccount "missing" not found"#));
}

#[tokio::test]
async fn a_missing_secret_volume_waits_in_container_creating_with_failed_mount_events_until_it_appears() {
    let env = start(RegistryOptions::anonymous()).await;
    let image = push_scripts(&env).await;
    let client = env.server.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let command = ["/bin/sh", "-c", "cat /seal/pad"];
    let extra = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "run", "image": image, "command": command,
            "volumeMounts": [{"name": "seal", "mountPath": "/seal", "readOnly": true}]}],
        "volumes": [{"name": "seal", "secret": {"secretName": "late-seal"}}]}}}});
    jobs.create(&PostParams::default(), &job("late", &image, &command, extra)).await.unwrap();

    // Held, not failed: ContainerCreating, Pending, and a FailedMount event repeated by retries.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let failed_mount = eventually("a repeated FailedMount event", Duration::from_secs(15), async || {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.into_iter().find(|e| e.reason.as_deref() == Some("FailedMount") && e.count.unwrap_or(0) >= 2)
    })
    .await;
    assert_eq!(
        failed_mount.message.as_deref(),
        Some("MountVolume.SetUp failed for volume \"seal\" : secret \"late-seal\" not found")
    );
    assert_eq!(failed_mount.type_.as_deref(), Some("Warning"));
    assert_eq!(failed_mount.source.and_then(|s| s.component).as_deref(), Some("kubelet"));
    let pod = job_pods(&env, "late").await.remove(0);
    assert_eq!(failed_mount.involved_object.name, pod.metadata.name);
    assert_eq!(
        (failed_mount.involved_object.kind.as_deref(), failed_mount.involved_object.uid),
        (Some("Pod"), pod.metadata.uid)
    );
    assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(waiting_of(&env, "late").await.unwrap().reason.as_deref(), Some("ContainerCreating"));
    let jobs_status = jobs.get("late").await.unwrap().status.unwrap_or_default();
    assert!(jobs_status.conditions.unwrap_or_default().is_empty(), "the Job finished while its volume was missing");

    // Once the Secret exists the next retry mounts it and the container runs.
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late-seal"}, "data": {"pad": "cGFkLWJ5dGVz"}});
    secrets.create(&PostParams::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();
    assert_eq!(wait_finished(&jobs, "late").await.0, "Complete");
    let pod = job_pods(&env, "late").await.remove(0);
    let (log, _) = env.server.pod_logs().read_from("default", pod.metadata.name.as_deref().unwrap(), "run", 0).unwrap();
    assert_eq!(String::from_utf8_lossy(&log), "pad-bytes");
}

#[tokio::test]
async fn the_image_entrypoint_in_usr_local_runs_over_the_host_usr() {
    // As a Dockerfile installs a binary (`COPY … /usr/local/bin/app`, `ENTRYPOINT [that]`):
    // the host's `/usr` is bound read-only, but the image's own `/usr/local` wins.
    let env = start(RegistryOptions::anonymous()).await;
    let image_dir = env.dir.path().join("local-image");
    std::fs::create_dir_all(image_dir.join("usr/local/bin")).unwrap();
    script(&image_dir.join("usr/local/bin"), "app", "echo \"from the image's /usr/local: $*\"\n");
    let config = ImageConfig {
        entrypoint: vec!["/usr/local/bin/app".into()],
        cmd: vec!["default-arg".into()],
        ..ImageConfig::default()
    };
    env.registry.push_dir("local", &["1"], &image_dir, &config).await.unwrap();
    let image = format!("{}/local:1", env.registry.host_port());
    let jobs: Api<Job> = Api::namespaced(env.server.client().unwrap(), "default");
    let mut job = job("entrypoint", &image, &[], json!({}));
    // No command: the image's Entrypoint and Cmd.
    let spec = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.containers[0].command = None;
    jobs.create(&PostParams::default(), &job).await.unwrap();
    assert_eq!(wait_finished(&jobs, "entrypoint").await.0, "Complete");
    let pods = job_pods(&env, "entrypoint").await;
    let pods_api: Api<Pod> = Api::namespaced(env.server.client().unwrap(), "default");
    let log = pods_api.logs(pods[0].metadata.name.as_ref().unwrap(), &kube::api::LogParams::default()).await.unwrap();
    assert_eq!(log, "from the image's /usr/local: default-arg\n");
}

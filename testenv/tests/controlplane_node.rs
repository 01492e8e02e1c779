//! The process kubelet as the Node of the real control plane: the real Job controller and
//! scheduler hand it Pods; it runs them under bubblewrap, reports their status, serves their
//! logs to the API server over TLS, and ends deleted Pods as a kubelet does.
//!
//! Ignored by default (needs the control plane binaries): `make test-real`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code may panic

mod apiserver_support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use alustan_testenv::TestEnv;
use alustan_testenv::registry::ImageConfig;
use apiserver_support::kubectl;
use futures::{AsyncBufReadExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

const NODE: &str = "alustan-node";

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An image of small scripts, pushed as `iac:1.0.0`; returns its reference.
async fn push_scripts(env: &TestEnv, dir: &Path) -> String {
    let image_dir = dir.join("image");
    std::fs::create_dir_all(&image_dir).unwrap();
    script(
        &image_dir,
        "print-env",
        "echo \"greeting=$GREETING secret=$FROM_SECRET\"\necho written > /workspace/out\ncat /workspace/out\n",
    );
    script(&image_dir, "fail", "echo 'to stderr' >&2\necho boom\nexit 3\n");
    // The token, CA and API address a kubelet gives every container (the admission plugin's
    // projected volume), used the way client libraries use them.
    script(
        &image_dir,
        "call-api",
        "d=/var/run/secrets/kubernetes.io/serviceaccount\n\
         echo \"ns=$(cat $d/namespace)\"\n\
         curl -sS --cacert $d/ca.crt -H \"Authorization: Bearer $(cat $d/token)\" \
           https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/default/secrets\n",
    );
    script(&image_dir, "ticks", "echo one\nsleep 2\necho two\n");
    script(&image_dir, "graceful", "trap 'echo got TERM; exit 7' TERM\necho started\nsleep 60 &\nwait\n");
    script(&image_dir, "stubborn", "trap '' TERM\necho started\nsleep 60 &\nwait\nwait\n");
    let config = ImageConfig {
        env: vec!["GREETING=from-image".into()],
        working_dir: Some("/".into()),
        ..ImageConfig::default()
    };
    env.registry().push_dir("iac", &["1.0.0"], &image_dir, &config).await.unwrap();
    format!("{}/iac:1.0.0", env.registry().host_port())
}

fn job(name: &str, image: &str, command: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "run", "image": image, "command": [command],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                "env": [{"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "vars", "key": "token"}}}]}],
            "volumes": [{"name": "workspace", "emptyDir": {}}],
        }}},
    }))
    .unwrap()
}

fn pod(name: &str, image: &str, command: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": image, "command": [command]}]},
    }))
    .unwrap()
}

async fn eventually<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a Complete or Failed condition; returns its type.
async fn wait_finished(jobs: &Api<Job>, name: &str) -> String {
    eventually(&format!("job {name} finished"), Duration::from_secs(90), async || {
        let job = jobs.get(name).await.unwrap();
        let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
        conditions
            .into_iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .map(|c| c.type_)
    })
    .await
}

async fn job_pod(pods: &Api<Pod>, job: &str) -> Pod {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.unwrap();
    assert_eq!(list.items.len(), 1, "one pod for job {job}");
    list.items.into_iter().next().unwrap()
}

fn terminated(pod: &Pod) -> ContainerStateTerminated {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    statuses[0].state.as_ref().and_then(|s| s.terminated.clone()).expect("container terminated")
}

#[tokio::test]
#[ignore = "needs the real control plane binaries (slow first build): run `make test-real`"]
async fn jobs_run_on_the_node_with_status_logs_and_service_account_tokens_through_the_real_api_server() {
    let env = TestEnv::start_real().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = env.client().unwrap();

    // The Node registered itself and is Ready, advertising its kubelet API port.
    let node = Api::<Node>::all(client.clone()).get(NODE).await.unwrap();
    let status = node.status.unwrap();
    let ready = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    let addresses = status.addresses.unwrap_or_default();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"), "{addresses:?}");
    let port = status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port;
    assert_eq!(Some(u16::try_from(port).unwrap()), env.kubelet().unwrap().api_port());

    let image = push_scripts(&env, work.path()).await;
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vars"}, "data": {"token": "czNjcjN0"}});
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &serde_json::from_value(secret).unwrap())
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job("print", &image, "/print-env")).await.unwrap();
    jobs.create(&PostParams::default(), &job("fail", &image, "/fail")).await.unwrap();
    jobs.create(&PostParams::default(), &job("call-api", &image, "/call-api")).await.unwrap();

    // The real Job controller counts what this kubelet reported.
    assert_eq!(wait_finished(&jobs, "print").await, "Complete");
    let job_status = jobs.get("print").await.unwrap().status.unwrap();
    assert_eq!((job_status.succeeded, job_status.failed.unwrap_or(0)), (Some(1), 0));
    let print = job_pod(&pods, "print").await;
    assert_eq!(print.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE), "the scheduler bound it here");
    assert_eq!(print.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!((terminated(&print).exit_code, terminated(&print).reason.as_deref()), (0, Some("Completed")));
    let image_id = &print.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].image_id;
    let repository = format!("{}/iac@sha256:", env.registry().host_port());
    assert!(image_id.starts_with(&repository), "imageID {image_id} is the repository at the pulled digest");

    // pods/log: kube-rs and kubectl through the API server, which calls this kubelet over TLS.
    let log = pods.logs(&print.name_any(), &LogParams::default()).await.unwrap();
    assert_eq!(log, "greeting=from-image secret=s3cr3t\nwritten\n");
    let (ok, out, err) = kubectl(env.kubeconfig(), &work.path().join("cache"), &["logs", "job/print"]).await;
    assert!(ok, "kubectl logs: {err}");
    assert_eq!(out, log);
    let tail = pods.logs(&print.name_any(), &LogParams { tail_lines: Some(1), ..LogParams::default() }).await.unwrap();
    assert_eq!(tail, "written\n");

    assert_eq!(wait_finished(&jobs, "fail").await, "Failed");
    let fail = job_pod(&pods, "fail").await;
    assert_eq!(fail.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    let ended = terminated(&fail);
    assert_eq!((ended.exit_code, ended.reason.as_deref()), (3, Some("Error")));
    let message = ended.message.unwrap_or_default();
    assert!(
        message.contains("to stderr") && message.contains("boom"),
        "FallbackToLogsOnError keeps the log tail: {message:?}"
    );

    // The projected ServiceAccount token, the cluster CA from kube-root-ca.crt and the API
    // address work together: the API server authenticates the Pod's account (and RBAC denies it).
    assert_eq!(wait_finished(&jobs, "call-api").await, "Complete");
    let call = job_pod(&pods, "call-api").await;
    let volumes = call.spec.as_ref().unwrap().volumes.clone().unwrap_or_default();
    assert!(volumes.iter().any(|v| v.name.starts_with("kube-api-access-") && v.projected.is_some()), "{volumes:?}");
    let log = pods.logs(&call.name_any(), &LogParams::default()).await.unwrap();
    assert!(log.starts_with("ns=default\n"), "{log}");
    assert!(
        log.contains(r#"User \"system:serviceaccount:default:default\" cannot list resource \"secrets\""#),
        "{log}"
    );
}

#[tokio::test]
#[ignore = "needs the real control plane binaries (slow first build): run `make test-real`"]
async fn logs_follow_a_running_container_and_deleted_pods_get_their_grace_period() {
    let env = TestEnv::start_real().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = env.client().unwrap();
    let image = push_scripts(&env, work.path()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // follow=true streams lines as the container writes them, and ends with it.
    pods.create(&PostParams::default(), &pod("ticks", &image, "/ticks")).await.unwrap();
    eventually("ticks running", Duration::from_secs(60), async || {
        let pod = pods.get("ticks").await.unwrap();
        (pod.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(())
    })
    .await;
    let stream = pods.log_stream("ticks", &LogParams { follow: true, ..LogParams::default() }).await.unwrap();
    let lines: Vec<String> =
        tokio::time::timeout(Duration::from_secs(30), stream.lines().try_collect()).await.unwrap().unwrap();
    assert_eq!(lines, ["one", "two"]);

    // No log yet: the API server passes on the kubelet's reason (here from the waiting state).
    let missing = format!("{}/nothing-here:1", env.registry().host_port());
    pods.create(&PostParams::default(), &pod("no-image", &missing, "/x")).await.unwrap();
    let error = eventually("no-image failing to pull", Duration::from_secs(60), async || {
        let pod = pods.get("no-image").await.unwrap();
        let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
        let reason = statuses.first().and_then(|c| c.state.clone()).and_then(|s| s.waiting).and_then(|w| w.reason);
        if !matches!(reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")) {
            return None;
        }
        pods.logs("no-image", &LogParams::default()).await.err()
    })
    .await;
    let expected = r#"container "run" in pod "no-image" is waiting to start: image can't be pulled"#;
    assert!(error.to_string().contains(expected), "{error}");

    // Deleting a running Pod: SIGTERM, its handler's exit code reported, then the Pod is gone.
    for (name, command) in [("graceful", "/graceful"), ("stubborn", "/stubborn")] {
        pods.create(&PostParams::default(), &pod(name, &image, command)).await.unwrap();
    }
    for name in ["graceful", "stubborn"] {
        eventually(&format!("{name} started"), Duration::from_secs(60), async || {
            let log = pods.logs(name, &LogParams::default()).await.ok()?;
            log.contains("started").then_some(())
        })
        .await;
    }
    let watch = async |name: &str, grace: u32| {
        let params = WatchParams::default().fields(&format!("metadata.name={name}"));
        let pod = pods.get(name).await.unwrap();
        let mut events = pods.watch(&params, &pod.resource_version().unwrap()).await.unwrap().boxed();
        let started = tokio::time::Instant::now();
        pods.delete(name, &DeleteParams { grace_period_seconds: Some(grace), ..DeleteParams::default() })
            .await
            .unwrap();
        let mut last_terminated = None;
        while let Some(event) = tokio::time::timeout(Duration::from_secs(60), events.next()).await.unwrap() {
            match event.unwrap() {
                WatchEvent::Modified(pod) => {
                    if let Some(t) = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|c| c[0].state.clone())
                        .and_then(|s| s.terminated)
                    {
                        last_terminated = Some(t);
                    }
                }
                WatchEvent::Deleted(_) => break,
                _ => {}
            }
        }
        (started.elapsed(), last_terminated.expect("the final container state was reported before deletion"))
    };
    let (took, ended) = watch("graceful", 30).await;
    assert_eq!(ended.exit_code, 7, "the TERM handler ran");
    assert!(
        took < Duration::from_secs(20),
        "a Pod that exits on SIGTERM does not wait out its grace period ({took:?})"
    );
    let (took, ended) = watch("stubborn", 3).await;
    assert_eq!(ended.exit_code, 137, "killed after its grace period");
    assert!(took >= Duration::from_secs(3), "SIGKILL only after the grace period ({took:?})");
    assert!(pods.get_opt("stubborn").await.unwrap().is_none());
}

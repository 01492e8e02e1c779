//! End to end with more of the cluster: the real kubectl plugin mechanism, `get -w`, RBAC
//! (a user who may read Terraforms but not Secrets) and the log of a Job the testenv kubelet ran.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use std::process::Stdio;
use std::time::Duration;

use alustan_testenv::{TestEnv, TestEnvOptions};
use e2e_support::{BIN, code, completed_status, create, plugin, set_status, stderr, stdout};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::test]
async fn kubectl_finds_the_plugin_on_path() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.path().join("kubectl-alustan")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", bin_dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::process::Command::new("kubectl")
        // kubectl refuses flags before a plugin's name: they go after it (or in the env).
        .args(["alustan", "get", "-A", "--cache-dir"])
        .arg(cache.path())
        .env("KUBECACHEDIR", cache.path())
        .env("PATH", path)
        .env("KUBECONFIG", env.kubeconfig())
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAMESPACE"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().take(4).eq(["default", "staging", "Completed", "1.0.3"])),
        "{text}"
    );
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    let mut child = tokio::process::Command::new(BIN)
        .args(["get", "-w", "--kubeconfig"])
        .arg(env.kubeconfig())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        async || tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(next().await.starts_with("NAME"));
    assert!(next().await.starts_with("staging"));
    set_status(&client, "default", "staging", completed_status("default")).await;
    let changed = next().await;
    assert!(changed.split_whitespace().take(4).eq(["staging", "Completed", "1.0.3", "True"]), "{changed}");
    // A deletion prints the last state, as `kubectl get -w` does. The finalizer-free test
    // object goes at once.
    let terraforms: Api<alustan_shared::Terraform> = Api::namespaced(client.clone(), "default");
    terraforms.delete("staging", &kube::api::DeleteParams::default()).await.unwrap();
    let deleted = next().await;
    assert!(deleted.starts_with("staging"), "{deleted}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn reveal_is_limited_by_the_users_own_rbac() {
    let (env, admin) = e2e_support::env_with_viewer().await;
    create(&admin, "default", "staging").await;
    set_status(&admin, "default", "staging", completed_status("default")).await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-admin", "namespace": "default"},
        "stringData": {"password": "s3cret-argo"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), "default").create(&PostParams::default(), &secret).await.unwrap();
    let rule = json!({"apiGroups": ["alustan.io"], "resources": ["terraforms"], "verbs": ["get", "list", "watch"]});
    e2e_support::grant_viewer(&admin, "default", "terraform-viewer", rule).await;
    let viewer = env.kubeconfig_for("viewer", "viewer-token").unwrap();

    // The viewer sees the resource, masked credentials work, reveal is refused per Secret.
    let out = plugin(&viewer, &["credentials", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = plugin(&viewer, &["credentials", "staging", "--reveal"]).await;
    assert_eq!(code(&out), 1, "documented: 1 when any password could not be revealed");
    let text = stderr(&out);
    assert!(
        text.contains("Secret \"argocd-admin\": forbidden: you may not get secrets in namespace \"default\""),
        "{text}"
    );
    assert!(text.contains("kubectl auth can-i get secrets -n default"), "{text}");
    assert!(!stdout(&out).contains("s3cret"), "{}", stdout(&out));
    assert!(stdout(&out).contains("argocd") && stdout(&out).contains("grafana"), "every row is still printed");
    // The viewer may not patch: sync names the verb, the resource and the namespace.
    let out = plugin(&viewer, &["sync", "staging"]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("you may not patch terraforms.alustan.io in namespace \"default\""),
        "{}",
        stderr(&out)
    );
    // `--as viewer` from the admin's kubeconfig impersonates the viewer: refused the same way.
    let out = plugin(env.kubeconfig(), &["credentials", "staging", "--reveal", "--as", "viewer"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("forbidden: you may not get secrets"), "{}", stderr(&out));
    // The admin reveals.
    let out = plugin(env.kubeconfig(), &["credentials", "staging", "--reveal"]).await;
    assert!(stdout(&out).contains("s3cret-argo"), "{}", stdout(&out));
}

#[tokio::test]
async fn logs_of_a_run_come_from_its_jobs_pod() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    e2e_support::run_job(&env, "staging-deploy-7").await;
    create(&client, "default", "staging").await;
    let mut status = completed_status("default");
    status["history"][0]["jobName"] = json!("staging-deploy-7");
    set_status(&client, "default", "staging", status).await;

    let out = plugin(env.kubeconfig(), &["logs", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "terraform apply: 3 added\noutputs written\n[sealed outputs: 40 bytes]\n");
    let out = plugin(env.kubeconfig(), &["logs", "staging", "--run", "2"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no pod left for Job \"staging-deploy-1\""), "{}", stderr(&out));
    let out = plugin(env.kubeconfig(), &["logs", "staging", "--run", "3"]).await;
    assert!(stderr(&out).contains("has 2 recorded run(s)"), "{}", stderr(&out));
}

/// `$KUBECONFIG` lists (missing files skipped, first file wins), `--context`, and the
/// context's namespace as the default, as kubectl resolves them.
#[tokio::test]
async fn kubeconfig_resolution_like_kubectl() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    e2e_support::namespace(&client, "infra").await;
    create(&client, "infra", "network").await;
    create(&client, "default", "staging").await;
    let dir = tempfile::tempdir().unwrap();
    // First file: a broken current context; second: the testenv one plus an `infra` context.
    let mut base: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.kubeconfig()).unwrap()).unwrap();
    let user = base["users"][0]["name"].as_str().unwrap().to_owned();
    // The env's own context and cluster names (they differ between the backends).
    let context = base["current-context"].as_str().unwrap().to_owned();
    let cluster = base["clusters"][0]["name"].as_str().unwrap().to_owned();
    let first = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "broken",
        "clusters": [{"name": "nowhere", "cluster": {"server": "http://127.0.0.1:1"}}],
        "contexts": [{"name": "broken", "context": {"cluster": "nowhere", "user": user}}],
        "users": [],
    });
    std::fs::write(dir.path().join("first"), serde_yaml::to_string(&first).unwrap()).unwrap();
    let infra = serde_yaml::to_value(
        json!({"name": "infra", "context": {"cluster": cluster, "user": user, "namespace": "infra"}}),
    )
    .unwrap();
    base["contexts"].as_sequence_mut().unwrap().push(infra);
    std::fs::write(dir.path().join("second"), serde_yaml::to_string(&base).unwrap()).unwrap();
    let list = format!("{0}/missing:{0}/first:{0}/second", dir.path().display());
    let run = async |args: &[&str]| {
        tokio::process::Command::new(BIN)
            .args(args)
            .env("KUBECONFIG", &list)
            .env("HOME", dir.path())
            .output()
            .await
            .unwrap()
    };
    let out = run(&["get", "--context", &context]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("staging") && !stdout(&out).contains("network"), "{}", stdout(&out));
    let out = run(&["get", "--context", "infra"]).await;
    assert!(stdout(&out).contains("network") && !stdout(&out).contains("staging"), "{}", stdout(&out));
    let out = run(&["get", "--context", "infra", "-n", "default"]).await;
    assert!(stdout(&out).contains("staging"), "{}", stdout(&out));
    // The first file's current context wins, and it points nowhere: a connection error, exit 1.
    let out = run(&["get"]).await;
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot reach the cluster") && stderr(&out).contains("kubectl cluster-info"),
        "{}",
        stderr(&out)
    );
}

/// `sync --wait` streams the log of the run the agent starts for the request.
#[tokio::test]
async fn sync_wait_streams_the_runs_log() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;
    let _agent = e2e_support::agent_up(&client).await;
    let child = tokio::process::Command::new(BIN)
        .args(["sync", "staging", "--wait", "--timeout", "90s", "--kubeconfig"])
        .arg(env.kubeconfig())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The agent's part: see the token, start a Job, report it running, then done.
    let api: Api<alustan_shared::Terraform> = Api::namespaced(client.clone(), "default");
    let token = loop {
        let annotations = api.get("staging").await.unwrap().metadata.annotations.unwrap_or_default();
        if let Some(token) = annotations.get(alustan_shared::meta::RESYNC_REQUESTED_AT) {
            break token.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut status = completed_status("default");
    let run = json!({"action": "Deploy", "jobName": "staging-deploy-9", "image": "iac:1.0.3", "tag": "1.0.3",
                     "startTime": "2026-01-10T12:00:00Z", "result": "Running"});
    status["state"] = json!("Progressing");
    status["history"].as_array_mut().unwrap().insert(0, run);
    status["conditions"][1] = e2e_support::condition("Reconciling", "True", "Deploying", "deploying 1.0.3");
    set_status(&client, "default", "staging", status.clone()).await;
    e2e_support::run_job(&env, "staging-deploy-9").await;
    status["state"] = json!("Completed");
    status["lastHandledReconcileAt"] = json!(token);
    status["history"][0]["result"] = json!("Succeeded");
    status["conditions"][1] = e2e_support::condition("Reconciling", "False", "Succeeded", "");
    set_status(&client, "default", "staging", status).await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(text.contains("│ terraform apply: 3 added\n│ outputs written\n│ [sealed outputs: 40 bytes]\n"), "{text}");
    assert!(!text.contains("staging-deploy-2"), "older runs are not streamed: {text}");
    assert!(text.contains("run ended Completed"), "{text}");
}

/// `kubectl alustan <TAB>`: kubectl runs `kubectl_complete-alustan` from PATH; names come from
/// the cluster, subcommands and flags from the CLI definition.
#[tokio::test]
async fn kubectl_completes_plugin_arguments() {
    let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    create(&client, "default", "payments").await;
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.path().join("kubectl-alustan")).unwrap();
    let completer = env!("CARGO_BIN_EXE_kubectl_complete-alustan");
    std::os::unix::fs::symlink(completer, bin_dir.path().join("kubectl_complete-alustan")).unwrap();
    let path = format!("{}:{}", bin_dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let complete = async |words: &[&str]| {
        let out = tokio::process::Command::new("kubectl")
            .arg("__complete")
            .arg("alustan")
            .args(words)
            .env("PATH", &path)
            .env("KUBECONFIG", env.kubeconfig())
            .output()
            .await
            .unwrap();
        stdout(&out)
    };
    let names = complete(&["describe", "st"]).await;
    assert!(names.lines().any(|l| l.starts_with("staging")), "{names}");
    assert!(!names.contains("payments"), "{names}");
    let commands = complete(&["res"]).await;
    assert!(commands.contains("resync") && commands.contains("resume"), "{commands}");
    let flags = complete(&["sync", "staging", "--w"]).await;
    assert!(flags.contains("--wait"), "{flags}");
    let formats = complete(&["get", "-o", ""]).await;
    assert!(formats.contains("wide") && formats.contains("json"), "{formats}");
    let flags = complete(&["version", "--agent"]).await;
    assert!(flags.contains("--agent-namespace"), "{flags}");
    let namespaces = complete(&["version", "--agent-namespace", "kube-"]).await;
    assert!(namespaces.contains("kube-system") && !namespaces.contains("default"), "{namespaces}");
}

/// A user who may not read Leases is told so (and how to check), and `version` still succeeds;
/// once granted Leases in the agent's namespace, `--agent-namespace` finds the agent up.
#[tokio::test]
async fn agent_health_without_lease_permission_says_why() {
    let (env, admin) = e2e_support::env_with_viewer().await;
    e2e_support::namespace(&admin, "alustan-system").await;
    e2e_support::agent_lease(&admin, "alustan-system", "alustan-agent-7d9f-x2", Duration::from_secs(1)).await;
    let viewer = env.kubeconfig_for("viewer", "viewer-token").unwrap();

    let out = plugin(&viewer, &["version"]).await;
    assert_eq!(code(&out), 0, "not being allowed to see the agent is no failure: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("agent: unknown: you may not list leases.coordination.k8s.io in any namespace"), "{text}");
    assert!(text.contains("`kubectl auth can-i list leases.coordination.k8s.io -A`"), "{text}");
    assert!(text.contains("--agent-namespace NS looks in one namespace only"), "{text}");

    let rule = json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]});
    e2e_support::grant_viewer(&admin, "alustan-system", "lease-reader", rule).await;
    let out = plugin(&viewer, &["version", "--agent-namespace", "alustan-system"]).await;
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("agent: up (leader alustan-agent-7d9f-x2, renewed "), "{}", stdout(&out));
    // Still not cluster-wide: the all-namespaces look-up stays refused.
    let out = plugin(&viewer, &["version"]).await;
    assert!(stdout(&out).contains("agent: unknown: you may not list leases"), "{}", stdout(&out));
}

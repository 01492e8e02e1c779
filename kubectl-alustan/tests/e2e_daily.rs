//! The plugin as a daily tool (issue 14), always through kubectl's own plugin mechanism
//! (`kubectl alustan …` with the plugin on PATH): quiet on a closed pipe, `--wait` ending as
//! soon as its outcome is known with one exit code per cause, progress of the request's own run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use alustan_shared::Terraform;
use alustan_shared::meta::RESYNC_REQUESTED_AT;
use alustan_testenv::TestEnv;
use e2e_support::{
    agent_lease, agent_up, code, completed_status, condition, create, kubectl, set_status, stderr, stdout,
};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// A test environment without the kubelet (nothing here runs a Job).
async fn without_kubelet() -> TestEnv {
    TestEnv::start_with(alustan_testenv::TestEnvOptions { kubelet: false, ..Default::default() }).await.unwrap()
}

/// Every command whose reader went away (`| head -1` after one line; here: before any) ends
/// quietly with 0, as kubectl does, instead of panicking with exit 101.
#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;
    e2e_support::run_job(&env, "staging-deploy-2").await;
    let commands: [&[&str]; 10] = [
        &["logs", "staging"],
        &["logs", "staging", "--run", "1"],
        &["completion", "bash"],
        &["get", "-A"],
        &["get", "staging", "-o", "yaml"],
        &["describe", "staging"],
        &["outputs", "staging"],
        &["credentials", "staging"],
        &["version"],
        &["--help"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = e2e_support::kubectl_alustan(env.kubeconfig(), args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

/// Nobody runs anything for the request: `--wait` says why at once with that cause's exit code
/// (4 suspended, 5 invalid spec, 6 agent not running), and plain `sync` says it on stderr.
#[tokio::test]
async fn wait_ends_at_once_when_no_run_can_follow() {
    let env = without_kubelet().await;
    let client = env.client().unwrap();
    let kc = env.kubeconfig();
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;

    // No agent Lease anywhere: exit 6, well before the 10 minutes asked for.
    let started = Instant::now();
    let out = kubectl(kc, &["sync", "staging", "--wait", "--timeout", "10m"]).await;
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing runs now: the agent is not running (agent: not found)"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let out = kubectl(kc, &["sync", "staging"]).await;
    assert_eq!(code(&out), 0, "the request is recorded");
    assert!(stderr(&out).contains("note: terraform default/staging: nothing runs now: the agent is not running"));

    // The agent stopped renewing its Lease 3 minutes ago: stale, exit 6.
    e2e_support::namespace(&client, "alustan-system").await;
    agent_lease(&client, "alustan-system", "alustan-agent-0", Duration::from_secs(181)).await;
    let out = kubectl(kc, &["resync", "staging", "--wait"]).await;
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("(agent: stale 3m"), "{}", stderr(&out));

    let agent = agent_up(&client).await;
    // Suspended: exit 4 and how to resume.
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    api.patch("staging", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}}))).await.unwrap();
    let out = kubectl(kc, &["sync", "staging", "--wait"]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "it is suspended; the request is kept and runs once it is resumed (`kubectl alustan resume staging`)"
        ),
        "{}",
        stderr(&out)
    );
    let out = kubectl(kc, &["sync", "staging"]).await;
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("note: terraform default/staging: nothing runs now: it is suspended"),
        "{}",
        stderr(&out)
    );
    api.patch("staging", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await.unwrap();

    // The agent refused this generation's spec: exit 5 with its reason.
    let generation = api.get("staging").await.unwrap().metadata.generation.unwrap();
    let mut stalled =
        condition("Stalled", "True", "InvalidSpec", "postDeploy.args names TF_VAR_nope, not in spec.variables");
    stalled["observedGeneration"] = json!(generation);
    set_status(&client, "default", "staging", json!({"state": "Error", "conditions": [stalled]})).await;
    let out = kubectl(kc, &["sync", "staging", "--wait"]).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("its spec is invalid (postDeploy.args names TF_VAR_nope"), "{}", stderr(&out));

    // Nobody answers a valid request: the timeout, exit 3.
    set_status(&client, "default", "staging", completed_status("default")).await;
    let out = kubectl(kc, &["sync", "staging", "--wait", "--timeout", "2s"]).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out after 2s"), "{}", stderr(&out));

    // The agent stops while the wait goes on: exit 6 at the next look at its Lease.
    let waiting = e2e_support::kubectl_alustan(kc, &["sync", "staging", "--wait", "--timeout", "10m"]).output();
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.abort();
    agent_lease(&client, "alustan-system", "alustan-agent-0", Duration::from_secs(60)).await;
    let out = tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("the run cannot go on: the agent is not running"), "{}", stderr(&out));
}

/// `resync --wait` after a failed run: the old `Failed` is not shown as progress; the lines
/// start with the run the request caused.
#[tokio::test]
async fn wait_shows_progress_of_the_requested_run_only() {
    let env = without_kubelet().await;
    let client = env.client().unwrap();
    create(&client, "default", "edge").await;
    let failed = json!({"state": "Failed", "message": "deploy failed: Error: InvalidVpc.Range",
        "conditions": [condition("Ready", "False", "ScriptFailed", "deploy failed"),
                       condition("Reconciling", "False", "ScriptFailed", "")]});
    set_status(&client, "default", "edge", failed).await;
    let _agent = agent_up(&client).await;
    let waiting = tokio::spawn(
        e2e_support::kubectl_alustan(env.kubeconfig(), &["resync", "edge", "--wait", "--timeout", "60s"]).output(),
    );
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let token = loop {
        let annotations = api.get("edge").await.unwrap().metadata.annotations.unwrap_or_default();
        if let Some(token) = annotations.get(RESYNC_REQUESTED_AT) {
            break token.clone();
        }
        if waiting.is_finished() {
            let out = waiting.await.unwrap().unwrap();
            panic!("the plugin ended before requesting: {}\n{}", stdout(&out), stderr(&out));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Give the plugin time to see (and not print) the old state.
    tokio::time::sleep(Duration::from_millis(700)).await;
    set_status(
        &client,
        "default",
        "edge",
        json!({"state": "Progressing", "message": "deploying 1.0.4 (sync requested)", "lastHandledReconcileAt": token,
               "conditions": [condition("Reconciling", "True", "Deploying", "deploying 1.0.4")]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_status(
        &client,
        "default",
        "edge",
        json!({"state": "Success", "message": "up to date: 1.0.4 applied",
               "conditions": [condition("Ready", "True", "Succeeded", ""), condition("Reconciling", "False", "Succeeded", "")]}),
    )
    .await;
    let out = tokio::time::timeout(Duration::from_secs(60), waiting).await.unwrap().unwrap().unwrap();
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    let progress: Vec<&str> = text.lines().skip(1).collect();
    assert!(progress[0].ends_with("Progressing (Deploying): deploying 1.0.4 (sync requested)"), "{text}");
    assert!(!text.contains("Failed"), "the previous run is not this request's progress: {text}");
    assert!(text.contains("run ended Success"), "{text}");
}

/// Hints that are true: `-A NAME` finds the one namespace holding NAME, a miss names where the
/// name does exist, a wrong `--context` lists the contexts, `logs` without runs says so, `--run 0`
/// and a bad `-l` are said in plain words.
#[tokio::test]
async fn hints_are_true_and_errors_plain() {
    let env = without_kubelet().await;
    let client = env.client().unwrap();
    let kc = env.kubeconfig();
    e2e_support::namespace(&client, "infra").await;
    create(&client, "infra", "dev-sandbox").await;
    create(&client, "default", "fresh").await;
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;

    let out = kubectl(kc, &["describe", "-A", "dev-sandbox"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("Namespace:     infra"), "{}", stdout(&out));
    let out = kubectl(kc, &["sync", "dev-sandbox", "-A"]).await;
    assert!(stdout(&out).contains("terraform infra/dev-sandbox: sync requested"), "{}", stdout(&out));
    let out = kubectl(kc, &["describe", "dev-sandbox"]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(
            "terraform \"dev-sandbox\" not found in namespace \"default\"\n  it exists in namespace infra: add -n infra"
        ),
        "{}",
        stderr(&out)
    );
    let out = kubectl(kc, &["describe", "-A", "nowhere"]).await;
    assert!(stderr(&out).contains("terraform \"nowhere\" not found in any namespace"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("-A searches"), "{}", stderr(&out));

    let out = kubectl(kc, &["get", "--context", "nope"]).await;
    assert_eq!(code(&out), 1);
    let text = stderr(&out);
    assert!(text.contains("context \"nope\" is not in the kubeconfig (it has: "), "{text}");
    assert!(text.contains("kubectl config get-contexts") && !text.contains("--kubeconfig"), "{text}");

    let out = kubectl(kc, &["logs", "fresh"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("default/fresh has no runs yet, so no log (state Pending)"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("goes further back"), "{}", stderr(&out));
    let out = kubectl(kc, &["logs", "staging", "--run", "5"]).await;
    assert!(
        stderr(&out).contains("has 2 recorded run(s)") && stderr(&out).contains("pick --run 1 to 2"),
        "{}",
        stderr(&out)
    );
    let out = kubectl(kc, &["logs", "staging", "--run", "0"]).await;
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("runs count back from 1 (the latest run)"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("4294967295"), "{}", stderr(&out));

    let out = kubectl(kc, &["get", "-l", "team in (a"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("invalid label selector \"team in (a\""), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Status {"), "{}", stderr(&out));

    let out = kubectl(kc, &["resume", "--all", "--yes"]).await;
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("nothing to resume: every resource in scope is already running"), "{}", stdout(&out));
}

/// `get` as kubectl users expect: a SUSPENDED column, VERSION naming the tag a failed deploy
/// tried, `-o name`, `-o jsonpath=`, `-o custom-columns=`, managedFields only on request, and
/// `-w` rows under the header's columns.
#[tokio::test]
async fn get_speaks_kubectl() {
    let env = without_kubelet().await;
    let client = env.client().unwrap();
    let kc = env.kubeconfig();
    create(&client, "default", "edge").await;
    let tried = json!({"state": "Failed", "message": "deploy failed: exit code 1: Error: InvalidVpc.Range",
        "history": [{"action": "Deploy", "jobName": "edge-deploy-1", "image": "iac@sha256:00", "tag": "1.0.2",
                     "startTime": "2026-01-10T10:00:00Z", "completionTime": "2026-01-10T10:01:00Z", "result": "Failed"}]});
    set_status(&client, "default", "edge", tried).await;
    create(&client, "default", "staging").await;
    set_status(&client, "default", "staging", completed_status("default")).await;
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    // A server-side apply leaves managedFields, as kubectl apply does.
    let apply = json!({"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "staging"},
                       "spec": {"suspend": true}});
    api.patch("staging", &PatchParams::apply("e2e"), &Patch::Apply(apply)).await.unwrap();

    let out = kubectl(kc, &["get"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATE", "VERSION", "READY", "SUSPENDED", "AGE"], "{text}");
    assert_eq!(rows[1][..5], ["edge", "Failed", "<none>→1.0.2", "Unknown", "False"], "{text}");
    assert_eq!(rows[2][..5], ["staging", "Completed", "1.0.3", "True", "True"], "{text}");

    let out = kubectl(kc, &["get", "-o", "name"]).await;
    assert_eq!(stdout(&out), "terraform.alustan.io/edge\nterraform.alustan.io/staging\n");
    let template = r#"jsonpath={range .items[*]}{.metadata.name}={.status.applied.tag}{"\n"}{end}"#;
    let out = kubectl(kc, &["get", "-o", template]).await;
    assert_eq!(stdout(&out), "edge=\nstaging=1.0.3\n", "{}", stderr(&out));
    let out = kubectl(kc, &["get", "staging", "-o", "jsonpath={.spec.containerRegistry.imageName}"]).await;
    assert_eq!(stdout(&out), "alustan/infrastructure");
    let out = kubectl(kc, &["get", "-o", "custom-columns=NAME:.metadata.name,TAG:.status.applied.tag"]).await;
    let rows: Vec<Vec<String>> =
        stdout(&out).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(rows, [["NAME", "TAG"], ["edge", "<none>"], ["staging", "1.0.3"]]);
    let out = kubectl(kc, &["get", "-o", "jsonpath={.items[*]"]).await;
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unclosed `{`"), "{}", stderr(&out));
    let out = kubectl(kc, &["get", "-o", "xml"]).await;
    assert!(stderr(&out).contains("`xml` is not an output format; use one of: table, wide"), "{}", stderr(&out));

    let out = kubectl(kc, &["get", "staging", "-o", "yaml"]).await;
    assert!(!stdout(&out).contains("managedFields"), "{}", stdout(&out));
    let out = kubectl(kc, &["get", "staging", "-o", "yaml", "--show-managed-fields"]).await;
    assert!(stdout(&out).contains("managedFields"), "{}", stdout(&out));

    // -w: the row of a change is cut to the first listing's columns.
    let mut child = e2e_support::kubectl_alustan(kc, &["get", "-w"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let mut next =
        async || tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    let header = next().await;
    next().await;
    next().await;
    set_status(&client, "default", "edge", json!({"state": "Progressing"})).await;
    let changed = next().await;
    let changed: Vec<char> = changed.chars().collect();
    for column in ["STATE", "VERSION", "READY", "SUSPENDED", "AGE"] {
        let at = header.chars().count() - header[header.find(column).unwrap()..].chars().count();
        assert!(
            changed[at - 1] == ' ' && changed[at] != ' ',
            "{column} starts under its header:\n{header}\n{changed:?}"
        );
    }
    child.kill().await.unwrap();
}

/// `describe`'s Events: one row per reason with the latest note and `(xN over AGE)`, not the
/// first deploy's note for every later one.
#[tokio::test]
async fn describe_folds_events_per_reason_with_the_latest_note() {
    let env = without_kubelet().await;
    let client = env.client().unwrap();
    let staging = create(&client, "default", "staging").await;
    let uid = staging.metadata.uid.clone().unwrap();
    for event in [
        ("staging.1", "Deploying", "Normal", "deploying v1.0.1 (new resource)", "2026-01-10T10:00:00Z", 1),
        ("staging.2", "Deploying", "Normal", "deploying v1.0.2 (new image)", "2026-01-10T10:30:00Z", 1),
        ("staging.3", "ScriptFailed", "Warning", "deploy failed: exit code 1: Error: quota", "2026-01-10T10:40:00Z", 2),
        ("staging.4", "Deploying", "Normal", "deploying v1.0.4 (new image)", "2026-01-10T11:00:00Z", 2),
    ] {
        e2e_support::staging_event(&client, &uid, event).await;
    }
    let out = kubectl(env.kubeconfig(), &["describe", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let events = &text[text.find("Events:").unwrap()..];
    let deploying: Vec<&str> = events.lines().filter(|l| l.contains("Deploying")).collect();
    assert_eq!(deploying.len(), 1, "{events}");
    assert!(deploying[0].contains("(x4 over ") && deploying[0].contains("deploying v1.0.4 (new image)"), "{events}");
    assert!(!events.contains("v1.0.1") && !events.contains("v1.0.2"), "{events}");
    assert!(events.lines().any(|l| l.contains("ScriptFailed") && l.contains("(x2 over ")), "{events}");
}

/// `outputs` shows the terraform and post-deploy outputs, labelled (the TUI's `o` view shows
/// the same rows); `--show-sensitive` reads the outputs Secret with the user's own RBAC (refused
/// with the verb, resource and namespace otherwise); `outputs` and `credentials` take `-o`.
#[tokio::test]
async fn outputs_and_credentials_show_everything_the_user_may_see() {
    let (env, admin) = e2e_support::env_with_viewer().await;
    create(&admin, "default", "staging").await;
    let mut status = completed_status("default");
    status["postDeployOutput"] = json!({"outputs": {"account_id": "123456789012"}});
    status["sensitiveOutputsSecret"] = json!("staging-outputs");
    set_status(&admin, "default", "staging", status).await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "staging-outputs", "namespace": "default"},
        "stringData": {"db_password": "s3cret-db"},
    }))
    .unwrap();
    Api::namespaced(admin.clone(), "default").create(&kube::api::PostParams::default(), &secret).await.unwrap();
    let kc = env.kubeconfig();

    let out = kubectl(kc, &["outputs", "staging"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows: Vec<Vec<String>> =
        stdout(&out).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(rows[0], ["NAME", "FROM", "VALUE"]);
    assert!(rows.contains(&vec!["node_count".into(), "terraform".into(), "3".into()]), "{rows:?}");
    assert!(rows.contains(&vec!["account_id".into(), "post-deploy".into(), "123456789012".into()]), "{rows:?}");
    assert!(!stdout(&out).contains("s3cret-db"));
    assert!(stderr(&out).contains("--show-sensitive reads them with your own permissions"), "{}", stderr(&out));
    let out = kubectl(kc, &["outputs", "staging", "--show-sensitive"]).await;
    assert!(
        stdout(&out).lines().any(|l| l.split_whitespace().eq(["db_password", "sensitive", "s3cret-db"])),
        "{}",
        stdout(&out)
    );
    let out = kubectl(kc, &["outputs", "staging", "--show-sensitive", "-o", "yaml"]).await;
    let printed: serde_json::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["db_password"], "s3cret-db");
    assert_eq!(printed["node_count"], 3);

    // A viewer who may read Terraforms but not Secrets.
    let rule = json!({"apiGroups": ["alustan.io"], "resources": ["terraforms"], "verbs": ["get", "list"]});
    e2e_support::grant_viewer(&admin, "default", "terraform-viewer", rule).await;
    let viewer = env.kubeconfig_for("viewer", "viewer-token").unwrap();
    let out = kubectl(&viewer, &["outputs", "staging", "--show-sensitive"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("forbidden: you may not get secrets in namespace \"default\""), "{}", stderr(&out));
    assert!(!stdout(&out).contains("s3cret"), "{}", stdout(&out));

    let out = kubectl(kc, &["credentials", "staging", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed[0]["name"], "argocd");
    assert_eq!(printed[0]["passwordSecretRef"]["name"], "argocd-admin");
    assert!(printed[0].get("password").is_none(), "masked: no password without --reveal");
}

/// `kubectl apply` of a `semanticVersion` the agent could never use is refused at admission by
/// the CRD's CEL rules (evaluated by testenv's API server as a real one does): a Terraform-style
/// `~>` constraint (with how to write it), and a constraint that does not parse.
#[tokio::test]
async fn kubectl_apply_refuses_specs_no_run_could_use() {
    let env = without_kubelet().await;
    let apply = async |semantic_version: &str| {
        let manifest = json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "edge", "namespace": "default"},
            "spec": {"variables": {"TF_VAR_region": "eu-west-1"}, "scripts": {"deploy": "deploy"},
                     "postDeploy": {"script": "aws-resource", "args": {"region": "TF_VAR_region"}},
                     "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": semantic_version}},
        });
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), manifest.to_string()).unwrap();
        let out = tokio::process::Command::new("kubectl")
            .args(["apply", "-f"])
            .arg(file.path())
            .env("KUBECONFIG", env.kubeconfig())
            .env("KUBECACHEDIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-cache"))
            .output()
            .await
            .unwrap();
        (code(&out), stderr(&out))
    };
    let (status, err) = apply("~> 1.0").await;
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("`~>` is Terraform's constraint syntax; here write `~1.2.0` for patch updates"), "{err}");
    let (status, err) = apply("1.0 || 2.0").await;
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("not a semantic version constraint"), "{err}");
    let (status, err) = apply(">=1.2, <2").await;
    assert_eq!(status, 0, "a valid spec is accepted: {err}");
}

//! Conformance: the REAL kubectl (1.32 via its dispatcher) against the test apiserver.

// Helpers outside #[test] fns panic on purpose: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apiserver_support;

use std::time::Duration;

use alustan_testenv::apiserver::{ApiServerOptions, UserInfo};
use apiserver_support::{EXAMPLE_CR, Env, env, env_with};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

async fn applied(e: &Env) {
    let out = e.kubectl_in(&["apply", "-f", "-"], EXAMPLE_CR).await;
    assert!(out.ok, "apply failed: {}", out.stderr);
    assert!(out.stdout.contains("terraform.alustan.io/staging-cluster created"), "{}", out.stdout);
}

const READY_STATUS: &str = r#"{"status":{"state":"Success","message":"deployed v1.0.3","applied":{"tag":"v1.0.3","digest":"sha256:ab","image":"alustan/infrastructure@sha256:ab"},"conditions":[{"type":"Ready","status":"True","reason":"Deployed","message":"ok","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_create_configure_unchanged() {
    let e = env().await;
    applied(&e).await;
    // kubectl validated server-side: it sent fieldValidation=Strict after reading /openapi/v3.
    assert!(e.requests().count(|r| r.verb == "create" && r.query.contains("fieldValidation=Strict")) == 1);
    let again = e.kubectl_in(&["apply", "-f", "-"], EXAMPLE_CR).await;
    assert!(again.stdout.contains("unchanged"), "{again:?}");
    let changed = EXAMPLE_CR.replace("~1.0.0", "~1.1.0");
    let out = e.kubectl_in(&["apply", "-f", "-"], &changed).await;
    assert!(out.stdout.contains("configured"), "{out:?}");
    let json: Value = serde_json::from_str(&e.ok(&["get", "altf", "staging-cluster", "-o", "json"]).await).unwrap();
    assert_eq!(json["spec"]["containerRegistry"]["semanticVersion"], "~1.1.0");
    assert_eq!(json["metadata"]["generation"], 2);
    // Unknown fields are rejected by strict server-side validation.
    let bad = EXAMPLE_CR.replace("  scripts:", "  bogus: 1\n  scripts:");
    let out = e.kubectl_in(&["apply", "-f", "-"], &bad).await;
    assert!(!out.ok && out.stderr.contains("unknown field \"spec.bogus\""), "{out:?}");
    // Schema violations come back as 422 with the field path.
    let invalid = EXAMPLE_CR
        .replace(
            "  containerRegistry: {provider: docker, imageName: alustan/infrastructure, semanticVersion: \"~1.0.0\"}\n",
            "",
        )
        .replace("staging-cluster", "broken");
    let out = e.kubectl_in(&["apply", "-f", "-"], &invalid).await;
    assert!(out.stderr.contains("spec.containerRegistry: Required value"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_then_updates() {
    let e = env().await;
    let out = e.kubectl_in(&["apply", "--server-side", "-f", "-"], EXAMPLE_CR).await;
    assert!(out.ok && out.stdout.contains("serverside-applied"), "{out:?}");
    let json: Value = serde_json::from_str(
        &e.ok(&["get", "terraform", "staging-cluster", "-o", "json", "--show-managed-fields"]).await,
    )
    .unwrap();
    let mf = json["metadata"]["managedFields"].as_array().unwrap();
    assert!(mf.iter().any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"), "{mf:?}");
    let out = e
        .kubectl_in(&["apply", "--server-side", "-f", "-"], &EXAMPLE_CR.replace("deploy: deploy", "deploy: deploy2"))
        .await;
    assert!(out.ok, "{out:?}");
    let json: Value =
        serde_json::from_str(&e.ok(&["get", "terraform", "staging-cluster", "-o", "json"]).await).unwrap();
    assert_eq!(json["spec"]["scripts"]["deploy"], "deploy2");
    // Another manager changing the same field conflicts unless forced.
    let other = EXAMPLE_CR.replace("deploy: deploy", "deploy: other");
    let out = e.kubectl_in(&["apply", "--server-side", "--field-manager", "other", "-f", "-"], &other).await;
    assert!(!out.ok && out.stderr.contains("conflict"), "{out:?}");
    let out = e
        .kubectl_in(&["apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", "-"], &other)
        .await;
    assert!(out.ok, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_printer_columns_and_wide() {
    let e = env().await;
    applied(&e).await;
    e.ok(&["patch", "terraform", "staging-cluster", "--subresource=status", "--type=merge", "-p", READY_STATUS]).await;
    let out = e.ok(&["get", "terraforms"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "VERSION", "READY", "AGE"], "{out}");
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["staging-cluster", "Success", "v1.0.3", "True"], "{out}");
    let wide = e.ok(&["get", "altf", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("MESSAGE") && wide.contains("deployed v1.0.3"), "{wide}");
    // Categories and short names resolve through discovery.
    assert!(e.ok(&["get", "alustan"]).await.contains("staging-cluster"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_status_then_wait_for_condition_and_describe() {
    let e = env().await;
    applied(&e).await;
    let waiter = e
        .kubectl_cmd(&["wait", "--for=condition=Ready", "terraform/staging-cluster", "--timeout=10s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = e
        .ok(&["patch", "terraform", "staging-cluster", "--subresource=status", "--type=merge", "-p", READY_STATUS])
        .await;
    assert!(out.contains("patched"), "{out}");
    let finished = waiter.wait_with_output().await.unwrap();
    assert!(finished.status.success(), "{}", String::from_utf8_lossy(&finished.stderr));
    assert!(String::from_utf8_lossy(&finished.stdout).contains("condition met"));
    // A main-resource patch cannot change status.
    e.ok(&["patch", "terraform", "staging-cluster", "--type=merge", "-p", r#"{"status":{"state":"Failed"}}"#]).await;
    assert_eq!(e.ok(&["get", "terraform", "staging-cluster", "-o", "jsonpath={.status.state}"]).await, "Success");
    let uid = e.ok(&["get", "terraform", "staging-cluster", "-o", "jsonpath={.metadata.uid}"]).await;
    let event = format!(
        r#"{{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{{"name":"ev1","namespace":"default"}},"eventTime":"2024-01-01T00:00:00.000000Z","reportingController":"alustan.io/agent","reportingInstance":"agent-0","action":"Deploy","reason":"DeploySucceeded","note":"deployed v1.0.3","type":"Normal","regarding":{{"apiVersion":"alustan.io/v1alpha1","kind":"Terraform","name":"staging-cluster","namespace":"default","uid":"{uid}"}}}}"#
    );
    e.kubectl_in(&["create", "-f", "-"], &event).await;
    let described = e.ok(&["describe", "terraform", "staging-cluster"]).await;
    for want in ["Name:         staging-cluster", "Containers Registry", "DeploySucceeded"] {
        let want = if want == "Containers Registry" { "Container Registry" } else { want };
        assert!(described.contains(want), "missing {want:?} in:\n{described}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes() {
    let e = env().await;
    applied(&e).await;
    let mut child = e.kubectl_cmd(&["get", "terraforms", "-w"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    e.ok(&["patch", "terraform", "staging-cluster", "--subresource=status", "--type=merge", "-p", READY_STATUS]).await;
    let saw = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Success") && line.contains("True") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(saw.starts_with("staging-cluster"), "{saw}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_finalizer_and_wait_for_delete() {
    let e = env().await;
    applied(&e).await;
    e.ok(&[
        "patch",
        "terraform",
        "staging-cluster",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["alustan.io/destroy"]}}"#,
    ])
    .await;
    let out = e.ok(&["delete", "terraform", "staging-cluster", "--wait=false"]).await;
    assert!(out.contains("deleted"), "{out}");
    let ts = e.ok(&["get", "terraform", "staging-cluster", "-o", "jsonpath={.metadata.deletionTimestamp}"]).await;
    assert!(!ts.is_empty());
    let waiter =
        e.kubectl_cmd(&["wait", "--for=delete", "terraform/staging-cluster", "--timeout=10s"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.ok(&[
        "patch",
        "terraform",
        "staging-cluster",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let finished = waiter.wait_with_output().await.unwrap();
    assert!(finished.status.success(), "{}", String::from_utf8_lossy(&finished.stderr));
    let gone = e.kubectl(&["get", "terraform", "staging-cluster"]).await;
    assert!(gone.stderr.contains("NotFound") || gone.stderr.contains("not found"), "{gone:?}");
    // A plain delete (no finalizers) waits for the object to disappear.
    applied(&e).await;
    assert!(e.ok(&["delete", "terraform", "staging-cluster"]).await.contains("deleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_logs_and_jobs() {
    let e = env().await;
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1"},"spec":{"containers":[{"name":"main","image":"busybox"}]}}"#;
    e.kubectl_in(&["create", "-f", "-"], pod).await;
    e.embedded("pod log injection").pod_logs().append("default", "p1", "main", b"line one\nline two\n");
    assert_eq!(e.ok(&["logs", "p1"]).await, "line one\nline two\n");
    assert_eq!(e.ok(&["logs", "p1", "--tail=1"]).await, "line two\n");
    let job = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j1"},"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}}}}"#;
    let out = e.kubectl_in(&["create", "-f", "-"], job).await;
    assert!(out.ok, "{out:?}");
    let out = e.ok(&["get", "jobs"]).await;
    assert!(out.lines().next().unwrap().contains("COMPLETIONS"), "{out}");
    let out = e.ok(&["get", "pods"]).await;
    assert!(out.contains("p1") && out.contains("Pending"), "{out}");
    let out = e.ok(&["create", "configmap", "c1", "--from-literal=a=b"]).await;
    assert!(out.contains("created"), "{out}");
    assert!(e.ok(&["get", "cm", "c1", "-o", "jsonpath={.data.a}"]).await == "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_with_rbac() {
    let opts = ApiServerOptions {
        rbac: true,
        tokens: vec![
            ("admin-token".into(), UserInfo::admin()),
            ("agent-token".into(), UserInfo::service_account("alustan", "agent")),
        ],
        ..ApiServerOptions::default()
    };
    let mut e = env_with(opts).await;
    e.kubectl_as("admin", "admin-token");
    let rbac = r"
apiVersion: v1
kind: Namespace
metadata: {name: alustan}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: agent}
rules:
- apiGroups: [alustan.io]
  resources: [terraforms, terraforms/status]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agent}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agent}
subjects:
- {kind: ServiceAccount, name: agent, namespace: alustan}
";
    let out = e.kubectl_in(&["apply", "-f", "-"], rbac).await;
    assert!(out.ok, "{out:?}");
    let agent_cfg = e.stack.kubeconfig_for("agent", "agent-token").unwrap();
    let as_agent = |args: &[&str]| {
        let mut v = vec!["--kubeconfig", agent_cfg.to_str().unwrap()];
        v.extend_from_slice(args);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = e.kubectl_cmd(&[]);
        let _ = &refs;
        cmd.args(&refs);
        cmd
    };
    // kubectl takes the last --kubeconfig given.
    let out = run(as_agent(&["auth", "can-i", "create", "jobs.batch"])).output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    let out = run(as_agent(&["auth", "can-i", "delete", "jobs.batch"])).output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    let out = run(as_agent(&["auth", "can-i", "patch", "terraforms.alustan.io", "--subresource=status"]))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    let out = run(as_agent(&["delete", "job", "x"])).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"jobs.batch "x" is forbidden: User "system:serviceaccount:alustan:agent" cannot delete resource "jobs" in API group "batch" in the namespace "default""#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_token_issues_a_service_account_token() {
    let e = env().await;
    // kubectl's typed client sends the TokenRequest as protobuf.
    let token = e.ok(&["create", "token", "default", "--duration", "20m"]).await;
    let token = token.trim();
    assert!(!token.is_empty());
    let client = e.client_for(token);
    // Allowed on the embedded server (no RBAC here), refused by the real one's RBAC: either way
    // the request was authenticated as the ServiceAccount.
    let listed = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::default_namespaced(client)
        .list(&kube::api::ListParams::default())
        .await;
    assert!(listed.is_ok() || matches!(&listed, Err(kube::Error::Api(s)) if s.code == 403), "{listed:?}");
    assert_eq!(e.requests().count(|r| r.user == "system:serviceaccount:default:default"), 1);

    let short = e.kubectl(&["create", "token", "default", "--duration", "1m"]).await;
    assert!(!short.ok && short.stderr.contains("may not specify a duration less than 10 minutes"), "{short:?}");
    let missing = e.kubectl(&["create", "token", "nosuch"]).await;
    assert!(!missing.ok && missing.stderr.contains(r#"serviceaccounts "nosuch" not found"#), "{missing:?}");
}

//! `plan`, `approve`, `reject`, `show-plan` and the plan marks of `get`/`describe` end to end
//! against the test API server. The tests play the agent by writing `status.plan` themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use alustan_shared::Terraform;
use alustan_shared::meta::{APPROVE_PLAN, PLAN_REQUESTED_AT, REJECT_PLAN};
use alustan_testenv::{TestEnv, TestEnvOptions};
use e2e_support::{code, condition, plugin, set_status, stderr, stdout};
use kube::Api;
use kube::api::PostParams;
use kubectl_alustan::plans::Verdict;
use serde_json::{Value, json};

async fn env() -> (TestEnv, kube::Client) {
    let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
    let client = env.client().unwrap();
    (env, client)
}

/// `default/NAME` with a plan script and `approval: Manual` (`plan: false`: neither).
async fn create(client: &kube::Client, name: &str, plan: bool) -> Terraform {
    let mut spec = json!({
        "scripts": {"deploy": "deploy"},
        "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"},
    });
    if plan {
        spec["scripts"]["plan"] = json!("plan");
        spec["approval"] = json!("Manual");
    }
    let object: Terraform = serde_json::from_value(json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec,
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default").create(&PostParams::default(), &object).await.unwrap()
}

/// `status.plan` as the agent writes it: 2 to add, 1 to change, one address omitted.
fn plan(id: &str, job: &str, trigger: &str, decision: &str) -> Value {
    json!({
        "id": id, "jobName": job, "generation": 1, "tag": "1.0.3",
        "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "trigger": trigger, "time": "2026-01-10T11:00:00Z",
        "counts": {"create": 2, "update": 1, "delete": 0, "replace": 0},
        "changes": [{"address": "aws_instance.web[0]", "action": "create"},
                    {"address": "aws_s3_bucket.logs", "action": "update"}],
        "changesOmitted": 1,
        "decision": decision,
    })
}

/// A plan of new inputs waiting for approval (state `Planned`).
fn planned(id: &str) -> Value {
    let message = format!("plan {id} waits for approval: 2 to add, 1 to change, 0 to destroy, 0 to replace");
    json!({
        "state": "Planned", "message": message, "observedGeneration": 1,
        "conditions": [condition("Ready", "False", "AwaitingApproval", &message),
                       condition("Reconciling", "False", "AwaitingApproval", &message)],
        "plan": plan(id, "web-plan-2", "Change", "Pending"),
        "history": [{"action": "Plan", "jobName": "web-plan-2", "image": "alustan/infrastructure:1.0.3",
                     "tag": "1.0.3", "startTime": "2026-01-10T10:59:00Z", "completionTime": "2026-01-10T11:00:00Z",
                     "result": "Succeeded", "plan": id, "trigger": "Change"}],
    })
}

/// `default/web` whose plan `p-2` waits for approval.
async fn planned_web() -> (TestEnv, kube::Client) {
    let (env, client) = env().await;
    create(&client, "web", true).await;
    set_status(&client, "default", "web", planned("p-2")).await;
    (env, client)
}

async fn annotations(client: &kube::Client, name: &str) -> BTreeMap<String, String> {
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    api.get(name).await.unwrap().metadata.annotations.unwrap_or_default()
}

#[tokio::test]
async fn approve_writes_the_current_plan_id_and_a_stale_id_is_refused_writing_nothing() {
    let (env, client) = planned_web().await;
    let kc = env.kubeconfig();

    // A stale id: exit 7, the current id (and its counts) named, nothing written.
    let out = plugin(kc, &["approve", "web", "--plan", "p-1"]).await;
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("plan p-1 is not the current plan of terraform default/web"), "{text}");
    assert!(text.contains("the current plan is p-2 (Pending: 2 to add, 1 to change, 0 to destroy, 0 to replace)"));
    assert!(text.contains("`kubectl alustan approve web --plan p-2`"), "{text}");
    assert!(!annotations(&client, "web").await.contains_key(APPROVE_PLAN));

    // The current id, named or not: written, the counts it approves printed.
    let out = plugin(kc, &["approve", "web", "--plan", "p-2"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "terraform default/web: approved plan p-2: 2 to add, 1 to change, 0 to destroy, 0 to replace"
    );
    assert_eq!(annotations(&client, "web").await.get(APPROVE_PLAN).map(String::as_str), Some("p-2"));

    // A newer plan supersedes it; approving without --plan names the newer one.
    set_status(&client, "default", "web", planned("p-3")).await;
    let out = plugin(kc, &["approve", "web"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(annotations(&client, "web").await.get(APPROVE_PLAN).map(String::as_str), Some("p-3"));

    // Applied: nothing to approve (exit 1), the annotation left as it was.
    set_status(&client, "default", "web", json!({"plan": plan("p-3", "web-plan-2", "Change", "Applied")})).await;
    let out = plugin(kc, &["approve", "web"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("nothing to approve: plan p-3 of terraform default/web is applied already"));
}

#[tokio::test]
async fn reject_writes_its_annotation_and_refuses_a_plan_without_changes() {
    let (env, client) = planned_web().await;
    let kc = env.kubeconfig();
    let out = plugin(kc, &["reject", "web", "--plan", "p-9"]).await;
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(!annotations(&client, "web").await.contains_key(REJECT_PLAN));

    let out = plugin(kc, &["reject", "web"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("rejected plan p-2: 2 to add"), "{}", stdout(&out));
    let written = annotations(&client, "web").await;
    assert_eq!(written.get(REJECT_PLAN).map(String::as_str), Some("p-2"));
    assert!(!written.contains_key(APPROVE_PLAN), "a rejection approves nothing");

    let mut empty = plan("p-4", "web-plan-4", "Request", "NoChanges");
    empty["counts"] = json!({"create": 0, "update": 0, "delete": 0, "replace": 0});
    set_status(&client, "default", "web", json!({"plan": empty})).await;
    let out = plugin(kc, &["reject", "web"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("nothing to reject: plan p-4"), "{}", stderr(&out));
}

#[tokio::test]
async fn plan_without_a_plan_script_is_refused_and_with_one_requests_a_plan() {
    let (env, client) = env().await;
    let kc = env.kubeconfig();
    create(&client, "bare", false).await;
    let out = plugin(kc, &["plan", "bare"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("terraform default/bare has no plan script (spec.scripts.plan)"), "{}", stderr(&out));
    assert!(!annotations(&client, "bare").await.contains_key(PLAN_REQUESTED_AT), "nothing written");
    for command in ["approve", "show-plan"] {
        let out = plugin(kc, &[command, "bare"]).await;
        assert_eq!(code(&out), 1, "{command}");
        assert!(stderr(&out).contains("has no plan script"), "{command}: {}", stderr(&out));
    }

    create(&client, "web", true).await;
    let out = plugin(kc, &["plan", "web"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = annotations(&client, "web").await.get(PLAN_REQUESTED_AT).cloned().unwrap();
    assert!(token.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {token}");
    assert!(stdout(&out).contains(&format!("plan requested at {token}")), "{}", stdout(&out));
    // No plan yet: show-plan and approve say how to get one.
    let out = plugin(kc, &["show-plan", "web"]).await;
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("`kubectl alustan plan web` requests one"), "{}", stderr(&out));
}

/// Plays the agent for a `plan` request on `default/web`: once the annotation is there, the plan
/// run starts (echoing the token) and ends `result`; returns the token.
async fn answer_plan(client: kube::Client, result: &'static str) -> String {
    let token = loop {
        if let Some(token) = annotations(&client, "web").await.get(PLAN_REQUESTED_AT).cloned() {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = |result: &str| {
        json!([{"action": "Plan", "jobName": "web-plan-r1", "image": "alustan/infrastructure:1.0.3", "tag": "1.0.3",
                "startTime": "2026-01-10T11:10:00Z", "result": result, "plan": "p-r1", "trigger": "Request",
                "message": if result == "Failed" { "exit code 1: Error: no credentials" } else { "" }}])
    };
    let planning = json!({"lastHandledPlanAt": token, "history": run("Running"),
                          "conditions": [condition("Reconciling", "True", "Planning", "planning 1.0.3 (requested)")]});
    set_status(&client, "default", "web", planning).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut done = json!({"history": run(result), "conditions": [condition("Reconciling", "False", "Succeeded", "")]});
    if result == "Succeeded" {
        done["plan"] = plan("p-r1", "web-plan-r1", "Request", "Pending");
    }
    set_status(&client, "default", "web", done).await;
    token
}

#[tokio::test]
async fn plan_wait_follows_the_requested_plan_run_and_prints_the_plan_or_fails_with_it() {
    let (env, client) = env().await;
    let kc = env.kubeconfig().to_path_buf();
    create(&client, "web", true).await;
    let _agent = e2e_support::agent_up(&client).await;

    let agent = tokio::spawn(answer_plan(client.clone(), "Succeeded"));
    let out = plugin(&kc, &["plan", "web", "--wait", "--timeout", "60s"]).await;
    agent.await.unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Plan:      p-r1 (Pending)"), "{text}");
    assert!(text.contains("  + aws_instance.web[0]") && text.contains("  ~ aws_s3_bucket.logs"), "{text}");
    assert!(!text.contains("\x1b["), "no colours off a terminal: {text:?}");

    // The next request's run fails: exit 1, the run's message and where its log is.
    Api::<Terraform>::namespaced(client.clone(), "default")
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {PLAN_REQUESTED_AT: null}}})),
        )
        .await
        .unwrap();
    let agent = tokio::spawn(answer_plan(client.clone(), "Failed"));
    let out = plugin(&kc, &["plan", "web", "--wait", "--timeout", "60s"]).await;
    agent.await.unwrap();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("plan run web-plan-r1 ended Failed: exit code 1: Error: no credentials"));
}

#[tokio::test]
async fn show_plan_prints_the_plan_or_status_plan_and_get_describe_mark_planned_and_drift() {
    let (env, client) = planned_web().await;
    let kc = env.kubeconfig();

    let out = plugin(kc, &["show-plan", "web"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "Plan:      p-2 (Pending)",
        "Trigger:   Change (generation 1)",
        "Image:     1.0.3 sha256:0123456789ab…",
        "Job:       web-plan-2",
        "Changes:   2 to add, 1 to change, 0 to destroy, 0 to replace",
        "  + aws_instance.web[0]\n  ~ aws_s3_bucket.logs\n  … and 1 more\n",
        "Approve with `kubectl alustan approve web --plan p-2`",
    ] {
        assert!(text.contains(expected), "show-plan lacks {expected:?}:\n{text}");
    }
    let out = plugin(kc, &["show-plan", "web", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, plan("p-2", "web-plan-2", "Change", "Pending"));

    let out = plugin(kc, &["get"]).await;
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with("web")).map(|l| l.split_whitespace().take(2).collect::<Vec<_>>());
    assert_eq!(row, Some(vec!["web", "Planned"]), "{text}");
    let out = plugin(kc, &["describe", "web"]).await;
    let text = stdout(&out);
    assert!(text.contains("Plans:         `plan`, approval Manual, drift Correct (default)"), "{text}");
    assert!(text.contains("Plan (latest)\n  Plan:      p-2 (Pending)"), "{text}");

    // Drift found by a plan of the applied inputs: `Completed (drifted)`, the condition in describe.
    let drift =
        "drift found by plan p-5: 0 to add, 1 to change, 0 to destroy, 0 to replace; not applied (drift: Detect)";
    set_status(
        &client,
        "default",
        "web",
        json!({"state": "Completed", "message": "deploy succeeded",
               "conditions": [condition("Ready", "True", "Succeeded", "deploy succeeded"),
                              condition("Drifted", "True", "DriftDetected", drift)],
               "plan": plan("p-5", "web-plan-5", "Drift", "Detected")}),
    )
    .await;
    let out = plugin(kc, &["get"]).await;
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.split_whitespace().take(3).eq(["web", "Completed", "(drifted)"])), "{text}");
    let out = plugin(kc, &["describe", "web"]).await;
    assert!(stdout(&out).contains("Drifted     True    DriftDetected"), "{}", stdout(&out));
}

#[tokio::test]
async fn approve_wait_follows_the_deploy_of_the_approved_plan() {
    let (env, client) = planned_web().await;
    let kc = env.kubeconfig().to_path_buf();
    let _agent = e2e_support::agent_up(&client).await;
    // The agent: once approved, the deploy of p-2 runs, then succeeds and marks it applied.
    let agent = tokio::spawn({
        let client = client.clone();
        async move {
            while !annotations(&client, "web").await.contains_key(APPROVE_PLAN) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let deploy = |result: &str| {
                json!([{"action": "Deploy", "jobName": "web-deploy-3", "image": "alustan/infrastructure:1.0.3",
                        "tag": "1.0.3", "startTime": "2026-01-10T11:20:00Z", "result": result, "plan": "p-2"}])
            };
            let running = json!({"state": "Progressing", "message": "deploying 1.0.3 (plan p-2 approved)",
                                 "history": deploy("Running"),
                                 "conditions": [condition("Reconciling", "True", "Deploying", "deploying 1.0.3")]});
            set_status(&client, "default", "web", running).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let done = json!({"state": "Success", "message": "deploy succeeded", "history": deploy("Succeeded"),
                              "plan": plan("p-2", "web-plan-2", "Change", "Applied"),
                              "conditions": [condition("Reconciling", "False", "Succeeded", "")]});
            set_status(&client, "default", "web", done).await;
        }
    });
    let out = plugin(&kc, &["approve", "web", "--wait", "--timeout", "60s"]).await;
    agent.await.unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Progressing (Deploying): deploying 1.0.3 (plan p-2 approved)"), "{text}");
    assert!(text.contains("terraform default/web: plan p-2 applied, run ended Success"), "{text}");
}

/// The write behind approve/reject: applied only while the object is at the version read, so a
/// plan that changed in between is checked again instead of approved unseen.
#[tokio::test]
async fn the_approval_write_is_conditional_on_the_version_read() {
    let (env, client) = planned_web().await;
    let flags =
        kubectl_alustan::cli::KubeFlags { kubeconfig: Some(env.kubeconfig().to_path_buf()), ..Default::default() };
    let conn = kubectl_alustan::kube_client::connect(&flags).await.unwrap();
    let read = Api::<Terraform>::namespaced(client.clone(), "default").get("web").await.unwrap();
    // The agent writes a newer plan after the read.
    set_status(&client, "default", "web", planned("p-3")).await;
    let stale = json!({"metadata": {"resourceVersion": read.metadata.resource_version,
                                    "annotations": {APPROVE_PLAN: "p-2"}}});
    let written = kubectl_alustan::commands::merge_patch_unchanged(&conn, "web", &stale).await.unwrap();
    assert!(written.is_none(), "a write against an older version is refused");
    assert!(!annotations(&client, "web").await.contains_key(APPROVE_PLAN));
    // decide reads again: the newer plan is the one approved, the older id refused as stale.
    let (_, plan) = kubectl_alustan::commands::plan::decide(&conn, "web", Verdict::Approve, None).await.unwrap();
    assert_eq!(plan.id, "p-3");
    assert_eq!(annotations(&client, "web").await.get(APPROVE_PLAN).map(String::as_str), Some("p-3"));
    let stale = kubectl_alustan::commands::plan::decide(&conn, "web", Verdict::Approve, Some("p-2")).await;
    assert!(matches!(stale, Err(kubectl_alustan::errors::CliError::Plan(_))), "{stale:?}");
}

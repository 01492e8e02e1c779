//! Plans end to end: manual approval (plan → Planned → approve that id → the deploy applies the
//! approved plan file), stale approvals, a newer spec superseding a plan, rejection, drift
//! detected without any deploy and drift corrected, and bad plan results — each with the
//! number of deploy Jobs counted, and no sensitive value in status, Events or run logs.
//!
//! The "infrastructure" is a ConfigMap `infra-NAME` the image's scripts read and write
//! through the API with their ServiceAccount's token (curl), so the test can change the real
//! state behind the agent's back.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses some of the shared helpers
mod e2e;

use std::time::Duration;

use alustan_shared::{PlanAction, PlanDecision, State, Terraform, conditions, meta};
use e2e::Agent;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, LogParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

/// A sensitive variable that flows into the plan summary and the plan file.
const PASSWORD: &str = "pl4n-s3cret-77";

/// `api METHOD PATH [BODY]`: the API through the Pod's ServiceAccount token; prints the HTTP code.
const LIB: &str = r#"
sa=/var/run/secrets/kubernetes.io/serviceaccount
api() {
  if [ -n "${3:-}" ]; then set -- "$1" "$2" -H 'Content-Type: application/json' --data "$3"; fi
  m=$1; p=$2; shift 2
  # A real API server speaks HTTPS (its CA beside the token); the embedded one plain HTTP.
  if [ -r $sa/ca.crt ]; then set -- "$@" --cacert $sa/ca.crt "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$p"
  else set -- "$@" "http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$p"; fi
  curl -sS -o /tmp/body -w '%{http_code}' -X "$m" -H "Authorization: Bearer $(cat $sa/token)" "$@"
}
cm=/api/v1/namespaces/default/configmaps
real_size() {
  code=$(api GET $cm/infra-$ALUSTAN_TERRAFORM)
  case "$code" in
    200) sed -n 's/.*"size": *"\([^"]*\)".*/\1/p' /tmp/body ;;
    404) ;;
    *) echo "Error: reading the state: HTTP $code" >&2; exit 1 ;;
  esac
}
"#;

/// Plans `aws_instance.web` towards `TF_VAR_size`; the summary carries the password as
/// `terraform show -json` would (a value the agent must drop), the plan file carries both.
const PLAN: &str = r#"
real=$(real_size) || exit 1
if [ -z "$real" ]; then action=create; elif [ "$real" != "$TF_VAR_size" ]; then action=update; else action=no-op; fi
echo "planning: real ${real:-none}, wanted $TF_VAR_size: $action"
printf '{"format_version":"1.2","resource_changes":[{"address":"aws_instance.web","change":{"actions":["%s"],"after":{"size":"%s","password":"%s"}}}]}' \
  "$action" "$TF_VAR_size" "$TF_VAR_password" > "$ALUSTAN_PLAN"
printf 'size=%s\npassword=%s\n' "$TF_VAR_size" "$TF_VAR_password" > "$ALUSTAN_PLAN_FILE"
"#;

/// Applies the approved plan file when given one (never the spec's variables then).
const DEPLOY: &str = r#"
if [ -n "${ALUSTAN_PLAN_FILE:-}" ]; then size=$(sed -n 's/^size=//p' "$ALUSTAN_PLAN_FILE"); from=plan; else size=$TF_VAR_size; from=spec; fi
echo "applying size $size from the $from"
body="{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"infra-$ALUSTAN_TERRAFORM\"},\"data\":{\"size\":\"$size\"}}"
code=$(api POST $cm "$body")
if [ "$code" = 409 ]; then code=$(api PUT $cm/infra-$ALUSTAN_TERRAFORM "$body"); fi
case "$code" in 200|201) ;; *) echo "Error: writing the state: HTTP $code"; exit 1 ;; esac
printf '{"size":{"value":"%s","sensitive":false,"type":"string"},"from":{"value":"%s","sensitive":false,"type":"string"}}' "$size" "$from" > "$ALUSTAN_OUTPUTS"
"#;

fn scripts() -> Vec<(&'static str, String)> {
    vec![
        ("plan", format!("{LIB}{PLAN}")),
        ("deploy", format!("{LIB}{DEPLOY}")),
        ("not-json", "echo 'resource_changes: [oops' > \"$ALUSTAN_PLAN\"\n".to_owned()),
        ("slow-plan", format!("sleep 3\n{LIB}{PLAN}")),
        // 600 KiB of plan file: more than a plan may hand back.
        (
            "huge",
            "echo '{\"resource_changes\":[]}' > \"$ALUSTAN_PLAN\"\nhead -c 614400 /dev/zero | tr '\\0' x > \"$ALUSTAN_PLAN_FILE\"\n"
                .to_owned(),
        ),
    ]
}

async fn start() -> Agent {
    let scripts = scripts();
    let borrowed: Vec<(&str, &str)> = scripts.iter().map(|(n, b)| (*n, b.as_str())).collect();
    let agent = Agent::start(&borrowed).await;
    grant_state_access(&agent).await;
    agent
}

/// The scripts' identity: a ServiceAccount that may read and write ConfigMaps of `default`.
async fn grant_state_access(agent: &Agent) {
    let params = PostParams::default();
    let meta = ObjectMeta { name: Some("iac".into()), namespace: Some("default".into()), ..ObjectMeta::default() };
    Api::<ServiceAccount>::namespaced(agent.client.clone(), "default")
        .create(&params, &ServiceAccount { metadata: meta.clone(), ..ServiceAccount::default() })
        .await
        .unwrap();
    let rule = PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        verbs: vec!["get".into(), "create".into(), "update".into()],
        ..PolicyRule::default()
    };
    Api::<Role>::namespaced(agent.client.clone(), "default")
        .create(&params, &Role { metadata: meta.clone(), rules: Some(vec![rule]) })
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "iac".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "iac".into(),
            namespace: Some("default".into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(agent.client.clone(), "default").create(&params, &binding).await.unwrap();
}

fn resource(agent: &Agent, name: &str, size: &str, extra: &serde_json::Value) -> Terraform {
    let mut tf = agent.example();
    tf.metadata.name = Some(name.to_owned());
    tf.spec.post_deploy = None;
    tf.spec.variables =
        [("TF_VAR_size".to_owned(), size.to_owned()), ("TF_VAR_password".to_owned(), PASSWORD.to_owned())].into();
    tf.spec.service_account_name = Some("iac".into());
    let mut value = serde_json::to_value(&tf).unwrap();
    value["spec"]["scripts"] = json!({"deploy": "deploy", "plan": "plan"});
    for (key, field) in extra.as_object().unwrap() {
        value["spec"][key] = field.clone();
    }
    serde_json::from_value(value).unwrap()
}

fn state(tf: &Terraform) -> Option<State> {
    tf.status.as_ref()?.state
}

fn plan_id(tf: &Terraform) -> Option<String> {
    Some(tf.status.as_ref()?.plan.as_ref()?.id.clone())
}

async fn annotate(agent: &Agent, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    agent.terraforms.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

async fn jobs_of(agent: &Agent, name: &str, action: &str) -> usize {
    agent.job_names().await.iter().filter(|j| j.starts_with(&format!("{name}-{action}-"))).count()
}

async fn real_size(agent: &Agent, name: &str) -> Option<String> {
    let maps: Api<ConfigMap> = Api::namespaced(agent.client.clone(), "default");
    maps.get_opt(&format!("infra-{name}")).await.unwrap()?.data?.get("size").cloned()
}

/// Every log line of `name`'s runs, as anyone with `pods/log` reads them.
async fn run_logs(agent: &Agent, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(agent.client.clone(), "default");
    let selector = format!("{}={name}", meta::LABEL_TERRAFORM);
    let mut logs = String::new();
    for pod in pods.list(&ListParams::default().labels(&selector)).await.unwrap() {
        logs.push_str(&pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap_or_default());
    }
    logs
}

fn drifted(tf: &Terraform) -> Option<String> {
    Some(conditions::find(&tf.status.as_ref()?.conditions, conditions::DRIFTED)?.status.clone())
}

#[tokio::test]
async fn manual_approval_applies_exactly_the_approved_plan_and_leaks_nothing() {
    let agent = start().await;
    agent.create(&resource(&agent, "web", "1", &json!({"approval": "Manual"}))).await;
    let planned = agent.wait_for("web", "Planned", |tf| state(tf) == Some(State::Planned)).await;
    let status = planned.status.clone().unwrap();
    let plan = status.plan.clone().unwrap();
    assert_eq!((plan.counts.create, plan.decision), (1, PlanDecision::Pending), "{plan:?}");
    assert_eq!(plan.changes[0].address, "aws_instance.web");
    assert_eq!(plan.changes[0].action, PlanAction::Create);
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("approve with `kubectl alustan approve web --plan {}`", plan.id))
    );
    let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), "default");
    let kept = secrets.get(&meta::plan_secret_name("web")).await.unwrap();
    assert_eq!(kept.annotations().get(meta::PLAN_ID_ANNOTATION), Some(&plan.id));
    // Nothing is applied while the plan waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 0);
    assert_eq!(real_size(&agent, "web").await, None);

    annotate(&agent, "web", meta::APPROVE_PLAN, &plan.id).await;
    let done = agent.wait_for("web", "Success", |tf| state(tf) == Some(State::Success)).await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.output.get("from"), Some(&json!("plan")), "the deploy applied the plan file");
    assert_eq!(real_size(&agent, "web").await.as_deref(), Some("1"));
    let applied = status.plan.clone().unwrap();
    assert_eq!((applied.id.as_str(), applied.decision), (plan.id.as_str(), PlanDecision::Applied));
    let deploy = status.history.iter().find(|r| r.action == alustan_shared::RunAction::Deploy).unwrap();
    assert_eq!(deploy.plan.as_deref(), Some(plan.id.as_str()));
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 1);
    assert!(
        secrets.get_opt(&meta::plan_secret_name("web")).await.unwrap().is_none(),
        "an applied plan's file is deleted"
    );

    // The password went through the summary and the plan file: it is nowhere readable.
    let status_text = serde_json::to_string(&done.status).unwrap();
    assert!(!status_text.contains(PASSWORD), "{status_text}");
    let events = agent.event_reasons("web").await;
    assert!(events.iter().any(|(reason, _)| reason == conditions::reason::AWAITING_APPROVAL), "{events:?}");
    assert!(!format!("{events:?}").contains(PASSWORD), "{events:?}");
    let logs = run_logs(&agent, "web").await;
    assert!(logs.contains("planning: real none, wanted 1: create"), "{logs}");
    assert!(!logs.contains(PASSWORD) && !logs.contains(&hex::encode(PASSWORD)), "{logs}");
}

#[tokio::test]
async fn a_newer_spec_supersedes_a_waiting_plan_and_its_approval_approves_nothing() {
    let agent = start().await;
    agent.create(&resource(&agent, "web", "1", &json!({"approval": "Manual"}))).await;
    let first = agent.wait_for("web", "Planned", |tf| state(tf) == Some(State::Planned)).await;
    let old = plan_id(&first).unwrap();
    let patch = json!({"spec": {"variables": {"TF_VAR_size": "2"}}});
    agent.terraforms.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let second = agent
        .wait_for("web", "a new plan", |tf| {
            state(tf) == Some(State::Planned) && plan_id(tf).is_some_and(|id| id != old)
        })
        .await;
    let new = plan_id(&second).unwrap();
    // The old id's approval, set now, is stale: nothing deploys, and status says why.
    annotate(&agent, "web", meta::APPROVE_PLAN, &old).await;
    let told = agent
        .wait_for("web", "the stale approval named", |tf| {
            tf.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|m| m.contains("which a newer plan superseded"))
        })
        .await;
    assert_eq!(state(&told), Some(State::Planned));
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 0);
    annotate(&agent, "web", meta::APPROVE_PLAN, &new).await;
    agent.wait_for("web", "Success", |tf| state(tf) == Some(State::Success)).await;
    assert_eq!(real_size(&agent, "web").await.as_deref(), Some("2"));
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 1);
}

#[tokio::test]
async fn a_rejected_plan_applies_nothing_and_drops_its_file() {
    let agent = start().await;
    agent.create(&resource(&agent, "web", "1", &json!({"approval": "Manual"}))).await;
    let planned = agent.wait_for("web", "Planned", |tf| state(tf) == Some(State::Planned)).await;
    annotate(&agent, "web", meta::REJECT_PLAN, &plan_id(&planned).unwrap()).await;
    let rejected = agent
        .wait_for("web", "rejected", |tf| {
            tf.status.as_ref().and_then(|s| s.plan.as_ref()).is_some_and(|p| p.decision == PlanDecision::Rejected)
        })
        .await;
    let stalled = conditions::find(&rejected.status.as_ref().unwrap().conditions, conditions::STALLED).unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", conditions::reason::PLAN_REJECTED));
    let secrets: Api<Secret> = Api::namespaced(agent.client.clone(), "default");
    assert!(secrets.get_opt(&meta::plan_secret_name("web")).await.unwrap().is_none());
    // Approving the rejected plan afterwards (a race with someone else's approval) applies
    // nothing: its file is gone and a rejection is final.
    annotate(&agent, "web", meta::APPROVE_PLAN, &plan_id(&planned).unwrap()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 0);
    assert_eq!(real_size(&agent, "web").await, None);
}

#[tokio::test]
async fn drift_detect_reports_changes_and_never_deploys() {
    let agent = start().await;
    let spec = json!({"drift": "Detect", "syncInterval": "2s"});
    agent.create(&resource(&agent, "web", "1", &spec)).await;
    // Auto approval: the first deploy goes straight through; then each interval plans.
    let clean = agent.wait_for("web", "a clean drift check", |tf| drifted(tf).as_deref() == Some("False")).await;
    assert_eq!(state(&clean), Some(State::Success));
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 1);
    // Someone changes the infrastructure by hand.
    let maps: Api<ConfigMap> = Api::namespaced(agent.client.clone(), "default");
    let tamper = json!({"data": {"size": "9"}});
    maps.patch("infra-web", &PatchParams::default(), &Patch::Merge(&tamper)).await.unwrap();
    let found = agent.wait_for("web", "Drifted", |tf| drifted(tf).as_deref() == Some("True")).await;
    let status = found.status.clone().unwrap();
    assert_eq!(status.state, Some(State::Success), "state keeps describing the applied run");
    assert_eq!(status.plan.as_ref().unwrap().counts.update, 1);
    let warnings = agent.warnings("web", conditions::reason::DRIFT_DETECTED).await;
    assert!(!warnings.is_empty() && warnings[0].0.contains("1 to change"), "{warnings:?}");
    let metrics = reqwest::get(format!("{}/metrics", agent.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("alustan_drift_detected_total ") && !l.ends_with(" 0")), "{metrics}");
    // More intervals pass: still no deploy, the drift stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 1);
    assert!(jobs_of(&agent, "web", "plan").await >= 2);
    assert_eq!(real_size(&agent, "web").await.as_deref(), Some("9"));
}

#[tokio::test]
async fn drift_correct_applies_the_plan_that_found_it() {
    let agent = start().await;
    agent.create(&resource(&agent, "web", "1", &json!({"syncInterval": "2s"}))).await;
    agent.wait_for("web", "a clean drift check", |tf| drifted(tf).as_deref() == Some("False")).await;
    let maps: Api<ConfigMap> = Api::namespaced(agent.client.clone(), "default");
    maps.patch("infra-web", &PatchParams::default(), &Patch::Merge(&json!({"data": {"size": "9"}}))).await.unwrap();
    agent
        .wait_for("web", "the drift corrected", |tf| {
            tf.status.as_ref().and_then(|s| s.plan.as_ref()).is_some_and(|p| p.decision == PlanDecision::Applied)
        })
        .await;
    assert_eq!(real_size(&agent, "web").await.as_deref(), Some("1"));
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 2);
    let corrected = agent.wait_for("web", "Drifted=False", |tf| drifted(tf).as_deref() == Some("False")).await;
    assert_eq!(corrected.status.unwrap().output.get("from"), Some(&json!("plan")));
}

#[tokio::test]
async fn bad_plan_results_are_clear_errors_and_nothing_is_applied() {
    let agent = start().await;
    let cases = [
        ("missing", "no-such-plan", "exit code 127"),
        ("notjson", "not-json", "is not JSON (line 1, column 1)"),
        ("huge", "huge", "bytes its seal covers"),
    ];
    for (name, script, _) in cases {
        let mut tf = resource(&agent, name, "1", &json!({"approval": "Manual"}));
        tf.spec.scripts.plan = Some(script.into());
        agent.create(&tf).await;
    }
    for (name, _, expected) in cases {
        let failed = agent
            .wait_for(name, expected, |tf| {
                tf.status.as_ref().and_then(|s| s.message.as_deref()).is_some_and(|m| m.contains(expected))
            })
            .await;
        assert_eq!(state(&failed), Some(State::Failed), "{:?}", failed.status);
        assert_eq!(jobs_of(&agent, name, "deploy").await, 0, "{name}: nothing applied");
    }
}

#[tokio::test]
async fn the_api_server_refuses_approval_or_drift_detection_without_a_plan_script() {
    let agent = start().await;
    for (name, extra, expected) in [
        ("manual", json!({"approval": "Manual"}), "approval: Manual needs spec.scripts.plan"),
        ("detect", json!({"drift": "Detect"}), "drift: Detect or Correct needs spec.scripts.plan"),
    ] {
        let mut tf = resource(&agent, name, "1", &extra);
        tf.spec.scripts.plan = None;
        let refused = agent.terraforms.create(&PostParams::default(), &tf).await.unwrap_err();
        let kube::Error::Api(status) = refused else { panic!("{name}: {refused}") };
        assert_eq!(status.code, 422, "{status:?}");
        assert!(status.message.contains(expected), "{name}: {}", status.message);
    }
    // Off needs no plan script, and Auto is today's behaviour.
    let mut off = resource(&agent, "off", "1", &json!({"drift": "Off", "approval": "Auto"}));
    off.spec.scripts.plan = None;
    agent.create(&off).await;
}

#[tokio::test]
async fn an_agent_killed_mid_plan_adopts_the_plan_run_and_never_starts_a_second() {
    let mut agent = start().await;
    let mut tf = resource(&agent, "web", "1", &json!({"approval": "Manual"}));
    tf.spec.scripts.plan = Some("slow-plan".into());
    agent.create(&tf).await;
    agent
        .wait_for("web", "the plan running", |tf| {
            tf.status.as_ref().is_some_and(|s| s.history.iter().any(|r| r.action == alustan_shared::RunAction::Plan))
        })
        .await;
    agent.restart().await;
    let planned = agent.wait_for("web", "Planned", |tf| state(tf) == Some(State::Planned)).await;
    assert_eq!(planned.status.unwrap().plan.unwrap().counts.create, 1);
    assert_eq!(jobs_of(&agent, "web", "plan").await, 1, "one plan run, adopted across the restart");
    assert_eq!(jobs_of(&agent, "web", "deploy").await, 0);
}

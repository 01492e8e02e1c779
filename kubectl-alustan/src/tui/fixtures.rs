//! Realistic sample resources at a fixed clock, for tests, benches and screenshots: one of each
//! state the agent writes, with the status fields each view displays.

use std::collections::BTreeMap;

use alustan_shared::{
    AppliedImage, Approval, ContainerRegistry, Credential, PlanAction, PlanCounts, PlanDecision, PlanStatus,
    PlanTrigger, PlannedChange, PostDeploy, RegistryScan, RejectedTag, RejectionReason, RunAction, RunRecord,
    RunResult, Scripts, SecretKeyReference, State, Terraform, TerraformSpec, TerraformStatus, conditions,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The fixtures' "now": 2026-01-10T12:00:00Z.
pub const NOW: Timestamp = Timestamp::constant(1_768_046_400, 0);

fn ago(seconds: i64) -> Time {
    Time(NOW - SignedDuration::from_secs(seconds))
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, seconds_ago: i64) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: ago(seconds_ago),
        observed_generation: Some(3),
    }
}

fn digest(seed: &str) -> String {
    // Deterministic fake digests: 64 hex digits derived from the seed's bytes.
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for i in 0..64_usize {
        let byte = seed.as_bytes().get(i % seed.len().max(1)).copied().unwrap_or(0);
        let digit = (usize::from(byte) + i * 7) % 16;
        hex.push(char::from_digit(u32::try_from(digit).unwrap_or(0), 16).unwrap_or('0'));
    }
    hex
}

/// A resource with the usual spec, created `age` seconds before [`NOW`].
pub fn terraform(namespace: &str, name: &str, age: i64) -> Terraform {
    let spec = TerraformSpec {
        variables: BTreeMap::from([
            ("TF_VAR_provision_cluster".to_owned(), "true".to_owned()),
            ("TF_VAR_region".to_owned(), "eu-west-1".to_owned()),
            ("TF_VAR_vpc_cidr".to_owned(), "10.1.0.0/16".to_owned()),
            ("TF_VAR_workspace".to_owned(), name.to_owned()),
        ]),
        scripts: Scripts { deploy: "deploy".to_owned(), destroy: Some("destroy -c".to_owned()), plan: None },
        post_deploy: None,
        container_registry: ContainerRegistry {
            provider: None,
            image_name: "alustan/infrastructure".to_owned(),
            semantic_version: "~1.0.0".to_owned(),
            policy: None,
            order: None,
            filter_tags: None,
            secret_ref: None,
        },
        suspend: false,
        service_account_name: None,
        sync_interval: None,
        depends_on: Vec::new(),
        variables_from: Vec::new(),
        approval: None,
        drift: None,
    };
    let mut object = Terraform::new(name, spec);
    object.metadata.namespace = Some(namespace.to_owned());
    object.metadata.creation_timestamp = Some(ago(age));
    object.metadata.generation = Some(3);
    object
}

fn applied(tag: &str, seconds_ago: i64) -> AppliedImage {
    AppliedImage {
        image: format!("docker.io/alustan/infrastructure@{}", digest(tag)),
        tag: tag.to_owned(),
        digest: digest(tag),
        applied_at: Some(ago(seconds_ago)),
    }
}

fn run(
    action: RunAction,
    result: RunResult,
    tag: &str,
    started: i64,
    took: Option<i64>,
    message: Option<&str>,
) -> RunRecord {
    RunRecord {
        action,
        job_name: format!("staging-cluster-{}-{started}", format!("{action:?}").to_lowercase()),
        image: format!("docker.io/alustan/infrastructure@{}", digest(tag)),
        tag: Some(tag.to_owned()),
        start_time: ago(started),
        completion_time: took.map(|took| ago(started - took)),
        result,
        message: message.map(str::to_owned),
        generation: None,
        digest: None,
        token: None,
        inputs: None,
        plan: None,
        trigger: None,
    }
}

/// `infra/staging-cluster`: Completed, with every status field filled in.
pub fn completed() -> Terraform {
    let mut object = terraform("infra", "staging-cluster", 3 * 86_400 + 7200);
    object.spec.post_deploy = Some(PostDeploy {
        script: "aws-resource".to_owned(),
        args: BTreeMap::from([
            ("region".to_owned(), "TF_VAR_region".to_owned()),
            ("workspace".to_owned(), "TF_VAR_workspace".to_owned()),
        ]),
    });
    object.spec.sync_interval = Some("6h".to_owned());
    let credential = |namespace: &str, secret: &str, key: &str, user: &str| Credential {
        username: user.to_owned(),
        password_secret_ref: SecretKeyReference {
            namespace: namespace.to_owned(),
            name: secret.to_owned(),
            key: key.to_owned(),
        },
    };
    object.status = Some(TerraformStatus {
        state: Some(State::Completed),
        message: Some("deploy and post-deploy succeeded with v1.0.3".to_owned()),
        output: BTreeMap::from([
            ("cluster_endpoint".to_owned(), serde_json::json!("https://4F2A.gr7.eu-west-1.eks.amazonaws.com")),
            ("cluster_name".to_owned(), serde_json::json!("staging")),
            ("node_count".to_owned(), serde_json::json!(3)),
            ("private_subnets".to_owned(), serde_json::json!(["subnet-0a1", "subnet-0b2"])),
            ("vpc_id".to_owned(), serde_json::json!("vpc-0c3d4e5f")),
        ]),
        sensitive_outputs_secret: Some("staging-cluster-outputs".to_owned()),
        ingress_urls: BTreeMap::from([
            ("argocd".to_owned(), vec!["https://argocd.staging.example.com".to_owned()]),
            (
                "monitoring".to_owned(),
                vec!["https://grafana.staging.example.com".to_owned(), "http://prometheus.internal".to_owned()],
            ),
        ]),
        credentials: BTreeMap::from([
            ("argocd".to_owned(), credential("argocd", "argocd-initial-admin-secret", "password", "admin")),
            ("grafana".to_owned(), credential("monitoring", "grafana-admin", "admin-password", "admin")),
        ]),
        post_deploy_output: Some(serde_json::json!({
            "outputs": {"account_id": "123456789012", "cluster_arn": "arn:aws:eks:eu-west-1:123456789012:cluster/staging"}
        })),
        observed_generation: Some(3),
        conditions: vec![
            condition(conditions::READY, conditions::TRUE, conditions::reason::SUCCEEDED, "v1.0.3 deployed", 7100),
            condition(conditions::RECONCILING, conditions::FALSE, conditions::reason::SUCCEEDED, "", 7100),
            condition(conditions::STALLED, conditions::FALSE, conditions::reason::SUCCEEDED, "", 7100),
        ],
        applied: Some(applied("v1.0.3", 7200)),
        last_scan: Some(RegistryScan {
            time: ago(300),
            image: "docker.io/alustan/infrastructure".to_owned(),
            constraint: "~1.0.0".to_owned(),
            tag_count: 12,
            matching_count: 4,
            newest_matching: vec!["v1.0.3".to_owned(), "v1.0.2".to_owned(), "v1.0.1".to_owned(), "1.0.0".to_owned()],
            rejected: vec![
                RejectedTag { tag: "v1.1.0".to_owned(), reason: RejectionReason::OutsideConstraint },
                RejectedTag { tag: "v1.0.4-rc.1".to_owned(), reason: RejectionReason::Prerelease },
                RejectedTag { tag: "latest".to_owned(), reason: RejectionReason::NotSemver },
            ],
            selected_tag: Some("v1.0.3".to_owned()),
            selected_digest: Some(digest("v1.0.3")),
        }),
        last_handled_reconcile_at: Some("2026-01-10T10:00:00Z".to_owned()),
        last_handled_rescan_at: None,
        last_handled_plan_at: None,
        plan: None,
        resumed_at: None,
        history: vec![
            run(RunAction::PostDeploy, RunResult::Succeeded, "v1.0.3", 7260, Some(40), None),
            run(RunAction::Deploy, RunResult::Succeeded, "v1.0.3", 7800, Some(530), None),
            run(
                RunAction::Deploy,
                RunResult::Failed,
                "v1.0.2",
                90_000,
                Some(95),
                Some("exit code 1: Error: timeout waiting for node group"),
            ),
        ],
    });
    object
}

/// `infra/network`: the deploy script failed; the message holds the log tail.
pub fn failed() -> Terraform {
    let mut object = terraform("infra", "network", 20 * 86_400);
    object.status = Some(TerraformStatus {
        state: Some(State::Failed),
        message: Some(
            "deploy exited 1\nError: creating EC2 VPC: VpcLimitExceeded: The maximum number of VPCs has been reached.\n  with aws_vpc.main"
                .to_owned(),
        ),
        conditions: vec![
            condition(conditions::READY, conditions::FALSE, conditions::reason::SCRIPT_FAILED, "deploy exited 1", 600),
            condition(conditions::STALLED, conditions::TRUE, conditions::reason::RETRIES_EXHAUSTED, "3 attempts", 600),
        ],
        applied: Some(applied("v1.0.1", 10 * 86_400)),
        history: vec![run(RunAction::Deploy, RunResult::Failed, "v1.0.3", 900, Some(300), Some("exit code 1: VpcLimitExceeded"))],
        ..TerraformStatus::default()
    });
    object
}

/// `apps/payments-db`: a deploy is running.
pub fn progressing() -> Terraform {
    let mut object = terraform("apps", "payments-db", 45 * 60);
    "^2".clone_into(&mut object.spec.container_registry.semantic_version);
    object.status = Some(TerraformStatus {
        state: Some(State::Progressing),
        message: Some("deploying v2.4.0".to_owned()),
        conditions: vec![
            condition(conditions::READY, conditions::UNKNOWN, conditions::reason::DEPLOYING, "", 90),
            condition(conditions::RECONCILING, conditions::TRUE, conditions::reason::DEPLOYING, "deploying v2.4.0", 90),
        ],
        history: vec![run(RunAction::Deploy, RunResult::Running, "v2.4.0", 90, None, None)],
        ..TerraformStatus::default()
    });
    object
}

/// `apps/analytics`: the agent cannot reach the registry.
pub fn error() -> Terraform {
    let mut object = terraform("apps", "analytics", 5 * 3600);
    "registry.example.com:5000/data/analytics".clone_into(&mut object.spec.container_registry.image_name);
    object.spec.suspend = true;
    object.status = Some(TerraformStatus {
        state: Some(State::Error),
        message: Some("registry registry.example.com:5000 unreachable: connection refused; check the registry address and the network policy".to_owned()),
        conditions: vec![
            condition(conditions::READY, conditions::FALSE, conditions::reason::REGISTRY_ERROR, "registry unreachable", 1200),
            condition(conditions::STALLED, conditions::TRUE, conditions::reason::REGISTRY_ERROR, "registry unreachable", 1200),
        ],
        ..TerraformStatus::default()
    });
    object
}

/// `apps/checkout`: `approval: Manual`; a plan of a new image waits for approval.
pub fn planned() -> Terraform {
    let mut object = terraform("apps", "checkout", 2 * 86_400);
    object.spec.scripts.plan = Some("plan".to_owned());
    object.spec.approval = Some(Approval::Manual);
    let plan_run = RunRecord {
        plan: Some("p-7c1e9a".to_owned()),
        trigger: Some(PlanTrigger::Change),
        job_name: "checkout-plan-7c1e9a".to_owned(),
        ..run(RunAction::Plan, RunResult::Succeeded, "v1.0.3", 400, Some(50), None)
    };
    let change = |address: &str, action| PlannedChange { address: address.to_owned(), action };
    let message = "plan p-7c1e9a waits for approval: 2 to add, 1 to change, 1 to destroy, 1 to replace; approve with `kubectl alustan approve checkout --plan p-7c1e9a` or reject with `kubectl alustan reject checkout`";
    object.status = Some(TerraformStatus {
        state: Some(State::Planned),
        message: Some(message.to_owned()),
        conditions: vec![
            condition(conditions::READY, conditions::FALSE, conditions::reason::AWAITING_APPROVAL, message, 350),
            condition(conditions::RECONCILING, conditions::TRUE, conditions::reason::AWAITING_APPROVAL, message, 350),
            condition(conditions::STALLED, conditions::FALSE, conditions::reason::AWAITING_APPROVAL, message, 350),
        ],
        applied: Some(applied("v1.0.2", 86_400)),
        plan: Some(PlanStatus {
            id: "p-7c1e9a".to_owned(),
            job_name: plan_run.job_name.clone(),
            generation: 3,
            tag: Some("v1.0.3".to_owned()),
            digest: Some(digest("v1.0.3")),
            trigger: PlanTrigger::Change,
            time: ago(350),
            counts: PlanCounts { create: 2, update: 1, delete: 1, replace: 1 },
            changes: vec![
                change("aws_instance.web[0]", PlanAction::Create),
                change("aws_instance.web[1]", PlanAction::Create),
                change("aws_security_group.web", PlanAction::Update),
                change("aws_iam_role.legacy", PlanAction::Delete),
                change("aws_db_instance.main", PlanAction::Replace),
            ],
            changes_omitted: 0,
            artifact_digest: Some(digest("plan")),
            artifact_secret: Some("checkout-plan".to_owned()),
            decision: PlanDecision::Pending,
        }),
        history: vec![plan_run, run(RunAction::Deploy, RunResult::Succeeded, "v1.0.2", 86_500, Some(100), None)],
        ..TerraformStatus::default()
    });
    object
}

/// The four sample resources, one per state.
pub fn samples() -> Vec<Terraform> {
    vec![completed(), failed(), progressing(), error()]
}

/// `count` resources spread over ten namespaces, cycling through the sample states.
pub fn many(count: usize) -> Vec<Terraform> {
    let samples = samples();
    (0..count)
        .filter_map(|i| {
            let mut object = samples.get(i % samples.len())?.clone();
            object.metadata.namespace = Some(format!("team-{:02}", i % 10));
            object.metadata.name = Some(format!("stack-{i:05}"));
            object.metadata.creation_timestamp = Some(ago(i64::try_from(i).unwrap_or(0) * 60 + 30));
            Some(object)
        })
        .collect()
}

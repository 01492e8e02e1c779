//! Our generated CRD against the apiserver's schema rules: it must be structural, the original
//! example must validate, and bad specs must be rejected or pruned exactly as a real apiserver
//! would do it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers may panic

use std::collections::BTreeMap;
use std::path::PathBuf;

use alustan_shared::{
    AppliedImage, Credential, PlanAction, PlanCounts, PlanDecision, PlanStatus, PlanTrigger, PlannedChange,
    RegistryScan, RejectedTag, RejectionReason, RunAction, RunRecord, RunResult, SecretKeyReference, State,
    TerraformStatus,
};
use alustan_testenv::schema::{FieldErrorKind, prune, structural_violations, validate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `openAPIV3Schema` of the checked-in CRD (what a cluster would actually get).
fn schema() -> Value {
    let crd: Value = serde_yaml::from_str(&repo_file("crds/terraform.yaml")).expect("CRD parses");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn example() -> Value {
    serde_yaml::from_str(&repo_file("examples/staging-cluster.yaml")).expect("example parses")
}

/// Prune then validate, as the apiserver does on create; returns the pruned paths and errors.
fn admit(mut object: Value) -> (Value, Vec<String>, Vec<String>) {
    let schema = schema();
    let mut pruned = prune(&schema, &mut object);
    let mut errors: Vec<String> = validate(&schema, &object).iter().map(ToString::to_string).collect();
    // The CRD has CEL rules: an object the schema refuses gets one more cause saying they were
    // not run (last, as the apiserver lists it); the assertions below are about the schema's own.
    if !errors.is_empty() {
        let skipped = errors.pop().unwrap_or_default();
        assert!(skipped.starts_with("<nil>: Invalid value: null: some validation rules were not checked"), "{skipped}");
    }
    // Sorted so the assertions do not depend on map ordering features of serde_json.
    pruned.sort();
    errors.sort();
    (object, pruned, errors)
}

#[test]
fn generated_crd_schema_is_structural() {
    let violations = structural_violations(&schema());
    assert!(violations.is_empty(), "non-structural: {violations:#?}");
}

#[test]
fn structural_check_catches_what_a_real_apiserver_rejects() {
    let bad = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "untyped": {"description": "no type"},
                "any": {"type": "object", "additionalProperties": false},
                "set": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "both": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                "junctor": {"type": "object", "anyOf": [{"type": "string", "properties": {"ghost": {"type": "string"}}}]},
            }},
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
        },
    });
    let found = structural_violations(&bad).join("\n");
    for expected in [
        "properties[untyped].type: Required value",
        "properties[any].additionalProperties: Forbidden: must not be false",
        "properties[set].uniqueItems: Forbidden",
        "properties[both].additionalProperties: Forbidden: additionalProperties and properties are mutually exclusive",
        "anyOf[0].type: Forbidden",
        "anyOf[0].properties[ghost]: Required value: must also be specified outside",
        "metadata.labels: only name and generateName may be specified",
    ] {
        assert!(found.contains(expected), "missing {expected:?} in:\n{found}");
    }
    // The documented int-or-string exception stays allowed.
    let int_or_string = json!({"type": "object", "properties": {"port": {
        "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}});
    assert_eq!(structural_violations(&int_or_string), Vec::<String>::new());
}

#[test]
fn original_example_validates_unchanged() {
    let (admitted, pruned, errors) = admit(example());
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(pruned, Vec::<String>::new());
    assert_eq!(admitted, example(), "nothing of the original example may be pruned");
}

#[test]
fn spec_without_container_registry_is_rejected_with_its_path() {
    let mut object = example();
    object["spec"].as_object_mut().unwrap().remove("containerRegistry");
    let (_, _, errors) = admit(object);
    assert_eq!(errors, ["spec.containerRegistry: Required value"]);
}

#[test]
fn spec_without_deploy_script_is_rejected_with_its_path() {
    let mut object = example();
    object["spec"]["scripts"].as_object_mut().unwrap().remove("deploy");
    let (_, _, errors) = admit(object);
    assert_eq!(errors, ["spec.scripts.deploy: Required value"]);

    let mut empty = example();
    empty["spec"]["scripts"]["deploy"] = json!("");
    let (_, _, errors) = admit(empty);
    assert_eq!(
        errors,
        [r#"spec.scripts.deploy: Invalid value: "": spec.scripts.deploy in body should be at least 1 chars long"#]
    );
}

#[test]
fn unknown_fields_are_pruned_and_reported() {
    let mut object = example();
    object["spec"]["colour"] = json!("blue");
    object["spec"]["containerRegistry"]["tagPolicy"] = json!({"latest": true});
    object["topLevel"] = json!(1);
    let (admitted, pruned, errors) = admit(object);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(pruned, ["spec.colour", "spec.containerRegistry.tagPolicy", "topLevel"]);
    assert_eq!(admitted, example());
}

#[test]
fn free_form_fields_keep_unknown_content() {
    let mut object = example();
    let post_deploy =
        json!({"outputs": {"ec2": [{"id": "i-1", "tags": {"env": "staging"}}], "rds": []}, "extra": true});
    object["status"] = json!({
        "output": {"vpc_id": "vpc-1", "subnets": ["a", "b"], "nested": {"x": 1}},
        "postDeployOutput": post_deploy,
    });
    let (admitted, pruned, errors) = admit(object);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(pruned, Vec::<String>::new());
    assert_eq!(admitted["status"]["postDeployOutput"], post_deploy);
    assert_eq!(admitted["status"]["output"]["nested"], json!({"x": 1}));
}

#[test]
fn wrong_types_enums_and_patterns_are_rejected() {
    let mut object = example();
    object["spec"]["containerRegistry"]["provider"] = json!("quay");
    object["spec"]["suspend"] = json!("yes");
    object["spec"]["syncInterval"] = json!("6 hours");
    object["spec"]["variables"]["TF_VAR_count"] = json!(3);
    let (_, _, errors) = admit(object);
    assert_eq!(
        errors,
        [
            r#"spec.containerRegistry.provider: Unsupported value: "quay": supported values: "docker", "ghcr", "oci""#,
            r#"spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string""#,
            r#"spec.syncInterval: Invalid value: "6 hours": spec.syncInterval in body should match '^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$'"#,
            r#"spec.variables.TF_VAR_count: Invalid value: "integer": spec.variables.TF_VAR_count in body must be of type string: "integer""#,
        ]
    );
}

#[test]
fn nulls_on_non_nullable_fields_are_pruned_and_required_ones_then_missing() {
    let mut object = example();
    object["spec"]["serviceAccountName"] = Value::Null; // nullable: kept
    object["spec"]["suspend"] = Value::Null; // not nullable: dropped
    object["spec"]["containerRegistry"]["imageName"] = Value::Null;
    let (admitted, _, errors) = admit(object);
    assert_eq!(admitted["spec"]["serviceAccountName"], Value::Null);
    assert!(admitted["spec"].get("suspend").is_none());
    assert_eq!(errors, ["spec.containerRegistry.imageName: Required value"]);
}

#[test]
fn valid_sync_intervals_pass() {
    for interval in ["30m", "6h", "1h30m", "90s", "1.5h"] {
        let mut object = example();
        object["spec"]["syncInterval"] = json!(interval);
        assert_eq!(admit(object).2, Vec::<String>::new(), "{interval}");
    }
}

/// Everything the agent can write into status must be accepted by the schema it generated.
#[test]
fn a_full_status_from_the_rust_types_validates() {
    let time = Time("2026-11-22T10:00:00Z".parse().unwrap());
    let status = TerraformStatus {
        state: Some(State::Completed),
        message: Some("deploy and postDeploy finished".into()),
        output: BTreeMap::from([("vpc_id".into(), json!("vpc-1")), ("azs".into(), json!(["a", "b"]))]),
        sensitive_outputs_secret: Some("staging-cluster-outputs".into()),
        ingress_urls: BTreeMap::from([("argocd".into(), vec!["https://argocd.example.com".into()])]),
        credentials: BTreeMap::from([(
            "grafana".into(),
            Credential {
                username: "admin".into(),
                password_secret_ref: SecretKeyReference {
                    namespace: "monitoring".into(),
                    name: "grafana".into(),
                    key: "admin-password".into(),
                },
            },
        )]),
        post_deploy_output: Some(json!({"outputs": {"ec2": []}})),
        observed_generation: Some(3),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Succeeded".into(),
            message: String::new(),
            last_transition_time: time.clone(),
            observed_generation: Some(3),
        }],
        applied: Some(AppliedImage {
            image: "docker.io/alustan/infrastructure@sha256:abc".into(),
            tag: "v1.0.3".into(),
            digest: "sha256:abc".into(),
            applied_at: Some(time.clone()),
        }),
        last_scan: Some(RegistryScan {
            time: time.clone(),
            image: "docker.io/alustan/infrastructure".into(),
            constraint: "~1.0.0".into(),
            tag_count: 12,
            matching_count: 3,
            newest_matching: vec!["v1.0.3".into()],
            rejected: vec![RejectedTag { tag: "latest".into(), reason: RejectionReason::NotSemver }],
            selected_tag: Some("v1.0.3".into()),
            selected_digest: Some("sha256:abc".into()),
        }),
        last_handled_reconcile_at: Some("2026-11-22T09:59:00Z".into()),
        last_handled_rescan_at: None,
        last_handled_plan_at: Some("2026-11-22T09:58:00Z".into()),
        plan: Some(PlanStatus {
            id: "3-0a1b2c3d".into(),
            job_name: "staging-cluster-plan-abc-0".into(),
            generation: 3,
            tag: Some("v1.0.3".into()),
            digest: Some("sha256:abc".into()),
            trigger: PlanTrigger::Drift,
            time: time.clone(),
            counts: PlanCounts { create: 1, update: 2, delete: 0, replace: 1 },
            changes: vec![PlannedChange { address: "aws_vpc.main".into(), action: PlanAction::Replace }],
            changes_omitted: 3,
            artifact_digest: Some("sha256:def".into()),
            artifact_secret: Some("staging-cluster-plan".into()),
            decision: PlanDecision::Pending,
        }),
        resumed_at: None,
        history: vec![RunRecord {
            action: RunAction::Deploy,
            job_name: "staging-cluster-deploy-3-abc".into(),
            image: "docker.io/alustan/infrastructure@sha256:abc".into(),
            tag: Some("v1.0.3".into()),
            start_time: time.clone(),
            completion_time: Some(time),
            result: RunResult::Succeeded,
            message: None,
            generation: Some(1),
            digest: None,
            token: None,
            inputs: None,
            plan: Some("3-0a1b2c3d".into()),
            trigger: Some(PlanTrigger::Change),
        }],
    };
    let mut object = example();
    object["status"] = serde_json::to_value(&status).unwrap();
    let expected = object.clone();
    let (admitted, pruned, errors) = admit(object);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(pruned, Vec::<String>::new());
    assert_eq!(admitted, expected);
}

#[test]
fn bad_status_timestamps_are_rejected() {
    let mut object = example();
    object["status"] =
        json!({"lastScan": {"time": "yesterday", "image": "x", "constraint": "^1", "tagCount": 1, "matchingCount": 0}});
    let errors = validate(&schema(), &object);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[1].field, "<nil>", "the CEL rules were not run: {errors:?}");
    assert_eq!(errors[0].field, "status.lastScan.time");
    assert_eq!(errors[0].kind, FieldErrorKind::Invalid);
}

//! The desired state: what a platform team writes in git.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::TerraformStatus;

/// Infrastructure delivered from an OCI image of IaC scripts.
///
/// The agent picks the newest tag of `containerRegistry.imageName` that satisfies
/// `containerRegistry.semanticVersion`, runs `scripts.deploy` from it in a Job (then
/// `postDeploy.script`, if set), and reports the result in `status`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alustan.io",
    version = "v1alpha1",
    kind = "Terraform",
    plural = "terraforms",
    singular = "terraform",
    // tofu-controller also has a kind named Terraform (short name `tf`): ours is `altf`, and
    // `kubectl get alustan` lists every alustan resource.
    shortname = "altf",
    category = "alustan",
    namespaced,
    status = "TerraformStatus",
    derive = "PartialEq",
    doc = "Terraform delivers infrastructure from an OCI image of IaC scripts, redeploying when a newer tag matches the semantic version constraint.",
    // Raw JSON columns: the structured form repeats `type_` and trips clippy's duplicated_attributes.
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state","description":"Progressing, Planned, Success, Completed, Failed or Error"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.applied.tag","description":"The image tag of the last applied run"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.approval) || self.approval != 'Manual' || has(self.scripts.plan)",
        "message": "approval: Manual needs spec.scripts.plan (the script that plans, so there is a plan to approve)",
    },
    {
        "rule": "!has(self.drift) || self.drift == 'Off' || has(self.scripts.plan)",
        "message": "drift: Detect or Correct needs spec.scripts.plan (drift is found by planning); without one, leave drift unset to re-run deploy each interval, or set Off",
    },
]))]
pub struct TerraformSpec {
    /// Environment variables for every script, usually `TF_VAR_*` inputs of terraform. Values are
    /// never logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,

    /// The scripts, paths inside the image, each optionally followed by arguments
    /// (split shell-like: `destroy -c`).
    pub scripts: Scripts,

    /// A script run after every successful deploy, whose JSON output (with an `outputs` key)
    /// lands in `status.postDeployOutput`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_deploy: Option<PostDeploy>,

    /// Where the IaC image lives and which versions of it are acceptable.
    pub container_registry: ContainerRegistry,

    /// Stop every run (deploys, drift correction, resyncs) until set back to false. Deletion
    /// still runs the destroy script.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,

    /// The ServiceAccount the Jobs run as, e.g. one bound to a cloud identity (IRSA, workload
    /// identity). Defaults to the agent's configured job ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// How often to rescan the registry and re-apply to correct drift, overriding the agent's
    /// `syncInterval` (default 6h) for this resource. A Go-style duration: `30m`, `6h`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub sync_interval: Option<String>,

    /// Other `Terraform` resources that must be `Ready` at their current generation before
    /// this one runs (Flux's `dependsOn`). While one is not, status says which (reason
    /// `DependencyNotReady`); its change wakes this resource. A cycle is an error naming it.
    /// Deleting a resource waits while others still depend on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,

    /// Variables filled from another `Terraform`'s outputs (non-sensitive ones from its status,
    /// sensitive ones from its outputs Secret), a ConfigMap or a Secret. Values read from
    /// Secrets reach the run through a Secret, never this resource's status, Events or logs. A
    /// change of a consumed value re-runs the deploy once, as a spec change does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables_from: Vec<VariablesFrom>,

    /// `Auto` (the default): changes are applied as they come. `Manual` (needs
    /// `scripts.plan`): every change (spec, image, sync request, drift correction) is planned
    /// first and waits in state `Planned` until that plan's id is approved (`kubectl alustan
    /// approve`, or the annotation `alustan.io/approve-plan: ID`); the deploy then applies that
    /// plan file. A plan with no changes is applied without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,

    /// What each sync interval does once the inputs are applied. With `scripts.plan`:
    /// `Correct` (the default) plans and applies only when the plan has changes (through
    /// approval when `Manual`), `Detect` plans and reports changes (condition `Drifted`, a
    /// Warning Event, a metric) without applying them. Without `scripts.plan` the default
    /// re-runs `deploy`. `Off`: no periodic run (the registry is still rescanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftMode>,
}

/// Whether changes wait for a person (documented on the field).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Approval {
    /// Changes are applied as they come.
    #[default]
    Auto,
    /// Changes are planned and wait for their plan to be approved.
    Manual,
}

/// What a sync interval does once the inputs are applied (documented on the field).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DriftMode {
    /// Plan, and report changes without applying them.
    Detect,
    /// Plan, and apply changes (through approval when `Manual`). Needs `scripts.plan`; leave
    /// `drift` unset to re-run deploy each interval without one.
    Correct,
    /// Nothing runs on the interval.
    Off,
}

/// A `Terraform` this one depends on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub struct DependencyReference {
    /// The `Terraform`'s name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Its namespace; this resource's when absent. Another namespace is refused unless the
    /// agent runs with `--allow-cross-namespace-refs` (Helm value `allowCrossNamespaceRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Where some variables come from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct VariablesFrom {
    /// `Terraform` (its outputs), `ConfigMap` or `Secret` (their data).
    pub kind: VariablesSourceKind,
    /// The object's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The object's namespace, for `kind: Terraform` only; this resource's when absent (see
    /// `dependsOn[].namespace` for the opt-in another namespace needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Variable name → the output (or data key) that fills it, e.g.
    /// `TF_VAR_vpc_id: vpc_id`. A missing output or key is an error naming it.
    #[schemars(length(min = 1))]
    pub variables: BTreeMap<String, String>,
}

// The kind of object variables are read from (documented on the field).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum VariablesSourceKind {
    /// Another `Terraform`'s outputs.
    Terraform,
    /// A ConfigMap's `data`.
    ConfigMap,
    /// A Secret's `data` (values are treated as sensitive).
    Secret,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// Script paths inside the image, each optionally followed by arguments.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Scripts {
    /// Run to create or update the infrastructure, e.g. `deploy`.
    #[schemars(length(min = 1))]
    pub deploy: String,

    /// Run when the resource is deleted, e.g. `destroy -c`. When absent, deleting the resource
    /// leaves the infrastructure in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy: Option<String>,

    /// Plans without applying, e.g. `plan`: it writes a JSON summary to `$ALUSTAN_PLAN` (the
    /// `resource_changes` of `terraform show -json`: each `address` and its `change.actions`)
    /// and may write the plan file to `$ALUSTAN_PLAN_FILE`, which `deploy` then receives to
    /// apply exactly what was approved. Needed by `approval: Manual` and drift detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// A script run after a successful deploy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PostDeploy {
    /// Script path inside the image, e.g. `aws-resource`.
    #[schemars(length(min = 1))]
    pub script: String,

    /// Arguments passed as `--name=value`, in ascending order of name, where value is the value
    /// of the named variable from `spec.variables` (e.g. `region: TF_VAR_region`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

/// Where the IaC image lives and which versions of it are acceptable.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRegistry {
    /// The registry kind. When absent it is inferred from `imageName`: a first path segment
    /// with a `.` or `:` (or `localhost`) names the registry host (`ghcr.io` → ghcr, any other
    /// host → oci), otherwise Docker Hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<RegistryProvider>,

    /// The image repository, e.g. `alustan/infrastructure`, `ghcr.io/org/infra` or
    /// `registry.example.com:5000/team/infra`. No tag or digest.
    #[schemars(length(min = 1))]
    pub image_name: String,

    /// A semantic version constraint the chosen tag must satisfy, e.g. `~1.0.0`, `^2`,
    /// `>=1.2, <2`. Tags may carry a `v` prefix; prereleases only match a constraint that names
    /// a prerelease of the same major.minor.patch. Required by `policy: semver` (the default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "!self.contains('~>')",
            "message": "`~>` is Terraform's constraint syntax; here write `~1.2.0` for patch updates (Terraform `~> 1.2.0`) or `^1.2` for minor updates (Terraform `~> 1.2`)",
        },
        {
            "rule": SEMVER_CONSTRAINT_RULE,
            "message": "not a semantic version constraint; write e.g. `~1.0.0`, `^2`, `>=1.2, <2` or `*`",
        },
    ]))]
    pub semantic_version: String,

    /// How tags are ordered to pick the newest (the policies of Flux's `ImagePolicy`): `semver` (the
    /// default: the highest version satisfying `semanticVersion`), `numerical` or
    /// `alphabetical` (of the tag, or of the value `filterTags.extract` makes of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<TagPolicy>,

    /// For `numerical` and `alphabetical`: `asc` (the default) picks the highest value, `desc`
    /// the lowest, as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<TagOrder>,

    /// Only tags matching `pattern` are candidates; `extract` makes the value the policy orders
    /// by (Flux's `filterTags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<TagFilter>,

    /// A Secret of type `kubernetes.io/dockerconfigjson` in this namespace with credentials for
    /// the registry, overriding the agent-wide registry secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// The syntax of a `semanticVersion` (the semver crate's `VersionReq`: comma-separated
/// comparators), as a CEL rule; a `~>` is left to the rule that explains it. Written without
/// backslashes, so the same text is a valid regex in CEL's string literal and in Rust.
pub const SEMVER_CONSTRAINT_RULE: &str = concat!(
    "self.contains('~>') || self.matches('^ *",
    "([*]|[xX]|(=|>=|<=|>|<|[~^])? *[0-9]+([.]([*xX]([.][*xX])?|[0-9]+([.]([*xX]|[0-9]+(-[0-9A-Za-z.-]+)?([+][0-9A-Za-z.-]+)?))?))?)",
    "( *, *",
    "([*]|[xX]|(=|>=|<=|>|<|[~^])? *[0-9]+([.]([*xX]([.][*xX])?|[0-9]+([.]([*xX]|[0-9]+(-[0-9A-Za-z.-]+)?([+][0-9A-Za-z.-]+)?))?))?)",
    ")* *$')"
);

// Which kind of registry serves the image (documented on the field, which the CRD shows).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryProvider {
    /// Docker Hub (`registry-1.docker.io`); single names get the `library/` prefix.
    Docker,
    /// GitHub Container Registry (`ghcr.io`).
    Ghcr,
    /// Any OCI distribution registry, named by the host in `imageName`.
    Oci,
}

impl ContainerRegistry {
    /// The tag policy in words, as `status.lastScan.constraint` and `describe` show it:
    /// `semanticVersion` as written, or `numerical, highest first`, then the filter if any.
    pub fn policy_description(&self) -> String {
        let text = match self.policy.unwrap_or_default() {
            TagPolicy::Semver => self.semantic_version.clone(),
            other => {
                let name = if other == TagPolicy::Numerical { "numerical" } else { "alphabetical" };
                let end = if self.order.unwrap_or_default() == TagOrder::Asc { "highest" } else { "lowest" };
                format!("{name}, {end} first")
            }
        };
        match &self.filter_tags {
            Some(filter) if filter.extract.is_empty() => format!("{text} of tags matching {:?}", filter.pattern),
            Some(filter) => format!("{text} of tags matching {:?} (extract {:?})", filter.pattern, filter.extract),
            None => text,
        }
    }
}

// How tags are ordered (documented on the field).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagPolicy {
    /// Semantic version precedence, within `semanticVersion`.
    #[default]
    Semver,
    /// As numbers (integers or decimals).
    Numerical,
    /// Byte-wise, as strings.
    Alphabetical,
}

// Which end of the order wins (documented on the field).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagOrder {
    /// The highest value wins.
    #[default]
    Asc,
    /// The lowest value wins.
    Desc,
}

/// Which tags are candidates, and what of them is ordered.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct TagFilter {
    /// A regular expression (Go RE2 syntax, as Flux; named groups `(?P<name>…)`) a tag must
    /// match somewhere to be a candidate; anchor it with `^…$` to match the whole tag.
    #[schemars(length(min = 1))]
    pub pattern: String,
    /// A template of the pattern's groups (`$name`, `${name}`, `$1`) giving the value the
    /// policy orders by, e.g. `$version`; the whole tag when empty. The tag applied is always
    /// the full original tag. Ties (e.g. many builds of one version) go to the tag that
    /// sorts last, which in `v1.2.2.2022-01-15t161730814Z.9eabf5b5`-style build tags is the
    /// newest build.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extract: String,
}

// A reference to a Secret in the resource's namespace (documented on each field using it).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretReference {
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

impl TerraformSpec {
    /// A fingerprint of everything a run reads from the spec: all of it but `suspend`,
    /// `syncInterval`, `dependsOn`, `approval`, `drift` and `scripts.plan`, which change when
    /// runs happen (or how they are checked), not what they do. Equal
    /// fingerprints, equal runs: resuming a resource whose inputs did not change runs nothing.
    /// (The values `variablesFrom` reads are added by the agent, which reads them.)
    pub fn inputs_fingerprint(&self) -> String {
        let mut inputs = Self {
            suspend: false,
            sync_interval: None,
            depends_on: Vec::new(),
            approval: None,
            drift: None,
            ..self.clone()
        };
        inputs.scripts.plan = None;
        let json = serde_json::to_string(&inputs).unwrap_or_default();
        crate::fingerprint(&[&json])
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    fn spec() -> TerraformSpec {
        serde_json::from_value(serde_json::json!({
            "variables": {"TF_VAR_a": "1"}, "scripts": {"deploy": "deploy"},
            "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}
        }))
        .unwrap()
    }

    #[test]
    fn inputs_fingerprint_ignores_suspend_sync_interval_and_depends_on_only() {
        let base = spec().inputs_fingerprint();
        let depends_on = vec![DependencyReference { name: "network".into(), namespace: None }];
        let mut when = TerraformSpec {
            suspend: true,
            sync_interval: Some("1m".into()),
            depends_on,
            approval: Some(Approval::Manual),
            drift: Some(DriftMode::Detect),
            ..spec()
        };
        when.scripts.plan = Some("plan".into());
        assert_eq!(when.inputs_fingerprint(), base);
        let mut what = spec();
        what.variables.insert("TF_VAR_a".into(), "2".into());
        assert_ne!(what.inputs_fingerprint(), base);
        let script = TerraformSpec { scripts: Scripts { deploy: "other".into(), destroy: None, plan: None }, ..spec() };
        assert_ne!(script.inputs_fingerprint(), base);
    }
}

/// A `Terraform` another one needs, its namespace defaulted to the needing one's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Need {
    pub namespace: String,
    pub name: String,
    /// Needed for its outputs (`variablesFrom`), not through `dependsOn`.
    pub outputs: bool,
}

impl Terraform {
    /// What this resource needs: its `dependsOn` entries, then the `Terraform`s whose outputs
    /// `variablesFrom` reads.
    pub fn needs(&self) -> Vec<Need> {
        let own = self.metadata.namespace.as_deref().unwrap_or_default();
        let need = |namespace: Option<&String>, name: &str, outputs| Need {
            namespace: namespace.map_or(own, String::as_str).to_owned(),
            name: name.to_owned(),
            outputs,
        };
        let depends = self.spec.depends_on.iter().map(|d| need(d.namespace.as_ref(), &d.name, false));
        let reads = self
            .spec
            .variables_from
            .iter()
            .filter(|v| v.kind == VariablesSourceKind::Terraform)
            .map(|v| need(v.namespace.as_ref(), &v.name, true));
        depends.chain(reads).collect()
    }

    /// The sync request token: alustan's annotation, else Flux's; an empty one is none.
    pub fn resync_token(&self) -> Option<&str> {
        let annotations = self.metadata.annotations.as_ref()?;
        annotations
            .get(crate::meta::RESYNC_REQUESTED_AT)
            .or_else(|| annotations.get(crate::meta::FLUX_RECONCILE_REQUESTED_AT))
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// An annotation's value, `None` when absent or empty.
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotations.as_ref()?.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The plan request token (`alustan.io/plan-requested-at`).
    pub fn plan_token(&self) -> Option<&str> {
        self.annotation(crate::meta::PLAN_REQUESTED_AT)
    }

    /// The plan id approved through `alustan.io/approve-plan`.
    pub fn approved_plan(&self) -> Option<&str> {
        self.annotation(crate::meta::APPROVE_PLAN)
    }

    /// The plan id rejected through `alustan.io/reject-plan`.
    pub fn rejected_plan(&self) -> Option<&str> {
        self.annotation(crate::meta::REJECT_PLAN)
    }

    /// Whether changes wait for an approved plan.
    pub fn manual_approval(&self) -> bool {
        self.spec.approval == Some(Approval::Manual)
    }

    /// What resuming this (suspended) resource will do, by the agent's rule: run nothing unless
    /// its inputs changed since the last deploy or a sync was requested meanwhile. `None`:
    /// nothing runs now (a newer image found by the next scan still deploys).
    pub fn resume_runs(&self) -> Option<&'static str> {
        let history = self.status.as_ref().map(|s| s.history.as_slice()).unwrap_or_default();
        let Some(last) = history.iter().find(|r| r.action == crate::RunAction::Deploy) else {
            return Some("nothing was deployed yet: a deploy starts");
        };
        match &last.inputs {
            None => Some("its last deploy predates input fingerprints: a deploy may start"),
            // The run's fingerprint also covers the values read: only the agent can compare it.
            Some(_) if !self.spec.variables_from.is_empty() => {
                Some("a deploy starts if the spec or a value read through variablesFrom changed since the last deploy")
            }
            Some(inputs) if *inputs != self.spec.inputs_fingerprint() => {
                Some("the spec changed since the last deploy: a deploy starts")
            }
            Some(_) if self.resync_token().is_some() && last.token.as_deref() != self.resync_token() => {
                Some("a sync was requested while suspended: a deploy starts")
            }
            Some(_) if last.result != crate::RunResult::Succeeded => {
                Some("the last deploy did not succeed: it is retried (unless its attempts are used up)")
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::{RunAction, RunRecord, RunResult, TerraformStatus};

    fn suspended_after(result: RunResult, inputs: Option<String>, token: Option<&str>) -> Terraform {
        let mut tf: Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "t"},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"},
                     "suspend": true}
        }))
        .unwrap();
        let record = RunRecord {
            action: RunAction::Deploy,
            job_name: "t-deploy-k-0".into(),
            image: "r@sha256:a".into(),
            tag: None,
            start_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            completion_time: None,
            result,
            message: None,
            generation: Some(1),
            digest: None,
            token: token.map(str::to_owned),
            inputs,
            plan: None,
            trigger: None,
        };
        tf.status = Some(TerraformStatus { history: vec![record], ..TerraformStatus::default() });
        tf
    }

    #[test]
    fn resync_token_prefers_alustan_then_flux() {
        let with = |annotations: &[(&str, &str)]| {
            let mut tf = suspended_after(RunResult::Succeeded, None, None);
            tf.metadata.annotations =
                Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
            tf
        };
        assert_eq!(with(&[]).resync_token(), None);
        assert_eq!(with(&[(crate::meta::FLUX_RECONCILE_REQUESTED_AT, "f1")]).resync_token(), Some("f1"));
        let both = with(&[(crate::meta::FLUX_RECONCILE_REQUESTED_AT, "f1"), (crate::meta::RESYNC_REQUESTED_AT, "a1")]);
        assert_eq!(both.resync_token(), Some("a1"));
        assert_eq!(with(&[(crate::meta::RESYNC_REQUESTED_AT, "")]).resync_token(), None);
    }

    #[test]
    fn resume_says_whether_a_run_starts() {
        let unchanged = suspended_after(RunResult::Succeeded, None, None);
        let fingerprint = unchanged.spec.inputs_fingerprint();
        assert_eq!(suspended_after(RunResult::Succeeded, Some(fingerprint.clone()), None).resume_runs(), None);
        let mut edited = suspended_after(RunResult::Succeeded, Some(fingerprint.clone()), None);
        edited.spec.variables.insert("TF_VAR_a".into(), "1".into());
        assert!(edited.resume_runs().unwrap().contains("spec changed"));
        let mut synced = suspended_after(RunResult::Succeeded, Some(fingerprint.clone()), None);
        synced.metadata.annotations = Some([(crate::meta::RESYNC_REQUESTED_AT.to_owned(), "t1".to_owned())].into());
        assert!(synced.resume_runs().unwrap().contains("sync was requested"));
        assert!(
            suspended_after(RunResult::Failed, Some(fingerprint.clone()), None)
                .resume_runs()
                .unwrap()
                .contains("retried")
        );
        let mut fresh = unchanged.clone();
        fresh.status = None;
        assert!(fresh.resume_runs().unwrap().contains("nothing was deployed"));
        let mut consumer = suspended_after(RunResult::Succeeded, Some(fingerprint), None);
        consumer.spec.variables_from = serde_json::from_value(serde_json::json!(
            [{"kind": "ConfigMap", "name": "c", "variables": {"TF_VAR_a": "a"}}]
        ))
        .unwrap();
        assert!(consumer.resume_runs().unwrap().contains("variablesFrom"));
    }
}

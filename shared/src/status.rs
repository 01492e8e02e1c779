//! The observed state: what the agent writes and the plugin reads.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{free_form_object, map_of_any};

/// What the agent last observed and did for a `Terraform`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerraformStatus {
    /// The summary state of the latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,

    /// A human-readable explanation of `state`: what happened and, on failure, what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Non-sensitive terraform outputs of the last successful deploy (name → value). Sensitive
    /// outputs are stored in the Secret named by `sensitiveOutputsSecret`, never here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "map_of_any")]
    pub output: BTreeMap<String, serde_json::Value>,

    /// The Secret (owned by this resource) holding sensitive terraform outputs, one key each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_outputs_secret: Option<String>,

    /// URLs of the cluster's Ingresses after the last deploy, grouped by the Ingress's
    /// namespace: every host of every rule, `https://` when the host is listed in the Ingress's
    /// TLS section, `http://` otherwise.
    #[serde(rename = "ingressURLs", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ingress_urls: BTreeMap<String, Vec<String>>,

    /// Credentials of tools the deploy installed (e.g. `argocd`, `grafana`): a username and a
    /// reference to the Secret key holding the password. Never the password itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, Credential>,

    /// The JSON printed by the post-deploy script (an object with an `outputs` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub post_deploy_output: Option<serde_json::Value>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions: `Ready`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The image of the last successful deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedImage>,

    /// The last registry scan and why it chose the tag it chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<RegistryScan>,

    /// The last value of the resync request annotation (`alustan.io/reconcile-requested-at` or
    /// Flux's `reconcile.fluxcd.io/requestedAt`) the agent acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// The last value of `alustan.io/rescan-requested-at` the agent acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_rescan_at: Option<String>,

    /// The last value of `alustan.io/plan-requested-at` the agent acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_plan_at: Option<String>,

    /// The latest plan (`spec.scripts.plan`): what it would change, and whether it was
    /// approved, rejected or applied. Addresses and actions only, never values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,

    /// When `spec.suspend` last turned false: the drift interval counts from it too, so
    /// resuming never re-applies at once for time spent suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<Time>,

    /// The most recent runs, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunRecord>,
}

/// The summary state of the latest run.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum State {
    /// A run is under way (registry scan, plan, deploy, post-deploy or destroy).
    Progressing,
    /// A plan with changes waits for approval (`status.plan`; `approval: Manual`, or a
    /// requested plan).
    Planned,
    /// The deploy script finished successfully (no post-deploy script is set, or it is pending).
    Success,
    /// The deploy and the post-deploy script both finished successfully.
    Completed,
    /// A script exited non-zero; `message` names the step and its log's error line (the run's
    /// history record holds the log's tail).
    Failed,
    /// The agent could not do its part (bad constraint, registry unreachable, missing Secret…);
    /// `message` says what and how to fix it.
    Error,
}

impl State {
    /// The state as written in the resource.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Progressing => "Progressing",
            State::Planned => "Planned",
            State::Success => "Success",
            State::Completed => "Completed",
            State::Failed => "Failed",
            State::Error => "Error",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A username and where its password is kept.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// The username.
    pub username: String,
    /// The Secret key holding the password.
    pub password_secret_ref: SecretKeyReference,
}

/// A key of a Secret, possibly in another namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretKeyReference {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key within the Secret's data.
    pub key: String,
}

/// The image a run used.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedImage {
    /// The full image reference the Job ran: `repository@sha256:…`.
    pub image: String,
    /// The tag exactly as found in the registry (e.g. `v1.0.3`).
    pub tag: String,
    /// The manifest digest the tag resolved to.
    pub digest: String,
    /// When the deploy that applied it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
}

/// One registry scan: what was seen and why the winner won.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryScan {
    /// When the tags were listed.
    pub time: Time,
    /// The repository scanned, as a full reference without tag (`registry/repository`).
    pub image: String,
    /// The constraint the tags were matched against (`semanticVersion`), or the policy and
    /// order (`numerical, highest first`); with `filterTags`, its pattern and extract too.
    pub constraint: String,
    /// How many tags the repository has.
    pub tag_count: i64,
    /// How many tags satisfy the constraint.
    pub matching_count: i64,
    /// The newest tags satisfying the constraint, newest first (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newest_matching: Vec<String>,
    /// Some tags that were rejected, newest versions first (at most 10), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedTag>,
    /// The chosen tag, exactly as in the registry; absent when no tag matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_tag: Option<String>,
    /// The manifest digest of the chosen tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_digest: Option<String>,
}

/// A tag that was not chosen, and why.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RejectedTag {
    /// The tag, exactly as in the registry.
    pub tag: String,
    /// Why it was not a candidate.
    pub reason: RejectionReason,
}

/// Why a tag was not a candidate.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RejectionReason {
    /// Not a semantic version (e.g. `latest`, `production`, build tags without `filterTags`).
    NotSemver,
    /// A semantic version outside the constraint.
    OutsideConstraint,
    /// A prerelease, and the constraint names no prerelease of the same major.minor.patch.
    Prerelease,
    /// Does not match `filterTags.pattern`.
    FilteredOut,
    /// `policy: numerical`, and the tag (or its extracted value) is not a number.
    NotNumerical,
}

/// What a run did.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunAction {
    /// `scripts.deploy`.
    Deploy,
    /// `postDeploy.script`.
    PostDeploy,
    /// `scripts.destroy`.
    Destroy,
    /// `scripts.plan`.
    Plan,
}

/// How a run ended.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunResult {
    /// Still running.
    Running,
    /// The script exited zero.
    Succeeded,
    /// The script exited non-zero (or hit its deadline).
    Failed,
    /// The agent could not run or read it.
    Error,
}

/// One run of a script in a Job.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Which script ran.
    pub action: RunAction,
    /// The Job's name.
    pub job_name: String,
    /// The image reference the Job ran (`repository@sha256:…`).
    pub image: String,
    /// The tag the digest was chosen through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// When the Job was created.
    pub start_time: Time,
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// How it ended.
    pub result: RunResult,
    /// A short explanation (e.g. the exit code and the tail of the log on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` whose spec the run applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The manifest digest of the image the run ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The sync request (`alustan.io/reconcile-requested-at` or Flux's token) the run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A fingerprint of the inputs the run read (the spec but `suspend`, `syncInterval` and
    /// `dependsOn`, and the values `variablesFrom` read): a run of the same fingerprint, digest
    /// and token applied the same inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    /// The plan id: the one a plan run made, or the approved one a deploy applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Why a plan run ran (plan runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<PlanTrigger>,
}

/// The latest plan of a resource.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// What approving names (`kubectl alustan approve NAME --plan ID`).
    pub id: String,
    /// The plan Job.
    pub job_name: String,
    /// The `metadata.generation` whose spec was planned.
    pub generation: i64,
    /// The image tag planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest digest of the image planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why it was planned.
    pub trigger: PlanTrigger,
    /// When the plan finished.
    pub time: Time,
    /// How many resources each action touches.
    pub counts: PlanCounts,
    /// The changed resources (no-op and read excluded), at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PlannedChange>,
    /// Changed resources beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changes_omitted: i64,
    /// SHA-256 of the plan file, kept in `artifactSecret` for the deploy; absent when the plan
    /// script wrote none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    /// The Secret (owned by this resource) holding the plan file until it is applied or
    /// superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_secret: Option<String>,
    /// Where the plan stands.
    pub decision: PlanDecision,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl PlanStatus {
    /// Whether applying the plan would change anything.
    pub fn has_changes(&self) -> bool {
        self.counts.total() > 0
    }

    /// `2 to add, 1 to change, 0 to destroy, 1 to replace` (Terraform's words).
    pub fn counts_text(&self) -> String {
        let c = &self.counts;
        format!("{} to add, {} to change, {} to destroy, {} to replace", c.create, c.update, c.delete, c.replace)
    }
}

/// How many resources each action touches.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PlanCounts {
    pub create: i64,
    pub update: i64,
    pub delete: i64,
    pub replace: i64,
}

impl PlanCounts {
    pub fn total(&self) -> i64 {
        self.create + self.update + self.delete + self.replace
    }
}

/// One changed resource.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PlannedChange {
    /// Its address, e.g. `aws_instance.web[0]`.
    pub address: String,
    pub action: PlanAction,
}

/// What a plan does to a resource.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    Create,
    Update,
    Delete,
    /// Delete and create (either order).
    Replace,
}

/// Why a plan ran.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PlanTrigger {
    /// The inputs changed (spec, image, sync request) under `approval: Manual`.
    Change,
    /// The sync interval's drift check.
    Drift,
    /// `kubectl alustan plan` (`alustan.io/plan-requested-at`).
    Request,
}

/// Where a plan stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PlanDecision {
    /// Waits for its id to be approved or rejected.
    Pending,
    /// Approved: its deploy runs or ran.
    Approved,
    /// Rejected: nothing applied.
    Rejected,
    /// Applied by a deploy that succeeded.
    Applied,
    /// Changes found by a drift check in `drift: Detect`: reported, not applied.
    Detected,
    /// No changes: nothing to approve.
    NoChanges,
    /// Replaced before it was applied: a newer plan, or a deploy of other inputs, came first.
    /// Approving it applies nothing.
    Superseded,
}

impl RunRecord {
    /// The manifest digest of the image the run ran (`image` is `repository@digest` when the
    /// record predates the `digest` field).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref().or_else(|| self.image.rsplit_once('@').map(|(_, digest)| digest))
    }
}

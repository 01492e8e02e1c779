//! The kstatus condition vocabulary (`Ready`, `Reconciling`, `Stalled`).
//!
//! Tools such as `kubectl wait --for=condition=Ready`, Flux health checks and Argo CD read these.

/// True when the last deploy (and post-deploy) of the current generation succeeded.
pub const READY: &str = "Ready";
/// True while the agent is working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// True when the agent has stopped retrying until something changes.
pub const STALLED: &str = "Stalled";

/// True when the last plan of the applied inputs found changes nobody applied (drift); False
/// when it found none. Absent until a plan of applied inputs ran.
pub const DRIFTED: &str = "Drifted";

/// Condition status values.
pub const TRUE: &str = "True";
/// Condition status values.
pub const FALSE: &str = "False";
/// Condition status values.
pub const UNKNOWN: &str = "Unknown";

/// Reasons (CamelCase, as Kubernetes requires).
pub mod reason {
    /// A deploy Job is running.
    pub const DEPLOYING: &str = "Deploying";
    /// A post-deploy Job is running.
    pub const POST_DEPLOYING: &str = "PostDeploying";
    /// A destroy Job is running.
    pub const DESTROYING: &str = "Destroying";
    /// The registry is being scanned.
    pub const SCANNING: &str = "Scanning";
    /// Everything succeeded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// A script exited non-zero.
    pub const SCRIPT_FAILED: &str = "ScriptFailed";
    /// The registry could not be read or no tag matched.
    pub const REGISTRY_ERROR: &str = "RegistryError";
    /// The spec cannot be acted on (invalid constraint, missing variable…).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A Secret the agent must create for a run exists and is not the agent's.
    pub const SEAL_CONFLICT: &str = "SealConflict";
    /// Retries are exhausted until something changes.
    pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// Newer inputs wait for a run of older ones to finish (one run at a time).
    pub const WAITING_FOR_RUN: &str = "WaitingForRun";
    /// The API server refused to create a run's Job or Secret (terminating namespace, invalid
    /// name, quota, RBAC).
    pub const REJECTED: &str = "Rejected";
    /// The reconcile failed on the Kubernetes API or inside the agent; it is retried.
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    /// The resource was released without running destroy (skip annotation, or a namespace
    /// being deleted refused the destroy Job).
    pub const DESTROY_SKIPPED: &str = "DestroySkipped";
    /// A `dependsOn` entry is not `Ready` at its current generation (or does not exist).
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// Other resources still depend on this one being deleted: it waits for them to go.
    pub const DEPENDANTS_EXIST: &str = "DependantsExist";
    /// `variablesFrom` cannot be read (a missing output, key, ConfigMap or Secret).
    pub const VARIABLES_FROM_ERROR: &str = "VariablesFromError";
    /// A plan Job is running.
    pub const PLANNING: &str = "Planning";
    /// A plan with changes waits for its id to be approved.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// The plan was rejected: nothing is applied until the inputs change or a plan is requested.
    pub const PLAN_REJECTED: &str = "PlanRejected";
    /// An approved plan cannot be applied as approved (its plan file is gone or changed).
    pub const PLAN_ERROR: &str = "PlanError";
    /// A plan of the applied inputs found changes (`Drifted=True`).
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// A plan of the applied inputs found no changes (`Drifted=False`).
    pub const NO_DRIFT: &str = "NoDrift";
    /// Destroy succeeded; the resource is released.
    pub const DESTROYED: &str = "Destroyed";
}

/// Finds a condition by type.
pub fn find<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

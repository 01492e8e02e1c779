//! Types shared by the alustan agent and the `kubectl alustan` plugin.
//!
//! This crate holds the `Terraform` custom resource (`alustan.io/v1alpha1`): its spec and status,
//! the annotations and labels both sides agree on, and the condition vocabulary. It does no I/O.

pub mod conditions;
pub mod crd;
pub mod duration;
pub mod meta;
mod schema;
pub mod spec;
pub mod status;

pub use spec::{
    Approval, ContainerRegistry, DependencyReference, DriftMode, Need, PostDeploy, RegistryProvider, Scripts,
    SecretReference, TagFilter, TagOrder, TagPolicy, Terraform, TerraformSpec, VariablesFrom, VariablesSourceKind,
};
pub use status::{
    AppliedImage, Credential, PlanAction, PlanCounts, PlanDecision, PlanStatus, PlanTrigger, PlannedChange,
    RegistryScan, RejectedTag, RejectionReason, RunAction, RunRecord, RunResult, SecretKeyReference, State,
    TerraformStatus,
};

/// The API group of every alustan resource.
pub const GROUP: &str = "alustan.io";
/// The served and stored version of the `Terraform` resource.
pub const VERSION: &str = "v1alpha1";
/// A short, stable hex fingerprint (80 bits of SHA-256) of `parts`, each length-prefixed so
/// `("ab", "c")` and `("a", "bc")` differ.
pub fn fingerprint(parts: &[&str]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(10).fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The plural resource name, as used in URLs and RBAC rules.
pub const PLURAL: &str = "terraforms";

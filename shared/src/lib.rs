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

pub use spec::{ContainerRegistry, PostDeploy, RegistryProvider, Scripts, SecretReference, Terraform, TerraformSpec};
pub use status::{
    AppliedImage, Credential, RegistryScan, RejectedTag, RejectionReason, RunAction, RunRecord, RunResult,
    SecretKeyReference, State, TerraformStatus,
};

/// The API group of every alustan resource.
pub const GROUP: &str = "alustan.io";
/// The served and stored version of the `Terraform` resource.
pub const VERSION: &str = "v1alpha1";
/// The plural resource name, as used in URLs and RBAC rules.
pub const PLURAL: &str = "terraforms";

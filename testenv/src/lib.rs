//! Test infrastructure for alustan. Never a dependency of shipped binaries.
//!
//! - [`schema`]: the apiserver's custom-resource schema rules (structural checks, pruning and
//!   validation), as documented on the CRD task page of the Kubernetes docs.

pub mod schema;

//! Test infrastructure for alustan. Never a dependency of shipped binaries.
//!
//! [`TestEnv`] starts the whole stack for a test; `alustan-testenv serve` runs it by hand.
//!
//! - [`apiserver`]: an in-process Kubernetes-API-compatible server (discovery, OpenAPI v3,
//!   CRUD, watch, patches and server-side apply, CRDs, Tables, RBAC, request log, faults).
//! - [`kubelet`]: a Job controller and a process kubelet running Pods' containers under
//!   bubblewrap with the image's files, pulled from the registry, as `/`.
//! - [`controlplane`]: the real Kubernetes control plane (etcd, kube-apiserver,
//!   kube-controller-manager, kube-scheduler built from the pinned Go modules) on loopback;
//!   [`TestEnv`] runs on it when asked (`ALUSTAN_CONTROL_PLANE=real`).
//! - [`schema`]: the apiserver's custom-resource schema rules (structural checks, pruning and
//!   validation), as documented on the CRD task page of the Kubernetes docs.
//! - [`registry`]: a real OCI registry (Debian's `docker-registry`) on loopback, image pushes
//!   from a directory, and a proxy that pages tag lists as Docker Hub and GHCR do.

pub mod apiserver;
pub mod controlplane;
mod harness;
pub mod kubelet;
pub mod registry;
pub mod schema;

pub use harness::{BACKEND_ENV, Backend, TestEnv, TestEnvError, TestEnvOptions, repo_crds_dir};

//! The process kubelet: a Job controller and a kubelet that run Pods' containers as host
//! processes, sandboxed with bubblewrap, with the image's files (pulled from a real registry)
//! as `/` and the host's `/usr` read-only, so IaC images need no shell of their own.
//!
//! It talks to any Kubernetes API server through `kube::Client`, exactly like the real
//! controllers: Jobs and Pods are watched, Pods are created with the Job controller's labels and
//! ownerReferences, statuses are written through the `status` subresource. Container output is
//! appended to the test API server's [`PodLogs`], which serves `pods/{name}/log`.
//!
//! Approximations (documented so nobody mistakes them for the real thing):
//! - one node, no scheduling: every Pod runs here at once; `parallelism` above 1 is ignored;
//! - `restartPolicy: OnFailure` is treated like `Never` (the Job controller makes a new Pod);
//! - a failed Job pod is replaced after `retry_backoff` instead of the real 10 s doubling;
//! - no resource limits or probes;
//! - a Secret or ConfigMap volume that is missing keeps the Pod in `ContainerCreating` with
//!   `FailedMount` events (as on a real node), retried every 0.5 s doubling up to 4 s (the real
//!   kubelet: up to 2 min 2 s), without the real one's later "unmounted volumes" timeout event;
//! - the ServiceAccount token is mounted by the kubelet itself (the real admission plugin adds
//!   a projected volume to the Pod spec) with `token` and `namespace` but no `ca.crt`: the test
//!   API server speaks plain HTTP, so in-cluster clients here use `http://`.

mod env;
mod events;
mod image;
mod jobs;
mod pods;
mod sandbox;
mod service_account;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::apiserver::PodLogs;

pub use image::ImageStore;

/// Errors of the process kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot pull image {image}: {message}")]
    Pull { image: String, message: String },
    #[error("cannot unpack image {image}: {source}")]
    Unpack { image: String, source: std::io::Error },
    #[error("cannot prepare the container filesystem at {path}: {source}")]
    Filesystem { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("bubblewrap (`bwrap`, Debian package `bubblewrap`) cannot start: {0}")]
    Sandbox(std::io::Error),
}

/// How the kubelet runs.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Registries reached over plain HTTP (`host:port`), like Docker's `--insecure-registry`.
    pub insecure_registries: Vec<String>,
    /// Where images are unpacked (once per digest) and Pods get their root filesystems.
    pub work_dir: PathBuf,
    /// Delay before the Job controller replaces a failed Pod (the real one uses 10 s, doubling).
    pub retry_backoff: Duration,
    /// The node name written into Pods.
    pub node_name: String,
    /// The API server, given to containers as `KUBERNETES_SERVICE_HOST`/`_PORT` (the
    /// `kubernetes` Service's variables); `None` leaves them unset.
    pub api_server: Option<std::net::SocketAddr>,
}

impl KubeletOptions {
    /// Options for a kubelet working in `work_dir`.
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            insecure_registries: Vec::new(),
            work_dir,
            retry_backoff: Duration::from_secs(1),
            node_name: "testenv-node".to_owned(),
            api_server: None,
        }
    }
}

/// A running Job controller and kubelet; both stop (killing every container) on drop.
pub struct Kubelet {
    tasks: Vec<JoinHandle<()>>,
    images: Arc<ImageStore>,
}

impl Kubelet {
    /// Starts the Job controller and the kubelet against `client`, writing container output to
    /// `logs`.
    pub fn start(client: kube::Client, logs: PodLogs, options: KubeletOptions) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = Arc::new(options);
        let images = Arc::new(ImageStore::new(options.work_dir.join("images"), options.insecure_registries.clone()));
        let jobs = tokio::spawn(jobs::run(client.clone(), Arc::clone(&options)));
        let pods = tokio::spawn(pods::run(client, logs, Arc::clone(&images), options));
        Self { tasks: vec![jobs, pods], images }
    }

    /// How many times an image digest was pulled and unpacked (the cache makes it once each).
    pub fn image_pulls(&self) -> usize {
        self.images.pulls()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

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
//! - no resource limits or probes; `securityContext` (user, read-only root, capabilities) is
//!   not applied: containers run as the test's user;
//! - containers share the host's network: a port a container listens on (e.g. the chart's
//!   metrics port) is a host port, so tests pick free ones;
//! - a Secret or ConfigMap volume that is missing keeps the Pod in `ContainerCreating` with
//!   `FailedMount` events (as on a real node), retried every 0.5 s doubling up to 4 s (the real
//!   kubelet: up to 2 min 2 s), without the real one's later "unmounted volumes" timeout event;
//! - the ServiceAccount token is mounted by the kubelet itself (the real admission plugin adds
//!   a projected volume to the Pod spec) with `token` and `namespace` but no `ca.crt`: the test
//!   API server speaks plain HTTP, so in-cluster clients here use `http://`.
//!
//! [`Kubelet::start_node`] makes it a Node of a real control plane instead (see `node.rs`): the
//! real controller-manager runs the Jobs, the scheduler binds their Pods to this Node, and this
//! kubelet runs them as above, with the ServiceAccount token from the admission plugin's
//! projected volume and `pods/log` served over TLS to the API server.

mod env;
mod events;
mod image;
mod jobs;
mod node;
mod pods;
mod sandbox;
mod service_account;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::apiserver::PodLogs;

pub use image::ImageStore;
pub use node::NodeConfig;

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
    #[error("cannot listen for the kubelet API: {0}")]
    Listen(std::io::Error),
    #[error("kubelet API TLS: {0}")]
    Tls(String),
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
    logs: PodLogs,
    api_port: Option<u16>,
}

impl Kubelet {
    /// Starts the Job controller and the kubelet against `client`, writing container output to
    /// `logs`.
    pub fn start(client: kube::Client, logs: PodLogs, options: KubeletOptions) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = Arc::new(options);
        let images = Arc::new(ImageStore::new(options.work_dir.join("images"), options.insecure_registries.clone()));
        let jobs = tokio::spawn(jobs::run(client.clone(), Arc::clone(&options)));
        let pods = tokio::spawn(pods::run(client, logs.clone(), Arc::clone(&images), options, pods::Mode::Embedded));
        Self { tasks: vec![jobs, pods], images, logs, api_port: None }
    }

    /// Starts the kubelet as Node `options.node_name` of a real control plane: registers the
    /// Node, keeps its Lease and Ready condition fresh, serves the kubelet API over TLS and
    /// runs the Pods bound to it. `client` must authenticate as `system:node:<name>` in group
    /// `system:nodes` (the Node authorizer and `NodeRestriction` then allow exactly what a
    /// kubelet may do). No Job controller: the control plane's own runs.
    pub async fn start_node(
        client: kube::Client,
        options: KubeletOptions,
        node: NodeConfig,
    ) -> Result<Self, KubeletError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = Arc::new(options);
        let logs = PodLogs::default();
        let acceptor = node::tls_acceptor(&node)?;
        let listener = node::bind(node.port).await?;
        let port = listener.local_addr().map_err(KubeletError::Listen)?.port();
        node::register(&client, &options.node_name, port, &node.kubelet_version).await?;
        let server = tokio::spawn(node::serve(listener, acceptor, logs.clone(), client.clone()));
        let heartbeat = tokio::spawn(node::heartbeat(client.clone(), options.node_name.clone()));
        let images = Arc::new(ImageStore::new(options.work_dir.join("images"), options.insecure_registries.clone()));
        let pods = tokio::spawn(pods::run(client, logs.clone(), Arc::clone(&images), options, pods::Mode::Node));
        Ok(Self { tasks: vec![pods, heartbeat, server], images, logs, api_port: Some(port) })
    }

    /// The containers' output (what `pods/log` serves).
    pub fn logs(&self) -> &PodLogs {
        &self.logs
    }

    /// The kubelet API port on 127.0.0.1 (node mode only).
    pub fn api_port(&self) -> Option<u16> {
        self.api_port
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

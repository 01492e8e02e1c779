//! `TestEnv`: the whole stack for one test (or `alustan-testenv serve`): the API server with our
//! CRDs installed, a real registry, the process kubelet, and a kubeconfig that works for kubectl
//! and kube-rs. Every instance has its own ports and temp dirs, so tests run in parallel.

use std::path::{Path, PathBuf};

use crate::apiserver::{ApiServer, ApiServerError, ApiServerOptions, Faults, RequestLog};
use crate::controlplane::{ControlPlane, ControlPlaneError, ControlPlaneOptions};
use crate::kubelet::{Kubelet, KubeletError, KubeletOptions, NodeConfig};
use crate::registry::{Registry, RegistryError, RegistryOptions};

/// The repository's generated CRDs, installed into every environment.
pub fn repo_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("crds")
}

/// Errors starting a [`TestEnv`].
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    #[error("test API server: {0}")]
    ApiServer(#[from] ApiServerError),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("cannot create the environment's temp dir: {0}")]
    TempDir(std::io::Error),
    #[error("real control plane: {0}")]
    ControlPlane(#[from] ControlPlaneError),
    #[error("kubelet: {0}")]
    Kubelet(#[from] KubeletError),
}

/// How to start a [`TestEnv`].
#[derive(Debug, Clone)]
pub struct TestEnvOptions {
    pub api: ApiServerOptions,
    pub registry: RegistryOptions,
    /// CRDs to install (every `*.yaml` in it); the repository's `crds/` by default.
    pub crds_dir: Option<PathBuf>,
    /// Run the Job controller and process kubelet.
    pub kubelet: bool,
    /// Further `host:port`s the kubelet pulls from over plain HTTP (the env's registry always
    /// is one), e.g. a test's proxy in front of that registry.
    pub insecure_registries: Vec<String>,
    /// Where the kubeconfig and kubelet files go; a fresh temp dir when `None`.
    pub work_dir: Option<PathBuf>,
}

impl Default for TestEnvOptions {
    fn default() -> Self {
        Self {
            api: ApiServerOptions::default(),
            registry: RegistryOptions::anonymous(),
            crds_dir: Some(repo_crds_dir()),
            kubelet: true,
            insecure_registries: Vec::new(),
            work_dir: None,
        }
    }
}

/// A running environment; everything stops (processes killed, temp dirs removed) on drop.
pub struct TestEnv {
    // Drop order: the kubelet (and its containers) before the servers it talks to.
    kubelet: Option<Kubelet>,
    api: ApiServer,
    registry: Registry,
    kubeconfig: PathBuf,
    work_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestEnv {
    /// The default stack: anonymous registry, our CRDs, the kubelet.
    pub async fn start() -> Result<Self, TestEnvError> {
        Self::start_with(TestEnvOptions::default()).await
    }

    pub async fn start_with(options: TestEnvOptions) -> Result<Self, TestEnvError> {
        let (temp, work_dir) = if let Some(dir) = options.work_dir {
            std::fs::create_dir_all(&dir).map_err(TestEnvError::TempDir)?;
            (None, dir)
        } else {
            let temp = tempfile::Builder::new().prefix("alustan-testenv-").tempdir().map_err(TestEnvError::TempDir)?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        };
        let api = ApiServer::start(options.api).await?;
        if let Some(crds) = &options.crds_dir {
            api.load_crds_from_dir(crds)?;
        }
        let registry = Registry::start(options.registry).await?;
        let kubeconfig = work_dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "admin", None)?;
        let kubelet = if options.kubelet {
            let mut kubelet_options = KubeletOptions::new(work_dir.join("kubelet"));
            kubelet_options.insecure_registries.push(registry.host_port().to_owned());
            kubelet_options.insecure_registries.extend(options.insecure_registries.iter().cloned());
            kubelet_options.api_server = Some(api.addr());
            Some(Kubelet::start(api.client()?, api.pod_logs().clone(), kubelet_options))
        } else {
            None
        };
        Ok(Self { kubelet, api, registry, kubeconfig, work_dir, _temp: temp })
    }

    /// The admin kubeconfig (absolute path), for kubectl (`--kubeconfig`) and kube-rs.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for a named user authenticating with `token` (RBAC mode).
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> Result<PathBuf, TestEnvError> {
        let path = self.work_dir.join(format!("kubeconfig-{user}"));
        self.api.write_kubeconfig(&path, user, Some(token))?;
        Ok(path)
    }

    /// An admin kube client (namespace `default`).
    pub fn client(&self) -> Result<kube::Client, TestEnvError> {
        Ok(self.api.client()?)
    }

    /// A kube client authenticating with `token`.
    pub fn client_for(&self, token: &str) -> Result<kube::Client, TestEnvError> {
        Ok(self.api.client_with_token(Some(token))?)
    }

    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn kubelet(&self) -> Option<&Kubelet> {
        self.kubelet.as_ref()
    }

    pub fn requests(&self) -> &RequestLog {
        self.api.requests()
    }

    pub fn faults(&self) -> &Faults {
        self.api.faults()
    }

    /// The environment's own directory (kubeconfigs, kubelet files).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

/// How to start a [`RealEnv`].
#[derive(Debug, Clone)]
pub struct RealEnvOptions {
    pub control_plane: ControlPlaneOptions,
    pub registry: RegistryOptions,
    /// Run the process kubelet as a Node of the control plane.
    pub kubelet: bool,
    /// The Node's name.
    pub node_name: String,
    /// Further `host:port`s the kubelet pulls from over plain HTTP (the env's registry always
    /// is one).
    pub insecure_registries: Vec<String>,
}

impl Default for RealEnvOptions {
    fn default() -> Self {
        Self {
            control_plane: ControlPlaneOptions::default(),
            registry: RegistryOptions::anonymous(),
            kubelet: true,
            node_name: "alustan-node".to_owned(),
            insecure_registries: Vec::new(),
        }
    }
}

/// The stack on the real Kubernetes control plane ([`crate::controlplane`]): etcd,
/// kube-apiserver, controller-manager and scheduler with our CRDs, a real registry, and the
/// process kubelet as the cluster's one Node. Everything stops on drop.
pub struct RealEnv {
    // Drop order: the kubelet (and its containers) before the servers it talks to.
    kubelet: Option<Kubelet>,
    control_plane: ControlPlane,
    registry: Registry,
}

impl RealEnv {
    /// The default stack: our CRDs, an anonymous registry, the Node.
    pub async fn start() -> Result<Self, TestEnvError> {
        Self::start_with(RealEnvOptions::default()).await
    }

    pub async fn start_with(options: RealEnvOptions) -> Result<Self, TestEnvError> {
        let control_plane = ControlPlane::start_with(options.control_plane).await?;
        let registry = Registry::start(options.registry).await?;
        let kubelet = if options.kubelet {
            let name = options.node_name;
            let identity = format!("system:node:{name}");
            let client = control_plane.client_for(&identity, &["system:nodes"]).await?;
            let serving = control_plane.pki().serving_cert(
                &identity,
                &[std::net::IpAddr::from([127, 0, 0, 1])],
                &[name.as_str()],
            )?;
            let version = control_plane.client().await?.apiserver_version().await.map_err(ControlPlaneError::from)?;
            let node = NodeConfig {
                serving_cert_pem: serving.cert_pem,
                serving_key_pem: serving.key_pem,
                client_ca_pem: control_plane.pki().ca_pem().to_owned(),
                port: 0,
                kubelet_version: version.git_version,
            };
            let mut kubelet_options = KubeletOptions::new(control_plane.work_dir().join("kubelet"));
            kubelet_options.node_name = name;
            kubelet_options.insecure_registries.push(registry.host_port().to_owned());
            kubelet_options.insecure_registries.extend(options.insecure_registries);
            kubelet_options.api_server = Some(control_plane.addr());
            Some(Kubelet::start_node(client, kubelet_options, node).await?)
        } else {
            None
        };
        Ok(Self { kubelet, control_plane, registry })
    }

    /// The admin kubeconfig (absolute path).
    pub fn kubeconfig(&self) -> &Path {
        self.control_plane.kubeconfig()
    }

    /// An admin kube client (namespace `default`).
    pub async fn client(&self) -> Result<kube::Client, TestEnvError> {
        Ok(self.control_plane.client().await?)
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn kubelet(&self) -> Option<&Kubelet> {
        self.kubelet.as_ref()
    }
}

//! `TestEnv`: the whole stack for one test (or `alustan-testenv serve`): the API server with our
//! CRDs installed, a real registry, the process kubelet, and a kubeconfig that works for kubectl
//! and kube-rs. Every instance has its own ports and temp dirs, so tests run in parallel.
//!
//! The API server is the embedded one, or the real Kubernetes control plane when
//! `ALUSTAN_CONTROL_PLANE=real` (or [`TestEnvOptions::backend`]) says so: the same tests then
//! run against both.

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
    #[error("{BACKEND_ENV}={0:?}: expected `embedded` or `real`")]
    Backend(String),
}

/// Which API server a [`TestEnv`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// testenv's in-process API server with its Job controller (fast; the default).
    Embedded,
    /// The real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
    /// ([`crate::controlplane`]), the process kubelet as its Node: the judge where they differ.
    Real,
}

/// The environment variable that picks the backend of every [`TestEnv`] whose options do not:
/// `embedded` (default) or `real`.
pub const BACKEND_ENV: &str = "ALUSTAN_CONTROL_PLANE";

impl Backend {
    /// From [`BACKEND_ENV`]; unset or empty is [`Backend::Embedded`].
    pub fn from_env() -> Result<Self, TestEnvError> {
        Self::parse(&std::env::var(BACKEND_ENV).unwrap_or_default())
    }

    /// `embedded` (or empty) or `real`; anything else is an error naming [`BACKEND_ENV`], so a
    /// typo never silently runs the other backend.
    pub fn parse(value: &str) -> Result<Self, TestEnvError> {
        match value {
            "" | "embedded" => Ok(Self::Embedded),
            "real" => Ok(Self::Real),
            other => Err(TestEnvError::Backend(other.to_owned())),
        }
    }
}

/// How to start a [`TestEnv`].
#[derive(Debug, Clone)]
pub struct TestEnvOptions {
    /// `None`: from [`BACKEND_ENV`].
    pub backend: Option<Backend>,
    /// The embedded server's options; on the real one `port` and `tokens` apply (RBAC is
    /// always on there, and the admin is in `system:masters`).
    pub api: ApiServerOptions,
    /// The real control plane's options (its `port`, `work_dir`, `crds_dir` and `tokens` are
    /// taken from the fields of this struct).
    pub control_plane: ControlPlaneOptions,
    pub registry: RegistryOptions,
    /// CRDs to install (every `*.yaml` in it); the repository's `crds/` by default.
    pub crds_dir: Option<PathBuf>,
    /// Run the Job controller and process kubelet (on the real backend: the kubelet as a Node;
    /// the Job controller is the controller-manager's).
    pub kubelet: bool,
    /// Further `host:port`s the kubelet pulls from over plain HTTP (the env's registry always
    /// is one), e.g. a test's proxy in front of that registry.
    pub insecure_registries: Vec<String>,
    /// Where the kubeconfig and kubelet files go; a fresh temp dir when `None`.
    pub work_dir: Option<PathBuf>,
    /// The Node's name on the real backend.
    pub node_name: String,
}

impl Default for TestEnvOptions {
    fn default() -> Self {
        Self {
            backend: None,
            api: ApiServerOptions::default(),
            control_plane: ControlPlaneOptions::default(),
            registry: RegistryOptions::anonymous(),
            crds_dir: Some(repo_crds_dir()),
            kubelet: true,
            insecure_registries: Vec::new(),
            work_dir: None,
            node_name: "alustan-node".to_owned(),
        }
    }
}

/// The API server of a [`TestEnv`].
enum Server {
    Embedded(ApiServer),
    Real(Box<ControlPlane>),
}

/// A running environment; everything stops (processes killed, temp dirs removed) on drop.
pub struct TestEnv {
    // Drop order: the kubelet (and its containers) before the servers it talks to.
    kubelet: Option<Kubelet>,
    server: Server,
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

    /// The default stack on the real control plane, whatever [`BACKEND_ENV`] says.
    pub async fn start_real() -> Result<Self, TestEnvError> {
        Self::start_with(TestEnvOptions { backend: Some(Backend::Real), ..TestEnvOptions::default() }).await
    }

    pub async fn start_with(options: TestEnvOptions) -> Result<Self, TestEnvError> {
        let backend = match options.backend {
            Some(backend) => backend,
            None => Backend::from_env()?,
        };
        let (temp, work_dir) = if let Some(dir) = &options.work_dir {
            std::fs::create_dir_all(dir).map_err(TestEnvError::TempDir)?;
            (None, dir.clone())
        } else {
            let temp = tempfile::Builder::new().prefix("alustan-testenv-").tempdir().map_err(TestEnvError::TempDir)?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        };
        let registry = Registry::start(options.registry.clone()).await?;
        let mut insecure = vec![registry.host_port().to_owned()];
        insecure.extend(options.insecure_registries.iter().cloned());
        let (server, kubeconfig, kubelet) = match backend {
            Backend::Embedded => {
                let api = ApiServer::start(options.api).await?;
                if let Some(crds) = &options.crds_dir {
                    api.load_crds_from_dir(crds)?;
                }
                let kubeconfig = work_dir.join("kubeconfig");
                api.write_kubeconfig(&kubeconfig, "admin", None)?;
                let kubelet = if options.kubelet {
                    let mut kubelet_options = KubeletOptions::new(work_dir.join("kubelet"));
                    kubelet_options.insecure_registries = insecure;
                    kubelet_options.api_server = Some(api.addr());
                    Some(Kubelet::start(api.client()?, api.pod_logs().clone(), kubelet_options))
                } else {
                    None
                };
                (Server::Embedded(api), kubeconfig, kubelet)
            }
            Backend::Real => {
                let mut control_plane = options.control_plane;
                control_plane.port = options.api.port;
                control_plane.tokens = options.api.tokens;
                control_plane.crds_dir = options.crds_dir;
                control_plane.work_dir = Some(work_dir.join("control-plane"));
                let control_plane = ControlPlane::start_with(control_plane).await?;
                let kubelet = if options.kubelet {
                    Some(start_node(&control_plane, options.node_name, insecure).await?)
                } else {
                    None
                };
                let kubeconfig = control_plane.kubeconfig().to_path_buf();
                (Server::Real(Box::new(control_plane)), kubeconfig, kubelet)
            }
        };
        Ok(Self { kubelet, server, registry, kubeconfig, work_dir, _temp: temp })
    }

    pub fn backend(&self) -> Backend {
        match self.server {
            Server::Embedded(_) => Backend::Embedded,
            Server::Real(_) => Backend::Real,
        }
    }

    /// The admin kubeconfig (absolute path), for kubectl (`--kubeconfig`) and kube-rs.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for a named user authenticating with `token` (one of the options'
    /// `api.tokens`).
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> Result<PathBuf, TestEnvError> {
        match &self.server {
            Server::Embedded(api) => {
                let path = self.work_dir.join(format!("kubeconfig-{user}"));
                api.write_kubeconfig(&path, user, Some(token))?;
                Ok(path)
            }
            Server::Real(control_plane) => Ok(control_plane.kubeconfig_with_token(user, token)?),
        }
    }

    /// An admin kube client (namespace `default`).
    pub fn client(&self) -> Result<kube::Client, TestEnvError> {
        match &self.server {
            Server::Embedded(api) => Ok(api.client()?),
            Server::Real(control_plane) => Ok(control_plane.admin_client()?),
        }
    }

    /// A kube client sending no credentials (on the embedded server: its `anonymous` identity).
    pub fn anonymous_client(&self) -> Result<kube::Client, TestEnvError> {
        match &self.server {
            Server::Embedded(api) => Ok(api.client()?),
            Server::Real(control_plane) => Ok(control_plane.anonymous_client()?),
        }
    }

    /// A kube client authenticating with `token`.
    pub fn client_for(&self, token: &str) -> Result<kube::Client, TestEnvError> {
        match &self.server {
            Server::Embedded(api) => Ok(api.client_with_token(Some(token))?),
            Server::Real(control_plane) => Ok(control_plane.token_client(token)?),
        }
    }

    /// `http://127.0.0.1:PORT` (embedded) or `https://127.0.0.1:PORT` (real).
    pub fn server_url(&self) -> String {
        match &self.server {
            Server::Embedded(api) => api.base_url(),
            Server::Real(control_plane) => control_plane.server_url(),
        }
    }

    /// The embedded API server (its faults, pod logs and store), if that is the backend.
    pub fn embedded(&self) -> Option<&ApiServer> {
        match &self.server {
            Server::Embedded(api) => Some(api),
            Server::Real(_) => None,
        }
    }

    /// The real control plane, if that is the backend.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match &self.server {
            Server::Embedded(_) => None,
            Server::Real(control_plane) => Some(control_plane),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn kubelet(&self) -> Option<&Kubelet> {
        self.kubelet.as_ref()
    }

    /// Every request the API server answered so far (the real one's from its audit log; a
    /// log that cannot be read is an empty one, and says so on stderr).
    pub fn requests(&self) -> RequestLog {
        match &self.server {
            Server::Embedded(api) => api.requests().clone(),
            Server::Real(control_plane) => control_plane.requests().unwrap_or_else(|error| {
                eprintln!("testenv: cannot read the audit log: {error}");
                RequestLog::default()
            }),
        }
    }

    /// The embedded server's fault injection (`None` on the real backend).
    pub fn faults(&self) -> Option<&Faults> {
        self.embedded().map(ApiServer::faults)
    }

    /// The environment's own directory (kubeconfigs, kubelet files).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

/// The process kubelet as a Node of `control_plane`: its identity `system:node:NAME`, a serving
/// certificate of the cluster's CA for the API server's log requests.
async fn start_node(
    control_plane: &ControlPlane,
    name: String,
    insecure: Vec<String>,
) -> Result<Kubelet, TestEnvError> {
    let identity = format!("system:node:{name}");
    let client = control_plane.client_for(&identity, &["system:nodes"]).await?;
    let serving =
        control_plane.pki().serving_cert(&identity, &[std::net::IpAddr::from([127, 0, 0, 1])], &[name.as_str()])?;
    let version = control_plane.admin_client()?.apiserver_version().await.map_err(ControlPlaneError::from)?;
    let node = NodeConfig {
        serving_cert_pem: serving.cert_pem,
        serving_key_pem: serving.key_pem,
        client_ca_pem: control_plane.pki().ca_pem().to_owned(),
        port: 0,
        kubelet_version: version.git_version,
    };
    let mut kubelet_options = KubeletOptions::new(control_plane.work_dir().join("kubelet"));
    kubelet_options.node_name = name;
    kubelet_options.insecure_registries = insecure;
    kubelet_options.api_server = Some(control_plane.addr());
    Ok(Kubelet::start_node(client, kubelet_options, node).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_switch_accepts_embedded_and_real_and_names_itself_in_a_typo() {
        assert_eq!(Backend::parse("").unwrap(), Backend::Embedded);
        assert_eq!(Backend::parse("embedded").unwrap(), Backend::Embedded);
        assert_eq!(Backend::parse("real").unwrap(), Backend::Real);
        let error = Backend::parse("Real").unwrap_err().to_string();
        assert_eq!(error, r#"ALUSTAN_CONTROL_PLANE="Real": expected `embedded` or `real`"#);
    }
}

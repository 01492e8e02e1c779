//! The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler, built from the Go modules pinned in `testenv/controlplane/` (see its
//! `build.sh`; nothing of Kubernetes is copied into this repository).
//!
//! Every [`ControlPlane`] has its own CA, serving and client certificates, service-account
//! keys, free loopback ports and an etcd data dir in a temp dir. The API server runs with
//! `--authorization-mode=Node,RBAC` and X.509 client-certificate authentication, so
//! [`ControlPlane::kubeconfig_for`] mints a kubeconfig for any user and groups (for RBAC
//! tests). The controller-manager runs every controller with per-controller service-account
//! credentials, and the scheduler binds Pods to Nodes. Everything is killed (process groups)
//! and removed on drop.
//!
//! The binaries come from `ALUSTAN_CONTROLPLANE_BIN` (a directory) when set, else from
//! `build.sh`, which builds them once into `~/.cache/alustan/controlplane/<version>/bin`.

mod audit;
mod pki;
mod process;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

pub use pki::{CertPair, Pki, PkiFiles};
use process::Process;

use crate::apiserver::{RequestLog, UserInfo};
use crate::harness::repo_crds_dir;

/// The Service CIDR given to the API server and controller-manager; the `kubernetes`
/// Service gets its first address.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";
const KUBERNETES_SERVICE_IP: [u8; 4] = [10, 0, 0, 1];
/// The service-account token issuer (and default audience).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Env var naming a directory with the four binaries, instead of running `build.sh`.
pub const BIN_DIR_ENV: &str = "ALUSTAN_CONTROLPLANE_BIN";
const POLL: Duration = Duration::from_millis(100);
/// Tries with fresh ports when a port found free was taken before a process bound it.
const START_ATTEMPTS: u32 = 3;

/// Errors starting or using the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(
        "building the control plane with {script} failed ({status}); see its output above (it needs Go >= 1.24 and the Go module proxy)"
    )]
    Build { script: PathBuf, status: ExitStatus },
    #[error("cannot run {script}: {source}")]
    BuildSpawn { script: PathBuf, source: std::io::Error },
    #[error("{binary} is missing: run testenv/controlplane/build.sh (or `make controlplane`), or set {BIN_DIR_ENV}")]
    Missing { binary: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("starting {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("{component} exited ({status}); the end of its log, {log}")]
    Exited { component: &'static str, status: ExitStatus, log: String },
    #[error("{what} did not happen within {waited:?}; {detail}")]
    Timeout { what: String, waited: Duration, detail: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("building a request: {0}")]
    Http(#[from] http::Error),
    #[error("CRD file {path}: {message}")]
    Crd { path: PathBuf, message: String },
}

impl ControlPlaneError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// The directory with `etcd`, `kube-apiserver`, `kube-controller-manager` and
    /// `kube-scheduler`; `None`: [`BIN_DIR_ENV`], else built (cached) by `build.sh`.
    pub bin_dir: Option<PathBuf>,
    /// An etcd binary other than the one in `bin_dir` (e.g. Debian's `/usr/bin/etcd`).
    pub etcd: Option<PathBuf>,
    /// Where certificates, kubeconfigs, logs and etcd's data go; a fresh temp dir when `None`.
    pub work_dir: Option<PathBuf>,
    /// CRDs to install (every `*.yaml` in it), waited for until Established; the repository's
    /// `crds/` by default.
    pub crds_dir: Option<PathBuf>,
    /// Run kube-controller-manager and kube-scheduler (and wait until they lead).
    pub controllers: bool,
    /// The API server's port on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// Static bearer tokens and who they authenticate as (`--token-auth-file`), as the embedded
    /// server's `tokens`: a test's named identities, e.g. the agent's ServiceAccount.
    pub tokens: Vec<(String, UserInfo)>,
    /// Further kube-apiserver flags.
    pub apiserver_args: Vec<String>,
    /// How long start-up may take (the first start on a busy 2-core machine is slow).
    pub startup_timeout: Duration,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            bin_dir: None,
            etcd: None,
            work_dir: None,
            crds_dir: Some(repo_crds_dir()),
            controllers: true,
            port: 0,
            tokens: Vec::new(),
            apiserver_args: Vec::new(),
            startup_timeout: Duration::from_secs(180),
        }
    }
}

/// A running control plane; stops (process groups killed, temp dir removed) on drop.
pub struct ControlPlane {
    /// Started in order etcd, apiserver, controller-manager, scheduler; stopped in reverse.
    processes: Vec<Process>,
    pki: Pki,
    /// The admin's client certificate, minted once at start (its kubeconfig holds it too).
    admin: CertPair,
    files: PkiFiles,
    addr: SocketAddr,
    etcd_url: String,
    kubeconfig: PathBuf,
    work_dir: PathBuf,
    started_in: Duration,
    _temp: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts the default control plane (controllers on, our CRDs installed).
    pub async fn start() -> Result<Self, ControlPlaneError> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    pub async fn start_with(options: ControlPlaneOptions) -> Result<Self, ControlPlaneError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let begin = Instant::now();
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => binaries().await?,
        };
        let binary = |name: &str| -> Result<PathBuf, ControlPlaneError> {
            let path = bin_dir.join(name);
            if path.is_file() { Ok(path) } else { Err(ControlPlaneError::Missing { binary: path }) }
        };
        let etcd_binary = match &options.etcd {
            Some(path) => path.clone(),
            None => binary("etcd")?,
        };
        let apiserver_binary = binary("kube-apiserver")?;
        let (temp, work_dir) = if let Some(dir) = &options.work_dir {
            std::fs::create_dir_all(dir).map_err(|source| ControlPlaneError::io(dir, source))?;
            (None, dir.clone())
        } else {
            let temp = tempfile::Builder::new()
                .prefix("alustan-controlplane-")
                .tempdir()
                .map_err(|source| ControlPlaneError::io(&std::env::temp_dir(), source))?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        };
        let pki = Pki::generate(IpAddr::from(KUBERNETES_SERVICE_IP))?;
        let files = pki.write(&work_dir.join("pki"))?;
        let kubeconfig = work_dir.join("kubeconfig");
        let admin = pki.client_cert("admin", &["system:masters"])?;
        let deadline = begin + options.startup_timeout;
        let mut extra_args = audit::apiserver_flags(&work_dir)?;
        extra_args.push(format!("--token-auth-file={}", write_tokens(&work_dir, &options.tokens)?.display()));
        extra_args.extend(options.apiserver_args.iter().cloned());

        let mut attempt = 0;
        let (processes, addr, etcd_url) = loop {
            attempt += 1;
            let ports = free_ports(3, options.port)?;
            let (client_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);
            let etcd_url = format!("http://127.0.0.1:{client_port}");
            let addr = SocketAddr::from(([127, 0, 0, 1], api_port));
            write_kubeconfig(&kubeconfig, &format!("https://{addr}"), pki.ca_pem(), "admin", &admin)?;
            let mut processes = vec![start_etcd(&etcd_binary, &work_dir, client_port, peer_port)?];
            let args = apiserver_args(&files, &work_dir, addr, &etcd_url, &extra_args);
            let log = work_dir.join("kube-apiserver.log");
            processes.push(Process::spawn("kube-apiserver", &apiserver_binary, &args, log)?);
            match wait_ready(&mut processes, &kubeconfig, begin, deadline).await {
                Ok(()) => break (processes, addr, etcd_url),
                Err(error) if options.port == 0 && attempt < START_ATTEMPTS && is_port_clash(&error) => {
                    // Another process took a port between our check and the bind: new ports.
                    drop(processes);
                    let _ = std::fs::remove_dir_all(work_dir.join("etcd"));
                }
                Err(error) => return Err(error),
            }
        };
        let mut control_plane = Self {
            processes,
            pki,
            admin,
            files,
            addr,
            etcd_url,
            kubeconfig,
            work_dir,
            started_in: Duration::ZERO,
            _temp: temp,
        };
        if options.controllers {
            control_plane.start_controllers(&binary("kube-controller-manager")?, &binary("kube-scheduler")?)?;
        }
        control_plane.finish_start(&options, begin, deadline).await?;
        control_plane.started_in = begin.elapsed();
        Ok(control_plane)
    }

    fn start_controllers(&mut self, controller_manager: &Path, scheduler: &Path) -> Result<(), ControlPlaneError> {
        let files = &self.files;
        let path = |p: &Path| p.display().to_string();
        let kcm_kubeconfig = self.work_dir.join("controller-manager.kubeconfig");
        write_kubeconfig(
            &kcm_kubeconfig,
            &self.server_url(),
            self.pki.ca_pem(),
            "system:kube-controller-manager",
            &self.pki.client_cert("system:kube-controller-manager", &[])?,
        )?;
        let args = [
            format!("--kubeconfig={}", path(&kcm_kubeconfig)),
            "--bind-address=127.0.0.1".to_owned(),
            "--secure-port=0".to_owned(),
            "--controllers=*".to_owned(),
            "--use-service-account-credentials=true".to_owned(),
            format!("--root-ca-file={}", path(&files.ca_cert)),
            format!("--service-account-private-key-file={}", path(&files.service_account_private)),
            format!("--cluster-signing-cert-file={}", path(&files.ca_cert)),
            format!("--cluster-signing-key-file={}", path(&files.ca_key)),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--profiling=false".to_owned(),
        ];
        let log = self.work_dir.join("kube-controller-manager.log");
        self.processes.push(Process::spawn("kube-controller-manager", controller_manager, &args, log)?);

        let scheduler_kubeconfig = self.work_dir.join("scheduler.kubeconfig");
        write_kubeconfig(
            &scheduler_kubeconfig,
            &self.server_url(),
            self.pki.ca_pem(),
            "system:kube-scheduler",
            &self.pki.client_cert("system:kube-scheduler", &[])?,
        )?;
        let args = [
            format!("--kubeconfig={}", path(&scheduler_kubeconfig)),
            "--bind-address=127.0.0.1".to_owned(),
            "--secure-port=0".to_owned(),
            "--profiling=false".to_owned(),
        ];
        let log = self.work_dir.join("kube-scheduler.log");
        self.processes.push(Process::spawn("kube-scheduler", scheduler, &args, log)?);
        Ok(())
    }

    /// CRDs Established; with controllers: both lead (their Leases) and the `default`
    /// ServiceAccount exists (Pods cannot be created before it).
    async fn finish_start(
        &mut self,
        options: &ControlPlaneOptions,
        begin: Instant,
        deadline: Instant,
    ) -> Result<(), ControlPlaneError> {
        let client = self.client().await?;
        if let Some(dir) = &options.crds_dir {
            install_crds(&client, dir).await?;
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            loop {
                let list = crds.list(&kube::api::ListParams::default()).await?;
                let waiting: Vec<String> = list
                    .items
                    .iter()
                    .filter(|crd| !is_established(crd))
                    .filter_map(|crd| crd.metadata.name.clone())
                    .collect();
                if waiting.is_empty() {
                    break;
                }
                check_running(&mut self.processes)?;
                if Instant::now() > deadline {
                    return Err(timeout(&self.processes, "the CRDs becoming Established", begin, &waiting.join(", ")));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        if !options.controllers {
            return Ok(());
        }
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        loop {
            let mut missing = Vec::new();
            for lease in ["kube-controller-manager", "kube-scheduler"] {
                let held = leases.get_opt(lease).await?.and_then(|l| l.spec).and_then(|s| s.holder_identity);
                if held.is_none() {
                    missing.push(format!("Lease kube-system/{lease}"));
                }
            }
            if accounts.get_opt("default").await?.is_none() {
                missing.push("ServiceAccount default/default".to_owned());
            }
            if missing.is_empty() {
                return Ok(());
            }
            check_running(&mut self.processes)?;
            if Instant::now() > deadline {
                let missing = format!("still missing: {}", missing.join(", "));
                return Err(timeout(&self.processes, "the controllers starting", begin, &missing));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The admin kubeconfig (user `admin` in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// An admin kube client (namespace `default`).
    pub async fn client(&self) -> Result<kube::Client, ControlPlaneError> {
        client_from(&self.kubeconfig).await
    }

    /// Writes (and returns the path of) a kubeconfig for `user` in `groups`, authenticating
    /// with a client certificate of our CA: what RBAC then allows is up to the test.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf, ControlPlaneError> {
        let path = self.work_dir.join(format!("kubeconfig-{}", file_name(user)));
        write_kubeconfig(&path, &self.server_url(), self.pki.ca_pem(), user, &self.pki.client_cert(user, groups)?)?;
        Ok(path)
    }

    /// A kube client for `user` in `groups` (see [`Self::kubeconfig_for`]).
    pub async fn client_for(&self, user: &str, groups: &[&str]) -> Result<kube::Client, ControlPlaneError> {
        client_from(&self.kubeconfig_for(user, groups)?).await
    }

    /// Writes (and returns the path of) a kubeconfig for `user` authenticating with `token`, one
    /// of [`ControlPlaneOptions::tokens`].
    pub fn kubeconfig_with_token(&self, user: &str, token: &str) -> Result<PathBuf, ControlPlaneError> {
        let path = self.work_dir.join(format!("kubeconfig-{}", file_name(user)));
        let auth = json!({"token": token});
        write_kubeconfig_with(&path, &self.server_url(), self.pki.ca_pem(), user, &auth)?;
        Ok(path)
    }

    /// An admin kube client (namespace `default`), made without awaiting anything.
    pub fn admin_client(&self) -> Result<kube::Client, ControlPlaneError> {
        self.client_with(&json!({
            "client-certificate-data": base64::engine::general_purpose::STANDARD.encode(&self.admin.cert_pem),
            "client-key-data": base64::engine::general_purpose::STANDARD.encode(&self.admin.key_pem),
        }))
    }

    /// A kube client authenticating with `token` (namespace `default`).
    pub fn token_client(&self, token: &str) -> Result<kube::Client, ControlPlaneError> {
        self.client_with(&json!({"token": token}))
    }

    /// A kube client sending no credentials: `system:anonymous` to the API server.
    pub fn anonymous_client(&self) -> Result<kube::Client, ControlPlaneError> {
        self.client_with(&json!({}))
    }

    /// A client trusting our CA with `auth` (a kubeconfig `user` entry).
    fn client_with(&self, auth: &serde_json::Value) -> Result<kube::Client, ControlPlaneError> {
        let error = |message: String| ControlPlaneError::Kubeconfig { path: self.kubeconfig.clone(), message };
        let url = self.server_url().parse().map_err(|e: http::uri::InvalidUri| error(e.to_string()))?;
        let mut config = kube::Config::new(url);
        "default".clone_into(&mut config.default_namespace);
        config.root_cert = Some(vec![self.pki.ca_der().to_vec()]);
        config.auth_info = serde_json::from_value(auth.clone()).map_err(|e| error(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| error(e.to_string()))
    }

    /// Every request the API server answered so far, from its audit log (see `audit.rs`).
    pub fn requests(&self) -> Result<RequestLog, ControlPlaneError> {
        audit::requests(&self.work_dir)
    }

    /// The CA and the means to mint more certificates (for a node's kubelet).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The files the processes read (CA, keys).
    pub fn pki_files(&self) -> &PkiFiles {
        &self.files
    }

    /// The directory with the kubeconfigs, certificates, logs and etcd's data.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The log file of a component (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler`).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.work_dir.join(format!("{component}.log"))
    }

    /// How long [`Self::start_with`] took, binaries already built.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The running processes' ids (component, pid), in start order.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes.iter().map(|p| (p.name, p.pid())).collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
    }
}

/// The directory with the binaries: [`BIN_DIR_ENV`] or `build.sh`'s cache (built if needed;
/// its progress goes to stderr).
pub async fn binaries() -> Result<PathBuf, ControlPlaneError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane").join("build.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|source| ControlPlaneError::BuildSpawn { script: script.clone(), source })?;
    if !output.status.success() {
        return Err(ControlPlaneError::Build { script, status: output.status });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    Ok(PathBuf::from(dir))
}

fn apiserver_args(
    files: &PkiFiles,
    work_dir: &Path,
    addr: SocketAddr,
    etcd_url: &str,
    extra: &[String],
) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut args = vec![
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        // The `kubernetes` Service's Endpoints may not hold a loopback address (the API server
        // logs that error every 10 s otherwise); nothing here routes through the Service.
        "--endpoint-reconciler-type=none".to_owned(),
        format!("--secure-port={}", addr.port()),
        format!("--etcd-servers={etcd_url}"),
        format!("--tls-cert-file={}", path(&files.serving_cert)),
        format!("--tls-private-key-file={}", path(&files.serving_key)),
        format!("--client-ca-file={}", path(&files.ca_cert)),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!("--service-account-key-file={}", path(&files.service_account_public)),
        format!("--service-account-signing-key-file={}", path(&files.service_account_private)),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--authorization-mode=Node,RBAC".to_owned(),
        "--enable-admission-plugins=NodeRestriction".to_owned(),
        "--allow-privileged=true".to_owned(),
        // Pod logs, exec and attach: the API server calls the Node's kubelet over TLS, checking
        // its serving certificate against our CA.
        format!("--kubelet-client-certificate={}", path(&files.kubelet_client_cert)),
        format!("--kubelet-client-key={}", path(&files.kubelet_client_key)),
        format!("--kubelet-certificate-authority={}", path(&files.ca_cert)),
        "--kubelet-preferred-address-types=InternalIP".to_owned(),
        format!("--cert-dir={}", path(&work_dir.join("apiserver-certs"))),
        "--profiling=false".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// Waits until `/readyz` answers `ok`: etcd reached, the RBAC bootstrap policy and every
/// post-start hook done.
async fn wait_ready(
    processes: &mut [Process],
    kubeconfig: &Path,
    begin: Instant,
    deadline: Instant,
) -> Result<(), ControlPlaneError> {
    let client = client_from(kubeconfig).await?;
    loop {
        check_running(processes)?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        let last = match client.request_text(request).await {
            Ok(body) if body == "ok" => return Ok(()),
            Ok(body) => body,
            Err(error) => error.to_string(),
        };
        if Instant::now() > deadline {
            return Err(timeout(processes, "kube-apiserver's /readyz answering ok", begin, &last));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn check_running(processes: &mut [Process]) -> Result<(), ControlPlaneError> {
    for process in processes {
        if let Some(status) = process.exited() {
            return Err(process.exited_error(status));
        }
    }
    Ok(())
}

fn timeout(processes: &[Process], what: &str, begin: Instant, last: &str) -> ControlPlaneError {
    let logs: Vec<String> = processes.iter().map(|p| process::log_tail(&p.log)).collect();
    ControlPlaneError::Timeout {
        what: what.to_owned(),
        waited: begin.elapsed(),
        detail: format!("last answer: {last}\n{}", logs.join("\n")),
    }
}

fn start_etcd(binary: &Path, work_dir: &Path, client_port: u16, peer_port: u16) -> Result<Process, ControlPlaneError> {
    let data = work_dir.join("etcd");
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut args = vec![
        "--name=testenv".to_owned(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=testenv={peer}"),
        "--log-level=warn".to_owned(),
    ];
    // A test cluster's data dies with it: no fsync keeps it fast on busy disks (etcd >= 3.5;
    // Debian's 3.4 does not know the flag).
    if !etcd_version(binary).is_some_and(|v| v.starts_with("3.4.")) {
        args.push("--unsafe-no-fsync=true".to_owned());
    }
    Process::spawn("etcd", binary, args, work_dir.join("etcd.log"))
}

/// `3.6.4` from `etcd --version` (`etcd Version: 3.6.4`).
fn etcd_version(binary: &Path) -> Option<String> {
    let output = std::process::Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find_map(|line| line.strip_prefix("etcd Version:"))?;
    Some(line.trim().to_owned())
}

fn is_port_clash(error: &ControlPlaneError) -> bool {
    matches!(error, ControlPlaneError::Exited { log, .. } if log.contains("address already in use"))
}

/// `n` distinct free loopback ports (found by binding port 0; the last one is `fixed` if not 0).
fn free_ports(n: usize, fixed: u16) -> Result<Vec<u16>, ControlPlaneError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ControlPlaneError::io(Path::new("127.0.0.1:0"), source))?;
    let mut ports = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ControlPlaneError::io(Path::new("127.0.0.1:0"), source))?;
    if fixed != 0
        && let Some(last) = ports.last_mut()
    {
        *last = fixed;
    }
    Ok(ports)
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
}

/// Creates every CRD in the YAML files of `dir` (multi-document files allowed).
async fn install_crds(client: &kube::Client, dir: &Path) -> Result<usize, ControlPlaneError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ControlPlaneError::io(dir, source))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut created = 0;
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ControlPlaneError::io(&path, source))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_json::Value as serde::Deserialize>::deserialize(document)
                .map_err(|e| ControlPlaneError::Crd { path: path.clone(), message: e.to_string() })?;
            if value.get("kind").and_then(serde_json::Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_value(value)
                .map_err(|e| ControlPlaneError::Crd { path: path.clone(), message: e.to_string() })?;
            crds.create(&PostParams::default(), &crd).await?;
            created += 1;
        }
    }
    Ok(created)
}

/// A kubeconfig with the CA, one client certificate user and a context in `default`.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert: &CertPair,
) -> Result<(), ControlPlaneError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = json!({"client-certificate-data": b64(&cert.cert_pem), "client-key-data": b64(&cert.key_pem)});
    write_kubeconfig_with(path, server, ca_pem, user, &auth)
}

/// A kubeconfig with the CA, `user` authenticating with `auth` and a context in `default`.
fn write_kubeconfig_with(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    auth: &serde_json::Value,
) -> Result<(), ControlPlaneError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "alustan-real", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "alustan-real", "context": {"cluster": "alustan-real", "user": user, "namespace": "default"}}],
        "current-context": "alustan-real",
        "preferences": {},
    });
    let text = serde_yaml::to_string(&doc)
        .map_err(|e| ControlPlaneError::Kubeconfig { path: path.to_path_buf(), message: e.to_string() })?;
    std::fs::write(path, text).map_err(|source| ControlPlaneError::io(path, source))
}

/// A user name as a file name.
fn file_name(user: &str) -> String {
    user.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The static token file: `token,user,uid,"group,group"` per line.
fn write_tokens(dir: &Path, tokens: &[(String, UserInfo)]) -> Result<PathBuf, ControlPlaneError> {
    let path = dir.join("tokens.csv");
    let lines: Vec<String> = tokens
        .iter()
        .map(|(token, user)| format!("{token},{},{},\"{}\"", user.name, user.name, user.groups.join(",")))
        .collect();
    std::fs::write(&path, lines.join("\n")).map_err(|source| ControlPlaneError::io(&path, source))?;
    Ok(path)
}

async fn client_from(path: &Path) -> Result<kube::Client, ControlPlaneError> {
    let kubeconfig_error = |message: String| ControlPlaneError::Kubeconfig { path: path.to_path_buf(), message };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| kubeconfig_error(e.to_string()))
}

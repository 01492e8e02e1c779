//! Shared set-up of the end-to-end tests: a `TestEnv`, an IaC image pushed to its registry, the
//! agent's controller running in-process, and waiting helpers.
//!
//! The API server enforces RBAC: the controller authenticates as the Helm chart's ServiceAccount,
//! bound to the chart's rendered `ClusterRole` and lease `Role`, so every test also proves the chart
//! grants what the agent needs. The test code itself (creating resources, reading status) is admin.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alustan_agent::Context;
use alustan_agent::config::Config;
use alustan_shared::{RegistryProvider, Terraform};
use alustan_testenv::apiserver::{ApiServerOptions, UserInfo};
use alustan_testenv::registry::ImageConfig;
use alustan_testenv::{TestEnv, TestEnvOptions};
use clap::Parser as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};

pub const REPO: &str = "alustan/infrastructure";

pub struct Agent {
    pub env: TestEnv,
    /// Admin: for the test's own reads and writes.
    pub client: Client,
    /// The chart's ServiceAccount: the controller's identity.
    controller_client: Client,
    pub terraforms: Api<Terraform>,
    pub jobs: Api<Job>,
    pub image_name: String,
    config: Config,
    /// `http://127.0.0.1:PORT` of the agent's `/metrics`, `/healthz` and `/readyz`.
    pub metrics_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _image: tempfile::TempDir,
    /// Paths under which a 403 is the test's point, not an RBAC gap (a namespace being deleted
    /// refuses new objects with 403 too).
    forbidden_expected: std::sync::Mutex<Vec<String>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // The agent may tolerate a refused request (e.g. an optional read), so a missing rule
        // could pass unnoticed: any 403 the controller got fails the test.
        if !std::thread::panicking() {
            let refused: Vec<String> = self
                .env
                .requests()
                .records()
                .into_iter()
                .filter(|r| r.status == 403 && r.user.starts_with("system:serviceaccount:"))
                .filter(|r| {
                    let expected = self.forbidden_expected.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    !expected.iter().any(|prefix| r.path.starts_with(prefix))
                })
                .map(|r| format!("{} {}/{}/{} {}", r.verb, r.group, r.resource, r.subresource, r.path))
                .collect();
            assert!(
                refused.is_empty(),
                "the Helm chart's RBAC refused the agent (add a rule with its reason to charts/alustan/templates/rbac.yaml, or fix the agent if it should not do this): {refused:#?}"
            );
        }
    }
}

/// Runs a controller with a fresh `Context` (its own scanner cache), as a new process would.
async fn spawn(
    client: &Client,
    config: &Config,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>, String) {
    let ctx = Arc::new(Context::new(client.clone(), config.clone()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(alustan_agent::metrics::serve(listener, Arc::clone(&ctx)));
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(alustan_agent::run(ctx, async move {
        let _ = stopped.await;
    }));
    (stop, task, metrics_url)
}

/// The bearer token of the controller's client, authenticating as the chart's ServiceAccount.
const AGENT_TOKEN: &str = "alustan-agent-e2e";

/// The chart's RBAC objects, rendered once per test binary.
struct ChartRbac {
    objects: Vec<serde_json::Value>,
    namespace: String,
    service_account: String,
}

static CHART_RBAC: tokio::sync::OnceCell<ChartRbac> = tokio::sync::OnceCell::const_new();

/// The chart's RBAC with its default values, rendered once per test binary.
async fn chart_rbac() -> &'static ChartRbac {
    CHART_RBAC.get_or_init(|| render_chart_rbac(None)).await
}

/// Renders the chart's `rbac` and `serviceaccount` templates with the real Helm engine
/// (`.ci/render_chart.py`, in the venv of `make deps`; `ALUSTAN_VENV` overrides its path),
/// with the Helm value `credentials` set to `credentials` (JSON) if given, as an install with
/// those sources would (the agent watches their Secrets by name).
async fn render_chart_rbac(credentials: Option<String>) -> ChartRbac {
    let venv = std::env::var_os("ALUSTAN_VENV").map_or_else(
        || Path::new(&std::env::var_os("HOME").expect("HOME is set")).join(".cache/alustan/venv"),
        std::path::PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: the RBAC-mode e2e tests render the Helm chart with helm-python-sdk; run `make deps` (or set ALUSTAN_VENV)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/render_chart.py");
    let values = tempfile::NamedTempFile::new().unwrap();
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script).args(["--show-only", "rbac", "--show-only", "serviceaccount", "--json"]);
    if let Some(credentials) = credentials {
        // JSON is YAML: `credentials: [...]`.
        std::fs::write(values.path(), format!("credentials: {credentials}\n")).unwrap();
        command.arg("--values").arg(values.path());
    }
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "rendering the chart's RBAC failed (try `make deps`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let account = objects.iter().find(|o| o["kind"] == "ServiceAccount").expect("the chart renders a ServiceAccount");
    let field = |name: &str| account["metadata"][name].as_str().unwrap().to_owned();
    ChartRbac { namespace: field("namespace"), service_account: field("name"), objects }
}

/// Creates (as admin) the release namespace and the chart's RBAC objects, as `helm install` would.
async fn apply_chart_rbac(admin: &Client, rbac: &ChartRbac) {
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": rbac.namespace}})).unwrap();
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    for object in &rbac.objects {
        let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        let types = object.types.clone().unwrap();
        let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &types.kind));
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(namespace) => Api::namespaced_with(admin.clone(), namespace, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        api.create(&PostParams::default(), &object).await.unwrap();
    }
}

impl Agent {
    /// Kills the controller abruptly (as a crash would) and starts a new one.
    pub async fn restart(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let (stop, task, metrics_url) = spawn(&self.controller_client, &self.config).await;
        self.metrics_url = metrics_url;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Starts a `TestEnv`, pushes an image with `scripts` (name, body) as v1.0.0, v1.0.1 and
    /// v2.0.0, and runs the controller with fast retries.
    pub async fn start(scripts: &[(&str, &str)]) -> Self {
        Self::start_with(scripts, &[], |_| {}).await
    }

    /// As [`Agent::start`], with `extra_registries` (`host:port`, e.g. a proxy in front of the
    /// env's registry) reached over plain HTTP by the agent and the kubelet, and `configure`
    /// adjusting the agent's configuration before it starts.
    pub async fn start_with(
        scripts: &[(&str, &str)],
        extra_registries: &[String],
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        alustan_agent::registry::install_crypto_provider();
        let rbac = chart_rbac().await;
        let api = ApiServerOptions {
            rbac: true,
            tokens: vec![(AGENT_TOKEN.into(), UserInfo::service_account(&rbac.namespace, &rbac.service_account))],
            ..ApiServerOptions::default()
        };
        let options =
            TestEnvOptions { api, insecure_registries: extra_registries.to_vec(), ..TestEnvOptions::default() };
        let env = TestEnv::start_with(options).await.unwrap();
        let image = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = image.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let image_config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
        env.registry().push_dir(REPO, &["v1.0.0", "v1.0.1", "v2.0.0"], image.path(), &image_config).await.unwrap();
        let host = env.registry().host_port().to_owned();
        let mut config = Config::parse_from([
            "alustan-agent",
            "--insecure-registry",
            &host,
            "--sync-interval",
            "1h",
            "--retry-base",
            "1s",
            "--retry-max",
            "2s",
            "--retry-attempts",
            "2",
        ]);
        config.insecure_registries.extend(extra_registries.iter().cloned());
        configure(&mut config);
        let client = env.client().unwrap();
        match &config.credential_sources {
            Some(sources) => apply_chart_rbac(&client, &render_chart_rbac(Some(sources.clone())).await).await,
            None => apply_chart_rbac(&client, rbac).await,
        }
        let controller_client = env.client_for(AGENT_TOKEN).unwrap();
        alustan_agent::check_crd(&controller_client).await.unwrap();
        let (stop, task, metrics_url) = spawn(&controller_client, &config).await;
        Self {
            metrics_url,
            config,
            controller_client,
            terraforms: Api::namespaced(client.clone(), "default"),
            jobs: Api::namespaced(client.clone(), "default"),
            client,
            env,
            image_name: format!("{host}/{REPO}"),
            stop: Some(stop),
            task: Some(task),
            _image: image,
            forbidden_expected: std::sync::Mutex::default(),
        }
    }

    /// The original example CR, pointed at the env's registry.
    pub fn example(&self) -> Terraform {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/staging-cluster.yaml"))
                .unwrap();
        let mut tf: Terraform = serde_yaml::from_str(&text).unwrap();
        tf.metadata.namespace = Some("default".into());
        tf.spec.container_registry.image_name.clone_from(&self.image_name);
        // `docker` names Docker Hub; the env's registry is any OCI registry.
        tf.spec.container_registry.provider = Some(RegistryProvider::Oci);
        // Its postDeploy.args name two variables the original never defined: the agent refuses
        // that before any run, so every test starts from the example with them defined.
        tf.spec.variables.insert("TF_VAR_workspace".into(), "staging".into());
        tf.spec.variables.insert("TF_VAR_region".into(), "eu-west-1".into());
        tf
    }

    #[allow(dead_code)] // used by the failure tests only
    /// Requests under `path_prefix` may be refused with 403 without failing the RBAC check.
    pub fn expect_forbidden(&self, path_prefix: &str) {
        self.forbidden_expected.lock().unwrap().push(path_prefix.to_owned());
    }

    pub async fn create(&self, tf: &Terraform) {
        self.terraforms.create(&PostParams::default(), tf).await.unwrap();
    }

    /// Polls (test side only) until `check` holds; panics with the last state after 60 s.
    pub async fn wait_for(&self, name: &str, what: &str, check: impl Fn(&Terraform) -> bool) -> Terraform {
        let start = Instant::now();
        loop {
            let tf = self.terraforms.get(name).await.unwrap();
            if check(&tf) {
                return tf;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}: {:#?}", tf.status);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_gone(&self, name: &str) {
        let start = Instant::now();
        while let Some(tf) = self.terraforms.get_opt(name).await.unwrap() {
            assert!(start.elapsed() < Duration::from_secs(60), "{name} was not released: {:#?}", tf.status);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn job_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        names.sort();
        names
    }

    /// (reason, message) of the Events about `name`, oldest first.
    pub async fn event_reasons(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), "default");
        let mut events: Vec<_> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events.into_iter().map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default())).collect()
    }

    /// Pushes a different image (so a different digest) as `tag`.
    pub async fn push_other(&self, tag: &str, scripts: &[(&str, &str)]) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
        self.env.registry().push_dir(REPO, &[tag], dir.path(), &config).await.unwrap();
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[allow(dead_code)] // each test binary uses some of the helpers
impl Agent {
    /// Warning Events about `name` with `reason`, as (note, count) oldest first; `count` folds
    /// in the repeats the recorder aggregated into an event series.
    pub async fn warnings(&self, name: &str, reason: &str) -> Vec<(String, i32)> {
        let events = self.events_about(name, reason).await;
        let warnings = events.into_iter().filter(|e| e.type_.as_deref() == Some("Warning"));
        warnings.map(|e| (e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count))).collect()
    }

    /// The `events.k8s.io` Events about `name` with `reason`, oldest first.
    pub async fn events_about(&self, name: &str, reason: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), "default");
        let mut events: Vec<_> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
    }
}

/// A controller run with leader election (`run_with_leader_election`), as one replica.
#[allow(dead_code)] // used by the leader-election tests only
pub struct Elected {
    pub identity: String,
    pub metrics_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), alustan_agent::leader::LeaderError>>,
}

#[allow(dead_code)]
impl Elected {
    /// SIGTERM: stops the controller, then releases the Lease.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Elected {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(dead_code)] // the leader-election tests
impl Agent {
    /// Ends the controller `start_with` runs without election (before any resource exists, so
    /// nothing is in flight), and waits until it has.
    pub async fn stop_unelected(&mut self) {
        self.stop = None;
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The Lease name and namespace the chart's Role allows (its release namespace).
    pub async fn lease_location() -> (String, String) {
        ("alustan-agent".into(), chart_rbac().await.namespace.clone())
    }

    /// Starts the `alustan-agent` binary as the chart's ServiceAccount, with the in-process
    /// controller's settings and without leader election, logging to `log`; killed on drop.
    pub fn spawn_binary(&self, log: &Path) -> tokio::process::Child {
        let kubeconfig = self.env.kubeconfig_for("alustan-agent", AGENT_TOKEN).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-agent"));
        command.env("KUBECONFIG", kubeconfig).env_remove("LOG_LEVEL");
        for registry in &self.config.insecure_registries {
            command.args(["--insecure-registry", registry]);
        }
        command
            .args(["--sync-interval", "1h", "--retry-base", "1s", "--retry-max", "2s", "--retry-attempts", "2"])
            .args(["--leader-elect=false", "--metrics-addr", "127.0.0.1:0"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Starts one more replica with leader election on the chart's Lease, as `identity`.
    pub async fn spawn_elected(&self, identity: &str) -> Elected {
        let ctx = Arc::new(Context::new(self.controller_client.clone(), self.config.clone()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(alustan_agent::metrics::serve(listener, Arc::clone(&ctx)));
        ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        let (name, namespace) = Self::lease_location().await;
        let election = alustan_agent::leader::ElectionConfig::new(&name, &namespace, identity);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(alustan_agent::run_with_leader_election(ctx, election, async move {
            let _ = stopped.await;
        }));
        Elected { identity: identity.to_owned(), metrics_url, stop: Some(stop), task }
    }
}

//! What every reconcile shares: the client, the registry scanner (and the channel its
//! background scans wake resources through), the configuration, the Event recorder, the
//! metrics and the per-resource memory (last status written, failure streaks).

use std::sync::{Mutex, PoisonError};

use alustan_shared::Terraform;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::config::Config;
use crate::error::StartupError;
use crate::metrics::Metrics;
use crate::reconcile::decide::Retry;
use crate::registry::{ClientConfig, DockerConfig, RegistryClient, ScanSettings, Scanner, SecretSource};
use crate::runs::jobs::JobSettings;

pub struct Context {
    pub client: Client,
    pub scanner: Scanner,
    pub config: Config,
    /// Publishes Warning Events: a repeat folds into the first one's series (kube's recorder).
    pub recorder: Recorder,
    /// Who reports Events: progress Events (one per run) are each their own Event, so every
    /// note (which tag, why) is kept; readers fold them by reason.
    pub reporter: Reporter,
    /// The agent-wide docker config (`--registry-config`), read once at start.
    pub docker_config: Option<DockerConfig>,
    pub jobs: JobSettings,
    pub metrics: Metrics,
    /// Where `status.credentials` are looked for (`--credential-sources`).
    pub credential_sources: Vec<crate::runs::gather::CredentialSource>,
    /// The status last written per resource (see [`crate::reconcile::status::Written`]).
    pub written: crate::reconcile::status::Written,
    /// Failed registry scans in a row, per resource (see [`crate::reconcile::backoff`]).
    pub scan_failures: crate::reconcile::backoff::ScanFailures,
    /// Reconciles that failed in a row, per resource: `error_policy`'s delay grows with them.
    pub reconcile_errors: crate::reconcile::backoff::ErrorStreaks,
    /// Runs being launched or read back at once: each holds a pad, its Secret and (reading) a
    /// sealed block, a few hundred KiB; a limit below the reconcile concurrency bounds memory.
    pub pad_slots: tokio::sync::Semaphore,
    /// Each resource's last outputs file size: its next pad is sized to it.
    pub outputs_sizes: crate::runs::seal::OutputsSizes,
    /// The seed of each resource's pad in flight: read back without a GET of its Secret.
    pub pad_seeds: crate::runs::seal::PadSeeds,
    /// Wakes a resource whose background scan ended (the controller's `reconcile_on` stream;
    /// [`crate::run`] connects it).
    pub scan_wakes: Mutex<UnboundedSender<ObjectRef<Terraform>>>,
    /// Who depends on whom (`dependsOn`, `variablesFrom`), fed by the controller's watch.
    pub graph: crate::graph::Graph,
    /// The controller's cache of every `Terraform` (set by each [`crate::run`]): dependencies
    /// and producers of outputs are read from it, not fetched one by one.
    pub cache: Mutex<Option<kube::runtime::reflector::Store<Terraform>>>,
    /// How each of the agent's Jobs stands, fed by the controller's Jobs watch (each
    /// [`crate::run`]).
    pub job_outcomes: crate::runs::job_outcomes::JobOutcomes,
    /// Every Ingress, hosts only, for `status.ingressURLs` (set by each [`crate::run`]).
    pub ingress_cache: Mutex<Option<kube::runtime::reflector::Store<k8s_openapi::api::networking::v1::Ingress>>>,
    /// The credential sources' Secrets, key names only (set by each [`crate::run`]).
    pub credential_cache: Mutex<crate::runs::credential_watch::CredentialStores>,
}

/// How many runs may hold a pad in memory at once (see [`Context::pad_slots`]).
pub const PAD_SLOTS: usize = 4;

impl Context {
    pub fn new(client: Client, config: Config) -> Result<Self, StartupError> {
        let registry = RegistryClient::new(ClientConfig {
            insecure_registries: config.insecure_registries.clone(),
            connect_timeout: config.registry_timeout.min(ClientConfig::default().connect_timeout),
            request_timeout: config.registry_timeout,
            ..ClientConfig::default()
        })
        .map_err(|err| StartupError::Config(err.to_string()))?;
        let docker_config = match &config.registry_config {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|err| {
                    StartupError::Config(format!("cannot read --registry-config {}: {err}", path.display()))
                })?;
                let source = SecretSource::AgentWide { name: path.display().to_string() };
                Some(DockerConfig::parse(source, &bytes)?)
            }
            None => None,
        };
        let credential_sources = match &config.credential_sources {
            Some(text) => crate::runs::gather::CredentialSource::parse_list(text)?,
            None => crate::runs::gather::CredentialSource::defaults(),
        };
        let scanner = Scanner::with_settings(
            registry,
            ScanSettings {
                deadline: config.scan_deadline,
                per_host: usize::from(config.scans_per_registry),
                ..ScanSettings::default()
            },
        );
        let metrics = Metrics::new(scanner.listings_counter());
        let reporter = Reporter { controller: "alustan-agent".into(), instance: std::env::var("POD_NAME").ok() };
        let jobs = JobSettings {
            active_deadline_seconds: config.job_active_deadline_seconds,
            ttl_seconds_after_finished: config.job_ttl_seconds_after_finished,
            service_account: config.job_service_account.clone(),
            image_pull_secrets: config.job_image_pull_secrets.clone(),
        };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            scanner,
            client,
            config,
            docker_config,
            jobs,
            metrics,
            credential_sources,
            written: crate::reconcile::status::Written::default(),
            scan_failures: crate::reconcile::backoff::ScanFailures::default(),
            reconcile_errors: crate::reconcile::backoff::ErrorStreaks::default(),
            pad_slots: tokio::sync::Semaphore::new(PAD_SLOTS),
            outputs_sizes: crate::runs::seal::OutputsSizes::default(),
            pad_seeds: crate::runs::seal::PadSeeds::default(),
            // Nothing listens until `run` connects the controller.
            scan_wakes: Mutex::new(futures::channel::mpsc::unbounded().0),
            graph: crate::graph::Graph::default(),
            cache: Mutex::new(None),
            job_outcomes: crate::runs::job_outcomes::JobOutcomes::default(),
            ingress_cache: Mutex::new(None),
            credential_cache: Mutex::default(),
        })
    }

    /// `key`'s resource as the controller's cache holds it (`None`: not there, or no
    /// controller runs).
    pub fn cached(&self, key: &crate::graph::Key) -> Option<std::sync::Arc<Terraform>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref()?.get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// How Job `name` of `namespace` stands as the Jobs' watch last saw it (`None`: not seen
    /// yet, gone, or no controller runs: the caller reads the API).
    pub fn cached_outcome(&self, namespace: &str, name: &str) -> Option<crate::runs::observe::Outcome> {
        self.job_outcomes.get(namespace, name)
    }

    /// A new wake channel for the controller (replacing any earlier one).
    pub fn connect_scan_wakes(&self) -> UnboundedReceiver<ObjectRef<Terraform>> {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        *self.scan_wakes.lock().unwrap_or_else(PoisonError::into_inner) = sender;
        receiver
    }

    /// What wakes `tf` when its background scan ends.
    pub fn scan_waker(&self, tf: &Terraform) -> impl FnOnce() + Send + 'static {
        let sender = self.scan_wakes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let object = ObjectRef::from_obj(tf);
        move || {
            // A closed channel: the controller stopped; nothing to wake.
            let _ = sender.unbounded_send(object);
        }
    }

    pub fn retry(&self) -> Retry {
        Retry { base: self.config.retry_base, max: self.config.retry_max, attempts: self.config.retry_attempts }
    }
}

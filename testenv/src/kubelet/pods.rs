//! The kubelet half: watches Pods, runs each new Pod's containers once through the sandbox and
//! reports their lifecycle in `status` (Pending/ContainerCreating → Running → Succeeded/Failed,
//! with `state.waiting|running|terminated` per container). Deleting a Pod kills its processes.
//!
//! As a Node of a real control plane ([`Mode::Node`]) it runs only the Pods bound to it
//! (`spec.nodeName`), leaves the ServiceAccount token to the admission plugin's projected
//! volume, and ends a deleted Pod as a kubelet does: SIGTERM to its processes, SIGKILL after
//! the deletion grace period, the final status written, then the Pod deleted with grace 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, VolumeProjection};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::events::PodEvents;
use super::image::ImageStore;
use super::sandbox::{self, Mount};
use super::{KubeletOptions, env, service_account};
use crate::apiserver::PodLogs;

/// Most of a log the kubelet keeps as a termination message (Kubernetes: 2048 bytes or 80 lines
/// for `FallbackToLogsOnError`, 4096 bytes for the message file).
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;
const MESSAGE_FILE_BYTES: usize = 4096;
/// Retries of a failed volume set-up wait 0.5 s, doubling (as the real kubelet's), up to 4 s
/// (the real kubelet's cap is 2 min 2 s: short here so tests need not wait).
const MOUNT_RETRY_FIRST: Duration = Duration::from_millis(500);
const MOUNT_RETRY_MAX: Duration = Duration::from_secs(4);

/// Whose Pods the kubelet runs and who mounts ServiceAccount tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every Pod of testenv's embedded API server; the kubelet mounts the token itself.
    Embedded,
    /// The Pods bound to this Node of a real control plane.
    Node,
}

/// A Pod being run: its task, how to ask it to stop, and whether a container runs now.
struct Running {
    task: JoinHandle<()>,
    stop: watch::Sender<Option<u64>>,
    in_container: Arc<AtomicBool>,
}

pub async fn run(
    client: kube::Client,
    logs: PodLogs,
    images: Arc<ImageStore>,
    options: Arc<KubeletOptions>,
    mode: Mode,
) {
    let mut started: HashSet<String> = HashSet::new();
    let mut terminating: HashSet<String> = HashSet::new();
    let mut running: HashMap<String, Running> = HashMap::new();
    let config = match mode {
        Mode::Embedded => watcher::Config::default(),
        Mode::Node => watcher::Config::default().fields(&format!("spec.nodeName={}", options.node_name)),
    };
    let stream = watcher(Api::<Pod>::all(client.clone()), config).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        running.retain(|_, pod| !pod.task.is_finished());
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(pod) = pod.metadata.uid.as_ref().and_then(|uid| running.remove(uid)) {
                    pod.task.abort(); // drops the bubblewrap child: kill_on_drop ends the whole PID namespace
                }
                continue;
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%error, "kubelet: pod watch failed; retrying");
                continue;
            }
        };
        let Some(uid) = pod.metadata.uid.clone() else { continue };
        if pod.metadata.deletion_timestamp.is_some() {
            match mode {
                Mode::Embedded => {
                    if let Some(pod) = running.remove(&uid) {
                        pod.task.abort();
                    }
                }
                Mode::Node if terminating.insert(uid.clone()) => {
                    tokio::spawn(terminate(client.clone(), pod, running.remove(&uid)));
                }
                Mode::Node => {}
            }
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") || !started.insert(uid.clone()) {
            continue;
        }
        let (stop, stop_requested) = watch::channel(None);
        let container_running = Arc::new(AtomicBool::new(false));
        let worker = PodWorker {
            client: client.clone(),
            logs: logs.clone(),
            images: Arc::clone(&images),
            options: Arc::clone(&options),
            statuses: Arc::default(),
            mode,
            stop: stop_requested,
            container_running: Arc::clone(&container_running),
        };
        running.insert(uid, Running { task: tokio::spawn(worker.run(pod)), stop, in_container: container_running });
    }
}

/// A deleted Pod on this Node: its running container gets SIGTERM and the deletion grace
/// period (then SIGKILL) and reports how it ended; a Pod not running a container stops at
/// once. Then the Pod is deleted for good (grace 0, this very UID), as the kubelet confirms.
async fn terminate(client: kube::Client, pod: Pod, worker: Option<Running>) {
    let grace = pod.metadata.deletion_grace_period_seconds.and_then(|g| u64::try_from(g).ok()).unwrap_or(30);
    if let Some(mut worker) = worker {
        if worker.in_container.load(Ordering::SeqCst) {
            let _ = worker.stop.send(Some(grace));
            // The worker kills at the end of the grace period itself; this is a backstop.
            let limit = Duration::from_secs(grace + 10);
            if tokio::time::timeout(limit, &mut worker.task).await.is_err() {
                worker.task.abort();
            }
        } else {
            worker.task.abort();
        }
    }
    let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    if let Err(error) = api.delete(&pod.name_any(), &params).await {
        tracing::debug!(%error, pod = pod.name_any(), "kubelet: final pod delete failed (already gone?)");
    }
}

struct PodWorker {
    client: kube::Client,
    logs: PodLogs,
    images: Arc<ImageStore>,
    options: Arc<KubeletOptions>,
    /// container name → its `containerStatuses` entry; patched as a whole (merge patch
    /// replaces lists).
    statuses: Arc<Mutex<BTreeMap<String, Value>>>,
    mode: Mode,
    /// `Some(grace seconds)` once the Pod is being deleted (node mode).
    stop: watch::Receiver<Option<u64>>,
    container_running: Arc<AtomicBool>,
}

impl PodWorker {
    async fn run(self, pod: Pod) {
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let dir = self.options.work_dir.join("pods").join(&uid);
        let Some(spec) = pod.spec.clone() else { return };
        if self.mode == Mode::Embedded && spec.node_name.is_none() {
            // The embedded server has no scheduler: taking the Pod binds it to this kubelet, so
            // the API server answers for it as for a bound Pod (e.g. its log before it starts).
            let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.options.node_name}});
            let params = PostParams::default();
            if let Err(error) = api.create_subresource::<Value, Value>("binding", &name, &params, &binding).await {
                tracing::warn!(%error, pod = %name, "kubelet: cannot bind the pod to this node");
            }
        }
        let started = now();
        for container in &spec.containers {
            self.set_container(container, json!({"waiting": {"reason": "ContainerCreating"}}), false).await;
        }
        self.patch(
            &api,
            &name,
            json!({"phase": "Pending", "startTime": started, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": started}]}),
        )
        .await;

        // As the real kubelet: a Secret or ConfigMap that is missing (or unreadable) keeps the Pod
        // in ContainerCreating, with FailedMount events, until it appears.
        let mut events = PodEvents::new(self.client.clone(), &pod, &self.options.node_name);
        let mut delay = MOUNT_RETRY_FIRST;
        let mounts = loop {
            match self.volumes(&pod, &namespace, &dir).await {
                Ok(mounts) => break mounts,
                Err(VolumeError::SetUp { volume, reason }) => {
                    let message = format!("MountVolume.SetUp failed for volume \"{volume}\" : {reason}");
                    events.warning("FailedMount", &message).await;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MOUNT_RETRY_MAX);
                }
                Err(VolumeError::Unsupported(message)) => {
                    for container in &spec.containers {
                        self.set_container(container, waiting("CreateContainerConfigError", &message), false).await;
                    }
                    self.patch(&api, &name, json!({})).await;
                    return;
                }
            }
        };
        // On a real control plane the ServiceAccount admission plugin has added the token as a
        // projected volume (set up with the other volumes above).
        let token = loop {
            if self.mode == Mode::Node {
                break None;
            }
            match service_account::mount(&self.client, &pod, &namespace, &dir).await {
                Ok(token) => break token,
                Err(message) => {
                    for container in spec.init_containers.iter().flatten().chain(&spec.containers) {
                        self.set_container(container, waiting("CreateContainerConfigError", &message), false).await;
                    }
                    self.patch(&api, &name, json!({})).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let mounts = Volumes { by_name: mounts, token };
        for init in spec.init_containers.iter().flatten() {
            if self.run_container(&api, &pod, init, &dir, &mounts).await != 0 {
                self.patch(&api, &name, json!({"phase": "Failed", "reason": "InitContainerFailed"})).await;
                return;
            }
        }
        let runs = spec.containers.iter().map(|c| self.run_container(&api, &pod, c, &dir, &mounts));
        let codes = futures::future::join_all(runs).await;
        let phase = if codes.iter().all(|code| *code == 0) { "Succeeded" } else { "Failed" };
        self.patch(
            &api,
            &name,
            json!({"phase": phase, "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now()},
            ]}),
        )
        .await;
    }

    /// Pulls, configures and runs one container; returns its exit code.
    async fn run_container(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        container: &Container,
        dir: &Path,
        mounts: &Volumes,
    ) -> i32 {
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
        let name = pod.name_any();
        let image_name = container.image.clone().unwrap_or_default();
        let auth = self.pull_auth(pod, &namespace, &image_name).await;
        let mut attempt = 0_u32;
        let image = loop {
            match self.images.pull(&image_name, &auth).await {
                Ok(image) => break image,
                Err(error) => {
                    let reason = if attempt == 0 { "ErrImagePull" } else { "ImagePullBackOff" };
                    let message = if attempt == 0 {
                        error.to_string()
                    } else {
                        format!("Back-off pulling image \"{image_name}\": {error}")
                    };
                    self.report_waiting(api, &name, container, reason, &message).await;
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt.min(5)))).await;
                }
            }
        };
        let environment = loop {
            match env::resolve(&self.client, pod, container, &image.config, self.options.api_server).await {
                Ok(environment) => break environment,
                Err(env::ConfigError(message)) => {
                    self.report_waiting(api, &name, container, "CreateContainerConfigError", &message).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let root = dir.join("containers").join(&container.name).join("root");
        let termination_file = dir.join("containers").join(&container.name).join("termination-log");
        if let Err(message) = prepare_root(&image.rootfs, &root, &termination_file).await {
            return self.terminated(api, &name, container, 128, "StartError", &message, &image.digest).await;
        }
        let working_dir = container.working_dir.clone().unwrap_or_else(|| image.config.working_dir.clone());
        let mut all_mounts: Vec<Mount> = Vec::new();
        for volume_mount in container.volume_mounts.iter().flatten() {
            if let Some(mount) = mounts.by_name.iter().find(|m| m.container == volume_mount.name) {
                all_mounts.push(Mount {
                    host: mount.host.clone(),
                    container: volume_mount.mount_path.clone(),
                    read_only: mount.read_only || volume_mount.read_only == Some(true),
                });
            }
        }
        // Unless the container mounts something of its own there, as the admission plugin does.
        if let Some(token) = &mounts.token
            && !all_mounts.iter().any(|m| m.container == token.container)
        {
            all_mounts.push(token.clone());
        }
        let termination_path =
            container.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".to_owned());
        let spec = sandbox::Spec {
            root,
            argv: env::argv(container, &image.config, &environment),
            env: environment,
            working_dir,
            mounts: all_mounts,
            termination_log: (termination_file.clone(), termination_path),
        };
        let child = match sandbox::spawn(&spec) {
            Ok(child) => child,
            Err(error) => {
                let message = format!("bubblewrap (Debian package `bubblewrap`) cannot start: {error}");
                return self.terminated(api, &name, container, 128, "StartError", &message, &image.digest).await;
            }
        };
        let started = now();
        self.set_container(container, json!({"running": {"startedAt": started}}), true).await;
        self.patch(
            api,
            &name,
            json!({"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
            ]}),
        )
        .await;
        let pid = child.id();
        self.container_running.store(true, Ordering::SeqCst);
        let code = self.run_until_stopped(child, pid, (&namespace, &name, &container.name)).await;
        self.container_running.store(false, Ordering::SeqCst);
        let mut message = read_capped(&termination_file, MESSAGE_FILE_BYTES).await;
        if message.is_empty()
            && code != 0
            && container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        {
            let log =
                self.logs.read_from(&namespace, &name, &container.name, 0).map(|(bytes, _)| bytes).unwrap_or_default();
            message = log_tail(&log);
        }
        let reason = if code == 0 { "Completed" } else { "Error" };
        let state = json!({"terminated": {"exitCode": code, "reason": reason, "message": message, "startedAt": started, "finishedAt": now(), "containerID": format!("testenv://{}", pod.metadata.uid.as_deref().unwrap_or_default())}});
        self.set_container_with_image(container, state, false, &image.digest).await;
        self.patch(api, &name, json!({})).await;
        code
    }

    /// Runs the container to its end; when the Pod is deleted meanwhile, SIGTERM to its
    /// processes and, after the grace period, SIGKILL (exit code 143 or 137, as runtimes say).
    async fn run_until_stopped(
        &self,
        child: tokio::process::Child,
        pid: Option<u32>,
        names: (&str, &str, &str),
    ) -> i32 {
        let run = sandbox::run_to_end(child, &self.logs, names);
        tokio::pin!(run);
        let mut stop = self.stop.clone();
        let grace = tokio::select! {
            code = &mut run => return code,
            grace = stop.wait_for(Option::is_some) => grace.ok().and_then(|g| *g).unwrap_or(0),
        };
        let Some(pid) = pid else { return run.await };
        sandbox::signal_descendants(pid, nix::sys::signal::Signal::SIGTERM);
        if let Ok(code) = tokio::time::timeout(Duration::from_secs(grace), &mut run).await {
            return code;
        }
        if let Ok(raw) = i32::try_from(pid) {
            // bubblewrap dies, and --die-with-parent takes the whole PID namespace with it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGKILL);
        }
        sandbox::signal_descendants(pid, nix::sys::signal::Signal::SIGKILL);
        run.await
    }

    #[allow(clippy::too_many_arguments)]
    async fn terminated(
        &self,
        api: &Api<Pod>,
        name: &str,
        container: &Container,
        code: i32,
        reason: &str,
        message: &str,
        digest: &str,
    ) -> i32 {
        let state =
            json!({"terminated": {"exitCode": code, "reason": reason, "message": message, "finishedAt": now()}});
        self.set_container_with_image(container, state, false, digest).await;
        self.patch(api, name, json!({})).await;
        code
    }

    /// A container that cannot start yet (and is retried): `state.waiting` with why.
    async fn report_waiting(&self, api: &Api<Pod>, name: &str, container: &Container, reason: &str, message: &str) {
        self.set_container(container, waiting(reason, message), false).await;
        self.patch(api, name, json!({})).await;
    }

    async fn set_container(&self, container: &Container, state: Value, ready: bool) {
        self.set_container_with_image(container, state, ready, "").await;
    }

    async fn set_container_with_image(&self, container: &Container, state: Value, ready: bool, digest: &str) {
        let mut statuses = self.statuses.lock().await;
        let image = container.image.clone().unwrap_or_default();
        let image_id = if digest.is_empty() { String::new() } else { format!("{}@{digest}", repository(&image)) };
        statuses.insert(
            container.name.clone(),
            json!({"name": container.name, "image": image, "imageID": image_id, "ready": ready,
                   "started": state.get("running").is_some(), "restartCount": 0, "state": state}),
        );
    }

    /// Merges `fields` with the current container statuses into `status`.
    async fn patch(&self, api: &Api<Pod>, name: &str, mut fields: Value) {
        let statuses: Vec<Value> = self.statuses.lock().await.values().cloned().collect();
        if let Some(object) = fields.as_object_mut() {
            object.insert("containerStatuses".to_owned(), Value::Array(statuses));
        }
        if let Err(error) =
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": fields}))).await
        {
            tracing::debug!(%error, pod = name, "kubelet: status patch failed (pod gone?)");
        }
    }

    async fn pull_auth(&self, pod: &Pod, namespace: &str, image: &str) -> RegistryAuth {
        let host = image.split('/').next().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        for reference in pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()) {
            let Ok(Some(secret)) = secrets.get_opt(&reference.name).await else { continue };
            let Some(config) = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson")) else { continue };
            if let Some((user, password)) = env::docker_credentials(&config.0, host) {
                return RegistryAuth::Basic(user, password);
            }
        }
        RegistryAuth::Anonymous
    }

    /// emptyDir, secret, configMap and projected volumes as host directories, keyed by volume
    /// name.
    async fn volumes(&self, pod: &Pod, namespace: &str, dir: &Path) -> Result<Vec<Mount>, VolumeError> {
        let mut mounts = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let set_up = |reason: String| VolumeError::SetUp { volume: volume.name.clone(), reason };
            let host = dir.join("volumes").join(&volume.name);
            tokio::fs::create_dir_all(&host).await.map_err(|e| set_up(e.to_string()))?;
            let mut read_only = true;
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(source) = &volume.secret {
                let name = source.secret_name.clone().unwrap_or_default();
                let data = self.secret_data(namespace, &name, source.optional).await.map_err(set_up)?;
                files.extend(select_items(data, source.items.as_deref()));
            } else if let Some(source) = &volume.config_map {
                let data = self.config_map_data(namespace, &source.name, source.optional).await.map_err(set_up)?;
                files.extend(select_items(data, source.items.as_deref()));
            } else if let Some(projected) = &volume.projected {
                for source in projected.sources.iter().flatten() {
                    files.extend(self.projection(pod, namespace, &volume.name, source).await?);
                }
            } else if volume.empty_dir.is_some() {
                read_only = false;
            } else {
                return Err(VolumeError::Unsupported(format!(
                    "volume {}: only emptyDir, secret, configMap and projected volumes run in the test kubelet",
                    volume.name
                )));
            }
            for (file, bytes) in files {
                let path = host.join(&file);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| set_up(e.to_string()))?;
                }
                tokio::fs::write(&path, bytes).await.map_err(|e| set_up(e.to_string()))?;
            }
            // Keyed by volume name until a container mounts it at its path.
            mounts.push(Mount { host, container: volume.name.clone(), read_only });
        }
        Ok(mounts)
    }

    /// The files of one source of a projected volume: a ServiceAccount token bound to the Pod
    /// (what the admission plugin's `kube-api-access-*` volume asks for), ConfigMap and Secret
    /// keys, and downward API fields.
    async fn projection(
        &self,
        pod: &Pod,
        namespace: &str,
        volume: &str,
        source: &VolumeProjection,
    ) -> Result<Vec<(String, Vec<u8>)>, VolumeError> {
        let set_up = |reason: String| VolumeError::SetUp { volume: volume.to_owned(), reason };
        if let Some(token) = &source.service_account_token {
            let account = service_account::account_name(pod);
            let expiration = token.expiration_seconds.unwrap_or(3600);
            let issued = service_account::request_token(
                &self.client,
                pod,
                namespace,
                &account,
                token.audience.as_deref().filter(|a| !a.is_empty()),
                expiration,
            )
            .await
            .map_err(set_up)?;
            return Ok(vec![(token.path.clone(), issued.into_bytes())]);
        }
        if let Some(map) = &source.config_map {
            let data = self.config_map_data(namespace, &map.name, map.optional).await.map_err(set_up)?;
            return Ok(select_items(data, map.items.as_deref()));
        }
        if let Some(secret) = &source.secret {
            let data = self.secret_data(namespace, &secret.name, secret.optional).await.map_err(set_up)?;
            return Ok(select_items(data, secret.items.as_deref()));
        }
        if let Some(downward) = &source.downward_api {
            let mut files = Vec::new();
            for item in downward.items.iter().flatten() {
                let Some(field) = &item.field_ref else {
                    return Err(VolumeError::Unsupported(format!(
                        "volume {volume}: only fieldRef items of downwardAPI projections run in the test kubelet"
                    )));
                };
                let value = env::field_value(pod, &field.field_path).map_err(|e| VolumeError::Unsupported(e.0))?;
                files.push((item.path.clone(), value.into_bytes()));
            }
            return Ok(files);
        }
        Err(VolumeError::Unsupported(format!(
            "volume {volume}: only serviceAccountToken, configMap, secret and downwardAPI projections run in the test kubelet"
        )))
    }

    /// A Secret's data; `Ok(empty)` for a missing optional one, `Err` (the kubelet's words)
    /// otherwise.
    async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match secrets.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
            Ok(None) if optional == Some(true) => Ok(BTreeMap::new()),
            Ok(None) => Err(format!("secret \"{name}\" not found")),
            Err(error) => Err(format!("secret \"{name}\": {error}")),
        }
    }

    /// A ConfigMap's `data` and `binaryData`, as [`Self::secret_data`].
    async fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match maps.get_opt(name).await {
            Ok(Some(map)) => {
                let mut data: BTreeMap<String, Vec<u8>> =
                    map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                data.extend(map.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                Ok(data)
            }
            Ok(None) if optional == Some(true) => Ok(BTreeMap::new()),
            Ok(None) => Err(format!("configmap \"{name}\" not found")),
            Err(error) => Err(format!("configmap \"{name}\": {error}")),
        }
    }
}

/// Every key as a file of its name, or with `items` only those keys, at their paths.
fn select_items(data: BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>) -> Vec<(String, Vec<u8>)> {
    match items {
        None => data.into_iter().collect(),
        Some(items) => {
            items.iter().filter_map(|item| data.get(&item.key).map(|v| (item.path.clone(), v.clone()))).collect()
        }
    }
}

/// Why a Pod's volumes could not be set up.
enum VolumeError {
    /// Retried, with a `FailedMount` event (`reason` as the real kubelet words it).
    SetUp { volume: String, reason: String },
    /// A volume type the test kubelet does not run: never retried.
    Unsupported(String),
}

/// A Pod's volumes (keyed by volume name) and its ServiceAccount token mount, if any.
struct Volumes {
    by_name: Vec<Mount>,
    token: Option<Mount>,
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": message}})
}

/// A private, writable copy of the image for one container, and its termination-log file.
async fn prepare_root(image_root: &Path, root: &Path, termination_file: &Path) -> Result<(), String> {
    let parent = root.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    tokio::fs::create_dir_all(&parent).await.map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let _ = tokio::fs::remove_dir_all(root).await;
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(image_root)
        .arg(root)
        .status()
        .await
        .map_err(|e| format!("cannot copy the image filesystem: {e}"))?;
    if !status.success() {
        return Err(format!("copying the image filesystem to {} failed: {status}", root.display()));
    }
    tokio::fs::write(termination_file, b"").await.map_err(|e| format!("cannot create the termination log: {e}"))
}

/// The repository of an image reference (`host:port/name` of `host:port/name:tag` or
/// `…@sha256:…`): what `imageID` puts before `@digest`.
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or_default();
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

async fn read_capped(path: &Path, limit: usize) -> String {
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

/// The last 80 lines, at most 2048 bytes, of a log.
fn log_tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    let tail = lines[lines.len().saturating_sub(FALLBACK_LOG_LINES)..].join("\n");
    let start = tail.len().saturating_sub(FALLBACK_LOG_BYTES);
    let start = (start..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
    tail[start..].to_owned()
}

pub(super) fn now() -> String {
    Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_id_keeps_the_registry_port_and_drops_tag_or_digest() {
        assert_eq!(repository("127.0.0.1:5000/team/iac:1.0.0"), "127.0.0.1:5000/team/iac");
        assert_eq!(repository("127.0.0.1:5000/team/iac@sha256:abc"), "127.0.0.1:5000/team/iac");
        assert_eq!(repository("127.0.0.1:5000/team/iac"), "127.0.0.1:5000/team/iac");
        assert_eq!(repository("busybox:1.36"), "busybox");
    }

    #[test]
    fn fallback_message_keeps_the_last_lines_within_the_byte_cap() {
        let log = (0..200).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n") + "\n";
        let tail = log_tail(log.as_bytes());
        assert!(tail.ends_with("line 199"));
        assert_eq!(tail.lines().count(), 80);
        let one_long_line = "x".repeat(5000);
        assert_eq!(log_tail(one_long_line.as_bytes()).len(), FALLBACK_LOG_BYTES);
    }
}

//! The kubelet half: watches Pods, runs each new Pod's containers once through the sandbox and
//! reports their lifecycle in `status` (Pending/ContainerCreating → Running → Succeeded/Failed,
//! with `state.waiting|running|terminated` per container). Deleting a Pod kills its processes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};
use tokio::sync::Mutex;
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

pub async fn run(client: kube::Client, logs: PodLogs, images: Arc<ImageStore>, options: Arc<KubeletOptions>) {
    let mut started: HashSet<String> = HashSet::new();
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        running.retain(|_, task| !task.is_finished());
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(task) = pod.metadata.uid.as_ref().and_then(|uid| running.remove(uid)) {
                    task.abort(); // drops the bubblewrap child: kill_on_drop ends the whole PID namespace
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
            if let Some(task) = running.remove(&uid) {
                task.abort();
            }
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") || !started.insert(uid.clone()) {
            continue;
        }
        let worker = PodWorker {
            client: client.clone(),
            logs: logs.clone(),
            images: Arc::clone(&images),
            options: Arc::clone(&options),
            statuses: Arc::default(),
        };
        running.insert(uid, tokio::spawn(worker.run(pod)));
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
}

impl PodWorker {
    async fn run(self, pod: Pod) {
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let dir = self.options.work_dir.join("pods").join(&uid);
        let Some(spec) = pod.spec.clone() else { return };
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
        let token = loop {
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
        let code = sandbox::run_to_end(child, &self.logs, (&namespace, &name, &container.name)).await;
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
        let image_id = if digest.is_empty() {
            String::new()
        } else {
            format!("{}@{digest}", image.split(['@', ':']).next().unwrap_or_default())
        };
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

    /// emptyDir, secret and configMap volumes as host directories, keyed by volume name.
    async fn volumes(&self, pod: &Pod, namespace: &str, dir: &Path) -> Result<Vec<Mount>, VolumeError> {
        let mut mounts = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let set_up = |reason: String| VolumeError::SetUp { volume: volume.name.clone(), reason };
            let host = dir.join("volumes").join(&volume.name);
            tokio::fs::create_dir_all(&host).await.map_err(|e| set_up(e.to_string()))?;
            let mut read_only = false;
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(source) = &volume.secret {
                read_only = true;
                let secret_name = source.secret_name.clone().unwrap_or_default();
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                match secrets.get_opt(&secret_name).await {
                    Ok(Some(secret)) => {
                        files.extend(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                    }
                    Ok(None) if source.optional == Some(true) => {}
                    Ok(None) => return Err(set_up(format!("secret \"{secret_name}\" not found"))),
                    Err(error) => return Err(set_up(format!("secret \"{secret_name}\": {error}"))),
                }
            } else if let Some(source) = &volume.config_map {
                read_only = true;
                let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                match maps.get_opt(&source.name).await {
                    Ok(Some(map)) => {
                        files.extend(map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
                        files.extend(map.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                    }
                    Ok(None) if source.optional == Some(true) => {}
                    Ok(None) => return Err(set_up(format!("configmap \"{}\" not found", source.name))),
                    Err(error) => return Err(set_up(format!("configmap \"{}\": {error}", source.name))),
                }
            } else if volume.empty_dir.is_none() {
                return Err(VolumeError::Unsupported(format!(
                    "volume {}: only emptyDir, secret and configMap volumes run in the test kubelet",
                    volume.name
                )));
            }
            for (file, bytes) in files {
                tokio::fs::write(host.join(&file), bytes).await.map_err(|e| set_up(e.to_string()))?;
            }
            // Keyed by volume name until a container mounts it at its path.
            mounts.push(Mount { host, container: volume.name.clone(), read_only });
        }
        Ok(mounts)
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
    fn fallback_message_keeps_the_last_lines_within_the_byte_cap() {
        let log = (0..200).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n") + "\n";
        let tail = log_tail(log.as_bytes());
        assert!(tail.ends_with("line 199"));
        assert_eq!(tail.lines().count(), 80);
        let one_long_line = "x".repeat(5000);
        assert_eq!(log_tail(one_long_line.as_bytes()).len(), FALLBACK_LOG_BYTES);
    }
}

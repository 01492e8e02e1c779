//! core/v1 Events about a Pod, written as the real kubelet's event recorder writes them
//! (`source.component: kubelet`): a repeat of the same reason and message bumps `count` and
//! `lastTimestamp` of the Event already written instead of writing a new one.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

/// The Events of one Pod.
pub struct PodEvents {
    api: Api<Event>,
    pod: Pod,
    node: String,
    /// (reason, message) of the last Event, its name and count.
    last: Option<((String, String), String, i32)>,
}

impl PodEvents {
    pub fn new(client: kube::Client, pod: &Pod, node: &str) -> Self {
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_owned());
        Self { api: Api::namespaced(client, &namespace), pod: pod.clone(), node: node.to_owned(), last: None }
    }

    /// A Warning Event; failing to write it is logged, never fatal (as for the kubelet).
    pub async fn warning(&mut self, reason: &str, message: &str) {
        let now = super::pods::now();
        let key = (reason.to_owned(), message.to_owned());
        if let Some((last, name, count)) = &mut self.last
            && *last == key
        {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now});
            if let Err(error) = self.api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                tracing::debug!(%error, event = %name, "kubelet: event update failed");
            }
            return;
        }
        let pod_name = self.pod.name_any();
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{pod_name}.{nanos:x}");
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": self.pod.namespace()},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": self.pod.namespace(),
                "name": pod_name, "uid": self.pod.metadata.uid, "resourceVersion": self.pod.metadata.resource_version},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        });
        let created = match serde_json::from_value::<Event>(event) {
            Ok(event) => self.api.create(&PostParams::default(), &event).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match created {
            Ok(_) => self.last = Some((key, name, 1)),
            Err(error) => tracing::debug!(%error, pod = %pod_name, "kubelet: event write failed"),
        }
    }
}

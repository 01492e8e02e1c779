//! The `pods/{name}/log` subresource, served from [`super::podlogs::PodLogs`].
//! Supports `container` (default: the `kubectl.kubernetes.io/default-container` annotation or
//! the only container), `tailLines` and `follow`; other options (`since*`, `timestamps`,
//! `limitBytes`, `previous`) are accepted and ignored.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::handlers::Ctx;
use super::podlogs::tail_lines;
use super::router::{Body, Reply};
use super::status::ApiError;

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn pick_container(ctx: &Ctx<'_>, pod: &Value) -> Result<String, ApiError> {
    let name = ctx.name();
    let containers = names(pod, "containers");
    let mut all = containers.clone();
    all.extend(names(pod, "initContainers"));
    if let Some(c) = ctx.req.param("container").filter(|c| !c.is_empty()) {
        if !all.iter().any(|x| x == c) {
            return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
        }
        return Ok(c.to_owned());
    }
    if let Some(d) =
        pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container").and_then(Value::as_str)
    {
        return Ok(d.to_owned());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// Why a container has no log yet, worded as the kubelet's `validateContainerLogStatus`: its
/// waiting reason, "image can't be pulled" for pull failures, else `ContainerCreating`.
fn waiting_reason(pod: &Value, container: &str) -> String {
    let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten();
    let reason = statuses
        .filter(|s| s.get("name").and_then(Value::as_str) == Some(container))
        .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
    match reason {
        Some("ErrImagePull" | "ImagePullBackOff") => "image can't be pulled".to_owned(),
        Some(reason) => reason.to_owned(),
        None => "ContainerCreating".to_owned(),
    }
}

pub fn serve(ctx: &Ctx<'_>) -> Reply {
    match start(ctx) {
        Ok(r) => r,
        Err(e) => ctx.reply(e.code, e.to_status()),
    }
}

fn start(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let pod = ctx.shared.lock().get(&ctx.def.store, &ctx.key());
    let pod = pod.ok_or_else(|| ApiError::not_found(&ctx.def.target(ctx.name())))?;
    let container = pick_container(ctx, &pod)?;
    let (ns, name) = (ctx.namespace().to_owned(), ctx.name().to_owned());
    let logs = ctx.shared.pod_logs.clone();
    let Some((data, finished)) = logs.read_from(&ns, &name, &container, 0) else {
        if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
            // As the real server: a Pod no node has been assigned has no log location yet, and
            // its log is empty (200), not an error.
            return Ok(Reply { status: 200, body: Body::Bytes(Vec::new(), "text/plain"), headers: Vec::new() });
        }
        let reason = waiting_reason(&pod, &container);
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    };
    let shown = match ctx.req.param("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        Some(n) => tail_lines(&data, n).to_vec(),
        None => data.clone(),
    };
    if !ctx.req.flag("follow") || finished {
        return Ok(Reply { status: 200, body: Body::Bytes(shown, "text/plain"), headers: Vec::new() });
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let shared = std::sync::Arc::clone(ctx.shared);
    let mut offset = data.len();
    tokio::spawn(async move {
        let mut changed = logs.subscribe();
        let mut shutdown = shared.shutdown.clone();
        if !shown.is_empty() && tx.send(Bytes::from(shown)).await.is_err() {
            return;
        }
        loop {
            let Some((more, done)) = logs.read_from(&ns, &name, &container, offset) else { return };
            offset += more.len();
            if !more.is_empty() && tx.send(Bytes::from(more)).await.is_err() {
                return;
            }
            if done {
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
                () = tx.closed() => return,
            }
        }
    });
    Ok(Reply { status: 200, body: Body::Stream(rx, "text/plain"), headers: Vec::new() })
}

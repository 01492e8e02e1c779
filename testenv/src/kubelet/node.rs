//! The kubelet as a Node of a real control plane: it registers its `Node` (`InternalIP`
//! 127.0.0.1, this machine's CPUs and memory, the kubelet API port in
//! `status.daemonEndpoints.kubeletEndpoint`), renews its Lease in `kube-node-lease` and its
//! Ready condition every 10 s (the node lifecycle controller's heartbeat), and serves the
//! kubelet API over TLS for the API server's `pods/log`: `GET /containerLogs/{ns}/{pod}/{container}`
//! with `follow`, `tailLines` and `limitBytes`.
//!
//! Approximations: the kubelet API checks that the caller has a client certificate of the
//! cluster CA but asks no `SubjectAccessReview`; `timestamps`, `sinceSeconds`, `sinceTime` and
//! `previous` are ignored (containers are never restarted); only `/containerLogs` and
//! `/healthz` are served (no exec, attach, port-forward, stats).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::KubeletError;
use crate::apiserver::{PodLogs, tail_lines};

/// How often the Lease and the Ready condition are renewed (the real kubelet: 10 s).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The Lease's duration (the real kubelet: 40 s).
const LEASE_SECONDS: i32 = 40;
const FIELD_MANAGER: &str = "alustan-testenv-kubelet";

/// What makes the kubelet a Node of a real control plane.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The kubelet API's serving certificate (PEM), signed by the cluster CA and valid for
    /// 127.0.0.1 (the API server checks it with `--kubelet-certificate-authority`).
    pub serving_cert_pem: String,
    /// Its private key (PEM).
    pub serving_key_pem: String,
    /// The CA (PEM) whose client certificates may call the kubelet API: the API server's.
    pub client_ca_pem: String,
    /// The kubelet API port on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// `status.nodeInfo.kubeletVersion` (the control plane's version: no skew).
    pub kubelet_version: String,
}

/// The kubelet API's listener on 127.0.0.1.
pub async fn bind(port: u16) -> Result<TcpListener, KubeletError> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(KubeletError::Listen)
}

/// TLS for the kubelet API: our serving certificate, client certificates of the CA required.
pub fn tls_acceptor(config: &NodeConfig) -> Result<TlsAcceptor, KubeletError> {
    let tls = |message: String| KubeletError::Tls(message);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(config.client_ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| tls(format!("client CA: {e}")))?).map_err(|e| tls(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .map_err(|e| tls(format!("client verifier: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(config.serving_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(config.serving_key_pem.as_bytes())
        .map_err(|e| tls(format!("serving key: {e}")))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(format!("serving certificate: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Creates the Node (or takes over an existing one of that name) and writes its status.
pub async fn register(client: &kube::Client, name: &str, port: u16, version: &str) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "beta.kubernetes.io/os": "linux",
        }},
    }))
    .map_err(|e| KubeletError::Config(format!("node object: {e}")))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error.into()),
    }
    let status = json!({"status": node_status(name, port, version)});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// Renews the Lease and the Node's conditions every [`HEARTBEAT`], forever.
pub async fn heartbeat(client: kube::Client, name: String) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let uid = match nodes.get(&name).await {
            Ok(node) => node.metadata.uid,
            Err(error) => {
                tracing::warn!(%error, "kubelet: cannot read its Node");
                None
            }
        };
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_time()},
        });
        if let Some(uid) = uid {
            lease["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if let Err(error) = leases.patch(&name, &params, &Patch::Apply(lease)).await {
            tracing::warn!(%error, "kubelet: cannot renew its Lease");
        }
        let conditions = json!({"status": {"conditions": conditions()}});
        if let Err(error) = nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(conditions)).await {
            tracing::warn!(%error, "kubelet: cannot renew its Node's conditions");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

fn conditions() -> Value {
    let now = super::pods::now();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ])
}

fn node_status(name: &str, port: u16, version: &str) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).to_string();
    let memory = meminfo_total_kib().map_or_else(|| "4Gi".to_owned(), |kib| format!("{kib}Ki"));
    let resources = json!({"cpu": cpus, "memory": memory, "pods": "110", "ephemeral-storage": "20Gi"});
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default();
    let os_image = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions(),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": read("/etc/machine-id"),
            "systemUUID": read("/etc/machine-id"),
            "bootID": read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read("/proc/sys/kernel/osrelease"),
            "osImage": os_image,
            "containerRuntimeVersion": "alustan-testenv-bubblewrap://0.1",
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    })
}

fn meminfo_total_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `metav1.MicroTime`: RFC 3339 with exactly six fractional digits.
fn micro_time() -> String {
    let now = jiff::Timestamp::now();
    format!("{}.{:06}Z", now.strftime("%Y-%m-%dT%H:%M:%S"), now.subsec_microsecond())
}

/// Serves the kubelet API until the task is aborted.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, logs: PodLogs, client: kube::Client) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "kubelet API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let logs = logs.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%error, "kubelet API: TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let logs = logs.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(handle(&request, &logs, &client).await) }
            });
            if let Err(error) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await
            {
                tracing::debug!(%error, "kubelet API: connection ended");
            }
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

async fn handle(request: &Request<Incoming>, logs: &PodLogs, client: &kube::Client) -> Response<Body> {
    if request.method() != http::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let path = request.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let Some(rest) = path.strip_prefix("/containerLogs/") else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [namespace, pod, container] = parts.as_slice() else {
        return text(StatusCode::BAD_REQUEST, "expected /containerLogs/{namespace}/{pod}/{container}\n");
    };
    let query: Vec<(String, String)> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let follow = param("follow").is_some_and(|v| v == "true" || v == "1");
    let tail = param("tailLines").and_then(|v| v.parse::<usize>().ok());
    let limit = param("limitBytes").and_then(|v| v.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let key = ((*namespace).to_owned(), (*pod).to_owned(), (*container).to_owned());
    let Some((data, finished)) = logs.read_from(&key.0, &key.1, &key.2, 0) else {
        return not_started(client, namespace, pod, container).await;
    };
    let first = tail.map_or(&data[..], |n| tail_lines(&data, n));
    let first = first[..first.len().min(limit)].to_vec();
    if !follow || finished || first.len() >= limit {
        return text(StatusCode::OK, first);
    }
    // Follow: what is there now, then every append until the container ends.
    let state =
        Follow { logs: logs.clone(), changed: logs.subscribe(), key, offset: data.len(), left: limit - first.len() };
    let rest = futures::stream::unfold(state, next_chunk);
    let body = futures::stream::once(async move { Bytes::from(first) })
        .chain(rest)
        .filter(|chunk| std::future::ready(!chunk.is_empty()))
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(body)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

/// No output yet: the kubelet's answer (`validateContainerLogStatus`) from the container's
/// waiting state: 400 "is waiting to start: <reason>" (pull failures: "image can't be
/// pulled"), 404 when the Pod or container is unknown.
async fn not_started(client: &kube::Client, namespace: &str, pod: &str, container: &str) -> Response<Body> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(found)) = pods.get_opt(pod).await else {
        return text(StatusCode::NOT_FOUND, format!("pod \"{pod}\" not found\n"));
    };
    let status = found.status.unwrap_or_default();
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    let Some(state) = statuses.filter(|s| s.name == container).find_map(|s| s.state.clone()) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
        );
    };
    let reason = state.waiting.and_then(|w| w.reason).unwrap_or_else(|| "ContainerCreating".to_owned());
    let reason = match reason.as_str() {
        "ErrImagePull" | "ImagePullBackOff" => "image can't be pulled".to_owned(),
        _ => reason,
    };
    text(StatusCode::BAD_REQUEST, format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"))
}

struct Follow {
    logs: PodLogs,
    changed: tokio::sync::watch::Receiver<u64>,
    key: (String, String, String),
    offset: usize,
    left: usize,
}

async fn next_chunk(mut state: Follow) -> Option<(Bytes, Follow)> {
    loop {
        if state.left == 0 {
            return None;
        }
        state.changed.borrow_and_update();
        let (data, finished) = state.logs.read_from(&state.key.0, &state.key.1, &state.key.2, state.offset)?;
        if !data.is_empty() {
            let data = &data[..data.len().min(state.left)];
            state.offset += data.len();
            state.left -= data.len();
            return Some((Bytes::copy_from_slice(data), state));
        }
        if finished {
            return None;
        }
        state.changed.changed().await.ok()?;
    }
}

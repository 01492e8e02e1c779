//! An in-process, Kubernetes-API-compatible test server (HTTP on 127.0.0.1, random port).
//!
//! It speaks enough of the real API for kubectl 1.32 and kube-rs 5: discovery, OpenAPI v3,
//! CRUD with resourceVersions, selectors, chunked lists, watches with bookmarks and 410s,
//! merge/JSON/strategic patches, server-side apply, status subresources, finalizers, garbage
//! collection, Tables, CRD registration with schema validation and pruning, RBAC, a request
//! log and fault injection. Rules follow the Kubernetes API concepts documentation
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/>), cited where they apply.
//! Objects are stored as JSON, so any kind is handled generically.

mod apply;
mod auth;
mod binding;
mod builtins;
mod catalog;
mod crd;
mod delete;
mod discovery;
mod eventconv;
mod faults;
mod gc;
mod handlers;
mod jsonpath;
mod kubeconfig;
mod logs;
mod openapi;
mod patch;
mod patching;
mod podlogs;
mod protobuf;
mod requestlog;
mod router;
mod selectors;
mod server;
mod status;
mod store;
mod table;
mod tokens;
mod util;
mod watch;
mod write;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch as tokio_watch};

pub use auth::UserInfo;
pub use faults::{Faults, Match};
pub use podlogs::PodLogs;
pub(crate) use podlogs::tail_lines;
pub use requestlog::{RequestLog, RequestRecord};

use catalog::Catalog;
use store::Store;

/// Errors starting or driving the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("binding the listener: {0}")]
    Bind(#[source] std::io::Error),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("building a kube client: {0}")]
    Client(String),
    #[error("the server rejected {what}: {message}")]
    Rejected { what: String, message: String },
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// A fixed port (0 = random).
    pub port: u16,
    /// How many changes the watch history keeps; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Enforce RBAC (otherwise every request is an allowed admin).
    pub rbac: bool,
    /// Bearer tokens and who they authenticate as.
    pub tokens: Vec<(String, UserInfo)>,
    /// Who requests without credentials are in RBAC mode. kubectl never sends bearer tokens
    /// over plain HTTP, so it reaches the server as this identity and becomes the kubeconfig's
    /// user through impersonation (`as`/`as-groups`, written by [`ApiServer::write_kubeconfig`]);
    /// the default (an admin) allows that. Use [`UserInfo::anonymous`] to test anonymous access.
    pub anonymous: UserInfo,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            port: 0,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            rbac: false,
            tokens: Vec::new(),
            anonymous: UserInfo::admin(),
        }
    }
}

/// State shared by the HTTP handlers and the background collectors.
pub(crate) struct Shared {
    store: Mutex<Store>,
    log: RequestLog,
    faults: Faults,
    pod_logs: PodLogs,
    gc: Notify,
    shutdown: tokio_watch::Receiver<bool>,
    address: String,
    bookmark_interval: Duration,
    auth: auth::AuthConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running server; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: tokio_watch::Sender<bool>,
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 (must be called within a tokio runtime).
    pub async fn start(opts: ApiServerOptions) -> Result<Self, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await.map_err(ApiServerError::Bind)?;
        let addr = listener.local_addr().map_err(ApiServerError::Bind)?;
        let (stop, shutdown) = tokio_watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(Catalog::builtin(), opts.watch_history)),
            log: RequestLog::default(),
            faults: Faults::default(),
            pod_logs: PodLogs::default(),
            gc: Notify::new(),
            shutdown,
            address: addr.to_string(),
            bookmark_interval: opts.bookmark_interval,
            auth: auth::AuthConfig {
                rbac: opts.rbac,
                tokens: opts.tokens.clone(),
                anonymous: opts.anonymous.clone(),
                issued: tokens::IssuedTokens::default(),
            },
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            seed(
                &shared,
                "/api/v1/namespaces",
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        tokio::spawn(server::serve(listener, Arc::clone(&shared)));
        tokio::spawn(gc::run(Arc::clone(&shared)));
        Ok(Self { shared, addr, stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes a kubeconfig for kubectl and kube-rs; `token` selects a user from
    /// [`ApiServerOptions::tokens`] (None = no credentials). For a non-admin token user the
    /// kubeconfig also impersonates that user, since kubectl sends no token over plain HTTP.
    pub fn write_kubeconfig(&self, path: &Path, user: &str, token: Option<&str>) -> Result<(), ApiServerError> {
        let identity = token
            .and_then(|t| self.shared.auth.tokens.iter().find(|(k, _)| k == t))
            .map(|(_, u)| u)
            .filter(|u| !u.groups.iter().any(|g| g == "system:masters"));
        kubeconfig::write(path, &self.base_url(), user, token, identity)
            .map_err(|source| ApiServerError::Write { path: path.display().to_string(), source })
    }

    /// A kube client for this server (no credentials, namespace `default`).
    pub fn client(&self) -> Result<kube::Client, ApiServerError> {
        self.client_with_token(None)
    }

    /// A kube client sending `token` as its bearer token.
    pub fn client_with_token(&self, token: Option<&str>) -> Result<kube::Client, ApiServerError> {
        let uri = self.base_url().parse().map_err(|e: http::uri::InvalidUri| ApiServerError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        if let Some(t) = token {
            config.auth_info.token = Some(t.to_owned().into());
        }
        kube::Client::try_from(config).map_err(|e| ApiServerError::Client(e.to_string()))
    }

    /// Creates every CRD in the YAML files of a directory (multi-document files allowed).
    pub fn load_crds_from_dir(&self, dir: &Path) -> Result<usize, ApiServerError> {
        let read_err = |source| ApiServerError::Read { path: dir.display().to_string(), source };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        let mut n = 0;
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .map_err(|source| ApiServerError::Read { path: p.display().to_string(), source })?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v = <Value as serde::Deserialize>::deserialize(doc)
                    .map_err(|e| ApiServerError::Parse { path: p.display().to_string(), message: e.to_string() })?;
                if v.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                    continue;
                }
                self.create_crd(&v)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Creates one CRD (as a POST would).
    pub fn create_crd(&self, crd: &Value) -> Result<(), ApiServerError> {
        seed(&self.shared, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    }

    /// The request log.
    pub fn requests(&self) -> &RequestLog {
        &self.shared.log
    }

    /// Fault injection rules.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Where a kubelet writes container output for `pods/{name}/log`.
    pub fn pod_logs(&self) -> &PodLogs {
        &self.shared.pod_logs
    }

    /// Ends every open watch (clients see their stream close and re-watch).
    pub fn close_watches(&self) {
        self.shared.lock().close_watches();
    }

    /// Open watches right now.
    pub fn watch_count(&self) -> usize {
        self.shared.lock().watch_count()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv()
    }

    /// Changes how many changes the watch history keeps.
    pub fn set_watch_history(&self, size: usize) {
        self.shared.lock().set_history_cap(size);
    }

    /// Drops the whole watch history (like an etcd compaction): every older resourceVersion
    /// now gets 410 Gone.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Creates an object through the normal request path, as an admin.
fn seed(shared: &Arc<Shared>, path: &str, obj: &Value) -> Result<(), ApiServerError> {
    let req = router::Request::new(
        "POST",
        path,
        "",
        vec![("content-type".into(), "application/json".into()), ("user-agent".into(), "testenv".into())],
        bytes::Bytes::from(obj.to_string()),
    );
    let router::Route::Resource(rp) = router::route(path, &shared.lock().catalog) else {
        return Err(ApiServerError::Rejected { what: path.into(), message: "no route".into() });
    };
    let reply = handlers::dispatch(shared, &req, &rp, &UserInfo::admin());
    if reply.status >= 300 {
        let message = match reply.body {
            router::Body::Json(v) => v.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
            _ => String::new(),
        };
        return Err(ApiServerError::Rejected { what: path.into(), message });
    }
    Ok(())
}

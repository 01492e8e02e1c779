//! A recording, fault-injecting HTTP proxy for registry tests and benches: it forwards every
//! request to a backend (a registry or the testenv paging proxy), logs `METHOD path?query`,
//! and can answer tag-list or manifest requests with an error status (and `Retry-After`) a
//! given number of times, or stop answering (until told to resume) to provoke client timeouts. In bearer mode it acts
//! as a token-auth registry (as Docker Hub and GHCR do): `401` with a `Bearer realm=…`
//! challenge unless the request carries its token, which its `/token` endpoint grants for
//! the right basic credentials.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

#[derive(Default)]
struct Faults {
    /// Tag-list requests still to fail.
    remaining: AtomicU32,
    status: AtomicU32,
    retry_after: Mutex<Option<String>>,
    /// Manifest requests (`HEAD`/`GET …/manifests/…`) still to fail, and with what status.
    manifests_remaining: AtomicU32,
    manifests_status: AtomicU32,
    hang: AtomicBool,
}

/// Bearer mode: the `Authorization` the token endpoint wants, and the token it grants.
struct Bearer {
    basic: String,
    token: String,
}

struct State {
    backend: String,
    bearer: Mutex<Option<Bearer>>,
    client: Client<HttpConnector, Body>,
    log: Mutex<Vec<String>>,
    faults: Faults,
}

/// A running proxy; stops on drop.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a random loopback port, forwarding to `backend` (`host:port`, plain HTTP).
    pub async fn start(backend: &str) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), backend)
    }

    /// Serves on `listener` (bound beforehand, so its address can be handed out before the
    /// backend exists), forwarding to `backend`.
    pub fn start_on(listener: TcpListener, backend: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            backend: backend.to_owned(),
            bearer: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).build_http(),
            log: Mutex::new(Vec::new()),
            faults: Faults::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Self { addr, state, task }
    }

    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Requests whose `METHOD path?query` contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.requests().iter().filter(|line| line.contains(needle)).count()
    }

    pub fn clear(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Answers the next `times` tag-list requests with `status` (and `Retry-After`).
    pub fn fail_tag_lists(&self, times: u32, status: u16, retry_after: Option<&str>) {
        *self.state.faults.retry_after.lock().unwrap() = retry_after.map(str::to_owned);
        self.state.faults.status.store(u32::from(status), Ordering::SeqCst);
        self.state.faults.remaining.store(times, Ordering::SeqCst);
    }

    /// Requires a bearer token on every `/v2/` request, granted by `/token` to `user:password`.
    pub fn require_bearer(&self, user: &str, password: &str) {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let token = format!("token-for-{user}");
        *self.state.bearer.lock().unwrap() = Some(Bearer { basic: format!("Basic {pair}"), token });
    }

    /// Answers the next `times` manifest requests with `status` (404: `MANIFEST_UNKNOWN`, as a
    /// registry does for a manifest deleted under a tag it still lists).
    pub fn fail_manifests(&self, times: u32, status: u16) {
        self.state.faults.manifests_status.store(u32::from(status), Ordering::SeqCst);
        self.state.faults.manifests_remaining.store(times, Ordering::SeqCst);
    }

    /// From now on, accept requests but never answer them.
    pub fn hang(&self) {
        self.state.faults.hang.store(true, Ordering::SeqCst);
    }

    /// Answers new requests again (those left hanging stay so).
    pub fn resume(&self) {
        self.state.faults.hang.store(false, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = Arc::clone(&state);
        let service = service_fn(move |req| handle(Arc::clone(&state), req));
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    state.log.lock().unwrap().push(format!("{} {path}", req.method()));
    if state.faults.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if let Some(response) = bearer_gate(&state, &req) {
        return Ok(response);
    }
    if req.uri().path().contains("/manifests/") && take(&state.faults.manifests_remaining) {
        let status = u16::try_from(state.faults.manifests_status.load(Ordering::SeqCst)).unwrap();
        let body = if status == 404 {
            "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}"
        } else {
            "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"injected fault\"}]}"
        };
        return Ok(self::status(StatusCode::from_u16(status).unwrap(), body));
    }
    if req.uri().path().ends_with("/tags/list") && take(&state.faults.remaining) {
        let status = u16::try_from(state.faults.status.load(Ordering::SeqCst)).unwrap();
        let mut response = Response::new(full(Bytes::from_static(
            b"{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"injected fault\"}]}",
        )));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(retry_after) = state.faults.retry_after.lock().unwrap().clone() {
            response.headers_mut().insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        }
        return Ok(response);
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{}{path}", state.backend).parse::<Uri>().unwrap();
    let forwarded = Request::from_parts(parts, body.boxed());
    Ok(match state.client.request(forwarded).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(err) => {
            let mut response = Response::new(full(Bytes::from(format!("proxy: {err}"))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    })
}

/// In bearer mode: the token endpoint, or a 401 challenge for requests without the token.
fn bearer_gate(state: &State, req: &Request<Incoming>) -> Option<Response<Body>> {
    let bearer = state.bearer.lock().unwrap();
    let bearer = bearer.as_ref()?;
    let authorization = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if req.uri().path() == "/token" {
        return Some(if authorization == Some(bearer.basic.as_str()) {
            Response::new(full(Bytes::from(format!("{{\"token\":\"{}\",\"expires_in\":300}}", bearer.token))))
        } else {
            status(StatusCode::UNAUTHORIZED, "{\"details\":\"incorrect username or password\"}")
        });
    }
    if authorization == Some(format!("Bearer {}", bearer.token).as_str()) {
        return None;
    }
    let mut response = status(StatusCode::UNAUTHORIZED, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
    let host = req.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"alustan-test\"");
    response.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    Some(response)
}

fn status(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = code;
    response
}

/// Takes one from a fault counter; `false` when none is left.
fn take(remaining: &AtomicU32) -> bool {
    remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

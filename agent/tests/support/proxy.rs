//! A recording, fault-injecting HTTP proxy for registry tests and benches: it forwards every
//! request to a backend (a registry or the testenv paging proxy), logs `METHOD path?query`,
//! and can answer tag-list requests with an error status (and `Retry-After`) a given number
//! of times, or stop answering altogether to provoke client timeouts.

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
    hang: AtomicBool,
}

struct State {
    backend: String,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            backend: backend.to_owned(),
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

    /// From now on, accept requests but never answer them.
    pub fn hang(&self) {
        self.state.faults.hang.store(true, Ordering::SeqCst);
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
    if req.uri().path().ends_with("/tags/list") && take_fault(&state.faults) {
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

fn take_fault(faults: &Faults) -> bool {
    faults.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

//! A scripted registry on 127.0.0.1 for unit tests: each request is answered by a handler
//! (a tag page with a `Link`, a digest, a status, or no answer at all), logged, and counted
//! while in progress, so tests can assert what reached the server and how much at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{ClientConfig, RegistryClient, RetryPolicy, ScanSettings, Scanner};

/// How the server answers one request.
pub enum Answer {
    /// 200 with a tag page, and a `Link: <next>; rel="next"` when `next` is set.
    Tags {
        tags: Vec<String>,
        next: Option<String>,
    },
    /// 200 with this `Docker-Content-Digest`.
    Digest(String),
    Status(u16),
    /// Never answers.
    Hang,
    /// Waits, then answers.
    After(Duration, Box<Answer>),
}

type Handler = dyn Fn(&Method, &str) -> Answer + Send + Sync;

struct State {
    handler: Box<Handler>,
    log: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running server; stops on drop.
pub struct FakeRegistry {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a request in progress for as long as it lives (a hung request ends when its
/// connection does).
struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeRegistry {
    /// Serves on a random loopback port; `handler` gets the method and `path?query`.
    pub async fn start(handler: impl Fn(&Method, &str) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Self { addr, state, task }
    }

    /// Every tag on one page, and a digest for each manifest (`sha256:` + the tag's number).
    pub async fn healthy(tags: &[&str]) -> Self {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        Self::start(move |_, path| {
            if path.contains("/tags/list") {
                Answer::Tags { tags: tags.clone(), next: None }
            } else {
                Answer::Digest(digest_of(path.rsplit('/').next().unwrap_or_default()))
            }
        })
        .await
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.requests().iter().filter(|r| r.contains(needle)).count()
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

/// A valid, distinct digest per tag.
pub fn digest_of(tag: &str) -> String {
    let hex = hex::encode(tag.as_bytes());
    format!("sha256:{:0>64}", &hex[..hex.len().min(64)])
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

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    state.log.lock().unwrap().push(format!("{} {path}", req.method()));
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _counted = InFlight(Arc::clone(&state));
    let mut answer = (state.handler)(req.method(), &path);
    loop {
        answer = match answer {
            Answer::After(wait, then) => {
                tokio::time::sleep(wait).await;
                *then
            }
            Answer::Hang => std::future::pending().await,
            other => break Ok(respond(other)),
        };
    }
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    match answer {
        Answer::Tags { tags, next } => {
            *response.body_mut() = Full::new(Bytes::from(serde_json::json!({"name": "x", "tags": tags}).to_string()));
            if let Some(next) = next {
                response.headers_mut().insert("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
            }
        }
        Answer::Digest(digest) => {
            response.headers_mut().insert("docker-content-digest", digest.parse().unwrap());
        }
        Answer::Status(code) => *response.status_mut() = StatusCode::from_u16(code).unwrap(),
        Answer::Hang | Answer::After(..) => unreachable!("resolved by `handle`"),
    }
    response
}

/// A scanner speaking plain HTTP to `hosts`, retrying within milliseconds.
pub fn scanner(hosts: &[&str], settings: ScanSettings) -> Scanner {
    let config = ClientConfig {
        insecure_registries: hosts.iter().map(|h| (*h).to_owned()).collect(),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_secs(1),
        },
        ..ClientConfig::default()
    };
    Scanner::with_settings(RegistryClient::new(config).unwrap(), settings)
}

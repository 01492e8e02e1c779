//! A proxy that pages `GET /v2/<name>/tags/list` the way Docker Hub and GHCR do, in front of a
//! registry (distribution 2.8) that ignores `n`. Everything else is forwarded untouched, bodies
//! streamed, auth headers and challenges included, so clients see one consistent registry.
//!
//! Paging follows the distribution spec ("Listing Tags"): tags in lexical order, at most `n`
//! after `last`, and a `Link: <…?n=N&last=LAST>; rel="next"` header while more remain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LINK};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::RegistryError;

type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A running paging proxy; stops (with its connections) on drop.
pub struct PagingProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PagingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    backend: String,
    page_size: usize,
    client: Client<HttpConnector, Body>,
}

impl PagingProxy {
    /// Listens on a random loopback port and forwards to `backend` (`host:port`, plain HTTP).
    /// `page_size` is the default and the maximum page: a larger `n` is capped, as Docker Hub
    /// caps it at 100.
    pub async fn start(backend: &str, page_size: usize) -> Result<Self, RegistryError> {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.map_err(|err| RegistryError::io("binding the paging proxy", err))?;
        let addr = listener.local_addr().map_err(|err| RegistryError::io("reading the paging proxy address", err))?;
        let state = Arc::new(State {
            backend: backend.to_owned(),
            page_size: page_size.max(1),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = tokio::spawn(accept_loop(listener, state));
        Ok(Self { addr, task })
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Connections live in the set, so aborting this task closes them too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // e.g. out of file descriptors: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let state = Arc::clone(&state);
        let service = service_fn(move |req| handle(Arc::clone(&state), req));
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        // Reap finished connections so the set does not grow forever.
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match tags_list_name(&req) {
        Some(name) => page(&state, &req, &name).await,
        None => forward(&state, req).await,
    };
    Ok(response.unwrap_or_else(|message| text_response(StatusCode::BAD_GATEWAY, message)))
}

/// `Some(name)` for `GET /v2/<name>/tags/list`.
fn tags_list_name(req: &Request<Incoming>) -> Option<String> {
    if req.method() != Method::GET {
        return None;
    }
    let name = req.uri().path().strip_prefix("/v2/")?.strip_suffix("/tags/list")?;
    (!name.is_empty()).then(|| name.to_owned())
}

async fn forward(state: &State, req: Request<Incoming>) -> Result<Response<Body>, String> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = backend_uri(state, path)?;
    // The Host header is kept: the registry builds upload `Location`s from it, which then point
    // back at the proxy.
    strip_hop_by_hop(&mut parts.headers);
    let request = Request::from_parts(parts, body.boxed());
    let response =
        state.client.request(request).await.map_err(|err| format!("paging proxy: backend {}: {err}", state.backend))?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

#[derive(Deserialize)]
struct TagList {
    name: String,
    /// `null` once every tag of a repository was deleted (distribution 2.8).
    tags: Option<Vec<String>>,
}

#[derive(Serialize)]
struct TagPage<'a> {
    name: &'a str,
    tags: &'a [String],
}

async fn page(state: &State, req: &Request<Incoming>, name: &str) -> Result<Response<Body>, String> {
    let Some((n, last)) = parse_query(req.uri().query(), state.page_size) else {
        let body =
            r#"{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}"#;
        return Ok(json_response(StatusCode::BAD_REQUEST, body.into()));
    };
    // Fetch the full list with the client's own headers (its credentials).
    let mut request = Request::get(backend_uri(state, &format!("/v2/{name}/tags/list"))?)
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .map_err(|err| format!("paging proxy: {err}"))?;
    *request.headers_mut() = req.headers().clone();
    strip_hop_by_hop(request.headers_mut());
    let response =
        state.client.request(request).await.map_err(|err| format!("paging proxy: backend {}: {err}", state.backend))?;
    if response.status() != StatusCode::OK {
        // Errors and auth challenges go back as the registry sent them.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(parts, body.boxed()));
    }
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|err| format!("paging proxy: reading the tag list: {err}"))?.to_bytes();
    let backend_list: TagList = serde_json::from_slice(&body)
        .map_err(|err| format!("paging proxy: invalid tag list from the registry: {err}"))?;
    let mut tags = backend_list.tags.unwrap_or_default();
    tags.sort_unstable();
    let after: Vec<String> =
        tags.into_iter().filter(|tag| last.as_deref().is_none_or(|last| tag.as_str() > last)).collect();
    let page = &after[..n.min(after.len())];
    let body = serde_json::to_vec(&TagPage { name: &backend_list.name, tags: page })
        .map_err(|err| format!("paging proxy: {err}"))?;
    let mut response = json_response(StatusCode::OK, body.into());
    for (header, value) in &parts.headers {
        if header != CONTENT_LENGTH && header != CONTENT_TYPE && !is_hop_by_hop(header.as_str()) {
            response.headers_mut().append(header, value.clone());
        }
    }
    if let (true, Some(last_tag)) = (after.len() > page.len(), page.last()) {
        let link = format!("</v2/{name}/tags/list?n={n}&last={last_tag}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}

/// `(n, last)`: `n` defaults to and is capped at `page_size`; `None` when `n` is not a number.
fn parse_query(query: Option<&str>, page_size: usize) -> Option<(usize, Option<String>)> {
    let mut n = page_size;
    let mut last = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "n" => n = value.parse::<usize>().ok()?.min(page_size),
            "last" => last = Some(value.into_owned()),
            _ => {}
        }
    }
    Some((n, last))
}

fn backend_uri(state: &State, path_and_query: &str) -> Result<Uri, String> {
    format!("http://{}{path_and_query}", state.backend)
        .parse()
        .map_err(|err| format!("paging proxy: bad path {path_and_query:?}: {err}"))
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

fn text_response(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

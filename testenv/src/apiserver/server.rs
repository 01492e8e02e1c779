//! The HTTP/1.1 server: reads each request whole, routes it, logs it, applies faults and
//! authorization, and writes JSON or streamed bodies.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Shared;
use super::auth::{self, Attributes};
use super::discovery;
use super::handlers::{self, verb_of};
use super::openapi;
use super::requestlog::RequestRecord;
use super::router::{self, Body, Reply, Request, Route};
use super::status::ApiError;

type ResBody = BoxBody<Bytes, Infallible>;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(connection(stream, shared));
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let svc_shared = Arc::clone(&shared);
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let shared = Arc::clone(&svc_shared);
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> hyper::Response<ResBody> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let request = Request::new(parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""), headers, body);
    let reply = respond(&shared, &request).await;
    into_response(reply)
}

async fn respond(shared: &Arc<Shared>, req: &Request) -> Reply {
    let route = router::route(&req.path, &shared.lock().catalog);
    let mut rec = RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.raw_query.clone(),
        verb: req.method.to_ascii_lowercase(),
        group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        user_agent: req.header("user-agent").to_owned(),
        user: String::new(),
        status: 0,
    };
    if let Route::Resource(rp) = &route {
        rec.verb = verb_of(req, rp).to_owned();
        rec.group.clone_from(&rp.group);
        rec.resource.clone_from(&rp.resource);
        rec.subresource = rp.subresource.clone().unwrap_or_default();
        rec.namespace = rp.namespace.clone().unwrap_or_default();
        rec.name = rp.name.clone().unwrap_or_default();
        // As the apiserver's RequestInfo: a list or watch of one name (`metadata.name=X`) is a
        // request for that name, so RBAC `resourceNames` can allow it.
        if rec.name.is_empty() && matches!(rec.verb.as_str(), "list" | "watch") {
            let selector = req.param("fieldSelector").unwrap_or_default();
            rec.name = super::selectors::exact_name(selector).unwrap_or_default().to_owned();
        }
    }
    let reply = answer(shared, req, &route, &mut rec).await;
    rec.status = reply.status;
    shared.log.push(rec);
    reply
}

async fn answer(shared: &Arc<Shared>, req: &Request, route: &Route, rec: &mut RequestRecord) -> Reply {
    let user = match shared.auth.authenticate(req.header("authorization")) {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    let groups: Vec<String> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("impersonate-group"))
        .map(|(_, v)| v.clone())
        .collect();
    let imp = auth::impersonate(&shared.lock(), shared.auth.rbac, user, req.header("impersonate-user"), &groups);
    let user = match imp {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    rec.user.clone_from(&user.name);
    let verdict = shared.faults.check(rec);
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    if let Some((code, retry_after)) = verdict.fail {
        return ApiError::from_code(code, retry_after).into();
    }
    if shared.auth.rbac {
        let attrs = match route {
            Route::Resource(_) => Attributes {
                verb: rec.verb.clone(),
                group: rec.group.clone(),
                resource: rec.resource.clone(),
                subresource: rec.subresource.clone(),
                namespace: rec.namespace.clone(),
                name: rec.name.clone(),
                path: None,
            },
            _ => Attributes { verb: rec.verb.clone(), path: Some(req.path.clone()), ..Attributes::default() },
        };
        if !auth::allowed(&shared.lock(), &user, &attrs) {
            return auth::forbidden(&user, &attrs).into();
        }
    }
    if req.method != "GET" && !matches!(route, Route::Resource(_)) {
        return ApiError::method_not_allowed().into();
    }
    match route {
        Route::Version => Reply::json(200, discovery::version()),
        Route::Health => Reply { status: 200, body: Body::Bytes(b"ok".to_vec(), "text/plain"), headers: Vec::new() },
        Route::Api => Reply::json(200, discovery::api_versions(&shared.address)),
        Route::Apis => Reply::json(200, discovery::api_groups(&shared.lock().catalog)),
        Route::Group(g) => found(discovery::api_group(&shared.lock().catalog, g)),
        Route::Resources { group, version } => found(discovery::resources(&shared.lock().catalog, group, version)),
        Route::OpenApiV3 => Reply::json(200, openapi::index(&shared.lock().catalog)),
        Route::OpenApiV3Doc(path) => found(openapi::document(&shared.lock().catalog, path)),
        Route::Resource(rp) => handlers::dispatch(shared, req, rp, &user),
        Route::NotFound => ApiError::no_route().into(),
    }
}

fn found(doc: Option<serde_json::Value>) -> Reply {
    doc.map_or_else(|| ApiError::no_route().into(), |d| Reply::json(200, d))
}

fn into_response(reply: Reply) -> hyper::Response<ResBody> {
    let (ctype, body): (&str, ResBody) = match reply.body {
        Body::Json(v) => ("application/json", Full::new(Bytes::from(v.to_string())).boxed()),
        Body::Bytes(b, ct) => (ct, Full::new(Bytes::from(b)).boxed()),
        Body::Stream(rx, ct) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            (ct, http_body_util::BodyExt::boxed(StreamBody::new(stream)))
        }
    };
    let mut builder = hyper::Response::builder().status(reply.status).header("content-type", ctype);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(body).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"bad response")).boxed());
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

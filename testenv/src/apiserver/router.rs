//! Request/response types and URL routing.
//! Paths follow <https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris>:
//! `/api/v1/...` for the core group, `/apis/{group}/{version}/...` otherwise, with
//! `namespaces/{ns}/` before namespaced resources and `/{name}/{subresource}` after.

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::status::ApiError;
use super::util::parse_query;

/// A fully read request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn new(method: &str, path: &str, raw_query: &str, headers: Vec<(String, String)>, body: Bytes) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            raw_query: raw_query.to_owned(),
            query: parse_query(raw_query),
            headers,
            body,
        }
    }

    /// The first value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true" | "1"))
    }

    /// A header value ("" when absent); names compare case-insensitively.
    pub fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
    }
}

/// A resource URL, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    Resources { group: String, version: String },
    OpenApiV3,
    OpenApiV3Doc(String),
    Resource(ResourcePath),
    NotFound,
}

/// Routes a path (without query) against the catalog.
pub fn route(path: &str, cat: &Catalog) -> Route {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group((*g).to_owned()),
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3Doc(rest.join("/")),
        ["api", v, rest @ ..] => resource_route("", v, rest, cat),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest, cat),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str], cat: &Catalog) -> Route {
    let own = |s: &&str| (*s).to_owned();
    let mk = |ns: Option<&str>, parts: &[&str]| {
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Route::NotFound;
        }
        Route::Resource(ResourcePath {
            group: group.to_owned(),
            version: version.to_owned(),
            namespace: ns.map(str::to_owned),
            resource: parts[0].to_owned(),
            name: parts.get(1).map(own),
            subresource: parts.get(2).map(own),
        })
    };
    match rest {
        [] => Route::Resources { group: group.to_owned(), version: version.to_owned() },
        ["namespaces", ns, res, tail @ ..] if cat.find(group, version, res).is_some_and(|d| d.namespaced) => {
            let mut parts = vec![*res];
            parts.extend_from_slice(tail);
            mk(Some(ns), &parts)
        }
        parts => mk(None, parts),
    }
}

/// A response body.
pub enum Body {
    Json(Value),
    Bytes(Vec<u8>, &'static str),
    /// A streamed body (watch events, followed logs).
    Stream(mpsc::Receiver<Bytes>, &'static str),
}

/// A response.
pub struct Reply {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Self {
        Self { status, body: Body::Json(v), headers: Vec::new() }
    }

    pub fn error(e: &ApiError) -> Self {
        let mut r = Self::json(e.code, e.to_status());
        if let Some(secs) = e.retry_after {
            r.headers.push(("Retry-After".into(), secs.to_string()));
        }
        r
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Self::error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resource_paths() {
        let cat = Catalog::builtin();
        let r = route("/api/v1/namespaces/default/pods/p/log", &cat);
        let Route::Resource(p) = r else { panic!("{r:?}") };
        assert_eq!(
            (p.namespace.as_deref(), p.resource.as_str(), p.name.as_deref(), p.subresource.as_deref()),
            (Some("default"), "pods", Some("p"), Some("log"))
        );
        let Route::Resource(p) = route("/api/v1/namespaces/x/status", &cat) else { panic!() };
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref(), p.subresource.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        assert_eq!(route("/apis/batch/v1", &cat), Route::Resources { group: "batch".into(), version: "v1".into() });
        assert_eq!(route("/nope", &cat), Route::NotFound);
    }
}

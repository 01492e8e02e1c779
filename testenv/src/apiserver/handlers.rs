//! Request dispatch for resource URLs, and the read verbs (get, list).

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::ser::SerializeMap as _;
use serde_json::{Value, json};

use super::Shared;
use super::auth::UserInfo;
use super::catalog::{ResourceDef, Special, VersionDef};
use super::eventconv;
use super::router::{Body, Reply, Request, ResourcePath};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::ApiError;
use super::store::ObjKey;
use super::table::{self, Include};
use super::util::meta_str;
use super::{binding, delete, logs, patching, tokens, watch, write};

/// Everything a resource handler needs.
pub struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub req: &'a Request,
    pub rp: &'a ResourcePath,
    pub def: Arc<ResourceDef>,
    pub version: VersionDef,
    pub user: &'a UserInfo,
    /// `Warning` headers to send.
    pub warnings: Vec<String>,
}

impl Ctx<'_> {
    pub fn namespace(&self) -> &str {
        self.rp.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or("")
    }

    pub fn subresource(&self) -> &str {
        self.rp.subresource.as_deref().unwrap_or("")
    }

    pub fn key(&self) -> ObjKey {
        (if self.def.namespaced { self.namespace().to_owned() } else { String::new() }, self.name().to_owned())
    }

    pub fn api_version(&self) -> String {
        self.def.api_version(&self.version.name)
    }

    /// `dryRun=All` (the only dry-run value).
    pub fn dry_run(&self) -> bool {
        self.req.param("dryRun") == Some("All")
    }

    /// The stored object as this request's version shows it.
    pub fn external<'a>(&self, obj: &'a Value) -> Cow<'a, Value> {
        external(&self.def, &self.version.name, obj)
    }

    /// An object of this request's version in its storage form.
    pub fn internal(&self, obj: Value) -> Value {
        if self.def.special == Special::EventV1 { eventconv::v1_to_core(obj) } else { obj }
    }

    pub fn wants_table(&self) -> bool {
        table::wants_table(self.req.header("accept"))
    }

    /// A JSON reply carrying this request's warnings.
    pub fn reply(&self, status: u16, body: Value) -> Reply {
        let mut r = Reply::json(status, body);
        for w in &self.warnings {
            let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
            r.headers.push(("Warning".into(), format!("299 - \"{escaped}\"")));
        }
        r
    }

    /// A single object, as a Table when asked.
    pub fn object_reply(&self, status: u16, obj: &Value) -> Reply {
        if self.wants_table() {
            let include = Include::parse(self.req.param("includeObject"));
            return self.reply(status, table::render_one(&self.def, &self.version, obj, include));
        }
        // Serialized from the borrowed object: no copy of it.
        match serde_json::to_vec(obj) {
            Ok(bytes) => {
                let mut reply = self.reply(status, Value::Null);
                reply.body = Body::Bytes(bytes, "application/json");
                reply
            }
            Err(e) => ApiError::internal(e.to_string()).into(),
        }
    }

    pub fn selectors(&self) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.req.param("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.req.param("fieldSelector").unwrap_or(""), &self.def)?,
        })
    }
}

/// The stored object with the given version's apiVersion/kind (and event shape).
pub fn external<'a>(def: &ResourceDef, version: &str, obj: &'a Value) -> Cow<'a, Value> {
    let api_version = def.api_version(version);
    // Most stored objects already are in the version asked: no copy.
    if def.special != Special::EventV1
        && obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
        && obj.get("kind").and_then(Value::as_str) == Some(def.kind.as_str())
    {
        return Cow::Borrowed(obj);
    }
    let mut o = if def.special == Special::EventV1 { eventconv::core_to_v1(obj.clone()) } else { obj.clone() };
    if let Value::Object(m) = &mut o {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(def.kind));
    }
    Cow::Owned(o)
}

/// The Kubernetes verb of a request.
pub fn verb_of(req: &Request, rp: &ResourcePath) -> &'static str {
    match (req.method.as_str(), rp.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if req.flag("watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Serves a resource URL.
pub fn dispatch(shared: &Arc<Shared>, req: &Request, rp: &ResourcePath, user: &UserInfo) -> Reply {
    let def = shared.lock().catalog.find(&rp.group, &rp.version, &rp.resource);
    let Some(def) = def else { return ApiError::no_route().into() };
    let Some(version) = def.version(&rp.version).cloned() else { return ApiError::no_route().into() };
    let mut ctx = Ctx { shared, req, rp, def, version, user, warnings: Vec::new() };
    if ctx.def.namespaced
        && rp.namespace.is_none()
        && (rp.name.is_some() || req.method == "POST" || req.method == "DELETE")
    {
        return ApiError::no_route().into();
    }
    let sub = ctx.subresource().to_owned();
    let sub_ok = match sub.as_str() {
        "" => true,
        "status" => ctx.version.status,
        s => ctx.def.extra_subresources.contains(&s),
    };
    if !sub_ok {
        return ApiError::no_route().into();
    }
    let verb = verb_of(req, rp);
    if !ctx.def.verbs.contains(&verb) && sub.is_empty() {
        return ApiError::method_not_allowed().into();
    }
    let result = match (verb, sub.as_str()) {
        ("get", "log") => return logs::serve(&ctx),
        ("create", "token") => tokens::token_request(&ctx),
        ("create", "binding") => binding::bind(&ctx),
        (_, "log" | "token" | "binding") => Err(ApiError::method_not_allowed()),
        ("get", _) => get(&ctx),
        ("list", "") => list(&ctx),
        ("watch", "") => return watch::serve(&ctx),
        ("create", "") => write::create_request(&mut ctx),
        ("update", _) => write::update_request(&mut ctx),
        ("patch", _) => patching::patch_request(&mut ctx),
        ("delete", "") => delete::delete_request(&mut ctx),
        ("deletecollection", "") => delete::delete_collection(&mut ctx),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = ctx.reply(e.code, e.to_status());
            if let Some(secs) = e.retry_after {
                r.headers.push(("Retry-After".into(), secs.to_string()));
            }
            r
        }
    }
}

fn get(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let obj = ctx.shared.lock().get(&ctx.def.store, &ctx.key());
    let obj = obj.ok_or_else(|| ApiError::not_found(&ctx.def.target(ctx.name())))?;
    Ok(ctx.object_reply(200, &ctx.external(&obj)))
}

/// A continue token: the list's revision and the last key returned (opaque to clients).
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    URL_SAFE_NO_PAD.encode(json!({"rv": rv, "ns": key.0, "name": key.1}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((rv, (s("ns"), s("name"))))
}

fn key_of(obj: &Value) -> ObjKey {
    (meta_str(obj, "namespace").to_owned(), meta_str(obj, "name").to_owned())
}

/// LIST with selectors and chunking (`limit`/`continue`), per the API concepts docs,
/// "Retrieving large results sets in chunks": every chunk is served from the revision of the
/// first one, and a token older than the retained history is a 410.
fn list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let sel = ctx.selectors()?;
    let limit = ctx.req.param("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let ns = ctx.rp.namespace.as_deref();
    let (objs, rv, after) = {
        let st = ctx.shared.lock();
        if let Some(token) = ctx.req.param("continue").filter(|t| !t.is_empty()) {
            let (rv, after) = decode_continue(token)?;
            let objs = st.list_at(&ctx.def.store, ns, rv).map_err(|_| {
                ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            })?;
            (objs, rv, Some(after))
        } else if ctx.req.param("resourceVersionMatch") == Some("Exact") {
            let rv = ctx.req.param("resourceVersion").and_then(|r| r.parse::<u64>().ok()).unwrap_or(st.rv());
            let objs = st
                .list_at(&ctx.def.store, ns, rv)
                .map_err(|e| ApiError::gone(format!("too old resource version: {} ({})", e.requested, e.oldest)))?;
            (objs, rv, None)
        } else {
            let rv = st.rv();
            if let Some(want) = ctx.req.param("resourceVersion").and_then(|r| r.parse::<u64>().ok())
                && want > rv
            {
                return Err(ApiError::new(504, "Timeout", format!("Too large resource version: {want}, current: {rv}"))
                    .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})));
            }
            // An equality label requirement narrows the scan to the objects carrying it (the
            // selector still checks them all). Not for the events.k8s.io shape, whose
            // selectors match the converted object.
            let narrowed = match sel.labels.first_equality() {
                Some((key, value)) if ctx.def.special != Special::EventV1 => {
                    st.list_labeled(&ctx.def.store, ns, key, value)
                }
                _ => st.list(&ctx.def.store, ns),
            };
            (narrowed, rv, None)
        }
    };
    // Selectors read metadata and kind-specific fields that `external` leaves alone, except
    // for the events.k8s.io shape: match stored objects and convert only what is sent.
    let converts = ctx.def.special == Special::EventV1;
    let mut matching = objs
        .iter()
        .filter(|o| after.as_ref().is_none_or(|a| key_of(o) > *a))
        .filter(|o| if converts { sel.matches(&ctx.external(o)) } else { sel.matches(o) });
    let page: Vec<&Arc<Value>> = match limit {
        Some(n) => matching.by_ref().take(n).collect(),
        None => matching.by_ref().collect(),
    };
    let remaining = matching.count();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if remaining > 0
        && let Some(last) = page.last()
    {
        meta["continue"] = json!(encode_continue(rv, &key_of(last)));
        if sel.labels.is_empty() && sel.fields.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if ctx.wants_table() {
        let items: Vec<Value> = page.iter().map(|o| ctx.external(o).into_owned()).collect();
        let include = Include::parse(ctx.req.param("includeObject"));
        return Ok(ctx.reply(200, table::render(&ctx.def, &ctx.version, &items, include, &meta)));
    }
    let converted: Vec<Value> =
        if converts { page.iter().map(|o| ctx.external(o).into_owned()).collect() } else { Vec::new() };
    let objects: Vec<&Value> = if converts { converted.iter().collect() } else { page.iter().map(|o| &***o).collect() };
    // Typed (built-in) lists carry no apiVersion/kind on their items; custom resources do.
    let api_version = ctx.api_version();
    let typed = ctx.def.custom.then_some((api_version.as_str(), ctx.def.kind.as_str()));
    let body = ListOut {
        kind: format!("{}List", ctx.def.kind),
        api_version: &api_version,
        metadata: &meta,
        items: objects.into_iter().map(|obj| Item { obj, typed }).collect(),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut reply = ctx.reply(200, Value::Null);
    reply.body = Body::Bytes(bytes, "application/json");
    Ok(reply)
}

/// A LIST response, serialized straight from the stored objects (no per-item clone).
#[derive(Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: &'a Value,
    items: Vec<Item<'a>>,
}

/// One list item: the stored object with its type set (`Some`) or omitted (`None`).
struct Item<'a> {
    obj: &'a Value,
    typed: Option<(&'a str, &'a str)>,
}

impl Serialize for Item<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some((api_version, kind)) = self.typed {
            map.serialize_entry("apiVersion", api_version)?;
            map.serialize_entry("kind", kind)?;
        }
        if let Some(fields) = self.obj.as_object() {
            for (k, v) in fields.iter().filter(|(k, _)| *k != "apiVersion" && *k != "kind") {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

//! The write verbs: create, update, patch (merge, JSON, strategic, server-side apply), delete.
//!
//! Rules from the API concepts docs and the CRD task page:
//! - Optimistic concurrency: a write carrying a stale `metadata.resourceVersion` is a 409.
//! - Status subresource: main-resource writes ignore `.status`; `/status` writes change only
//!   `.status`. Custom resources bump `metadata.generation` on any change outside `metadata`
//!   and `status`; built-ins with generations bump it on `.spec` changes.
//! - A write whose result equals the stored object (managedFields timestamps aside) is not
//!   persisted: no new resourceVersion, no watch event.
//! - Finalizers (working-with-objects/finalizers): DELETE sets `deletionTimestamp`; the object
//!   goes away when an update removes its last finalizer. No finalizer may be added meanwhile.
//! - `dryRun=All` runs every check and returns the result without storing it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::apply::{self, Scope, Writer};
use super::catalog::{ResourceDef, Special};
use super::delete::after_delete;
use super::handlers::Ctx;
use super::router::Reply;
use super::status::{ApiError, Cause, Target};
use super::store::{ObjKey, Store};
use super::util::{finalizers, is_deleting, meta_mut, meta_str, name_suffix, new_uid, now_rfc3339, owner_uids};
use super::{Shared, builtins, crd};
use crate::schema;

pub fn parse_body(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let ct = ctx.req.header("content-type");
    let v: Value = if ct.contains("protobuf") {
        super::protobuf::decode(&ctx.req.body).map_err(|e| {
            ApiError::unsupported_media_type(
                &e,
                &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            )
        })?
    } else if ct.contains("yaml") {
        serde_yaml::from_slice(&ctx.req.body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&ctx.req.body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?
    };
    if !v.is_object() || v.get("metadata").is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(ApiError::bad_request("the body of the request must be a JSON object with an object metadata"));
    }
    Ok(v)
}

/// Checks (or fills) apiVersion/kind against the URL.
pub(super) fn check_type(ctx: &Ctx<'_>, mut obj: Value, required: bool) -> Result<Value, ApiError> {
    let want_av = ctx.api_version();
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
    if required && (av.is_empty() || kind.is_empty()) {
        let which = if av.is_empty() { "apiVersion" } else { "kind" };
        return Err(ApiError::bad_request(format!("{which} must be set")));
    }
    if !av.is_empty() && av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if !kind.is_empty() && kind != ctx.def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            ctx.def.kind
        )));
    }
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(want_av));
        m.insert("kind".into(), json!(ctx.def.kind));
    }
    Ok(obj)
}

/// Checks the body's name/namespace against the URL, filling them when absent.
pub(super) fn check_identity(ctx: &Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_owned();
    if !name.is_empty() && name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    check_namespace(ctx, obj)?;
    meta_mut(obj).insert("name".into(), json!(ctx.name()));
    Ok(())
}

fn check_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    if ctx.def.namespaced {
        let ns = meta_str(obj, "namespace");
        if !ns.is_empty() && ns != ctx.namespace() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(obj).insert("namespace".into(), json!(ctx.namespace()));
    } else {
        meta_mut(obj).remove("namespace");
    }
    Ok(())
}

/// The field manager: `fieldManager`, else the user agent up to its first `/`.
pub(super) fn manager(ctx: &Ctx<'_>) -> String {
    match ctx.req.param("fieldManager") {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            let ua = ctx.req.header("user-agent");
            let m = ua.split('/').next().unwrap_or("");
            if m.is_empty() { "unknown".to_owned() } else { m.to_owned() }
        }
    }
}

fn scope(ctx: &Ctx<'_>) -> Scope {
    if ctx.subresource() == "status" {
        Scope::StatusOnly
    } else if ctx.version.status {
        Scope::NoStatus
    } else {
        Scope::All
    }
}

pub(super) fn writer<'a>(ctx: &Ctx<'_>, manager: &'a str, api_version: &'a str, subresource: &'a str) -> Writer<'a> {
    Writer { manager, api_version, subresource, scope: scope(ctx) }
}

pub(super) fn invalid(def: &ResourceDef, name: &str, causes: &[Cause]) -> ApiError {
    ApiError::invalid(&def.target(name), causes)
}

/// Prunes unknown fields (warning or, with `fieldValidation=Strict`, failing) and validates a
/// custom resource against its version's schema (CRD task page, "Field pruning", "Validation").
fn custom_checks(ctx: &mut Ctx<'_>, obj: &mut Value, causes: &mut Vec<Cause>) -> Result<(), ApiError> {
    let Some(sch) = ctx.version.schema.clone() else { return Ok(()) };
    let pruned = schema::prune(&sch, obj);
    match ctx.req.param("fieldValidation").unwrap_or("Warn") {
        "Strict" if !pruned.is_empty() => {
            let list: Vec<String> = pruned.iter().map(|p| format!("unknown field \"{p}\"")).collect();
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                list.join(", "),
                kind = ctx.def.kind,
                v = ctx.version.name
            )));
        }
        "Ignore" => {}
        _ => ctx.warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\""))),
    }
    causes.extend(schema::validate(&sch, obj).into_iter().map(|e| Cause {
        reason: e.reason().to_owned(),
        message: e.message(),
        field: e.field.clone(),
    }));
    Ok(())
}

fn namespace_target(ns: &str) -> Target<'_> {
    Target { group: "", resource: "namespaces", kind: "Namespace", name: ns }
}

/// Creates an object (external form in, stored form out).
pub(super) fn create(
    ctx: &mut Ctx<'_>,
    st: &mut Store,
    mut obj: Value,
    track: Option<&str>,
) -> Result<Arc<Value>, ApiError> {
    let def = Arc::clone(&ctx.def);
    if def.namespaced && ctx.namespace().is_empty() {
        return Err(ApiError::no_route());
    }
    check_namespace(ctx, &mut obj)?;
    let mut name = meta_str(&obj, "name").to_owned();
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName").to_owned();
        if prefix.is_empty() {
            let c = Cause {
                reason: "FieldValueRequired".into(),
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            };
            return Err(invalid(&def, "", &[c]));
        }
        name = format!("{prefix}{}", name_suffix());
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    let mut causes = builtins::name_causes(&def, &name);
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
    }
    let uid = new_uid();
    {
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for f in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generation"] {
            m.remove(f);
        }
        // Apply computed managedFields already; anything a client sent is replaced.
        if track.is_some() {
            m.remove("managedFields");
        }
        if def.generation {
            m.insert("generation".into(), json!(1));
        }
    }
    if ctx.version.status
        && let Value::Object(m) = &mut obj
    {
        m.remove("status");
    }
    causes.extend(builtins::on_create(&def, &mut obj, &uid));
    if def.special == Special::Crd {
        causes.extend(crd::validate(&obj));
        obj["status"] = crd::status(&obj, None);
    }
    if def.custom {
        custom_checks(ctx, &mut obj, &mut causes)?;
    }
    if !causes.is_empty() {
        return Err(invalid(&def, &name, &causes));
    }
    let key: ObjKey = (if def.namespaced { ctx.namespace().to_owned() } else { String::new() }, name.clone());
    if def.namespaced {
        match st.get("/namespaces", &(String::new(), key.0.clone())) {
            None => return Err(ApiError::not_found(&namespace_target(&key.0))),
            Some(ns) if is_deleting(&ns) => {
                return Err(ApiError::forbidden(
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                        def.target(&name).qualified_resource(),
                        key.0
                    ),
                    json!({"name": name, "group": def.group, "kind": def.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {} is being terminated", key.0), "field": "metadata.namespace"}]}),
                ));
            }
            Some(_) => {}
        }
    }
    if st.get(&def.store, &key).is_some() {
        return Err(ApiError::already_exists(&def.target(&name)));
    }
    if let Some(manager) = track {
        let av = ctx.api_version();
        apply::track_update(None, &mut obj, &writer(ctx, manager, &av, ""));
    }
    let obj = ctx.internal(obj);
    if ctx.dry_run() {
        return Ok(Arc::new(obj));
    }
    let stored = st.write(&def.store, &key, Some(obj)).ok_or_else(|| ApiError::internal("write lost"))?;
    after_write(ctx.shared, st, &def, None, &stored);
    Ok(stored)
}

/// Side effects of a committed create/update.
fn after_write(shared: &Shared, st: &mut Store, def: &ResourceDef, prev: Option<&Value>, obj: &Value) {
    match def.special {
        Special::Crd => st.catalog.register(crd::resource_def(obj)),
        Special::Namespace => {
            // The ServiceAccount controller's job: a `default` ServiceAccount per namespace.
            let ns = meta_str(obj, "name").to_owned();
            let key = (ns.clone(), "default".to_owned());
            if st.get("/serviceaccounts", &key).is_none() && !is_deleting(obj) {
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                    "name": "default", "namespace": ns, "uid": new_uid(), "creationTimestamp": now_rfc3339()}});
                st.write("/serviceaccounts", &key, Some(sa));
            }
        }
        _ => {}
    }
    if needs_collection(st, prev, obj) {
        shared.gc.notify_one();
    }
}

/// Whether a write gives the garbage collector work: the object is being deleted, one of its
/// owners is gone or being deleted (now or, for a dropped reference, before the write; a
/// foreground owner waits for its last dependent). Other writes change nothing the collector
/// acts on, and a full pass over every object after each one made busy clusters crawl.
fn needs_collection(st: &Store, prev: Option<&Value>, obj: &Value) -> bool {
    let owner_pending = |uid: &String| st.get_by_uid(uid).is_none_or(|owner| is_deleting(&owner));
    is_deleting(obj)
        || owner_uids(obj).iter().any(owner_pending)
        || prev.is_some_and(|prev| owner_uids(prev).iter().any(owner_pending))
}

pub fn create_request(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    if ctx.def.special == Special::SelfSubjectAccessReview {
        return super::auth::self_subject_access_review(ctx);
    }
    let obj = parse_body(ctx)?;
    let obj = check_type(ctx, obj, false)?;
    let manager = manager(ctx);
    let shared = ctx.shared;
    let created = {
        let mut st = shared.lock();
        create(ctx, &mut st, obj, Some(&manager))?
    };
    Ok(ctx.object_reply(201, &ctx.external(&created)))
}

/// Whether a change bumps `metadata.generation`.
fn generation_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    if def.custom {
        let strip = |v: &Value| {
            let mut o = v.clone();
            if let Value::Object(m) = &mut o {
                for k in ["metadata", "status", "apiVersion", "kind"] {
                    m.remove(k);
                }
            }
            o
        };
        strip(old) != strip(new)
    } else {
        old.get("spec") != new.get("spec")
    }
}

/// Status subresource rules: `/status` writes change `.status` (and managedFields) only;
/// main-resource writes keep the stored `.status`.
fn scope_status(ctx: &Ctx<'_>, old: &Value, new: &mut Value) {
    if ctx.subresource() == "status" {
        let status = new.get("status").cloned();
        let managed = new.pointer("/metadata/managedFields").cloned();
        *new = old.clone();
        if let Value::Object(m) = new {
            match status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        }
        match managed {
            Some(mf) => meta_mut(new).insert("managedFields".into(), mf),
            None => meta_mut(new).remove("managedFields"),
        };
    } else if ctx.version.status
        && let Value::Object(m) = new
    {
        match old.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
}

/// The shared tail of update, patch and apply: `new` is the proposed object (external form).
pub(super) fn finish_update(
    ctx: &mut Ctx<'_>,
    st: &mut Store,
    old: &Arc<Value>,
    new: Value,
    track: Option<&str>,
) -> Result<Arc<Value>, ApiError> {
    let def = Arc::clone(&ctx.def);
    let mut new = ctx.internal(new);
    if !new.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    let name = meta_str(old, "name").to_owned();
    let rv = meta_str(&new, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(old, "resourceVersion") {
        return Err(ApiError::stale(&def.target(&name)));
    }
    let uid = meta_str(&new, "uid");
    if !uid.is_empty() && uid != meta_str(old, "uid") {
        return Err(ApiError::conflict(
            &def.target(&name),
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(old, "uid")),
        ));
    }
    {
        let old_meta = super::util::meta(old).cloned().unwrap_or_default();
        let m = meta_mut(&mut new);
        m.remove("selfLink");
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(f) {
                Some(v) => m.insert(f.to_owned(), v.clone()),
                None => m.remove(f),
            };
        }
    }
    let status_write = ctx.subresource() == "status";
    scope_status(ctx, old, &mut new);
    let mut causes = Vec::new();
    if !status_write {
        causes.extend(builtins::on_update(&def, old, &mut new));
    }
    if def.special == Special::Crd {
        causes.extend(crd::validate(&new));
        new["status"] = crd::status(&new, Some(old));
    }
    if def.custom {
        custom_checks(ctx, &mut new, &mut causes)?;
    }
    if is_deleting(old) {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
        if !added.is_empty() {
            let list = added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ");
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                field: "metadata.finalizers".into(),
                message: format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            });
        }
    }
    if !causes.is_empty() {
        return Err(invalid(&def, &name, &causes));
    }
    if def.generation && generation_changed(&def, old, &new) {
        let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    if let Some(manager) = track {
        let av = ctx.api_version();
        let sub = ctx.subresource().to_owned();
        apply::track_update(Some(old), &mut new, &writer(ctx, manager, &av, &sub));
    }
    if apply::without_times(&new) == apply::without_times(old) {
        return Ok(Arc::clone(old));
    }
    let key: ObjKey = (meta_str(old, "namespace").to_owned(), name);
    if is_deleting(&new) && finalizers(&new).is_empty() {
        if ctx.dry_run() {
            return Ok(Arc::new(new));
        }
        let last = st.remove_with(&def.store, &key, new).ok_or_else(|| ApiError::internal("delete lost"))?;
        after_delete(ctx.shared, st, &def, &last);
        return Ok(last);
    }
    if ctx.dry_run() {
        return Ok(Arc::new(new));
    }
    let stored = st.write(&def.store, &key, Some(new)).ok_or_else(|| ApiError::internal("write lost"))?;
    after_write(ctx.shared, st, &def, Some(old.as_ref()), &stored);
    Ok(stored)
}

/// Stores `new` in place of `old`: a subresource's own write (e.g. a binding), past the checks
/// of an update.
pub(super) fn stored(ctx: &Ctx<'_>, st: &mut Store, old: &Arc<Value>, new: Value) -> Result<Arc<Value>, ApiError> {
    let key: ObjKey = (meta_str(old, "namespace").to_owned(), meta_str(old, "name").to_owned());
    let stored = st.write(&ctx.def.store, &key, Some(new)).ok_or_else(|| ApiError::internal("write lost"))?;
    after_write(ctx.shared, st, &ctx.def, Some(old.as_ref()), &stored);
    Ok(stored)
}

pub(super) fn get_existing(ctx: &Ctx<'_>, st: &Store) -> Result<Arc<Value>, ApiError> {
    st.get(&ctx.def.store, &ctx.key()).ok_or_else(|| ApiError::not_found(&ctx.def.target(ctx.name())))
}

pub fn update_request(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let obj = parse_body(ctx)?;
    let mut obj = check_type(ctx, obj, false)?;
    check_identity(ctx, &mut obj)?;
    let manager = manager(ctx);
    let shared = ctx.shared;
    let updated = {
        let mut st = shared.lock();
        let old = get_existing(ctx, &st)?;
        finish_update(ctx, &mut st, &old, obj, Some(&manager))?
    };
    Ok(ctx.object_reply(200, &ctx.external(&updated)))
}

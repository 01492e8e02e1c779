//! DELETE and DELETE-collection: finalizers, propagation policies, preconditions, dryRun.
//! See <https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/> and
//! <https://kubernetes.io/docs/concepts/architecture/garbage-collection/>.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Shared;
use super::catalog::{ResourceDef, Special};
use super::crd;
use super::handlers::Ctx;
use super::router::Reply;
use super::status::ApiError;
use super::store::{ObjKey, Store};
use super::util::{finalizers, is_deleting, meta_mut, meta_str, now_rfc3339, owner_uids};
use super::write::get_existing;

/// `DeleteOptions` from the body and query.
struct DeleteOpts {
    policy: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
}

fn delete_opts(ctx: &Ctx<'_>) -> Result<DeleteOpts, ApiError> {
    let body: Value = if ctx.req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&ctx.req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let mut policy = s("/propagationPolicy").or_else(|| ctx.req.param("propagationPolicy").map(str::to_owned));
    if policy.is_none() {
        match body
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| ctx.req.param("orphanDependents").map(|v| v == "true"))
        {
            Some(true) => policy = Some("Orphan".into()),
            Some(false) => policy = Some("Background".into()),
            None => {}
        }
    }
    if let Some(p) = &policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
        ));
    }
    let dry_body = body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        policy,
        uid: s("/preconditions/uid"),
        rv: s("/preconditions/resourceVersion"),
        dry_run: ctx.dry_run() || dry_body,
    })
}

fn check_preconditions(def: &ResourceDef, obj: &Value, o: &DeleteOpts) -> Result<(), ApiError> {
    let name = meta_str(obj, "name");
    if let Some(uid) = o.uid.as_deref().filter(|u| !u.is_empty())
        && uid != meta_str(obj, "uid")
    {
        return Err(ApiError::conflict(
            &def.target(name),
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(obj, "uid")),
        ));
    }
    if let Some(rv) = o.rv.as_deref().filter(|r| !r.is_empty())
        && rv != meta_str(obj, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &def.target(name),
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(obj, "resourceVersion")
            ),
        ));
    }
    Ok(())
}

pub fn delete_request(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let opts = delete_opts(ctx)?;
    let shared = ctx.shared;
    let done = {
        let mut st = shared.lock();
        let old = get_existing(ctx, &st)?;
        check_preconditions(&ctx.def, &old, &opts)?;
        delete_object(shared, &mut st, &ctx.def, &ctx.key(), opts.policy.as_deref(), opts.dry_run)?
    };
    Ok(ctx.object_reply(200, &ctx.external(&done)))
}

pub fn delete_collection(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let opts = delete_opts(ctx)?;
    let sel = ctx.selectors()?;
    let shared = ctx.shared;
    let mut items = Vec::new();
    let rv = {
        let mut st = shared.lock();
        let objs = st.list(&ctx.def.store, ctx.rp.namespace.as_deref());
        for o in objs.iter().filter(|o| sel.matches(&ctx.external(o))) {
            let key = (meta_str(o, "namespace").to_owned(), meta_str(o, "name").to_owned());
            let done = delete_object(shared, &mut st, &ctx.def, &key, opts.policy.as_deref(), opts.dry_run)?;
            items.push(ctx.external(&done).into_owned());
        }
        st.rv().to_string()
    };
    Ok(ctx.reply(
        200,
        json!({"kind": format!("{}List", ctx.def.kind), "apiVersion": ctx.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
    ))
}

/// Deletes (or starts deleting) one object, per its finalizers and the propagation policy
/// (garbage-collection docs: Background is the default, except batch/v1 Jobs which orphan
/// their Pods unless told otherwise; Foreground waits for dependents).
pub fn delete_object(
    shared: &Shared,
    st: &mut Store,
    def: &ResourceDef,
    key: &ObjKey,
    policy: Option<&str>,
    dry: bool,
) -> Result<Arc<Value>, ApiError> {
    let old = st.get(&def.store, key).ok_or_else(|| ApiError::not_found(&def.target(&key.1)))?;
    let policy = policy.unwrap_or(if def.special == Special::Job { "Orphan" } else { "Background" });
    let mut obj = (*old).clone();
    if def.special == Special::Namespace {
        // Namespace deletion: Terminating until its content is gone (see gc.rs).
        if is_deleting(&old) || dry {
            return Ok(old);
        }
        mark_deleting(def, &mut obj);
        obj["status"] = json!({"phase": "Terminating"});
        let stored = st.write(&def.store, key, Some(obj)).ok_or_else(|| ApiError::internal("write lost"))?;
        shared.gc.notify_one();
        return Ok(stored);
    }
    let mut fins = finalizers(&obj);
    if policy == "Foreground" && !fins.iter().any(|f| f == "foregroundDeletion") && !is_deleting(&old) {
        fins.push("foregroundDeletion".into());
        meta_mut(&mut obj).insert("finalizers".into(), json!(fins));
    }
    if policy == "Orphan" && !dry {
        orphan_dependents(st, meta_str(&old, "uid"));
    }
    if !fins.is_empty() {
        if is_deleting(&old) {
            return Ok(old);
        }
        mark_deleting(def, &mut obj);
        if dry {
            return Ok(Arc::new(obj));
        }
        let stored = st.write(&def.store, key, Some(obj)).ok_or_else(|| ApiError::internal("write lost"))?;
        shared.gc.notify_one();
        return Ok(stored);
    }
    if dry {
        return Ok(old);
    }
    let last = st.remove_with(&def.store, key, obj).ok_or_else(|| ApiError::internal("delete lost"))?;
    after_delete(shared, st, def, &last);
    Ok(last)
}

fn mark_deleting(def: &ResourceDef, obj: &mut Value) {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let m = meta_mut(obj);
    m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    if def.generation {
        m.insert("generation".into(), json!(generation.unwrap_or(0) + 1));
    }
}

/// Removes owner references to `uid` from every object (the Orphan policy).
fn orphan_dependents(st: &mut Store, uid: &str) {
    for store in st.stores() {
        for (key, obj) in st.entries(&store) {
            if !owner_uids(&obj).iter().any(|u| u == uid) {
                continue;
            }
            let mut o = (*obj).clone();
            if let Some(Value::Array(refs)) = o.pointer_mut("/metadata/ownerReferences") {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            }
            st.write(&store, &key, Some(o));
        }
    }
}

/// Side effects once an object is gone.
pub fn after_delete(shared: &Shared, st: &mut Store, def: &ResourceDef, last: &Value) {
    match def.special {
        Special::Crd => {
            // The CRD's custom resources go with it.
            let rd = crd::resource_def(last);
            for (key, _) in st.entries(&rd.store) {
                st.write(&rd.store, &key, None);
            }
            st.catalog.unregister(&rd.group, &rd.plural);
        }
        Special::Pod => shared.pod_logs.remove_pod(meta_str(last, "namespace"), meta_str(last, "name")),
        _ => {}
    }
    shared.gc.notify_one();
}

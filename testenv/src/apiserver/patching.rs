//! PATCH requests: JSON merge patch, JSON patch, strategic merge patch (approximated, see
//! [`super::patch`]) and server-side apply (see [`super::apply`]).

use serde_json::{Value, json};

use super::apply;
use super::auth::{self, Attributes};
use super::handlers::Ctx;
use super::patch::{self, JsonPatchError};
use super::router::Reply;
use super::status::{ApiError, Cause};
use super::util::meta_str;
use super::write::{check_identity, check_type, create, finish_update, get_existing, invalid, manager, writer};

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

pub fn patch_request(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let ct = ctx.req.header("content-type").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/apply-patch+yaml" => return apply_request(ctx),
        "application/json-patch+json" | "application/merge-patch+json" => {}
        "application/strategic-merge-patch+json" if !ctx.def.custom => {}
        _ => {
            let accepted: Vec<&str> =
                PATCH_TYPES.iter().copied().filter(|t| !(ctx.def.custom && t.contains("strategic"))).collect();
            return Err(ApiError::unsupported_media_type(&ct, &accepted));
        }
    }
    let patch: Value = serde_json::from_slice(&ctx.req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let manager = manager(ctx);
    let shared = ctx.shared;
    let updated = {
        let mut st = shared.lock();
        let old = get_existing(ctx, &st)?;
        let mut target = ctx.external(&old).into_owned();
        match ct.as_str() {
            "application/json-patch+json" => patch::json_patch(&mut target, &patch).map_err(|e| match e {
                JsonPatchError::Malformed(m) | JsonPatchError::Failed(m) => ApiError::new(422, "Invalid", m),
            })?,
            "application/merge-patch+json" => patch::merge_patch(&mut target, &patch),
            _ => {
                let mut p = patch;
                patch::strip_directives(&mut p);
                patch::merge_patch(&mut target, &p);
            }
        }
        if !target.is_object() {
            return Err(ApiError::bad_request("the patched object must be a JSON object"));
        }
        // A patch may not rename or move the object.
        for f in ["name", "namespace"] {
            let (was, now) = (meta_str(&old, f).to_owned(), meta_str(&target, f).to_owned());
            if was != now {
                let c = Cause {
                    reason: "FieldValueInvalid".into(),
                    field: format!("metadata.{f}"),
                    message: format!("Invalid value: \"{now}\": field is immutable"),
                };
                return Err(invalid(&ctx.def, &was, &[c]));
            }
        }
        finish_update(ctx, &mut st, &old, target, Some(&manager))?
    };
    Ok(ctx.object_reply(200, &ctx.external(&updated)))
}

/// Server-side apply; see [`super::apply`] for what is approximated.
fn apply_request(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let manager = match ctx.req.param("fieldManager") {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
    };
    let force = ctx.req.flag("force");
    let config: Value = serde_yaml::from_slice(&ctx.req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request("the applied configuration must be an object"));
    }
    let mut config = check_type(ctx, config, true)?;
    check_identity(ctx, &mut config)?;
    let av = ctx.api_version();
    let sub = ctx.subresource().to_owned();
    let w = writer(ctx, &manager, &av, &sub);
    let shared = ctx.shared;
    let mut st = shared.lock();
    let Some(old) = st.get(&ctx.def.store, &ctx.key()) else {
        if sub == "status" {
            return Err(ApiError::not_found(&ctx.def.target(ctx.name())));
        }
        let mut skeleton = json!({"apiVersion": av, "kind": ctx.def.kind, "metadata": {"name": ctx.name()}});
        if ctx.def.namespaced {
            skeleton["metadata"]["namespace"] = json!(ctx.namespace());
        }
        // An apply that creates is also authorized as `create`, as the real apiserver's patch
        // handler does: `patch` alone must not be enough to create objects.
        if shared.auth.rbac {
            let attrs = Attributes {
                verb: "create".into(),
                group: ctx.rp.group.clone(),
                resource: ctx.rp.resource.clone(),
                namespace: ctx.namespace().to_owned(),
                name: ctx.name().to_owned(),
                ..Attributes::default()
            };
            if !auth::allowed(&st, ctx.user, &attrs) {
                return Err(auth::forbidden(ctx.user, &attrs));
            }
        }
        let merged = apply::apply(&skeleton, &config, &w, force).map_err(|c| apply_conflict(&c))?;
        let created = create(ctx, &mut st, merged, None)?;
        drop(st);
        return Ok(ctx.object_reply(201, &ctx.external(&created)));
    };
    let want_rv = meta_str(&config, "resourceVersion");
    if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&ctx.def.target(ctx.name())));
    }
    let live = ctx.external(&old);
    let merged = apply::apply(&live, &config, &w, force).map_err(|c| apply_conflict(&c))?;
    let updated = finish_update(ctx, &mut st, &old, merged, None)?;
    drop(st);
    Ok(ctx.object_reply(200, &ctx.external(&updated)))
}

fn apply_conflict(conflicts: &[apply::Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager_text()), "field": c.field}))
        .collect();
    ApiError::new(409, "Conflict", apply::conflict_message(conflicts)).with_details(json!({"causes": causes}))
}

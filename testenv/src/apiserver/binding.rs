//! `POST pods/NAME/binding`: how a scheduler assigns a Pod to a node (a Pod's `spec.nodeName`
//! cannot be changed by an update). As the real server: the node name is required, a Pod
//! already assigned is a 409, and binding also sets the `PodScheduled` condition.

use std::sync::Arc;

use serde_json::{Value, json};

use super::handlers::Ctx;
use super::router::Reply;
use super::status::{ApiError, Target};
use super::util::now_rfc3339;
use super::write::{get_existing, parse_body, stored};

pub fn bind(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = parse_body(ctx)?;
    let name = ctx.name().to_owned();
    let node = body.pointer("/target/name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::new(422, "Invalid", format!("Binding.core \"{name}\" is invalid: target.name: Required value"))
    })?;
    let target = Target { group: "", resource: "pods/binding", kind: "Binding", name: &name };
    let shared = Arc::clone(ctx.shared);
    let mut st = shared.lock();
    let old = get_existing(ctx, &st)?;
    if let Some(current) = old.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        return Err(ApiError::conflict(&target, &format!("pod {name} is already assigned to node \"{current}\"")));
    }
    if ctx.dry_run() {
        return Ok(ctx.reply(201, success()));
    }
    let mut pod = (*old).clone();
    pod["spec"]["nodeName"] = json!(node);
    let scheduled =
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
    conditions.push(scheduled);
    pod["status"]["conditions"] = json!(conditions);
    stored(ctx, &mut st, &old, pod)?;
    Ok(ctx.reply(201, success()))
}

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

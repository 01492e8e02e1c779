//! The structural-schema rules a real apiserver enforces when a CRD is created.
//!
//! Kubernetes docs, CRD task page, "Specifying a structural schema", plus the apiextensions/v1
//! validation that forbids `uniqueItems: true`, `additionalProperties: false`, `properties`
//! beside `additionalProperties`, `$ref` and `x-kubernetes-preserve-unknown-fields: false`.

use serde_json::Value;

use super::{INT_OR_STRING, PRESERVE_UNKNOWN, join};

const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];
/// Keys a junctor may not set (they would change the node's structure by value).
const FORBIDDEN_IN_JUNCTORS: [&str; 5] = ["description", "type", "default", "additionalProperties", "nullable"];

/// Every way `schema` (an `openAPIV3Schema`) breaks the structural rules, as
/// `path: problem` lines; empty when it is structural.
pub fn structural_violations(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        found.push("<root>: type must be object".to_owned());
    }
    check_metadata(schema, &mut found);
    check_node(schema, "<root>", &mut found);
    found
}

fn check_metadata(root: &Value, found: &mut Vec<String>) {
    let Some(metadata) = root.get("properties").and_then(|p| p.get("metadata")) else {
        return;
    };
    let Some(object) = metadata.as_object() else {
        return;
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "type" | "properties") {
            found.push(format!("metadata: only restrictions on name and generateName are allowed, found {key}"));
        }
    }
    if let Some(properties) = metadata.get("properties").and_then(Value::as_object) {
        for name in properties.keys().filter(|n| !matches!(n.as_str(), "name" | "generateName")) {
            found.push(format!("metadata.{name}: only name and generateName may be specified"));
        }
    }
}

fn check_node(node: &Value, path: &str, found: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        found.push(format!("{path}: must be a schema object"));
        return;
    };
    let flag = |key: &str| object.get(key).and_then(Value::as_bool);
    let typed = object.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
    if !typed && flag(PRESERVE_UNKNOWN) != Some(true) && flag(INT_OR_STRING) != Some(true) {
        found.push(format!("{path}.type: Required value: must not be empty for specified fields"));
    }
    if flag(PRESERVE_UNKNOWN) == Some(false) {
        found.push(format!("{path}.{PRESERVE_UNKNOWN}: must be true or undefined"));
    }
    if flag("uniqueItems") == Some(true) {
        found.push(format!("{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true"));
    }
    if object.get("additionalProperties") == Some(&Value::Bool(false)) {
        found.push(format!("{path}.additionalProperties: Forbidden: must not be false"));
    }
    if object.contains_key("additionalProperties") && object.contains_key("properties") {
        found.push(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutually exclusive"
        ));
    }
    for forbidden in ["$ref", "definitions", "dependencies", "patternProperties"] {
        if object.contains_key(forbidden) {
            found.push(format!("{path}.{forbidden}: Forbidden"));
        }
    }
    if object.get("items").is_some_and(Value::is_array) {
        found.push(format!("{path}.items: Forbidden: items must be a schema object, not an array"));
    }

    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_node(child, &join(path, &format!("properties[{name}]")), found);
        }
    }
    if let Some(additional) = object.get("additionalProperties").filter(|a| a.is_object()) {
        check_node(additional, &format!("{path}.additionalProperties"), found);
    }
    if let Some(items) = object.get("items").filter(|i| i.is_object()) {
        check_node(items, &format!("{path}.items"), found);
    }
    for junctor in JUNCTORS {
        for (index, branch) in branches(object.get(junctor)).into_iter().enumerate() {
            check_junctor_branch(node, branch, &format!("{path}.{junctor}[{index}]"), found);
        }
    }
}

fn branches(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

/// Inside a junctor: no structure-changing keys, and every field or item it mentions must be
/// specified outside it too (in `outside`, the node the junctor belongs to).
fn check_junctor_branch(outside: &Value, branch: &Value, path: &str, found: &mut Vec<String>) {
    let Some(object) = branch.as_object() else {
        return;
    };
    let int_or_string = outside.get(INT_OR_STRING).and_then(Value::as_bool) == Some(true);
    for key in FORBIDDEN_IN_JUNCTORS {
        // The documented int-or-string exception: `anyOf: [{type: integer}, {type: string}]`.
        if object.contains_key(key) && !(int_or_string && key == "type") {
            found.push(format!("{path}.{key}: Forbidden: must not be used inside {}", path_junctor(path)));
        }
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            match outside.get("properties").and_then(|p| p.get(name)) {
                Some(outer_child) => {
                    check_junctor_branch(outer_child, child, &format!("{path}.properties[{name}]"), found);
                }
                None => found.push(format!(
                    "{path}.properties[{name}]: Required value: must also be specified outside of the junctor"
                )),
            }
        }
    }
    if let Some(items) = object.get("items") {
        match outside.get("items") {
            Some(outer_items) => check_junctor_branch(outer_items, items, &format!("{path}.items"), found),
            None => found.push(format!("{path}.items: Required value: must also be specified outside of the junctor")),
        }
    }
    for junctor in JUNCTORS {
        for (index, nested) in branches(object.get(junctor)).into_iter().enumerate() {
            check_junctor_branch(outside, nested, &format!("{path}.{junctor}[{index}]"), found);
        }
    }
}

fn path_junctor(path: &str) -> &str {
    JUNCTORS.iter().rev().find(|j| path.contains(*j)).copied().unwrap_or("a junctor")
}

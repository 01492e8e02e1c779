//! The apiserver's rules for custom-resource schemas: structural checks, pruning and validation.
//!
//! Sources (Kubernetes docs, "Extend the Kubernetes API with CustomResourceDefinitions"):
//! - "Specifying a structural schema": every node is typed, logical junctors (`allOf`, `anyOf`,
//!   `oneOf`, `not`) add no types or fields of their own, `metadata` is only restricted on
//!   `name` and `generateName`.
//! - "Field pruning": fields not in the schema are dropped unless a node says
//!   `x-kubernetes-preserve-unknown-fields: true`; `apiVersion`, `kind` and `metadata` at the
//!   root are always kept.
//! - "Defaulting and nullable": `null` on a field that is not `nullable: true` is pruned.
//! - "Validation": OpenAPI v3.0 value checks with field-path errors, reported in a 422 Status.
//! - "Validation rules": `x-kubernetes-validations` CEL rules, `self` bound at their node.
//!
//! Schemas are `serde_json::Value`s holding a `JSONSchemaProps` (the CRD's `openAPIV3Schema`).

use std::fmt;

use serde_json::{Map, Value};

mod cel;
mod structural;
mod validate;

pub use structural::structural_violations;
pub use validate::validate;

const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";

/// A validation failure at one field, shaped like the apiserver's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The dotted field path, e.g. `spec.containerRegistry.imageName`.
    pub field: String,
    /// The kind of failure.
    pub kind: FieldErrorKind,
    /// The detail after the kind (may be empty), as the apiserver words it.
    pub detail: String,
}

/// The apiserver's field error types that schema validation produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// A value breaks a constraint (type, length, pattern, format, bounds).
    Invalid,
    /// A value outside an enum.
    NotSupported,
}

impl FieldError {
    /// The `reason` of a `StatusCause` for this error.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
        }
    }

    /// The cause message without the field path, as in a `StatusCause`.
    pub fn message(&self) -> String {
        let head = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
        };
        if self.detail.is_empty() { head.to_owned() } else { format!("{head}: {}", self.detail) }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// Drops every field the schema does not know, and `null`s on fields that are not nullable,
/// as the apiserver does before validation. Returns the dotted paths of what was dropped, so a
/// server can reject them (`fieldValidation=Strict`) or warn (`Warn`).
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Value::Object(fields) = object {
        // The root's apiVersion, kind and metadata are the apiserver's, never pruned here.
        let kept: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
            .iter()
            .filter_map(|k| fields.remove(*k).map(|v| ((*k).to_owned(), v)))
            .collect();
        prune_object(schema, fields, "", &mut pruned);
        fields.extend(kept);
    }
    pruned
}

fn prune_node(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(fields) => prune_object(schema, fields, path, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune_node(item_schema, item, &format!("{path}[{index}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(schema: &Value, fields: &mut Map<String, Value>, path: &str, pruned: &mut Vec<String>) {
    let preserve = schema.get(PRESERVE_UNKNOWN).and_then(Value::as_bool) == Some(true);
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let names: Vec<String> = fields.keys().cloned().collect();
    for name in names {
        let child_path = join(path, &name);
        let child_schema = properties.and_then(|p| p.get(&name)).or(additional);
        let Some(child_schema) = child_schema else {
            if !preserve {
                fields.remove(&name);
                pruned.push(child_path);
            }
            continue;
        };
        if fields.get(&name).is_some_and(Value::is_null) && !is_nullable(child_schema) {
            fields.remove(&name);
            continue;
        }
        if let Some(child) = fields.get_mut(&name) {
            prune_node(child_schema, child, &child_path, pruned);
        }
    }
}

fn is_nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// `a.b` path joining with an empty root.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

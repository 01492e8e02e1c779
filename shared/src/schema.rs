//! Schema helpers for fields whose shape we deliberately do not constrain.
//!
//! A real apiserver only accepts *structural* schemas: every node needs a `type`, except nodes
//! marked `x-kubernetes-preserve-unknown-fields: true`, whose content is then kept as sent
//! instead of being pruned. `serde_json::Value` alone produces an untyped node, so free-form
//! fields use these helpers.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content is kept as sent (e.g. the post-deploy script's JSON).
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A map of name → any JSON value (e.g. terraform outputs, whose values may be strings, lists or
/// objects).
pub fn map_of_any(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

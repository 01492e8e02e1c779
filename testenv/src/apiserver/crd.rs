//! `CustomResourceDefinitions`: validation (structural schemas), the status the apiextensions
//! controllers would set, and turning a CRD into a served resource type.
//! See the CRD task page of the Kubernetes docs ("Specifying a structural schema",
//! "Subresources", "Additional printer columns", "Categories", "Short names").

use serde_json::{Value, json};

use super::catalog::{Column, ResourceDef, Special, VersionDef};
use super::status::Cause;
use super::util::{meta_str, now_rfc3339};
use crate::schema;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn cause(reason: &str, field: &str, message: &str) -> Cause {
    Cause { reason: reason.into(), field: field.into(), message: message.into() }
}

/// Every reason the CRD cannot be accepted.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    if group.is_empty() {
        out.push(cause("FieldValueRequired", "spec.group", "Required value"));
    }
    if plural.is_empty() {
        out.push(cause("FieldValueRequired", "spec.names.plural", "Required value"));
    }
    if kind.is_empty() {
        out.push(cause("FieldValueRequired", "spec.names.kind", "Required value"));
    }
    let name = meta_str(crd, "name");
    if name != format!("{plural}.{group}") {
        out.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(s(crd, "/spec/scope"), "Namespaced" | "Cluster") {
        out.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        out.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
    if !versions.is_empty() && storage != 1 {
        out.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let Some(sch) = v.pointer("/schema/openAPIV3Schema") else {
            out.push(cause("FieldValueRequired", &base, "Required value: schemas are required"));
            continue;
        };
        for violation in schema::structural_violations(sch) {
            let (path, msg) = violation.split_once(": ").unwrap_or(("", violation.as_str()));
            let path = path.strip_prefix("<root>").unwrap_or(path);
            let field = if path.is_empty() {
                base.clone()
            } else if path.starts_with('.') || path.starts_with('[') {
                format!("{base}{path}")
            } else {
                format!("{base}.{path}")
            };
            let reason = if msg.starts_with("Required") {
                "FieldValueRequired"
            } else if msg.starts_with("Forbidden") {
                "FieldValueForbidden"
            } else {
                "FieldValueInvalid"
            };
            out.push(cause(reason, &field, msg));
        }
    }
    out
}

/// The status the apiextensions controllers set once names are accepted.
pub fn status(crd: &Value, old: Option<&Value>) -> Value {
    let now = now_rfc3339();
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = s(crd, "/spec/names/kind").to_owned();
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let mut stored = strings(old.and_then(|o| o.pointer("/status/storedVersions")));
    for v in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
        if v.get("storage").and_then(Value::as_bool) == Some(true)
            && let Some(n) = v.get("name").and_then(Value::as_str)
            && !stored.iter().any(|x| x == n)
        {
            stored.push(n.to_owned());
        }
    }
    // Keep transition times of conditions that did not change.
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(t)))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    })
}

/// The resource type a CRD defines.
pub fn resource_def(crd: &Value) -> ResourceDef {
    let group = s(crd, "/spec/group").to_owned();
    let plural = s(crd, "/spec/names/plural").to_owned();
    let kind = s(crd, "/spec/names/kind").to_owned();
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_owned(),
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| VersionDef {
            name: s(v, "/name").to_owned(),
            served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
            storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Column {
                    name: s(c, "/name").to_owned(),
                    type_: s(c, "/type").to_owned(),
                    format: s(c, "/format").to_owned(),
                    description: s(c, "/description").to_owned(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s(c, "/jsonPath").to_owned(),
                })
                .collect(),
            status: v.pointer("/subresources/status").is_some(),
        })
        .collect();
    let store = format!("{group}/{plural}");
    ResourceDef {
        group,
        plural,
        singular,
        kind,
        namespaced: s(crd, "/spec/scope") == "Namespaced",
        short_names: strings(crd.pointer("/spec/names/shortNames")),
        categories: strings(crd.pointer("/spec/names/categories")),
        versions,
        extra_subresources: Vec::new(),
        verbs: vec!["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        generation: true,
        custom: true,
        special: Special::None,
        store,
    }
}

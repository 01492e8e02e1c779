//! `meta.k8s.io/v1` Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//! which `kubectl get` asks for to print server-side columns.
//! See <https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables>.
//! Custom resources use the version's `additionalPrinterColumns`; type `date` cells hold the
//! age (`5m30s`), as the real API server renders them (kubectl prints cells as they come).
//! Built-ins get NAME + AGE plus a few cheap columns.

use serde_json::{Value, json};

use super::catalog::{ResourceDef, Special, VersionDef};
use super::jsonpath;
use super::util::{age_seconds, human_duration, meta_str};

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn col(name: &str, type_: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.";

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// The column definitions for a kind/version.
pub fn columns(def: &ResourceDef, version: &VersionDef) -> Vec<Value> {
    let mut cols = vec![col("Name", "string", "name", 0, NAME_DESC)];
    if def.custom {
        if version.columns.is_empty() {
            cols.push(col(
                "Age",
                "date",
                "",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ));
        }
        cols.extend(version.columns.iter().map(|c| col(&c.name, &c.type_, &c.format, c.priority, &c.description)));
        return cols;
    }
    match def.special {
        Special::Pod => {
            cols.push(col(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ));
            cols.push(col("Status", "string", "", 0, "The aggregate status of the containers in this pod."));
            cols.push(col(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted.",
            ));
            cols.push(age_col());
            cols.push(col("IP", "string", "", 1, "IP address allocated to the pod."));
            cols.push(col("Node", "string", "", 1, "Name of the Node this pod is scheduled on."));
        }
        Special::Job => {
            cols.push(col("Status", "string", "", 0, "Status of the job."));
            cols.push(col("Completions", "string", "", 0, "The completion status of the job."));
            cols.push(col("Duration", "string", "", 0, "Time required to complete the job."));
            cols.push(age_col());
        }
        Special::Namespace => {
            cols.push(col("Status", "string", "", 0, "The status of the namespace."));
            cols.push(age_col());
        }
        Special::Secret => {
            cols.push(col("Type", "string", "", 0, "The type of the secret."));
            cols.push(col("Data", "string", "", 0, "The number of entries in the secret."));
            cols.push(age_col());
        }
        Special::Event | Special::EventV1 => {
            cols = vec![
                col("Last Seen", "string", "", 0, "Time of the last occurrence."),
                col("Type", "string", "", 0, "Type of the event."),
                col("Reason", "string", "", 0, "Short reason."),
                col("Object", "string", "", 0, "The object the event is about."),
                col("Message", "string", "", 0, "A human-readable description."),
            ];
        }
        _ if def.plural == "configmaps" => {
            cols.push(col("Data", "string", "", 0, "The number of entries in the config map."));
            cols.push(age_col());
        }
        _ => cols.push(age_col()),
    }
    cols
}

fn age(obj: &Value) -> Value {
    json!(human_duration(age_seconds(meta_str(obj, "creationTimestamp"))))
}

fn count(v: Option<&Value>) -> usize {
    v.and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

fn custom_cell(obj: &Value, c: &super::catalog::Column) -> Value {
    let found = jsonpath::eval(obj, &c.json_path);
    match found.as_slice() {
        [] => Value::Null,
        [Value::String(timestamp)] if c.type_ == "date" => json!(human_duration(age_seconds(timestamp))),
        [one] => (*one).clone(),
        many => json!(
            many.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(",")
        ),
    }
}

fn pod_cells(obj: &Value) -> Vec<Value> {
    let statuses = obj.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    let total = obj.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true)).count();
    let restarts: i64 = statuses.iter().filter_map(|s| s.get("restartCount").and_then(Value::as_i64)).sum();
    let waiting = statuses.iter().find_map(|s| {
        s.pointer("/state/waiting/reason").or_else(|| s.pointer("/state/terminated/reason")).and_then(Value::as_str)
    });
    let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    let status = if super::util::is_deleting(obj) { "Terminating" } else { waiting.unwrap_or(phase) };
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        age(obj),
        obj.pointer("/status/podIP").cloned().unwrap_or(json!("<none>")),
        obj.pointer("/spec/nodeName").cloned().unwrap_or(json!("<none>")),
    ]
}

fn job_cells(obj: &Value) -> Vec<Value> {
    let cond = |t: &str| {
        obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(t)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
    };
    let status = if cond("Complete") {
        "Complete"
    } else if cond("Failed") {
        "Failed"
    } else if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        "Suspended"
    } else {
        "Running"
    };
    let succeeded = obj.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0);
    let completions = obj.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1);
    let start = obj.pointer("/status/startTime").and_then(Value::as_str);
    let end = obj.pointer("/status/completionTime").and_then(Value::as_str);
    let duration = match (start, end) {
        (Some(s), Some(e)) => human_duration(age_seconds(s) - age_seconds(e)),
        (Some(s), None) => human_duration(age_seconds(s)),
        _ => String::new(),
    };
    vec![json!(status), json!(format!("{succeeded}/{completions}")), json!(duration), age(obj)]
}

fn event_cells(obj: &Value) -> Vec<Value> {
    let last = ["lastTimestamp", "deprecatedLastTimestamp", "eventTime"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .unwrap_or_else(|| meta_str(obj, "creationTimestamp"));
    let about = obj.get("involvedObject").or_else(|| obj.get("regarding"));
    let kind = about.and_then(|a| a.get("kind")).and_then(Value::as_str).unwrap_or("").to_lowercase();
    let name = about.and_then(|a| a.get("name")).and_then(Value::as_str).unwrap_or("");
    vec![
        json!(human_duration(age_seconds(last))),
        obj.get("type").cloned().unwrap_or(Value::Null),
        obj.get("reason").cloned().unwrap_or(Value::Null),
        json!(format!("{kind}/{name}")),
        obj.get("message").or_else(|| obj.get("note")).cloned().unwrap_or(Value::Null),
    ]
}

fn cells(def: &ResourceDef, version: &VersionDef, obj: &Value) -> Vec<Value> {
    let name = json!(meta_str(obj, "name"));
    if def.custom {
        let mut out = vec![name];
        if version.columns.is_empty() {
            out.push(age(obj));
        }
        out.extend(version.columns.iter().map(|c| custom_cell(obj, c)));
        return out;
    }
    let rest = match def.special {
        Special::Pod => pod_cells(obj),
        Special::Job => job_cells(obj),
        Special::Namespace => vec![obj.pointer("/status/phase").cloned().unwrap_or(json!("Active")), age(obj)],
        Special::Secret => vec![
            obj.get("type").cloned().unwrap_or(json!("Opaque")),
            json!(count(obj.get("data")).to_string()),
            age(obj),
        ],
        Special::Event | Special::EventV1 => return event_cells(obj),
        _ if def.plural == "configmaps" => {
            vec![json!((count(obj.get("data")) + count(obj.get("binaryData"))).to_string()), age(obj)]
        }
        _ => vec![age(obj)],
    };
    let mut out = vec![name];
    out.extend(rest);
    out
}

/// A row's `object` per `includeObject`.
fn row_object(obj: &Value, include: Include) -> Option<Value> {
    match include {
        Include::None => None,
        Include::Object => Some(obj.clone()),
        Include::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// A Table of one object (a GET or a watch event), carrying that object's resourceVersion.
pub fn render_one(def: &ResourceDef, version: &VersionDef, obj: &Value, include: Include) -> Value {
    let rv = meta_str(obj, "resourceVersion").to_owned();
    render(def, version, std::slice::from_ref(obj), include, &json!({"resourceVersion": rv}))
}

/// A Table of objects (in their external form).
pub fn render(def: &ResourceDef, version: &VersionDef, objs: &[Value], include: Include, list_meta: &Value) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, version, o)});
            if let Some(ob) = row_object(o, include) {
                row["object"] = ob;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta.clone(),
        "columnDefinitions": columns(def, version),
        "rows": rows,
    })
}

/// Whether an Accept header asks for a meta.k8s.io/v1 Table (any alternative).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|alt| {
        let params: Vec<&str> = alt.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1")
    })
}

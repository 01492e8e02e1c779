//! core/v1 Event ⇄ events.k8s.io/v1 Event. Both APIs serve the same stored objects (as in a
//! real cluster), so `kubectl describe` (core/v1) sees events a controller recorded through
//! events.k8s.io/v1 (kube-rs's `Recorder`). Storage uses the core/v1 shape.

use serde_json::Value;

/// (core/v1 field, events.k8s.io/v1 field) pairs that differ only by name.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(mut obj: Value, to_v1: bool) -> Value {
    if let Value::Object(m) = &mut obj {
        for (core, v1) in RENAMES {
            let (from, to) = if to_v1 { (*core, *v1) } else { (*v1, *core) };
            if let Some(v) = m.remove(from) {
                m.insert(to.to_owned(), v);
            }
        }
    }
    obj
}

pub fn core_to_v1(obj: Value) -> Value {
    rename(obj, true)
}

pub fn v1_to_core(obj: Value) -> Value {
    let mut o = rename(obj, false);
    if let Value::Object(m) = &mut o {
        m.insert("apiVersion".into(), Value::String("v1".into()));
        m.insert("kind".into(), Value::String("Event".into()));
    }
    o
}

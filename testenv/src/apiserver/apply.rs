//! `metadata.managedFields` and server-side apply (`application/apply-patch+yaml`).
//!
//! See <https://kubernetes.io/docs/reference/using-api/server-side-apply/>. This is an
//! APPROXIMATION of the real field manager (structured-merge-diff), good enough for tests:
//! - Field sets are the leaf paths of an object; every list is atomic (owned and replaced
//!   whole), even lists the real server merges by key (`x-kubernetes-list-type: map|set`,
//!   `finalizers`, `conditions` of built-ins). Only `metadata.labels`, `metadata.annotations`,
//!   `metadata.finalizers` and `metadata.ownerReferences` are tracked under `metadata`.
//! - Conflicts: applying a leaf owned by another manager (Apply or Update) to a different value
//!   than the live one is a 409 unless `force=true`, which moves ownership. Equal values become
//!   shared ownership, as in the real server.
//! - Fields a manager applied before and omits now are removed when no other manager owns them.
//! - Update operations (PUT, non-apply PATCH, create) give the writer ownership of the leaves
//!   whose value changed, taking it away from other managers without conflict.
//! - Entries are keyed by (manager, operation, subresource); `fieldsV1` uses `f:` keys only.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::util::now_rfc3339;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (the kind has no status subresource).
    All,
    /// Everything but `.status` (main resource of a kind with a status subresource).
    NoStatus,
    /// Only `.status` (the status subresource).
    StatusOnly,
}

impl Scope {
    fn covers(self, top: &str) -> bool {
        match self {
            Self::All => true,
            Self::NoStatus => top != "status",
            Self::StatusOnly => top == "status",
        }
    }
}

fn collect(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The leaf paths of an object that field management tracks.
pub fn leaves(obj: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if scope == Scope::StatusOnly {
                    continue;
                }
                for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(child) = v.get(field) {
                        let mut p = vec!["metadata".to_owned(), field.to_owned()];
                        collect(child, &mut p, &mut out);
                    }
                }
            }
            top if scope.covers(top) => collect(v, &mut vec![k.clone()], &mut out),
            _ => {}
        }
    }
    out
}

/// The value at a path.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| v.get(seg))
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else { return };
    let mut cur = obj;
    for seg in parent {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Renders a field set as `fieldsV1` (`{"f:spec":{"f:x":{}}}`).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur.entry(format!("f:{seg}")).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(m) => cur = m,
                _ => unreachable!("entry was just made an object"),
            }
        }
    }
    Value::Object(root)
}

/// Parses `fieldsV1`; `k:`/`v:`/`i:` members make their parent an (atomic) leaf.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        let mut has_child = false;
        for (k, child) in m {
            if let Some(seg) = k.strip_prefix("f:") {
                has_child = true;
                prefix.push(seg.to_owned());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        if !has_child && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

pub fn set_entries(obj: &mut Value, list: &[Entry]) {
    let rendered: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let meta = super::util::meta_mut(obj);
    if rendered.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(rendered));
    }
}

/// Who is writing: the field manager and the API version/subresource of the request.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub scope: Scope,
}

fn upsert<'e>(list: &'e mut Vec<Entry>, w: &Writer<'_>, operation: &str) -> &'e mut Entry {
    let idx = if let Some(i) =
        list.iter().position(|e| e.manager == w.manager && e.operation == operation && e.subresource == w.subresource)
    {
        i
    } else {
        list.push(Entry {
            manager: w.manager.to_owned(),
            operation: operation.to_owned(),
            api_version: w.api_version.to_owned(),
            time: String::new(),
            subresource: w.subresource.to_owned(),
            fields: FieldSet::new(),
        });
        list.len() - 1
    };
    let e = &mut list[idx];
    e.time = now_rfc3339();
    w.api_version.clone_into(&mut e.api_version);
    e
}

/// Records an Update operation: `new` gets managedFields derived from `old`'s, with the
/// writer owning every leaf whose value changed.
pub fn track_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut list = old.map(entries).unwrap_or_default();
    let new_leaves = leaves(new, w.scope);
    let changed: Vec<Path> =
        new_leaves.iter().filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p)).cloned().collect();
    let removed: Vec<Path> =
        old.map(|o| leaves(o, w.scope)).unwrap_or_default().difference(&new_leaves).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, &list);
        return;
    }
    for e in &mut list {
        e.fields.retain(|p| !changed.iter().chain(&removed).any(|c| related(p, c)));
    }
    let mine = upsert(&mut list, w, "Update");
    mine.fields.extend(changed);
    set_entries(new, &list);
}

/// One apply conflict: the other manager and the field path (`.spec.x`).
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub field: String,
}

impl Conflict {
    /// The manager as the real server names it (apimachinery's `printManager`): quoted, with
    /// its subresource, and for an `Update` manager `using <apiVersion>`.
    pub fn manager_text(&self) -> String {
        let subresource = if self.subresource.is_empty() {
            String::new()
        } else {
            format!(" with subresource \"{}\"", self.subresource)
        };
        // The real server has no time here (observed: `"kubectl-create" using v1`).
        let update = if self.operation == "Update" { format!(" using {}", self.api_version) } else { String::new() };
        format!("\"{}\"{subresource}{update}", self.manager)
    }
}

fn dotted_path(p: &[String]) -> String {
    let mut out = String::new();
    for s in p {
        out.push('.');
        out.push_str(s);
    }
    out
}

fn merge_into(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                merge_into(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// The part of an applied configuration a scope may write.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(m) = config.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "metadata" if scope != Scope::StatusOnly => {
                    let mut meta = Map::new();
                    for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(x) = v.get(field) {
                            meta.insert(field.to_owned(), x.clone());
                        }
                    }
                    out.insert(k.clone(), Value::Object(meta));
                }
                top if top != "metadata" && top != "apiVersion" && top != "kind" && scope.covers(top) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {}
            }
        }
    }
    Value::Object(out)
}

/// Server-side apply of `config` onto `live` (an object with identity fields already set).
pub fn apply(live: &Value, config: &Value, w: &Writer<'_>, force: bool) -> Result<Value, Vec<Conflict>> {
    let applied = leaves(config, w.scope);
    let mut list = entries(live);
    let mut conflicts = Vec::new();
    for e in &mut list {
        if e.manager == w.manager || e.subresource != w.subresource {
            continue;
        }
        let clashing: Vec<Path> = e
            .fields
            .iter()
            .filter(|p| applied.contains(*p) && value_at(live, p) != value_at(config, p))
            .cloned()
            .collect();
        if force {
            e.fields.retain(|p| !clashing.contains(p));
        } else {
            conflicts.extend(clashing.iter().map(|p| Conflict {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                field: dotted_path(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    let previous: FieldSet = list
        .iter()
        .find(|e| e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied) {
        let owned_elsewhere = list
            .iter()
            .filter(|e| !(e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource))
            .any(|e| e.fields.iter().any(|q| related(p, q)));
        if !owned_elsewhere {
            remove_path(&mut merged, p);
        }
    }
    merge_into(&mut merged, &scoped_config(config, w.scope));
    let mine = upsert(&mut list, w, "Apply");
    mine.fields = applied;
    set_entries(&mut merged, &list);
    Ok(merged)
}

/// The 409 message for conflicts, worded like the real server's (structured-merge-diff's
/// `Conflicts.Error`): one conflict on one line; several grouped by manager, each manager's
/// fields as `- path` lines in path order.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", only.manager_text(), only.field);
    }
    let mut by_manager: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for c in conflicts {
        by_manager.entry(c.manager_text()).or_default().push(&c.field);
    }
    let mut lines = Vec::new();
    for (manager, mut fields) in by_manager {
        fields.sort_unstable();
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
}

/// managedFields without timestamps, for no-op detection.
pub fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Array(list)) = o.pointer_mut("/metadata/managedFields") {
        for e in list {
            if let Value::Object(m) = e {
                m.remove("time");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer { manager, api_version: "v1", subresource: "", scope: Scope::NoStatus }
    }

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"spec": {"a": 1, "b": {"c": [1]}}, "metadata": {"labels": {"x": "y"}, "name": "n"}});
        let set = leaves(&obj, Scope::All);
        assert_eq!(set.len(), 3);
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn apply_conflicts_and_force() {
        let live = json!({"metadata": {"name": "n"}, "spec": {"a": 1}});
        let first = apply(&live, &json!({"spec": {"a": 1, "b": 2}}), &w("one"), false).unwrap();
        let err = apply(&first, &json!({"spec": {"a": 5}}), &w("two"), false).unwrap_err();
        assert_eq!(err[0].field, ".spec.a");
        let shared = apply(&first, &json!({"spec": {"a": 1}}), &w("two"), false).unwrap();
        assert_eq!(shared["spec"]["a"], 1);
        let forced = apply(&first, &json!({"spec": {"a": 5}}), &w("two"), true).unwrap();
        assert_eq!(forced["spec"]["a"], 5);
        // "one" drops b: it is removed since nobody else owns it.
        let dropped = apply(&forced, &json!({"spec": {}}), &w("one"), false).unwrap();
        assert!(dropped["spec"].get("b").is_none());
    }
}

//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
//!
//! Strategic merge patch for built-in kinds is APPROXIMATED as a JSON merge patch with the
//! `$patch`/`$retainKeys`/`$setElementOrder` directives dropped: lists are replaced whole
//! instead of merged by their patch merge keys. Custom resources reject it with 415, as the
//! real apiserver does (API concepts docs, "Patch" / CRD docs: strategic merge patch is not
//! supported for custom resources).

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Removes strategic-merge-patch directives (`$patch`, `$retainKeys`, `$setElementOrder/...`,
/// `$deleteFromPrimitiveList/...`) so the rest can be applied as a merge patch.
pub fn strip_directives(patch: &mut Value) {
    match patch {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Why a JSON patch failed; the server answers 422 (or 400 for malformed patches).
#[derive(Debug, thiserror::Error)]
pub enum JsonPatchError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Failed(String),
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(path: &str) -> Result<Vec<String>, JsonPatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest =
        path.strip_prefix('/').ok_or_else(|| JsonPatchError::Malformed(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn get<'a>(doc: &'a Value, toks: &[String]) -> Option<&'a Value> {
    toks.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, toks: &[String]) -> Option<&'a mut Value> {
    toks.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

fn add(doc: &mut Value, toks: &[String], value: Value, path: &str) -> Result<(), JsonPatchError> {
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    let missing = || JsonPatchError::Failed(format!("add operation does not apply: doc is missing path: \"{path}\""));
    match get_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" { a.len() } else { last.parse::<usize>().map_err(|_| missing())? };
            if idx > a.len() {
                return Err(JsonPatchError::Failed(format!(
                    "add operation does not apply: index out of bounds: {path}"
                )));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(doc: &mut Value, toks: &[String], path: &str) -> Result<Value, JsonPatchError> {
    let missing =
        || JsonPatchError::Failed(format!("remove operation does not apply: doc is missing path: \"{path}\""));
    let (last, parent) = toks.split_last().ok_or_else(missing)?;
    match get_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let idx = last.parse::<usize>().map_err(|_| missing())?;
            if idx >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(idx))
        }
        _ => Err(missing()),
    }
}

fn str_field<'a>(op: &'a Value, field: &str) -> Result<&'a str, JsonPatchError> {
    op.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| JsonPatchError::Malformed(format!("operation missing {field:?} field")))
}

/// Applies an RFC 6902 patch. As the apiserver's implementation does, a `test` of `null`
/// succeeds when the path is missing (kube-rs's finalizer helper relies on this).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::Malformed("a JSON patch must be an array of operations".into()))?;
    for op in ops {
        let name = str_field(op, "op")?;
        let target = str_field(op, "path")?;
        let toks = tokens(target)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::Malformed(format!("{name} operation missing \"value\"")))
        };
        match name {
            "add" => add(doc, &toks, value()?, target)?,
            "remove" => {
                remove(doc, &toks, target)?;
            }
            "replace" => {
                let v = value()?;
                let slot = get_mut(doc, &toks).ok_or_else(|| {
                    JsonPatchError::Failed(format!("replace operation does not apply: doc is missing key: {target}"))
                })?;
                *slot = v;
            }
            "move" => {
                let from = str_field(op, "from")?;
                let v = remove(doc, &tokens(from)?, from)?;
                add(doc, &toks, v, target)?;
            }
            "copy" => {
                let from = str_field(op, "from")?;
                let v = get(doc, &tokens(from)?).cloned().ok_or_else(|| {
                    JsonPatchError::Failed(format!("copy operation does not apply: doc is missing from path: {from}"))
                })?;
                add(doc, &toks, v, target)?;
            }
            "test" => {
                let want = op.get("value").unwrap_or(&Value::Null);
                let got = get(doc, &toks).unwrap_or(&Value::Null);
                if got != want {
                    return Err(JsonPatchError::Failed(format!("testing value {target} failed: test failed")));
                }
            }
            other => return Err(JsonPatchError::Malformed(format!("unexpected kind of operation: {other}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_removes_nulls() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [2]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [2]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"metadata": {"name": "x"}, "l": [1, 2]});
        json_patch(
            &mut d,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": []},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
                {"op": "replace", "path": "/l/0", "value": 9},
                {"op": "copy", "from": "/l/0", "path": "/c"},
                {"op": "move", "from": "/c", "path": "/m"},
                {"op": "remove", "path": "/l/1"},
                {"op": "test", "path": "/m", "value": 9}
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"metadata": {"name": "x", "finalizers": ["f"]}, "l": [9], "m": 9}));
        let err = json_patch(&mut d, &json!([{"op": "test", "path": "/m", "value": 1}]));
        assert!(matches!(err, Err(JsonPatchError::Failed(_))));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}

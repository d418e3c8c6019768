//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a pragmatic
//! server-side apply (the applied configuration merged over the live object, lists replaced;
//! idempotent, no field ownership conflicts).

use serde_json::Value;

use crate::error::{Error, Result};

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch_map {
        if v.is_null() {
            target_map.remove(k);
        } else {
            merge(target_map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Server-side apply: like a merge patch, but `null` in the applied configuration is ignored
/// rather than deleting (apply configurations do not carry deletions).
pub fn apply(target: &mut Value, applied: &Value) {
    let Value::Object(applied_map) = applied else {
        *target = applied.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (k, v) in applied_map {
        if v.is_null() {
            continue;
        }
        apply(target_map.entry(k.clone()).or_insert(Value::Null), v);
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String)> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| Error::BadRequest(format!("invalid JSON pointer: {path:?}")))?;
    Ok((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or_else(|| Error::BadRequest(format!("doc is missing path: {path:?}")))?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| Error::BadRequest(format!("invalid array index: {last:?}")))?;
            if i > a.len() {
                return Err(Error::BadRequest(format!("array index out of range: {i}")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(Error::BadRequest(format!("doc is missing path: {path:?}"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value> {
    let (parent, last) = split_pointer(path)?;
    let missing = || Error::BadRequest(format!("unable to remove nonexistent key: {path:?}"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<()> {
    let ops = ops
        .as_array()
        .ok_or_else(|| Error::BadRequest("json patch must be an array of operations".into()))?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match kind {
            "add" => add(doc, path, value)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value)?;
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or("");
                let v = if kind == "move" {
                    remove(doc, from)?
                } else {
                    doc.pointer(from).cloned().ok_or_else(|| {
                        Error::BadRequest(format!("doc is missing from path: {from:?}"))
                    })?
                };
                add(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value) {
                    return Err(Error::BadRequest(format!(
                        "testing value {path:?} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(Error::BadRequest(format!("Unexpected kind of operation: {other:?}")))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_nulls_and_merges_maps() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut doc, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/list/0", "value": 9},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "test", "path": "/list/2", "value": 3}
        ]);
        assert!(json_patch(&mut doc, &ops).is_ok());
        assert_eq!(doc, json!({"metadata": {"labels": {"b": "2"}}, "list": [9, 2, 3]}));
    }
}

//! Structural-schema admission for custom resources, as the apiextensions server does it:
//! defaulting, pruning of unknown fields and non-nullable nulls, type/enum/required validation, and
//! the `x-kubernetes-validations` CEL rules that the K3k CRDs use (hand-coded, matched by rule
//! text: transition rules `self == oldSelf`, bounds `self >= N`, and the expose exclusivity rule).

use serde_json::{json, Map, Value};

use crate::error::{json_type, Cause};

/// Defaults, prunes and validates `obj` in place against the CRD `schema`; `old` is the stored
/// object on update (for transition rules). Returns the validation failures.
pub fn admit(schema: &Value, obj: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return causes;
    };
    let Some(map) = obj.as_object_mut() else {
        return causes;
    };
    // The root: apiVersion, kind and metadata are the API server's; walk everything else.
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !props.contains_key(&k) {
            map.remove(&k);
        }
    }
    for (k, sub) in props {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !map.contains_key(k) {
            if let Some(d) = sub.get("default") {
                map.insert(k.clone(), d.clone());
            }
        }
        if map.get(k).is_some_and(Value::is_null) && !nullable(sub) {
            map.remove(k);
        }
        if let Some(v) = map.get_mut(k) {
            let old_v = old.and_then(|o| o.get(k));
            walk(sub, v, k, old_v, &mut causes);
        }
    }
    causes
}

/// Paths (`spec.bogus`) of non-null fields in `before` that admission removed.
pub fn removed_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return;
    };
    for (k, v) in b {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
            continue;
        }
        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match a.get(k) {
            None if !v.is_null() => out.push(p),
            Some(av) => removed_fields(v, av, &p, out),
            None => {}
        }
    }
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn walk(
    schema: &Value,
    value: &mut Value,
    path: &str,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    let int_or_string =
        schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match (ty, &*value) {
        _ if int_or_string => value.is_string() || value.is_i64() || value.is_u64(),
        (None, _) => true,
        (Some("object"), Value::Object(_)) => true,
        (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), v) => v.is_i64() || v.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        let expected = if int_or_string { "integer,string" } else { ty.unwrap_or("object") };
        causes.push(Cause::type_invalid(path, value, expected));
        return;
    }
    // An `enum` here or in each `allOf` member (K3k v1.1.0's `mode` repeats its enum there);
    // the API server reports a repeated error once (field.ErrorList ToAggregate dedupes).
    let all_of = schema.get("allOf").and_then(Value::as_array).into_iter().flatten();
    for node in std::iter::once(schema).chain(all_of) {
        if let Some(options) = node.get("enum").and_then(Value::as_array) {
            let cause = Cause::not_supported(path, value, options);
            if !options.contains(value) && !causes.contains(&cause) {
                causes.push(cause);
            }
        }
    }
    match value {
        Value::Object(map) => walk_object(schema, map, path, old, causes),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), None, causes);
                }
            }
        }
        _ => {}
    }
    check_rules(schema, value, path, old, causes);
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    let preserve =
        schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if let Some(props) = props {
        // A missing field, or a null one the schema does not allow, takes its default
        // (apiextensions-apiserver `pkg/apiserver/schema/defaulting/algorithm.go` Default:
        // `!found || isNonNullableNull(v, &prop)`).
        for (k, sub) in props {
            let null = map.get(k).is_some_and(Value::is_null) && !nullable(sub);
            if !map.contains_key(k) || null {
                if let Some(d) = sub.get("default") {
                    map.insert(k.clone(), d.clone());
                }
            }
        }
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let sub = props.and_then(|p| p.get(&k)).or(additional);
        let Some(sub) = sub else {
            if !preserve {
                map.remove(&k);
            }
            continue;
        };
        if map.get(&k).is_some_and(Value::is_null) && !nullable(sub) {
            map.remove(&k);
            continue;
        }
        if let Some(v) = map.get_mut(&k) {
            let old_v = old.and_then(|o| o.get(&k));
            walk(sub, v, &format!("{path}.{k}"), old_v, causes);
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::required(&format!("{path}.{r}")));
            }
        }
    }
}

/// The CEL rules found in the K3k CRDs, evaluated natively.
fn check_rules(
    schema: &Value,
    value: &Value,
    path: &str,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) else {
        return;
    };
    for rule in rules {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or("").trim();
        let message = rule.get("message").and_then(Value::as_str).unwrap_or(text);
        let failed = if text == "self == oldSelf" {
            old.is_some_and(|o| o != value)
        } else if let Some(bound) = text.strip_prefix("self >= ") {
            match (bound.trim().parse::<i64>(), value.as_i64()) {
                (Ok(b), Some(v)) => v < b,
                _ => false,
            }
        } else if text.contains("has(self.ingress)") {
            ["ingress", "loadBalancer", "nodePort"]
                .iter()
                .filter(|k| value.get(**k).is_some())
                .count()
                > 1
        } else {
            false
        };
        if failed {
            causes.push(Cause::invalid(path, &json!(json_type(value)), message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_schema() -> Value {
        let crd: Value = serde_yaml::from_str(crate::k3k::CLUSTER_CRD).unwrap_or(Value::Null);
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn empty_cluster_is_defaulted_like_the_api_server() {
        let mut obj =
            json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "a"}});
        let causes = admit(&cluster_schema(), &mut obj, None);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(obj["spec"]["mode"], "shared");
        assert_eq!(obj["spec"]["servers"], 1);
        assert_eq!(obj["spec"]["agents"], 0);
        assert_eq!(obj["spec"]["sync"]["configMaps"]["enabled"], true);
        assert_eq!(obj["status"]["phase"], "Unknown");
    }

    /// What an independent client showed: `"servers": null` was pruned and left undefaulted,
    /// where a real API server defaults it.
    #[test]
    fn a_null_in_a_defaulted_field_takes_the_default() {
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"servers": null, "mode": null,
            "agents": null}});
        let causes = admit(&cluster_schema(), &mut obj, None);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(obj["spec"]["servers"], 1);
        assert_eq!(obj["spec"]["mode"], "shared");
        assert_eq!(obj["spec"]["agents"], 0);
    }

    #[test]
    fn unknown_fields_are_pruned_and_bad_enums_rejected() {
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"mode": "weird", "bogus": 1}});
        let causes = admit(&cluster_schema(), &mut obj, None);
        assert!(obj["spec"].get("bogus").is_none());
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.mode");
    }

    #[test]
    fn cel_rules_use_k3k_messages() {
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"servers": 0, "agents": -1,
            "expose": {"ingress": {}, "nodePort": {}}}});
        let causes = admit(&cluster_schema(), &mut obj, None);
        let messages: Vec<String> = causes.iter().map(|c| c.message.clone()).collect();
        assert!(messages.iter().any(|m| m.ends_with("cluster must have at least one server")));
        assert!(messages.iter().any(|m| m.ends_with("invalid value for agents")));
        assert!(messages.iter().any(|m| m.ends_with("only one can be set")));
    }

    #[test]
    fn mode_is_immutable_on_update() {
        let old = json!({"spec": {"mode": "shared"}});
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"mode": "virtual"}});
        let causes = admit(&cluster_schema(), &mut obj, Some(&old));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].message, "Invalid value: \"string\": mode is immutable");
    }
}

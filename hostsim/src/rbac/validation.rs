//! Validation of the RBAC kinds (Role, ClusterRole, RoleBinding, ClusterRoleBinding) as the API
//! server's registry runs it on create and update.
//!
//! Re-expressed from kubernetes `pkg/apis/rbac/validation/validation.go` (read at commit
//! 036ae507, unchanged in substance since v1.8): `validatePolicyRule`,
//! `ValidateRoleBinding` / `ValidateClusterRoleBinding`, `validateRoleBindingSubject`, and the
//! `*Update` variants that refuse a changed `roleRef`. Object-meta checks are the caller's.

use serde_json::{json, Value};

use crate::error::Cause;

const GROUP: &str = "rbac.authorization.k8s.io";

/// The causes a real API server would refuse `obj` (of `plural`) with; `old` on an update.
pub fn validate(plural: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    match plural {
        "roles" | "clusterroles" => {
            let rules = obj.get("rules").and_then(Value::as_array);
            for (i, rule) in rules.into_iter().flatten().enumerate() {
                policy_rule(rule, plural == "roles", &format!("rules[{i}]"), &mut causes);
            }
        }
        "rolebindings" | "clusterrolebindings" => {
            let namespaced = plural == "rolebindings";
            binding(obj, namespaced, &mut causes);
            if let Some(old) = old {
                let (was, is) = (role_ref(old), role_ref(obj));
                if was != is {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: "roleRef".into(),
                        message: format!(
                            "Invalid value: {}: cannot change roleRef",
                            go_role_ref(&is)
                        ),
                    });
                }
            }
        }
        _ => {}
    }
    causes
}

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `field.Required(path, detail)`.
fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".into()
    } else {
        format!("Required value: {detail}")
    };
    Cause { reason: "FieldValueRequired", field: field.into(), message }
}

/// `field.Invalid` of a `[]string`, which the API server prints with Go's `%#v`.
fn invalid_list(field: &str, list: &[&str], detail: &str) -> Cause {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    Cause {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: []string{{{}}}: {detail}", items.join(", ")),
    }
}

/// validatePolicyRule.
fn policy_rule(rule: &Value, namespaced: bool, path: &str, causes: &mut Vec<Cause>) {
    if strings(rule, "verbs").is_empty() {
        causes.push(required(&format!("{path}.verbs"), "verbs must contain at least one value"));
    }
    let urls = strings(rule, "nonResourceURLs");
    let (groups, resources, names) =
        (strings(rule, "apiGroups"), strings(rule, "resources"), strings(rule, "resourceNames"));
    if !urls.is_empty() {
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            causes.push(invalid_list(
                &field,
                &urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            causes.push(invalid_list(
                &field,
                &urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    // `apiGroups: [""]` (the core group) is one group: only a missing or empty list fails.
    if rule.get("apiGroups").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        causes.push(required(
            &format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if resources.is_empty() {
        causes.push(required(
            &format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !names.is_empty() && resources.len() > 1 {
        causes.push(required(
            &format!("{path}.resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
}

fn role_ref(obj: &Value) -> [String; 3] {
    let field = |k: &str| {
        obj.pointer(&format!("/roleRef/{k}")).and_then(Value::as_str).unwrap_or("").to_string()
    };
    [field("apiGroup"), field("kind"), field("name")]
}

fn go_role_ref([group, kind, name]: &[String; 3]) -> String {
    format!("rbac.RoleRef{{APIGroup:{group:?}, Kind:{kind:?}, Name:{name:?}}}")
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let supported: Vec<Value> = supported.iter().map(|s| json!(s)).collect();
    Cause::not_supported(field, &json!(value), &supported)
}

/// path.IsValidPathSegmentName, the only check on names of roles and role references.
pub(crate) fn path_segment_problems(name: &str) -> Vec<&'static str> {
    match name {
        "." => vec!["may not be '.'"],
        ".." => vec!["may not be '..'"],
        _ => {
            let mut problems = Vec::new();
            if name.contains('/') {
                problems.push("may not contain '/'");
            }
            if name.contains('%') {
                problems.push("may not contain '%'");
            }
            problems
        }
    }
}

/// ValidateRoleBinding / ValidateClusterRoleBinding.
fn binding(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let [group, kind, name] = role_ref(obj);
    if group != GROUP {
        causes.push(not_supported("roleRef.apiGroup", &group, &[GROUP]));
    }
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&kind.as_str()) {
        causes.push(not_supported("roleRef.kind", &kind, kinds));
    }
    if name.is_empty() {
        causes.push(required("roleRef.name", ""));
    }
    for problem in path_segment_problems(&name) {
        causes.push(Cause::invalid("roleRef.name", &json!(name), problem));
    }
    let subjects = obj.get("subjects").and_then(Value::as_array);
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        subject_causes(subject, namespaced, &format!("subjects[{i}]"), causes);
    }
}

/// validateRoleBindingSubject.
fn subject_causes(subject: &Value, namespaced: bool, path: &str, causes: &mut Vec<Cause>) {
    let text = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or("");
    let (name, kind, group) = (text("name"), text("kind"), text("apiGroup"));
    if name.is_empty() {
        causes.push(required(&format!("{path}.name"), ""));
    }
    match kind {
        "ServiceAccount" => {
            if !name.is_empty() {
                for problem in dns_subdomain_problems(name) {
                    causes.push(Cause::invalid(&format!("{path}.name"), &json!(name), &problem));
                }
            }
            if !group.is_empty() {
                causes.push(not_supported(&format!("{path}.apiGroup"), group, &[""]));
            }
            if !namespaced && text("namespace").is_empty() {
                causes.push(required(&format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                causes.push(Cause::invalid(
                    &format!("{path}.name"),
                    &json!(name),
                    &format!("{what} name cannot be empty"),
                ));
            }
            if group != GROUP {
                causes.push(not_supported(&format!("{path}.apiGroup"), group, &[GROUP]));
            }
        }
        _ => causes.push(not_supported(
            &format!("{path}.kind"),
            kind,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// IsDNS1123Subdomain (apimachinery pkg/util/validation/validation.go), what
/// ValidateServiceAccountName checks.
fn dns_subdomain_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        problems.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::validate;
    use serde_json::json;

    fn messages(plural: &str, obj: serde_json::Value) -> Vec<String> {
        validate(plural, &obj, None)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_cluster_role_may_name_non_resource_urls_and_a_role_may_not() {
        let rules = json!({"rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]},
            {"nonResourceURLs": ["/version"], "verbs": ["get"]},
        ]});
        assert!(messages("clusterroles", rules.clone()).is_empty());
        assert_eq!(
            messages("roles", rules),
            [
                r#"rules[1].nonResourceURLs: Invalid value: []string{"/version"}: namespaced rules cannot apply to non-resource URLs"#
            ]
        );
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        assert_eq!(
            messages("clusterroles", json!({"rules": [{"resources": ["a", "b"], "resourceNames": ["x"]}]})),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resourceNames: Required value: resource names cannot apply to multiple resources",
            ]
        );
        assert_eq!(
            messages(
                "clusterroles",
                json!({"rules": [{"nonResourceURLs": ["/x"], "resources": ["a"], "verbs": ["get"]}]})
            ),
            [
                r#"rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#
            ]
        );
    }

    #[test]
    fn a_cluster_role_binding_binds_a_cluster_role_to_namespaced_service_accounts() {
        let good = json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kraft"},
            "subjects": [{"kind": "ServiceAccount", "name": "kraft", "namespace": "kraft"}],
        });
        assert!(messages("clusterrolebindings", good).is_empty());
        let bad = json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kraft"},
            "subjects": [{"kind": "ServiceAccount", "name": "Kraft"}],
        });
        assert_eq!(
            messages("clusterrolebindings", bad.clone()),
            [
                r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                r#"subjects[0].name: Invalid value: "Kraft": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
                "subjects[0].namespace: Required value",
            ]
        );
        // A RoleBinding may reference a Role, and its ServiceAccount defaults to its namespace.
        assert_eq!(messages("rolebindings", bad).len(), 1);
    }

    #[test]
    fn a_binding_keeps_its_role_ref() {
        let old = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "a"}});
        let new = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "b"}});
        let causes = validate("clusterrolebindings", &new, Some(&old));
        assert_eq!(
            causes[0].message,
            r#"Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"b"}: cannot change roleRef"#
        );
    }
}

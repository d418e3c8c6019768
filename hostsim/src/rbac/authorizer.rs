//! The RBAC authorizer: a user's rules are those of the roles that the ClusterRoleBindings (in
//! every namespace) and the RoleBindings of the request's namespace bind to one of their
//! subjects.
//!
//! Re-expressed from kubernetes v1.35 `pkg/registry/rbac/validation/rule.go`
//! (`DefaultRuleResolver.VisitRulesFor`, `GetRoleReferenceRules`, `appliesToUser`, the
//! `*Describer`s) and `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RBACAuthorizer.Authorize`:
//! allowed by the first rule that allows; otherwise no opinion, with the errors met on the way
//! as the reason, `RBAC: <aggregate>`).

use serde_json::Value;

use super::policy::{go_quote, Rule};
use crate::authz::{Attributes, Decision};
use crate::error::{Error, GroupResource};
use crate::identity::{service_account_username, User};
use crate::object;
use crate::store::Store;

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// How a role that is not there is reported. The authorizer reads roles through client-go
/// listers, whose NotFound names the resource in the singular
/// (`clusterrole.rbac.authorization.k8s.io "x" not found`); the escalation checks read them
/// through the registry, whose NotFound is the usual plural one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Lister,
    Registry,
}

/// Where the rules come from: roles and bindings as the store holds them now.
pub struct Resolver<'a> {
    store: &'a Store,
    lookup: Lookup,
}

/// One subject of a binding.
fn subject_text(subject: &Value, key: &str) -> String {
    object::str_at(subject, &format!("/{key}")).to_string()
}

/// appliesToUser.
fn applies(user: &User, subject: &Value, binding_namespace: &str) -> bool {
    let name = subject_text(subject, "name");
    match subject_text(subject, "kind").as_str() {
        "User" => user.name == name,
        "Group" => user.in_group(&name),
        "ServiceAccount" => {
            let ns = subject_text(subject, "namespace");
            let ns = if ns.is_empty() { binding_namespace.to_string() } else { ns };
            !ns.is_empty() && user.name == service_account_username(&ns, &name)
        }
        _ => false,
    }
}

/// describeSubject.
fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = subject_text(subject, "kind");
    let name = subject_text(subject, "name");
    if kind == "ServiceAccount" {
        let ns = subject_text(subject, "namespace");
        let ns = if ns.is_empty() { binding_namespace.to_string() } else { ns };
        return format!("{kind} {}", go_quote(&format!("{name}/{ns}")));
    }
    format!("{kind} {}", go_quote(&name))
}

/// clusterRoleBindingDescriber / roleBindingDescriber: which binding allowed a request.
fn describe_binding(binding: &Value, subject: &Value) -> String {
    let ns = object::namespace(binding);
    let (kind, name) = if ns.is_empty() {
        ("ClusterRoleBinding", object::name(binding).to_string())
    } else {
        ("RoleBinding", format!("{}/{ns}", object::name(binding)))
    };
    format!(
        "{kind} {} of {} {} to {}",
        go_quote(&name),
        object::str_at(binding, "/roleRef/kind"),
        go_quote(object::str_at(binding, "/roleRef/name")),
        describe_subject(subject, ns)
    )
}

/// utilerrors.NewAggregate(errs).Error(): one error as itself, several deduplicated in
/// brackets.
pub fn aggregate(errors: &[Error]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let text = e.to_string();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

impl<'a> Resolver<'a> {
    pub fn new(store: &'a Store, lookup: Lookup) -> Self {
        Self { store, lookup }
    }

    fn missing(&self, singular: &str, name: &str) -> Error {
        let resource = match self.lookup {
            Lookup::Lister => singular.to_string(),
            Lookup::Registry => format!("{singular}s"),
        };
        Error::not_found(&GroupResource::new(GROUP, &resource), name)
    }

    /// GetRoleReferenceRules: the rules of the role a binding (in `binding_namespace`, empty for
    /// a ClusterRoleBinding) refers to.
    pub fn role_reference_rules(
        &self,
        role_ref: &Value,
        binding_namespace: &str,
    ) -> Result<Vec<Rule>, Error> {
        let name = object::str_at(role_ref, "/name");
        match object::str_at(role_ref, "/kind") {
            "Role" => self
                .store
                .get(&GroupResource::new(GROUP, "roles"), binding_namespace, name)
                .map(|r| Rule::of_role(&r))
                .ok_or_else(|| self.missing("role", name)),
            "ClusterRole" => self
                .store
                .get(&GroupResource::new(GROUP, "clusterroles"), "", name)
                .map(|r| Rule::of_role(&r))
                .ok_or_else(|| self.missing("clusterrole", name)),
            kind => Err(Error::Unexpected(format!(
                "unsupported role reference kind: {}",
                go_quote(kind)
            ))),
        }
    }

    /// VisitRulesFor: every rule that applies to `user` in `namespace` (with the binding it came
    /// by), and every error met resolving them, until `visit` returns false. ClusterRoleBindings
    /// first, then the namespace's RoleBindings.
    pub fn visit(
        &self,
        user: &User,
        namespace: &str,
        mut visit: impl FnMut(Option<&dyn Fn() -> String>, Option<&Rule>, Option<Error>) -> bool,
    ) {
        let (cluster_bindings, _) =
            self.store.list(&GroupResource::new(GROUP, "clusterrolebindings"), None);
        let mut bindings: Vec<(Value, &str)> =
            cluster_bindings.into_iter().map(|b| (b, "")).collect();
        if !namespace.is_empty() {
            let (role_bindings, _) =
                self.store.list(&GroupResource::new(GROUP, "rolebindings"), Some(namespace));
            bindings.extend(role_bindings.into_iter().map(|b| (b, namespace)));
        }
        for (binding, binding_namespace) in &bindings {
            let subjects = binding.get("subjects").and_then(Value::as_array);
            let Some(subject) =
                subjects.into_iter().flatten().find(|s| applies(user, s, binding_namespace))
            else {
                continue;
            };
            let role_ref = binding.get("roleRef").cloned().unwrap_or(Value::Null);
            let rules = match self.role_reference_rules(&role_ref, binding_namespace) {
                Ok(rules) => rules,
                Err(e) => {
                    if !visit(None, None, Some(e)) {
                        return;
                    }
                    continue;
                }
            };
            let source = || describe_binding(binding, subject);
            for rule in &rules {
                if !visit(Some(&source), Some(rule), None) {
                    return;
                }
            }
        }
    }

    /// RulesFor: all of a user's rules in a namespace, and the errors met (the rules found are
    /// still good: they only ever add).
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<Error>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit(user, namespace, |_, rule, error| {
            rules.extend(rule.cloned());
            errors.extend(error);
            true
        });
        (rules, errors)
    }
}

/// RBACAuthorizer.Authorize.
pub fn authorize(store: &Store, a: &Attributes) -> Decision {
    let mut allowed_by = None;
    let mut errors = Vec::new();
    Resolver::new(store, Lookup::Lister).visit(&a.user, &a.namespace, |source, rule, error| {
        if let (Some(source), Some(rule)) = (source, rule) {
            if rule.allows(a) {
                allowed_by = Some(source());
                return false;
            }
        }
        errors.extend(error);
        true
    });
    match allowed_by {
        Some(source) => Decision { allowed: true, reason: format!("RBAC: allowed by {source}") },
        None if errors.is_empty() => Decision { allowed: false, reason: String::new() },
        None => Decision { allowed: false, reason: format!("RBAC: {}", aggregate(&errors)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use serde_json::json;

    fn store_with(objects: &[(&str, Value)]) -> Store {
        let store = Store::new(100);
        for ns in ["a", "b", "kraft"] {
            store
                .create(&GroupResource::new("", "namespaces"), json!({"metadata": {"name": ns}}))
                .expect("namespace");
        }
        for (plural, obj) in objects {
            store.create(&GroupResource::new(GROUP, plural), obj.clone()).expect("stored");
        }
        store
    }

    fn binding(name: &str, ns: Option<&str>, role: (&str, &str), subject: Value) -> Value {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({"metadata": meta, "roleRef": {"apiGroup": GROUP, "kind": role.0, "name": role.1}, "subjects": [subject]})
    }

    fn request(user: &User, method: Method, uri: &str) -> Attributes {
        Attributes::from_request(user, &method, &uri.parse().unwrap())
    }

    #[test]
    fn a_role_binding_grants_its_rules_in_its_namespace_only() {
        let sa = User::service_account("kraft", "kraft", "uid", "");
        let store = store_with(&[
            (
                "roles",
                json!({"metadata": {"name": "reader", "namespace": "a"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
            ),
            (
                "rolebindings",
                binding(
                    "read",
                    Some("a"),
                    ("Role", "reader"),
                    json!({"kind": "ServiceAccount", "name": "kraft", "namespace": "kraft"}),
                ),
            ),
        ]);
        let allowed = authorize(&store, &request(&sa, Method::GET, "/api/v1/namespaces/a/pods"));
        assert_eq!(
            allowed,
            Decision {
                allowed: true,
                reason: r#"RBAC: allowed by RoleBinding "read/a" of Role "reader" to ServiceAccount "kraft/kraft""#.into()
            }
        );
        assert!(
            !authorize(&store, &request(&sa, Method::GET, "/api/v1/namespaces/b/pods")).allowed
        );
        assert!(!authorize(&store, &request(&sa, Method::GET, "/api/v1/pods")).allowed);
        assert!(
            !authorize(&store, &request(&sa, Method::DELETE, "/api/v1/namespaces/a/pods/p"))
                .allowed
        );
    }

    #[test]
    fn a_service_account_subject_without_namespace_means_the_bindings_namespace() {
        let sa = User::service_account("a", "robot", "uid", "");
        let store = store_with(&[
            (
                "clusterroles",
                json!({"metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]}),
            ),
            (
                "rolebindings",
                binding(
                    "b",
                    Some("a"),
                    ("ClusterRole", "pods"),
                    json!({"kind": "ServiceAccount", "name": "robot"}),
                ),
            ),
        ]);
        assert!(authorize(&store, &request(&sa, Method::GET, "/api/v1/namespaces/a/pods")).allowed);
        let other = User::service_account("b", "robot", "uid", "");
        assert!(
            !authorize(&store, &request(&other, Method::GET, "/api/v1/namespaces/a/pods")).allowed
        );
    }

    #[test]
    fn a_binding_to_a_missing_role_is_the_reason_of_a_denial() {
        let user = User::new("ada", &["system:authenticated"]);
        let store = store_with(&[
            (
                "clusterrolebindings",
                binding(
                    "x",
                    None,
                    ("ClusterRole", "x"),
                    json!({"kind": "User", "name": "ada", "apiGroup": GROUP}),
                ),
            ),
            (
                "clusterrolebindings",
                binding(
                    "y",
                    None,
                    ("ClusterRole", "x"),
                    json!({"kind": "Group", "name": "system:authenticated", "apiGroup": GROUP}),
                ),
            ),
        ]);
        let denied = authorize(&store, &request(&user, Method::GET, "/api/v1/pods"));
        assert_eq!(
            denied,
            Decision {
                allowed: false,
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#.into()
            }
        );
        let (_, errors) = Resolver::new(&store, Lookup::Registry).rules_for(&user, "");
        assert_eq!(aggregate(&errors), r#"clusterroles.rbac.authorization.k8s.io "x" not found"#);
    }
}

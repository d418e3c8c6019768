//! Privilege escalation prevention on writes of roles and bindings: nobody gets to grant what
//! they do not hold themselves, unless RBAC lets them `escalate` (roles) or `bind` (bindings).
//!
//! Re-expressed from kubernetes v1.35 `pkg/registry/rbac/{role,clusterrole,rolebinding,
//! clusterrolebinding}/policybased/storage.go` (Create, and Update's wrapped object info, which
//! server-side apply goes through too, also when it creates), `pkg/registry/rbac/
//! escalation_check.go` (`EscalationAllowed`, `RoleEscalationAuthorized`, `BindingAuthorized`),
//! `pkg/registry/rbac/helpers.go` (`IsOnlyMutatingGCFields`) and `pkg/registry/rbac/validation/
//! rule.go` (`ConfirmNoEscalation`). The role a binding refers to and the writer's own rules are
//! read through the registry there, so a missing role is a plain 404
//! (`clusterroles.rbac.authorization.k8s.io "x" not found`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::authorizer::{aggregate, Lookup, Resolver, GROUP};
use super::policy::{compact, covers, go_quote, go_quoted_list, Rule};
use crate::authz::{self, Attributes};
use crate::error::{Error, GroupResource, Result};
use crate::host::Host;
use crate::identity::{User, MASTERS};
use crate::object;

/// Checks a create (`old` is `None`) or update of an RBAC object by the request being served.
/// Writes outside a host API request (hostsim's own controllers) are not checked.
pub fn check(host: &Host, plural: &str, obj: &Value, old: Option<&Value>) -> Result<()> {
    let Some(request) = authz::current() else {
        return Ok(());
    };
    // EscalationAllowed: system:masters may do anything.
    if request.user.in_group(MASTERS) {
        return Ok(());
    }
    let forbidden = |cause: String| Error::Denied {
        gr: GroupResource::new(GROUP, plural),
        name: object::name(obj).to_string(),
        cause,
    };
    // The namespace of the request (genericapirequest.NamespaceFrom): the binding's own for a
    // RoleBinding, none for the cluster-scoped kinds.
    let namespace = request.namespace.as_str();
    match plural {
        "roles" | "clusterroles" => {
            if role_escalation_authorized(host, &request) {
                return Ok(());
            }
            if old.is_some_and(|old| only_gc_fields_change(obj, old)) {
                return Ok(());
            }
            confirm_no_escalation(host, &request.user, namespace, &Rule::of_role(obj))
                .map_err(forbidden)?;
            if plural == "clusterroles" && has_aggregation_rule(obj) {
                let full_authority =
                    [Rule::resources(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])];
                confirm_no_escalation(host, &request.user, namespace, &full_authority).map_err(
                    |_| {
                        forbidden(
                            "must have cluster-admin privileges to use an aggregationRule".into(),
                        )
                    },
                )?;
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            if old.is_some_and(|old| only_gc_fields_change(obj, old)) {
                return Ok(());
            }
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            if binding_authorized(host, &request.user, &role_ref, namespace) {
                return Ok(());
            }
            let rules = Resolver::new(&host.store, Lookup::Registry)
                .role_reference_rules(&role_ref, namespace)?;
            confirm_no_escalation(host, &request.user, namespace, &rules).map_err(forbidden)
        }
        _ => Ok(()),
    }
}

/// RoleEscalationAuthorized: `escalate` on the role the request is about (by the request's own
/// name, so a create, which has none in its path, needs `escalate` without resourceNames).
fn role_escalation_authorized(host: &Host, request: &Attributes) -> bool {
    if !request.resource_request
        || request.api_group != GROUP
        || !matches!(request.resource.as_str(), "roles" | "clusterroles")
    {
        return false;
    }
    let attrs = Attributes::resource(
        &request.user,
        "escalate",
        &request.api_group,
        &request.resource,
        &request.namespace,
        &request.name,
    );
    authz::authorize(host, &attrs).allowed
}

/// BindingAuthorized: `bind` on the referenced role, in the binding's namespace (none for a
/// ClusterRoleBinding).
fn binding_authorized(host: &Host, user: &User, role_ref: &Value, namespace: &str) -> bool {
    let resource = match object::str_at(role_ref, "/kind") {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        _ => return false,
    };
    let mut attrs = Attributes::resource(
        user,
        "bind",
        object::str_at(role_ref, "/apiGroup"),
        resource,
        namespace,
        object::str_at(role_ref, "/name"),
    );
    attrs.api_version = String::new();
    authz::authorize(host, &attrs).allowed
}

/// ConfirmNoEscalation: the user's own rules in `namespace` must cover `rules`; `Err` is the
/// API server's explanation.
fn confirm_no_escalation(
    host: &Host,
    user: &User,
    namespace: &str,
    rules: &[Rule],
) -> std::result::Result<(), String> {
    let (owned, errors) = Resolver::new(&host.store, Lookup::Registry).rules_for(user, namespace);
    let (covered, missing) = covers(&owned, rules);
    if covered {
        return Ok(());
    }
    let missing: BTreeSet<String> = compact(missing).iter().map(Rule::compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quoted_list(&user.groups),
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", aggregate(&errors)));
    }
    Err(message)
}

/// hasAggregationRule: an aggregation rule with at least one selector.
fn has_aggregation_rule(role: &Value) -> bool {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

/// IsOnlyMutatingGCFields: the update changes nothing but what the garbage collector needs
/// (owner references, finalizers; managed fields and selfLink are not compared either).
fn only_gc_fields_change(obj: &Value, old: &Value) -> bool {
    let mut copied = obj.clone();
    let meta = object::metadata_mut(&mut copied);
    for key in ["ownerReferences", "finalizers", "managedFields", "selfLink"] {
        match old.pointer(&format!("/metadata/{key}")) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.remove(key);
            }
        }
    }
    &copied == old
}

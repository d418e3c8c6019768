//! KRaft's own rights on the host. When the host's RBAC refuses KRaft a request, the operator is
//! told once per missing rule which rule to add, and the part that needed it reports its own
//! failure as usual; nothing else waits for it.
//!
//! The refusal is read from the API server's `Forbidden` Status, whose message has one fixed
//! shape (kubernetes v1.35 `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/
//! errors.go` ForbiddenStatusError): `… is forbidden: User "u" cannot <verb> resource "<resource
//! [/subresource]>" in API group "<group>" (in the namespace "<ns>" | at the cluster scope)` or
//! `… cannot <verb> path "<path>"`. Other 403s (a namespace being terminated, admission) are not
//! missing rights and are left alone.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// One rule the host refused, as an RBAC rule would grant it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Missing {
    pub user: String,
    pub verb: String,
    /// `(group, resource)`; `None` for a non-resource path.
    pub resource: Option<(String, String)>,
    /// The namespace of the refused request, or the non-resource path.
    pub scope: Option<String>,
}

impl Missing {
    /// Reads a `Forbidden` message; `None` if it is not an authorization refusal.
    pub fn parse(message: &str) -> Option<Self> {
        const MARK: &str = "forbidden: User \"";
        let rest = &message[message.find(MARK)? + MARK.len()..];
        let (user, rest) = rest.split_once("\" cannot ")?;
        let (verb, rest) = rest.split_once(' ')?;
        let quoted = |s: &str| -> Option<(String, String)> {
            let s = s.strip_prefix('"')?;
            let (value, rest) = s.split_once('"')?;
            Some((value.to_owned(), rest.to_owned()))
        };
        let (resource, scope) = if let Some(rest) = rest.strip_prefix("resource ") {
            let (resource, rest) = quoted(rest)?;
            let (group, rest) = quoted(rest.strip_prefix(" in API group ")?)?;
            let namespace =
                rest.strip_prefix(" in the namespace ").and_then(&quoted).map(|(ns, _)| ns);
            (Some((group, resource)), namespace)
        } else {
            let (path, _) = quoted(rest.strip_prefix("path ")?)?;
            (None, Some(path))
        };
        Some(Self { user: user.to_owned(), verb: verb.to_owned(), resource, scope })
    }

    /// The rule that grants it, as it is written in a ClusterRole.
    pub fn rule(&self) -> String {
        match &self.resource {
            Some((group, resource)) if self.verb == "bind" => format!(
                "{{apiGroups: [\"{group}\"], resources: [\"{resource}\"], verbs: [\"bind\"], \
                 resourceNames: [\"{}\"]}}",
                self.scope.as_deref().unwrap_or_default()
            ),
            Some((group, resource)) => format!(
                "{{apiGroups: [\"{group}\"], resources: [\"{resource}\"], verbs: [\"{}\"]}}",
                self.verb
            ),
            None => format!(
                "{{nonResourceURLs: [\"{}\"], verbs: [\"{}\"]}}",
                self.scope.as_deref().unwrap_or("/"),
                self.verb
            ),
        }
    }
}

/// A refusal already logged: user, verb and `(group, resource)`.
type Seen = (String, String, Option<(String, String)>);

fn seen() -> &'static Mutex<HashSet<Seen>> {
    static SEEN: OnceLock<Mutex<HashSet<Seen>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Logs a refused right the first time this process meets it (per user, verb and resource).
pub fn note(error: &kube::Error) {
    if let kube::Error::Api(status) = error {
        note_status(status.code, &status.message);
    }
}

/// [`note`] for a Status already taken apart.
pub fn note_status(code: u16, message: &str) {
    if code != 403 {
        return;
    }
    let Some(missing) = Missing::parse(message) else { return };
    // A namespaced refusal may only mean the namespace is going: the namespace controller deletes
    // KRaft's `kraft-tenant` RoleBinding with everything else while pods still stop, and a live
    // view or the gateway may still ask. Logged only if the namespace stands.
    let namespace = missing.resource.as_ref().and(missing.scope.clone());
    let client = CLIENT.get().cloned();
    match (namespace, client, tokio::runtime::Handle::try_current()) {
        (Some(namespace), Some(client), Ok(runtime)) => {
            let message = message.to_owned();
            runtime.spawn(async move {
                use k8s_openapi::api::core::v1::Namespace;
                let api: kube::Api<Namespace> = kube::Api::all(client);
                let standing = match api.get_opt(&namespace).await {
                    Ok(Some(ns)) => ns.metadata.deletion_timestamp.is_none(),
                    Ok(None) => false,
                    // Cannot tell: say it.
                    Err(_) => true,
                };
                if standing {
                    log_once(missing, &message);
                }
            });
        }
        _ => log_once(missing, message),
    }
}

/// The host client refusals are checked with (see [`note_status`]); the first one set stays.
static CLIENT: OnceLock<kube::Client> = OnceLock::new();

/// Lets [`note`] check with the host whether a refused namespace is going away.
pub fn check_with(client: kube::Client) {
    let _ = CLIENT.set(client);
}

/// Logs, once, that the host refused KRaft a RoleBinding to the ClusterRole `role`: the RBAC
/// escalation check (`… is attempting to grant RBAC permissions not currently held`, kubernetes
/// v1.35 `pkg/registry/rbac/validation/rule.go` ConfirmNoEscalation) lets a binding through only
/// when its maker may `bind` the role. `false` if `error` is not that refusal.
pub fn note_binding(error: &kube::Error, role: &str) -> bool {
    let kube::Error::Api(status) = error else { return false };
    if status.code != 403 || !status.message.contains("attempting to grant RBAC permissions") {
        return false;
    }
    let user = status
        .message
        .split_once("user \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(String::new, |(user, _)| user.to_owned());
    let missing = Missing {
        user,
        verb: "bind".into(),
        resource: Some(("rbac.authorization.k8s.io".into(), "clusterroles".into())),
        scope: Some(role.into()),
    };
    log_once(missing, &status.message);
    true
}

fn log_once(missing: Missing, message: &str) {
    let key = (missing.user.clone(), missing.verb.clone(), missing.resource.clone());
    let first = seen().lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    if first {
        tracing::error!(
            user = %missing.user,
            refused = %message,
            "the host refused KRaft a right it needs: add the rule {} to the ClusterRole bound \
             to KRaft's ServiceAccount (deploy/helm/kraft templates/rbac.yaml)",
            missing.rule()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_the_api_servers_message() {
        let namespaced = Missing::parse(
            "secrets \"k3k-a-kubeconfig\" is forbidden: User \"system:serviceaccount:kraft:kraft\" \
             cannot get resource \"secrets\" in API group \"\" in the namespace \"k3k-a\"",
        )
        .unwrap();
        assert_eq!(namespaced.user, "system:serviceaccount:kraft:kraft");
        assert_eq!(namespaced.verb, "get");
        assert_eq!(namespaced.resource, Some(("".into(), "secrets".into())));
        assert_eq!(namespaced.scope.as_deref(), Some("k3k-a"));
        assert_eq!(
            namespaced.rule(),
            r#"{apiGroups: [""], resources: ["secrets"], verbs: ["get"]}"#
        );

        let cluster = Missing::parse(
            "virtualclusterpolicies.k3k.io is forbidden: User \"u\" cannot list resource \
             \"virtualclusterpolicies\" in API group \"k3k.io\" at the cluster scope",
        )
        .unwrap();
        assert_eq!(cluster.resource, Some(("k3k.io".into(), "virtualclusterpolicies".into())));
        assert_eq!(cluster.scope, None);

        let log = Missing::parse(
            "pods \"p\" is forbidden: User \"u\" cannot get resource \"pods/log\" in API group \"\" \
             in the namespace \"n\": RBAC: clusterrole.rbac.authorization.k8s.io \"t\" not found",
        )
        .unwrap();
        assert_eq!(log.rule(), r#"{apiGroups: [""], resources: ["pods/log"], verbs: ["get"]}"#);

        let bind = Missing {
            user: "u".into(),
            verb: "bind".into(),
            resource: Some(("rbac.authorization.k8s.io".into(), "clusterroles".into())),
            scope: Some("kraft-tenant".into()),
        };
        assert_eq!(
            bind.rule(),
            r#"{apiGroups: ["rbac.authorization.k8s.io"], resources: ["clusterroles"], verbs: ["bind"], resourceNames: ["kraft-tenant"]}"#
        );

        let path = Missing::parse("forbidden: User \"u\" cannot get path \"/version\"").unwrap();
        assert_eq!(path.rule(), r#"{nonResourceURLs: ["/version"], verbs: ["get"]}"#);
    }

    #[test]
    fn other_refusals_are_not_missing_rights() {
        let terminating = "pods \"p\" is forbidden: unable to create new content in namespace n \
                           because it is being terminated";
        assert_eq!(Missing::parse(terminating), None);
        assert_eq!(Missing::parse("exceeded quota: q"), None);
    }
}

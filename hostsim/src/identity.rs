//! Who a request is from: the host's cluster admin (its bearer token), a ServiceAccount (a token
//! from [`crate::tokens`]), or, on a virtual cluster's API server, the user and groups of the
//! client certificate it presented (CN and O, kubernetes v1.35 `staging/src/k8s.io/apiserver/pkg/
//! authentication/request/x509/x509.go` CommonNameUserConversion). On a virtual cluster,
//! impersonation headers change it when that user may impersonate (`staging/src/k8s.io/apiserver/
//! pkg/endpoints/filters/impersonation.go`): there only `system:masters` may, as RBAC would allow
//! nobody else by default; the host authorizes impersonation with RBAC ([`crate::authz`]).

use std::collections::BTreeMap;

use axum::http::HeaderMap;

/// The authenticated user of a request (apiserver `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// Empty when the authenticator gives none.
    pub uid: String,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user a host API request acts as, once authenticated, impersonated and authorized (a
/// request extension for the handlers that report it).
#[derive(Debug, Clone)]
pub struct Authenticated(pub User);

pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group the API server lets do anything (apiserver `user.SystemPrivilegedGroup`).
pub const MASTERS: &str = "system:masters";
pub const ANONYMOUS: &str = "system:anonymous";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl User {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Who the host's admin bearer token authenticates as: a kubeadm cluster's
    /// `kubernetes-admin`, in the group the API server never refuses.
    pub fn admin() -> Self {
        Self::new("kubernetes-admin", &[MASTERS, AUTHENTICATED])
    }

    /// A ServiceAccount's user (apiserver `pkg/authentication/serviceaccount/util.go` UserInfo,
    /// MakeGroupNames, and `pkg/serviceaccount/jwt.go`: the token's `jti` becomes the
    /// `authentication.kubernetes.io/credential-id` extra, `JTI=<jti>`), with the group every
    /// authenticated user gets.
    pub fn service_account(namespace: &str, name: &str, uid: &str, jti: &str) -> Self {
        let mut user = Self::new(
            &service_account_username(namespace, name),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED,
            ],
        );
        user.uid = uid.to_string();
        if !jti.is_empty() {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
        }
        user
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// From a client certificate (DER): CN is the user, each O a group.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        groups.push(AUTHENTICATED.into());
        Some(Self { name, groups, uid: String::new(), extra: BTreeMap::new() })
    }

    /// Who the request acts as: this user, or the one its `Impersonate-*` headers name.
    /// `Err` is the API server's Forbidden message.
    pub fn acting(&self, headers: &HeaderMap) -> Result<User, String> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        };
        let Some(user) = values("impersonate-user").into_iter().next() else {
            return Ok(self.clone());
        };
        if !self.in_group(MASTERS) {
            return Err(format!(
                "users \"{user}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                self.name
            ));
        }
        let mut groups = values("impersonate-group");
        if user != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Ok(User { name: user, groups, uid: String::new(), extra: BTreeMap::new() })
    }
}

/// `system:serviceaccount:<namespace>:<name>` (apiserver serviceaccount.MakeUsername).
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount username (serviceaccount.SplitUsername: exactly
/// two non-empty parts after the prefix).
pub fn split_service_account_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_masters_may_impersonate_and_the_impersonated_are_authenticated() {
        let admin = User::new("system:admin", &["system:masters"]);
        let mut headers = HeaderMap::new();
        assert_eq!(admin.acting(&headers).unwrap(), admin);
        headers.insert("impersonate-user", "kraft:ada".parse().unwrap());
        headers.append("impersonate-group", "system:masters".parse().unwrap());
        let acting = admin.acting(&headers).unwrap();
        assert_eq!(acting.name, "kraft:ada");
        assert_eq!(acting.groups, ["system:masters", "system:authenticated"]);
        let nobody = User::new("bob", &[AUTHENTICATED]);
        let refused = nobody.acting(&headers).unwrap_err();
        assert!(refused.contains("cannot impersonate resource \"users\""), "{refused}");
    }
}

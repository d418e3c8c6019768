//! Who a host API request is from and whether it may go on, in the order of kube-apiserver's
//! filter chain: authentication (the admin's bearer token, or a ServiceAccount token), then
//! impersonation, then authorization of the request's attributes.
//!
//! - Bearer tokens: kubernetes v1.35 `staging/src/k8s.io/apiserver/pkg/authentication/request/
//!   bearertoken/bearertoken.go`; a token nobody knows is the 401 `Unauthorized` Status.
//! - Impersonation: `staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`
//!   (`WithImpersonation`, `buildImpersonationRequests`): each `Impersonate-*` header is an
//!   `impersonate` check of the requestor on `users`, `serviceaccounts` (in their namespace),
//!   `groups`, `userextras/<key>` or `uids`.
//! - Pod subresources: with the WebSocket upgrade (a GET, authorized as `get`), `exec`, `attach`
//!   and `portforward` also need `create`, the verb SPDY's POST is authorized with
//!   (`pkg/registry/core/pod/rest/subresources.go` and `authorize.go`
//!   `ensureAuthorizedForVerb`, feature AuthorizePodWebsocketUpgradeCreatePermission, beta and
//!   on since v1.35).

use axum::http::{header, HeaderMap, Method, Uri};

use crate::authz::{self, Attributes};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::identity::{
    split_service_account_username, User, ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED,
};

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The user a bearer token authenticates, if any.
pub fn authenticate(host: &Host, token: Option<&str>) -> Option<User> {
    let token = token?;
    if token == host.token {
        return Some(User::admin());
    }
    host.tokens.authenticate(&host.store, token, chrono::Utc::now().timestamp())
}

/// What one impersonation header asks for.
enum Wanted {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

/// The user `requestor` acts as, after the checks of every `Impersonate-*` header.
pub fn impersonate(host: &Host, requestor: User, headers: &HeaderMap) -> Result<User> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect()
    };
    let mut wanted = Vec::new();
    let requested_user = values("impersonate-user").into_iter().next().unwrap_or_default();
    let has_user = !requested_user.is_empty();
    if has_user {
        wanted.push(match split_service_account_username(&requested_user) {
            Some((namespace, name)) => {
                Wanted::ServiceAccount { namespace: namespace.into(), name: name.into() }
            }
            None => Wanted::User(requested_user.clone()),
        });
    }
    let groups = values("impersonate-group");
    wanted.extend(groups.iter().cloned().map(Wanted::Group));
    for name in headers.keys() {
        let Some(key) = name.as_str().strip_prefix("impersonate-extra-") else { continue };
        // unescapeExtraKey: the key is percent-encoded in the header name.
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned();
        for value in values(name.as_str()) {
            wanted.push(Wanted::Extra { key: key.clone(), value });
        }
    }
    let uid = values("impersonate-uid").into_iter().next().unwrap_or_default();
    if !uid.is_empty() {
        wanted.push(Wanted::Uid(uid.clone()));
    }
    if !has_user {
        if wanted.is_empty() {
            return Ok(requestor);
        }
        // buildImpersonationRequests' error, which the filter answers with a plain 500.
        return Err(Error::Internal("requested impersonation without impersonating a user".into()));
    }

    let mut acting = User::new("", &[]);
    let groups_specified = !groups.is_empty();
    for want in &wanted {
        let check = |group: &str, resource: &str, namespace: &str, name: &str| {
            let mut a =
                Attributes::resource(&requestor, "impersonate", group, resource, namespace, name);
            a.api_version = if group.is_empty() { String::new() } else { "v1".into() };
            a
        };
        let attrs = match want {
            Wanted::ServiceAccount { namespace, name } => {
                acting.name = crate::identity::service_account_username(namespace, name);
                if !groups_specified {
                    acting.groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
                check("", "serviceaccounts", namespace, name)
            }
            Wanted::User(name) => {
                acting.name = name.clone();
                check("", "users", "", name)
            }
            Wanted::Group(group) => {
                acting.groups.push(group.clone());
                check("", "groups", "", group)
            }
            Wanted::Extra { key, value } => {
                acting.extra.entry(key.clone()).or_default().push(value.clone());
                let mut a = check("authentication.k8s.io", "userextras", "", value);
                a.subresource = key.clone();
                a
            }
            Wanted::Uid(uid) => {
                acting.uid = uid.clone();
                check("authentication.k8s.io", "uids", "", uid)
            }
        };
        authz::require(host, &attrs)?;
    }
    if acting.name != ANONYMOUS {
        if !acting.groups.iter().any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED) {
            acting.groups.push(AUTHENTICATED.into());
        }
    } else if !acting.in_group(UNAUTHENTICATED) {
        acting.groups.push(UNAUTHENTICATED.into());
    }
    Ok(acting)
}

/// The attributes of a request by `user`, once it is authorized (the pod connect subresources'
/// `create` check included).
pub fn authorize(host: &Host, user: &User, method: &Method, uri: &Uri) -> Result<Attributes> {
    let attrs = Attributes::from_request(user, method, uri);
    authz::require(host, &attrs)?;
    let connect = attrs.resource_request
        && attrs.api_group.is_empty()
        && attrs.resource == "pods"
        && matches!(attrs.subresource.as_str(), "exec" | "attach" | "portforward");
    if connect && attrs.verb != "create" {
        let create = Attributes { verb: "create".into(), ..attrs.clone() };
        let decision = authz::authorize(host, &create);
        if !decision.allowed {
            return Err(authz::forbidden_with_reason(&create, &decision.reason));
        }
    }
    Ok(attrs)
}

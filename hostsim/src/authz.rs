//! What a host API request asks to do and whether its user may: the request's authorization
//! attributes read from its path as the API server reads them, the authorizer chain kube-apiserver
//! runs (the `system:masters` short-circuit, then RBAC), the Forbidden answers, and the request's
//! attributes kept for code deeper down (the escalation checks of [`crate::rbac::escalation`],
//! server-side apply's create-on-update check) as the API server keeps them in the request
//! context.
//!
//! - Attributes: kubernetes v1.35 `staging/src/k8s.io/apiserver/pkg/endpoints/request/
//!   requestinfo.go` `RequestInfoFactory.NewRequestInfo` (API prefixes `api` and `apis`, `api`
//!   groupless), and `staging/src/k8s.io/apiserver/pkg/endpoints/filters/authorization.go`
//!   `GetAuthorizerAttributes`.
//! - The chain: `pkg/kubeapiserver/authorizer/config.go` puts
//!   `authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup)` first, then the modes of
//!   a kubeadm cluster, Node (no opinion for anyone but a node) and RBAC, in a union
//!   (`staging/src/k8s.io/apiserver/pkg/authorization/union/union.go`: the first allow wins,
//!   otherwise the reasons are joined).
//! - Denials: `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`
//!   `Forbidden`/`forbiddenMessage` wrapped in apimachinery `pkg/api/errors/errors.go`
//!   `NewForbidden`.

use std::future::Future;

use axum::http::{Method, Uri};

use crate::error::{Error, GroupResource};
use crate::host::Host;
use crate::identity::{User, MASTERS};

/// authorizer.AttributesRecord: who asks to do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: User,
    /// `get`, `list`, `watch`, `create`, ... for resources; the lower-case HTTP method for other
    /// paths.
    pub verb: String,
    pub resource_request: bool,
    /// The URL path (non-resource requests are authorized by it).
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl Attributes {
    /// A resource request made up by the server itself (the verb checks of the escalation rules,
    /// `create` on an apply that creates, ...).
    pub fn resource(
        user: &User,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            user: user.clone(),
            verb: verb.to_string(),
            resource_request: true,
            path: String::new(),
            api_group: group.to_string(),
            api_version: "*".to_string(),
            namespace: namespace.to_string(),
            resource: resource.to_string(),
            subresource: String::new(),
            name: name.to_string(),
        }
    }

    /// A request for a path that is no resource (`/version`, `/healthz`, ...).
    pub fn non_resource(user: &User, verb: &str, path: &str) -> Self {
        Self {
            user: user.clone(),
            verb: verb.to_string(),
            resource_request: false,
            path: path.to_string(),
            api_group: String::new(),
            api_version: String::new(),
            namespace: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
        }
    }

    /// NewRequestInfo: the verb from the method (or a `watch`/`proxy` path prefix), the group,
    /// version, namespace, resource, name and subresource from the path; a `get` without a name
    /// is a `list` or a `watch`, a `delete` without one a `deletecollection`; a list or watch
    /// whose field selector pins `metadata.name` is about that name.
    pub fn from_request(user: &User, method: &Method, uri: &Uri) -> Self {
        // Go's URL.Path is already unescaped when the request info splits it.
        let path =
            percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
        let mut a = Self::non_resource(user, &method.as_str().to_ascii_lowercase(), &path);
        let trimmed = path.trim_matches('/');
        let mut parts: Vec<&str> =
            if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return a;
        }
        let groupless = parts[0] == "api";
        parts.remove(0);
        if !groupless {
            if parts.len() < 3 {
                return a;
            }
            a.api_group = parts.remove(0).to_string();
        }
        a.resource_request = true;
        a.api_version = parts.remove(0).to_string();
        if matches!(parts[0], "proxy" | "watch") {
            if parts.len() < 2 {
                // "unable to determine kind and namespace from url": the filter answers 500
                // before authorizing; hostsim authorizes what it has and then finds nothing.
                return a;
            }
            a.verb = parts.remove(0).to_string();
        } else {
            a.verb = match *method {
                Method::POST => "create",
                Method::GET | Method::HEAD => "get",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if parts[0] == "namespaces" && parts.len() > 1 {
            a.namespace = parts[1].to_string();
            // Past the namespace unless the next part is a namespace subresource.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(..2);
            }
        }
        if parts.len() >= 3 && a.verb != "proxy" {
            a.subresource = parts[2].to_string();
        }
        if parts.len() >= 2 {
            a.name = parts[1].to_string();
        }
        a.resource = parts[0].to_string();
        if a.name.is_empty() && a.verb == "get" {
            let query: Vec<(String, String)> =
                serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
            let first = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            // metav1 Convert_Slice_string_To_bool: anything but "0" and "false" is true.
            let watch =
                first("watch").is_some_and(|w| w != "0" && !w.eq_ignore_ascii_case("false"));
            a.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(name) = first("fieldSelector").and_then(exact_name) {
                if valid_path_segment(&name) {
                    a.name = name;
                }
            }
        }
        if a.name.is_empty() && a.verb == "delete" {
            a.verb = "deletecollection".to_string();
        }
        a
    }

    fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.api_group, &self.resource)
    }
}

/// fields.Selector.RequiresExactMatch("metadata.name") of a field selector: the value of a
/// `metadata.name=` or `metadata.name==` term. `None` also when the selector does not parse (the
/// request info then keeps no name).
fn exact_name(selector: &str) -> Option<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in selector.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if escaped {
        return None;
    }
    terms.push(current);
    let mut found = None;
    for term in terms.iter().filter(|t| !t.is_empty()) {
        let (field, op, value) = ["!=", "==", "="]
            .iter()
            .find_map(|op| term.split_once(op).map(|(f, v)| (f, *op, v)))?;
        if field == "metadata.name" && op != "!=" && found.is_none() {
            found = Some(unescape_field_value(value)?);
        }
    }
    found
}

/// fields.UnescapeValue.
fn unescape_field_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                c @ ('\\' | ',' | '=') => out.push(c),
                _ => return None,
            }
        } else if c == ',' || c == '=' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// apimachinery path.IsValidPathSegmentName.
fn valid_path_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// An authorizer's answer: allowed or not, and why (the reason RBAC gives is empty unless a
/// binding could not be resolved, or names the binding that allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The API server's authorizer chain on the host.
pub fn authorize(host: &Host, a: &Attributes) -> Decision {
    // authorizerfactory privilegedGroupAuthorizer: allow, no reason.
    if a.user.in_group(MASTERS) {
        return Decision { allowed: true, reason: String::new() };
    }
    crate::rbac::authorizer::authorize(&host.store, a)
}

/// Go's `%q` of a string.
fn quoted(s: &str) -> String {
    crate::rbac::policy::go_quote(s)
}

/// forbiddenMessage, without the HTML-looking characters (the `sanitizer` there).
fn forbidden_message(a: &Attributes) -> String {
    let user = quoted(&a.user.name);
    let text = if !a.resource_request {
        format!("User {user} cannot {} path {}", a.verb, quoted(&a.path))
    } else {
        let mut resource = a.resource.clone();
        if !a.subresource.is_empty() {
            resource = format!("{resource}/{}", a.subresource);
        }
        if a.namespace.is_empty() {
            format!(
                "User {user} cannot {} resource {} in API group {} at the cluster scope",
                a.verb,
                quoted(&resource),
                quoted(&a.api_group)
            )
        } else {
            format!(
                "User {user} cannot {} resource {} in API group {} in the namespace {}",
                a.verb,
                quoted(&resource),
                quoted(&a.api_group),
                quoted(&a.namespace)
            )
        }
    };
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// responsewriters.Forbidden: the 403 of a request its user may not make.
pub fn forbidden(a: &Attributes, reason: &str) -> Error {
    let message = forbidden_message(a);
    let cause = if reason.is_empty() { message } else { format!("{message}: {reason}") };
    Error::Denied { gr: a.group_resource(), name: a.name.clone(), cause }
}

/// A refusal of a check made deeper down with the authorizer's reason as the whole cause
/// (`NewForbidden(gr, name, errors.New(reason))`: the pod subresources' `create` check,
/// withAuthorization on an apply that creates).
pub fn forbidden_with_reason(a: &Attributes, reason: &str) -> Error {
    Error::Denied { gr: a.group_resource(), name: a.name.clone(), cause: reason.to_string() }
}

/// Authorizes `a`, or the Forbidden a denial gets.
pub fn require(host: &Host, a: &Attributes) -> Result<(), Error> {
    let decision = authorize(host, a);
    if decision.allowed {
        Ok(())
    } else {
        Err(forbidden(a, &decision.reason))
    }
}

tokio::task_local! {
    static REQUEST: Attributes;
}

/// Runs `f` (the handler of a request) with the request's attributes at hand for [`current`].
pub async fn serving<F: Future>(a: Attributes, f: F) -> F::Output {
    REQUEST.scope(a, f).await
}

/// The attributes of the host API request being served; `None` for work of hostsim's own
/// controllers and for virtual clusters (no authorization there), which are then not checked
/// (as the API server's loopback client, a `system:masters` member, is not).
pub fn current() -> Option<Attributes> {
    REQUEST.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> Attributes {
        Attributes::from_request(&User::new("u", &[]), &method, &uri.parse().unwrap())
    }

    fn short(a: &Attributes) -> String {
        let kind = if a.resource_request { "resource" } else { "path" };
        let fields = [&a.verb, &a.api_group, &a.namespace, &a.resource, &a.subresource, &a.name];
        let fields: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        format!("{kind} {}", fields.join("|"))
    }

    #[test]
    fn request_info_follows_the_api_server() {
        for (method, uri, want) in [
            (Method::GET, "/api", "path get|||||"),
            (Method::GET, "/api/v1", "path get|||||"),
            (Method::GET, "/apis/apps/v1", "path get|||||"),
            (Method::GET, "/version", "path get|||||"),
            (Method::GET, "/openapi/v3/api/v1", "path get|||||"),
            (Method::POST, "/apis", "path post|||||"),
            (Method::GET, "/api/v1/namespaces", "resource list|||namespaces||"),
            (Method::GET, "/api/v1/namespaces/a", "resource get||a|namespaces||a"),
            (
                Method::PUT,
                "/api/v1/namespaces/a/finalize",
                "resource update||a|namespaces|finalize|a",
            ),
            (Method::GET, "/api/v1/namespaces/a/pods", "resource list||a|pods||"),
            (Method::GET, "/api/v1/namespaces/a/pods?watch=true", "resource watch||a|pods||"),
            (Method::GET, "/api/v1/namespaces/a/pods?watch=false", "resource list||a|pods||"),
            (Method::GET, "/api/v1/namespaces/a/pods?watch=1", "resource watch||a|pods||"),
            (Method::GET, "/api/v1/watch/namespaces/a/pods", "resource watch||a|pods||"),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dp&watch=true",
                "resource watch||a|pods||p",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods?fieldSelector=status.phase!%3DRunning",
                "resource list||a|pods||",
            ),
            (Method::GET, "/api/v1/namespaces/a/pods/p/log", "resource get||a|pods|log|p"),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods/p/exec?command=ls",
                "resource get||a|pods|exec|p",
            ),
            (Method::POST, "/api/v1/namespaces/a/pods/p/exec", "resource create||a|pods|exec|p"),
            (Method::DELETE, "/api/v1/namespaces/a/pods", "resource deletecollection||a|pods||"),
            (Method::DELETE, "/api/v1/namespaces/a/pods/p", "resource delete||a|pods||p"),
            (
                Method::PATCH,
                "/apis/k3k.io/v1beta1/namespaces/a/clusters/c",
                "resource patch|k3k.io|a|clusters||c",
            ),
            (
                Method::GET,
                "/apis/metrics.k8s.io/v1beta1/nodes",
                "resource list|metrics.k8s.io||nodes||",
            ),
            (
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "resource create|authorization.k8s.io||selfsubjectaccessreviews||",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/a/serviceaccounts/s/token",
                "resource create||a|serviceaccounts|token|s",
            ),
        ] {
            assert_eq!(short(&info(method, uri)), want, "{uri}");
        }
    }

    #[test]
    fn forbidden_messages_are_the_api_servers() {
        let sa = User::service_account("kraft", "kraft", "u1", "");
        let a = Attributes::from_request(
            &sa,
            &Method::GET,
            &"/api/v1/namespaces/k3k-x/pods".parse().unwrap(),
        );
        assert_eq!(
            forbidden(&a, "").to_string(),
            r#"pods is forbidden: User "system:serviceaccount:kraft:kraft" cannot list resource "pods" in API group "" in the namespace "k3k-x""#
        );
        let a = Attributes::from_request(&sa, &Method::GET, &"/apis".parse().unwrap());
        assert_eq!(
            forbidden(&a, "").to_string(),
            r#"forbidden: User "system:serviceaccount:kraft:kraft" cannot get path "/apis""#
        );
        let a = Attributes::from_request(
            &sa,
            &Method::GET,
            &"/apis/k3k.io/v1beta1/virtualclusterpolicies".parse().unwrap(),
        );
        assert_eq!(
            forbidden(&a, r#"RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#)
                .to_string(),
            r#"virtualclusterpolicies.k3k.io is forbidden: User "system:serviceaccount:kraft:kraft" cannot list resource "virtualclusterpolicies" in API group "k3k.io" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#
        );
    }
}

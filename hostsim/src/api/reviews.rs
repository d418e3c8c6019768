//! The create-only APIs about the caller: `SelfSubjectReview` (`kubectl auth whoami`),
//! `SelfSubjectAccessReview` (`kubectl auth can-i`) and a ServiceAccount's `token` subresource
//! (`kubectl create token`). Nothing here is stored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::{json_response, protobuf};
use crate::authz::{self, Attributes};
use crate::error::{Cause, Error, Result};
use crate::host::Host;
use crate::identity::{Authenticated, User};
use crate::object;

/// A request body of `kind` by its `Content-Type` (JSON, YAML or protobuf).
fn decode(headers: &HeaderMap, body: &[u8], kind: &str) -> Result<Value> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body, kind),
        "" | "application/json" | "application/yaml" => serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| Error::BadRequest(format!("the object provided is unrecognized: {e}"))),
        _ => Err(Error::UnsupportedBodyMediaType),
    }
}

/// user.Info as `UserInfo` (username, uid, groups, extra; the last three `omitempty`).
fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        info["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// `kubectl auth whoami`: who the API server takes the caller for (kubernetes v1.35
/// `pkg/registry/authentication/selfsubjectreview/rest.go`). On the host, the user the request
/// was authenticated (and impersonated) as; on a virtual cluster, the client certificate's user
/// or whom it impersonates.
pub async fn self_subject_review(
    authenticated: Option<Extension<Authenticated>>,
    certificate: Option<Extension<Option<User>>>,
    headers: HeaderMap,
) -> Response {
    let acting = match authenticated {
        Some(Extension(Authenticated(user))) => Ok(user),
        None => certificate.and_then(|Extension(u)| u).unwrap_or_else(User::admin).acting(&headers),
    };
    match acting {
        Ok(acting) => json_response(
            StatusCode::CREATED,
            &json!({
                "kind": "SelfSubjectReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": user_info(&acting)},
            }),
        ),
        Err(message) => Error::Forbidden(message).into_response(),
    }
}

/// `kubectl auth can-i`: whether the caller may do what the review describes, answered by the
/// authorizer that authorizes its requests (kubernetes v1.35
/// `pkg/registry/authorization/selfsubjectaccessreview/rest.go`,
/// `pkg/registry/authorization/util/helpers.go` ResourceAttributesFrom /
/// NonResourceAttributesFrom, `pkg/apis/authorization/validation/validation.go`
/// ValidateSelfSubjectAccessReviewSpec). A virtual cluster authorizes nothing, so there every
/// review is allowed.
pub async fn self_subject_access_review(
    State(host): State<Arc<Host>>,
    authenticated: Option<Extension<Authenticated>>,
    certificate: Option<Extension<Option<User>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match authenticated {
        Some(Extension(Authenticated(user))) => user,
        None => certificate.and_then(|Extension(u)| u).unwrap_or_else(User::admin),
    };
    match access_review(&host, &user, &headers, &body) {
        Ok(review) => json_response(StatusCode::CREATED, &review),
        Err(e) => e.into_response(),
    }
}

fn access_review(host: &Host, user: &User, headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let review = decode(headers, body, "SelfSubjectAccessReview")?;
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let present = |key: &str| spec.get(key).is_some_and(|v| v.is_object());
    let invalid = |field: &str, detail: &str| Error::Invalid {
        kind: "SelfSubjectAccessReview".into(),
        group: "authorization.k8s.io".into(),
        name: String::new(),
        causes: vec![Cause::invalid(field, &json!("null"), detail)],
    };
    let text = |ptr: &str| object::str_at(&spec, ptr).to_string();
    let attrs = match (present("resourceAttributes"), present("nonResourceAttributes")) {
        (true, true) => {
            return Err(invalid(
                "spec.nonResourceAttributes",
                "cannot be specified in combination with resourceAttributes",
            ))
        }
        (false, false) => {
            return Err(invalid(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
        (true, false) => {
            let version = text("/resourceAttributes/version");
            Attributes {
                user: user.clone(),
                verb: text("/resourceAttributes/verb"),
                resource_request: true,
                path: String::new(),
                api_group: text("/resourceAttributes/group"),
                // matchAllVersionIfEmpty.
                api_version: if version.is_empty() { "*".into() } else { version },
                namespace: text("/resourceAttributes/namespace"),
                resource: text("/resourceAttributes/resource"),
                subresource: text("/resourceAttributes/subresource"),
                name: text("/resourceAttributes/name"),
            }
        }
        (false, true) => Attributes::non_resource(
            user,
            &text("/nonResourceAttributes/verb"),
            &text("/nonResourceAttributes/path"),
        ),
    };
    let decision = if host.client_cert_auth {
        authz::Decision { allowed: true, reason: String::new() }
    } else {
        authz::authorize(host, &attrs)
    };
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

/// `POST .../serviceaccounts/{name}/token` (kubernetes v1.35
/// `pkg/registry/core/serviceaccount/storage/token.go`): a name or namespace in the body must be
/// the path's; the rest is [`crate::tokens::request`]. Served on the host only: virtual clusters
/// authenticate client certificates, not tokens.
pub async fn token_request(
    State(host): State<Arc<Host>>,
    Path((namespace, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if host.client_cert_auth {
        return Error::UnknownPath.into_response();
    }
    if method != Method::POST {
        return Error::MethodNotAllowed.into_response();
    }
    let answer = decode(&headers, &body, "TokenRequest").and_then(|request| {
        for (field, want, detail) in [
            ("name", &name, "must match the service account name if specified"),
            ("namespace", &namespace, "must match the service account namespace if specified"),
        ] {
            let given = object::str_at(&request, &format!("/metadata/{field}"));
            if !given.is_empty() && given != want.as_str() {
                return Err(Error::Invalid {
                    kind: "TokenRequest".into(),
                    group: "authentication.k8s.io".into(),
                    name: name.clone(),
                    causes: vec![Cause::invalid(
                        &format!("metadata.{field}"),
                        &json!(given),
                        detail,
                    )],
                });
            }
        }
        crate::tokens::request(&host, &namespace, &name, &request)
    });
    match answer {
        Ok(answer) => json_response(StatusCode::CREATED, &answer),
        Err(e) => e.into_response(),
    }
}

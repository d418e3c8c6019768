//! The crate's single error type and its rendering as a Kubernetes `metav1.Status`.
//!
//! Every failure a client can see is a variant here; `IntoResponse` maps each one explicitly to
//! the HTTP code and `reason` a real API server would use, so clients (kube-rs, kubectl) react
//! the same way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A group and resource, e.g. `clusters.k3k.io`, used in error messages and `details`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self { group: group.to_string(), resource: resource.to_string() }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One field-level problem of an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    pub fn required(field: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.to_string(),
            message: "Required value".to_string(),
        }
    }

    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(render_value).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }

    pub fn type_invalid(field: &str, value: &Value, expected: &str) -> Self {
        Self {
            reason: "FieldValueTypeInvalid",
            field: field.to_string(),
            message: format!(
                "Invalid value: \"{}\": {field} in body must be of type {expected}: \"{}\"",
                json_type(value),
                json_type(value)
            ),
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The JSON type name as the API server's validation messages spell it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{gr} \"{name}\" not found")]
    NotFound { gr: GroupResource, name: String },
    #[error("{}{gr} \"{name}\" already exists", if *.deleting { "object is being deleted: " } else { "" })]
    AlreadyExists { gr: GroupResource, name: String, deleting: bool },
    #[error("Operation cannot be fulfilled on {gr} \"{name}\": {message}")]
    Conflict { gr: GroupResource, name: String, message: String },
    /// apimachinery v0.35 pkg/api/errors/errors.go NewInvalid: `<GroupKind> "<name>" is
    /// invalid`, where a core kind's GroupKind is the bare kind (schema GroupKind.String).
    #[error("{kind}{}{group} \"{name}\" is invalid: {}", if group.is_empty() { "" } else { "." }, render_causes(.causes))]
    Invalid { kind: String, group: String, name: String, causes: Vec<Cause> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// apimachinery v0.35 pkg/api/errors/errors.go NewForbidden, with its `details`:
    /// `<resource>[.<group>] ["<name>"] is forbidden: <cause>`, or `forbidden: <cause>` for no
    /// resource (a path).
    #[error("{}", forbidden_text(.gr, .name, .cause))]
    Denied { gr: GroupResource, name: String, cause: String },
    /// An error the API server returns without making it a Status first (apiserver
    /// `responsewriters.ErrorToAPIStatus`: a 500 with the error's text).
    #[error("{0}")]
    Unexpected(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// A PATCH body of a type the resource does not take (kubernetes v1.35
    /// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go, the patch types).
    #[error("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")]
    UnsupportedMediaType,
    /// A create or update body in a media type the server does not decode: the serializers'
    /// media types (kubernetes v1.35 staging/src/k8s.io/apiserver/pkg/endpoints/handlers/
    /// negotiation/negotiate.go NegotiateInputSerializerForMediaType, errors.go; apimachinery
    /// pkg/runtime/serializer/codec_factory.go: JSON, YAML, protobuf; CBOR is off by default).
    #[error("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")]
    UnsupportedBodyMediaType,
    /// What a real API server answers when a handler panics (kubernetes v1.35
    /// staging/src/k8s.io/apiserver/pkg/server/filters/wrap.go WithPanicRecovery): a plain-text 500.
    #[error("This request caused apiserver to panic. Look in the logs for details.")]
    Panic,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server could not find the requested resource")]
    UnknownPath,
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("could not bind or serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not build certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("could not configure TLS: {0}")]
    Tls(#[from] rustls::Error),
}

fn forbidden_text(gr: &GroupResource, name: &str, cause: &str) -> String {
    match (gr.group.is_empty() && gr.resource.is_empty(), name.is_empty()) {
        (true, _) => format!("forbidden: {cause}"),
        (false, true) => format!("{gr} is forbidden: {cause}"),
        (false, false) => format!("{gr} {name:?} is forbidden: {cause}"),
    }
}

fn render_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    if parts.len() == 1 {
        parts.join("")
    } else {
        format!("[{}]", parts.join(", "))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Error::NotFound { gr: gr.clone(), name: name.to_string() }
    }

    /// HTTP code, `reason` and `details` of the `Status` body.
    fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            Error::NotFound { gr, name } => (
                StatusCode::NOT_FOUND,
                "NotFound",
                json!({"name": name, "group": gr.group, "kind": gr.resource}),
            ),
            Error::AlreadyExists { gr, name, .. } => (
                StatusCode::CONFLICT,
                "AlreadyExists",
                json!({"name": name, "group": gr.group, "kind": gr.resource}),
            ),
            Error::Conflict { gr, name, .. } => (
                StatusCode::CONFLICT,
                "Conflict",
                json!({"name": name, "group": gr.group, "kind": gr.resource}),
            ),
            Error::Invalid { kind, group, name, causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    json!({"name": name, "group": group, "kind": kind, "causes": causes}),
                )
            }
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest", Value::Null),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden", Value::Null),
            Error::Denied { gr, name, .. } => {
                // StatusDetails' fields are all `omitempty`; the details themselves are always set.
                let mut details = serde_json::Map::new();
                for (key, value) in [("name", name), ("group", &gr.group), ("kind", &gr.resource)] {
                    if !value.is_empty() {
                        details.insert(key.into(), json!(value));
                    }
                }
                (StatusCode::FORBIDDEN, "Forbidden", Value::Object(details))
            }
            Error::Gone { .. } => (StatusCode::GONE, "Expired", Value::Null),
            Error::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", Value::Null)
            }
            Error::UnsupportedMediaType | Error::UnsupportedBodyMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", Value::Null)
            }
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized", Value::Null),
            Error::UnknownPath => (StatusCode::NOT_FOUND, "NotFound", Value::Null),
            Error::ServiceUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", Value::Null)
            }
            // StatusReasonUnknown, the empty reason.
            Error::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "", Value::Null),
            Error::Internal(_)
            | Error::Panic
            | Error::Io(_)
            | Error::Certificate(_)
            | Error::Tls(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", Value::Null),
        }
    }

    /// The `metav1.Status` object for this error (also used inside watch `ERROR` frames).
    pub fn status(&self) -> Value {
        let (code, reason, details) = self.parts();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if !details.is_null() {
            status["details"] = details;
        }
        if reason.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("reason");
            }
        }
        status
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, _, _) = self.parts();
        if let Error::Panic = self {
            // net/http's http.Error.
            return (
                code,
                [
                    (axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                format!("{self}\n"),
            )
                .into_response();
        }
        if code == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "internal error");
        }
        let body = self.status().to_string();
        (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

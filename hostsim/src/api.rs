//! The host cluster's Kubernetes REST API: routing of `/api`, `/apis` and discovery paths,
//! the request guard (authentication, impersonation and authorization, request counters,
//! injected latency and errors), and the verbs on objects. Streaming (watch, logs), tables,
//! metrics, the reviews and token requests, and the admin endpoints live in the submodules.

pub mod access;
pub mod admin;
pub mod exec;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod portforward;
pub mod protobuf;
pub mod reviews;
pub mod scale;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::host::{Host, PatchKind, WriteOptions};
use crate::object;
use crate::resources::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::Deletion;

pub type Query = HashMap<String, String>;

pub fn router(host: Arc<Host>) -> Router {
    Router::new()
        .route("/version", get(version))
        // A real API server answers the trailing slash too (the official Python client asks
        // for `/version/`).
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route(
            "/hostsim/faults",
            get(admin::get_faults).put(admin::put_faults).delete(admin::clear_faults),
        )
        .route("/hostsim/drop-connections", axum::routing::post(admin::drop_connections))
        .route("/hostsim/restart", axum::routing::post(admin::restart))
        .route("/hostsim/restart-container", axum::routing::post(admin::restart_container))
        .route("/hostsim/log-rate", axum::routing::post(admin::log_rate))
        // Streaming subresources need the raw request (WebSocket upgrades).
        .route("/api/v1/namespaces/{ns}/pods/{name}/exec", axum::routing::any(exec::exec))
        .route("/api/v1/namespaces/{ns}/pods/{name}/attach", axum::routing::any(exec::attach))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            axum::routing::any(portforward::serve),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            axum::routing::post(reviews::self_subject_review),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            axum::routing::post(reviews::self_subject_access_review),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            axum::routing::any(reviews::token_request),
        )
        .fallback(dispatch)
        .layer(middleware::from_fn(warning_headers))
        .layer(middleware::from_fn_with_state(host.clone(), guard))
        .with_state(host)
}

/// An injected error as the API server answers its own (kubernetes/kubernetes at 04791b49): a
/// Status with the reason apimachinery gives the code (staging/src/k8s.io/apimachinery
/// pkg/api/errors/errors.go: 503 `ServiceUnavailable`, 504 `Timeout`, otherwise
/// `InternalError`), and 429 as the in-flight limit sends it, plain text with `Retry-After: 1`
/// (staging/src/k8s.io/apiserver pkg/server/filters/maxinflight.go `tooManyRequests`, through
/// Go's `http.Error`).
fn injected_fault(code: u16) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if code == StatusCode::TOO_MANY_REQUESTS {
        return (
            code,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::RETRY_AFTER, "1"),
            ],
            "Too many requests, please try again later.\n",
        )
            .into_response();
    }
    let reason = match code {
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::GATEWAY_TIMEOUT => "Timeout",
        _ => "InternalError",
    };
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "injected fault", "reason": reason, "code": code.as_u16(),
    });
    json_response(code, &status)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn ok() -> &'static str {
    "ok"
}

async fn version(State(host): State<Arc<Host>>) -> Json<Value> {
    Json(version_doc(&host.version()))
}

pub fn version_doc(git_version: &str) -> Value {
    let plain = git_version.trim_start_matches('v');
    let mut parts = plain.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Sends what admission warned about as `Warning:` headers.
async fn warning_headers(req: Request, next: Next) -> Response {
    let (mut response, warnings) = crate::warnings::collect(next.run(req)).await;
    for text in warnings {
        if let Ok(value) = header::HeaderValue::from_str(&crate::warnings::header_value(&text)) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// In front of every route: counters; on the host, authentication (the admin token or a
/// ServiceAccount token), impersonation and authorization of everything but the health checks
/// and hostsim's own `/hostsim/*` endpoints (those take the admin token only); then injected
/// latency and errors. A virtual cluster authenticates by client certificate during the TLS
/// handshake and authorizes nothing.
async fn guard(State(host): State<Arc<Host>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    host.counters.hit(&path);
    let health = matches!(path.as_str(), "/healthz" | "/livez" | "/readyz");
    let mut authorized = None;
    if !host.client_cert_auth && !health {
        let presented = access::bearer(req.headers());
        if path.starts_with("/hostsim/") {
            if presented != Some(host.token.as_str()) {
                return Error::Unauthorized.into_response();
            }
        } else {
            let Some(user) = access::authenticate(&host, presented) else {
                return Error::Unauthorized.into_response();
            };
            let attrs = access::impersonate(&host, user, req.headers())
                .and_then(|acting| access::authorize(&host, &acting, req.method(), req.uri()));
            match attrs {
                Ok(attrs) => authorized = Some(attrs),
                Err(e) => return e.into_response(),
            }
        }
    }
    if !path.starts_with("/hostsim/") {
        let latency = host.faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(code) = host.faults.error_for(&path) {
            return injected_fault(code);
        }
    }
    match authorized {
        Some(attrs) => {
            req.extensions_mut().insert(crate::identity::Authenticated(attrs.user.clone()));
            crate::authz::serving(attrs, next.run(req)).await
        }
        None => next.run(req).await,
    }
}

fn parse_query(raw: Option<&str>) -> Result<Query> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("invalid query: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// A parsed resource path.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

async fn dispatch(
    State(host): State<Arc<Host>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(host, method, uri, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(
    host: Arc<Host>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = parse_query(uri.query())?;
    let discovery =
        |v: Option<Value>| v.map(|v| json_response(StatusCode::OK, &v)).ok_or(Error::UnknownPath);
    match segs.as_slice() {
        ["api"] => discovery(Some(
            host.registry
                .api_versions(host.address.get().map(String::as_str).unwrap_or("127.0.0.1:6443")),
        )),
        ["api", "v1"] => discovery(host.registry.resource_list("", "v1")),
        ["apis"] => discovery(Some(host.registry.api_group_list())),
        ["apis", g] => discovery(host.registry.api_group(g)),
        ["apis", g, v] => discovery(host.registry.resource_list(g, v)),
        ["openapi", "v3"] => discovery(Some(openapi::root(&host))),
        ["openapi", "v3", rest @ ..] => discovery(openapi::group_version(&host, rest)),
        ["api", "v1", rest @ ..] => {
            let t = target(&host, "", "v1", rest)?;
            resource(host, method, t, q, headers, body).await
        }
        ["apis", g, v, rest @ ..] => {
            let t = target(&host, g, v, rest)?;
            resource(host, method, t, q, headers, body).await
        }
        _ => Err(Error::UnknownPath),
    }
}

fn target(host: &Host, group: &str, version: &str, rest: &[&str]) -> Result<Target> {
    let find = |plural: &str| host.registry.find(group, version, plural).ok_or(Error::UnknownPath);
    let (rt, namespace, name, sub) = match rest {
        // Namespace subresources look like namespaced collections; they win for these names.
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            (find("namespaces")?, None, Some(*ns), Some(*sub))
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let rt = find(plural)?;
            if !rt.namespaced {
                return Err(Error::UnknownPath);
            }
            match tail {
                [] => (rt, Some(*ns), None, None),
                [name] => (rt, Some(*ns), Some(*name), None),
                [name, sub] => (rt, Some(*ns), Some(*name), Some(*sub)),
                _ => return Err(Error::UnknownPath),
            }
        }
        [plural] => (find(plural)?, None, None, None),
        [plural, name] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return Err(Error::UnknownPath);
            }
            (rt, None, Some(*name), None)
        }
        [plural, name, sub] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return Err(Error::UnknownPath);
            }
            (rt, None, Some(*name), Some(*sub))
        }
        _ => return Err(Error::UnknownPath),
    };
    if let Some(sub) = sub {
        if !rt.subresources.contains(&sub) {
            return Err(Error::UnknownPath);
        }
    }
    Ok(Target {
        rt,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    })
}

async fn resource(
    host: Arc<Host>,
    method: Method,
    t: Target,
    q: Query,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if t.rt.create_only {
        // Only their POST is served (by its own route).
        return Err(Error::MethodNotAllowed);
    }
    if t.rt.group == "metrics.k8s.io" {
        if method != Method::GET {
            return Err(Error::MethodNotAllowed);
        }
        return metrics::serve(&host, &t.rt, t.namespace.as_deref(), t.name.as_deref(), &q);
    }
    let table = wants_table(&headers);
    let body_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let opts = WriteOptions {
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
        warn: q.get("fieldValidation").is_none_or(|v| v == "Warn"),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
    };
    let ns = t.namespace.as_deref();
    let sub = t.subresource.as_deref();
    if let (Some("scale"), Some(name)) = (sub, t.name.as_deref()) {
        return scale::serve(
            &host,
            &t.rt,
            ns.unwrap_or(""),
            name,
            &method,
            &headers,
            &body,
            &q,
            opts,
        );
    }
    match (&method, t.name.as_deref()) {
        (&Method::GET, None) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch::serve(host, t.rt, t.namespace, &q, table);
            }
            list(&host, &t.rt, ns, &q, table)
        }
        (&Method::GET, Some(name)) if sub == Some("log") => {
            logs::serve(&host, ns.unwrap_or(""), name, &q).await
        }
        (&Method::GET, Some(name)) => {
            let obj = host.get(&t.rt, ns, name)?;
            if table {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&t.rt, &[obj], host.store.current_rv(), true),
                ));
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        (&Method::POST, None) => {
            let obj = decode(&body_type, &body, &t.rt, &q)?;
            let created = host.create_with(&t.rt, ns, obj, opts)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (&Method::PUT, Some(name)) => {
            let obj = decode(&body_type, &body, &t.rt, &q)?;
            let updated = host.update_with(&t.rt, ns, name, obj, sub, opts)?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        (&Method::PATCH, Some(name)) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            let (obj, created) = host.patch(
                &t.rt,
                ns,
                name,
                kind,
                &body,
                sub,
                q.get("fieldManager").map(String::as_str),
                opts,
            )?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(json_response(code, &obj))
        }
        (&Method::DELETE, Some(name)) if opts.dry_run => {
            Ok(json_response(StatusCode::OK, &host.get(&t.rt, ns, name)?))
        }
        (&Method::DELETE, Some(name)) => {
            match host.delete_with(&t.rt, ns, name, &delete_options(&body_type, &body, &q))? {
                Deletion::Pending(obj) => Ok(json_response(StatusCode::OK, &obj)),
                Deletion::Removed(obj) => Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": t.rt.group, "kind": t.rt.plural, "uid": object::uid(&obj)},
                    }),
                )),
            }
        }
        (&Method::DELETE, None) => {
            let (items, _) = select(&host, &t.rt, ns, &q)?;
            let mut deleted = Vec::new();
            for item in items {
                let name = object::name(&item).to_string();
                let item_ns = object::namespace(&item).to_string();
                let item_ns = (!item_ns.is_empty()).then_some(item_ns);
                match host.delete(&t.rt, item_ns.as_deref(), &name) {
                    Ok(Deletion::Pending(o)) | Ok(Deletion::Removed(o)) => deleted.push(o),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &list_doc(&t.rt, deleted, host.store.current_rv(), None),
            ))
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

/// `DeleteOptions` from the body (JSON, or protobuf from a typed Go client), with
/// `propagationPolicy` also accepted as a query parameter.
fn delete_options(content_type: &str, body: &[u8], q: &Query) -> Value {
    let mut opts: Value = if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        protobuf::decode(body, "DeleteOptions").unwrap_or_else(|_| json!({}))
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
    };
    if !opts.is_object() {
        opts = json!({});
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    opts
}

/// A create or update body by its `Content-Type` (kubernetes v1.35
/// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go, update.go: the input
/// serializer is negotiated from the media type without parameters, JSON when there is none).
pub(crate) fn decode(
    content_type: &str,
    body: &[u8],
    rt: &ResourceType,
    q: &Query,
) -> Result<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/vnd.kubernetes.protobuf" if rt.is_custom() => {
            // A custom resource's serializers list protobuf (apiextensions-apiserver v0.35
            // pkg/apiserver/customresource_handler.go, for the Status and Table objects it
            // returns) but without a strict decoder: with fieldValidation Warn (the default) or
            // Strict, create.go decodes with a nil serializer and the handler panics. With
            // Ignore the protobuf decoder cannot fill an Unstructured (crdserverscheme
            // UnstructuredObjectTyper: no kind) and rest.go transformDecodeError says so.
            if q.get("fieldValidation").map(String::as_str) != Some("Ignore") {
                return Err(Error::Panic);
            }
            let (api_version, kind, _) = protobuf::envelope(body)?;
            let kind = if kind.is_empty() { rt.kind.clone() } else { kind };
            let version = match api_version.rsplit('/').next() {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => rt.version.clone(),
            };
            Err(Error::BadRequest(format!(
                "{kind} in version \"{version}\" cannot be handled as a {}: Object 'Kind' is missing in 'object has no kind field '",
                rt.kind
            )))
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body, &rt.kind),
        "" | "application/json" | "application/yaml" => serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| Error::BadRequest(format!("the object provided is unrecognized: {e}"))),
        _ => Err(Error::UnsupportedBodyMediaType),
    }
}

/// The objects of a list request after namespace and selector filtering.
fn select(
    host: &Host,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Query,
) -> Result<(Vec<Value>, u64)> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let ns = if rt.namespaced { ns } else { None };
    let (items, rv) = host.store.list(&rt.gr(), ns);
    let items = items.into_iter().filter(|o| labels.matches(o) && fields.matches(o)).collect();
    Ok((items, rv))
}

pub fn list_doc(rt: &ResourceType, items: Vec<Value>, rv: u64, cont: Option<String>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": meta,
        "items": items,
    })
}

fn list(
    host: &Host,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Query,
    table: bool,
) -> Result<Response> {
    let (mut items, mut rv) = select(host, rt, ns, q)?;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut offset = 0usize;
    if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        let decoded = engine
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::BadRequest("invalid continue token".into()))?;
        let (rv_s, off_s) = decoded
            .split_once(':')
            .ok_or_else(|| Error::BadRequest("invalid continue token".into()))?;
        offset = off_s.parse().map_err(|_| Error::BadRequest("invalid continue token".into()))?;
        rv = rv_s.parse().unwrap_or(rv);
    }
    let limit: usize =
        q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let total = items.len();
    items = items.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    let cont = (next < total).then(|| engine.encode(format!("{rv}:{next}")));
    if table {
        let mut t = table::table(rt, &items, rv, true);
        if let Some(c) = cont {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(StatusCode::OK, &t));
    }
    Ok(json_response(StatusCode::OK, &list_doc(rt, items, rv, cont)))
}

/// A streaming response body with the given content type.
pub fn stream_response(content_type: &'static str, body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| Error::Internal("response".into()).into_response())
}

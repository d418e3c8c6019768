//! `/k8s/clusters/{id}/...`: every virtual cluster's Kubernetes API, through KRaft. The caller is
//! authenticated by a kubeconfig's bearer token (never a session cookie: no ambient credential a
//! web page could use); the request goes to the cluster's API server as K3k's admin, impersonating
//! `kraft:<username>` so the cluster's audit log and `kubectl auth whoami` name the user.
//!
//! Bodies stream both ways without being collected (watches, `logs -f`, chunked lists); a request
//! body is capped like the API server caps it. `Upgrade` requests (`kubectl exec`, `attach`, `cp`,
//! `port-forward`: WebSocket or SPDY) pass through byte for byte once both sides switched.
//! Errors are `metav1.Status` objects, as kubectl expects from an API server; an unknown, revoked,
//! expired or other cluster's token gets one and the same 401.

use std::net::IpAddr;
use std::time::Duration;

use app::api::ssr::ClientAddr;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Limited};
use hyper_util::rt::TokioIo;
use platform::access::{Denied, Grant};
use platform::Platform;
use uuid::Uuid;

/// The API server refuses larger request bodies (kubernetes v1.35
/// `staging/src/k8s.io/apiserver/pkg/server/config.go`, `MaxRequestBodyBytes`: 3 MiB).
const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;

/// Where the gateway's routes live.
pub const PREFIX: &str = "/k8s/clusters/";
/// Seconds a client is asked to wait before trying again a cluster that did not answer
/// (client-go retries up to 10 times: about a minute, what a k3s server needs to start).
const RETRY_AFTER: &str = "6";

/// Headers that belong to one connection (RFC 9110 §7.6.1) or that the caller must not choose:
/// its credential (which stays here), and identities the cluster would trust from KRaft.
fn dropped(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "authorization"
            | "cookie"
            | "host"
    ) || n.starts_with("impersonate-")
        || n.starts_with("x-remote-")
}

/// Copies headers across, leaving out the dropped ones and those `Connection` names.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in from {
        if !dropped(name) && !named.iter().any(|n| n == name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// A `metav1.Status` failure, as the API server answers.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn unauthorized() -> Response {
    status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Browsers cannot set `Authorization` on a WebSocket: the API server also takes the token from a
/// `Sec-WebSocket-Protocol` entry `base64url.bearer.authorization.k8s.io.<base64url(token)>` and
/// removes that entry before the request goes on (kubernetes v1.35
/// `staging/src/k8s.io/apiserver/pkg/authentication/request/websocket/protocol.go`).
const WEBSOCKET_BEARER: &str = "base64url.bearer.authorization.k8s.io.";

/// The token a WebSocket request carries in its subprotocols, and the subprotocols without it.
/// `Err` for a request that tries and fails (an empty or undecodable token, or two of them): the
/// API server refuses those rather than going on without a credential.
fn websocket_bearer(headers: &HeaderMap) -> Result<Option<(String, Option<HeaderValue>)>, ()> {
    use base64::Engine as _;
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !websocket || !headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL) {
        return Ok(None);
    }
    let mut token = None;
    let mut rest = Vec::new();
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty());
    for protocol in protocols {
        match protocol.strip_prefix(WEBSOCKET_BEARER) {
            Some(encoded) => {
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|t| !t.is_empty())
                    .ok_or(())?;
                if token.replace(decoded).is_some() {
                    return Err(());
                }
            }
            None => rest.push(protocol),
        }
    }
    let Some(token) = token else { return Ok(None) };
    let rest = (!rest.is_empty()).then(|| HeaderValue::from_str(&rest.join(", ")).ok()).flatten();
    Ok(Some((token, rest)))
}

/// Any request under [`PREFIX`], counted and timed for `/metrics`.
pub async fn proxy(
    State(platform): State<Platform>,
    ClientAddr(client): ClientAddr,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let response = authenticated(platform, client, request).await;
    let code = response.status().as_u16().to_string();
    metrics::counter!(platform::observe::GATEWAY_REQUESTS, "code" => code).increment(1);
    metrics::histogram!(platform::observe::GATEWAY_DURATION)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn authenticated(platform: Platform, client: IpAddr, mut request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let (id, upstream_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let token = match bearer(request.headers()) {
        Some(token) => token.to_owned(),
        None => match websocket_bearer(request.headers()) {
            Ok(Some((token, rest))) => {
                // The cluster never sees KRaft's token.
                let headers = request.headers_mut();
                headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
                if let Some(rest) = rest {
                    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, rest);
                }
                token
            }
            Ok(None) | Err(()) => return unauthorized(),
        },
    };
    // Not a cluster id at all: the same answer as a token that is not for it.
    let cluster_id = Uuid::parse_str(id).unwrap_or(Uuid::nil());
    let grant = match platform.access().authenticate(&token, cluster_id, &client.to_string()).await
    {
        Ok(grant) => grant,
        Err(Denied::Unauthorized) => return unauthorized(),
        Err(Denied::Throttled(wait)) => return throttled(wait),
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{upstream_path}?{q}"),
        None => upstream_path.to_owned(),
    };
    forward(&platform, &grant, client, &path_and_query, request).await
}

fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut response = status(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &format!("Too many failed token attempts from this address; retry in {secs} s."),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

async fn forward(
    platform: &Platform,
    grant: &Grant,
    client: IpAddr,
    path_and_query: &str,
    mut request: Request,
) -> Response {
    let unavailable =
        |message: String| status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", &message);
    if !grant.phase.is_running() {
        return unavailable(format!(
            "Cluster {} is {}: its API is not reachable yet.",
            grant.cluster_name,
            grant.phase.as_str()
        ));
    }
    let upstream = match platform.upstreams().get(&grant.host_namespace, &grant.cluster_name).await
    {
        Ok(Some(upstream)) => upstream,
        Ok(None) => {
            return unavailable(format!(
                "Cluster {} has no API credentials yet.",
                grant.cluster_name
            ))
        }
        Err(error) => {
            tracing::warn!(cluster = %grant.cluster_id, %error, "gateway cannot reach a cluster");
            return unavailable(format!("Cluster {} cannot be reached.", grant.cluster_name));
        }
    };
    let uri = match upstream.uri(path_and_query) {
        Ok(uri) => uri,
        Err(_) => return status(StatusCode::BAD_REQUEST, "BadRequest", "Invalid request path."),
    };
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_REQUEST_BODY);
    if too_large {
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Request entity too large: limit is {MAX_REQUEST_BODY}"),
        );
    }
    let upgrade = is_upgrade(request.headers());
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let mut out = http::Request::builder().method(parts.method).uri(uri);
    let headers = out.headers_mut().expect("a fresh builder has headers");
    copy_headers(&parts.headers, headers);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(protocol) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
    }
    if let Ok(user) = HeaderValue::from_str(&format!("kraft:{}", grant.username)) {
        headers.insert("impersonate-user", user);
        // K3k's admin is `system:masters`; the user keeps exactly that right in their cluster.
        headers.insert("impersonate-group", HeaderValue::from_static("system:masters"));
    }
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
    );
    let body = Limited::new(body, MAX_REQUEST_BODY).boxed_unsync();
    let Ok(out) = out.body(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "Invalid request.");
    };
    let sent = if upgrade {
        upstream.upgrade(out).await
    } else {
        upstream.client.request(out).await.map_err(|error| {
            if error.is_connect() {
                platform.upstreams().forget(&grant.host_namespace, &grant.cluster_name);
            }
            Box::new(error) as Box<dyn std::error::Error + Send + Sync>
        })
    };
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            // Most likely its server is being replaced (a one-server upgrade) or restarting, as
            // its row may say by now (the grant can be a few seconds old). A client that
            // honours Retry-After (client-go retries a 5xx that carries it, kubectl included)
            // waits that out instead of failing.
            let restarting =
                platform.clusters().server_restarting(grant.cluster_id).await.unwrap_or(false);
            let message = if restarting {
                tracing::debug!(cluster = %grant.cluster_id, error = %platform::error_chain(error.as_ref()), "gateway request to a restarting cluster failed");
                format!(
                    "Cluster {} is restarting its server (after an upgrade or a restart): its API answers again once the server is ready.",
                    grant.cluster_name
                )
            } else {
                tracing::warn!(cluster = %grant.cluster_id, error = %platform::error_chain(error.as_ref()), "gateway request failed");
                format!("Cluster {} does not answer.", grant.cluster_name)
            };
            let mut response = unavailable(message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
            return response;
        }
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let mut back = Response::builder().status(response.status());
    let headers = back.headers_mut().expect("a fresh builder has headers");
    copy_headers(response.headers(), headers);
    if switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(protocol) = response.headers().get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
        if let Some(downstream) = downstream {
            let upstream_io = hyper::upgrade::on(&mut response);
            let cluster = grant.cluster_id;
            tokio::spawn(async move {
                match tokio::try_join!(downstream, upstream_io) {
                    Ok((down, up)) => {
                        tracing::debug!(%cluster, "gateway stream upgraded");
                        let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                        if let Err(error) = tokio::io::copy_bidirectional(&mut down, &mut up).await
                        {
                            tracing::debug!(%cluster, %error, "upgraded gateway stream ended");
                        }
                    }
                    Err(error) => tracing::debug!(%cluster, %error, "gateway upgrade failed"),
                }
            });
        }
    }
    // A 101 has no body: the connection itself is what follows (handing on the upstream's
    // would hold the switch until a body that never ends).
    let body = if switching {
        Body::empty()
    } else if streams(path_and_query) {
        let stopped = platform.stopped();
        Body::from_stream(Body::new(response.into_body()).into_data_stream().take_until(stopped))
    } else {
        Body::new(response.into_body())
    };
    back.body(body).unwrap_or_else(|_| {
        status(StatusCode::BAD_GATEWAY, "InternalError", "Invalid response from the cluster.")
    })
}

/// Whether the request streams until one side ends it: a watch, or a followed log. The API
/// server counts these long-running (kubernetes/kubernetes pkg/controlplane/apiserver/config.go,
/// `LongRunningFunc`: the verbs watch and proxy, the subresources attach, exec, proxy, log and
/// portforward) and ends them when it stops. The gateway does the same when KRaft stops: a
/// client watches again, through another replica, and KRaft exits instead of waiting for the
/// stream until Kubernetes kills it with the Lease still held. Upgraded streams (exec, attach,
/// port-forward) end with the process; a proxied response finishes like any other request, as
/// cutting it would leave the client a truncated answer.
fn streams(path_and_query: &str) -> bool {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    // Go's strconv.ParseBool, which the API server parses these with.
    let on = |name: &str| {
        query.split('&').filter_map(|pair| pair.split_once('=')).any(|(key, value)| {
            key == name && matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
        })
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The old watch paths: /api/v1/watch/… and /apis/<group>/<version>/watch/….
    let watch_path =
        matches!(segments.as_slice(), ["api", _, "watch", ..] | ["apis", _, _, "watch", ..]);
    let pod_log = matches!(segments.as_slice(), [.., "pods", _, "log"]);
    on("watch") || watch_path || (pod_log && on("follow"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_and_followed_logs_are_the_streams_that_end_when_kraft_stops() {
        for streaming in [
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0",
            "/apis/apps/v1/deployments?allowWatchBookmarks=true&watch=1",
            "/api/v1/watch/namespaces/default/pods",
            "/apis/apps/v1/watch/deployments",
            "/api/v1/namespaces/default/pods/web/log?container=web&follow=true",
        ] {
            assert!(streams(streaming), "{streaming}");
        }
        for finite in [
            "/api/v1/namespaces/default/configmaps",
            "/api/v1/namespaces/default/configmaps?watch=false",
            "/api/v1/namespaces/default/configmaps/watch",
            "/api/v1/namespaces/watch/pods",
            "/api/v1/namespaces/default/pods/web/log?container=web",
            "/api/v1/namespaces/default/pods/web/log?follow=false",
            "/api/v1/namespaces/default/services/web/proxy/?follow=true",
            "/version",
        ] {
            assert!(!streams(finite), "{finite}");
        }
    }

    #[test]
    fn the_callers_credential_and_identity_headers_never_pass() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer kraft_secret"),
            ("cookie", "kraft_session=x"),
            ("impersonate-user", "system:admin"),
            ("Impersonate-Extra-scopes", "x"),
            ("x-remote-user", "root"),
            ("connection", "keep-alive, x-custom"),
            ("x-custom", "hop"),
            ("accept", "application/json"),
            ("user-agent", "kubectl/v1.37.0"),
        ] {
            from.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        let names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "user-agent"]);
    }

    #[test]
    fn upgrades_are_told_by_connection_and_upgrade_together() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!is_upgrade(&h));
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(is_upgrade(&h));
    }

    #[test]
    fn a_websocket_may_carry_its_token_in_a_subprotocol_which_is_then_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        // base64url("kraft_abc") without padding.
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.a3JhZnRfYWJj, v4.channel.k8s.io"
                .parse()
                .unwrap(),
        );
        let (token, rest) = websocket_bearer(&h).unwrap().unwrap();
        assert_eq!(token, "kraft_abc");
        assert_eq!(rest.unwrap(), "v5.channel.k8s.io, v4.channel.k8s.io");
        // Only the token: nothing left to send.
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "base64url.bearer.authorization.k8s.io.a3JhZnRfYWJj".parse().unwrap(),
        );
        assert_eq!(websocket_bearer(&h).unwrap().unwrap().1, None);
        // Broken, empty or doubled tokens are refused, not ignored.
        for bad in [
            "base64url.bearer.authorization.k8s.io.%%%",
            "base64url.bearer.authorization.k8s.io.",
            "base64url.bearer.authorization.k8s.io.YQ, base64url.bearer.authorization.k8s.io.Yg",
        ] {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, bad.parse().unwrap());
            assert_eq!(websocket_bearer(&h), Err(()), "{bad}");
        }
        // Not a WebSocket: subprotocols mean nothing.
        h.remove(header::UPGRADE);
        assert_eq!(websocket_bearer(&h), Ok(None));
    }

    #[test]
    fn only_bearer_tokens_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "bearer kraft_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("kraft_x"));
    }
}

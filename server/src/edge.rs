//! The outermost layers every request passes, in this order:
//! 1. `client_address`: who the client is. The TCP peer, unless the peer is a trusted proxy
//!    (`--trusted-proxies`): then the right-most address of `Forwarded` / `X-Forwarded-For` that
//!    is not itself a trusted proxy (everything left of it may be forged by the client). Also the
//!    scheme the client used (`X-Forwarded-Proto` / `Forwarded: proto=`), for the Origin check.
//! 2. `security_headers`: `nosniff`, no framing, a strict default Content-Security-Policy on
//!    anything that did not set its own (pages set theirs, with the nonce of their scripts),
//!    `Referrer-Policy`, and HSTS when KRaft is served over HTTPS.
//! 3. `json_errors`: an `ApiError` answer becomes JSON for a client that asked for JSON.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use app::api::ssr::ClientAddr;
use app::error::ApiError;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::tls::Peer;

/// How the edge is configured.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    pub trusted_proxies: Vec<IpNet>,
    pub secure_cookies: bool,
}

/// The scheme the client used to reach KRaft: `https` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientScheme(pub &'static str);

/// A header value cannot be forged into a list longer than this many hops that we look at.
const MAX_HOPS: usize = 32;

impl Edge {
    fn trusts(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&addr))
    }

    /// The client behind `peer`, from the forwarding headers when `peer` is a trusted proxy.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // `Forwarded` (RFC 7239) when present, else `X-Forwarded-For`; hops from right to left.
        let hops = forwarded_for(headers).unwrap_or_else(|| x_forwarded_for(headers));
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            match hop {
                Some(addr) if self.trusts(*addr) => client = *addr,
                Some(addr) => return *addr,
                // "unknown" or an obfuscated name: nothing further left can be believed.
                None => return client,
            }
        }
        client
    }

    /// The scheme the client used: from the forwarding headers of a trusted proxy, else that of
    /// the connection (KRaft itself speaks plain HTTP; with `--secure-cookies` it is behind TLS).
    pub fn scheme_of(&self, peer: IpAddr, headers: &HeaderMap) -> ClientScheme {
        let fallback = if self.secure_cookies { "https" } else { "http" };
        if !self.trusts(peer.to_canonical()) {
            return ClientScheme(fallback);
        }
        let forwarded = header_values(headers, "forwarded")
            .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .next_back()
            .and_then(|element| param(&element, "proto"));
        let proto = forwarded.or_else(|| {
            header_values(headers, "x-forwarded-proto")
                .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
                .next_back()
        });
        match proto.map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("https") => ClientScheme("https"),
            Some("http") => ClientScheme("http"),
            _ => ClientScheme(fallback),
        }
    }
}

fn header_values<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> impl DoubleEndedIterator<Item = &'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().into_iter()
}

/// One parameter of a `Forwarded` element (`for=...;proto=https`), unquoted.
fn param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `for=` hops of every `Forwarded` header, left to right; `None` without the header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = header_values(headers, "forwarded").collect();
    if values.is_empty() {
        return None;
    }
    Some(
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| param(element, "for").and_then(|node| node_addr(&node)))
            .collect(),
    )
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    header_values(headers, "x-forwarded-for")
        .flat_map(|v| v.split(','))
        .map(|hop| node_addr(hop.trim()))
        .collect()
}

/// An address as proxies write one: `192.0.2.43`, `192.0.2.43:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`; `None` for `unknown`, obfuscated names and garbage.
fn node_addr(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    node.parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|a| a.to_canonical())
}

/// Puts `ClientAddr` and `ClientScheme` on the request.
pub async fn client_address(
    State(edge): State<Arc<Edge>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<Peer>>().copied() {
        let client = edge.client_of(peer.addr.ip(), request.headers());
        let scheme = match edge.scheme_of(peer.addr.ip(), request.headers()) {
            // Spoken to KRaft's own TLS: that is the scheme, unless a trusted proxy said otherwise.
            ClientScheme("http") if peer.tls && !edge.trusts(peer.addr.ip().to_canonical()) => {
                ClientScheme("https")
            }
            scheme => scheme,
        };
        request.extensions_mut().insert(ClientAddr(client));
        request.extensions_mut().insert(scheme);
    }
    next.run(request).await
}

/// What a response that set no policy of its own may do: nothing (files, JSON, errors).
const DEFAULT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(
    State(edge): State<Arc<Edge>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_POLICY));
    }
    if edge.secure_cookies {
        // Cluster hostnames under the base domain are not KRaft's pages: no includeSubDomains.
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// The JSON body of an error: the same encoding server functions use for `ApiError`, plus the
/// message a person reads.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    status: u16,
    message: String,
    error: &'a ApiError,
}

pub async fn json_errors(request: Request, next: Next) -> Response {
    let json = app::api::ssr::wants_json(request.headers());
    let mut response = next.run(request).await;
    if !json {
        return response;
    }
    let Some(error) = response.extensions_mut().remove::<ApiError>() else { return response };
    let body = ErrorBody { status: error.status(), message: error.to_string(), error: &error };
    let Ok(text) = serde_json::to_string(&body) else { return response };
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(text);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(trusted: &[&str]) -> Edge {
        Edge {
            trusted_proxies: trusted
                .iter()
                .map(|t| crate::config::parse_network(t).unwrap())
                .collect(),
            secure_cookies: false,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let edge = edge(&["10.0.0.0/8"]);
        let forged = headers(&[("x-forwarded-for", "198.51.100.7"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(edge.client_of(ip("203.0.113.1"), &forged), ip("203.0.113.1"));
        assert_eq!(
            edge.scheme_of(ip("203.0.113.1"), &headers(&[("x-forwarded-proto", "https")])).0,
            "http"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_hop() {
        let edge = edge(&["10.0.0.0/8", "127.0.0.1"]);
        // The client forged the first entry; our proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(edge.client_of(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // Several headers are one list.
        let h =
            headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7:5555")]);
        assert_eq!(edge.client_of(ip("10.0.0.2"), &h), ip("198.51.100.7"));
        // Only proxies: the left-most of them.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(edge.client_of(ip("127.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(edge.client_of(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // An IPv4-mapped peer is the IPv4 address.
        assert_eq!(
            edge.client_of(
                ip("::ffff:127.0.0.1"),
                &headers(&[("x-forwarded-for", "198.51.100.7")])
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_preferred_and_parsed_as_rfc_7239_writes_it() {
        let edge = edge(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.1"#),
        ]);
        assert_eq!(edge.client_of(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        // "unknown" stops the walk: the hop right of it (a trusted proxy) is all we know.
        let h = headers(&[("forwarded", "for=198.51.100.7, for=unknown, for=127.0.0.1")]);
        assert_eq!(edge.client_of(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn the_scheme_comes_from_a_trusted_proxy() {
        let edge = edge(&["127.0.0.1"]);
        assert_eq!(
            edge.scheme_of(ip("127.0.0.1"), &headers(&[("x-forwarded-proto", "https")])).0,
            "https"
        );
        assert_eq!(
            edge.scheme_of(ip("127.0.0.1"), &headers(&[("forwarded", "for=1.2.3.4;proto=https")]))
                .0,
            "https"
        );
        assert_eq!(edge.scheme_of(ip("127.0.0.1"), &HeaderMap::new()).0, "http");
        let secure = Edge { secure_cookies: true, ..edge };
        assert_eq!(secure.scheme_of(ip("203.0.113.1"), &HeaderMap::new()).0, "https");
    }
}

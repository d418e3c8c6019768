//! Cross-site request forgery defence: a state-changing request (anything but GET, HEAD, OPTIONS)
//! and every websocket upgrade must come from KRaft's own pages. Browsers say where a request comes
//! from in `Origin` (and `Sec-Fetch-Site`); a request from another site is refused with 403.
//! Clients that are not browsers send neither and are let through: they carry no ambient cookies.

use axum::body::Body;
use axum::http::header::{HOST, ORIGIN, UPGRADE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn same_origin_only(request: Request<Body>, next: Next) -> Response {
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let upgrade = request.headers().contains_key(UPGRADE);
    if (changes_state || upgrade) && !is_same_origin(request.headers()) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-origin request refused");
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    next.run(request).await
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match headers.get(ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => {
            // "scheme://host[:port]" must name the host this request was sent to.
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
        Some(Err(_)) => false,
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) != Some("cross-site"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn same_origin_passes() {
        assert!(is_same_origin(&headers(&[
            ("host", "kraft.example:3000"),
            ("origin", "https://kraft.example:3000")
        ])));
    }

    #[test]
    fn other_origins_and_null_fail() {
        assert!(!is_same_origin(&headers(&[
            ("host", "kraft.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!is_same_origin(&headers(&[("host", "kraft.example"), ("origin", "null")])));
        assert!(!is_same_origin(&headers(&[
            ("host", "kraft.example"),
            ("origin", "https://kraft.example.evil.example")
        ])));
    }

    #[test]
    fn no_origin_passes_unless_the_browser_says_cross_site() {
        assert!(is_same_origin(&headers(&[("host", "kraft.example")])));
        assert!(!is_same_origin(&headers(&[
            ("host", "kraft.example"),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}

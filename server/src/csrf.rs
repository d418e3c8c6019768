//! Cross-site request forgery defence: a state-changing request (anything but GET, HEAD, OPTIONS)
//! and every websocket upgrade must come from KRaft's own pages. Browsers say where a request comes
//! from in `Origin` (and `Sec-Fetch-Site`); a request from another site is refused with 403.
//! Clients that are not browsers send neither and are let through: they carry no ambient cookies.
//! The origin must match in scheme too (`http://kraft.example` is not `https://kraft.example`):
//! the scheme the client used is what `edge::client_address` found.

use axum::body::Body;
use axum::http::header::{HOST, ORIGIN, UPGRADE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::edge::ClientScheme;

pub async fn same_origin_only(request: Request<Body>, next: Next) -> Response {
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let upgrade = request.headers().contains_key(UPGRADE);
    let scheme = request.extensions().get::<ClientScheme>().map_or("http", |s| s.0);
    if (changes_state || upgrade) && !is_same_origin(request.headers(), scheme) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-origin request refused");
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    next.run(request).await
}

/// `host[:port]` without the scheme's default port.
fn authority<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme.eq_ignore_ascii_case("https") { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

fn is_same_origin(headers: &HeaderMap, scheme: &str) -> bool {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match headers.get(ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => {
            // "scheme://host[:port]" must name the scheme and host this request was sent with.
            let Some((origin_scheme, rest)) = origin.split_once("://") else { return false };
            let Some(host) = host else { return false };
            origin_scheme.eq_ignore_ascii_case(scheme)
                && authority(scheme, rest).eq_ignore_ascii_case(authority(scheme, host))
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
        assert!(is_same_origin(
            &headers(&[("host", "kraft.example:3000"), ("origin", "https://kraft.example:3000")]),
            "https"
        ));
        assert!(is_same_origin(
            &headers(&[("host", "kraft.example:443"), ("origin", "https://kraft.example")]),
            "https"
        ));
    }

    #[test]
    fn the_origin_check_compares_the_scheme() {
        // A page on plain http (e.g. a hijacked network) posting to the https site.
        let h = headers(&[("host", "kraft.example"), ("origin", "http://kraft.example")]);
        assert!(!is_same_origin(&h, "https"));
        assert!(is_same_origin(&h, "http"));
    }

    #[test]
    fn other_origins_and_null_fail() {
        assert!(!is_same_origin(
            &headers(&[("host", "kraft.example"), ("origin", "https://evil.example")]),
            "https"
        ));
        assert!(!is_same_origin(
            &headers(&[("host", "kraft.example"), ("origin", "null")]),
            "https"
        ));
        assert!(!is_same_origin(
            &headers(&[
                ("host", "kraft.example"),
                ("origin", "https://kraft.example.evil.example")
            ]),
            "https"
        ));
    }

    #[test]
    fn no_origin_passes_unless_the_browser_says_cross_site() {
        assert!(is_same_origin(&headers(&[("host", "kraft.example")]), "https"));
        assert!(!is_same_origin(
            &headers(&[("host", "kraft.example"), ("sec-fetch-site", "cross-site")]),
            "https"
        ));
    }
}

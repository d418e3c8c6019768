//! Pages KRaft renders on the server alone, without the WebAssembly bundle: for steps that need
//! no interactivity (showing a new token once, the single sign-on pages), so the browser bundle
//! stays small and they work without JavaScript.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// `text` made safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    html_escape::encode_double_quoted_attribute(text).into_owned()
}

/// A page of its own, styled like the rest of KRaft. It may hold a secret (a token): never kept
/// by a cache, never in the back-forward cache's way.
pub fn page(state: &crate::startup::AppState, title: &str, body: &str) -> Response {
    let pkg = &state.leptos_options.site_pkg_dir;
    let mut response = Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · KRaft</title><link rel=\"stylesheet\" href=\"/{pkg}/kraft.css\"></head>\
         <body><main id=\"main\" class=\"container\"><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
    ))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // KRaft's stylesheet and scripts, nothing inline, nothing from elsewhere (without a policy of
    // its own the page would get the edge's `default-src 'none'`, which blocks the stylesheet).
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

/// What a server-rendered page may load.
pub const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `page`, answered with `status`.
pub fn page_with_status(
    state: &crate::startup::AppState,
    status: StatusCode,
    title: &str,
    body: &str,
) -> Response {
    let mut response = page(state, title, body);
    *response.status_mut() = status;
    response
}

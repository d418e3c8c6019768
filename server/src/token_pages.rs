//! Pages that hand out an API token, server-rendered without WebAssembly (a token page needs no
//! interactivity, and the browser bundle stays small):
//! - `POST /account/tokens`: the account page's "new token" form; the answer shows the token once.
//! - `/account/tokens/cli`: where `kraft login` sends the browser. `GET` asks the signed-in user
//!   to authorize the CLI; `POST` creates a token for it and sends the browser
//!   to the CLI's one-off listener on the loopback (RFC 8252 §7.3) with the token and the CLI's
//!   `state`. Only a loopback `http://` address is accepted, so a crafted link cannot send a token
//!   anywhere else; the session layer's same-origin check guards the post itself.

use app::api::ssr::{ClientAddr, CurrentUser};
use app::error::{ApiError, FieldMessage};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use platform::access::api_tokens::Scope;
use platform::Platform;
use serde::Deserialize;

/// How long a CLI's token stays valid.
pub const CLI_TOKEN_DAYS: u32 = 90;

#[derive(Debug, Default, Deserialize)]
pub struct Authorize {
    #[serde(default)]
    callback: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    name: String,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid(vec![FieldMessage { field: field.into(), message: message.into() }])
}

/// The CLI's listener, if `raw` is one: `http://127.0.0.1:<port>/callback` (or `[::1]`,
/// `localhost`), nothing more.
pub fn loopback_callback(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    };
    let plain = url.scheme() == "http"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_some()
        && url.path() == "/callback"
        && url.query().is_none()
        && url.fragment().is_none();
    (loopback && plain).then_some(url)
}

use crate::standalone::{escape, page as standalone};

#[derive(Debug, Default, Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    read: String,
    #[serde(default)]
    clusters: String,
    #[serde(default)]
    kubeconfigs: String,
}

/// `POST /account/tokens`: creates a token from the account page's form and shows it once.
pub async fn create(
    State(state): State<crate::startup::AppState>,
    ClientAddr(client): ClientAddr,
    current: CurrentUser,
    Form(form): Form<NewToken>,
) -> Response {
    let scopes = Scope::checked(&form.read, &form.clusters, &form.kubeconfigs);
    let days = form.days.trim().parse::<u32>().unwrap_or(0);
    let created = state
        .platform
        .access()
        .api_tokens()
        .create(&current.user, &form.name, &scopes, days, Some(&client.to_string()))
        .await;
    let back = "<p><a href=\"/account#api-tokens\">Back to your account</a></p>";
    match created {
        Ok(issued) => {
            let body = format!(
                "<section class=\"card\"><p role=\"status\">Your new token “{name}” ({scopes}, valid until {until}). It is shown only now: copy it somewhere safe.</p>\
                 <p><code data-api-token>{token}</code></p>{back}</section>",
                name = escape(&issued.info.name),
                scopes = issued.info.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                until = issued.info.expires_at.format("%Y-%m-%d %H:%M UTC"),
                token = escape(&issued.token),
            );
            standalone(&state, "New API token", &body)
        }
        Err(error) => {
            let error = ApiError::from(error);
            let mut items = String::new();
            if let ApiError::Invalid(fields) = &error {
                for f in fields {
                    items.push_str(&format!("<li>{}</li>", escape(&f.message)));
                }
            }
            let body = format!(
                "<div class=\"alert error\" role=\"alert\"><p>{}</p><ul>{items}</ul></div>{back}",
                escape(&error.to_string())
            );
            let mut response = standalone(&state, "The token was not created", &body);
            *response.status_mut() = axum::http::StatusCode::from_u16(error.status())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            response
        }
    }
}

/// `GET /account/tokens/cli?callback=&state=&name=`: the consent page (sign-in first).
pub async fn page(
    State(state): State<crate::startup::AppState>,
    current: Result<CurrentUser, ApiError>,
    Query(ask): Query<Authorize>,
) -> Response {
    let user = match current {
        Ok(current) => current.user,
        Err(_) => {
            let back: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("callback", &ask.callback)
                .append_pair("state", &ask.state)
                .append_pair("name", &ask.name)
                .finish();
            let next: String = url::form_urlencoded::byte_serialize(
                format!("/account/tokens/cli?{back}").as_bytes(),
            )
            .collect();
            return Redirect::to(&format!("/login?next={next}")).into_response();
        }
    };
    let body = if loopback_callback(&ask.callback).is_none() {
        "<p class=\"alert error\" role=\"alert\">This link does not come from the kraft command line on this computer. Run <code>kraft login</code> again.</p>".to_owned()
    } else {
        let name = if ask.name.trim().is_empty() { "kraft CLI" } else { ask.name.trim() };
        format!(
            "<section class=\"card\"><p>The kraft command line on this computer asks for a token to act as <strong>{user}</strong>: to list, create and delete your clusters and issue kubeconfigs, for {CLI_TOKEN_DAYS} days. It will appear as “{name}” on your <a href=\"/account#api-tokens\">account page</a>, where you can revoke it.</p>\
             <p class=\"muted small\">Authorize only if you just ran <code>kraft login</code> yourself.</p>\
             <form method=\"post\" action=\"/account/tokens/cli\" class=\"form\">\
             <input type=\"hidden\" name=\"callback\" value=\"{callback}\"><input type=\"hidden\" name=\"state\" value=\"{state}\"><input type=\"hidden\" name=\"name\" value=\"{name}\">\
             <button type=\"submit\">Authorize</button> <a href=\"/\">Cancel</a></form></section>",
            user = escape(&user.username),
            name = escape(name),
            callback = escape(&ask.callback),
            state = escape(&ask.state),
        )
    };
    standalone(&state, "Authorize the kraft command line", &body)
}

pub async fn authorize(
    State(platform): State<Platform>,
    ClientAddr(client): ClientAddr,
    current: CurrentUser,
    Form(form): Form<Authorize>,
) -> Result<Response, ApiError> {
    let mut callback = loopback_callback(&form.callback).ok_or_else(|| {
        invalid("callback", "The kraft CLI must wait on this computer's loopback address.")
    })?;
    let state_ok = (16..=128).contains(&form.state.len())
        && form.state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !state_ok {
        return Err(invalid("state", "This login link is incomplete: run kraft login again."));
    }
    let base = if form.name.trim().is_empty() { "kraft CLI" } else { form.name.trim() };
    let stamp = chrono::Utc::now().format(" %Y-%m-%d %H:%M:%S").to_string();
    let name: String = base.chars().take(64 - stamp.len()).collect::<String>() + &stamp;
    let issued = platform
        .access()
        .api_tokens()
        .create(
            &current.user,
            &name,
            &[Scope::Read, Scope::Clusters, Scope::Kubeconfigs],
            CLI_TOKEN_DAYS,
            Some(&client.to_string()),
        )
        .await?;
    callback
        .query_pairs_mut()
        .append_pair("token", &issued.token)
        .append_pair("state", &form.state);
    Ok(Redirect::to(callback.as_str()).into_response())
}

#[cfg(test)]
mod tests {
    use super::loopback_callback;

    #[test]
    fn only_a_loopback_listener_may_receive_a_token() {
        for good in [
            "http://127.0.0.1:4242/callback",
            "http://[::1]:4242/callback",
            "http://localhost:4242/callback",
            "http://127.8.0.1:8080/callback",
        ] {
            assert!(loopback_callback(good).is_some(), "{good}");
        }
        for bad in [
            "https://127.0.0.1:4242/callback",
            "http://127.0.0.1/callback",
            "http://evil.example:4242/callback",
            "http://127.0.0.1.evil.example:4242/callback",
            "http://user@127.0.0.1:4242/callback",
            "http://127.0.0.1:4242/elsewhere",
            "http://127.0.0.1:4242/callback?x=1",
            "http://10.0.0.1:4242/callback",
            "javascript:alert(1)",
            "",
        ] {
            assert!(loopback_callback(bad).is_none(), "{bad}");
        }
    }
}

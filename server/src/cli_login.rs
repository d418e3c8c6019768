//! `POST /account/tokens/cli`: the end of `kraft login`'s browser flow. The signed-in user
//! authorized the CLI on `/account/tokens/cli`; this creates a token for it and sends the browser
//! to the CLI's one-off listener on the loopback (RFC 8252 §7.3) with the token and the CLI's
//! `state`. Only a loopback `http://` address is accepted, so a crafted link cannot send a token
//! anywhere else; the session layer's same-origin check guards the post itself.

use app::api::ssr::{ClientAddr, CurrentUser};
use app::error::{ApiError, FieldMessage};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use platform::access::api_tokens::Scope;
use platform::Platform;
use serde::Deserialize;

/// How long a CLI's token stays valid.
pub const CLI_TOKEN_DAYS: u32 = 90;

#[derive(Debug, Deserialize)]
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
            "http://127.8.0.1:80/callback",
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

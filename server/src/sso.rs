//! Single sign-on's pages (server-rendered, no WebAssembly needed):
//! - `GET /auth/oidc/start?next=`: sends the browser to the provider, after keeping the sign-in's
//!   `state`, `nonce` and PKCE verifier in its session;
//! - `GET /auth/oidc/callback?code=&state=`: where the provider sends it back. The kept state is
//!   taken out of the session first, so a callback (a replayed one, one from another browser)
//!   can be used once at most;
//! - `GET|POST /auth/oidc/link`: an account has the identity's email already; its password, once,
//!   links the two.
//!
//! The rules (which identity signs in to which account) are `platform::accounts::single_sign_on`'s.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use app::api::ssr::{request_meta, ClientAddr};
use app::error::ApiError;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use platform::accounts::oidc::{OidcError, PendingSignIn};
use platform::accounts::{
    AccountError, AccountSession, PendingLink, RequestMeta, SsoOutcome, Stash,
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::standalone::{escape, page_with_status};
use crate::startup::AppState;

/// Sign-ins one client address may start a minute on each replica: each parks its `state`,
/// `nonce` and verifier in a new session row, so starts are not free (a bursts of this many, then
/// one every two seconds).
pub const STARTS_PER_MINUTE: u32 = 30;

/// Counts each client address's starts (in memory: a replica's own count).
pub type StartLimiter = Arc<governor::DefaultKeyedRateLimiter<IpAddr>>;

pub fn start_limiter() -> StartLimiter {
    let per_minute = NonZeroU32::new(STARTS_PER_MINUTE).expect("a positive number");
    Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)))
}

/// A link waiting for the account's password, and where to go afterwards.
#[derive(Debug, Serialize, Deserialize)]
struct Linking {
    link: PendingLink,
    next: Option<String>,
}

/// A page that says what went wrong and offers to start again.
fn failure(state: &AppState, status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<div class=\"alert error\" role=\"alert\"><p>{}</p></div>\
         <p><a href=\"/login\">Back to sign-in</a></p>",
        escape(message)
    );
    page_with_status(state, status, "Single sign-on did not work", &body)
}

fn not_configured(state: &AppState) -> Response {
    failure(state, StatusCode::NOT_FOUND, "Single sign-on is not set up on this KRaft.")
}

fn internal(state: &AppState, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "single sign-on");
    failure(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Try again.",
    )
}

fn status_of(error: &OidcError) -> StatusCode {
    match error {
        OidcError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        OidcError::InvalidToken(_) => StatusCode::FORBIDDEN,
        OidcError::StateMismatch | OidcError::Expired | OidcError::Refused(_) => {
            StatusCode::BAD_REQUEST
        }
    }
}

/// What an account error tells the browser.
fn refused(state: &AppState, error: AccountError) -> Response {
    let error = ApiError::from(error);
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status.is_server_error() {
        return failure(state, status, "Something went wrong on our side. Try again.");
    }
    failure(state, status, &error.to_string())
}

#[derive(Debug, Default, Deserialize)]
pub struct Start {
    #[serde(default)]
    next: String,
}

/// `GET /auth/oidc/start`.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(client): ClientAddr,
    Query(start): Query<Start>,
) -> Response {
    let Some(oidc) = state.platform.accounts().oidc() else { return not_configured(&state) };
    if let Err(not_until) = state.sign_on_starts.check_key(&client) {
        use governor::clock::{Clock as _, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1);
        let mut refused = failure(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-ins started from your address. Try again in {wait} s."),
        );
        refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return refused;
    }
    if state.sign_on_starts.len() > 10_000 {
        state.sign_on_starts.retain_recent();
    }
    let next = app::accounts::api::local_path(&start.next).map(str::to_owned);
    match oidc.begin(next).await {
        Ok((url, pending)) => {
            if let Err(error) = AccountSession::from(session).stash(Stash::SignOn, &pending).await {
                return internal(&state, error);
            }
            Redirect::to(&url).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "single sign-on cannot start");
            failure(&state, status_of(&error), &error.to_string())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: which provider answers (sent by providers that support it).
    iss: Option<String>,
}

/// `GET /auth/oidc/callback`.
pub async fn callback(
    State(state): State<AppState>,
    parts: Parts,
    session: Session,
    Query(back): Query<Callback>,
) -> Response {
    let accounts = state.platform.accounts();
    let Some(oidc) = accounts.oidc() else { return not_configured(&state) };
    let session = AccountSession::from(session);
    // Taken, not read: whatever happens next, this sign-in cannot be finished twice.
    let pending =
        match session.take::<PendingSignIn>(Stash::SignOn).await {
            Ok(Some(pending)) => pending,
            Ok(None) => return failure(
                &state,
                StatusCode::BAD_REQUEST,
                "No sign-in is under way in this browser: it finished already, or it started in \
                 another browser. Start again.",
            ),
            Err(error) => return internal(&state, error),
        };
    if let Some(error) = back.error {
        let detail = back.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        return failure(
            &state,
            StatusCode::BAD_REQUEST,
            &format!("The identity provider did not sign you in ({error}{detail})."),
        );
    }
    // A mix-up attack hands this browser another provider's answer (RFC 9207 §2.4).
    if let Some(iss) = &back.iss {
        if iss.trim_end_matches('/') != oidc.settings().issuer.trim_end_matches('/') {
            return failure(
                &state,
                StatusCode::BAD_REQUEST,
                "The answer came from another identity provider than this KRaft's.",
            );
        }
    }
    let (Some(code), Some(returned_state)) = (back.code, back.state) else {
        return failure(&state, StatusCode::BAD_REQUEST, "The provider's answer is incomplete.");
    };
    let next = pending.next.clone();
    let identity = match oidc.finish(pending, &returned_state, &code).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, "single sign-on refused");
            return failure(&state, status_of(&error), &error.to_string());
        }
    };
    let meta = request_meta(&parts);
    match accounts.sign_in_external(identity, &meta).await {
        Ok(SsoOutcome::SignedIn(user)) => signed_in(&state, &session, user.id, meta, next).await,
        Ok(SsoOutcome::LinkNeeded(link)) => {
            match session.stash(Stash::Link, &Linking { link, next }).await {
                Ok(()) => Redirect::to("/auth/oidc/link").into_response(),
                Err(error) => internal(&state, error),
            }
        }
        Err(error) => refused(&state, error),
    }
}

async fn signed_in(
    state: &AppState,
    session: &AccountSession,
    user_id: uuid::Uuid,
    meta: RequestMeta,
    next: Option<String>,
) -> Response {
    if let Err(error) = session.begin(user_id, meta.user_agent, meta.client_addr).await {
        return internal(state, error);
    }
    Redirect::to(next.as_deref().unwrap_or("/account")).into_response()
}

fn link_form(state: &AppState, linking: &Linking, problem: Option<&str>) -> Response {
    let provider = state
        .platform
        .accounts()
        .oidc()
        .map(|o| o.settings().display_name.clone())
        .unwrap_or_default();
    let alert = problem
        .map(|p| format!("<div class=\"alert error\" role=\"alert\"><p>{}</p></div>", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<section class=\"card\">{alert}<p>An account with the email <strong>{email}</strong> \
         exists on KRaft already. If it is yours, enter its password once: from then on you sign \
         in to it with {provider}.</p>\
         <form method=\"post\" action=\"/auth/oidc/link\" class=\"form\" aria-label=\"Link your account\">\
         <label for=\"link-password\">Password of {email}</label>\
         <input id=\"link-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Link and sign in</button> <a href=\"/login\">Cancel</a></form></section>",
        email = escape(&linking.link.email),
        provider = escape(&provider),
    );
    let status = if problem.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    page_with_status(state, status, "Link your account", &body)
}

async fn linking(state: &AppState, session: &AccountSession) -> Result<Linking, Response> {
    match session.stashed::<Linking>(Stash::Link).await {
        Ok(Some(linking)) if !linking.link.expired() => Ok(linking),
        Ok(_) => Err(failure(
            state,
            StatusCode::BAD_REQUEST,
            "There is no account to link in this browser (or the request expired). Sign in with \
             your provider again.",
        )),
        Err(error) => Err(internal(state, error)),
    }
}

/// `GET /auth/oidc/link`.
pub async fn link_page(State(state): State<AppState>, session: Session) -> Response {
    match linking(&state, &AccountSession::from(session)).await {
        Ok(linking) => link_form(&state, &linking, None),
        Err(response) => response,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    password: String,
}

/// `POST /auth/oidc/link`.
pub async fn link(
    State(state): State<AppState>,
    parts: Parts,
    session: Session,
    Form(form): Form<LinkForm>,
) -> Response {
    let session = AccountSession::from(session);
    let linking = match linking(&state, &session).await {
        Ok(linking) => linking,
        Err(response) => return response,
    };
    let meta = request_meta(&parts);
    match state.platform.accounts().link_external(&linking.link, &form.password, &meta).await {
        Ok(user) => {
            if let Err(error) = session.take::<Linking>(Stash::Link).await {
                return internal(&state, error);
            }
            signed_in(&state, &session, user.id, meta, linking.next).await
        }
        Err(AccountError::Invalid(_)) => {
            link_form(&state, &linking, Some("That is not this account's password."))
        }
        Err(error) => refused(&state, error),
    }
}

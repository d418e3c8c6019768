//! What only the server sees of accounts: the platform from context, the typed session, the
//! `require_user()` guard, and the one place where domain errors become wire errors.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use http::header::{ACCEPT, RETRY_AFTER, USER_AGENT};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use platform::accounts::{AccountError, AccountSession, HashError, RequestMeta, User};
use platform::Platform;

use crate::accounts::api::{AuditView, Flash, SessionView, UserView};
use crate::error::{ApiError, FieldMessage};

pub fn platform() -> Result<Platform, ApiError> {
    use_context::<Platform>().ok_or_else(|| {
        tracing::error!("platform missing from the server function context");
        ApiError::Internal
    })
}

pub async fn session() -> Result<AccountSession, ApiError> {
    leptos_axum::extract::<tower_sessions::Session>().await.map(AccountSession::from).map_err(
        |error| {
            tracing::error!(%error, "no session on the request: is the session layer installed?");
            ApiError::Internal
        },
    )
}

/// Where the request came from.
pub async fn meta() -> RequestMeta {
    let client_addr = leptos_axum::extract::<ConnectInfo<SocketAddr>>()
        .await
        .ok()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = use_context::<Parts>().and_then(|parts| {
        parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned)
    });
    RequestMeta { client_addr, user_agent }
}

pub fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "internal error");
    ApiError::Internal
}

/// A signed-in user and the session they are signed in on.
pub struct CurrentUser {
    pub user: User,
    pub session: AccountSession,
}

/// The guard every server function for signed-in users starts with.
pub async fn require_user() -> Result<CurrentUser, ApiError> {
    let session = session().await?;
    let user =
        platform()?.accounts().authenticate(&session).await?.ok_or(ApiError::Unauthenticated)?;
    Ok(CurrentUser { user, session })
}

pub async fn require_admin() -> Result<CurrentUser, ApiError> {
    let current = require_user().await?;
    if current.user.role != platform::accounts::Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok(current)
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            AccountError::SignupClosed => ApiError::SignupClosed,
            AccountError::BadCredentials => ApiError::BadCredentials,
            AccountError::Throttled { retry_after } => ApiError::TooManyRequests {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            },
            AccountError::NotFound => ApiError::NotFound,
            AccountError::Hash(HashError::Busy) => ApiError::Busy,
            AccountError::Hash(error @ HashError::Failed(_)) => internal(error),
            AccountError::Database(error) => internal(error),
        }
    }
}

/// A form's identity and what of it may be kept for the next page.
pub struct Form {
    name: &'static str,
    values: Vec<(String, String)>,
    notice: Option<&'static str>,
}

impl Form {
    pub fn new(name: &'static str) -> Self {
        Self { name, values: Vec::new(), notice: None }
    }

    pub fn keep(mut self, field: &str, value: &str) -> Self {
        self.values.push((field.to_owned(), value.chars().take(512).collect()));
        self
    }

    pub fn keep_opt(self, field: &str, value: &Option<String>) -> Self {
        match value {
            Some(value) => self.keep(field, value),
            None => self,
        }
    }

    /// A message shown after success when the browser posted without JavaScript.
    pub fn notice(mut self, notice: &'static str) -> Self {
        self.notice = Some(notice);
        self
    }
}

/// Runs a server function's body and shapes its answer for the caller:
/// - called by the Leptos client (fetch): errors get their HTTP status (and Retry-After);
/// - posted by a plain HTML form (no JavaScript): the outcome goes to the session as a flash and
///   the browser is sent back to the form's page, which shows it.
pub async fn respond<T>(
    form: Form,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = work.await;
    let Some(parts) = use_context::<Parts>() else { return result };
    let is_endpoint = parts.uri.path().starts_with("/api/");
    let plain_form = parts.method == Method::POST
        && parts
            .headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if is_endpoint && plain_form {
        let flash = match &result {
            Ok(_) => form.notice.map(|notice| Flash {
                form: form.name.to_owned(),
                error: None,
                notice: Some(notice.to_owned()),
                values: Vec::new(),
            }),
            Err(error) => Some(Flash {
                form: form.name.to_owned(),
                error: Some(error.clone()),
                notice: None,
                values: form.values,
            }),
        };
        if let Some(flash) = flash {
            if let Ok(session) = session().await {
                if let Err(error) = session.set_flash(&flash).await {
                    tracing::warn!(%error, "could not keep the form's outcome");
                }
            }
        }
    } else if is_endpoint {
        if let (Err(error), Some(response)) = (&result, use_context::<ResponseOptions>()) {
            response.set_status(
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            );
            if let ApiError::TooManyRequests { retry_after_secs } = error {
                response.insert_header(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
        }
    }
    result
}

/// Runs a server function's body that no plain form posts to: errors get their HTTP status.
pub async fn answer<T>(work: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    respond(Form::new("api"), work).await
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            email: user.email.clone(),
            admin: user.role == platform::accounts::Role::Admin,
            created_at: user.created_at.to_rfc3339(),
        }
    }
}

impl From<platform::accounts::SessionInfo> for SessionView {
    fn from(info: platform::accounts::SessionInfo) -> Self {
        Self {
            id: info.public_id.to_string(),
            created_at: info.created_at.to_rfc3339(),
            last_seen_at: info.last_seen_at.to_rfc3339(),
            user_agent: info.user_agent,
            client_addr: info.client_addr,
            current: info.current,
        }
    }
}

impl From<platform::accounts::AuditEntry> for AuditView {
    fn from(entry: platform::accounts::AuditEntry) -> Self {
        Self {
            occurred_at: entry.occurred_at.to_rfc3339(),
            action: entry.action,
            target: entry.target,
            client_addr: entry.client_addr,
        }
    }
}

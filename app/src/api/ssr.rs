//! The edge, for server functions and axum routes alike:
//! - extractors: `CurrentUser` (the session's user), `OwnedCluster` (a path id resolved to one of
//!   the caller's clusters: a stranger's, a missing and a malformed id all give the same
//!   `NotFound`), `ClientAddr` (the client's address, as the server's proxy-aware layer found it);
//! - the one mapping of domain errors to `ApiError`, and of `ApiError` to an HTTP response;
//! - the server-function runtime: platform from context, guards, and the answer shaping for
//!   plain HTML form posts (the outcome travels to the next page in a short-lived signed cookie,
//!   so a cookieless client leaves nothing behind in the database).

use std::future::Future;
use std::net::IpAddr;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE, USER_AGENT};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use platform::accounts::{AccountError, AccountSession, HashError, RequestMeta, User};
use platform::clusters::{ClusterError, ClusterRecord};
use platform::Platform;
use sha2::Sha256;

use crate::accounts::api::Flash;
use crate::error::{ApiError, FieldMessage};

/// How the edge behaves, as configured (provided next to the platform).
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeConfig {
    /// Cookies are marked `Secure` (KRaft is served over HTTPS).
    pub secure_cookies: bool,
}

/// The client's address: the TCP peer, or the address a trusted proxy forwarded for. The server
/// puts it on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// From a request's extensions, where the server's edge layer put it (on every route, TLS
    /// or not).
    pub fn of(parts: &Parts) -> Option<Self> {
        parts.extensions.get::<ClientAddr>().copied()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts).unwrap_or(Self(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// Where a request came from, for throttling and the audit trail.
pub fn request_meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        client_addr: ClientAddr::of(parts).map(|ClientAddr(ip)| ip.to_string()),
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

/// A signed-in user and the session they are signed in on.
pub struct CurrentUser {
    pub user: User,
    pub session: AccountSession,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser
where
    Platform: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let session = request_session(parts).await?;
        let platform = Platform::from_ref(state);
        let user =
            platform.accounts().authenticate(&session).await?.ok_or(ApiError::Unauthenticated)?;
        Ok(Self { user, session })
    }
}

async fn request_session(parts: &mut Parts) -> Result<AccountSession, ApiError> {
    tower_sessions::Session::from_request_parts(parts, &())
        .await
        .map(AccountSession::from)
        .map_err(|_| internal("no session on the request: is the session layer installed?"))
}

/// The signed-in user of one request, looked up once. A page's resources (the menu, the banner,
/// the page's own data) each start with `require_user()`; without this, each would read the user
/// row again for the same session within the same render. The server provides a fresh one with
/// every request and it dies with the request, so a session revoked or a user disabled is refused
/// from the next request on, exactly as before. A different sign-in on the same request (new
/// session id, user or sign-in time) is looked up afresh.
#[derive(Clone, Default)]
pub struct RequestUser(std::sync::Arc<futures::lock::Mutex<Option<(SignedIn, User)>>>);

/// Which sign-in a remembered user was resolved for.
#[derive(PartialEq)]
pub struct SignedIn {
    id_hash: Option<String>,
    user_id: uuid::Uuid,
    authenticated_at: chrono::DateTime<chrono::Utc>,
}

impl RequestUser {
    async fn resolve(
        &self,
        platform: &Platform,
        session: AccountSession,
    ) -> Result<CurrentUser, ApiError> {
        // Held across the lookup: the page's resources run at once, and the first does the work.
        let mut known = self.0.lock().await;
        let state = session.auth().await.map_err(internal)?.ok_or(ApiError::Unauthenticated)?;
        let signed_in = SignedIn {
            id_hash: session.id_hash(),
            user_id: state.user_id,
            authenticated_at: state.authenticated_at,
        };
        if let Some((at, user)) = known.as_ref() {
            if *at == signed_in {
                return Ok(CurrentUser { user: user.clone(), session });
            }
        }
        *known = None;
        let user =
            platform.accounts().authenticate(&session).await?.ok_or(ApiError::Unauthenticated)?;
        *known = Some((signed_in, user.clone()));
        Ok(CurrentUser { user, session })
    }
}

/// One of the caller's clusters, named by the path's `{id}`.
pub struct OwnedCluster {
    pub user: User,
    pub session: AccountSession,
    pub cluster: ClusterRecord,
}

impl OwnedCluster {
    /// The cluster `id` (as typed in a URL or form) of the signed-in `current` user.
    pub async fn of(platform: &Platform, current: CurrentUser, id: &str) -> Result<Self, ApiError> {
        let id: uuid::Uuid = id.trim().parse().map_err(|_| ApiError::NotFound)?;
        let cluster = platform.clusters().get(current.user.id, id).await?;
        Ok(Self { user: current.user, session: current.session, cluster })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OwnedCluster
where
    Platform: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Self::of(&Platform::from_ref(state), current, &id).await
    }
}

/// An error as an HTTP answer: its status, `Retry-After` when throttled, and its message as plain
/// text. The error rides along in the response's extensions, so the server's outermost layer can
/// send it as JSON to a client that asked for JSON.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))],
            self.to_string(),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after_secs } = &self {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether a request asked for JSON rather than text or HTML.
pub fn wants_json(parts: &http::HeaderMap) -> bool {
    parts
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

pub fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "internal error");
    ApiError::Internal
}

/// A database failure: no connection free in time means the server is busy (503, try again),
/// anything else is an internal error.
fn database(error: platform::db::DbErr) -> ApiError {
    if platform::db::is_busy(&error) {
        tracing::warn!(%error, "no database connection was free in time");
        return ApiError::Busy;
    }
    internal(error)
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
            AccountError::Disabled => ApiError::NotAllowed(
                "This account is disabled. Ask the platform's admin to enable it.".into(),
            ),
            AccountError::NotAllowed(message) => ApiError::NotAllowed(message),
            AccountError::AwaitingApproval => ApiError::NotAllowed(
                "Your account waits for an admin's approval; you can sign in once it is approved."
                    .into(),
            ),
            AccountError::PasswordSignInOff => ApiError::NotAllowed(
                "Password sign-in is turned off on this KRaft: use single sign-on.".into(),
            ),
            AccountError::Hash(HashError::Busy) => ApiError::Busy,
            AccountError::Hash(error @ HashError::Failed(_)) => internal(error),
            AccountError::Database(error) => database(error),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            ClusterError::LimitReached(message) => ApiError::LimitReached(message),
            ClusterError::CapReached(reached) => ApiError::TooManyOpen(reached.0),
            ClusterError::NotFound => ApiError::NotFound,
            ClusterError::Missing(message) => ApiError::Missing(message),
            ClusterError::NotReady(message) => ApiError::NotReady(message),
            ClusterError::Host(error) => {
                tracing::warn!(%error, "host cluster call failed");
                ApiError::HostUnavailable
            }
            ClusterError::Database(error) => database(error),
        }
    }
}

impl From<platform::workshops::WorkshopError> for ApiError {
    fn from(error: platform::workshops::WorkshopError) -> Self {
        use platform::workshops::WorkshopError;
        match error {
            WorkshopError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            WorkshopError::NotFound => ApiError::NotFound,
            WorkshopError::NotAllowed(message) => ApiError::NotAllowed(message),
            WorkshopError::Unavailable(message) => ApiError::NotReady(message),
            WorkshopError::Cluster(error) => error.into(),
            WorkshopError::Database(error) => database(error),
        }
    }
}

impl From<platform::access::AccessError> for ApiError {
    fn from(error: platform::access::AccessError) -> Self {
        use platform::access::AccessError;
        match error {
            AccessError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            AccessError::NotFound => ApiError::NotFound,
            AccessError::LimitReached(message) => ApiError::LimitReached(message),
            AccessError::Database(error) => database(error),
        }
    }
}

impl From<platform::settings::SettingsError> for ApiError {
    fn from(error: platform::settings::SettingsError) -> Self {
        use platform::settings::SettingsError;
        match error {
            SettingsError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            SettingsError::Refused(message) => ApiError::NotAllowed(message),
            SettingsError::Database(error) => database(error),
        }
    }
}

// --- the server-function runtime ---

pub fn platform() -> Result<Platform, ApiError> {
    use_context::<Platform>().ok_or_else(|| internal("platform missing from the context"))
}

fn parts() -> Result<Parts, ApiError> {
    use_context::<Parts>().ok_or_else(|| internal("request parts missing from the context"))
}

pub async fn session() -> Result<AccountSession, ApiError> {
    request_session(&mut parts()?).await
}

/// Where the request came from.
pub async fn meta() -> RequestMeta {
    use_context::<Parts>().map(|parts| request_meta(&parts)).unwrap_or_default()
}

/// The guard every server function for signed-in users starts with.
pub async fn require_user() -> Result<CurrentUser, ApiError> {
    let (mut parts, platform) = (parts()?, platform()?);
    match use_context::<RequestUser>() {
        Some(memo) => memo.resolve(&platform, request_session(&mut parts).await?).await,
        None => CurrentUser::from_request_parts(&mut parts, &platform).await,
    }
}

pub async fn require_admin() -> Result<CurrentUser, ApiError> {
    let current = require_user().await?;
    if current.user.role != platform::accounts::Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok(current)
}

/// The signed-in user's cluster `id`, or `NotFound`.
pub async fn require_cluster(id: &str) -> Result<OwnedCluster, ApiError> {
    let current = require_user().await?;
    OwnedCluster::of(&platform()?, current, id).await
}

/// A form's identity and what of it may be kept for the next page.
pub struct Form {
    name: &'static str,
    values: Vec<(String, String)>,
    notice: Option<&'static str>,
}

/// What a kept value may be at most (the flash travels in a cookie).
const KEPT_CHARS: usize = 256;

impl Form {
    pub fn new(name: &'static str) -> Self {
        Self { name, values: Vec::new(), notice: None }
    }

    pub fn keep(mut self, field: &str, value: &str) -> Self {
        self.values.push((field.to_owned(), value.chars().take(KEPT_CHARS).collect()));
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
/// - posted by a plain HTML form (no JavaScript): the outcome goes to the next page in the flash
///   cookie and the browser is sent back to the form's page, which shows it.
pub async fn respond<T>(
    form: Form,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    held_request().with(|| ScopedFuture::new(shape(form, work))).await
}

/// An owner of the server function's own that holds the request's contexts, read at its first
/// poll. A page's resource runs its server function within the server render's owners, which
/// reach the request's contexts through weak links to their parents; but `Suspense` re-runs its
/// children on the server to find their resources (`dry_resolve`, leptos 0.8.23
/// suspense_component.rs), dropping the owners of the earlier run while their resources still
/// await. Such a function then lost the platform after its first await ("platform missing from
/// the context"), and the hydrating browser could be handed that error: a log viewer with no pod
/// to follow. Held here, the contexts stay for as long as the function runs.
fn held_request() -> Owner {
    fn keep<T: Clone + Send + Sync + 'static>() {
        if let Some(value) = use_context::<T>() {
            provide_context(value);
        }
    }
    let owner = Owner::new();
    owner.with(|| {
        keep::<Platform>();
        keep::<Parts>();
        keep::<ResponseOptions>();
        keep::<EdgeConfig>();
        keep::<RequestUser>();
    });
    owner
}

/// Runs `work` and shapes its answer (see [`respond`]).
async fn shape<T>(
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
        set_flash(flash.as_ref());
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

// --- the flash cookie ---

const FLASH_COOKIE: &str = "kraft_flash";
/// A flash is read by the page the browser is sent to right away.
const FLASH_MAX_AGE_SECS: u64 = 120;

fn flash_mac(platform: &Platform) -> Option<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(platform.installation().signing_key()).ok()
}

fn flash_cookie(value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = use_context::<EdgeConfig>().unwrap_or_default().secure_cookies;
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// Puts a form's outcome in the flash cookie (or clears it when there is none), signed with the
/// installation's key so that nobody but KRaft can write one.
fn set_flash(flash: Option<&Flash>) {
    let (Ok(platform), Some(response)) = (platform(), use_context::<ResponseOptions>()) else {
        return;
    };
    let cookie = match flash.and_then(|f| serde_json::to_vec(f).ok()) {
        Some(json) => {
            let Some(mut mac) = flash_mac(&platform) else { return };
            let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
            mac.update(payload.as_bytes());
            let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mac.finalize().into_bytes());
            flash_cookie(&format!("{payload}.{signature}"), FLASH_MAX_AGE_SECS)
        }
        None => flash_cookie("", 0),
    };
    if let Some(cookie) = cookie {
        response.append_header(SET_COOKIE, cookie);
    }
}

/// The flash the last plain form post left, if it is KRaft's own and still readable; the cookie
/// is cleared with this response.
pub fn take_flash() -> Result<Option<Flash>, ApiError> {
    let parts = parts()?;
    let platform = platform()?;
    let value = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == FLASH_COOKIE)
        .map(|(_, value)| value.to_owned());
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    set_flash(None);
    let Some((payload, signature)) = value.split_once('.') else { return Ok(None) };
    let (Some(mut mac), Ok(signature)) =
        (flash_mac(&platform), base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature))
    else {
        return Ok(None);
    };
    mac.update(payload.as_bytes());
    if mac.verify_slice(&signature).is_err() {
        return Ok(None);
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok()))
}

/// The page's Content-Security-Policy: scripts only from KRaft itself and the inline hydration
/// scripts Leptos marks with this response's nonce; WebAssembly may compile; no framing.
pub fn set_content_security_policy() {
    let Some(response) = use_context::<ResponseOptions>() else { return };
    // A fresh nonce per response; Leptos puts it on every script it writes into the page.
    leptos::nonce::provide_nonce();
    let nonce = leptos::nonce::use_nonce().map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_function_keeps_its_request_when_the_render_drops_the_owners_above_it() {
        use futures::FutureExt as _;
        // The request's owner, a Suspense's run that the render drops, and the resource in it.
        let request = Owner::new();
        request.with(|| provide_context(EdgeConfig { secure_cookies: true }));
        let dropped_run = request.with(Owner::new);
        let resource = dropped_run.with(Owner::new);
        let (resume, resumed) = futures::channel::oneshot::channel::<()>();
        let mut function = Box::pin(resource.with(|| {
            ScopedFuture::new(answer(async move {
                resumed.await.ok();
                Ok(use_context::<EdgeConfig>().map(|edge| edge.secure_cookies))
            }))
        }));
        assert!(function.as_mut().now_or_never().is_none(), "the function awaits");
        drop(dropped_run);
        assert!(resource.with(use_context::<EdgeConfig>).is_none(), "the chain is broken");
        resume.send(()).unwrap();
        assert_eq!(futures::executor::block_on(function), Ok(Some(true)));
    }

    #[test]
    fn a_database_without_a_free_connection_is_busy_not_broken() {
        use platform::db::{ConnAcquireErr, DbErr};
        let busy = ApiError::from(ClusterError::Database(DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout,
        )));
        assert_eq!(busy.status(), 503, "{busy:?}");
        let broken = ApiError::from(ClusterError::Database(DbErr::Custom("broken".into())));
        assert_eq!(broken.status(), 500, "{broken:?}");
    }
}

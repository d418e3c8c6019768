//! `/api/v1`: KRaft's versioned JSON API, for scripts, CI pipelines and the `kraft` CLI.
//!
//! - Callers present a personal API token (`Authorization: Bearer kraftpat_…`), never a session
//!   cookie: no ambient credential a web page could use, so no CSRF check applies here.
//! - Every error has one shape, [`Problem`]: `{"error": {"code", "message", "fields",
//!   "retry_after_secs"}}` with the matching HTTP status.
//! - Lists are pages: `?limit=` (1 to 100, default 20) and the `next_cursor` of the page before.
//! - Each token may make [`ApiState`]'s number of requests a minute on each replica (GCRA, with
//!   bursts up to that number); past it, 429 with `Retry-After`.
//! - The OpenAPI document is generated from the handlers and types below (utoipa) and served at
//!   [`OPENAPI_PATH`].

pub mod clusters;
mod paging;
pub mod wire;
pub mod workshops;

use std::num::NonZeroU32;
use std::sync::Arc;

use app::api::ssr::ClientAddr;
use app::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use platform::access::api_tokens::{ApiGrant, Scope};
use platform::access::Denied;
use platform::Platform;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use uuid::Uuid;

pub use wire::{Problem, ProblemBody};

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";
/// The OpenAPI document's stable address.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// What every API handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub platform: Platform,
    limiter: Arc<DefaultKeyedRateLimiter<Uuid>>,
}

impl ApiState {
    /// `per_minute`: requests each token may make a minute on this replica.
    pub fn new(platform: Platform, per_minute: NonZeroU32) -> Self {
        Self { platform, limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))) }
    }
}

/// The API's routes, under [`PREFIX`]; unknown ones answer with a [`Problem`] too.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/me", get(clusters::me))
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route(
            "/clusters/{cluster}",
            get(clusters::get).patch(clusters::change).delete(clusters::delete),
        )
        .route("/clusters/{cluster}/status", get(clusters::status))
        .route(
            "/clusters/{cluster}/kubeconfigs",
            get(clusters::list_kubeconfigs).post(clusters::issue_kubeconfig),
        )
        .route(
            "/clusters/{cluster}/kubeconfigs/{kubeconfig}",
            axum::routing::delete(clusters::revoke_kubeconfig),
        )
        .route("/workshops", get(workshops::list).post(workshops::create))
        .route("/workshops/{workshop}", get(workshops::get).patch(workshops::change))
        .route("/workshops/{workshop}/end", axum::routing::post(workshops::end))
        .route("/workshops/{workshop}/seats", get(workshops::seats))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state);
    Router::new().nest(PREFIX, v1)
}

async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn no_route() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "not_found", "No such API route: see /api/v1/openapi.json.")
}

async fn no_method() -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not answer that method: see /api/v1/openapi.json.",
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "KRaft API",
        version = "1",
        description = "Clusters, kubeconfigs and organized workshops of the account an API token belongs to. \
            Authenticate with `Authorization: Bearer <token>` (create tokens on the account page). \
            Errors share one shape (Problem); lists are pages (`limit`, `cursor`)."
    ),
    paths(
        clusters::me,
        clusters::list,
        clusters::create,
        clusters::get,
        clusters::change,
        clusters::delete,
        clusters::status,
        clusters::list_kubeconfigs,
        clusters::issue_kubeconfig,
        clusters::revoke_kubeconfig,
        workshops::list,
        workshops::create,
        workshops::get,
        workshops::change,
        workshops::end,
        workshops::seats,
    ),
    modifiers(&BearerToken),
    security(("token" = [])),
    tags(
        (name = "account", description = "Who the token belongs to."),
        (name = "clusters", description = "The account's clusters."),
        (name = "kubeconfigs", description = "Revocable kubeconfigs through KRaft's gateway."),
        (name = "workshops", description = "Workshops the account organizes: a join link, a seat and a cluster per attendee."),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("kraftpat_…")
                    .description(Some("A personal API token of the account."))
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`: this API, described (public: it holds no secret).
async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

/// An error as the API answers it: a status and a [`Problem`].
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    problem: Problem,
    /// `WWW-Authenticate` for a 401 (RFC 6750 §3).
    challenge: Option<&'static str>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            problem: Problem {
                error: ProblemBody {
                    code: code.to_owned(),
                    message: message.into(),
                    fields: Vec::new(),
                    retry_after_secs: None,
                },
            },
            challenge: None,
        }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.problem.error.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![app::error::FieldMessage {
            field: field.to_owned(),
            message: message.into(),
        }])
        .into()
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        let code = match &error {
            ApiError::Unauthenticated | ApiError::BadCredentials => "unauthenticated",
            ApiError::Forbidden | ApiError::SignupClosed | ApiError::NotAllowed(_) => "forbidden",
            ApiError::NotFound | ApiError::Missing(_) => "not_found",
            ApiError::Invalid(_) => "invalid",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::TooManyOpen(_) => "too_many",
            ApiError::Busy | ApiError::HostUnavailable => "unavailable",
            ApiError::LimitReached(_) => "limit_reached",
            ApiError::NotReady(_) => "conflict",
            ApiError::Internal => "internal",
            ApiError::Transport(_) => "bad_request",
        };
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut failure = Failure::new(status, code, error.to_string());
        match error {
            ApiError::Invalid(fields) => {
                failure.problem.error.fields = fields
                    .into_iter()
                    .map(|f| wire::FieldProblem { field: f.field, message: f.message })
                    .collect();
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                failure = failure.retry_after(retry_after_secs);
            }
            _ => {}
        }
        failure
    }
}

macro_rules! failure_from {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(error: $error) -> Self {
                ApiError::from(error).into()
            }
        }
    )*};
}
failure_from!(
    platform::clusters::ClusterError,
    platform::access::AccessError,
    platform::accounts::AccountError,
    platform::workshops::WorkshopError
);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let retry = self.problem.error.retry_after_secs;
        let mut response = (self.status, Json(self.problem)).into_response();
        if let Some(secs) = retry {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// The account a request's API token belongs to, and what the token may do. Extracting it
/// authenticates the token and spends one of its requests.
pub struct Caller {
    pub grant: ApiGrant,
    pub addr: String,
}

impl Caller {
    /// Refuses with 403 unless the token has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Failure> {
        if self.grant.allows(scope) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("This API token lacks the \"{}\" scope.", scope.as_str()),
            ))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Failure> {
        let addr = ClientAddr::of(parts)
            .map_or_else(|| "0.0.0.0".to_owned(), |ClientAddr(ip)| ip.to_string());
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(token) = presented else {
            let mut failure = Failure::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Send an API token: Authorization: Bearer <token>. Create one on your account page.",
            );
            failure.challenge = Some("Bearer realm=\"kraft\"");
            return Err(failure);
        };
        let grant = match state.platform.access().api_tokens().authenticate(token, &addr).await {
            Ok(grant) => grant,
            Err(Denied::Unauthorized) => {
                let mut failure = Failure::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "This API token is not valid: it is unknown, expired or revoked, or its account cannot use it.",
                );
                failure.challenge = Some("Bearer realm=\"kraft\", error=\"invalid_token\"");
                return Err(failure);
            }
            Err(Denied::Throttled(wait)) => {
                return Err(Failure::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many invalid tokens from this address. Try again later.",
                )
                .retry_after(wait.as_secs_f64().ceil() as u64));
            }
        };
        if let Err(not_until) = state.limiter.check_key(&grant.token_id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "This API token made too many requests. Slow down and try again shortly.",
            )
            .retry_after(wait.as_secs_f64().ceil() as u64));
        }
        if state.limiter.len() > 10_000 {
            state.limiter.retain_recent();
        }
        Ok(Self { grant, addr })
    }
}

/// A JSON body; a malformed one is a [`Problem`] like every other error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Failure> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(Failure::bad_request(rejection.body_text())),
        }
    }
}

/// Query parameters; malformed ones are a [`Problem`] too.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Failure::bad_request(rejection.body_text())),
        }
    }
}

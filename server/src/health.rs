//! Liveness and readiness probes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::startup::AppState;

/// A probe must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    status: &'static str,
    checks: Checks,
}

#[derive(Debug, Serialize)]
pub struct Checks {
    database: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'static str>,
}

/// The process is up and serving HTTP.
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can do useful work: its database answers, and it is not shutting down.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    if state.platform.draining() {
        let checks = Checks { database: "not checked", host: None };
        let body = Readiness { status: "shutting down", checks };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.platform.database_ready()).await
    {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            "unavailable"
        }
    };
    let host = match tokio::time::timeout(CHECK_TIMEOUT, state.platform.host_ready()).await {
        Ok(Ok(_)) => Some("ok"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: host cluster check failed");
            Some("unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness: host cluster check timed out");
            Some("unavailable")
        }
    };
    let ready = database == "ok" && host != Some("unavailable");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        checks: Checks { database, host },
    };
    (status, Json(body))
}

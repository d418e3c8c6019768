//! The admin endpoints under `/hostsim/`: read, replace and clear fault settings, drop every
//! open watch and log stream, and simulate an API server restart (with or without state).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::faults::FaultSettings;
use crate::host::Host;

pub async fn get_faults(State(host): State<Arc<Host>>) -> Json<FaultSettings> {
    Json(host.faults.settings())
}

pub async fn put_faults(
    State(host): State<Arc<Host>>,
    Json(settings): Json<FaultSettings>,
) -> Json<FaultSettings> {
    host.faults.set(settings);
    Json(host.faults.settings())
}

pub async fn clear_faults(State(host): State<Arc<Host>>) -> StatusCode {
    host.faults.clear();
    StatusCode::NO_CONTENT
}

pub async fn drop_connections(State(host): State<Arc<Host>>) -> StatusCode {
    host.faults.drop_connections();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartParams {
    #[serde(default)]
    keep_state: Option<bool>,
}

pub async fn restart(State(host): State<Arc<Host>>, Query(p): Query<RestartParams>) -> StatusCode {
    crate::restart(&host, p.keep_state.unwrap_or(true));
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
pub struct ContainerParams {
    namespace: String,
    pod: String,
    container: String,
}

/// `POST /hostsim/restart-container?namespace=&pod=&container=`: crash and restart a container.
pub async fn restart_container(
    State(host): State<Arc<Host>>,
    Query(p): Query<ContainerParams>,
) -> StatusCode {
    if crate::restart_container(&host, &p.namespace, &p.pod, &p.container) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateParams {
    lines_per_second: f64,
}

/// `POST /hostsim/log-rate?linesPerSecond=`: log lines per second per running container.
pub async fn log_rate(State(host): State<Arc<Host>>, Query(p): Query<RateParams>) -> StatusCode {
    if !(0.0..=1_000_000.0).contains(&p.lines_per_second) {
        return StatusCode::BAD_REQUEST;
    }
    host.logs.set_rate(p.lines_per_second);
    StatusCode::NO_CONTENT
}

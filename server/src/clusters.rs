//! Cluster routes that are not server functions: the kubeconfig download (a file) and the live
//! list websocket.

use std::net::SocketAddr;
use std::time::Duration;

use app::clusters::{ClusterSummary, ClustersMessage};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use platform::clusters::ClusterError;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tower_sessions::Session;
use uuid::Uuid;

use crate::auth::current_user;
use crate::reply::{lean, plain, send_json, HEARTBEAT};
use crate::startup::AppState;

#[derive(Debug, Deserialize)]
pub struct KubeconfigForm {
    /// Days the client certificate stays valid: 1, 7 or 30.
    #[serde(default)]
    days: Option<String>,
}

/// `POST /api/clusters/{id}/kubeconfig`: a fresh kubeconfig for a Ready cluster, as a file.
pub async fn kubeconfig(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(form): Form<KubeconfigForm>,
) -> Response {
    let Some(user) = current_user(session, &state.platform).await else {
        return plain(StatusCode::UNAUTHORIZED, "Please sign in to continue.");
    };
    let Some(clusters) = state.platform.clusters() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    };
    let days = match form.days.as_deref().unwrap_or("7") {
        "1" => 1,
        "7" => 7,
        "30" => 30,
        _ => return plain(StatusCode::BAD_REQUEST, "Choose a validity of 1, 7 or 30 days."),
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return plain(StatusCode::NOT_FOUND, "Not found.");
    };
    let client_addr = peer.ip().to_string();
    let row = match clusters.get(user.id, id).await {
        Ok(row) => row,
        Err(ClusterError::NotFound) => return plain(StatusCode::NOT_FOUND, "Not found."),
        Err(error) => return failure(error),
    };
    match clusters
        .kubeconfig(&user, id, Duration::from_secs(days * 86_400), Some(&client_addr))
        .await
    {
        Ok(issued) => (
            [
                (header::CONTENT_TYPE, "application/yaml".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}-kubeconfig.yaml\"", row.name),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            issued.yaml,
        )
            .into_response(),
        Err(error) => failure(error),
    }
}

fn failure(error: ClusterError) -> Response {
    match error {
        ClusterError::NotFound => plain(StatusCode::NOT_FOUND, "Not found."),
        ClusterError::NotReady(message) => plain(StatusCode::CONFLICT, &message),
        ClusterError::Invalid(_) | ClusterError::LimitReached(_) => {
            plain(StatusCode::BAD_REQUEST, &error.to_string())
        }
        ClusterError::Host(error) => {
            tracing::warn!(%error, "kubeconfig: host call failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "The host cluster is not reachable right now.")
        }
        ClusterError::Database(error) => {
            tracing::error!(%error, "kubeconfig: database error");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.")
        }
    }
}

/// `GET /ws/clusters`: the signed-in user's clusters, pushed whenever the reconciler changes one.
pub async fn live_list(
    State(state): State<AppState>,
    session: Session,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(user) = current_user(session, &state.platform).await else {
        return plain(StatusCode::UNAUTHORIZED, "Please sign in to continue.");
    };
    if state.platform.clusters().is_none() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    }
    lean(upgrade).on_upgrade(move |socket| push_clusters(socket, state, user.id))
}

async fn snapshot(state: &AppState, owner: Uuid) -> Option<ClustersMessage> {
    let clusters = state.platform.clusters()?;
    let rows = clusters.list(owner).await.ok()?;
    Some(ClustersMessage::Snapshot { clusters: rows.iter().map(ClusterSummary::from).collect() })
}

async fn push_clusters(mut socket: WebSocket, state: AppState, owner: Uuid) {
    let Some(clusters) = state.platform.clusters() else { return };
    // Subscribe before the first snapshot, so no change falls between the two.
    let mut changes = clusters.subscribe();
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.tick().await;
    let mut dirty = true;
    loop {
        if dirty {
            let Some(message) = snapshot(&state, owner).await else { break };
            if !send_json(&mut socket, &message).await {
                break;
            }
            dirty = false;
        }
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => dirty = change.owner_id == Some(owner),
                // Missed some: send the whole list again.
                Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => break,
            },
            _ = ticker.tick() => {
                if !send_json(&mut socket, &ClustersMessage::Heartbeat).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

//! Cluster routes that are not server functions: the kubeconfig download (a file) and the live
//! list websocket.

use std::time::Duration;

use app::api::ssr::{ClientAddr, CurrentUser, OwnedCluster};
use app::clusters::{ClusterSummary, ClustersMessage};
use app::error::{ApiError, FieldMessage};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Form;
use futures::stream::{self, Stream};
use platform::Platform;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::live::{self, json, SessionGuard};

#[derive(Debug, Deserialize)]
pub struct KubeconfigForm {
    /// Days the client certificate stays valid: 1, 7 or 30.
    #[serde(default)]
    days: Option<String>,
}

/// `POST /api/clusters/{id}/kubeconfig`: a fresh kubeconfig for a Ready cluster, as a file.
pub async fn kubeconfig(
    State(platform): State<Platform>,
    ClientAddr(client): ClientAddr,
    owned: OwnedCluster,
    Form(form): Form<KubeconfigForm>,
) -> Result<Response, ApiError> {
    let days = match form.days.as_deref().unwrap_or("7") {
        "1" => 1,
        "7" => 7,
        "30" => 30,
        _ => {
            return Err(ApiError::Invalid(vec![FieldMessage {
                field: "days".into(),
                message: "Choose a validity of 1, 7 or 30 days.".into(),
            }]))
        }
    };
    let valid_for = Duration::from_secs(days * 86_400);
    let client = client.to_string();
    let issued = platform
        .clusters()
        .kubeconfig(&owned.user, owned.cluster.id, valid_for, Some(&client))
        .await?;
    let filename = format!("attachment; filename=\"{}-kubeconfig.yaml\"", owned.cluster.name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/yaml".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        issued.yaml,
    )
        .into_response())
}

/// `GET /ws/clusters`: the signed-in user's clusters, pushed whenever the reconciler changes one.
pub async fn live_list(
    State(platform): State<Platform>,
    current: CurrentUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let guard = SessionGuard::new(&platform, &current.session).await?;
    Ok(live::serve(upgrade, guard, cluster_list(platform, current.user.id)))
}

/// The owner's cluster list: now, and again after every change of one of their clusters. Ends
/// when the list cannot be read (the browser reconnects).
fn cluster_list(platform: Platform, owner: Uuid) -> impl Stream<Item = String> + Send {
    // Subscribe before the first list, so no change falls between the two.
    let changes = platform.clusters().subscribe();
    stream::unfold((platform, changes, true), move |(platform, mut changes, dirty)| async move {
        let mut dirty = dirty;
        while !dirty {
            match changes.recv().await {
                Ok(change) => dirty = change.owner_id == Some(owner),
                // Missed some: send the whole list again.
                Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => return None,
            }
        }
        let rows = match platform.clusters().list(owner).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cluster list: cannot read the clusters");
                return None;
            }
        };
        let message =
            ClustersMessage::Snapshot { clusters: rows.iter().map(ClusterSummary::from).collect() };
        Some((json(&message), (platform, changes, false)))
    })
}

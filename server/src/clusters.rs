//! Cluster routes that are not server functions: the kubeconfig download (a file) and the live
//! list websocket.

use app::api::ssr::{ClientAddr, CurrentUser, OwnedCluster};
use app::clusters::{ClusterSummary, ClustersMessage};
use app::error::ApiError;
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
    /// What the user calls the place it will live ("laptop", "CI").
    #[serde(default)]
    name: String,
    /// Days the token stays valid: 1, 7, 30 or 90.
    #[serde(default)]
    days: Option<String>,
}

/// `POST /api/clusters/{id}/kubeconfig`: a new named kubeconfig (a revocable token through
/// KRaft's gateway), as a file. Its token exists only in this response.
pub async fn kubeconfig(
    State(platform): State<Platform>,
    ClientAddr(client): ClientAddr,
    owned: OwnedCluster,
    Form(form): Form<KubeconfigForm>,
) -> Result<Response, ApiError> {
    if owned.cluster.deleting_at.is_some() {
        return Err(ApiError::NotReady("The cluster is being deleted.".into()));
    }
    let days = form.days.as_deref().unwrap_or("30").trim().parse::<u32>().unwrap_or(0);
    let client = client.to_string();
    let endpoint = platform.clusters().settings().endpoint(owned.cluster.id);
    let issued = platform
        .access()
        .issue(&owned.user, &owned.cluster, &form.name, days, &endpoint, Some(&client))
        .await?;
    let file = format!("{}-{}", owned.cluster.name, slug(&issued.info.name));
    let disposition = format!("attachment; filename=\"{file}-kubeconfig.yaml\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/yaml".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        issued.yaml,
    )
        .into_response())
}

/// A kubeconfig's name as a file-name part: lowercase letters, digits and dashes.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        "kubeconfig".into()
    } else {
        out
    }
}

/// `GET /ws/clusters`: the signed-in user's clusters, pushed whenever the reconciler changes one.
pub async fn live_list(
    State(platform): State<Platform>,
    current: CurrentUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let guard = SessionGuard::new(&platform, &current.session).await?;
    Ok(live::serve("clusters", upgrade, guard, cluster_list(platform, current.user.id)))
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
        let rows = match platform.clusters().listing(owner).await {
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

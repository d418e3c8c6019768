//! `GET /ws/dashboard`: every cluster of the signed-in user with its phase, endpoint and live
//! usage, on one socket. The cluster list comes from the database (pushed again whenever the
//! reconciler changes one of the user's clusters); the numbers come from the metrics hub, one
//! subscription per cluster, so a thousand dashboards still make one upstream poll per interval.

use std::collections::HashSet;

use app::clusters::ClusterSummary;
use app::metrics::{DashboardMessage, MetricSample};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use platform::stream::metrics::{
    Availability, ClusterSample, ClusterTarget, MetricsEvent, Received, Subscription,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::StreamMap;
use tower_sessions::Session;
use uuid::Uuid;

use crate::auth::current_user;
use crate::metrics::quota;
use crate::reply::{lean, plain, send_json, HEARTBEAT};
use crate::startup::AppState;

pub async fn live(
    State(state): State<AppState>,
    session: Session,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(user) = current_user(session, &state.platform).await else {
        return plain(StatusCode::UNAUTHORIZED, "Please sign in to continue.");
    };
    if state.platform.clusters().is_none() || state.platform.metrics().is_none() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    }
    lean(upgrade).on_upgrade(move |socket| push(socket, state, user.id))
}

/// A sample without its per-pod breakdown: the dashboard draws totals.
fn totals(sample: &ClusterSample) -> MetricSample {
    MetricSample {
        ts: sample.ts.to_rfc3339(),
        cpu_millicores: sample.cpu_millicores,
        memory_bytes: sample.memory_bytes,
        by_pod: Vec::new(),
    }
}

/// What a new subscription already knows, as messages: history, then quota and availability.
fn opening(cluster: &str, subscription: &Subscription) -> Vec<DashboardMessage> {
    let mut messages = vec![DashboardMessage::History {
        cluster: cluster.to_owned(),
        samples: subscription.history.iter().map(|s| totals(s)).collect(),
    }];
    if let Some(usage) = &subscription.quota {
        messages.push(DashboardMessage::Quota { cluster: cluster.to_owned(), quota: quota(usage) });
    }
    if let Availability::Unavailable { reason } = &subscription.availability {
        messages.push(DashboardMessage::Unavailable {
            cluster: cluster.to_owned(),
            reason: reason.clone(),
        });
    }
    messages
}

fn event(cluster: Uuid, received: Received) -> Option<DashboardMessage> {
    let cluster = cluster.to_string();
    match received {
        // A missed sample is simply not drawn; the next one comes within an interval.
        Received::Lagged(_) => None,
        Received::Event(MetricsEvent::Sample(s)) => {
            Some(DashboardMessage::Sample { cluster, sample: totals(&s) })
        }
        Received::Event(MetricsEvent::Quota(q)) => {
            Some(DashboardMessage::Quota { cluster, quota: quota(&q) })
        }
        Received::Event(MetricsEvent::Unavailable { reason }) => {
            Some(DashboardMessage::Unavailable { cluster, reason })
        }
    }
}

fn into_stream(mut subscription: Subscription) -> BoxStream<'static, Received> {
    // The snapshot has been sent; keep only the receiver alive.
    subscription.history = Vec::new();
    subscription.long_history = Vec::new();
    stream::unfold(subscription, |mut subscription| async move {
        let received = subscription.recv().await?;
        Some((received, subscription))
    })
    .boxed()
}

async fn push(mut socket: WebSocket, state: AppState, owner: Uuid) {
    let (Some(clusters), Some(hub)) = (state.platform.clusters(), state.platform.metrics()) else {
        return;
    };
    // Subscribe to changes before the first list, so none falls between the two.
    let mut changes = clusters.subscribe();
    let mut followed: StreamMap<Uuid, BoxStream<'static, Received>> = StreamMap::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            let rows = match clusters.list(owner).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "dashboard: cannot list clusters");
                    return;
                }
            };
            let message = DashboardMessage::Clusters {
                clusters: rows.iter().map(ClusterSummary::from).collect(),
            };
            if !send_json(&mut socket, &message).await {
                return;
            }
            let current: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
            let gone: Vec<Uuid> =
                followed.keys().filter(|id| !current.contains(id)).copied().collect();
            for id in gone {
                followed.remove(&id);
            }
            for row in &rows {
                if followed.contains_key(&row.id) {
                    continue;
                }
                let target = ClusterTarget::new(row.host_namespace.clone(), row.name.clone());
                let subscription = hub.subscribe(target);
                for message in opening(&row.id.to_string(), &subscription) {
                    if !send_json(&mut socket, &message).await {
                        return;
                    }
                }
                followed.insert(row.id, into_stream(subscription));
            }
        }
        let message = tokio::select! {
            change = changes.recv() => {
                match change {
                    Ok(change) => dirty = change.owner_id == Some(owner),
                    // Missed some: list again.
                    Err(RecvError::Lagged(_)) => dirty = true,
                    Err(RecvError::Closed) => return,
                }
                continue;
            }
            Some((cluster, received)) = followed.next(), if !followed.is_empty() => {
                match event(cluster, received) {
                    Some(message) => message,
                    None => continue,
                }
            }
            _ = heartbeat.tick() => DashboardMessage::Heartbeat,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        if !send_json(&mut socket, &message).await {
            return;
        }
    }
}

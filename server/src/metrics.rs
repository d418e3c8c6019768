//! `GET /ws/clusters/{id}/metrics`: a cluster's usage, pushed once per poll of the metrics hub.

use app::metrics::{MetricSample, MetricsMessage, PodUsageView, Quota, UsedOfHard};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use platform::clusters::ClusterError;
use platform::stream::metrics::{
    Availability, ClusterSample, ClusterTarget, MetricsEvent, PodRole, QuotaPair, QuotaUsage,
    Received, Subscription,
};
use tower_sessions::Session;
use uuid::Uuid;

use crate::auth::current_user;
use crate::reply::{lean, plain, send_json, HEARTBEAT};
use crate::startup::AppState;

pub async fn live(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(user) = current_user(session, &state.platform).await else {
        return plain(StatusCode::UNAUTHORIZED, "Please sign in to continue.");
    };
    let (Some(clusters), Some(hub)) =
        (state.platform.clusters(), state.platform.metrics().cloned())
    else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return plain(StatusCode::NOT_FOUND, "Not found.");
    };
    let row = match clusters.get(user.id, id).await {
        Ok(row) => row,
        Err(ClusterError::NotFound) => return plain(StatusCode::NOT_FOUND, "Not found."),
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read the cluster");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.");
        }
    };
    let target = ClusterTarget::new(row.host_namespace, row.name);
    lean(upgrade).on_upgrade(move |socket| async move {
        let subscription = hub.subscribe(target);
        push(socket, subscription).await;
    })
}

pub(crate) fn sample(sample: &ClusterSample) -> MetricSample {
    MetricSample {
        ts: sample.ts.to_rfc3339(),
        cpu_millicores: sample.cpu_millicores,
        memory_bytes: sample.memory_bytes,
        by_pod: sample
            .by_pod
            .iter()
            .map(|p| PodUsageView {
                pod: p.pod.clone(),
                role: match p.role {
                    PodRole::Server => "server".into(),
                    PodRole::Agent => "agent".into(),
                },
                cpu_millicores: p.cpu_millicores,
                memory_bytes: p.memory_bytes,
            })
            .collect(),
    }
}

pub(crate) fn quota(usage: &QuotaUsage) -> Quota {
    let pair =
        |p: &Option<QuotaPair>| p.as_ref().map(|p| UsedOfHard { used: p.used, hard: p.hard });
    Quota {
        cpu: pair(&usage.cpu),
        memory: pair(&usage.memory),
        storage: pair(&usage.storage),
        pods: pair(&usage.pods),
    }
}

async fn push(mut socket: WebSocket, mut subscription: Subscription) {
    let history = MetricsMessage::History {
        samples: subscription.history.iter().map(|s| sample(s)).collect(),
    };
    if !send_json(&mut socket, &history).await {
        return;
    }
    if let Some(usage) = &subscription.quota {
        if !send_json(&mut socket, &MetricsMessage::Quota { quota: quota(usage) }).await {
            return;
        }
    }
    if let Availability::Unavailable { reason } = &subscription.availability {
        if !send_json(&mut socket, &MetricsMessage::Unavailable { reason: reason.clone() }).await {
            return;
        }
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        let message = tokio::select! {
            received = subscription.recv() => match received {
                None => return,
                // Missed samples are simply not drawn; the next one comes soon.
                Some(Received::Lagged(_)) => continue,
                Some(Received::Event(MetricsEvent::Sample(s))) => MetricsMessage::Sample { sample: sample(&s) },
                Some(Received::Event(MetricsEvent::Quota(q))) => MetricsMessage::Quota { quota: quota(&q) },
                Some(Received::Event(MetricsEvent::Unavailable { reason })) => MetricsMessage::Unavailable { reason },
            },
            _ = heartbeat.tick() => MetricsMessage::Heartbeat,
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

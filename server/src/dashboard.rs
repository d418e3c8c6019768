//! `GET /ws/dashboard`: every cluster of the signed-in user with its phase, endpoint and live
//! usage, on one socket. The cluster list comes from the database (pushed again whenever the
//! reconciler changes one of the user's clusters); the numbers come from the metrics hub, one
//! subscription per cluster, so a thousand dashboards still make one upstream poll per interval.

use std::collections::{HashSet, VecDeque};

use app::api::ssr::CurrentUser;
use app::clusters::ClusterSummary;
use app::error::ApiError;
use app::metrics::{DashboardMessage, MetricSample};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use futures::stream::{self, BoxStream, Stream};
use futures::StreamExt;
use platform::clusters::ClusterChange;
use platform::stream::metrics::{
    Availability, ClusterSample, ClusterTarget, MetricsEvent, Received, Subscription,
};
use platform::Platform;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_stream::StreamMap;
use uuid::Uuid;

use crate::live::{self, json, SessionGuard};
use crate::metrics::quota;

pub async fn live(
    State(platform): State<Platform>,
    current: CurrentUser,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let guard = SessionGuard::new(&platform, &current.session).await?;
    Ok(live::serve(
        "dashboard",
        upgrade,
        guard,
        Dashboard::new(platform, current.user.id).into_stream(),
    ))
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

/// One user's dashboard: their clusters, and a metrics subscription for each.
struct Dashboard {
    platform: Platform,
    owner: Uuid,
    changes: broadcast::Receiver<ClusterChange>,
    followed: StreamMap<Uuid, BoxStream<'static, Received>>,
    /// The list must be sent (again).
    dirty: bool,
    queue: VecDeque<String>,
}

impl Dashboard {
    fn new(platform: Platform, owner: Uuid) -> Self {
        // Subscribe to changes before the first list, so none falls between the two.
        let changes = platform.clusters().subscribe();
        Self {
            platform,
            owner,
            changes,
            followed: StreamMap::new(),
            dirty: true,
            queue: VecDeque::new(),
        }
    }

    fn into_stream(self) -> impl Stream<Item = String> + Send {
        stream::unfold(self, |mut dashboard| async move {
            let next = dashboard.next().await?;
            Some((next, dashboard))
        })
    }

    /// The next message; `None` ends the view (the list cannot be read; the browser reconnects).
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Some(message);
            }
            if self.dirty {
                self.dirty = false;
                self.refresh().await?;
                continue;
            }
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(change) => self.dirty = change.owner_id == Some(self.owner),
                    // Missed some: list again.
                    Err(RecvError::Lagged(_)) => self.dirty = true,
                    Err(RecvError::Closed) => return None,
                },
                Some((cluster, received)) = self.followed.next(), if !self.followed.is_empty() => {
                    if let Some(message) = event(cluster, received) {
                        return Some(json(&message));
                    }
                }
            }
        }
    }

    /// Queues the list, follows new clusters (with what their hub already knows) and lets go of
    /// the ones that are gone.
    async fn refresh(&mut self) -> Option<()> {
        let rows = match self.platform.clusters().list(self.owner).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "dashboard: cannot list clusters");
                return None;
            }
        };
        let clusters = rows.iter().map(ClusterSummary::from).collect();
        self.queue.push_back(json(&DashboardMessage::Clusters { clusters }));
        let current: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        let gone: Vec<Uuid> =
            self.followed.keys().filter(|id| !current.contains(id)).copied().collect();
        for id in gone {
            self.followed.remove(&id);
        }
        for row in &rows {
            if self.followed.contains_key(&row.id) {
                continue;
            }
            let target = ClusterTarget::new(row.host_namespace.clone(), row.name.clone());
            let subscription = self.platform.metrics().subscribe(target);
            self.queue.extend(opening(&row.id.to_string(), &subscription).iter().map(json));
            self.followed.insert(row.id, into_stream(subscription));
        }
        Some(())
    }
}

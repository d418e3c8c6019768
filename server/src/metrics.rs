//! `GET /ws/clusters/{id}/metrics`: a cluster's usage, pushed once per poll of the metrics hub.

use app::api::ssr::OwnedCluster;
use app::error::ApiError;
use app::metrics::{MetricSample, MetricsMessage, PodUsageView, Quota, UsedOfHard};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use futures::stream::{self, Stream, StreamExt};
use platform::stream::metrics::{
    Availability, ClusterSample, ClusterTarget, MetricsEvent, QuotaPair, QuotaUsage, Received,
    Subscription,
};
use platform::Platform;

use crate::live::{self, json, SessionGuard};

pub async fn live(
    State(platform): State<Platform>,
    owned: OwnedCluster,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let guard = SessionGuard::new(&platform, &owned.session).await?;
    let target = ClusterTarget::new(owned.cluster.host_namespace, owned.cluster.name);
    let subscription = platform.metrics().subscribe(target);
    Ok(live::serve("metrics", upgrade, guard, usage(subscription)))
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
                role: p.role.into(),
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

/// What the hub remembers (history, quota, availability), then each event as it comes.
fn usage(mut subscription: Subscription) -> impl Stream<Item = String> + Send {
    let mut opening = vec![json(&MetricsMessage::History {
        samples: subscription.history.iter().map(|s| sample(s)).collect(),
    })];
    if let Some(usage) = &subscription.quota {
        opening.push(json(&MetricsMessage::Quota { quota: quota(usage) }));
    }
    if let Availability::Unavailable { reason } = &subscription.availability {
        opening.push(json(&MetricsMessage::Unavailable { reason: reason.clone() }));
    }
    // Sent: keep only the receiver.
    subscription.history = Vec::new();
    subscription.long_history = Vec::new();
    let events = stream::unfold(subscription, |mut subscription| async move {
        loop {
            let message = match subscription.recv().await? {
                // Missed samples are simply not drawn; the next one comes soon.
                Received::Lagged(_) => continue,
                Received::Event(MetricsEvent::Sample(s)) => {
                    MetricsMessage::Sample { sample: sample(&s) }
                }
                Received::Event(MetricsEvent::Quota(q)) => {
                    MetricsMessage::Quota { quota: quota(&q) }
                }
                Received::Event(MetricsEvent::Unavailable { reason }) => {
                    MetricsMessage::Unavailable { reason }
                }
            };
            return Some((json(&message), subscription));
        }
    });
    stream::iter(opening).chain(events)
}

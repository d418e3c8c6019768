//! Cluster metrics in the UI: the wire types of `/ws/clusters/{id}/metrics` and the charts.

pub mod charts;

use serde::{Deserialize, Serialize};

/// What a K3k pod does for its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodRole {
    Server,
    Agent,
}

#[cfg(feature = "ssr")]
impl From<platform::stream::metrics::PodRole> for PodRole {
    fn from(role: platform::stream::metrics::PodRole) -> Self {
        match role {
            platform::stream::metrics::PodRole::Server => PodRole::Server,
            platform::stream::metrics::PodRole::Agent => PodRole::Agent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodUsageView {
    pub pod: String,
    pub role: PodRole,
    pub cpu_millicores: f64,
    pub memory_bytes: u64,
}

/// A cluster's usage at one moment: all server and agent pods, containers summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// RFC 3339.
    pub ts: String,
    pub cpu_millicores: f64,
    pub memory_bytes: u64,
    pub by_pod: Vec<PodUsageView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsedOfHard {
    pub used: f64,
    pub hard: f64,
}

/// The cluster namespace's quota: CPU in millicores, memory and storage in bytes, pods counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub cpu: Option<UsedOfHard>,
    pub memory: Option<UsedOfHard>,
    pub storage: Option<UsedOfHard>,
    pub pods: Option<UsedOfHard>,
}

/// Server → browser messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetricsMessage {
    /// Sent first: what the server remembers, so charts are never empty.
    History {
        samples: Vec<MetricSample>,
    },
    Sample {
        sample: MetricSample,
    },
    Quota {
        quota: Quota,
    },
    /// No numbers right now, and why (not zeros).
    Unavailable {
        reason: String,
    },
    Heartbeat,
}

/// Server → browser messages on `/ws/dashboard`: every cluster of the signed-in user, its phase
/// and its usage. Samples carry totals only (`by_pod` empty); the cluster page has the breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DashboardMessage {
    /// The user's clusters as they are now; sent first and whenever one changes.
    Clusters {
        clusters: Vec<crate::clusters::ClusterSummary>,
    },
    /// A cluster's remembered samples, sent when the dashboard starts following it.
    History {
        cluster: String,
        samples: Vec<MetricSample>,
    },
    Sample {
        cluster: String,
        sample: MetricSample,
    },
    Quota {
        cluster: String,
        quota: Quota,
    },
    Unavailable {
        cluster: String,
        reason: String,
    },
    Heartbeat,
}

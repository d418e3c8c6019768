//! What only the server sees of clusters: the platform's cluster service and the conversions from
//! rows and host objects to wire types.

use platform::clusters::{ClusterError, ClusterRecord, Clusters, HostEvent};
use platform::Platform;

use crate::accounts::server::internal;
use crate::clusters::api::{ClusterDetail, ClusterSummary, ConditionView, EventView};
use crate::error::{ApiError, FieldMessage};

pub fn clusters(platform: &Platform) -> Result<&Clusters, ApiError> {
    platform.clusters().ok_or(ApiError::HostUnavailable)
}

/// A cluster id from the URL; garbage is as "not found" as a stranger's cluster.
pub fn parse_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    id.trim().parse().map_err(|_| ApiError::NotFound)
}

impl From<ClusterError> for ApiError {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::Invalid(fields) => ApiError::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldMessage { field: f.field.to_owned(), message: f.message })
                    .collect(),
            ),
            ClusterError::LimitReached(message) => ApiError::LimitReached(message),
            ClusterError::NotFound => ApiError::NotFound,
            ClusterError::NotReady(message) => ApiError::NotReady(message),
            ClusterError::Host(error) => {
                tracing::warn!(%error, "host cluster call failed");
                ApiError::HostUnavailable
            }
            ClusterError::Database(error) => internal(error),
        }
    }
}

impl From<&ClusterRecord> for ClusterSummary {
    fn from(row: &ClusterRecord) -> Self {
        Self {
            id: row.id.to_string(),
            name: row.name.clone(),
            phase: row.phase.clone(),
            message: row.status_message.clone(),
            endpoint: row.endpoint.clone(),
            mode: row.mode.clone(),
            servers: row.servers,
            agents: row.agents,
            version: row.version.clone(),
            created_at: row.created_at.to_rfc3339(),
        }
    }
}

pub fn detail(row: &ClusterRecord, events: Vec<HostEvent>) -> ClusterDetail {
    let conditions: Vec<k8s_condition::Condition> =
        row.conditions.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
    ClusterDetail {
        summary: ClusterSummary::from(row),
        hostname: row.hostname.clone(),
        tls_sans: serde_json::from_str(&row.tls_sans).unwrap_or_default(),
        persistence: row.persistence.clone(),
        storage_gi: row.storage_gi,
        host_namespace: row.host_namespace.clone(),
        host_version: row.host_version.clone(),
        conditions: conditions
            .into_iter()
            .map(|c| ConditionView {
                kind: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventView {
                kind: e.kind,
                reason: e.reason,
                message: e.message,
                at: e.at,
                count: e.count,
            })
            .collect(),
    }
}

/// The condition shape as stored (Kubernetes' `metav1.Condition`).
mod k8s_condition {
    #[derive(serde::Deserialize)]
    pub struct Condition {
        #[serde(rename = "type")]
        pub type_: String,
        pub status: String,
        #[serde(default)]
        pub reason: String,
        #[serde(default)]
        pub message: String,
    }
}

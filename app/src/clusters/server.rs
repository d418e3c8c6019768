//! What only the server sees of clusters: platform rows and host objects as wire types. Every
//! closed set is matched exhaustively, so a new platform variant forces a decision here.

use platform::clusters::{ClusterRecord, HostEvent, Phase};
use platform::host::k3k;

use crate::clusters::api::{
    ClusterDetail, ClusterMode, ClusterPhase, ClusterSummary, ConditionView, EventView, Persistence,
};

impl From<Phase> for ClusterPhase {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Pending => ClusterPhase::Pending,
            Phase::Provisioning => ClusterPhase::Provisioning,
            Phase::Ready => ClusterPhase::Ready,
            Phase::Degraded => ClusterPhase::Degraded,
            Phase::Failed => ClusterPhase::Failed,
            Phase::Deleting => ClusterPhase::Deleting,
            Phase::Terminating => ClusterPhase::Terminating,
            Phase::Unknown => ClusterPhase::Unknown,
        }
    }
}

impl From<k3k::ClusterMode> for ClusterMode {
    fn from(mode: k3k::ClusterMode) -> Self {
        match mode {
            k3k::ClusterMode::Shared => ClusterMode::Shared,
            k3k::ClusterMode::Virtual => ClusterMode::Virtual,
            k3k::ClusterMode::Hcp => ClusterMode::Hcp,
        }
    }
}

impl From<k3k::PersistenceMode> for Persistence {
    fn from(mode: k3k::PersistenceMode) -> Self {
        match mode {
            k3k::PersistenceMode::Dynamic => Persistence::Dynamic,
            k3k::PersistenceMode::Ephemeral => Persistence::Ephemeral,
        }
    }
}

impl From<&ClusterRecord> for ClusterSummary {
    fn from(row: &ClusterRecord) -> Self {
        Self {
            id: row.id.to_string(),
            name: row.name.clone(),
            phase: row.phase().into(),
            message: row.status_message.clone(),
            endpoint: row.endpoint.clone(),
            mode: row.mode().into(),
            servers: row.servers,
            agents: row.agents,
            version: row.version.clone(),
            created_at: row.created_at.to_rfc3339(),
        }
    }
}

impl From<(&ClusterRecord, Vec<HostEvent>)> for ClusterDetail {
    fn from((row, events): (&ClusterRecord, Vec<HostEvent>)) -> Self {
        ClusterDetail {
            summary: ClusterSummary::from(row),
            hostname: row.hostname.clone(),
            tls_sans: row.tls_sans(),
            persistence: row.persistence().into(),
            storage_gi: row.storage_gi,
            host_namespace: row.host_namespace.clone(),
            host_version: row.host_version.clone(),
            conditions: row
                .conditions()
                .into_iter()
                .map(|c| ConditionView {
                    kind: c.kind,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                })
                .collect(),
            // Only while it is not running: once Ready, old refusals are history.
            blocked_by: (row.phase != "Ready")
                .then(|| platform::clusters::explain_events(&events))
                .flatten(),
            events: events
                .into_iter()
                .map(|e| EventView {
                    kind: e.kind,
                    reason: e.reason,
                    message: e.message,
                    at: e.at,
                    count: e.count,
                    object: e.object,
                })
                .collect(),
        }
    }
}

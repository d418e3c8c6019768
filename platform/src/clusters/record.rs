//! A cluster row read as typed values: the text columns (phase, mode, persistence, the SANs and
//! conditions stored as JSON) are parsed here, once, and nowhere else.

use serde::Deserialize;

use crate::db::entities::clusters;
use crate::host::k3k::{ClusterMode, PersistenceMode};

/// Where a cluster is in its life, as KRaft records it: K3k's phases plus KRaft's own
/// `Deleting` (the user asked; the host has not confirmed yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Provisioning,
    Ready,
    /// Was Ready and K3k now reports `Failed`: K3k sets `Failed` on any reconcile error and
    /// flips back on the next success (K3k v1.1.0 `pkg/controller/cluster/status.go`), so the
    /// cluster is most likely still serving; logs and kubeconfigs stay available.
    Degraded,
    Failed,
    Deleting,
    Terminating,
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Provisioning,
        Phase::Ready,
        Phase::Degraded,
        Phase::Failed,
        Phase::Deleting,
        Phase::Terminating,
        Phase::Unknown,
    ];

    pub fn parse(text: &str) -> Self {
        match text {
            "Pending" => Phase::Pending,
            "Provisioning" => Phase::Provisioning,
            "Ready" => Phase::Ready,
            "Degraded" => Phase::Degraded,
            "Failed" => Phase::Failed,
            "Deleting" => Phase::Deleting,
            "Terminating" => Phase::Terminating,
            _ => Phase::Unknown,
        }
    }

    /// Its API has been up: kubeconfigs, logs and metrics are offered.
    pub fn is_running(self) -> bool {
        matches!(self, Phase::Ready | Phase::Degraded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
            Phase::Terminating => "Terminating",
            Phase::Unknown => "Unknown",
        }
    }
}

/// A status condition of the cluster, as K3k reported it (`metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

fn parse_mode(mode: &str) -> ClusterMode {
    match mode {
        "shared" => ClusterMode::Shared,
        "hcp" => ClusterMode::Hcp,
        _ => ClusterMode::Virtual,
    }
}

/// A cluster as lists show it: only the columns a list needs. Decoding 100 full rows (their
/// conditions JSON, TLS names, …) was a sixth of the CPU of a signed-in `/clusters` page
/// (`server/benches/ssr.rs`).
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct ClusterListing {
    pub id: uuid::Uuid,
    pub name: String,
    pub phase: String,
    pub status_message: Option<String>,
    pub endpoint: Option<String>,
    pub mode: String,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ClusterListing {
    /// The columns a listing reads.
    pub(crate) const COLUMNS: [clusters::Column; 11] = [
        clusters::Column::Id,
        clusters::Column::Name,
        clusters::Column::Phase,
        clusters::Column::StatusMessage,
        clusters::Column::Endpoint,
        clusters::Column::Mode,
        clusters::Column::Servers,
        clusters::Column::Agents,
        clusters::Column::Version,
        clusters::Column::CreatedAt,
        clusters::Column::ExpiresAt,
    ];

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }

    pub fn mode(&self) -> ClusterMode {
        parse_mode(&self.mode)
    }
}

impl clusters::Model {
    /// It was Ready and no server answers now (one is being replaced or restarting).
    pub fn server_restarting(&self) -> bool {
        self.phase() == Phase::Degraded
            && self.status_message.as_deref() == Some(super::reconcile::SERVER_RESTARTING)
    }

    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }

    pub fn mode(&self) -> ClusterMode {
        parse_mode(&self.mode)
    }

    pub fn persistence(&self) -> PersistenceMode {
        match self.persistence.as_str() {
            "ephemeral" => PersistenceMode::Ephemeral,
            _ => PersistenceMode::Dynamic,
        }
    }

    /// The extra names and addresses of the cluster's certificate.
    pub fn tls_sans(&self) -> Vec<String> {
        serde_json::from_str(&self.tls_sans).unwrap_or_default()
    }

    /// The conditions K3k last reported (none before the first report).
    pub fn conditions(&self) -> Vec<StatusCondition> {
        self.conditions.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_reads_back_as_written() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.as_str()), phase);
        }
        assert_eq!(Phase::parse("Sleeping"), Phase::Unknown);
    }
}

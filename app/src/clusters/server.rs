//! What only the server sees of clusters: platform rows and host objects as wire types. Every
//! closed set is matched exhaustively, so a new platform variant forces a decision here.

use platform::clusters::{ClusterRecord, HostEvent, Phase};
use platform::host::k3k;

use chrono::{DateTime, Utc};
use platform::access::TokenInfo;

use crate::clusters::api::{
    ClusterDetail, ClusterMode, ClusterPhase, ClusterSummary, ConditionView, EventView, ExpiryView,
    KubeconfigState, KubeconfigView, Persistence,
};

/// "3 min ago" / "in 29 days" for a time seen from `now`.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let span = |s: i64| match s {
        0..60 => "less than a minute".to_owned(),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => {
            let days = s / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    };
    if secs >= 0 {
        format!("{} ago", span(secs))
    } else {
        format!("in {}", span(-secs))
    }
}

impl KubeconfigView {
    pub fn at(token: TokenInfo, now: DateTime<Utc>) -> Self {
        let state = if token.revoked_at.is_some() {
            KubeconfigState::Revoked
        } else if token.expires_at <= now {
            KubeconfigState::Expired
        } else {
            KubeconfigState::Active
        };
        let expires = match state {
            KubeconfigState::Expired => format!("expired {}", relative(token.expires_at, now)),
            _ => relative(token.expires_at, now),
        };
        Self {
            id: token.id.to_string(),
            name: token.name,
            shown: token.shown,
            created: relative(token.created_at, now),
            expires,
            last_used: token.last_used_at.map(|at| match token.last_used_from {
                Some(from) => format!("{} from {from}", relative(at, now)),
                None => relative(at, now),
            }),
            state,
        }
    }
}

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

/// "in 3 h" for an expiry within the warning period.
fn expires_soon(at: Option<DateTime<Utc>>) -> Option<String> {
    let now = Utc::now();
    at.filter(|at| *at - now <= platform::clusters::EXPIRY_WARNING).map(|at| relative(at, now))
}

impl From<&platform::clusters::ClusterListing> for ClusterSummary {
    fn from(row: &platform::clusters::ClusterListing) -> Self {
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
            expires_soon: expires_soon(row.expires_at),
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
            expires_soon: expires_soon(row.expires_at),
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
            last_api_request: row.last_api_request_at.map(|at| relative(at, Utc::now())),
            expiry: row.expires_at.map(|at| ExpiryView {
                at: at.to_rfc3339(),
                words: relative(at, Utc::now()),
                workshop: row.workshop_id.is_some(),
                soon: at - Utc::now() <= platform::clusters::EXPIRY_WARNING,
            }),
            rollout: None,
            change: None,
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

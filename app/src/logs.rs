//! The live log viewer's wire types and server functions (the stream itself is a websocket,
//! `/ws/clusters/{id}/logs`).

pub mod viewer;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, platform, require_cluster};
use crate::error::ApiError;
use crate::metrics::PodRole;

/// A server or agent pod whose logs can be watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodView {
    pub name: String,
    pub role: PodRole,
    pub containers: Vec<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
}

/// One log line on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 with nanoseconds, as the kubelet stamps it.
    pub ts: String,
    pub pod: String,
    pub container: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

#[cfg(feature = "ssr")]
impl LogLine {
    /// A line of `key`'s log as the browser gets it.
    pub fn of(
        key: &platform::stream::logs::LogKey,
        line: &platform::stream::logs::LogLine,
    ) -> Self {
        Self {
            ts: line.ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            pod: key.pod.clone(),
            container: key.container.clone(),
            text: line.text.clone(),
            level: line.level.map(str::to_owned),
        }
    }
}

/// Lines of a previous container's log the viewer shows at most.
pub const PREVIOUS_LINES: i64 = 10_000;

/// The log of a container's previous run, for a pod that restarted.
#[server(prefix = "/api", endpoint = "clusters/previous-log")]
pub async fn previous_log(
    id: String,
    pod: String,
    container: Option<String>,
) -> Result<Vec<LogLine>, ApiError> {
    answer(async {
        let owned = require_cluster(&id).await?;
        let platform = platform()?;
        let permit = platform.clusters().log_read_permit(owned.user.id)?;
        let (key, lines) = platform
            .clusters()
            .previous_log(
                &permit,
                owned.user.id,
                owned.cluster.id,
                &pod,
                container.as_deref(),
                PREVIOUS_LINES,
            )
            .await?;
        Ok(lines.iter().map(|line| LogLine::of(&key, line)).collect())
    })
    .await
}

/// Server → browser messages on `/ws/clusters/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogMessage {
    /// Lines in order, batched (about every 100 ms).
    Lines {
        lines: Vec<LogLine>,
    },
    /// This viewer fell behind and lost `n` lines.
    Skipped {
        n: u64,
    },
    /// Whether the upstream log stream is connected.
    Status {
        connected: bool,
        message: Option<String>,
    },
    Heartbeat,
}

impl LogMessage {
    /// Reads a message as the server sends it. `lines` messages are nearly all the traffic, so
    /// they are read straight into their lines: serde reads an internally tagged enum through a
    /// buffered copy of every field first, which doubled the browser's decoding work.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Lines {
            lines: Vec<LogLine>,
        }
        if text.starts_with(r#"{"type":"lines","#) {
            return serde_json::from_slice::<Lines>(text.as_bytes())
                .map(|m| LogMessage::Lines { lines: m.lines });
        }
        serde_json::from_slice(text.as_bytes())
    }
}

#[server(prefix = "/api", endpoint = "clusters/pods")]
pub async fn cluster_pods(id: String) -> Result<Vec<PodView>, ApiError> {
    answer(async {
        let owned = require_cluster(&id).await?;
        let pods = platform()?.clusters().pods(owned.user.id, owned.cluster.id).await?;
        Ok(pods
            .into_iter()
            .map(|p| PodView {
                name: p.name,
                role: p.role.into(),
                containers: p.containers,
                phase: p.phase,
                ready: p.ready,
                restarts: p.restarts,
            })
            .collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let line = LogLine {
            ts: "2026-12-02T07:57:30.466753123Z".into(),
            pod: "k3k-a-server-0".into(),
            container: "k3k-a-server".into(),
            text: r#"{"type":"lines","level":"info"} and a \"quote\""#.into(),
            level: Some("info".into()),
        };
        let messages = [
            LogMessage::Lines { lines: vec![line.clone(), LogLine { level: None, ..line }] },
            LogMessage::Lines { lines: vec![] },
            LogMessage::Skipped { n: 7 },
            LogMessage::Status { connected: false, message: Some("gone".into()) },
            LogMessage::Heartbeat,
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(LogMessage::from_json(&text).unwrap(), message, "{text}");
        }
        assert!(LogMessage::from_json(r#"{"type":"lines","lines":[{"ts":1}]}"#).is_err());
    }
}

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

/// How severe a line says it is (logfmt `level=`, JSON `"level":` or klog's first letter); on
/// the wire, its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl Level {
    /// The level's name, as on the wire and in the row's `level-…` class.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    const ALL: [Level; 6] =
        [Level::Trace, Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Fatal];

    /// The level a name stands for (the names `as_str` gives).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == name)
    }
}

// By hand rather than derived: the derived enum reader costs the browser's bundle more.
impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(deserializer)?;
        Self::from_name(name).ok_or_else(|| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(name), &"a level")
        })
    }
}

/// One log line. On the wire it is an array, `[ts, text, level]` (`level` null when the line
/// states none), not an object: a viewer takes in up to 100,000 of them, and each field name
/// and each string the browser would not use costs it bytes to receive, parse and allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339 with nanoseconds, as the kubelet stamps it.
    pub ts: String,
    pub text: String,
    pub level: Option<Level>,
}

impl Serialize for LogLine {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.ts, &self.text, self.level).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LogLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (ts, text, level) = Deserialize::deserialize(deserializer)?;
        Ok(Self { ts, text, level })
    }
}

#[cfg(feature = "ssr")]
impl LogLine {
    /// A line of a log as the browser gets it.
    pub fn of(line: &platform::stream::logs::LogLine) -> Self {
        Self {
            ts: line.ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            text: line.text.clone(),
            level: line.level.and_then(Level::from_name),
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
        let (_, lines) = platform
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
        Ok(lines.iter().map(LogLine::of).collect())
    })
    .await
}

/// Server → browser messages on `/ws/clusters/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogMessage {
    /// Lines in order, batched (about every 100 ms). The socket follows one container, so its
    /// lines do not name it.
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
            text: r#"{"type":"lines","level":"info"} and a \"quote\""#.into(),
            level: Some(Level::Info),
        };
        let lines = |lines| LogMessage::Lines { lines };
        let messages = [
            lines(vec![line.clone(), LogLine { level: None, ..line.clone() }]),
            lines(vec![]),
            LogMessage::Skipped { n: 7 },
            LogMessage::Status { connected: false, message: Some("gone".into()) },
            LogMessage::Heartbeat,
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(LogMessage::from_json(&text).unwrap(), message, "{text}");
        }
        assert!(LogMessage::from_json(r#"{"type":"lines","lines":[{"ts":1}]}"#).is_err());
        assert!(LogMessage::from_json(r#"{"type":"lines","lines":[["t"]]}"#).is_err());
    }

    #[test]
    fn a_line_is_an_array_on_the_wire() {
        let line = LogLine { ts: "t".into(), text: "a \"b\"".into(), level: Some(Level::Warning) };
        assert_eq!(serde_json::to_string(&line).unwrap(), r#"["t","a \"b\"","warning"]"#);
        let plain = LogLine { level: None, ..line };
        assert_eq!(serde_json::to_string(&plain).unwrap(), r#"["t","a \"b\"",null]"#);
        // Every level the platform reads from a line has a name here.
        for name in ["trace", "debug", "info", "warning", "error", "fatal"] {
            assert_eq!(Level::from_name(name).map(Level::as_str), Some(name));
        }
        assert_eq!(Level::from_name("notice"), None);
    }
}

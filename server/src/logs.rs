//! Log routes: the live log websocket and the download.

use std::sync::Arc;
use std::time::Duration;

use app::logs::{LogLine, LogMessage};
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use platform::clusters::ClusterError;
use platform::stream::logs::{newest_lines, LogKey, LogSubscription};
use serde::Deserialize;
use tokio::time::Instant;
use tower_sessions::Session;
use uuid::Uuid;

use crate::auth::current_user;
use crate::reply::{lean, plain, send_json, HEARTBEAT};
use crate::startup::AppState;

const BATCH: Duration = Duration::from_millis(100);
/// Lines in one websocket message at most.
const MESSAGE_LINES: usize = 500;
/// A download is cut at this size.
pub const DOWNLOAD_LIMIT_BYTES: i64 = 8 * 1024 * 1024;
/// At most this many of the newest lines are read for a download, then cut to the size limit.
const DOWNLOAD_READ_LINES: i64 = 200_000;

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    pod: String,
    #[serde(default)]
    container: Option<String>,
    /// Lines of history to start with: a number, or "all" for everything retained.
    #[serde(default)]
    tail: Option<String>,
    /// Resume after this line (RFC 3339, as sent), having seen `seen` lines with this timestamp.
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    seen: Option<usize>,
    /// Download the previous run of the container (after a restart).
    #[serde(default)]
    previous: Option<bool>,
}

fn refusal(error: ClusterError) -> Response {
    match error {
        ClusterError::NotFound => plain(StatusCode::NOT_FOUND, "Not found."),
        ClusterError::Host(error) => {
            tracing::warn!(%error, "logs: host call failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "The host cluster is not reachable right now.")
        }
        other => {
            tracing::warn!(error = %other, "logs: refused");
            plain(StatusCode::BAD_REQUEST, &other.to_string())
        }
    }
}

/// Who asks, for which cluster's pod: the same answer for a stranger's cluster as for none.
async fn target(
    state: &AppState,
    session: Session,
    id: &str,
    query: &LogQuery,
) -> Result<LogKey, Response> {
    let Some(user) = current_user(session, &state.platform).await else {
        return Err(plain(StatusCode::UNAUTHORIZED, "Please sign in to continue."));
    };
    let Some(clusters) = state.platform.clusters() else {
        return Err(plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured."));
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return Err(plain(StatusCode::NOT_FOUND, "Not found."));
    };
    clusters.log_key(user.id, id, &query.pod, query.container.as_deref()).await.map_err(refusal)
}

/// `GET /ws/clusters/{id}/logs?pod=&container=&tail=&since=&seen=`
pub async fn live(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let key = match target(&state, session, &id, &query).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let Some(hub) = state.platform.logs().cloned() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    };
    let tail = match query.tail.as_deref() {
        Some("all") => None,
        Some(n) => Some(n.parse::<usize>().unwrap_or(100)),
        None => Some(100),
    };
    let after = query
        .since
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|ts| (ts.with_timezone(&Utc), query.seen.unwrap_or(1)));
    lean(upgrade).on_upgrade(move |socket| async move {
        let subscription = hub.subscribe(key.clone(), tail, after);
        stream(socket, key, subscription).await;
    })
}

async fn stream(mut socket: WebSocket, key: LogKey, mut subscription: LogSubscription) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut sent_at = Instant::now().checked_sub(BATCH).unwrap_or_else(Instant::now);
    loop {
        tokio::select! {
            () = subscription.changed() => {
                // At most one batch every BATCH: lines that arrive meanwhile join it.
                tokio::time::sleep_until(sent_at + BATCH).await;
                if !send_news(&mut socket, &key, &mut subscription).await {
                    return;
                }
                sent_at = Instant::now();
            }
            _ = heartbeat.tick() => {
                if !send_json(&mut socket, &LogMessage::Heartbeat).await {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends everything the viewer has not had yet: lost lines, new lines (in messages of at most
/// `MESSAGE_LINES`), then a status change. `false` when the socket is gone.
async fn send_news(
    socket: &mut WebSocket,
    key: &LogKey,
    subscription: &mut LogSubscription,
) -> bool {
    loop {
        let taken = subscription.take(MESSAGE_LINES);
        if taken.skipped > 0 && !send_json(socket, &LogMessage::Skipped { n: taken.skipped }).await
        {
            return false;
        }
        let more = taken.lines.len() == MESSAGE_LINES;
        if !taken.lines.is_empty()
            && socket.send(Message::Text(lines_message(key, &taken.lines).into())).await.is_err()
        {
            return false;
        }
        if let Some((connected, message)) = taken.status {
            if !send_json(socket, &LogMessage::Status { connected, message }).await {
                return false;
            }
        }
        if !more {
            return true;
        }
    }
}

/// `LogMessage::Lines` for `lines`, built from each line's wire encoding, which is made once for
/// all viewers of the upstream instead of once per viewer.
fn lines_message(key: &LogKey, lines: &[Arc<platform::stream::logs::LogLine>]) -> String {
    let mut text = String::with_capacity(32 + lines.len() * 256);
    text.push_str(r#"{"type":"lines","lines":["#);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        // A struct of strings always serialises.
        text.push_str(
            line.encoded(|l| serde_json::to_string(&LogLine::of(key, l)).unwrap_or_default()),
        );
    }
    text.push_str("]}");
    text
}

/// `GET /api/clusters/{id}/logs/download?pod=&container=`: the retained log as a text file, its
/// newest `DOWNLOAD_LIMIT_BYTES` (with a first line saying what was left out, if anything).
pub async fn download(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let key = match target(&state, session, &id, &query).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let Some(clusters) = state.platform.clusters() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "No host cluster is configured.");
    };
    let pods: Api<Pod> = Api::namespaced(clusters.host().client(), &key.namespace);
    let previous = query.previous.unwrap_or(false);
    let params = LogParams {
        container: Some(key.container.clone()),
        timestamps: true,
        // The newest lines (the host's own `limitBytes` would keep the oldest); the line count
        // only bounds what is read for a log far over the limit.
        tail_lines: Some(DOWNLOAD_READ_LINES),
        previous,
        ..Default::default()
    };
    let text = match pods.log_stream(&key.pod, &params).await {
        Ok(reader) => {
            let (kept, cut) = newest_lines(reader, DOWNLOAD_LIMIT_BYTES as usize).await;
            let mut text = String::new();
            if cut > 0 {
                text = format!(
                    "[kraft: {cut} bytes of older lines left out; a download holds the newest {} MiB]\n",
                    DOWNLOAD_LIMIT_BYTES >> 20
                );
            }
            for line in kept {
                text.push_str(&line);
                text.push('\n');
            }
            text
        }
        Err(kube::Error::Api(status)) if previous && status.code == 400 => {
            return plain(
                StatusCode::NOT_FOUND,
                "This container has not restarted, so there is no previous log.",
            );
        }
        Err(error) => {
            tracing::warn!(%error, "log download failed");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The host cluster is not reachable right now.",
            );
        }
    };
    let filename = if previous {
        format!("{}-{}-previous.log", key.pod, key.container)
    } else {
        format!("{}-{}.log", key.pod, key.container)
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from(text),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_message_is_what_serde_would_send() {
        let key = LogKey { namespace: "ns".into(), pod: "p-0".into(), container: "c".into() };
        let lines: Vec<_> =
            ["level=info msg=\"a \\\"quoted\\\" word\"", "plain ünïcode", r#"{"level":"warn"}"#]
                .iter()
                .map(|t| Arc::new(platform::stream::logs::LogLine::new(Utc::now(), t, 10_000)))
                .collect();
        let built = lines_message(&key, &lines);
        let expected =
            LogMessage::Lines { lines: lines.iter().map(|l| LogLine::of(&key, l)).collect() };
        assert_eq!(serde_json::from_str::<LogMessage>(&built).unwrap(), expected);
        assert_eq!(built, serde_json::to_string(&expected).unwrap());
        // Encoded once: a second message reuses the lines' encodings.
        assert_eq!(lines_message(&key, &lines), built);
    }
}

//! Log routes: the live log websocket and the download.

use std::collections::VecDeque;
use std::sync::Arc;

use app::api::ssr::OwnedCluster;
use app::error::ApiError;
use app::logs::{LogLine, LogMessage};
use axum::body::Body;
use axum::extract::ws::{Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::stream::{self, Stream};
use platform::caps::Permit;
use platform::stream::logs::{Batch, LogSubscription};
use platform::Platform;
use serde::Deserialize;

pub use platform::clusters::DOWNLOAD_LIMIT_BYTES;

use crate::live::{self, json, SessionGuard};

/// Lines in one websocket message at most. Each socket keeps the largest frame it sent (its
/// write buffer), so messages stay smallish: about 17 KiB of typical lines (about 170 bytes each
/// as `[ts, text, level]`). Not much smaller: at 50 (of the older, larger lines) a busy log made
/// so many messages that 1,000 viewers no longer kept up on a core (`cargo bench --bench logs`:
/// 63-86 % delivered instead of 100 %). Not larger either: measured at 150, 1,000 viewers with
/// kraft pinned to one core got 92.0 % instead of 95.2 %, and kraft's RSS was 116 MiB instead of
/// 101 (one run each, 2026-12-07).
const MESSAGE_LINES: usize = 100;

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

/// `GET /ws/clusters/{id}/logs?pod=&container=&tail=&since=&seen=`
pub async fn live(
    State(platform): State<Platform>,
    owned: OwnedCluster,
    Query(query): Query<LogQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let key = platform
        .clusters()
        .log_key(owned.user.id, owned.cluster.id, &query.pod, query.container.as_deref())
        .await?;
    // Past the user's cap the handshake gets 429 before anything is opened upstream.
    let permit = platform.clusters().log_view_permit(owned.user.id)?;
    let guard = SessionGuard::new(&platform, &owned.session).await?;
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
    let subscription = platform.logs().subscribe(key, tail, after);
    Ok(live::serve("logs", upgrade, guard, follow(subscription, permit)))
}

/// A followed log as messages: the tail at once, then at most one batch per tick of the
/// upstream's batch grid (lines that arrive meanwhile join it), each batch as lost lines, new
/// lines (in messages of at most `MESSAGE_LINES`), then a status change. Viewers that keep up
/// send the very same messages, made once (see `LogSubscription::take_batch`): a thousand viewers
/// of a busy log hold one copy of what is on its way, not a thousand. The user's permit for the
/// view lives as long as the stream (the socket).
fn follow(subscription: LogSubscription, permit: Permit) -> impl Stream<Item = Utf8Bytes> + Send {
    let state = (subscription, true, VecDeque::new(), permit);
    stream::unfold(state, |(mut subscription, mut first, mut queue, permit)| async move {
        while queue.is_empty() {
            subscription.changed().await;
            if !first {
                tokio::time::sleep_until(subscription.next_batch_at()).await;
            }
            news(&mut subscription, &mut queue, std::mem::take(&mut first));
        }
        let next = queue.pop_front()?;
        Some((next, (subscription, first, queue, permit)))
    })
}

/// Everything the viewer has not had yet, as messages: on the `first` take all of it (the
/// viewer's own tail), after that up to the current batch tick.
fn news(subscription: &mut LogSubscription, queue: &mut VecDeque<Utf8Bytes>, first: bool) {
    loop {
        let taken = if first {
            let taken = subscription.take(MESSAGE_LINES);
            let full = taken.lines.len() == MESSAGE_LINES;
            let encoded =
                (!taken.lines.is_empty()).then(|| Utf8Bytes::from(lines_message(&taken.lines)));
            Batch { skipped: taken.skipped, encoded, full, status: taken.status }
        } else {
            subscription.take_batch(MESSAGE_LINES, |lines| Utf8Bytes::from(lines_message(lines)))
        };
        if taken.skipped > 0 {
            metrics::counter!(platform::observe::LOG_LINES_SKIPPED).increment(taken.skipped);
            queue.push_back(json(&LogMessage::Skipped { n: taken.skipped }).into());
        }
        if let Some(encoded) = taken.encoded {
            queue.push_back(encoded);
        }
        if let Some((connected, message)) = taken.status {
            queue.push_back(json(&LogMessage::Status { connected, message }).into());
        }
        if !taken.full {
            return;
        }
    }
}

/// `LogMessage::Lines` for `lines`, built from each line's wire encoding, which is made once for
/// all viewers of the upstream instead of once per viewer.
fn lines_message(lines: &[Arc<platform::stream::logs::LogLine>]) -> String {
    let mut text = String::with_capacity(32 + lines.len() * 192);
    text.push_str(r#"{"type":"lines","lines":["#);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        // A line always serialises.
        text.push_str(line.encoded(|l| serde_json::to_string(&LogLine::of(l)).unwrap_or_default()));
    }
    text.push_str("]}");
    text
}

/// `GET /api/clusters/{id}/logs/download?pod=&container=&previous=`: the retained log as a text
/// file, its newest `DOWNLOAD_LIMIT_BYTES` (with a first line saying what was left out, if anything).
pub async fn download(
    State(platform): State<Platform>,
    owned: OwnedCluster,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let permit = platform.clusters().log_read_permit(owned.user.id)?;
    let download = platform
        .clusters()
        .download_log(
            &permit,
            owned.user.id,
            owned.cluster.id,
            &query.pod,
            query.container.as_deref(),
            query.previous.unwrap_or(false),
        )
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", download.filename()),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        held_until_sent(download.text, permit),
    )
        .into_response())
}

/// `text` as a body that holds `permit` until the body has been read to its end (or dropped):
/// a slow client keeps its place under the cap while its download is still in memory.
fn held_until_sent(text: String, permit: Permit) -> Body {
    let chunks = stream::unfold((Some(text), permit), |(text, permit)| async move {
        let text = text?;
        Some((Ok::<_, std::convert::Infallible>(text), (None, permit)))
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_message_is_what_serde_would_send() {
        let lines: Vec<_> =
            ["level=info msg=\"a \\\"quoted\\\" word\"", "plain ünïcode", r#"{"level":"warn"}"#]
                .iter()
                .map(|t| Arc::new(platform::stream::logs::LogLine::new(Utc::now(), t, 10_000)))
                .collect();
        let built = lines_message(&lines);
        let expected = LogMessage::Lines { lines: lines.iter().map(|l| LogLine::of(l)).collect() };
        assert_eq!(serde_json::from_str::<LogMessage>(&built).unwrap(), expected);
        assert_eq!(built, serde_json::to_string(&expected).unwrap());
        // Encoded once: a second message reuses the lines' encodings.
        assert_eq!(lines_message(&lines), built);
    }

    #[test]
    fn every_level_the_platform_reads_reaches_the_browser() {
        // Each level `platform::stream::logs::level_of` can name, from every way of stating it.
        let texts = [
            "level=trace msg=a",
            "level=debug msg=a",
            "I1122 03:00:00.000000 1 a.go:1] a",
            r#"{"level":"warn"}"#,
            "E1122 03:00:00.000000 1 a.go:1] a",
            "level=panic msg=a",
            "no level here",
        ];
        let levels: Vec<_> = texts
            .iter()
            .map(|t| platform::stream::logs::LogLine::new(Utc::now(), t, 10_000))
            .map(|l| (l.level, LogLine::of(&l).level.map(app::logs::Level::as_str)))
            .collect();
        for (platform, browser) in &levels {
            assert_eq!(platform, browser);
        }
        let named: Vec<_> = levels.iter().filter_map(|(p, _)| *p).collect();
        assert_eq!(named, ["trace", "debug", "info", "warning", "error", "fatal"]);
    }
}

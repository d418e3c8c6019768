//! `GET /workshops/{id}/seats.csv`: a workshop's seat list for its organizer, as CSV (RFC 4180).
//! Anyone else gets the same 404 as for a missing workshop.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use app::workshops::api::{board_and_clusters, Board, BoardMessage};
use axum::extract::{Path, State};
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use platform::clusters::ClusterChange;
use platform::stream::metrics::{ClusterTarget, MetricsEvent, Received};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_stream::StreamMap;
use uuid::Uuid;

use crate::live::json;
use axum::response::{IntoResponse, Response};
use http::header;
use platform::Platform;

use app::api::ssr::CurrentUser;
use app::error::ApiError;

pub async fn seats_csv(
    State(platform): State<Platform>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: uuid::Uuid = id.trim().parse().map_err(|_| ApiError::NotFound)?;
    let (workshop, seats) = platform.workshops().board(current.user.id, id).await?;
    let mut csv = String::from("attendee,joined_at,cluster,phase,last_api_request_at\r\n");
    for seat in &seats {
        let cluster = seat.cluster.as_ref();
        let fields = [
            seat.attendee.clone(),
            seat.seat.joined_at.to_rfc3339(),
            cluster.map(|c| c.name.clone()).unwrap_or_default(),
            cluster.map(|c| c.phase.clone()).unwrap_or_else(|| "Deleted".into()),
            cluster.and_then(|c| c.last_api_request_at).map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| field(f)).collect();
        csv.push_str(&row.join(","));
        csv.push_str("\r\n");
    }
    let name: String = workshop
        .title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}-seats.csv\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        csv,
    )
        .into_response())
}

/// One CSV field: quoted when it must be, and never read as a formula by a spreadsheet (a
/// leading `=`, `+`, `-` or `@` gets a `'`).
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// `GET /ws/workshops/{id}`: the organizer's board, live. The board is read again when a
/// cluster changes (at most once a second, however many change) and every 10 s (its "3 min
/// ago"s); each seat cluster's usage comes from the metrics hub, so any number of boards still
/// make one upstream poll per cluster per interval.
pub async fn live(
    State(platform): State<Platform>,
    current: CurrentUser,
    Path(id): Path<String>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let id: Uuid = id.trim().parse().map_err(|_| ApiError::NotFound)?;
    // A stranger gets the same 404 as for a missing workshop, before any upgrade.
    let first = board_and_clusters(&platform, current.user.id, id).await?;
    let guard = crate::live::SessionGuard::new(&platform, &current.session).await?;
    let mut board = LiveBoard {
        changes: platform.clusters().subscribe(),
        platform,
        organizer: current.user.id,
        workshop: id,
        followed: StreamMap::new(),
        queue: VecDeque::new(),
        dirty: false,
        last_read: Instant::now(),
    };
    board.show(first);
    let feed = stream::unfold(board, |mut board| async move {
        let next = board.next().await?;
        Some((next, board))
    });
    Ok(crate::live::serve("workshop-board", upgrade, guard, feed))
}

/// The least time between two reads of a board.
const BOARD_SETTLE: Duration = Duration::from_secs(1);
/// A board is read again at least this often (its relative times move on).
const BOARD_REFRESH: Duration = Duration::from_secs(10);

struct LiveBoard {
    platform: Platform,
    organizer: Uuid,
    workshop: Uuid,
    changes: broadcast::Receiver<ClusterChange>,
    followed: StreamMap<Uuid, BoxStream<'static, Received>>,
    queue: VecDeque<String>,
    /// Some cluster changed since the last read.
    dirty: bool,
    last_read: Instant,
}

impl LiveBoard {
    /// Queues `board` and follows the usage of its seats' clusters (and only theirs), starting
    /// with what the hub already remembers.
    fn show(&mut self, (board, clusters): (Board, Vec<(Uuid, String, String)>)) {
        self.last_read = Instant::now();
        self.dirty = false;
        self.queue.push_back(json(&BoardMessage::Board { board }));
        let current: HashSet<Uuid> = clusters.iter().map(|(id, _, _)| *id).collect();
        let gone: Vec<Uuid> =
            self.followed.keys().filter(|id| !current.contains(id)).copied().collect();
        for id in gone {
            self.followed.remove(&id);
        }
        for (id, namespace, name) in clusters {
            if self.followed.contains_key(&id) {
                continue;
            }
            let mut subscription =
                self.platform.metrics().subscribe(ClusterTarget::new(namespace, name));
            let samples: Vec<(f64, u64)> =
                subscription.history.iter().map(|s| (s.cpu_millicores, s.memory_bytes)).collect();
            if !samples.is_empty() {
                self.queue
                    .push_back(json(&BoardMessage::History { cluster: id.to_string(), samples }));
            }
            subscription.history = Vec::new();
            subscription.long_history = Vec::new();
            let updates = stream::unfold(subscription, |mut subscription| async move {
                let received = subscription.recv().await?;
                Some((received, subscription))
            })
            .boxed();
            self.followed.insert(id, updates);
        }
    }

    /// The next message; `None` ends the view (the board cannot be read: the workshop went, or
    /// the database is away; the browser reconnects and gets its answer).
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Some(message);
            }
            let due = if self.dirty {
                self.last_read + BOARD_SETTLE
            } else {
                self.last_read + BOARD_REFRESH
            };
            tokio::select! {
                () = tokio::time::sleep_until(due) => {
                    match board_and_clusters(&self.platform, self.organizer, self.workshop).await {
                        Ok(read) => self.show(read),
                        Err(error) => {
                            tracing::debug!(%error, "workshop board: cannot read the board");
                            return None;
                        }
                    }
                }
                change = self.changes.recv() => match change {
                    // Any cluster: a join makes (or hands over) one the board does not know yet.
                    Ok(_) | Err(RecvError::Lagged(_)) => self.dirty = true,
                    Err(RecvError::Closed) => return None,
                },
                Some((cluster, received)) = self.followed.next(), if !self.followed.is_empty() => {
                    if let Received::Event(MetricsEvent::Sample(s)) = received {
                        return Some(json(&BoardMessage::Sample {
                            cluster: cluster.to_string(),
                            cpu_millicores: s.cpu_millicores,
                            memory_bytes: s.memory_bytes,
                        }));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_quoted_and_never_formulas() {
        assert_eq!(super::field("ada"), "ada");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::field("=cmd()"), "'=cmd()");
    }
}

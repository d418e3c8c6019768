//! The one websocket push loop every live view uses (cluster list, logs, metrics, dashboard).
//!
//! A live view is a *feed* (a stream of JSON texts for the browser) and a *guard* (the session
//! that opened it). The loop sends the feed, a heartbeat when the socket is idle, and closes the
//! socket with `4401 signed out` as soon as the session no longer holds: it re-checks at every
//! heartbeat and whenever the account service says some session of the user ended (sign-out,
//! "sign out everywhere", a password change, account deletion). A socket outlives the request
//! that authenticated it, so checking once at the upgrade is not enough.
//!
//! Generic over the socket's two halves so it is tested with channels, without sockets.

use std::future::Future;
use std::time::Duration;

use app::api::{SIGNED_OUT_CLOSE_CODE, SIGNED_OUT_REASON};
use app::error::ApiError;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::response::Response;
use futures::{Sink, SinkExt, Stream, StreamExt};
use platform::accounts::{AccountSession, LiveSession};
use platform::Platform;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// How often an idle websocket gets a heartbeat (proxies cut sockets idle for about a minute), and
/// so the longest a socket outlives its session when the revocation happened on another replica.
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// Every live view's heartbeat message (`{"type":"heartbeat"}` in each message enum).
pub const HEARTBEAT_MESSAGE: &str = r#"{"type":"heartbeat"}"#;

/// The session a live view runs under.
pub trait Guard: Send {
    /// Resolves when the session may have ended: time to re-check.
    fn nudged(&mut self) -> impl Future<Output = ()> + Send;
    /// Whether the session still holds.
    fn still_valid(&mut self) -> impl Future<Output = bool> + Send;
}

/// A message as the JSON text the browser reads (our message types always serialise).
pub fn json(message: &impl Serialize) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Why the loop ended (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The browser closed the socket or went away.
    ClientGone,
    /// The feed ended (its source closed); the socket was closed normally.
    FeedEnded,
    /// The session ended; the socket was closed with `4401 signed out`.
    SignedOut,
}

/// Pushes `feed` to `sink` until the client goes, the feed ends or the session ends.
pub async fn push<Si, St, E, F, G>(
    mut sink: Si,
    mut incoming: St,
    feed: F,
    mut guard: G,
    heartbeat: Duration,
) -> Ended
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    F: Stream<Item = String>,
    G: Guard,
{
    let mut feed = std::pin::pin!(feed);
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let outgoing = tokio::select! {
            item = feed.next() => match item {
                Some(text) => text,
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ended::FeedEnded;
                }
            },
            _ = ticker.tick() => {
                if !guard.still_valid().await {
                    return signed_out(&mut sink).await;
                }
                HEARTBEAT_MESSAGE.to_owned()
            }
            () = guard.nudged() => {
                if !guard.still_valid().await {
                    return signed_out(&mut sink).await;
                }
                continue;
            }
            received = incoming.next() => match received {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::ClientGone,
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(Message::Text(outgoing.into())).await.is_err() {
            return Ended::ClientGone;
        }
    }
}

async fn signed_out<Si: Sink<Message> + Unpin>(sink: &mut Si) -> Ended {
    let frame = CloseFrame { code: SIGNED_OUT_CLOSE_CODE, reason: SIGNED_OUT_REASON.into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
    Ended::SignedOut
}

/// The guard of a real socket: the account session that opened it, re-checked in the database
/// (so a revocation on another replica counts at the next heartbeat) and nudged by this
/// replica's revocations of the same user (so sign-out here closes the socket at once).
pub struct SessionGuard {
    platform: Platform,
    live: LiveSession,
    revocations: broadcast::Receiver<Uuid>,
}

impl SessionGuard {
    /// For a request's signed-in session; a session without a stored row cannot be followed.
    pub async fn new(platform: &Platform, session: &AccountSession) -> Result<Self, ApiError> {
        // Subscribe first, so a revocation right after the check below is not missed.
        let revocations = platform.accounts().subscribe_revocations();
        let live =
            platform.accounts().live_session(session).await?.ok_or(ApiError::Unauthenticated)?;
        Ok(Self { platform: platform.clone(), live, revocations })
    }
}

impl Guard for SessionGuard {
    async fn nudged(&mut self) {
        loop {
            match self.revocations.recv().await {
                Ok(user) if user == self.live.user_id => return,
                Ok(_) => {}
                // Missed some: one of them may have been ours.
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    async fn still_valid(&mut self) -> bool {
        match self.platform.accounts().still_signed_in(&self.live).await {
            Ok(valid) => valid,
            Err(error) => {
                // A database hiccup should not cut every viewer; the next check decides.
                tracing::warn!(%error, "live view: cannot re-check the session");
                true
            }
        }
    }
}

/// Our websockets push to the browser and read next to nothing, so they get small buffers:
/// tungstenite's defaults (128 KiB read buffer per socket) would make a thousand open dashboards
/// cost over 100 MiB. Frames are written as they are sent.
pub fn lean(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
}

/// Upgrades to a websocket that pushes `feed` under `guard`.
pub fn serve<F>(upgrade: WebSocketUpgrade, guard: SessionGuard, feed: F) -> Response
where
    F: Stream<Item = String> + Send + 'static,
{
    lean(upgrade).on_upgrade(move |socket| async move {
        let (sink, incoming) = socket.split();
        let ended = push(sink, incoming, feed, guard, HEARTBEAT).await;
        tracing::debug!(?ended, "live view ended");
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use futures::channel::mpsc;
    use tokio::sync::Notify;

    use super::*;

    /// A session the test ends by hand.
    #[derive(Clone, Default)]
    struct TestGuard {
        ended: Arc<AtomicBool>,
        nudge: Arc<Notify>,
    }

    impl TestGuard {
        fn end(&self, nudge: bool) {
            self.ended.store(true, Ordering::SeqCst);
            if nudge {
                self.nudge.notify_one();
            }
        }
    }

    impl Guard for TestGuard {
        async fn nudged(&mut self) {
            self.nudge.notified().await;
        }
        async fn still_valid(&mut self) -> bool {
            !self.ended.load(Ordering::SeqCst)
        }
    }

    type Incoming = mpsc::UnboundedSender<Result<Message, std::convert::Infallible>>;

    struct Harness {
        sent: mpsc::UnboundedReceiver<Message>,
        client: Incoming,
        feed: mpsc::UnboundedSender<String>,
        guard: TestGuard,
        task: tokio::task::JoinHandle<Ended>,
    }

    fn start(heartbeat: Duration) -> Harness {
        let (sink, sent) = mpsc::unbounded::<Message>();
        let (client, incoming) = mpsc::unbounded();
        let (feed, feed_rx) = mpsc::unbounded::<String>();
        let guard = TestGuard::default();
        let task = tokio::spawn(push(sink, incoming, feed_rx, guard.clone(), heartbeat));
        Harness { sent, client, feed, guard, task }
    }

    fn text(message: Option<Message>) -> String {
        match message {
            Some(Message::Text(text)) => text.to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_feed_is_sent_in_order_and_an_idle_socket_gets_heartbeats() {
        let mut h = start(Duration::from_secs(25));
        h.feed.unbounded_send("one".into()).unwrap();
        h.feed.unbounded_send("two".into()).unwrap();
        assert_eq!(text(h.sent.next().await), "one");
        assert_eq!(text(h.sent.next().await), "two");
        // Paused time: the next message is the heartbeat, after the interval.
        assert_eq!(text(h.sent.next().await), HEARTBEAT_MESSAGE);
        assert_eq!(text(h.sent.next().await), HEARTBEAT_MESSAGE);
        drop(h.client);
        assert_eq!(h.task.await.unwrap(), Ended::ClientGone);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_closes_the_socket_at_once_with_the_signed_out_code() {
        let mut h = start(Duration::from_secs(25));
        h.feed.unbounded_send("hello".into()).unwrap();
        assert_eq!(text(h.sent.next().await), "hello");
        let before = tokio::time::Instant::now();
        h.guard.end(true);
        match h.sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, SIGNED_OUT_CLOSE_CODE);
                assert_eq!(frame.reason.as_str(), SIGNED_OUT_REASON);
            }
            other => panic!("expected the signed-out close, got {other:?}"),
        }
        assert!(before.elapsed() < Duration::from_secs(1), "closed without waiting");
        assert_eq!(h.task.await.unwrap(), Ended::SignedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_ended_elsewhere_is_found_at_the_next_heartbeat() {
        let mut h = start(Duration::from_secs(25));
        // Ended on "another replica": no nudge reaches this one.
        h.guard.end(false);
        let before = tokio::time::Instant::now();
        match h.sent.next().await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, SIGNED_OUT_CLOSE_CODE),
            other => panic!("expected the signed-out close, got {other:?}"),
        }
        assert!(before.elapsed() <= Duration::from_secs(25));
        assert_eq!(h.task.await.unwrap(), Ended::SignedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_nudge_for_a_session_that_still_holds_changes_nothing() {
        let mut h = start(Duration::from_secs(25));
        h.guard.nudge.notify_one();
        h.feed.unbounded_send("still here".into()).unwrap();
        assert_eq!(text(h.sent.next().await), "still here");
        drop(h.client);
        assert_eq!(h.task.await.unwrap(), Ended::ClientGone);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_feed_closes_normally_and_a_client_close_stops_the_loop() {
        let mut h = start(Duration::from_secs(25));
        drop(h.feed);
        assert!(matches!(h.sent.next().await, Some(Message::Close(None))));
        assert_eq!(h.task.await.unwrap(), Ended::FeedEnded);

        let h = start(Duration::from_secs(25));
        h.client.unbounded_send(Ok(Message::Close(None))).unwrap();
        assert_eq!(h.task.await.unwrap(), Ended::ClientGone);
        // The feed's receiver went with the loop.
        assert!(h.feed.unbounded_send("late".into()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_ends_the_loop_when_sending_fails() {
        let mut h = start(Duration::from_secs(25));
        h.sent.close();
        h.feed.unbounded_send("nobody reads this".into()).unwrap();
        assert_eq!(h.task.await.unwrap(), Ended::ClientGone);
    }

    #[test]
    fn every_live_view_sends_the_same_heartbeat() {
        assert_eq!(json(&app::clusters::ClustersMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::logs::LogMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::metrics::MetricsMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::metrics::DashboardMessage::Heartbeat), HEARTBEAT_MESSAGE);
    }
}

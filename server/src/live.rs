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
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::response::Response;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use platform::accounts::{AccountSession, LiveSession};
use platform::Platform;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// How often an idle websocket gets a heartbeat (proxies cut sockets idle for about a minute), and
/// so the longest a socket outlives its session when the revocation happened on another replica.
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// The close code a live view gets when KRaft shuts down (RFC 6455 §7.4.1 via the IANA registry:
/// 1012 Service Restart); the browser reconnects, to another replica or this one restarted, and
/// a log view resumes where it was.
pub const RESTART_CLOSE_CODE: u16 = 1012;
pub const RESTART_REASON: &str = "KRaft is restarting";

/// Every live view's heartbeat message (`{"type":"heartbeat"}` in each message enum).
pub const HEARTBEAT_MESSAGE: &str = r#"{"type":"heartbeat"}"#;

/// The session a live view runs under.
pub trait Guard: Send {
    /// Resolves when the session may have ended: time to re-check.
    fn nudged(&mut self) -> impl Future<Output = ()> + Send;
    /// Whether the session still holds. The check owns what it needs: the loop keeps serving the
    /// feed while it runs (a feed suspended mid-query may hold the database connection the check
    /// needs, e.g. SQLite's only one).
    fn still_valid(&self) -> impl Future<Output = bool> + Send + 'static;
    /// Resolves when the server begins to shut down.
    fn stopping(&self) -> impl Future<Output = ()> + Send + 'static;
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
    /// The server is shutting down; the socket was closed with `1012 KRaft is restarting`.
    ServerStopping,
}

/// Pushes `feed` to `sink` until the client goes, the feed ends or the session ends.
pub async fn push<Si, St, E, F, T, G>(
    mut sink: Si,
    mut incoming: St,
    feed: F,
    mut guard: G,
    heartbeat: Duration,
) -> Ended
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    F: Stream<Item = T>,
    T: Into<Utf8Bytes>,
    G: Guard,
{
    let mut feed = std::pin::pin!(feed);
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    // The session check in flight, if any.
    let mut check: Option<std::pin::Pin<Box<dyn Future<Output = bool> + Send>>> = None;
    loop {
        let outgoing = tokio::select! {
            item = feed.next() => match item {
                Some(text) => text.into(),
                // A feed may end because the server is stopping (its hub closes): the browser
                // must still be told to reconnect, whichever branch `select!` polled first.
                None if guard.stopping().now_or_never().is_some() => {
                    return restarting(&mut sink).await;
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ended::FeedEnded;
                }
            },
            valid = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                check = None;
                if !valid {
                    return signed_out(&mut sink).await;
                }
                continue;
            }
            _ = ticker.tick() => {
                if check.is_none() {
                    check = Some(Box::pin(guard.still_valid()));
                }
                Utf8Bytes::from_static(HEARTBEAT_MESSAGE)
            }
            () = guard.stopping() => return restarting(&mut sink).await,
            () = guard.nudged() => {
                if check.is_none() {
                    check = Some(Box::pin(guard.still_valid()));
                }
                continue;
            }
            received = incoming.next() => match received {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::ClientGone,
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(Message::Text(outgoing)).await.is_err() {
            return Ended::ClientGone;
        }
    }
}

async fn restarting<Si: Sink<Message> + Unpin>(sink: &mut Si) -> Ended {
    let frame = CloseFrame { code: RESTART_CLOSE_CODE, reason: RESTART_REASON.into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
    Ended::ServerStopping
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
    /// The view is an admin's: it ends when the account stops being one.
    admin: bool,
}

impl SessionGuard {
    /// For a request's signed-in session; a session without a stored row cannot be followed.
    pub async fn new(platform: &Platform, session: &AccountSession) -> Result<Self, ApiError> {
        // Subscribe first, so a revocation right after the check below is not missed.
        let revocations = platform.accounts().subscribe_revocations();
        let live =
            platform.accounts().live_session(session).await?.ok_or(ApiError::Unauthenticated)?;
        Ok(Self { platform: platform.clone(), live, revocations, admin: false })
    }

    /// For an admin's view: the session must also stay an admin's.
    pub fn admin_only(mut self) -> Self {
        self.admin = true;
        self
    }
}

impl Guard for SessionGuard {
    fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.platform.stopped()
    }

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

    fn still_valid(&self) -> impl Future<Output = bool> + Send + 'static {
        let (platform, live, admin) = (self.platform.clone(), self.live.clone(), self.admin);
        async move {
            let accounts = platform.accounts();
            let checked = match accounts.still_signed_in(&live).await {
                Ok(true) if admin => accounts
                    .user(live.user_id)
                    .await
                    .map(|user| user.is_some_and(|u| u.role == platform::accounts::Role::Admin)),
                other => other,
            };
            checked.unwrap_or_else(|error| {
                // A database hiccup should not cut every viewer; the next check decides.
                tracing::warn!(%error, "live view: cannot re-check the session");
                true
            })
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

/// Upgrades to a websocket of `kind` (one of [`platform::observe::WEBSOCKET_KINDS`]) that pushes
/// `feed` under `guard`.
pub fn serve<F, T>(
    kind: &'static str,
    upgrade: WebSocketUpgrade,
    guard: SessionGuard,
    feed: F,
) -> Response
where
    F: Stream<Item = T> + Send + 'static,
    T: Into<Utf8Bytes> + Send + 'static,
{
    // Taken now, not at the upgrade: shutdown must also wait for a view that is upgrading.
    let live_view = guard.platform.live_view();
    lean(upgrade).on_upgrade(move |socket| async move {
        let _live_view = live_view;
        let _open = platform::observe::OpenWebsocket::new(kind);
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
        stop: Arc<Notify>,
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
        fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
            let stop = self.stop.clone();
            async move { stop.notified().await }
        }
        async fn nudged(&mut self) {
            self.nudge.notified().await;
        }
        fn still_valid(&self) -> impl Future<Output = bool> + Send + 'static {
            let ended = self.ended.clone();
            async move { !ended.load(Ordering::SeqCst) }
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
        // The heartbeat goes out as the check starts; the close follows it.
        assert_eq!(text(h.sent.next().await), HEARTBEAT_MESSAGE);
        match h.sent.next().await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, SIGNED_OUT_CLOSE_CODE),
            other => panic!("expected the signed-out close, got {other:?}"),
        }
        assert!(before.elapsed() <= Duration::from_secs(25));
        assert_eq!(h.task.await.unwrap(), Ended::SignedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_closes_the_socket_with_service_restart_so_the_browser_reconnects() {
        let mut h = start(Duration::from_secs(25));
        h.feed.unbounded_send("hello".into()).unwrap();
        assert_eq!(text(h.sent.next().await), "hello");
        h.guard.stop.notify_one();
        match h.sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, RESTART_CLOSE_CODE);
                assert_eq!(frame.reason.as_str(), RESTART_REASON);
            }
            other => panic!("expected the restart close, got {other:?}"),
        }
        assert_eq!(h.task.await.unwrap(), Ended::ServerStopping);
    }

    /// On shutdown the hubs close their feeds too; a loop that sees both at once (it was not
    /// scheduled in between, as under load) must still close with "restart", not a plain close
    /// the browser would not reconnect after. `select!` polls its branches in random order, so
    /// without the check this fails in about half the rounds.
    #[tokio::test(start_paused = true)]
    async fn a_feed_that_ends_because_the_server_stops_still_closes_with_restart() {
        for round in 0..32 {
            let mut h = start(Duration::from_secs(25));
            h.guard.stop.notify_one();
            drop(h.feed);
            match h.sent.next().await {
                Some(Message::Close(Some(frame))) => assert_eq!(frame.code, RESTART_CLOSE_CODE),
                other => panic!("round {round}: expected the restart close, got {other:?}"),
            }
            assert_eq!(h.task.await.unwrap(), Ended::ServerStopping);
        }
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

    /// A guard whose check needs the one permit (think: SQLite's one pooled connection).
    struct PooledGuard {
        pool: Arc<tokio::sync::Semaphore>,
        nudge: Arc<Notify>,
    }

    impl Guard for PooledGuard {
        fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
            std::future::pending()
        }
        async fn nudged(&mut self) {
            self.nudge.notified().await;
        }
        fn still_valid(&self) -> impl Future<Output = bool> + Send + 'static {
            let pool = self.pool.clone();
            async move {
                let _connection = pool.acquire().await.expect("pool");
                false
            }
        }
    }

    #[tokio::test]
    async fn a_session_check_does_not_wait_for_a_feed_that_holds_the_connection() {
        let pool = Arc::new(tokio::sync::Semaphore::new(1));
        let release = Arc::new(Notify::new());
        let nudge = Arc::new(Notify::new());
        // The feed's first item is a query: it takes the connection and finishes on `release`.
        let feed = {
            let (pool, release) = (pool.clone(), release.clone());
            futures::stream::once(async move {
                let _connection = pool.acquire().await.expect("pool");
                release.notified().await;
                "the query's answer".to_owned()
            })
            .chain(futures::stream::pending())
        };
        let (sink, mut sent) = mpsc::unbounded::<Message>();
        let (_client, incoming) = mpsc::unbounded::<Result<Message, std::convert::Infallible>>();
        let guard = PooledGuard { pool: pool.clone(), nudge: nudge.clone() };
        let task = tokio::spawn(push(sink, incoming, feed, guard, Duration::from_secs(25)));
        // The feed holds the connection; a revocation asks for a check, which must wait for it.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        nudge.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.notify_one();
        let within = Duration::from_secs(5);
        assert_eq!(
            text(tokio::time::timeout(within, sent.next()).await.expect("the answer")),
            "the query's answer"
        );
        assert_eq!(
            tokio::time::timeout(within, task).await.expect("no deadlock").unwrap(),
            Ended::SignedOut
        );
    }

    #[test]
    fn every_live_view_sends_the_same_heartbeat() {
        assert_eq!(json(&app::clusters::ClustersMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::logs::LogMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::metrics::MetricsMessage::Heartbeat), HEARTBEAT_MESSAGE);
        assert_eq!(json(&app::metrics::DashboardMessage::Heartbeat), HEARTBEAT_MESSAGE);
    }
}

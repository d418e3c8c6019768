//! The browser side of KRaft's push websockets: one socket kept open while a component lives,
//! reconnected with backoff when it drops. Every live view (cluster list, dashboard, metrics,
//! logs) uses it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::{select, Either};
use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// `ws://` or `wss://` and the page's host, for a path on this server.
pub fn url(path: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}{path}", location.host().ok()?))
}

/// Keeps a websocket open until the calling component is cleaned up. `path` is asked again at
/// every (re)connection, so it can say where to resume. Each text message goes to `on_text`;
/// `on_state(true)` follows the first message of a connection, `on_state(false)` a drop. Waits
/// 0.5 s after a drop, doubling up to 10 s while connections keep failing.
pub fn keep_open(
    path: impl Fn() -> String + 'static,
    on_text: impl Fn(String) + 'static,
    on_state: impl Fn(bool) + 'static,
) {
    let stopped = Arc::new(AtomicBool::new(false));
    let stop = stopped.clone();
    // Also wakes a socket waiting for its next message, so that it closes at once (a quiet log's
    // socket would otherwise hold its upstream until the next heartbeat).
    let (stop_now, mut stopping) = futures::channel::oneshot::channel::<()>();
    on_cleanup(move || {
        stop.store(true, Ordering::Relaxed);
        let _ = stop_now.send(());
    });
    spawn_local(async move {
        let mut backoff = 500;
        while !stopped.load(Ordering::Relaxed) {
            if let Some(socket) = url(&path()).and_then(|u| WebSocket::open(&u).ok()) {
                let (_, mut incoming) = socket.split();
                let mut first = true;
                loop {
                    let message = match select(incoming.next(), &mut stopping).await {
                        Either::Left((Some(Ok(message)), _)) => message,
                        // The session ended: reconnecting would only be refused.
                        Either::Left((Some(Err(WebSocketError::ConnectionClose(event))), _))
                            if event.code == crate::api::SIGNED_OUT_CLOSE_CODE =>
                        {
                            if let Some(window) = web_sys::window() {
                                let _ = window.location().assign("/login");
                            }
                            return;
                        }
                        Either::Left(_) => break,
                        // Stopped: dropping the socket closes it.
                        Either::Right(_) => return,
                    };
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    backoff = 500;
                    if first {
                        first = false;
                        on_state(true);
                    }
                    if let Message::Text(text) = message {
                        on_text(text);
                    }
                }
            }
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            on_state(false);
            gloo_timers::future::TimeoutFuture::new(backoff).await;
            backoff = (backoff * 2).min(10_000);
        }
    });
}

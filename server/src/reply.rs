//! What the non-Leptos routes (downloads, websockets) answer with: short plain-text refusals and
//! JSON websocket messages, the same way everywhere.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// How often an idle websocket gets a heartbeat (proxies cut sockets idle for about a minute).
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// A short plain-text answer, e.g. a refusal.
pub fn plain(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_owned())
        .into_response()
}

/// Sends one JSON message; `false` when the socket is gone.
pub async fn send_json(socket: &mut WebSocket, message: &impl Serialize) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
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

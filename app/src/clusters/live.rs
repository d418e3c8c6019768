//! The live cluster list: the browser keeps a websocket to `/ws/clusters` open while a page that
//! shows clusters is mounted, and reconnects (with backoff) when it drops. On the server, and
//! before the socket has said anything, the signal is `None` and pages show what they loaded.

use leptos::prelude::*;

use crate::clusters::api::ClusterSummary;

/// The latest list the server pushed, and whether the socket is connected.
#[derive(Clone, Copy)]
pub struct LiveClusters {
    pub clusters: ReadSignal<Option<Vec<ClusterSummary>>>,
    pub connected: ReadSignal<bool>,
}

pub fn use_live_clusters() -> LiveClusters {
    let (clusters, set_clusters) = signal(None::<Vec<ClusterSummary>>);
    let (connected, set_connected) = signal(false);
    #[cfg(feature = "hydrate")]
    browser::connect(set_clusters, set_connected);
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_clusters, set_connected);
    LiveClusters { clusters, connected }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use futures::StreamExt;
    use gloo_net::websocket::{futures::WebSocket, Message};
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use crate::clusters::api::{ClusterSummary, ClustersMessage};

    fn url() -> Option<String> {
        let location = web_sys::window()?.location();
        let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
        Some(format!("{scheme}://{}/ws/clusters", location.host().ok()?))
    }

    pub fn connect(
        set_clusters: WriteSignal<Option<Vec<ClusterSummary>>>,
        set_connected: WriteSignal<bool>,
    ) {
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        on_cleanup(move || stop.store(true, Ordering::Relaxed));
        spawn_local(async move {
            let mut backoff_ms = 500;
            while !stopped.load(Ordering::Relaxed) {
                if let Some(socket) = url().and_then(|url| WebSocket::open(&url).ok()) {
                    let (_, mut incoming) = socket.split();
                    while let Some(Ok(message)) = incoming.next().await {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        set_connected.set(true);
                        backoff_ms = 500;
                        let text = match message {
                            Message::Text(text) => text,
                            Message::Bytes(_) => continue,
                        };
                        if let Ok(ClustersMessage::Snapshot { clusters }) =
                            serde_json::from_str(&text)
                        {
                            set_clusters.set(Some(clusters));
                        }
                    }
                }
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                set_connected.set(false);
                gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
                backoff_ms = (backoff_ms * 2).min(10_000);
            }
        });
    }
}

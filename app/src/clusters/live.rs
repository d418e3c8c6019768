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
    use leptos::prelude::*;

    use crate::clusters::api::{ClusterSummary, ClustersMessage};

    pub fn connect(
        set_clusters: WriteSignal<Option<Vec<ClusterSummary>>>,
        set_connected: WriteSignal<bool>,
    ) {
        crate::socket::keep_open(
            || "/ws/clusters".to_owned(),
            move |text| {
                if let Ok(ClustersMessage::Snapshot { clusters }) =
                    serde_json::from_slice(text.as_bytes())
                {
                    set_clusters.set(Some(clusters));
                }
            },
            move |connected| set_connected.set(connected),
        );
    }
}

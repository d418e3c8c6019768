//! Watch streams: newline-delimited `{"type","object"}` frames over a chunked response, from a
//! resourceVersion (410 Gone as an `ERROR` frame when it is too old), filtered by namespace and
//! selectors, with bookmarks, `timeoutSeconds`, and an end on disconnect, shutdown or an
//! injected connection drop.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::{stream_response, table, Query};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::object;
use crate::resources::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeType};

struct Filter {
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// The event type a watcher with this filter sees for `c`: an object that moves into the
    /// selection is ADDED, one that moves out is DELETED, others are skipped.
    fn classify(&self, c: &Change) -> Option<ChangeType> {
        let now = self.matches(&c.object);
        let before = c.old.as_ref().map_or(now, |o| self.matches(o));
        match (c.kind, before, now) {
            (_, false, false) => None,
            (ChangeType::Modified, false, true) => Some(ChangeType::Added),
            (ChangeType::Modified, true, false) => Some(ChangeType::Deleted),
            (k, _, _) => Some(k),
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        self.ns.as_deref().is_none_or(|ns| object::namespace(obj) == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub fn serve(
    host: Arc<Host>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    q: &Query,
    as_table: bool,
) -> Result<Response> {
    let filter = Filter {
        ns: if rt.namespaced { ns } else { None },
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    };
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| Error::BadRequest(format!("invalid resource version: {s}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true") && !as_table;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    // Streaming lists (client-go's WatchList): the current state as ADDED, then a bookmark
    // marking the end of the initial events.
    let initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let sub = host.store.watch(&rt.gr(), if initial_events { None } else { rv });
    let mut drops = host.faults.drop_signal();
    let bookmark_every = host.config.bookmark_interval;
    let path = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let path = match &filter.ns {
        Some(ns) => format!("{path}/namespaces/{ns}/{}", rt.plural),
        None => format!("{path}/{}", rt.plural),
    };
    let open = host.counters.open_stream(&path);
    tokio::spawn(async move {
        let _open = open;
        let sub = match sub {
            Ok(sub) => sub,
            Err(e) => {
                let _ = tx.send(Ok(frame("ERROR", &e.status()))).await;
                return;
            }
        };
        let mut last_rv = sub.rv;
        let mut first = true;
        let render = |c: &Change, kind: ChangeType, first: &mut bool| -> Bytes {
            let obj = if as_table {
                let t = table::table(&rt, std::slice::from_ref(&c.object), c.rv, *first);
                *first = false;
                t
            } else {
                c.object.clone()
            };
            frame(kind.as_str(), &obj)
        };
        for c in &sub.backlog {
            last_rv = last_rv.max(c.rv);
            let Some(kind) = filter.classify(c) else {
                continue;
            };
            if tx.send(Ok(render(c, kind, &mut first))).await.is_err() {
                return;
            }
        }
        if initial_events {
            let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": last_rv.to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(Ok(frame("BOOKMARK", &bm))).await.is_err() {
                return;
            }
        }
        let mut live = sub.live;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = drops.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                        "metadata": {"resourceVersion": host.store.current_rv().max(last_rv).to_string()}});
                    if tx.send(Ok(frame("BOOKMARK", &bm))).await.is_err() { return; }
                }
                msg = live.recv() => match msg {
                    Ok(c) => {
                        if c.gr != rt.gr() || c.rv <= last_rv {
                            continue;
                        }
                        last_rv = c.rv;
                        let Some(kind) = filter.classify(&c) else {
                            continue;
                        };
                        if tx.send(Ok(render(&c, kind, &mut first))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = Error::Gone { requested: last_rv, oldest: host.store.current_rv() };
                        let _ = tx.send(Ok(frame("ERROR", &gone.status()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(stream_response("application/json;stream=watch", body))
}

//! `GET /api/v1/namespaces/{ns}/pods/{pod}/log`: container selection and the kubelet's 400s,
//! `tailLines`, `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, `previous`, and
//! `follow` as a chunked `text/plain` stream that ends when the container stops, the client
//! leaves, or connections are dropped by a fault.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::{stream_response, Query};
use crate::error::{Error, GroupResource, Result};
use crate::host::Host;
use crate::logs::LogLine;

/// Truncates to at most `max` bytes on a character boundary (`limitBytes`).
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Past lines as text within `budget` bytes, and the budget left.
fn render(lines: &[Arc<LogLine>], timestamps: bool, mut budget: usize) -> (String, usize) {
    let mut text = String::new();
    for line in lines {
        if budget == 0 {
            break;
        }
        let mut s = line.render(timestamps);
        cut(&mut s, budget);
        budget -= s.len();
        text.push_str(&s);
    }
    (text, budget)
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    let status = statuses
        .and_then(|s| s.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(container)));
    match status {
        None => Some("ContainerCreating".into()),
        Some(s) => s.pointer("/state/waiting/reason").and_then(Value::as_str).map(str::to_string),
    }
}

pub async fn serve(host: &Arc<Host>, ns: &str, pod_name: &str, q: &Query) -> Result<Response> {
    let pod = host
        .store
        .get(&GroupResource::new("", "pods"), ns, pod_name)
        .ok_or_else(|| Error::not_found(&GroupResource::new("", "pods"), pod_name))?;
    let names = container_names(&pod);
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(Error::BadRequest(format!("container {c} is not valid for pod {pod_name}")))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(Error::BadRequest(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    if let Some(reason) = waiting_reason(&pod, &container) {
        return Err(Error::BadRequest(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}"
        )));
    }
    let int = |k: &str| -> Result<Option<i64>> {
        q.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| Error::BadRequest(format!("invalid {k}: {v}"))))
            .transpose()
    };
    let tail = int("tailLines")?.map(|n| n.max(0) as usize);
    let limit = int("limitBytes")?.map(|n| n.max(1) as usize);
    let since: Option<DateTime<Utc>> = match (int("sinceSeconds")?, q.get("sinceTime")) {
        (Some(s), _) => Some(Utc::now() - chrono::Duration::seconds(s)),
        (None, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| Error::BadRequest(format!("invalid sinceTime: {t}")))?
                .with_timezone(&Utc),
        ),
        (None, None) => None,
    };
    let timestamps = q.get("timestamps").is_some_and(|t| t == "true");
    let follow = q.get("follow").is_some_and(|f| f == "true");
    if q.get("previous").is_some_and(|p| p == "true") {
        // A terminated container's log is complete: it is never followed.
        let past =
            host.logs.open_previous(ns, pod_name, &container, tail, since).ok_or_else(|| {
                Error::BadRequest(format!(
                    "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                ))
            })?;
        let (text, _) = render(&past, timestamps, limit.unwrap_or(usize::MAX));
        return Ok(stream_response("text/plain", Body::from(text)));
    }
    let reader = host
        .logs
        .open(ns, pod_name, &container, tail, since)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            ))
        })?;

    let (first, mut budget) = render(&reader.past, timestamps, limit.unwrap_or(usize::MAX));
    if !follow || budget == 0 {
        return Ok(stream_response("text/plain", Body::from(first)));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let mut live = reader.live;
    let mut drops = host.faults.drop_signal();
    let open = host.counters.open_stream(&format!("/api/v1/namespaces/{ns}/pods/{pod_name}/log"));
    tokio::spawn(async move {
        let _open = open;
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = drops.changed() => return,
                msg = live.recv() => match msg {
                    Ok(line) => {
                        // Batch whatever else is already queued into one chunk.
                        let mut chunk = line.render(timestamps);
                        while chunk.len() < 64 * 1024 {
                            match live.try_recv() {
                                Ok(more) => chunk.push_str(&more.render(timestamps)),
                                Err(_) => break,
                            }
                        }
                        cut(&mut chunk, budget);
                        budget -= chunk.len();
                        if tx.send(Ok(Bytes::from(chunk))).await.is_err() || budget == 0 {
                            return;
                        }
                    }
                    // A slow reader misses lines, as with a real kubelet's rotated files.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(stream_response("text/plain", body))
}

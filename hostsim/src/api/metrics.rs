//! `metrics.k8s.io/v1beta1`: `PodMetrics` (list and get, `labelSelector`) for running pods and
//! `NodeMetrics` for the nodes, or 503 when the metrics API is faulted away.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, Query};
use crate::error::{Error, GroupResource, Result};
use crate::host::Host;
use crate::metrics::{container_usage, node_usage};
use crate::object;
use crate::resources::ResourceType;
use crate::select::LabelSelector;

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn pod_metrics(pod: &Value, t: f64) -> (Value, u64, u64) {
    let server = object::label(pod, "role") == Some("server");
    let mut total = (0, 0);
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    let (cpu, mem) = container_usage(object::uid(pod), name, server, t);
                    total.0 += cpu;
                    total.1 += mem;
                    json!({"name": name, "usage": {"cpu": format!("{cpu}n"), "memory": format!("{mem}Ki")}})
                })
                .collect()
        })
        .unwrap_or_default();
    let doc = json!({
        "metadata": {
            "name": object::name(pod),
            "namespace": object::namespace(pod),
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "creationTimestamp": object::now_rfc3339(),
        },
        "timestamp": object::now_rfc3339(),
        "window": "10.5s",
        "containers": containers,
    });
    (doc, total.0, total.1)
}

fn running(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
}

pub fn serve(
    host: &Host,
    rt: &ResourceType,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Query,
) -> Result<Response> {
    if host.faults.settings().metrics_unavailable {
        return Err(Error::ServiceUnavailable(
            "the server is currently unable to handle the request".into(),
        ));
    }
    let t = now_secs();
    let pods_gr = GroupResource::new("", "pods");
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let gr = GroupResource::new("metrics.k8s.io", &rt.plural);
    match rt.plural.as_str() {
        "pods" => {
            let (pods, _) = host.store.list(&pods_gr, ns);
            let items: Vec<Value> = pods
                .iter()
                .filter(|p| running(p) && labels.matches(p))
                .filter(|p| name.is_none_or(|n| object::name(p) == n))
                .map(|p| pod_metrics(p, t).0)
                .collect();
            if let Some(n) = name {
                let mut item = items.into_iter().next().ok_or_else(|| Error::not_found(&gr, n))?;
                item["kind"] = json!("PodMetrics");
                item["apiVersion"] = json!("metrics.k8s.io/v1beta1");
                return Ok(json_response(StatusCode::OK, &item));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
            ))
        }
        _ => {
            let (nodes, _) = host.store.list(&GroupResource::new("", "nodes"), None);
            let (pods, _) = host.store.list(&pods_gr, None);
            let items: Vec<Value> = nodes
                .iter()
                .filter(|n| labels.matches(n))
                .filter(|n| name.is_none_or(|want| object::name(n) == want))
                .map(|node| {
                    let node_name = object::name(node);
                    let (mut cpu, mut mem) = (0, 0);
                    for p in pods.iter().filter(|p| running(p)) {
                        if p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node_name) {
                            let (_, c, m) = pod_metrics(p, t);
                            cpu += c;
                            mem += m;
                        }
                    }
                    let (cpu, mem) = node_usage(node_name, cpu, mem, t);
                    json!({
                        "metadata": {"name": node_name, "labels": node.pointer("/metadata/labels").cloned().unwrap_or(json!({})), "creationTimestamp": object::now_rfc3339()},
                        "timestamp": object::now_rfc3339(),
                        "window": "10.5s",
                        "usage": {"cpu": format!("{cpu}n"), "memory": format!("{mem}Ki")},
                    })
                })
                .collect();
            if let Some(n) = name {
                let mut item = items.into_iter().next().ok_or_else(|| Error::not_found(&gr, n))?;
                item["kind"] = json!("NodeMetrics");
                item["apiVersion"] = json!("metrics.k8s.io/v1beta1");
                return Ok(json_response(StatusCode::OK, &item));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
            ))
        }
    }
}

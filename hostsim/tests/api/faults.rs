//! Fault injection: dropped watches resumed by kube-rs's watcher, 5xx, provisioning faults,
//! restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::harness::{api_error, spawn_host, ClusterSpec};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"test": "drop"}}}))
        .expect("cm")
}

#[tokio::test]
async fn dropped_watch_is_resumed_by_the_watcher_without_losing_events() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    let stream = watcher::watcher(api.clone(), watcher::Config::default().labels("test=drop"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(c) | Event::InitApply(c)) = ev {
                let _ = tx.send(c.metadata.name.unwrap_or_default());
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let watches_before = app.sim.request_count("/api/v1/namespaces/default/configmaps");
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"))).await.expect("create");
        if i == 4 {
            app.sim.faults().drop_connections();
        }
    }
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 10 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(name)) => {
                seen.insert(name);
            }
            _ => break,
        }
    }
    task.abort();
    assert_eq!(seen.len(), 10, "seen {seen:?}");
    assert!(
        app.sim.request_count("/api/v1/namespaces/default/configmaps") > watches_before,
        "the watcher reconnected"
    );
}

#[tokio::test]
async fn injected_error_rate_answers_5xx() {
    let app = spawn_host().await;
    app.sim.faults().set_error_rate("/api/v1/namespaces/default/secrets", 1.0, 503);
    let client = crate::harness::client_with_retries(&app.sim.kubeconfig_yaml(), false).await;
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let (code, reason, _) = api_error(api.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"));
    assert!(app.sim.request_count("/api/v1/namespaces/default/secrets") >= 1);
    app.sim.faults().set_error_rate("/api/v1/namespaces/default/secrets", 1.0, 504);
    let (code, reason, _) = api_error(api.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (504, "Timeout"));
    // 429 as the in-flight limit sends it: plain text, and when to come back.
    app.sim.faults().set_error_rate("/api/v1/namespaces/default/secrets", 1.0, 429);
    let client = crate::harness::client_with_retries(&app.sim.kubeconfig_yaml(), false).await;
    let request = axum::http::Request::get("/api/v1/namespaces/default/secrets")
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    app.sim.faults().clear();
    assert!(api.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn failing_provisioning_marks_the_cluster_failed() {
    let app = spawn_host().await;
    app.sim.faults().set_provisioning(hostsim::Provisioning::Fail, Duration::ZERO);
    app.namespace("k3k-f").await;
    app.create_cluster("k3k-f", "f", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-f", "f", "Failed").await;
}

#[tokio::test]
async fn stuck_provisioning_never_becomes_ready() {
    let app = spawn_host().await;
    app.sim.faults().set_provisioning(hostsim::Provisioning::Stuck, Duration::ZERO);
    app.namespace("k3k-s").await;
    app.create_cluster("k3k-s", "s", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-s", "s", "Provisioning").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = app.clusters("k3k-s").get("s").await.expect("get");
    assert_eq!(c.status.and_then(|s| s.phase).as_deref(), Some("Provisioning"));
    app.sim.faults().clear();
    app.wait_for_phase("k3k-s", "s", "Ready").await;
}

#[tokio::test]
async fn restart_without_state_forgets_objects_but_keeps_serving() {
    let app = spawn_host().await;
    app.namespace("k3k-r").await;
    app.sim.restart(false);
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(app.client.clone());
    assert_eq!(api_error(nss.get("k3k-r").await).0, 404);
    assert!(nss.get("default").await.is_ok());
}

#[tokio::test]
async fn admin_endpoint_adds_latency() {
    let app = spawn_host().await;
    let put = axum::http::Request::put("/hostsim/faults")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"latencyMs": 300})).expect("json"))
        .expect("request");
    let settings: serde_json::Value = app.client.request(put).await.expect("faults set");
    assert_eq!(settings["latencyMs"], 300);
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    let started = std::time::Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(started.elapsed() >= Duration::from_millis(300));
    app.sim.faults().clear();
    let started = std::time::Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(started.elapsed() < Duration::from_millis(300));
}

/// `flap`: a Ready cluster reports `Failed` (reason ProvisioningFailed) for one pass, as K3k does
/// on a transient reconcile error, and is Ready again on the next.
#[tokio::test]
async fn flap_fails_a_ready_cluster_once_then_it_is_ready_again() {
    let app = spawn_host().await;
    app.namespace("k3k-flap").await;
    app.create_cluster("k3k-flap", "f", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-flap", "f", "Ready").await;
    app.sim.faults().set_provisioning(hostsim::Provisioning::Flap, Duration::ZERO);
    app.wait_for_phase("k3k-flap", "f", "Failed").await;
    app.wait_for_phase("k3k-flap", "f", "Ready").await;
}

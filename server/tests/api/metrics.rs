//! The metrics websocket: the owner gets history then live samples; strangers get nothing; an
//! outage is reported, not drawn as zeros.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{spawn_app_with, Backend, Socket, TestBrowser};

async fn socket(
    browser: &TestBrowser,
    id: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    browser.websocket(&format!("/ws/clusters/{id}/metrics")).await
}

fn refused_with(result: Result<Socket, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("connected: {:?}", other.map(|_| ())),
    }
}

async fn next_of_type<S>(socket: &mut S, kind: &str) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if value["type"] == kind {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_sees_usage_and_strangers_see_nothing() {
    let app =
        spawn_app_with(Backend::Postgres, |c| c.metrics_interval = Duration::from_millis(200))
            .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("busy").await;
    ada.wait_for_phase(&id, "Ready").await;

    let mut stream = socket(&ada, &id).await.expect("websocket");
    let history = next_of_type(&mut stream, "history").await;
    assert!(history["samples"].is_array());
    let sample = next_of_type(&mut stream, "sample").await;
    assert!(sample["sample"]["cpu_millicores"].as_f64().unwrap() > 0.0, "{sample}");
    assert!(sample["sample"]["memory_bytes"].as_u64().unwrap() > 0);
    let pods = sample["sample"]["by_pod"].as_array().unwrap();
    assert!(pods.iter().any(|p| p["role"] == "server"), "{sample}");
    let total: f64 = pods.iter().map(|p| p["cpu_millicores"].as_f64().unwrap()).sum();
    assert!(
        (total - sample["sample"]["cpu_millicores"].as_f64().unwrap()).abs() < 0.01,
        "the total is the pods' sum"
    );

    // An outage says so.
    app.hostsim().faults().set_metrics_unavailable(true);
    let outage = next_of_type(&mut stream, "unavailable").await;
    assert!(!outage["reason"].as_str().unwrap().is_empty());
    app.hostsim().faults().set_metrics_unavailable(false);
    next_of_type(&mut stream, "sample").await;

    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    match socket(&mallory, &id).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("a stranger connected: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_every_cluster_of_its_owner_only() {
    let app =
        spawn_app_with(Backend::Postgres, |c| c.metrics_interval = Duration::from_millis(200))
            .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let mut dashboard = ada.websocket("/ws/dashboard").await.expect("websocket");
    let first = next_of_type(&mut dashboard, "clusters").await;
    assert_eq!(first["clusters"], serde_json::json!([]), "a new user has no clusters");

    // A cluster created while the dashboard is open appears on it, then its numbers do.
    let id = ada.new_cluster("web").await;
    let listed = next_of_type(&mut dashboard, "clusters").await;
    assert_eq!(listed["clusters"][0]["id"], id.as_str());
    let history = next_of_type(&mut dashboard, "history").await;
    assert_eq!(history["cluster"], id.as_str());
    ada.wait_for_phase(&id, "Ready").await;
    let sample = next_of_type(&mut dashboard, "sample").await;
    assert_eq!(sample["cluster"], id.as_str());
    assert!(sample["sample"]["cpu_millicores"].as_f64().unwrap() > 0.0, "{sample}");
    assert_eq!(sample["sample"]["by_pod"], serde_json::json!([]), "cards get totals only");

    // A second cluster joins the same socket.
    let second = ada.new_cluster("db").await;
    ada.wait_for_phase(&second, "Ready").await;
    loop {
        let sample = next_of_type(&mut dashboard, "sample").await;
        if sample["cluster"] == second.as_str() {
            break;
        }
    }

    // Many dashboards, still one upstream poll per interval.
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut s = ada.websocket("/ws/dashboard").await.unwrap();
        next_of_type(&mut s, "clusters").await;
        sockets.push(s);
    }
    let metrics_path = "/apis/metrics.k8s.io/v1beta1/pods";
    let before = app.hostsim().request_count(metrics_path);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let polls = app.hostsim().request_count(metrics_path) - before;
    assert!((5..=12).contains(&polls), "{polls} polls in 2 s at 200 ms for 21 dashboards");
    drop(sockets);

    // Someone else's dashboard never mentions ada's clusters.
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    let mut theirs = mallory.websocket("/ws/dashboard").await.unwrap();
    let listed = next_of_type(&mut theirs, "clusters").await;
    assert_eq!(listed["clusters"], serde_json::json!([]));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_000);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, theirs.next()).await {
        let text = message.to_text().unwrap_or_default().to_owned();
        assert!(!text.contains(&id) && !text.contains(&second), "leaked: {text}");
    }

    // Deleting a cluster takes it off the dashboard.
    let deleted = ada.call("clusters/delete", &[("id", &id), ("confirm_name", "web")]).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    loop {
        let listed = next_of_type(&mut dashboard, "clusters").await;
        let ids: Vec<&str> = listed["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        if !ids.contains(&id.as_str()) {
            break;
        }
    }

    // Anonymous and cross-site sockets are refused.
    let anonymous = app.another_browser();
    assert_eq!(refused_with(anonymous.websocket("/ws/dashboard").await), 401);
    assert_eq!(
        refused_with(ada.websocket_from("/ws/dashboard", "https://evil.example").await),
        403
    );
}

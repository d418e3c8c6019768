//! The metrics websocket: the owner gets history then live samples; strangers get nothing; an
//! outage is reported, not drawn as zeros.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{spawn_app_with, Backend, TestApp, TestBrowser};

async fn socket(
    app: &TestApp,
    browser: &TestBrowser,
    id: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request =
        format!("{}/ws/clusters/{id}/metrics", app.address.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
    if let Some(cookie) = browser.session_cookie() {
        request.headers_mut().insert("Cookie", format!("kraft_session={cookie}").parse().unwrap());
    }
    request.headers_mut().insert("Origin", app.address.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.map(|(s, _)| s)
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

    let mut stream = socket(&app, &ada, &id).await.expect("websocket");
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
    match socket(&app, &mallory, &id).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("a stranger connected: {:?}", other.map(|_| ())),
    }
}

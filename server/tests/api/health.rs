use serde_json::{json, Value};

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::on_both_backends;

async fn healthz_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}
on_both_backends!(healthz_answers_ok);

async fn readyz_reports_the_database_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ready", "checks": {"database": "ok", "host": "ok"}})
    );
}
on_both_backends!(readyz_reports_the_database_ready);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unavailable_when_the_database_is_gone() {
    let app = spawn_app(Backend::Postgres).await;
    app.database.drop_now().await;

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "not ready", "checks": {"database": "unavailable", "host": "ok"}})
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuts_down_gracefully_when_asked() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let address = app.address.clone();
    app.stop().await;
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "still listening after shutdown"
    );
}

/// With a shutdown delay (the chart's 5 s), a replica told to stop fails its readiness at once,
/// so Kubernetes takes it out of the Service, and keeps serving (new connections too) for the
/// delay: requests routed to it before the endpoints change are answered, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_told_to_stop_is_not_ready_but_serves_on_for_the_delay() {
    const DELAY: Duration = Duration::from_secs(5);
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.shutdown_delay = kraft::config::OptionalDuration(Some(DELAY));
    })
    .await;
    let address = app.address.clone();
    // A fresh client each time: a new connection, as a load balancer's next request may be.
    let get = |path: &str| reqwest::Client::new().get(format!("{address}{path}")).send();
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let asked = Instant::now();
    let stopping = tokio::spawn(app.stop());
    let mut readiness = get("/readyz").await.unwrap();
    while readiness.status() == 200 {
        assert!(asked.elapsed() < DELAY, "still ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
        readiness = get("/readyz").await.unwrap();
    }
    assert_eq!(readiness.status(), 503);
    assert_eq!(readiness.json::<Value>().await.unwrap()["status"], "shutting down");
    assert_eq!(get("/healthz").await.unwrap().status(), 200, "still alive");
    assert_eq!(get("/login").await.unwrap().status(), 200, "still serving pages");
    assert!(asked.elapsed() < DELAY, "the checks ran within the delay (a slow machine?)");
    stopping.await.unwrap();
    assert!(asked.elapsed() >= DELAY, "stopped before the delay was over");
    assert!(get("/healthz").await.is_err(), "still listening after shutdown");
}

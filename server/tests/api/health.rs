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

/// PostgreSQL restarted, failed over or timed out the app's idle connections: the next
/// requests get fresh connections, none fails on a dead one. (Connections used within the last
/// second are trusted without a ping; these have been idle longer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_dropped_are_replaced_before_a_request_uses_them() {
    use sea_orm::{ConnectionTrait, Database};

    // Quiet background work, so the requests below are what meets the dropped connections.
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.reconcile_interval = Duration::from_secs(3600);
    })
    .await;
    let browser = app.browser();
    browser.sign_up("ada").await;
    for _ in 0..4 {
        assert_eq!(browser.overview().await.status(), 200);
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    let crate::helpers::TestDatabase::Postgres { admin_url, name } = &app.database else {
        unreachable!("a PostgreSQL test database")
    };
    let admin = Database::connect(admin_url.as_str()).await.expect("admin connection");
    let dropped = admin
        .query_all(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        ))
        .await
        .expect("terminate the app's connections");
    admin.close().await.expect("close admin connection");
    assert!(!dropped.is_empty(), "the app held connections");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..12 {
        assert_eq!(browser.overview().await.status(), 200);
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    }
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

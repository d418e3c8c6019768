//! The admin runs the platform: settings changed on the admin page are checked, audited, kept
//! in the database and applied by every replica without a restart.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{count, spawn_app, Backend, TestBrowser};

/// Every field of the settings form, empty (as configured), with `changes` over it.
fn form<'a>(changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields: Vec<(&str, &str)> = [
        "signup_mode",
        "max_clusters",
        "max_servers",
        "max_agents",
        "max_storage_gi",
        "versions",
        "modes",
        "tenant_cpu",
        "tenant_memory",
        "tenant_storage",
        "idle_expiry_hours",
    ]
    .into_iter()
    .map(|k| (k, ""))
    .collect();
    for (k, v) in changes {
        fields.retain(|(f, _)| f != k);
        fields.push((k, v));
    }
    fields
}

async fn max_clusters(browser: &TestBrowser) -> Value {
    let options: Value = browser.call("clusters/options", &[]).await.json().await.unwrap();
    options["max_clusters"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_on_one_replica_applies_on_the_other_without_restart() {
    let app = spawn_app(Backend::Postgres).await;
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    let replica = app.replica().await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;
    let ada_there = TestBrowser { address: replica.address.clone(), ..ada.clone() };
    assert_eq!(max_clusters(&ada_there).await, json!(3));

    // Only admins; bad fields are named and nothing changes.
    let by_ada = ada.call("admin/settings", &form(&[("max_clusters", "9")])).await;
    assert_eq!(by_ada.status(), 403);
    let bad = root
        .call(
            "admin/settings",
            &form(&[("max_servers", "2"), ("tenant_cpu", "lots"), ("max_clusters", "1")]),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    let fields: Vec<&str> =
        body["Invalid"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["max_servers", "tenant_cpu"]);
    let unsafe_mode = root.call("admin/settings", &form(&[("modes", "shared, virtual")])).await;
    assert_eq!(unsafe_mode.status(), 403, "virtual mode needs a sandbox the operator configured");
    assert_eq!(max_clusters(&ada).await, json!(3));

    // Saved on this replica: the other applies it within seconds, no restart.
    let saved = root
        .call("admin/settings", &form(&[("max_clusters", "1"), ("signup_mode", "closed")]))
        .await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap_or_default());
    assert_eq!(max_clusters(&ada).await, json!(1), "at once where it was saved");
    let started = Instant::now();
    while max_clusters(&ada_there).await != json!(1) {
        assert!(started.elapsed() < Duration::from_secs(5), "the replica did not apply the change");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the other replica applied the change after {:?}", started.elapsed());
    let (stranger, jar) = crate::helpers::browser();
    let stranger = TestBrowser { address: replica.address.clone(), client: stranger, jar };
    assert_eq!(
        stranger.register_with("mallory", &[]).await.status(),
        403,
        "sign-up closed there too"
    );
    ada_there.new_cluster("one").await;
    let second = ada_there.create_cluster(&[("name", "two")]).await;
    assert_eq!(second.status(), 409, "the new limit holds on the replica");

    // The admin page shows what is in effect and what was configured; the change is audited.
    let overview: Value = root.call("admin/users", &[]).await.json().await.unwrap();
    let row = overview["settings"].as_array().unwrap().iter().find(|s| s["key"] == "max_clusters");
    assert_eq!(row.unwrap()["value"], "1");
    assert_eq!(row.unwrap()["configured"], "3");
    assert_eq!(row.unwrap()["changed"], true);
    let audited = "SELECT COUNT(*) FROM audit_events WHERE action = 'settings.changed' AND target LIKE '%max_clusters%'";
    assert_eq!(count(&app, audited).await, 1);

    // A replica started later begins with the change; emptying the field goes back to the
    // environment's value everywhere.
    let late = app.replica().await;
    let ada_late = TestBrowser { address: late.address.clone(), ..ada.clone() };
    assert_eq!(max_clusters(&ada_late).await, json!(1));
    let reset = root.call("admin/settings", &form(&[])).await;
    assert_eq!(reset.status(), 200);
    let started = Instant::now();
    while max_clusters(&ada_there).await != json!(3) || max_clusters(&ada_late).await != json!(3) {
        assert!(started.elapsed() < Duration::from_secs(5), "the reset did not reach the replicas");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

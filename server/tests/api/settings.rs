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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_gives_one_account_limits_of_its_own() {
    let app = spawn_app(Backend::Postgres).await;
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    let (ada, bob) = (app.another_browser(), app.another_browser());
    ada.sign_up("ada").await;
    bob.sign_up("bob").await;
    // The capacity page's plain form, as a browser posts it.
    let post = |browser: &TestBrowser, fields: &[(&'static str, &'static str)]| {
        let mut form = vec![("account", "ada")];
        form.extend_from_slice(fields);
        let request = browser
            .client
            .post(format!("{}/admin/capacity/limits", browser.address))
            .header("Origin", browser.address.clone())
            .form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    // Only admins; bad fields are named and keep what was typed.
    assert_eq!(post(&ada, &[("clusters", "9")]).await.0, 403);
    let (status, page) = post(&root, &[("servers", "2"), ("agents", "many")]).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("Use 1 or 3") && page.contains("Enter a whole number from 0 to 50"),
        "{page}"
    );
    assert!(page.contains("name=\"agents\" type=\"number\" value=\"many\" autocomplete=\"off\" aria-invalid=\"true\""), "{page}");
    let (status, page) = root
        .client
        .post(format!("{}/admin/capacity/limits", root.address))
        .form(&[("account", "nobody"), ("clusters", "1")])
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 422);
    assert!(page.text().await.unwrap().contains("No account has this username."));

    // Ada: one cluster, but up to 5 agents; Bob keeps the platform's 3 and 3.
    let (status, page) = post(&root, &[("clusters", "1"), ("agents", "5")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("ada: 1 clusters, 5 agents from its next create or change."), "{page}");
    assert!(page.contains("data-own-limits=\"ada\""));
    assert_eq!(max_clusters(&ada).await, json!(1));
    assert_eq!(max_clusters(&bob).await, json!(3));
    let options: Value = ada.call("clusters/options", &[]).await.json().await.unwrap();
    assert_eq!(options["max_agents"], 5);
    ada.new_cluster("one").await;
    let second = ada.create_cluster(&[("name", "two")]).await;
    assert_eq!(second.status(), 409, "her own limit holds");
    assert!(second.text().await.unwrap().contains("1 clusters"));
    bob.new_cluster("one").await;
    bob.new_cluster("two").await;

    // Shown and audited; emptied, Ada is back to the platform's limits.
    let overview: Value = root.call("admin/users", &[]).await.json().await.unwrap();
    let row =
        overview["users"].as_array().unwrap().iter().find(|u| u["username"] == "ada").unwrap();
    assert_eq!(row["max_clusters"], 1);
    let audited = "SELECT COUNT(*) FROM audit_events WHERE action = 'account.limits_set' AND target = 'ada: 1 clusters, 5 agents'";
    assert_eq!(count(&app, audited).await, 1);
    let (status, _) = post(&root, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(max_clusters(&ada).await, json!(3));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_limits").await, 0);
    ada.new_cluster("three").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sees_host_capacity_against_what_tenants_hold_pushed_live() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |config| {
        config.metrics_interval = Duration::from_millis(500);
    })
    .await;
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;

    // Admins only; a visitor signs in first.
    let get = |browser: &TestBrowser, path: &str| {
        let request = browser.client.get(format!("{}{path}", browser.address));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get(&ada, "/admin/capacity").await.status(), 403);
    let visitor = get(&app.another_browser(), "/admin/capacity").await;
    assert_eq!(visitor.status(), 303);
    assert_eq!(visitor.headers()["location"], "/login?next=/admin/capacity");
    let page = get(&root, "/admin/capacity").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("data-node=\"hostsim-node-0\"") && html.contains("8.00 cores"), "{html}");
    assert!(html.contains("Tenants (0)") && html.contains("<script src=\"/admin/capacity.js\""));
    let script = get(&root, "/admin/capacity.js").await;
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    // Live: a cluster Ada makes shows up with its quota, without asking again.
    assert!(ada.websocket("/ws/admin/capacity").await.is_err(), "not for tenants");
    let mut socket = root.websocket("/ws/admin/capacity").await.expect("websocket");
    ada.new_cluster("demo").await;
    let started = std::time::Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(20), "Ada's cluster never showed");
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("a frame");
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] != "capacity" {
            continue;
        }
        let overview = &message["overview"];
        assert_eq!(overview["nodes"][0]["name"], "hostsim-node-0");
        let tenant =
            overview["tenants"].as_array().unwrap().iter().find(|t| t["username"] == "ada");
        if let Some(tenant) =
            tenant.filter(|t| t["held"]["cpu_hard_millicores"].as_f64() > Some(0.0))
        {
            assert_eq!(tenant["clusters"], 1);
            assert!(message["html"].as_str().unwrap().contains("data-tenant=\"ada\""));
            assert!(overview["held"]["cpu_hard_millicores"].as_f64() > Some(0.0));
            break;
        }
    }

    // No longer an admin (here by hand; single sign-on's group sync does it too): the live
    // view ends at its next check, a heartbeat at most, with "signed out".
    let db = app.database.connect().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        "UPDATE users SET role = 'user' WHERE username = 'root'",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(40), async {
        while let Some(frame) = socket.next().await {
            if let Ok(Message::Close(Some(frame))) = frame {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await
    .expect("the view ends within a heartbeat");
    assert_eq!(closed, Some(app::api::SIGNED_OUT_CLOSE_CODE));
}

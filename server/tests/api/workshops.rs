//! Workshops through HTTP: an organizer's workshop, attendees joining by link and by code (also
//! while sign-up is closed), seats, the board, reset, removal, the end and expiry.

use kraft::config::SignupMode;
use serde_json::Value;

use crate::helpers::{count, eventually, next_json, spawn_app_with, Backend, TestApp, TestBrowser};
use crate::on_both_backends;

fn in_minutes(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

impl TestBrowser {
    /// Creates a workshop running from now for an hour with `seats`; answers the response.
    async fn workshop(
        &self,
        title: &str,
        seats: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let (start, end) = (in_minutes(-1), in_minutes(60));
        let mut form = vec![
            ("title", title),
            ("starts_at", start.as_str()),
            ("ends_at", end.as_str()),
            ("seats", seats),
        ];
        form.extend_from_slice(extra);
        self.call("workshops/create", &form).await
    }

    /// Creates a workshop that must succeed; answers its board.
    async fn new_workshop(&self, title: &str, seats: &str) -> Value {
        let response = self.workshop(title, seats, &[]).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        let id: String = response.json().await.unwrap();
        self.board(&id).await
    }

    async fn board(&self, id: &str) -> Value {
        let response = self.call("workshops/board", &[("id", id)]).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        response.json().await.unwrap()
    }

    async fn join(&self, key: &str) -> reqwest::Response {
        self.call("workshops/join", &[("key", key)]).await
    }

    async fn all_clusters(&self) -> Vec<Value> {
        let response = self.call("clusters/list", &[]).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn link_token(board: &Value) -> String {
    board["workshop"]["link"].as_str().unwrap().trim_start_matches("/join/").to_owned()
}

fn code(board: &Value) -> String {
    board["workshop"]["code"].as_str().unwrap().to_owned()
}

fn workshop_id(board: &Value) -> String {
    board["workshop"]["id"].as_str().unwrap().to_owned()
}

fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

async fn closed_app(backend: Backend) -> (TestApp, TestBrowser) {
    let app = spawn_app_with(backend, |c| {
        c.signup_mode = SignupMode::Closed;
        c.max_clusters = 1;
    })
    .await;
    let admin = app.browser();
    admin.sign_up_admin(&app, "root").await;
    (app, admin)
}

/// The whole life of a workshop: attendees sign up through its link and its code while sign-up
/// is closed, land on a cluster of their own that does not count against their limits, join
/// twice into the same seat; a full workshop says so and creates no account; the organizer
/// resets a seat, removes an attendee and ends it, which deletes every workshop cluster.
async fn a_workshop_from_join_to_end(backend: Backend) {
    let (app, organizer) = closed_app(backend).await;
    let board = organizer.new_workshop("Kubernetes basics", "2").await;
    let id = workshop_id(&board);
    assert_eq!(board["workshop"]["phase"], "running");
    assert_eq!(code(&board).len(), 9, "a code like K7M3-XP2Q: {board}");

    // Sign-up is closed, but the link is the invitation.
    assert_eq!(app.another_browser().register_with("stranger", &[]).await.status(), 403);
    let ada = app.another_browser();
    let token = link_token(&board);
    let response = ada.register_with("ada", &[("workshop", &token)]).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let clusters = ada.all_clusters().await;
    assert_eq!(clusters.len(), 1, "joining made ada's cluster: {clusters:?}");
    let ada_cluster = clusters[0]["id"].as_str().unwrap().to_owned();
    ada.wait_for_phase(&ada_cluster, "Ready").await;
    // A kubeconfig is one click away, and the page says when the cluster goes.
    assert_eq!(ada.kubeconfig(&ada_cluster, "1").await.status(), 200);
    let detail: Value = ada.cluster(&ada_cluster).await.json().await.unwrap();
    assert!(detail["expiry"]["words"].as_str().unwrap().starts_with("in "), "{detail}");
    assert_eq!(detail["expiry"]["workshop"], true);
    // Its version and size are the organizer's.
    let change = ada.call("clusters/change", &[("id", &ada_cluster), ("servers", "3")]).await;
    assert_eq!(change.status(), 409);
    assert_eq!(detail["change"], Value::Null);

    // Joining again (by code, in any spelling) gives the same seat and cluster.
    let again = ada.join(&code(&board).to_lowercase().replace('-', " ")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<String>().await.unwrap(), ada_cluster);

    // The workshop cluster does not count against ada's own limit of one cluster.
    let own = ada.create_cluster(&[("name", "mine")]).await;
    assert_eq!(own.status(), 200, "{}", own.text().await.unwrap_or_default());

    // The code works for sign-up too; then the workshop is full.
    let bob = app.another_browser();
    assert_eq!(bob.register_with("bob", &[("workshop", &code(&board))]).await.status(), 200);
    assert_eq!(bob.all_clusters().await.len(), 1);
    let users_before = count(&app, "SELECT COUNT(*) FROM users").await;
    let late = app.another_browser().register_with("cyd", &[("workshop", &token)]).await;
    assert_eq!(late.status(), 403, "a full workshop admits nobody new");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, users_before, "no account made");
    let invitation: Value = app
        .another_browser()
        .call("workshops/invitation", &[("key", &token)])
        .await
        .json()
        .await
        .unwrap();
    assert!(
        invitation["closed_because"].as_str().unwrap_or_default().contains("full"),
        "the join page says it is full: {invitation}"
    );

    // The board shows both seats.
    let board = organizer.board(&id).await;
    let seats = board["seats"].as_array().unwrap();
    let names: Vec<&str> = seats.iter().map(|s| s["attendee"].as_str().unwrap()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(board["workshop"]["taken"], 2);
    let csv = organizer
        .client
        .get(format!("{}/workshops/{id}/seats.csv", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("attendee,joined_at,cluster,phase,last_api_request_at\r\nada,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    let stranger =
        ada.client.get(format!("{}/workshops/{id}/seats.csv", app.address)).send().await.unwrap();
    assert_eq!(stranger.status(), 404, "an attendee cannot export the seat list");

    // Reset ada's seat: a new cluster for her, the old one goes.
    let ada_seat = seats[0]["id"].as_str().unwrap().to_owned();
    let reset = organizer.call("workshops/reset-seat", &[("id", &id), ("seat", &ada_seat)]).await;
    assert_eq!(reset.status(), 200, "{}", reset.text().await.unwrap_or_default());
    let fresh: String = reset.json().await.unwrap();
    assert_ne!(fresh, ada_cluster);
    ada.wait_for_phase(&fresh, "Ready").await;
    eventually("ada's old cluster is gone", || async {
        !ada.all_clusters().await.iter().any(|c| c["id"] == ada_cluster.as_str())
    })
    .await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'workshop.seat_reset'").await,
        1
    );

    // Remove bob: his seat is free again and his workshop cluster goes; his account stays.
    let bob_seat = seats[1]["id"].as_str().unwrap().to_owned();
    let removed =
        organizer.call("workshops/remove-attendee", &[("id", &id), ("seat", &bob_seat)]).await;
    assert_eq!(removed.status(), 200);
    eventually("bob's workshop cluster is gone", || async { bob.all_clusters().await.is_empty() })
        .await;
    assert_eq!(organizer.board(&id).await["workshop"]["taken"], 1);

    // End now: every workshop cluster goes from the host; ada's own cluster stays.
    let end = organizer.call("workshops/end", &[("id", &id)]).await;
    assert_eq!(end.status(), 200, "{}", end.text().await.unwrap_or_default());
    eventually("the workshop clusters are gone", || async {
        count(&app, "SELECT COUNT(*) FROM clusters WHERE workshop_id IS NOT NULL").await == 0
    })
    .await;
    let left: Vec<String> =
        ada.all_clusters().await.iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, ["mine"]);
    let host = app.host().await;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(host);
    eventually("only ada's own cluster's namespace is left on the host", || async {
        let list = namespaces.list(&Default::default()).await.unwrap();
        list.items
            .iter()
            .filter(|ns| ns.metadata.name.as_deref().is_some_and(|n| n.starts_with("kraft-")))
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .count()
            == 1
    })
    .await;

    // An ended workshop takes nobody, not even a returning attendee.
    let after = ada.join(&token).await;
    assert_eq!(after.status(), 409);
    assert!(error_text(&after.text().await.unwrap()).contains("has ended"));
    assert_eq!(organizer.board(&id).await["workshop"]["phase"], "ended");
    app.stop().await;
}
on_both_backends!(a_workshop_from_join_to_end);

/// Only organizers organize, within their seat allowance; another organizer, an attendee and a
/// stranger get 404 for a workshop's board and every action on it.
async fn organizers_need_an_allowance_and_strangers_see_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.signup_mode = SignupMode::Open).await;
    let admin = app.browser();
    admin.sign_up_admin(&app, "root").await;
    let olga = app.another_browser();
    olga.sign_up("olga").await;
    let refused = olga.workshop("Mine", "3", &[]).await;
    assert_eq!(refused.status(), 403, "not an organizer yet");
    assert_eq!(olga.call("workshops/overview", &[]).await.status(), 403);

    // Only an admin hands out allowances.
    assert_eq!(
        olga.call("admin/organizer-seats", &[("username", "olga"), ("seats", "5")]).await.status(),
        403
    );
    let set = admin.call("admin/organizer-seats", &[("username", "olga"), ("seats", "5")]).await;
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap_or_default());
    let too_many = olga.workshop("Big", "6", &[]).await;
    assert_eq!(too_many.status(), 422);
    assert!(too_many.text().await.unwrap().contains("seats"));
    let board = olga.new_workshop("Small", "3").await;
    let id = workshop_id(&board);
    let over = olga.workshop("Second", "3", &[]).await;
    assert_eq!(over.status(), 422, "3 + 3 seats exceed the allowance of 5");
    assert_eq!(olga.workshop("Second", "2", &[]).await.status(), 200);

    // Bad input gets a message per field, and the template is checked like a normal create.
    let bad = olga
        .call(
            "workshops/create",
            &[
                ("title", ""),
                ("starts_at", "soon"),
                ("ends_at", ""),
                ("seats", "x"),
                ("servers", "2"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 422);
    let body = bad.text().await.unwrap();
    for field in ["title", "starts_at", "ends_at", "seats", "servers"] {
        assert!(body.contains(&format!("\"{field}\"")), "{field} named in {body}");
    }

    // Strangers: another organizer (the admin), an attendee, a plain user.
    let attendee = app.another_browser();
    attendee.sign_up("ann").await;
    assert_eq!(attendee.join(&link_token(&board)).await.status(), 200);
    let seat = olga.board(&id).await["seats"][0]["id"].as_str().unwrap().to_owned();
    for stranger in [&admin, &attendee] {
        for (endpoint, form) in [
            ("workshops/board", vec![("id", id.as_str())]),
            ("workshops/joining", vec![("id", id.as_str()), ("open", "false")]),
            ("workshops/extend", vec![("id", id.as_str()), ("minutes", "30")]),
            ("workshops/reset-seat", vec![("id", id.as_str()), ("seat", seat.as_str())]),
            ("workshops/remove-attendee", vec![("id", id.as_str()), ("seat", seat.as_str())]),
            ("workshops/end", vec![("id", id.as_str())]),
        ] {
            let response = stranger.call(endpoint, &form).await;
            assert_eq!(response.status(), 404, "{endpoint} by a stranger");
        }
    }
    // Nothing changed.
    let board = olga.board(&id).await;
    assert_eq!(board["workshop"]["joining_open"], true);
    assert_eq!(board["workshop"]["taken"], 1);

    // Closed joining says so; opening again lets people in.
    assert_eq!(
        olga.call("workshops/joining", &[("id", &id), ("open", "false")]).await.status(),
        200
    );
    let carl = app.another_browser();
    carl.sign_up("carl").await;
    let closed = carl.join(&code(&board)).await;
    assert_eq!(closed.status(), 409);
    assert!(error_text(&closed.text().await.unwrap()).contains("closed"));
    assert_eq!(
        olga.call("workshops/joining", &[("id", &id), ("open", "true")]).await.status(),
        200
    );
    assert_eq!(carl.join(&code(&board)).await.status(), 200);
    // A bogus key is simply not found.
    assert_eq!(carl.join("ZZZZ-ZZZZ").await.status(), 404);
    assert_eq!(carl.join("nonsense").await.status(), 404);
    app.stop().await;
}
on_both_backends!(organizers_need_an_allowance_and_strangers_see_nothing);

/// A workshop's clusters expire at its end plus the grace period: the reconciler deletes them
/// and audits it; extending the end moves the expiry.
async fn workshop_clusters_expire_after_the_end(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let organizer = app.browser();
    organizer.sign_up_admin(&app, "root").await;
    let (start, end) =
        (in_minutes(-1), (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339());
    let response = organizer
        .call(
            "workshops/create",
            &[
                ("title", "Quick"),
                ("starts_at", &start),
                ("ends_at", &end),
                ("seats", "3"),
                ("grace_minutes", "0"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let id: String = response.json().await.unwrap();
    let board = organizer.board(&id).await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;
    assert_eq!(ada.join(&code(&board)).await.status(), 200);
    assert_eq!(ada.all_clusters().await.len(), 1);
    eventually("the expired workshop cluster is gone", || async {
        ada.all_clusters().await.is_empty()
    })
    .await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'cluster.expired'").await,
        1
    );
    // Ended by its time: nobody joins, and it cannot be extended.
    assert_eq!(ada.join(&code(&board)).await.status(), 409);
    assert_eq!(
        organizer.call("workshops/extend", &[("id", &id), ("minutes", "30")]).await.status(),
        409
    );
    app.stop().await;
}
on_both_backends!(workshop_clusters_expire_after_the_end);

/// `next` after sign-in goes only to a path on this site.
async fn sign_in_goes_on_only_to_local_paths(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    for (next, expected) in [
        ("/join/ABCD-EFGH", "/join/ABCD-EFGH"),
        ("//evil.example/", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
    ] {
        let response = app
            .client
            .post(format!("{}/api/account/login", app.address))
            .header("Origin", &app.address)
            .form(&[("identifier", "ada"), ("password", crate::helpers::PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_eq!(location, expected, "next={next}");
    }
    app.stop().await;
}
on_both_backends!(sign_in_goes_on_only_to_local_paths);

/// A warm pool: clusters made ahead (never in the organizer's own list), handed Ready to
/// joining attendees at once, relabelled for them on the host, refilled while seats remain and
/// shrunk when fewer seats are left than clusters wait.
async fn a_warm_pool_hands_out_ready_clusters(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let organizer = app.browser();
    organizer.sign_up_admin(&app, "root").await;
    let response = organizer.workshop("Pooled", "3", &[("pool", "2")]).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let id: String = response.json().await.unwrap();
    eventually("the pool holds 2 Ready clusters", || async {
        organizer.board(&id).await["pool_ready"] == 2
    })
    .await;
    assert!(
        organizer.all_clusters().await.is_empty(),
        "pooled clusters are not the organizer's own"
    );
    let board = organizer.board(&id).await;

    let ada = app.another_browser();
    ada.sign_up("ada").await;
    let joined = ada.join(&code(&board)).await;
    assert_eq!(joined.status(), 200);
    let cluster: String = joined.json().await.unwrap();
    let mine = ada.all_clusters().await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], cluster.as_str());
    assert_eq!(mine[0]["phase"], "Ready", "a pooled cluster is Ready at once");
    assert_eq!(ada.kubeconfig(&cluster, "1").await.status(), 200);

    // On the host the namespace now names ada as its owner.
    let (namespace, ada_id) = {
        use sea_orm::ConnectionTrait;
        let db = app.database.connect().await;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                // ada's is the one workshop cluster out of the pool so far.
                "SELECT host_namespace, owner_id FROM clusters WHERE workshop_id IS NOT NULL AND pooled = false".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        let pair: (String, uuid::Uuid) =
            (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        db.close().await.unwrap();
        pair
    };
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(app.host().await);
    eventually("the namespace is relabelled for ada", || async {
        let ns = namespaces.get(&namespace).await.unwrap();
        ns.metadata.labels.unwrap_or_default().get("kraft.dev/owner-id")
            == Some(&ada_id.to_string())
    })
    .await;

    // 2 seats left: the pool refills to 2. Then 1 seat left: it gives one back.
    eventually("the pool is back at 2", || async { organizer.board(&id).await["pool_ready"] == 2 })
        .await;
    let bob = app.another_browser();
    bob.sign_up("bob").await;
    assert_eq!(bob.join(&code(&board)).await.status(), 200);
    eventually("the pool shrinks to the one seat left", || async {
        organizer.board(&id).await["pool_waiting"] == 1
    })
    .await;
    let cy = app.another_browser();
    cy.sign_up("cyd").await;
    assert_eq!(cy.join(&code(&board)).await.status(), 200);
    assert_eq!(cy.all_clusters().await[0]["phase"], "Ready");
    eventually("the pool is empty: no seat is left", || async {
        organizer.board(&id).await["pool_waiting"] == 0
    })
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM clusters WHERE workshop_id IS NOT NULL AND deleting_at IS NULL"
        )
        .await,
        3
    );
    app.stop().await;
}
on_both_backends!(a_warm_pool_hands_out_ready_clusters);

/// A room signs up from one address: sign-ups through a workshop's link are bounded by its seats,
/// not by the per-address sign-up limit, which still holds for everyone else.
async fn a_room_behind_one_address_can_all_sign_up_by_link(backend: Backend) {
    // The admin's own sign-up takes the one sign-up this address has an hour.
    let app = spawn_app_with(backend, |c| c.signup_limit_per_address = 1).await;
    let organizer = app.browser();
    organizer.sign_up_admin(&app, "root").await;
    let board = organizer.new_workshop("Room", "4").await;
    for name in ["ana", "ben", "cam", "dev"] {
        let response =
            app.another_browser().register_with(name, &[("workshop", &link_token(&board))]).await;
        assert_eq!(response.status(), 200, "{name}: {}", response.text().await.unwrap_or_default());
    }
    // The workshop is full now: the link admits nobody, and the limit applies again.
    assert_eq!(
        app.another_browser().register_with("eve", &[("workshop", &code(&board))]).await.status(),
        429
    );
    app.stop().await;
}
on_both_backends!(a_room_behind_one_address_can_all_sign_up_by_link);

/// An organizer who deletes their account ends their workshops first: the attendees' workshop
/// clusters leave the host; the attendees' accounts and own clusters stay.
async fn deleting_an_organizer_ends_their_workshops(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let admin = app.browser();
    admin.sign_up_admin(&app, "root").await;
    let olga = app.another_browser();
    olga.sign_up("olga").await;
    let set = admin.call("admin/organizer-seats", &[("username", "olga"), ("seats", "5")]).await;
    assert_eq!(set.status(), 200);
    let board = olga.new_workshop("Leaving", "3").await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;
    assert_eq!(ada.join(&code(&board)).await.status(), 200);
    assert_eq!(ada.create_cluster(&[("name", "mine")]).await.status(), 200);
    assert_eq!(ada.all_clusters().await.len(), 2);

    let deleted = olga
        .call(
            "account/delete",
            &[("password", crate::helpers::PASSWORD), ("confirm_username", "olga")],
        )
        .await;
    assert_eq!(deleted.status(), 200, "{}", deleted.text().await.unwrap_or_default());
    eventually("ada's workshop cluster is gone", || async {
        let names: Vec<String> = ada
            .all_clusters()
            .await
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        names == ["mine"]
    })
    .await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM workshops").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE username = 'ada'").await, 1);
    app.stop().await;
}
on_both_backends!(deleting_an_organizer_ends_their_workshops);

/// The board's websocket: the organizer gets the board at once and again when someone joins,
/// and each seat cluster's usage; a stranger's socket is refused like the board itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_is_live_on_one_websocket() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.metrics_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let organizer = app.browser();
    organizer.sign_up_admin(&app, "root").await;
    let board = organizer.new_workshop("Live", "5").await;
    let id = workshop_id(&board);
    let path = format!("/ws/workshops/{id}");
    let mut socket = organizer.websocket(&path).await.expect("websocket");
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "board");
    assert_eq!(first["board"]["seats"], serde_json::json!([]));

    let ada = app.another_browser();
    ada.sign_up("ada").await;
    assert_eq!(ada.join(&code(&board)).await.status(), 200);
    // The join shows up without asking, then the cluster's usage as it is measured.
    let mut seated = None;
    let mut sampled = false;
    while seated.is_none() || !sampled {
        let message = next_json(&mut socket).await;
        match message["type"].as_str() {
            Some("board") => {
                if let Some(seat) = message["board"]["seats"].as_array().and_then(|s| s.first()) {
                    assert_eq!(seat["attendee"], "ada");
                    seated = seat["cluster"]["id"].as_str().map(str::to_owned);
                }
            }
            Some("sample") | Some("history") => {
                sampled |= seated.as_deref() == message["cluster"].as_str();
            }
            _ => {}
        }
    }

    // Ada is no organizer of it: no socket, as no board.
    let refused = ada.websocket(&path).await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");
    app.stop().await;
}

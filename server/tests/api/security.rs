//! The request edge under attack: one test per finding of the security review that lives at the
//! edge (issue 13). Each is named for the behaviour the old code got wrong.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    browser, count, spawn_app, spawn_app_with, Backend, Socket, TestBrowser, PASSWORD,
};
use crate::on_both_backends;

async fn join_all<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

async fn open_socket(browser: &TestBrowser, path: &str) -> Socket {
    assert!(browser.session_cookie().is_some(), "signed in");
    browser.websocket(path).await.expect("websocket")
}

/// Reads until the server closes the socket (within 30 s, the bound); the close code.
async fn closed_within_30s(socket: &mut Socket) -> Option<CloseCode> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!("the socket was still open after 30 s"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => {
                let frame = frame.expect("a close frame with a reason");
                assert_eq!(frame.reason.as_str(), app::api::SIGNED_OUT_REASON);
                return Some(frame.code);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

const SIGNED_OUT: CloseCode = CloseCode::Library(app::api::SIGNED_OUT_CLOSE_CODE);

// 1. Websockets outlived logout, "sign out everywhere", password change and account deletion.

async fn live_sockets_close_when_their_session_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.browser();
    laptop.sign_up("ada").await;
    let phone = app.another_browser();
    assert_eq!(phone.login("ada", PASSWORD).await.status(), 200);

    // "Sign out everywhere else" from the laptop ends the phone's sockets, every kind of them.
    let mut list = open_socket(&phone, "/ws/clusters").await;
    let mut dashboard = open_socket(&phone, "/ws/dashboard").await;
    let mine = open_socket(&laptop, "/ws/clusters").await;
    let revoked = laptop.call("account/sessions/revoke-others", &[]).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(closed_within_30s(&mut list).await, Some(SIGNED_OUT));
    assert_eq!(closed_within_30s(&mut dashboard).await, Some(SIGNED_OUT));

    // Signing out closes the sockets of that session.
    let mut mine = mine;
    assert_eq!(laptop.logout().await.status(), 200);
    assert_eq!(closed_within_30s(&mut mine).await, Some(SIGNED_OUT));

    // A password change ends the sessions it replaces.
    assert_eq!(laptop.login("ada", PASSWORD).await.status(), 200);
    let mut before = open_socket(&laptop, "/ws/clusters").await;
    let new_password = "a completely new passphrase";
    let changed = laptop.change_password(PASSWORD, new_password).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(closed_within_30s(&mut before).await, Some(SIGNED_OUT));

    // Deleting the account ends everything.
    let mut last = open_socket(&laptop, "/ws/dashboard").await;
    let deleted = laptop
        .call("account/delete", &[("password", new_password), ("confirm_username", "ada")])
        .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(closed_within_30s(&mut last).await, Some(SIGNED_OUT));
}
on_both_backends!(live_sockets_close_when_their_session_ends);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_in_the_database_closes_its_socket_at_the_next_heartbeat() {
    // As if another replica revoked it: no broadcast reaches this one, only the database knows.
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let mut socket = open_socket(&ada, "/ws/clusters").await;
    let db = app.database.connect().await;
    db.execute_unprepared("DELETE FROM sessions").await.unwrap();
    assert_eq!(closed_within_30s(&mut socket).await, Some(SIGNED_OUT));
}

// 2. The login throttle checked before it recorded, so concurrent guesses all passed it.

async fn concurrent_wrong_logins_pass_the_throttle_at_most_five_times(backend: Backend) {
    let app = spawn_app(backend).await;
    app.browser().sign_up("ada").await;
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let browser = app.another_browser();
            async move { browser.login("ada", &format!("wrong guess number {i}")).await.status() }
        })
        .collect();
    let statuses = join_all(guesses).await;
    let wrong = statuses.iter().filter(|s| s.as_u16() == 401).count();
    let throttled = statuses.iter().filter(|s| s.as_u16() == 429).count();
    assert!(wrong <= 5, "{wrong} guesses were checked: {statuses:?}");
    assert_eq!(wrong + throttled, 40, "{statuses:?}");
}
on_both_backends!(concurrent_wrong_logins_pass_the_throttle_at_most_five_times);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_from_one_address_pass_its_limit_at_most_twenty_times() {
    let app = spawn_app(Backend::Sqlite).await;
    // Forty different (unknown) accounts: only the per-address limit applies.
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let browser = app.another_browser();
            async move { browser.login(&format!("nobody{i}"), "some wrong password").await.status() }
        })
        .collect();
    let statuses = join_all(guesses).await;
    let wrong = statuses.iter().filter(|s| s.as_u16() == 401).count();
    assert!(wrong <= 20, "{wrong} guesses were checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| s.as_u16() == 429).count(), 40 - wrong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_current_passwords_pass_the_throttle_at_most_five_times() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let changes: Vec<_> = (0..40)
        .map(|i| {
            let ada = ada.clone();
            async move {
                let guess = format!("wrong guess {i}");
                ada.change_password(&guess, "a completely new passphrase").await.status()
            }
        })
        .collect();
    let statuses = join_all(changes).await;
    let checked = statuses.iter().filter(|s| s.as_u16() != 429).count();
    assert!(checked <= 5, "{checked} current-password guesses were checked: {statuses:?}");

    let deletions: Vec<_> = (0..20)
        .map(|i| {
            let ada = ada.clone();
            async move {
                let password = format!("wrong guess {i}");
                ada.call("account/delete", &[("password", &password), ("confirm_username", "ada")])
                    .await
                    .status()
            }
        })
        .collect();
    let statuses = join_all(deletions).await;
    assert!(statuses.iter().all(|s| s.as_u16() == 429), "still locked: {statuses:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1, "nothing was deleted");
}

// 3. Behind a proxy every client was the proxy: one stranger locked everyone out.

fn with_forwarded_for(browser: &TestBrowser, address: &str) -> TestBrowser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    let client = reqwest::Client::builder()
        .cookie_provider(browser.jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    TestBrowser { address: browser.address.clone(), client, jar: browser.jar.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec![kraft::config::parse_network("127.0.0.1").unwrap()];
    })
    .await;
    app.browser().sign_up("alice").await;
    let attacker = with_forwarded_for(&app.another_browser(), "203.0.113.9");
    for i in 0..20 {
        let status = attacker.login(&format!("nobody{i}"), "wrong password").await.status();
        assert_eq!(status, 401);
    }
    assert_eq!(attacker.login("nobody", "wrong password").await.status(), 429, "the attacker is");
    let alice = with_forwarded_for(&app.another_browser(), "198.51.100.7");
    assert_eq!(alice.login("alice", PASSWORD).await.status(), 200, "alice is not locked out");

    // The session list and the audit trail show the client, not the proxy.
    let overview: Value = alice.overview().await.json().await.unwrap();
    let current = overview["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .expect("the current session")
        .clone();
    assert_eq!(current["client_addr"], "198.51.100.7");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE client_addr = '203.0.113.9'").await,
        20,
        "each failure is recorded with the attacker's address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: the TCP peer (127.0.0.1) is the client, whatever it claims.
    let app = spawn_app(Backend::Sqlite).await;
    for i in 0..20 {
        let liar = with_forwarded_for(&app.another_browser(), &format!("198.51.100.{i}"));
        assert_eq!(liar.login(&format!("nobody{i}"), "wrong password").await.status(), 401);
    }
    let liar = with_forwarded_for(&app.another_browser(), "192.0.2.200");
    assert_eq!(liar.login("nobody", "wrong password").await.status(), 429);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE client_addr = '127.0.0.1'").await,
        20
    );
}

// 4. Sign-up was unthrottled and shared the password-hashing capacity with sign-in.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_limited_per_address_and_in_total() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec![kraft::config::parse_network("127.0.0.1").unwrap()];
        c.signup_limit_per_address = 3;
        c.signup_limit_total = 5;
    })
    .await;
    let one = with_forwarded_for(&app.another_browser(), "203.0.113.9");
    for i in 0..3 {
        assert_eq!(one.register_with(&format!("one{i}"), &[]).await.status(), 200);
    }
    let refused = one.register_with("one3", &[]).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let other = with_forwarded_for(&app.another_browser(), "198.51.100.7");
    assert_eq!(other.register_with("other0", &[]).await.status(), 200);
    assert_eq!(other.register_with("other1", &[]).await.status(), 200);
    assert_eq!(other.register_with("other2", &[]).await.status(), 429, "the platform's limit");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_ups_does_not_make_sign_in_wait() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.signup_limit_per_address = 1000;
        c.signup_limit_total = 1000;
    })
    .await;
    app.browser().sign_up("ada").await;
    let flood: Vec<_> = (0..100)
        .map(|i| {
            let browser = app.another_browser();
            async move { browser.register_with(&format!("flood{i}"), &[]).await.status() }
        })
        .collect();
    let flood = tokio::spawn(join_all(flood));
    // Let the flood fill the sign-up hashing queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let login = app.another_browser().login("ada", PASSWORD).await;
    let took = started.elapsed();
    assert_eq!(login.status(), 200);
    let statuses = flood.await.unwrap();
    eprintln!(
        "login during 100 concurrent sign-ups: {took:?}; sign-ups: {} created, {} busy",
        statuses.iter().filter(|s| s.as_u16() == 200).count(),
        statuses.iter().filter(|s| s.as_u16() == 503).count()
    );
    assert!(took < Duration::from_secs(2), "the login took {took:?}");
}

// 5. The per-user cluster limit was count-then-insert.

async fn parallel_creates_cannot_pass_the_cluster_limit(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.max_clusters = 3).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let creates: Vec<_> = (0..10)
        .map(|i| {
            let ada = ada.clone();
            async move { ada.create_cluster(&[("name", &format!("c{i}"))]).await.status() }
        })
        .collect();
    let statuses = join_all(creates).await;
    assert!(statuses.iter().filter(|s| s.is_success()).count() <= 3, "{statuses:?}");
    assert!(count(&app, "SELECT COUNT(*) FROM clusters").await <= 3);
    assert!(ada.clusters().await.len() <= 3);
}
on_both_backends!(parallel_creates_cannot_pass_the_cluster_limit);

// 6. SAN parsing: `platform::clusters::spec` tests
//    `an_oversize_san_field_is_refused_before_it_is_parsed` (a unit test: the server function's
//    body limit keeps a 300,000-SAN field from arriving over HTTP at all).

// 7. Cookieless failed form posts each created a 7-day session row.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookieless_failed_form_posts_leave_no_session_rows() {
    let app = spawn_app(Backend::Sqlite).await;
    let before = count(&app, "SELECT COUNT(*) FROM sessions").await;
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let posts: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let url = app.url("/api/account/register");
            let referer = app.url("/register");
            async move {
                for _ in 0..125 {
                    let response = client
                        .post(&url)
                        .header("Accept", "text/html")
                        .header("Referer", &referer)
                        .form(&[
                            ("email", ""),
                            ("username", ""),
                            ("password", ""),
                            ("password_confirm", ""),
                        ])
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        response.status().is_redirection(),
                        "a plain form post goes back to its page: {}",
                        response.status()
                    );
                }
            }
        })
        .collect();
    join_all(posts).await;
    let after = count(&app, "SELECT COUNT(*) FROM sessions").await;
    assert!(after - before < 10, "{} session rows for 1,000 failed posts", after - before);

    // The outcome still reaches the page, in a signed short-lived cookie.
    let (browser, _) = browser();
    let response = browser
        .post(app.url("/api/account/register"))
        .header("Accept", "text/html")
        .header("Referer", app.url("/register"))
        .form(&[("email", "nope"), ("username", "ada"), ("password", ""), ("password_confirm", "")])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("kraft_flash="), "{cookie}");
    assert!(cookie.contains("Max-Age=120") && cookie.contains("HttpOnly"), "{cookie}");
    let page = browser.get(app.url("/register")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("email address like"), "the form's errors are shown");
    // A forged flash is ignored.
    let forged = reqwest::Client::new()
        .get(app.url("/register"))
        .header("Cookie", "kraft_flash=eyJmb3JtIjoicmVnaXN0ZXIifQ.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);
}

// 8. The first account became admin: `accounts::the_first_stranger_to_register_is_not_admin`.

// 9. Response headers: CSP, nosniff, no framing, Referrer-Policy, HSTS; the Origin check's scheme.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_content_security_policy_their_scripts_satisfy() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app.get("/login").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("referrer-policy"));
    assert!(!headers.contains_key("strict-transport-security"), "not over plain HTTP");
    let policy = headers["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("object-src 'none'"), "{policy}");
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src "))
        .expect("a script-src directive")
        .to_owned();
    assert!(!script_src.contains("'unsafe-inline'"), "{script_src}");
    assert!(!script_src.contains("'unsafe-eval'"), "{script_src}");
    let nonce = script_src
        .split_whitespace()
        .find_map(|s| s.strip_prefix("'nonce-").and_then(|n| n.strip_suffix('\'')))
        .expect("a nonce")
        .to_owned();
    let html = page.text().await.unwrap();
    // Every inline script carries the nonce; no script comes from elsewhere.
    for tag in html.split("<script").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        let external = tag.contains("src=");
        assert!(
            tag.contains(&format!("nonce=\"{nonce}\"")) || (external && !tag.contains("://")),
            "a script the policy refuses: <script{tag}>"
        );
    }
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration script has the nonce");
    // A fresh nonce per response.
    let again = app.get("/login").await;
    assert_ne!(again.headers()["content-security-policy"].to_str().unwrap(), policy);

    // Anything else (files, JSON) may do nothing at all.
    let health = app.get("/healthz").await;
    let policy = health.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_origin_check_compares_the_scheme_and_hsts_is_sent() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.secure_cookies = true;
        c.trusted_proxies = vec![kraft::config::parse_network("127.0.0.1").unwrap()];
    })
    .await;
    let health = app.get("/healthz").await;
    assert_eq!(health.headers()["strict-transport-security"], "max-age=31536000");
    let host = app.address.trim_start_matches("http://").to_owned();
    let post = |origin: String, proto: &'static str| {
        let client = reqwest::Client::new();
        let url = app.url("/api/account/login");
        async move {
            client
                .post(url)
                .header("Accept", "application/json")
                .header("Origin", origin)
                .header("X-Forwarded-Proto", proto)
                .form(&[("identifier", "nobody"), ("password", "wrong password")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The site is https (the proxy says so): a page on http://same-host is another origin.
    assert_eq!(post(format!("http://{host}"), "https").await, 403);
    assert_eq!(post(format!("https://{host}"), "https").await, 401, "same origin: checked");
    assert_eq!(post(format!("https://{host}"), "http").await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_for_clients_that_ask_for_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = uuid::Uuid::new_v4();
    let text = ada
        .client
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod=x")))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 404);
    assert_eq!(text.text().await.unwrap(), "Not found.");
    let json = ada
        .client
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod=x")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 404);
    let body: Value = json.json().await.unwrap();
    assert_eq!(body["message"], "Not found.");
    assert_eq!(body["error"], "NotFound", "the encoding server functions use");
    // A stranger's cluster, a random id and garbage all answer the same.
    let garbage = ada
        .client
        .get(app.url("/api/clusters/not-a-uuid/logs/download?pod=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 404);
    assert_eq!(garbage.text().await.unwrap(), "Not found.");
    let anonymous = reqwest::Client::new()
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod=x")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

// 10. In invite mode, "email already exists" was answered before the invite code was checked.

async fn in_invite_mode_a_bogus_code_reveals_nothing_about_emails(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.signup_mode = kraft::config::SignupMode::Invite).await;
    app.browser().sign_up_admin(&app, "ada").await;
    let mallory = app.another_browser();
    let response = mallory
        .call(
            "account/register",
            &[
                ("email", "ada@example.org"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("invite", "kraft-bogus"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> =
        body["Invalid"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["invite"], "only the code is wrong, as far as a stranger learns: {body}");
}
on_both_backends!(in_invite_mode_a_bogus_code_reveals_nothing_about_emails);

// 11. The orphan sweep deleted every `managed-by=kraft` namespace without a row: another install's.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_leaves_another_installations_tenants_alone() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("mine").await;
    ada.wait_for_phase(&id, "Ready").await;
    let api: Api<Namespace> = Api::all(app.host().await);
    let namespace = |name: &str, installation: Option<String>| -> Namespace {
        let mut labels = serde_json::json!({
            "app.kubernetes.io/managed-by": "kraft",
            "kraft.dev/cluster-id": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(installation) = installation {
            labels["kraft.dev/installation"] = installation.into();
        }
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap()
    };
    let theirs = namespace("kraft-theirs-1234", Some(uuid::Uuid::new_v4().to_string()));
    let unlabelled = namespace("kraft-unlabelled-1234", None);
    let ours = namespace("kraft-ours-1234", Some(app.installation_id.to_string()));
    for ns in [&theirs, &unlabelled, &ours] {
        api.create(&PostParams::default(), ns).await.unwrap();
    }
    // Our own orphan goes; once it has, the sweep has looked at the others too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt("kraft-ours-1234").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "our orphan was never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api.get_opt("kraft-theirs-1234").await.unwrap().is_some(), "another KRaft's tenant");
    assert!(api.get_opt("kraft-unlabelled-1234").await.unwrap().is_some(), "no installation label");
    // Our own clusters carry the label.
    let labels = api.list(&Default::default()).await.unwrap().items.into_iter().find_map(|ns| {
        let labels = ns.metadata.labels.unwrap_or_default();
        (labels.get("kraft.dev/cluster-id") == Some(&id)).then_some(labels)
    });
    let installation = app.installation_id.to_string();
    assert_eq!(labels.expect("mine").get("kraft.dev/installation"), Some(&installation));
}

//! Accounts through HTTP, as the browser uses them.

use std::time::Duration;

use kraft::config::SignupMode;
use serde_json::{json, Value};

use crate::helpers::{count, spawn_app, spawn_app_with, Backend, TestBrowser, PASSWORD};
use crate::on_both_backends;

fn field_messages(body: &Value) -> Vec<(String, String)> {
    body["Invalid"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap_or("").to_owned(),
                        f["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn registering_signs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    let response = ada.register("Ada@Example.org", "ada", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["location"], "/account", "sign-up leads to the account page");

    let overview: Value = ada.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["username"], "ada");
    assert_eq!(overview["user"]["email"], "ada@example.org", "emails are case-folded");
}
on_both_backends!(registering_signs_in);

/// Security item 8: on a public install the first stranger to register became admin. With a
/// real host configured the first admin needs the one-time setup token from the server log.
async fn the_first_stranger_to_register_is_not_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.setup_token.clone().expect("a setup token is printed while no admin exists");
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    let overview: Value = mallory.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["admin"], false, "being first is not enough");

    // A wrong token is refused before anything else is looked at, and makes no account.
    let guess = app.another_browser();
    let refused = guess.register_with("mallory", &[("setup_token", "kraft-setup-guess")]).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(field_messages(&body)[0].0, "setup_token", "not 'username taken': {body}");

    let root = app.another_browser();
    root.sign_up_admin(&app, "root").await;
    let overview: Value = root.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["admin"], true, "the setup token makes the first admin");

    // It works once.
    let again = app.another_browser().register_with("eve", &[("setup_token", &token)]).await;
    assert_eq!(again.status(), 422);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 1);
}
on_both_backends!(the_first_stranger_to_register_is_not_admin);

/// The token also opens a closed or invite-only KRaft for its first admin (who then invites).
async fn the_setup_token_makes_the_first_admin_when_sign_up_is_closed(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.signup_mode = SignupMode::Closed).await;
    assert_eq!(app.another_browser().register_with("bob", &[]).await.status(), 403);
    let root = app.another_browser();
    root.sign_up_admin(&app, "root").await;
    let overview: Value = root.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["admin"], true);
}
on_both_backends!(the_setup_token_makes_the_first_admin_when_sign_up_is_closed);

/// Zero-config local KRaft keeps the convenience: the first account is admin.
async fn with_first_account_bootstrap_the_first_account_is_admin(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.admin_bootstrap = Some(kraft::config::BootstrapArg::FirstAccount)
    })
    .await;
    assert!(app.setup_token.is_none(), "no token in first-account mode");
    let ada = app.browser();
    ada.sign_up("ada").await;
    let overview: Value = ada.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["admin"], true, "the first account is admin");
    let bob = app.another_browser();
    bob.sign_up("bob").await;
    let overview: Value = bob.overview().await.json().await.unwrap();
    assert_eq!(overview["user"]["admin"], false, "only the first account is admin");
}
on_both_backends!(with_first_account_bootstrap_the_first_account_is_admin);

#[test]
fn zero_config_uses_first_account_and_a_real_host_uses_the_token() {
    use clap::Parser;
    use platform::accounts::AdminBootstrap;
    let config = kraft::cli::Cli::try_parse_from(["kraft"]).unwrap().config;
    assert_eq!(config.admin_bootstrap(), AdminBootstrap::FirstAccount);
    let config =
        kraft::cli::Cli::try_parse_from(["kraft", "--host-kubeconfig", "/k"]).unwrap().config;
    assert_eq!(config.admin_bootstrap(), AdminBootstrap::Token);
    let config =
        kraft::cli::Cli::try_parse_from(["kraft", "--admin-bootstrap", "token"]).unwrap().config;
    assert_eq!(config.admin_bootstrap(), AdminBootstrap::Token);
}

async fn racing_first_sign_ups_make_exactly_one_admin(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.admin_bootstrap = Some(kraft::config::BootstrapArg::FirstAccount)
    })
    .await;
    let browsers: Vec<_> = (0..6).map(|_| app.another_browser()).collect();
    let sign_ups = browsers.iter().enumerate().map(|(i, b)| async move {
        b.register(&format!("racer{i}@example.org"), &format!("racer{i}"), PASSWORD).await.status()
    });
    let statuses = futures_join_all(sign_ups).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 6);
}
on_both_backends!(racing_first_sign_ups_make_exactly_one_admin);

async fn racing_setup_tokens_make_exactly_one_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.setup_token.clone().unwrap();
    let browsers: Vec<_> = (0..6).map(|_| app.another_browser()).collect();
    let sign_ups =
        browsers.iter().enumerate().map(|(i, b)| {
            let token = token.clone();
            async move {
                b.register_with(&format!("racer{i}"), &[("setup_token", &token)]).await.status()
            }
        });
    let statuses = futures_join_all(sign_ups).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 1);
}
on_both_backends!(racing_setup_tokens_make_exactly_one_admin);

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    // Poll them all concurrently on this task.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    for r in results {
        out.extend(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_explains_every_bad_field_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .browser()
        .call(
            "account/register",
            &[
                ("email", "not-an-email"),
                ("username", "Ab"),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let fields = field_messages(&response.json().await.unwrap());
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["email", "username", "password"], "{fields:?}");
    assert!(fields[0].1.contains("email address like"), "{fields:?}");
    assert!(fields[1].1.contains("3 to 32"), "{fields:?}");
    assert!(fields[2].1.contains("at least 12"), "{fields:?}");

    let mismatch = app
        .browser()
        .call(
            "account/register",
            &[
                ("email", "ada@example.org"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_confirm", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), 422);
    assert_eq!(field_messages(&mismatch.json().await.unwrap())[0].0, "password_confirm");
}

async fn emails_and_usernames_are_unique_ignoring_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.browser().sign_up("ada").await;
    let again = app.another_browser().register("ADA@example.org", "ada", PASSWORD).await;
    assert_eq!(again.status(), 422);
    let fields = field_messages(&again.json().await.unwrap());
    assert_eq!(
        fields,
        [
            ("email".to_owned(), "An account with this email already exists.".to_owned()),
            ("username".to_owned(), "This username is taken.".to_owned())
        ]
    );
}
on_both_backends!(emails_and_usernames_are_unique_ignoring_case);

async fn login_works_with_email_or_username(backend: Backend) {
    let app = spawn_app(backend).await;
    app.browser().sign_up("ada").await;
    for identifier in ["ada", "ADA@example.org", " ada@example.org "] {
        let browser = app.another_browser();
        let response = browser.login(identifier, PASSWORD).await;
        assert_eq!(response.status(), 200, "{identifier}");
        assert_eq!(browser.overview().await.status(), 200, "{identifier}");
    }
}
on_both_backends!(login_works_with_email_or_username);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_account_and_wrong_password_look_the_same() {
    let app = spawn_app(Backend::Postgres).await;
    app.browser().sign_up("ada").await;
    let wrong = app.another_browser().login("ada", "not the password at all").await;
    let unknown = app.another_browser().login("nobody", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(wrong, unknown);
    assert_eq!(serde_json::from_str::<Value>(&wrong).unwrap(), json!("BadCredentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_throttled_after_five_failures_even_for_the_right_password() {
    let app = spawn_app(Backend::Postgres).await;
    app.browser().sign_up("ada").await;
    let attacker = app.another_browser();
    for _ in 0..5 {
        assert_eq!(attacker.login("ada", "guess guess guess").await.status(), 401);
    }
    let refused = attacker.login("ada", PASSWORD).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["TooManyRequests"]["retry_after_secs"], retry_after);
    // Unknown accounts are throttled the same way, so throttling reveals nothing.
    for _ in 0..5 {
        attacker.login("nobody", "guess guess guess").await;
    }
    assert_eq!(attacker.login("nobody", "guess guess guess").await.status(), 429);
}

/// Two replicas on one database count the same failures: an attacker cannot get five guesses per
/// replica by spreading them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_two_replicas_count_together() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = app.replica().await;
    app.browser().sign_up("ada").await;
    let (client, jar) = crate::helpers::browser();
    let on_app =
        TestBrowser { address: app.address.clone(), client: client.clone(), jar: jar.clone() };
    let on_replica = TestBrowser { address: replica.address.clone(), client, jar };
    for i in 0..5 {
        let attacker = if i % 2 == 0 { &on_app } else { &on_replica };
        assert_eq!(attacker.login("ada", "guess guess guess").await.status(), 401);
    }
    assert_eq!(on_replica.login("ada", PASSWORD).await.status(), 429);
    assert_eq!(on_app.login("ada", PASSWORD).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_address_is_throttled_across_accounts() {
    let app = spawn_app(Backend::Sqlite).await;
    app.browser().sign_up("ada").await;
    let attacker = app.another_browser();
    for i in 0..20 {
        assert_eq!(attacker.login(&format!("victim{i}"), "guess guess guess").await.status(), 401);
    }
    // A fresh account name, from the same address.
    assert_eq!(attacker.login("ada", PASSWORD).await.status(), 429);
}

async fn logging_in_rotates_the_session_id_and_kills_the_old_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let first = ada.session_cookie().expect("a session cookie after sign-up");
    assert_eq!(ada.login("ada", PASSWORD).await.status(), 200);
    let second = ada.session_cookie().expect("a session cookie after login");
    assert_ne!(first, second, "login must issue a new session id");
    assert_eq!(ada.overview_with_cookie(&first).await, 401, "the old session id still works");
    assert_eq!(ada.overview_with_cookie(&second).await, 200);
}
on_both_backends!(logging_in_rotates_the_session_id_and_kills_the_old_one);

async fn logging_out_kills_the_session_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let cookie = ada.session_cookie().unwrap();
    let response = ada.logout().await;
    assert_eq!(response.status(), 200);
    assert_eq!(ada.overview().await.status(), 401);
    assert_eq!(ada.overview_with_cookie(&cookie).await, 401, "a replayed cookie must not work");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 0);
}
on_both_backends!(logging_out_kills_the_session_on_the_server);

async fn changing_the_password_signs_out_other_sessions_and_rotates_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.browser();
    laptop.sign_up("ada").await;
    let phone = app.another_browser();
    assert_eq!(phone.login("ada", PASSWORD).await.status(), 200);
    let before = laptop.session_cookie().unwrap();

    let new_password = "a completely new passphrase";
    let wrong = laptop.change_password("not my password!", new_password).await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(field_messages(&wrong.json().await.unwrap())[0].0, "current_password");

    let changed = laptop.change_password(PASSWORD, new_password).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(laptop.overview().await.status(), 200, "this session stays signed in");
    assert_ne!(laptop.session_cookie().unwrap(), before, "this session got a new id");
    assert_eq!(laptop.overview_with_cookie(&before).await, 401);
    assert_eq!(phone.overview().await.status(), 401, "other sessions are signed out");

    assert_eq!(
        app.another_browser().login("ada", PASSWORD).await.status(),
        401,
        "the old password still works"
    );
    assert_eq!(app.another_browser().login("ada", new_password).await.status(), 200);
}
on_both_backends!(changing_the_password_signs_out_other_sessions_and_rotates_this_one);

async fn sessions_are_listed_and_can_be_signed_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.browser();
    laptop.sign_up("ada").await;
    let phone = app.another_browser();
    phone
        .client
        .post(format!("{}/api/account/login", phone.address))
        .header("Accept", "application/json")
        .header("User-Agent", "Phone Browser/1.0")
        .form(&[("identifier", "ada"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let overview: Value = laptop.overview().await.json().await.unwrap();
    let sessions = overview["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["user_agent"], "Phone Browser/1.0");
    assert_eq!(other["client_addr"], "127.0.0.1");

    // Someone else cannot sign out Ada's phone: same answer as for nothing at all.
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    let id = other["id"].as_str().unwrap();
    assert_eq!(mallory.call("account/sessions/revoke", &[("id", id)]).await.status(), 404);
    assert_eq!(
        mallory.call("account/sessions/revoke", &[("id", "not-a-uuid")]).await.status(),
        404
    );
    assert_eq!(phone.overview().await.status(), 200);

    assert_eq!(laptop.call("account/sessions/revoke", &[("id", id)]).await.status(), 200);
    assert_eq!(phone.overview().await.status(), 401);
    assert_eq!(laptop.overview().await.status(), 200);

    let tablet = app.another_browser();
    tablet.login("ada", PASSWORD).await;
    let revoked: Value =
        laptop.call("account/sessions/revoke-others", &[]).await.json().await.unwrap();
    assert_eq!(revoked, json!(1));
    assert_eq!(tablet.overview().await.status(), 401);
    assert_eq!(laptop.overview().await.status(), 200);
}
on_both_backends!(sessions_are_listed_and_can_be_signed_out);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_shows_what_happened_to_the_account() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    app.another_browser().login("ada", "wrong wrong wrong").await;
    ada.login("ada", PASSWORD).await;
    let overview: Value = ada.overview().await.json().await.unwrap();
    let actions: Vec<&str> = overview["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["login.succeeded", "login.failed", "account.registered"]);
    assert_eq!(overview["events"][1]["client_addr"], "127.0.0.1");
}

async fn deleting_the_account_removes_it_and_its_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let phone = app.another_browser();
    phone.login("ada", PASSWORD).await;

    let typo =
        ada.call("account/delete", &[("password", PASSWORD), ("confirm_username", "adda")]).await;
    assert_eq!(typo.status(), 422);
    assert_eq!(field_messages(&typo.json().await.unwrap())[0].0, "confirm_username");
    let wrong = ada
        .call("account/delete", &[("password", "not my password!"), ("confirm_username", "ada")])
        .await;
    assert_eq!(wrong.status(), 422);

    let deleted =
        ada.call("account/delete", &[("password", PASSWORD), ("confirm_username", "ada")]).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.headers()["location"], "/goodbye");
    assert_eq!(ada.overview().await.status(), 401);
    assert_eq!(phone.overview().await.status(), 401);
    assert_eq!(app.another_browser().login("ada", PASSWORD).await.status(), 401);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE subject_id IS NOT NULL OR actor_id IS NOT NULL").await,
        0,
        "nothing of the person is left in the audit trail"
    );
    // The name is free again.
    app.another_browser().sign_up("ada").await;
}
on_both_backends!(deleting_the_account_removes_it_and_its_sessions);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_mode_needs_a_single_use_code() {
    let app = spawn_app_with(Backend::Postgres, |c| c.signup_mode = SignupMode::Invite).await;
    let without = app.browser().register("ada@example.org", "ada", PASSWORD).await;
    assert_eq!(without.status(), 422);
    assert_eq!(field_messages(&without.json().await.unwrap())[0].0, "invite");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(["admin", "invite", "--valid-for", "1d"])
        .env("DATABASE_URL", app.database.url().unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let code = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(code.starts_with("kraft-"), "{code}");

    let register = |browser: crate::helpers::TestBrowser, name: &'static str, code: String| async move {
        browser
            .call(
                "account/register",
                &[
                    ("email", &format!("{name}@example.org")),
                    ("username", name),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("invite", &code),
                ],
            )
            .await
    };
    assert_eq!(register(app.another_browser(), "ada", code.clone()).await.status(), 200);
    let reused = register(app.another_browser(), "bob", code).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(
        field_messages(&reused.json().await.unwrap())[0].1,
        "This invite code is not valid or was already used."
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users").await,
        1,
        "the failed sign-up left nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_sign_up_is_refused() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.signup_mode = SignupMode::Closed).await;
    let response = app.browser().register("ada@example.org", "ada", PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap(), json!("SignupClosed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_their_absolute_lifetime() {
    let app =
        spawn_app_with(Backend::Sqlite, |c| c.session_absolute = Duration::from_secs(1)).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    assert_eq!(ada.overview().await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ada.overview().await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.browser().register("ada@example.org", "ada", PASSWORD).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("kraft_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");

    // Served over HTTPS (behind TLS), the page the browser posts from is https too.
    let secure = spawn_app_with(Backend::Sqlite, |c| c.secure_cookies = true).await;
    let response = secure
        .client
        .post(secure.url("/api/account/register"))
        .header("Accept", "application/json")
        .header("Origin", secure.address.replace("http://", "https://"))
        .form(&[
            ("email", "ada@example.org"),
            ("username", "ada"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_posts_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .client
        .post(app.url("/api/account/register"))
        .header("Origin", "https://evil.example")
        .header("Accept", "application/json")
        .form(&[
            ("email", "ada@example.org"),
            ("username", "ada"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}

async fn forms_work_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.url("/register");
    // A plain HTML form post: the browser accepts HTML and says where it came from.
    let post = |form: Vec<(&'static str, &'static str)>| {
        app.client
            .post(app.url("/api/account/register"))
            .header("Accept", "text/html,application/xhtml+xml")
            .header("Referer", &page)
            .header("Origin", &app.address)
            .form(&form)
            .send()
    };
    let failed = post(vec![
        ("email", "ada@example.org"),
        ("username", "A"),
        ("password", "x"),
        ("password_confirm", "x"),
    ])
    .await
    .unwrap();
    assert_eq!(failed.status(), 302);
    let location = failed.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&page), "back to the form: {location}");

    let html = app.client.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("A username has 3 to 32 characters."), "the error is shown:\n{html}");
    assert!(html.contains("value=\"ada@example.org\""), "what was typed is kept");
    // Shown once: a reload is clean.
    let again = app.client.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("A username has 3 to 32 characters."));

    let ok = post(vec![
        ("email", "ada@example.org"),
        ("username", "ada"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ])
    .await
    .unwrap();
    assert_eq!(ok.status(), 302);
    assert_eq!(ok.headers()["location"], "/account");
    let account = app.client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("Your account"), "{account}");
    assert!(account.contains("ada@example.org"));
}
on_both_backends!(forms_work_without_javascript);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_creates_users_from_standard_input() {
    use std::io::Write;
    let app = spawn_app(Backend::Postgres).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args([
            "admin",
            "create-user",
            "--email",
            "root@example.org",
            "--username",
            "root",
            "--admin",
        ])
        .env("DATABASE_URL", app.database.url().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let overview = {
        let root = app.browser();
        assert_eq!(root.login("root", PASSWORD).await.status(), 200);
        root.overview().await.json::<Value>().await.unwrap()
    };
    assert_eq!(overview["user"]["admin"], true);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(["admin", "create-user", "--email", "nope", "--username", "x"])
        .env("DATABASE_URL", app.database.url().unwrap())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("email: Enter an email address")
            && stderr.contains("username: A username has 3 to 32"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_accounts_and_issue_invites() {
    let app = spawn_app_with(Backend::Postgres, |c| c.signup_mode = SignupMode::Invite).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(["admin", "invite"])
        .env("DATABASE_URL", app.database.url().unwrap())
        .output()
        .unwrap();
    let first = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let register = |browser: &crate::helpers::TestBrowser, name: &str, code: &str| {
        let form = [
            ("email", format!("{name}@example.org")),
            ("username", name.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("password_confirm", PASSWORD.to_owned()),
            ("invite", code.to_owned()),
        ];
        let browser = browser.clone();
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.call("account/register", &form).await
        }
    };
    let ada = app.browser();
    assert_eq!(register(&ada, "ada", &first).await.status(), 200, "the command line's code works");
    assert_eq!(ada.call("admin/invite", &[]).await.status(), 403, "ada is no admin");
    let root = app.another_browser();
    root.sign_up_admin(&app, "root").await;

    // The admin hands out a code from the UI; it works once.
    let issued = root.call("admin/invite", &[]).await;
    assert_eq!(issued.status(), 200);
    let code: String = issued.json().await.unwrap();
    assert!(code.starts_with("kraft-"), "{code}");
    let bob = app.another_browser();
    assert_eq!(register(&bob, "bob", &code).await.status(), 200);
    assert_eq!(register(&app.another_browser(), "eve", &code).await.status(), 422);

    let overview: serde_json::Value = root.call("admin/users", &[]).await.json().await.unwrap();
    let names: Vec<&str> = overview["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "root", "bob"]);
    assert_eq!(overview["users"][0]["admin"], false);
    assert_eq!(overview["users"][1]["admin"], true);
    assert_eq!(overview["users"][2]["admin"], false);
    assert_eq!(overview["users"][2]["clusters"], 0);
    assert_eq!(overview["limits"]["signup"], "invite");
    assert_eq!(overview["limits"]["tenant_cpu"], "4");

    // Everyone else is refused.
    assert_eq!(bob.call("admin/users", &[]).await.status(), 403);
    assert_eq!(bob.call("admin/invite", &[]).await.status(), 403);
    assert_eq!(app.another_browser().call("admin/invite", &[]).await.status(), 401);
}

/// Issue 19: in approval mode a new account waits, signed out, until an admin approves it; the
/// first admin (setup token) and a workshop's attendees are not held.
async fn approval_mode_holds_a_new_account_until_approved(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.signup_mode = SignupMode::Approval).await;
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    assert_eq!(root.call("clusters/list", &[]).await.status(), 200, "the first admin is in");

    let ada = app.another_browser();
    let response = ada.register_with("ada", &[]).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    assert_eq!(ada.session_cookie(), None, "no session before approval");
    assert_eq!(ada.call("clusters/list", &[]).await.status(), 401);
    let held = ada.login("ada", PASSWORD).await;
    assert_eq!(held.status(), 403);
    assert!(held.text().await.unwrap().contains("approval"));
    // An admin cannot "enable" it around the approval, and a user cannot approve.
    let eve_browser = app.another_browser();
    assert_eq!(eve_browser.call("admin/users/approve", &[("username", "ada")]).await.status(), 401);
    let listed: Value = root.call("admin/users", &[]).await.json().await.unwrap();
    let row = listed["users"].as_array().unwrap().iter().find(|u| u["username"] == "ada").cloned();
    assert_eq!(row.unwrap()["awaiting_approval"], true);
    let enable =
        root.call("admin/users/disabled", &[("username", "ada"), ("disabled", "false")]).await;
    assert_eq!(enable.status(), 403);

    let approved = root.call("admin/users/approve", &[("username", "ada")]).await;
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap_or_default());
    assert_eq!(ada.login("ada", PASSWORD).await.status(), 200);
    assert_eq!(ada.call("clusters/list", &[]).await.status(), 200);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'account.approved'").await,
        1
    );
    // Approving twice says so.
    assert_eq!(root.call("admin/users/approve", &[("username", "ada")]).await.status(), 403);
    app.stop().await;
}
on_both_backends!(approval_mode_holds_a_new_account_until_approved);

//! Single sign-on against an OpenID provider this test controls (`FakeIdp`): discovery, keys,
//! and a token endpoint that checks PKCE and redeems each code once, then answers with an ID
//! token made as the test asks: well-formed, or signed by the wrong key, expired, for another
//! audience or nonce. The browser tests drive a real provider (`oidc-provider`) end to end; these
//! show what KRaft refuses and which account an identity reaches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserEmail, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl,
    JsonWebKeyId, Nonce, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{count, spawn_app_with, Backend, TestApp, TestBrowser, PASSWORD};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Groups {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
}

impl AdditionalClaims for Groups {}

/// Who signs in at the provider.
#[derive(Debug, Clone)]
struct Person {
    sub: String,
    email: Option<String>,
    verified: bool,
    username: String,
    groups: Vec<String>,
}

fn person(name: &str) -> Person {
    Person {
        sub: format!("sub-{name}"),
        email: Some(format!("{name}@idp.example")),
        verified: true,
        username: name.to_owned(),
        groups: Vec::new(),
    }
}

/// How the provider spoils the ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Twist {
    None,
    /// Signed by another key under the published key's id.
    BadSignature,
    Expired,
    WrongAudience,
    WrongNonce,
    WrongIssuer,
}

struct Grant {
    nonce: String,
    challenge: String,
    person: Person,
    twist: Twist,
    used: bool,
}

struct Idp {
    issuer: String,
    /// (kid, PKCS#1 PEM) of every key; `published` of them are in the JWKS, `signing` signs.
    keys: Vec<(String, String)>,
    published: Vec<usize>,
    signing: usize,
    codes: HashMap<String, Grant>,
}

#[derive(Clone)]
struct FakeIdp {
    url: String,
    inner: Arc<Mutex<Idp>>,
}

fn rsa_pem() -> String {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pem").to_string()
}

fn signing_key(kid: &str, pem: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_owned()))).expect("key")
}

impl FakeIdp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Mutex::new(Idp {
            issuer: url.clone(),
            keys: vec![("key-a".into(), rsa_pem()), ("key-b".into(), rsa_pem())],
            published: vec![0],
            signing: 0,
            codes: HashMap::new(),
        }));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, inner }
    }

    /// The provider signs with its second key from now on, and publishes both.
    fn rotate(&self) {
        let mut idp = self.inner.lock().unwrap();
        idp.published = vec![0, 1];
        idp.signing = 1;
    }

    /// What the provider's login page does: the person signs in, a code is issued for them.
    fn issue(&self, authorize: &url::Url, person: &Person, twist: Twist) -> String {
        let query: HashMap<_, _> = authorize.query_pairs().into_owned().collect();
        assert_eq!(query.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(query.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert!(query["scope"].split(' ').any(|s| s == "openid"), "{query:?}");
        let code = format!("code-{}", uuid::Uuid::new_v4());
        self.inner.lock().unwrap().codes.insert(
            code.clone(),
            Grant {
                nonce: query["nonce"].clone(),
                challenge: query["code_challenge"].clone(),
                person: person.clone(),
                twist,
                used: false,
            },
        );
        code
    }
}

async fn discovery(State(idp): State<Arc<Mutex<Idp>>>) -> Json<serde_json::Value> {
    let issuer = idp.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(idp): State<Arc<Mutex<Idp>>>) -> Json<serde_json::Value> {
    let idp = idp.lock().unwrap();
    let keys = idp
        .published
        .iter()
        .map(|&i| signing_key(&idp.keys[i].0, &idp.keys[i].1).as_verification_key())
        .collect();
    Json(serde_json::to_value(CoreJsonWebKeySet::new(keys)).unwrap())
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    code: String,
    code_verifier: Option<String>,
}

async fn token(
    State(idp): State<Arc<Mutex<Idp>>>,
    Form(request): Form<TokenRequest>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let refuse = |description: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": description})),
        )
    };
    let mut idp = idp.lock().unwrap();
    let issuer = idp.issuer.clone();
    let (kid, pem) = idp.keys[idp.signing].clone();
    let other_pem = idp.keys[1 - idp.signing].1.clone();
    let Some(grant) = idp.codes.get_mut(&request.code) else { return refuse("unknown code") };
    if request.grant_type != "authorization_code" {
        return refuse("grant type");
    }
    // RFC 7636 §4.6: the verifier must hash to the challenge.
    let verifier = request.code_verifier.unwrap_or_default();
    let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if grant.used {
        return refuse("code already used");
    }
    grant.used = true;
    if hashed != grant.challenge {
        return refuse("PKCE verification failed");
    }
    let now = chrono::Utc::now();
    let (issued, expires) = if grant.twist == Twist::Expired {
        (now - chrono::Duration::minutes(20), now - chrono::Duration::minutes(10))
    } else {
        (now, now + chrono::Duration::minutes(5))
    };
    let audience = if grant.twist == Twist::WrongAudience { "another-app" } else { "kraft" };
    let issuer =
        if grant.twist == Twist::WrongIssuer { "http://evil.example".into() } else { issuer };
    let nonce =
        if grant.twist == Twist::WrongNonce { "not-the-nonce".into() } else { grant.nonce.clone() };
    let person = &grant.person;
    let mut standard = StandardClaims::new(SubjectIdentifier::new(person.sub.clone()))
        .set_preferred_username(Some(EndUserUsername::new(person.username.clone())));
    if let Some(email) = &person.email {
        standard = standard
            .set_email(Some(EndUserEmail::new(email.clone())))
            .set_email_verified(Some(person.verified));
    }
    let claims = IdTokenClaims::<Groups, CoreGenderClaim>::new(
        IssuerUrl::new(issuer).unwrap(),
        vec![Audience::new(audience.into())],
        expires,
        issued,
        standard,
        Groups { groups: person.groups.clone() },
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let key = if grant.twist == Twist::BadSignature {
        signing_key(&kid, &other_pem)
    } else {
        signing_key(&kid, &pem)
    };
    let id_token =
        IdToken::<
            Groups,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >::new(claims, &key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None)
        .expect("sign");
    (
        axum::http::StatusCode::OK,
        Json(json!({
            "access_token": "at-".to_owned() + &uuid::Uuid::new_v4().to_string(),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token.to_string(),
        })),
    )
}

async fn app_with(
    backend: Backend,
    idp: &FakeIdp,
    configure: impl FnOnce(&mut kraft::Config),
) -> TestApp {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "kraft-secret\n").unwrap();
    let issuer = idp.url.clone();
    let app = spawn_app_with(backend, |config| {
        config.oidc_issuer = Some(issuer);
        config.oidc_client_id = Some("kraft".into());
        config.oidc_client_secret_file = Some(secret.path().to_path_buf());
        config.oidc_display_name = "Campus ID".into();
        configure(config);
    })
    .await;
    drop(secret);
    app
}

/// Starts a sign-in in `browser`: where KRaft sends it (the provider's authorization URL).
async fn start(browser: &TestBrowser) -> url::Url {
    let response = browser
        .client
        .get(format!("{}/auth/oidc/start?next=/clusters", browser.address))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location).unwrap()
}

/// The provider sends the browser back with `code` and `state`.
async fn come_back(
    browser: &TestBrowser,
    authorize: &url::Url,
    code: &str,
    state: &str,
) -> reqwest::Response {
    let redirect = url::Url::parse(&query(authorize, "redirect_uri")).unwrap();
    let mut back = url::Url::parse(&format!("{}{}", browser.address, redirect.path())).unwrap();
    back.query_pairs_mut().append_pair("code", code).append_pair("state", state);
    browser.client.get(back).send().await.unwrap()
}

fn query(url: &url::Url, key: &str) -> String {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// A whole sign-in of `who` in `browser`; the response to the callback.
async fn sign_in(
    browser: &TestBrowser,
    idp: &FakeIdp,
    who: &Person,
    twist: Twist,
) -> reqwest::Response {
    let authorize = start(browser).await;
    let code = idp.issue(&authorize, who, twist);
    come_back(browser, &authorize, &code, &query(&authorize, "state")).await
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn username_of(browser: &TestBrowser) -> Option<String> {
    let response = browser.overview().await;
    if response.status() != 200 {
        return None;
    }
    let overview: serde_json::Value = response.json().await.unwrap();
    overview["user"]["username"].as_str().map(str::to_owned)
}

async fn first_sign_in_makes_an_account_and_the_next_signs_in_to_it(backend: Backend) {
    let idp = FakeIdp::start().await;
    let app = app_with(backend, &idp, |_| {}).await;
    let ada = person("Ada.Lovelace");
    let browser = app.another_browser();
    let response = sign_in(&browser, &idp, &ada, Twist::None).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/clusters", "back where the sign-in started");
    assert_eq!(username_of(&browser).await.as_deref(), Some("ada-lovelace"));
    // The account has no password: nobody signs in to it with one.
    let guess = app.another_browser().login("ada-lovelace", "").await;
    assert_eq!(guess.status(), 401);

    // Another browser, the same identity: the same account, not a second one.
    let again = app.another_browser();
    let response = sign_in(&again, &idp, &ada, Twist::None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(username_of(&again).await.as_deref(), Some("ada-lovelace"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_identities").await, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'login.succeeded' AND target = 'single sign-on'").await,
        2
    );
}
crate::on_both_backends!(first_sign_in_makes_an_account_and_the_next_signs_in_to_it);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_state_or_a_replayed_callback_signs_nobody_in() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Postgres, &idp, |_| {}).await;
    let mallory = person("mallory");

    // A forged state: refused, and the sign-in it was aimed at is used up.
    let browser = app.another_browser();
    let authorize = start(&browser).await;
    let code = idp.issue(&authorize, &mallory, Twist::None);
    let forged = come_back(&browser, &authorize, &code, "forged-state").await;
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("state mismatch"));
    let late = come_back(&browser, &authorize, &code, &query(&authorize, "state")).await;
    assert_eq!(late.status(), 400);
    assert!(late.text().await.unwrap().contains("No sign-in is under way"));
    assert_eq!(username_of(&browser).await, None);

    // A callback that worked, replayed: in the same browser nothing is under way any more…
    let victim = app.another_browser();
    let authorize = start(&victim).await;
    let code = idp.issue(&authorize, &person("victim"), Twist::None);
    let state = query(&authorize, "state");
    assert_eq!(come_back(&victim, &authorize, &code, &state).await.status(), 303);
    let replay = come_back(&victim, &authorize, &code, &state).await;
    assert_eq!(replay.status(), 400);
    // …and in another browser, with a sign-in of its own under way, the provider refuses the
    // used code (and it would not match that browser's PKCE verifier either).
    let attacker = app.another_browser();
    let own = start(&attacker).await;
    let stolen = come_back(&attacker, &own, &code, &query(&own, "state")).await;
    assert_eq!(stolen.status(), 400);
    let page = stolen.text().await.unwrap();
    assert!(page.contains("refused the sign-in") && page.contains("invalid_grant"), "{page}");
    assert_eq!(username_of(&attacker).await, None);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1, "only the victim's account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_that_fail_validation_are_refused() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Postgres, &idp, |_| {}).await;
    for (twist, says) in [
        (Twist::BadSignature, "Crypto error"),
        (Twist::Expired, "expired"),
        (Twist::WrongAudience, "audience"),
        (Twist::WrongNonce, "nonce"),
        (Twist::WrongIssuer, "issuer"),
    ] {
        let browser = app.another_browser();
        let response = sign_in(&browser, &idp, &person("eve"), twist).await;
        assert_eq!(response.status(), 403, "{twist:?}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("ID token is not valid")
                && page.to_lowercase().contains(&says.to_lowercase()),
            "{twist:?}: {page}"
        );
        assert_eq!(username_of(&browser).await, None, "{twist:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_is_fetched_from_the_provider() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Sqlite, &idp, |_| {}).await;
    let grace = person("grace");
    assert_eq!(sign_in(&app.another_browser(), &idp, &grace, Twist::None).await.status(), 303);
    idp.rotate();
    // Past the refresh gap: a key KRaft has not seen makes it fetch the keys again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let browser = app.another_browser();
    let response = sign_in(&browser, &idp, &grace, Twist::None).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(username_of(&browser).await.as_deref(), Some("grace"));
}

async fn an_existing_email_is_linked_only_with_the_accounts_password(backend: Backend) {
    let idp = FakeIdp::start().await;
    let app = app_with(backend, &idp, |_| {}).await;
    let owner = app.another_browser();
    owner.sign_up("linus").await;
    let mut linus = person("linus-at-idp");
    linus.email = Some("Linus@Example.org".into());

    // The provider did not verify the address: no link, no account.
    linus.verified = false;
    let browser = app.another_browser();
    let response = sign_in(&browser, &idp, &linus, Twist::None).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("has not verified"));

    linus.verified = true;
    let response = sign_in(&browser, &idp, &linus, Twist::None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/auth/oidc/link");
    assert_eq!(username_of(&browser).await, None, "not signed in before the password");
    let page =
        browser.client.get(format!("{}/auth/oidc/link", browser.address)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // Its own policy: KRaft's stylesheet loads (the edge's default would block it).
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("style-src 'self'") && !policy.contains("unsafe"), "{policy}");
    let page = page.text().await.unwrap();
    assert!(page.contains("linus@example.org") && page.contains("Campus ID"), "{page}");
    let link = |password: &'static str| {
        let browser = &browser;
        async move {
            browser
                .client
                .post(format!("{}/auth/oidc/link", browser.address))
                .form(&[("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = link("not the password at all").await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong.text().await.unwrap().contains("not this account"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_identities").await, 0);
    let right = link(PASSWORD).await;
    assert_eq!(right.status(), 303);
    assert_eq!(location(&right), "/clusters");
    assert_eq!(username_of(&browser).await.as_deref(), Some("linus"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_identities").await, 1);
    // Used up: the form cannot link again.
    assert_eq!(link(PASSWORD).await.status(), 400);
    // From now on the provider signs in to the account directly.
    let later = app.another_browser();
    assert_eq!(sign_in(&later, &idp, &linus, Twist::None).await.status(), 303);
    assert_eq!(username_of(&later).await.as_deref(), Some("linus"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
}
crate::on_both_backends!(an_existing_email_is_linked_only_with_the_accounts_password);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_groups_make_admins_and_organizers_and_unmake_admins() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Postgres, &idp, |config| {
        config.oidc_admin_group = Some("kraft-admins".into());
        config.oidc_organizer_group = Some("teachers".into());
        config.oidc_organizer_seats = 25;
    })
    .await;
    let mut hedy = person("hedy");
    hedy.groups = vec!["kraft-admins".into(), "teachers".into()];
    let browser = app.another_browser();
    assert_eq!(sign_in(&browser, &idp, &hedy, Twist::None).await.status(), 303);
    let row = || async {
        let db = app.database.connect().await;
        use sea_orm::ConnectionTrait;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT role, organizer_seats FROM users WHERE username = 'hedy'",
            ))
            .await
            .unwrap()
            .unwrap();
        (
            row.try_get::<String>("", "role").unwrap(),
            row.try_get::<i32>("", "organizer_seats").unwrap(),
        )
    };
    assert_eq!(row().await, ("admin".to_owned(), 25));
    let admin_page = browser.call("admin/users", &[]).await;
    assert_eq!(admin_page.status(), 200);
    // Out of the admin group at the provider: no longer an admin at the next sign-in.
    hedy.groups = vec!["teachers".into()];
    assert_eq!(sign_in(&app.another_browser(), &idp, &hedy, Twist::None).await.status(), 303);
    assert_eq!(row().await, ("user".to_owned(), 25));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'account.groups_applied'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_mode_and_disabled_accounts_hold_for_single_sign_on_too() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Sqlite, &idp, |config| {
        config.signup_mode = kraft::config::SignupMode::Approval;
    })
    .await;
    let admin = app.browser();
    admin.sign_up_admin(&app, "root").await;
    let response = sign_in(&app.another_browser(), &idp, &person("newbie"), Twist::None).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("approval"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE awaiting_approval").await, 1);
    // Still waiting at the second try; approved, the identity signs in.
    assert_eq!(
        sign_in(&app.another_browser(), &idp, &person("newbie"), Twist::None).await.status(),
        403
    );
    let approved = admin.call("admin/users/approve", &[("username", "newbie")]).await;
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    let browser = app.another_browser();
    assert_eq!(sign_in(&browser, &idp, &person("newbie"), Twist::None).await.status(), 303);
    // Disabled by an admin: refused, however good the provider's word.
    let disabled =
        admin.call("admin/users/disabled", &[("username", "newbie"), ("disabled", "true")]).await;
    assert_eq!(disabled.status(), 200, "{}", disabled.text().await.unwrap());
    assert_eq!(username_of(&browser).await, None, "the session ended");
    let response = sign_in(&app.another_browser(), &idp, &person("newbie"), Twist::None).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_password_sign_in_off_only_single_sign_on_lets_anyone_in() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Sqlite, &idp, |config| config.password_sign_in = false).await;
    let browser = app.another_browser();
    let register = browser.register("pat@example.org", "pat", PASSWORD).await;
    assert_eq!(register.status(), 403);
    assert_eq!(browser.login("pat", PASSWORD).await.status(), 403);
    let viewer: serde_json::Value = browser.call("account/viewer", &[]).await.json().await.unwrap();
    assert_eq!(viewer["sso"], "Campus ID");
    assert_eq!(viewer["password_sign_in"], false);
    let response = sign_in(&browser, &idp, &person("pat"), Twist::None).await;
    assert_eq!(response.status(), 303);
    // An account made by single sign-on has no password to change; it is deleted with its
    // username typed alone.
    let change = browser.change_password("", "a brand new passphrase").await;
    assert_eq!(change.status(), 422);
    assert!(change.text().await.unwrap().contains("no password"));
    let delete =
        browser.call("account/delete", &[("password", ""), ("confirm_username", "pat")]).await;
    assert_eq!(delete.status(), 200, "{}", delete.text().await.unwrap());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM user_identities").await, 0);

    // Without a provider, password sign-in cannot be turned off: nobody could sign in.
    let mut config = app.config.clone();
    config.oidc_issuer = None;
    config.addr = "127.0.0.1:0".parse().unwrap();
    let error = kraft::Application::build(config).await.err().expect("refused");
    assert!(error.to_string().contains("KRAFT_PASSWORD_SIGN_IN"), "{error}");
}

/// Each start parks a sign-in in a session row: an address may start only so many a minute, and
/// a visitor's row lives minutes, not the signed-in session's days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_sign_ins_is_limited_per_address_and_leaves_short_lived_rows() {
    let idp = FakeIdp::start().await;
    let app = app_with(Backend::Postgres, &idp, |_| {}).await;
    let browser = app.another_browser();
    start(&browser).await;
    let short = "SELECT COUNT(*) FROM sessions WHERE expires_at < now() + interval '16 minutes'";
    assert_eq!(count(&app, short).await, 1, "the visitor's row expires within 15 minutes");
    // A finished sign-in's session has the usual lifetime (here the tests' hour unused).
    let ada = app.another_browser();
    assert_eq!(sign_in(&ada, &idp, &person("ada"), Twist::None).await.status(), 303);
    let long = "SELECT COUNT(*) FROM sessions WHERE expires_at > now() + interval '50 minutes'";
    assert_eq!(count(&app, long).await, 1, "ada's session");
    assert_eq!(count(&app, short).await, 1);

    for _ in 2..kraft::sso::STARTS_PER_MINUTE {
        start(&app.another_browser()).await;
    }
    let refused =
        browser.client.get(format!("{}/auth/oidc/start", app.address)).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(refused.text().await.unwrap().contains("Too many sign-ins"));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sessions").await,
        i64::from(kraft::sso::STARTS_PER_MINUTE),
        "a refused start parks nothing"
    );
}

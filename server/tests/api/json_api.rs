//! `/api/v1` with personal API tokens: scopes, one error shape, pages, rate limits, the OpenAPI
//! document, and the CLI's browser login handing a token only to the loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{count, spawn_app, spawn_app_with, Backend, TestApp, TestBrowser};
use crate::on_both_backends;

/// Creates an API token on the account page; the answer is the token.
pub async fn api_token(browser: &TestBrowser, name: &str, scopes: &[&str]) -> String {
    let mut form = vec![("name", name), ("days", "7")];
    for scope in scopes {
        form.push((scope, "on"));
    }
    let response = browser.call("tokens/create", &form).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    response.json::<String>().await.unwrap()
}

/// `method path` on the API with `token` (and a JSON body): status, headers, JSON body.
pub async fn api(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base}/api/v1{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn assert_problem(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["fields"].is_array(), "{body}");
}

async fn tokens_are_scoped_shown_once_listed_and_revocable(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let base = app.address.as_str();
    let read = api_token(&ada, "reader", &["read"]).await;
    assert!(read.starts_with("kraftpat_"), "{read}");

    let (status, _, me) = api(base, reqwest::Method::GET, "/me", Some(&read), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "ada");
    assert_eq!(me["scopes"], json!(["read"]));
    let (status, _, body) = api(base, reqwest::Method::GET, "/clusters", Some(&read), None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"items": [], "next_cursor": null}));

    // A read token may not create; no token and a wrong one are 401 with a challenge.
    let create = Some(json!({"name": "demo"}));
    let (status, _, body) =
        api(base, reqwest::Method::POST, "/clusters", Some(&read), create.clone()).await;
    assert_eq!(status, 403);
    assert_problem(&body, "insufficient_scope");
    let (status, headers, body) = api(base, reqwest::Method::GET, "/me", None, None).await;
    assert_eq!(status, 401);
    assert_problem(&body, "unauthenticated");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let forged = format!("kraftpat_{}", "A".repeat(54));
    let (status, headers, _) = api(base, reqwest::Method::GET, "/me", Some(&forged), None).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    // A session cookie is no way in.
    let with_cookie = ada.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(with_cookie.status(), 401);

    // The account page's form: the token is shown once on a page of its own, never cached.
    let page = ada
        .client
        .post(app.url("/account/tokens"))
        .header("Origin", &app.address)
        .form(&[("name", "from the page"), ("days", "1"), ("read", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("data-api-token>kraftpat_"), "{html}");
    let refused = ada
        .client
        .post(app.url("/account/tokens"))
        .header("Origin", &app.address)
        .form(&[("name", "<script>"), ("days", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("scope") && !html.contains("<script>"), "{html}");
    let cross = ada
        .client
        .post(app.url("/account/tokens"))
        .header("Origin", "https://evil.example")
        .form(&[("name", "csrf"), ("days", "1"), ("read", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "another site cannot make a token for a signed-in user");

    // Names are unique among live tokens; scopes and validity are checked.
    let again = ada.call("tokens/create", &[("name", "Reader"), ("days", "7"), ("read", "on")]);
    assert_eq!(again.await.status(), 422);
    let none = ada.call("tokens/create", &[("name", "x"), ("days", "7")]).await;
    assert_eq!(none.status(), 422);
    assert!(none.text().await.unwrap().contains("scope"));
    let forever = ada.call("tokens/create", &[("name", "y"), ("days", "9999"), ("read", "on")]);
    assert_eq!(forever.await.status(), 422);

    // Listed with its start and last use, never the token; stored as a hash only.
    tokio::time::sleep(platform::access::USAGE_FLUSH + Duration::from_secs(1)).await;
    let overview: Value = ada.overview().await.json().await.unwrap();
    let listed = &overview["tokens"];
    let row = listed.as_array().unwrap().iter().find(|t| t["name"] == "reader").unwrap();
    assert_eq!(row["scopes"], "read");
    assert!(row["shown"].as_str().unwrap().starts_with(&read[..12]));
    assert!(row["last_used"].as_str().is_some_and(|u| u.contains("127.0.0.1")), "{row}");
    assert!(!listed.to_string().contains(&read[12..]), "the token is never listed");
    let plain =
        format!("SELECT COUNT(*) FROM api_tokens WHERE token_hash = '{read}' OR prefix = '{read}'");
    assert_eq!(count(&app, &plain).await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM api_tokens").await, 2);

    // Another account cannot revoke it; its owner can, and it stops at once.
    let eve = app.another_browser();
    eve.sign_up("eve").await;
    let id = row["id"].as_str().unwrap();
    let by_eve = eve.call("tokens/revoke", &[("id", id)]).await;
    assert_eq!(by_eve.status(), 404);
    let revoked = ada.call("tokens/revoke", &[("id", id)]).await;
    assert_eq!(revoked.status(), 200);
    let (status, _, _) = api(base, reqwest::Method::GET, "/me", Some(&read), None).await;
    assert_eq!(status, 401);
    let audit = "SELECT COUNT(*) FROM audit_events WHERE action IN ('api_token.created', 'api_token.revoked')";
    assert_eq!(count(&app, audit).await, 3);
}
on_both_backends!(tokens_are_scoped_shown_once_listed_and_revocable);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_and_kubeconfigs_through_the_json_api() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let base = app.address.as_str();
    let token = api_token(&ada, "ci", &["read", "clusters", "kubeconfigs"]).await;
    let t = Some(token.as_str());
    use reqwest::Method as M;

    // Bad input: one error shape, with the fields; malformed JSON and unknown fields are 400.
    let (status, _, body) =
        api(base, M::POST, "/clusters", t, Some(json!({"name": "Bad_Name"}))).await;
    assert_eq!(status, 422);
    assert_problem(&body, "invalid");
    assert_eq!(body["error"]["fields"][0]["field"], "name", "{body}");
    let (status, _, body) = api(base, M::POST, "/clusters", t, Some(json!({"nme": "x"}))).await;
    assert_eq!(status, 400);
    assert_problem(&body, "bad_request");
    let raw = reqwest::Client::new()
        .post(app.url("/api/v1/clusters"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_problem(&raw.json().await.unwrap(), "bad_request");

    // Create two; list them a page at a time.
    let (status, headers, first) =
        api(base, M::POST, "/clusters", t, Some(json!({"name": "one", "agents": 0}))).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/api/v1/clusters/{id}").as_str());
    assert!(first["phase"] == "Pending" || first["phase"] == "Provisioning", "{first}");
    assert!(first["api_server"].as_str().unwrap().ends_with(&format!("/k8s/clusters/{id}")));
    let (status, _, _) = api(base, M::POST, "/clusters", t, Some(json!({"name": "two"}))).await;
    assert_eq!(status, 201);
    let (status, _, page) = api(base, M::GET, "/clusters?limit=1", t, None).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["name"], "one");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, page) =
        api(base, M::GET, &format!("/clusters?limit=1&cursor={cursor}"), t, None).await;
    assert_eq!(page["items"][0]["name"], "two");
    assert_eq!(page["next_cursor"], Value::Null);
    for bad in ["/clusters?limit=0", "/clusters?limit=101", "/clusters?cursor=zzz"] {
        let (status, _, body) = api(base, M::GET, bad, t, None).await;
        assert_eq!(status, 422, "{bad}");
        assert_problem(&body, "invalid");
    }
    let (status, _, body) = api(base, M::GET, "/clusters?limit=many", t, None).await;
    assert_eq!(status, 400);
    assert_problem(&body, "bad_request");

    // By name or id; the status says when it is ready.
    let (status, _, by_name) = api(base, M::GET, "/clusters/one", t, None).await;
    assert_eq!(status, 200);
    assert_eq!(by_name["id"], id.as_str());
    crate::helpers::eventually("cluster one is ready", || async {
        api(base, M::GET, "/clusters/one/status", t, None).await.2["ready"] == true
    })
    .await;
    let (_, _, status_body) = api(base, M::GET, &format!("/clusters/{id}/status"), t, None).await;
    assert_eq!(status_body["phase"], "Ready");
    assert!(status_body["conditions"].is_array());

    // A kubeconfig through the API reaches the cluster through the gateway; revoking stops it.
    let issue = Some(json!({"name": "ci", "days": 1}));
    let (status, _, issued) = api(base, M::POST, "/clusters/one/kubeconfigs", t, issue).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["context"], "one-ada");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(issued["yaml"].as_str().unwrap()).unwrap();
    let secret = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap().token.clone().unwrap();
    let kube_token = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    let through = reqwest::Client::new()
        .get(app.url(&format!("/k8s/clusters/{id}/api/v1/namespaces")))
        .bearer_auth(&kube_token)
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    let (_, _, listed) = api(base, M::GET, "/clusters/one/kubeconfigs", t, None).await;
    assert_eq!(listed["items"][0]["name"], "ci");
    assert_eq!(listed["items"][0]["state"], "active");
    let kid = issued["kubeconfig"]["id"].as_str().unwrap();
    let (status, _, _) =
        api(base, M::DELETE, &format!("/clusters/one/kubeconfigs/{kid}"), t, None).await;
    assert_eq!(status, 204);
    let (status, _, body) =
        api(base, M::DELETE, &format!("/clusters/one/kubeconfigs/{kid}"), t, None).await;
    assert_eq!(status, 404);
    assert_problem(&body, "not_found");

    // A stranger's cluster is as missing as a missing one, by name or id.
    let eve = app.another_browser();
    eve.sign_up("eve").await;
    let eve_token = api_token(&eve, "eve", &["read", "clusters", "kubeconfigs"]).await;
    for path in
        [format!("/clusters/{id}"), format!("/clusters/{id}/status"), "/clusters/one".into()]
    {
        let (status, _, body) = api(base, M::GET, &path, Some(&eve_token), None).await;
        assert_eq!(status, 404, "{path}");
        assert_problem(&body, "not_found");
    }
    let (status, _, _) =
        api(base, M::DELETE, &format!("/clusters/{id}"), Some(&eve_token), None).await;
    assert_eq!(status, 404);

    // Scale, then delete; it goes.
    let (status, _, changed) =
        api(base, M::PATCH, "/clusters/one", t, Some(json!({"servers": 3}))).await;
    assert_eq!(status, 202, "{changed}");
    assert_eq!(changed["servers"], 3);
    let (status, _, gone) = api(base, M::DELETE, "/clusters/one", t, None).await;
    assert_eq!(status, 202);
    assert_eq!(gone["phase"], "Deleting");
    crate::helpers::eventually("cluster one is gone", || async {
        api(base, M::GET, &format!("/clusters/{id}"), t, None).await.0 == 404
    })
    .await;

    // Unknown routes and methods answer in the same shape.
    let (status, _, body) = api(base, M::GET, "/nothing/here", t, None).await;
    assert_eq!(status, 404);
    assert_problem(&body, "not_found");
    let (status, _, body) = api(base, M::PUT, "/clusters", t, None).await;
    assert_eq!(status, 405);
    assert_problem(&body, "method_not_allowed");
}

/// An organizer scripts a workshop: create it, hand out its link, watch the seats fill with
/// Ready clusters, close joining, extend it, end it. Nobody else sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workshops_through_the_json_api() {
    let app = spawn_app(Backend::Postgres).await;
    let base = app.address.as_str();
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    let token = api_token(&root, "ci", &["read", "clusters"]).await;
    let t = Some(token.as_str());
    let reader = api_token(&root, "reader", &["read"]).await;
    use reqwest::Method as M;
    let at = |minutes: i64| (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339();

    // Bad input: a message per field; unknown fields are malformed.
    let bad = json!({"title": "", "starts_at": "soon", "ends_at": at(60), "seats": 0});
    let (status, _, body) = api(base, M::POST, "/workshops", t, Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(&body, "invalid");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    for field in ["title", "starts_at", "seats"] {
        assert!(fields.contains(&field), "{field} in {body}");
    }
    let unknown =
        json!({"title": "x", "starts_at": at(0), "ends_at": at(60), "seats": 1, "colour": 1});
    assert_eq!(api(base, M::POST, "/workshops", t, Some(unknown)).await.0, 400);
    let create = |title: &str| json!({"title": title, "starts_at": at(-1), "ends_at": at(60), "seats": 2, "agents": 0});
    let (status, _, body) =
        api(base, M::POST, "/workshops", Some(&reader), Some(create("x"))).await;
    assert_eq!(status, 403);
    assert_problem(&body, "insufficient_scope");

    // Two workshops, newest first, a page at a time.
    let (status, headers, first) = api(base, M::POST, "/workshops", t, Some(create("Intro"))).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/api/v1/workshops/{id}").as_str());
    assert_eq!(first["state"], "Running");
    assert_eq!(first["taken"], 0);
    assert_eq!(first["template"]["agents"], 0);
    let join_url = first["join_url"].as_str().unwrap().to_owned();
    assert!(join_url.starts_with("http") && join_url.contains("/join/"), "{join_url}");
    let (status, _, _) = api(base, M::POST, "/workshops", t, Some(create("Advanced"))).await;
    assert_eq!(status, 201);
    let (status, _, page) = api(base, M::GET, "/workshops?limit=1", t, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["title"], "Advanced");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, page) =
        api(base, M::GET, &format!("/workshops?limit=1&cursor={cursor}"), t, None).await;
    assert_eq!(page["items"][0]["title"], "Intro");
    assert_eq!(page["next_cursor"], Value::Null);

    // An attendee joins by the link; their seat and its cluster show, and it gets Ready.
    let ann = app.another_browser();
    ann.sign_up("ann").await;
    let key = join_url.rsplit('/').next().unwrap();
    let joined = ann.call("workshops/join", &[("key", key)]).await;
    assert_eq!(joined.status(), 200, "{}", joined.text().await.unwrap_or_default());
    let seats = format!("/workshops/{id}/seats");
    crate::helpers::eventually("ann's workshop cluster is ready", || async {
        api(base, M::GET, &seats, t, None).await.2["items"][0]["cluster"]["ready"] == true
    })
    .await;
    let (_, _, page) = api(base, M::GET, &seats, t, None).await;
    assert_eq!(page["items"][0]["attendee"], "ann");
    assert_eq!(page["items"][0]["cluster"]["phase"], "Ready");
    let one = format!("/workshops/{id}");
    assert_eq!(api(base, M::GET, &one, t, None).await.2["taken"], 1);

    // Strangers (even ann, who sits in it) find nothing; a plain account organizes nothing.
    let ann_token = api_token(&ann, "ann", &["read", "clusters"]).await;
    let a = Some(ann_token.as_str());
    for (method, path) in
        [(M::GET, one.clone()), (M::GET, seats.clone()), (M::POST, format!("{one}/end"))]
    {
        let (status, _, body) = api(base, method, &path, a, None).await;
        assert_eq!(status, 404, "{path}");
        assert_problem(&body, "not_found");
    }
    let (status, _, body) =
        api(base, M::PATCH, &one, a, Some(json!({"joining_open": false}))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(api(base, M::GET, "/workshops", a, None).await.2["items"], json!([]));
    let (status, _, body) = api(base, M::POST, "/workshops", a, Some(create("Mine"))).await;
    assert_eq!(status, 403, "{body}");
    assert_problem(&body, "forbidden");
    assert_eq!(api(base, M::GET, "/workshops/not-an-id", t, None).await.0, 404);

    // Close joining, extend; then end it: the attendee's cluster goes.
    let before = api(base, M::GET, &one, t, None).await.2;
    let (status, _, changed) =
        api(base, M::PATCH, &one, t, Some(json!({"joining_open": false, "extend_minutes": 30})))
            .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["joining_open"], false);
    assert!(changed["closed_because"].as_str().is_some_and(|m| !m.is_empty()), "{changed}");
    let later = |w: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(w[field].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        later(&changed, "ends_at") - later(&before, "ends_at"),
        chrono::Duration::minutes(30)
    );
    let (status, _, body) = api(base, M::PATCH, &one, t, Some(json!({"extend_minutes": 0}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, ended) = api(base, M::POST, &format!("{one}/end"), t, None).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "Ended");
    let (status, _, body) = api(base, M::PATCH, &one, t, Some(json!({"joining_open": true}))).await;
    assert_eq!(status, 409, "{body}");
    assert_problem(&body, "conflict");
    crate::helpers::eventually("ann's workshop cluster is gone", || async {
        api(base, M::GET, &seats, t, None).await.2["items"][0]["cluster"].is_null()
    })
    .await;
    assert_eq!(api(base, M::POST, &format!("{one}/end"), t, None).await.0, 200, "ending again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_rate_limit() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.api_rate_limit = 5).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let first = api_token(&ada, "first", &["read"]).await;
    let second = api_token(&ada, "second", &["read"]).await;
    for _ in 0..5 {
        assert_eq!(api(&app.address, reqwest::Method::GET, "/me", Some(&first), None).await.0, 200);
    }
    let (status, headers, body) =
        api(&app.address, reqwest::Method::GET, "/me", Some(&first), None).await;
    assert_eq!(status, 429);
    assert_problem(&body, "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(body["error"]["retry_after_secs"], retry);
    assert_eq!(api(&app.address, reqwest::Method::GET, "/me", Some(&second), None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/me", &["get"][..]),
        ("/api/v1/clusters", &["get", "post"]),
        ("/api/v1/clusters/{cluster}", &["get", "patch", "delete"]),
        ("/api/v1/clusters/{cluster}/status", &["get"]),
        ("/api/v1/clusters/{cluster}/kubeconfigs", &["get", "post"]),
        ("/api/v1/clusters/{cluster}/kubeconfigs/{kubeconfig}", &["delete"]),
        ("/api/v1/workshops", &["get", "post"]),
        ("/api/v1/workshops/{workshop}", &["get", "patch"]),
        ("/api/v1/workshops/{workshop}/end", &["post"]),
        ("/api/v1/workshops/{workshop}/seats", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} is documented");
        }
    }
    assert_eq!(paths.len(), 10, "every documented path is one the API serves");
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let operations = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), operations, "operation ids are unique (OpenAPI 3.1 §4.8.10)");
    assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");
}

/// The end of `kraft login`: the token goes to the CLI's loopback listener, nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_login_hands_a_token_only_to_the_loopback() {
    let app: TestApp = spawn_app(Backend::Sqlite).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let post = |callback: &str, origin: Option<&str>| {
        let mut request = ada.client.post(app.url("/account/tokens/cli")).form(&[
            ("callback", callback),
            ("state", "0123456789abcdef0123"),
            ("name", "kraft CLI on box"),
        ]);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    let ours = Some(app.address.as_str());
    // The consent page: the user sees who they authorize as, and the values go back escaped.
    let ask = "/account/tokens/cli?callback=http%3A%2F%2F127.0.0.1%3A4242%2Fcallback&state=0123456789abcdef0123&name=%22%3E%3Cscript%3E";
    let page = ada.client.get(app.url(ask)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<strong>ada</strong>") && html.contains("Authorize"), "{html}");
    assert!(!html.contains("\"><script>"), "{html}");
    let (signed_out, _) = crate::helpers::browser();
    let to_login = signed_out.get(app.url(ask)).send().await.unwrap();
    assert_eq!(to_login.status(), 303);
    let location = to_login.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/login?next=%2Faccount%2Ftokens%2Fcli%3F"), "{location}");
    for evil in [
        "https://evil.example/callback",
        "http://127.0.0.1.evil.example:1/callback",
        "http://127.0.0.1/callback",
    ] {
        assert_eq!(post(evil, ours).await.unwrap().status(), 422, "{evil}");
    }
    // Another site cannot make a signed-in browser authorize (the same-origin check).
    let cross = post("http://127.0.0.1:4242/callback", Some("https://evil.example")).await.unwrap();
    assert_eq!(cross.status(), 403);
    let good = post("http://127.0.0.1:4242/callback", ours).await.unwrap();
    assert_eq!(good.status(), 303);
    let location = good.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    assert_eq!(
        (url.host_str(), url.port(), url.path()),
        (Some("127.0.0.1"), Some(4242), "/callback")
    );
    let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "0123456789abcdef0123");
    let (status, _, me) =
        api(&app.address, reqwest::Method::GET, "/me", Some(&pairs["token"]), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["scopes"], json!(["read", "clusters", "kubeconfigs"]));
    // Signed out, there is nothing to authorize.
    let (stranger, _) = crate::helpers::browser();
    let refused = stranger
        .post(app.url("/account/tokens/cli"))
        .header("Origin", &app.address)
        .form(&[("callback", "http://127.0.0.1:4242/callback"), ("state", "0123456789abcdef0123")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

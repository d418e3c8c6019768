//! Cluster access through KRaft's gateway: kubeconfigs with revocable tokens, checked on every
//! request, on every replica; kube-rs as kubectl's stand-in (the conformance script and the
//! browser tests drive the real kubectl).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::Value;

use crate::clusters::kube_client;
use crate::helpers::{count, spawn_app, spawn_app_with, Backend, TestApp, TestBrowser};

/// A signed-up user `name` with a Ready cluster `demo`: (browser, cluster id).
async fn tenant(app: &TestApp, name: &str) -> (TestBrowser, String) {
    let browser = app.another_browser();
    browser.sign_up(name).await;
    let id = browser.new_cluster("demo").await;
    browser.wait_for_phase(&id, "Ready").await;
    (browser, id)
}

async fn kubeconfig(browser: &TestBrowser, id: &str, name: &str) -> String {
    let response = browser.named_kubeconfig(id, name, "7").await;
    assert_eq!(response.status(), 200, "{name}");
    response.text().await.unwrap()
}

/// The cluster's kubeconfigs as its page lists them.
async fn kubeconfigs(browser: &TestBrowser, id: &str) -> Value {
    browser.call("clusters/kubeconfigs", &[("id", id)]).await.json().await.unwrap()
}

/// Revokes kubeconfig `which` (an id, or `all`) of cluster `id`.
async fn revoke(browser: &TestBrowser, id: &str, which: &str) {
    let response =
        browser.call("clusters/kubeconfigs/revoke", &[("id", id), ("kubeconfig", which)]).await;
    assert_eq!(response.status(), 200);
}

pub fn token_of(yaml: &str) -> String {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let token = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap().token.clone().unwrap();
    secrecy::ExposeSecret::expose_secret(&token).to_owned()
}

/// `GET <base>/k8s/clusters/<id>/api/v1/namespaces` with a bearer token: (status, body).
async fn call(base: &str, id: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/k8s/clusters/{id}/api/v1/namespaces"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET <base>/api/v1/me` with an API token: the status.
async fn api_me(base: &str, token: &str) -> u16 {
    let response =
        reqwest::Client::new().get(format!("{base}/api/v1/me")).bearer_auth(token).send().await;
    response.unwrap().status().as_u16()
}

/// Waits (at most `within`) until a call answers `status`.
async fn answers_within(base: &str, id: &str, token: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = call(base, id, token).await;
        if got == status {
            return;
        }
        assert!(Instant::now() < deadline, "{base}: still {got} {body}, expected {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_traffic_reaches_the_cluster_through_the_gateway() {
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let client = kube_client(&kubeconfig(&ada, &id, "laptop").await).await;

    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 5);
    // Writes, and a watch that streams what happens after it started.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut watch = Box::pin(maps.watch(&WatchParams::default(), "0").await.unwrap());
    let map: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "settings"}, "data": {"a": "1"}}),
    )
    .unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        use futures::StreamExt;
        while let Some(event) = watch.next().await {
            if let Ok(WatchEvent::Added(m)) = event {
                if m.metadata.name.as_deref() == Some("settings") {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the watch streamed the new config map");
    // The cluster takes the caller for the KRaft user (`kubectl auth whoami`).
    let review = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("Content-Type", "application/json")
        .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
        .unwrap();
    let review: Value = client.request(review).await.unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "kraft:ada", "{review}");
    // The cluster's own API errors come back as they are.
    let missing = maps.get("nope").await.err().unwrap();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{missing}"
    );
}

/// A watch (`kubectl get -w`, every controller's informer) streams for minutes. When KRaft stops,
/// it ends the stream as the API server does when it stops, so the client watches again
/// (through another replica) and KRaft exits instead of waiting for the watch to end on its own
/// until Kubernetes kills it, with the Lease still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_through_the_gateway_ends_when_kraft_stops() {
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let client = kube_client(&kubeconfig(&ada, &id, "laptop").await).await;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut watch = Box::pin(maps.watch(&WatchParams::default(), "0").await.unwrap());
    // The watch is under way: an event arrives through it.
    let map: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "before"}})).unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    use futures::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
    assert!(matches!(first, Ok(Some(Ok(WatchEvent::Added(_))))), "{first:?}");

    let stopped = tokio::time::timeout(Duration::from_secs(15), app.stop()).await;
    assert!(stopped.is_ok(), "KRaft did not stop while a watch was open");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = watch.next().await {
            assert!(event.is_ok(), "the watch ends cleanly, not cut: {event:?}");
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch was not ended");
}

/// kubectl sends a kubeconfig's token only over HTTPS: zero-config KRaft answers TLS on its own
/// address, with a certificate from its CA that the kubeconfig carries, and plain HTTP (the UI)
/// on the same port; a client that connects and says nothing holds up nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_speaks_tls_with_the_ca_the_kubeconfig_carries() {
    use base64::Engine as _;
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let yaml = kubeconfig(&ada, &id, "laptop").await;
    let parsed = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let cluster = parsed.clusters[0].cluster.clone().unwrap();
    let https = app.address.replacen("http://", "https://", 1);
    assert_eq!(cluster.server.as_deref(), Some(format!("{https}/k8s/clusters/{id}").as_str()));
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.expect("the kubeconfig carries the CA"))
        .unwrap();

    // Silent connections (a browser's preconnect, a port scan) are left waiting on their own.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent
            .push(tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await);
    }
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let response = trusting
        .get(format!("{https}/k8s/clusters/{id}/api/v1/namespaces"))
        .bearer_auth(token_of(&yaml))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The certificate is KRaft's own CA's: a client that does not trust it is refused.
    let error = reqwest::Client::new().get(format!("{https}/healthz")).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    // Plain HTTP on the same port.
    let health = reqwest::get(format!("{}/healthz", app.address)).await.unwrap();
    assert_eq!(health.status(), 200);
    drop(silent);
}

/// `kubectl exec` and `port-forward` are HTTP upgrades: the gateway passes them through both ways
/// (kube-rs offers `v5.channel.k8s.io` for exec, as kubectl 1.37 does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_port_forward_pass_through_the_gateway() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::AttachParams;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let client = kube_client(&kubeconfig(&ada, &id, "laptop").await).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 8080}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pods.get("web").await.unwrap().status.and_then(|s| s.phase).as_deref() != Some("Running")
    {
        assert!(Instant::now() < deadline, "the pod never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let echo = AttachParams::default().stdout(true).stderr(false);
    let mut process =
        pods.exec("web", vec!["echo", "hi"], &echo).await.expect("exec through the gateway");
    let mut out = String::new();
    process.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hi\n");
    let status = process.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");

    // A browser's way: the token in a WebSocket subprotocol, which the cluster never sees.
    let token = token_of(&kubeconfig(&ada, &id, "browser").await);
    let (stdout, chosen) = websocket_exec(&app, &id, &token).await.expect("a subprotocol token");
    assert_eq!(stdout, "hi\n");
    assert_eq!(chosen.as_deref(), Some("v5.channel.k8s.io"));
    let refused = websocket_exec(&app, &id, "kraft_not-a-token").await.unwrap_err();
    assert!(refused.contains("401"), "{refused}");

    let mut forward =
        pods.portforward("web", &[8080]).await.expect("port-forward through the gateway");
    let mut conn = forward.take_stream(8080).unwrap();
    conn.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    conn.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    drop(conn);
    forward.abort();
}

/// `echo hi` in pod `web` over a raw WebSocket whose only credential is the
/// `base64url.bearer.authorization.k8s.io.` subprotocol: (stdout, the subprotocol the server chose).
async fn websocket_exec(
    app: &TestApp,
    id: &str,
    token: &str,
) -> Result<(String, Option<String>), String> {
    use base64::Engine as _;
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/k8s/clusters/{id}/api/v1/namespaces/default/pods/web/exec?command=echo&command=hi&stdout=true",
        app.address.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{encoded}")
            .parse()
            .unwrap(),
    );
    let (mut socket, response) =
        tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    let chosen =
        response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
    let mut stdout = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(frame) if frame.first() == Some(&1) => {
                stdout.extend_from_slice(&frame[1..])
            }
            Message::Binary(frame) if frame.first() == Some(&3) => break,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok((String::from_utf8(stdout).unwrap(), chosen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revoked_expired_and_other_clusters_tokens_get_the_same_401() {
    let app = spawn_app(Backend::Postgres).await;
    let (ada, id) = tenant(&app, "ada").await;
    let (bob, bobs) = tenant(&app, "bob").await;
    let token = token_of(&kubeconfig(&ada, &id, "laptop").await);
    let bobs_token = token_of(&kubeconfig(&bob, &bobs, "ci").await);
    let (ok, _) = call(&app.address, &id, &token).await;
    assert_eq!(ok, 200);

    let (status, unauthorized) = call(&app.address, &id, "kraft_not-a-token").await;
    assert_eq!(status, 401);
    assert_eq!(unauthorized["kind"], "Status");
    assert_eq!(unauthorized["reason"], "Unauthorized");
    // Another cluster's token, a token in a made-up path, no token: the same answer.
    assert_eq!(call(&app.address, &id, &bobs_token).await, (401, unauthorized.clone()));
    assert_eq!(call(&app.address, "not-a-cluster", &token).await, (401, unauthorized.clone()));
    let bare = reqwest::get(app.url(&format!("/k8s/clusters/{id}/api"))).await.unwrap();
    assert_eq!(bare.status(), 401);

    // Expired: the database says so, the gateway sees it within its check interval.
    let db = app.database.connect().await;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&format!(
        "UPDATE cluster_tokens SET expires_at = NOW() - INTERVAL '1 minute' WHERE cluster_id = '{bobs}'"
    ))
    .await
    .unwrap();
    answers_within(&app.address, &bobs, &bobs_token, 401, Duration::from_secs(5)).await;
    assert_eq!(call(&app.address, &bobs, &bobs_token).await, (401, unauthorized.clone()));

    // Revoked: at once on this replica.
    revoke(&ada, &id, "all").await;
    assert_eq!(call(&app.address, &id, &token).await, (401, unauthorized));
    db.close().await.unwrap();
}

/// Two KRaft processes on one database: a revocation on one reaches the other within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_replica_within_five_seconds() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = app.replica().await;
    let (ada, id) = tenant(&app, "ada").await;
    let laptop = token_of(&kubeconfig(&ada, &id, "laptop").await);
    let ci = token_of(&kubeconfig(&ada, &id, "ci").await);
    for token in [&laptop, &ci] {
        assert_eq!(call(&replica.address, &id, token).await.0, 200);
    }
    let list = kubeconfigs(&ada, &id).await;
    let laptop_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "laptop")
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    revoke(&ada, &id, &laptop_id).await;
    let started = Instant::now();
    answers_within(&replica.address, &id, &laptop, 401, Duration::from_secs(5)).await;
    eprintln!("revocation seen by the replica after {:?}", started.elapsed());
    // The other kubeconfig still works, on both.
    assert_eq!(call(&replica.address, &id, &ci).await.0, 200);
    assert_eq!(call(&app.address, &id, &ci).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_accounts_tokens_stop_working() {
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let token = token_of(&kubeconfig(&ada, &id, "laptop").await);
    assert_eq!(call(&app.address, &id, &token).await.0, 200);
    let deleted = ada
        .call(
            "account/delete",
            &[("password", crate::helpers::PASSWORD), ("confirm_username", "ada")],
        )
        .await;
    assert!(
        deleted.status().is_success() || deleted.status().is_redirection(),
        "{}",
        deleted.status()
    );
    answers_within(&app.address, &id, &token, 401, Duration::from_secs(5)).await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM cluster_tokens").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_throttled_per_address() {
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let token = token_of(&kubeconfig(&ada, &id, "laptop").await);
    let mut statuses = Vec::new();
    for i in 0..21 {
        statuses.push(call(&app.address, &id, &format!("kraft_guess{i}")).await.0);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[20], 429);
    let response = reqwest::Client::new()
        .get(app.url(&format!("/k8s/clusters/{id}/api")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // The address is refused even with a good token for a while: a guesser learns nothing.
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfigs_are_listed_with_their_last_use_and_never_shown_again() {
    let app = spawn_app(Backend::Sqlite).await;
    let (ada, id) = tenant(&app, "ada").await;
    let yaml = kubeconfig(&ada, &id, "laptop").await;
    let token = token_of(&yaml);
    // A second one with the same name is refused, with why.
    let again = ada
        .client
        .post(app.url(&format!("/api/clusters/{id}/kubeconfig")))
        .header("Accept", "application/json")
        .form(&[("name", "Laptop"), ("days", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 422);
    let body = again.text().await.unwrap();
    assert!(body.contains("already has a kubeconfig named"), "{body}");
    // Validity outside the offered ones, and a blank name.
    assert_eq!(ada.named_kubeconfig(&id, "x", "365").await.status(), 422);
    assert_eq!(ada.named_kubeconfig(&id, "  ", "7").await.status(), 422);

    assert_eq!(call(&app.address, &id, &token).await.0, 200);
    let shown = kubeconfigs(&ada, &id).await;
    let laptop = &shown[0];
    assert_eq!(laptop["name"], "laptop");
    assert_eq!(laptop["state"], "Active");
    assert!(laptop["last_used"].as_str().unwrap().ends_with("from 127.0.0.1"), "{laptop}");
    let prefix = laptop["shown"].as_str().unwrap();
    assert!(token.starts_with(prefix.trim_end_matches('…')) && prefix.len() < 20, "{prefix}");
    assert!(!shown.to_string().contains(&token), "the list never holds the token");
    // Stored only as a hash; the audit trail names it by its start.
    let stored =
        count(&app, &format!("SELECT COUNT(*) FROM cluster_tokens WHERE token_hash = '{token}'"))
            .await;
    assert_eq!(stored, 0);
    let audited =
        count(&app, &format!("SELECT COUNT(*) FROM audit_events WHERE target LIKE '%{token}%'"))
            .await;
    assert_eq!(audited, 0);
    // The use is written within a few seconds, and the cluster shows its last API request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&app, "SELECT COUNT(*) FROM cluster_tokens WHERE last_used_at IS NOT NULL").await
        == 0
    {
        assert!(Instant::now() < deadline, "last use never written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    assert!(detail["last_api_request"].as_str().unwrap_or_default().ends_with("ago"), "{detail}");
}

/// Ingress access (the operator's choice): K3k exposes each cluster through an SSL-passthrough
/// Ingress, and the gateway, here without wildcard DNS, dials the ingress controller by SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ingress_access_the_gateway_goes_through_the_ingress_controller() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.cluster_access = kraft::config::AccessArg::Ingress;
    })
    .await;
    let (ada, id) = tenant(&app, "ada").await;
    let client = kube_client(&kubeconfig(&ada, &id, "laptop").await).await;
    let nodes = Api::<Node>::all(client).list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 5);
    // K3k's own kubeconfig names the Ingress host, which has no DNS here: only the ingress
    // controller, asked by SNI, could have answered.
    let ns = format!("kraft-demo-{}", &id[..8]);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(app.host().await, &ns);
    let secret = secrets.get("k3k-demo-kubeconfig").await.unwrap();
    let yaml = String::from_utf8(secret.data.unwrap()["kubeconfig.yaml"].0.clone()).unwrap();
    assert!(yaml.contains("server: https://demo-ada.kraft.localhost"), "{yaml}");
}

/// Issue 19: an admin disables an account. Its sessions end and its kubeconfigs are refused on
/// both replicas within 5 s; it cannot sign in (the right password learns why), its clusters
/// are kept; enabled again, it signs in and its kubeconfigs work again. Then the admin deletes
/// it, clusters first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused_everywhere_within_five_seconds() {
    let app = spawn_app(Backend::Postgres).await;
    let root = app.browser();
    root.sign_up_admin(&app, "root").await;
    let replica = app.replica().await;
    let (ada, id) = tenant(&app, "ada").await;
    let token = token_of(&kubeconfig(&ada, &id, "laptop").await);
    let api_token = crate::json_api::api_token(&ada, "ci", &["read"]).await;
    let ada_on_replica = TestBrowser {
        address: replica.address.clone(),
        client: ada.client.clone(),
        jar: ada.jar.clone(),
    };
    for (base, who) in [(&app.address, &ada), (&replica.address, &ada_on_replica)] {
        assert_eq!(call(base, &id, &token).await.0, 200);
        assert_eq!(who.call("clusters/list", &[]).await.status(), 200);
        assert_eq!(api_me(base, &api_token).await, 200);
    }
    // Not something a user may do, nor an admin to themselves.
    let eve = app.another_browser();
    eve.sign_up("eve").await;
    let by_eve = eve.call("admin/users/disabled", &[("username", "ada"), ("disabled", "true")]);
    assert_eq!(by_eve.await.status(), 403);
    let self_disable =
        root.call("admin/users/disabled", &[("username", "root"), ("disabled", "true")]).await;
    assert_eq!(self_disable.status(), 403);

    let disabled =
        root.call("admin/users/disabled", &[("username", "ada"), ("disabled", "true")]).await;
    assert_eq!(disabled.status(), 200, "{}", disabled.text().await.unwrap_or_default());
    let started = Instant::now();
    for who in [&ada, &ada_on_replica] {
        assert_eq!(who.call("clusters/list", &[]).await.status(), 401, "{}", who.address);
    }
    for base in [&app.address, &replica.address] {
        answers_within(base, &id, &token, 401, Duration::from_secs(5)).await;
    }
    // Its API token too, on both replicas.
    for base in [&app.address, &replica.address] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while api_me(base, &api_token).await != 401 {
            assert!(Instant::now() < deadline, "{base}: the API token still works");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("disabled account refused everywhere after {:?}", started.elapsed());
    let again = ada.login("ada", crate::helpers::PASSWORD).await;
    assert_eq!(again.status(), 403);
    assert!(again.text().await.unwrap().contains("disabled"));
    assert_eq!(ada.login("ada", "not the password at all").await.status(), 401);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM clusters").await, 1, "its cluster is kept");
    let listed: Value = root.call("admin/users", &[]).await.json().await.unwrap();
    let row = listed["users"].as_array().unwrap().iter().find(|u| u["username"] == "ada").cloned();
    assert_eq!(row.unwrap()["disabled"], true);

    let enabled =
        root.call("admin/users/disabled", &[("username", "ada"), ("disabled", "false")]).await;
    assert_eq!(enabled.status(), 200);
    assert_eq!(ada.login("ada", crate::helpers::PASSWORD).await.status(), 200);
    // Each refused call counts as a failed token check for this address (the gateway's guard
    // against guessing), so wait out the replica's cache once instead of polling.
    tokio::time::sleep(platform::access::CHECK_TTL + Duration::from_millis(500)).await;
    assert_eq!(call(&replica.address, &id, &token).await.0, 200);

    // Deleting takes the name typed again; the clusters go with the account.
    let wrong =
        root.call("admin/users/delete", &[("username", "ada"), ("confirm_username", "eve")]).await;
    assert_eq!(wrong.status(), 422);
    let deleted =
        root.call("admin/users/delete", &[("username", "ada"), ("confirm_username", "ada")]).await;
    assert_eq!(deleted.status(), 200, "{}", deleted.text().await.unwrap_or_default());
    answers_within(&app.address, &id, &token, 401, Duration::from_secs(5)).await;
    crate::helpers::eventually("ada's cluster is gone", || async {
        count(&app, "SELECT COUNT(*) FROM clusters").await == 0
    })
    .await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'account.deleted_by_admin'")
            .await,
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE username = 'ada'").await, 0);
}

//! The log websocket and download through HTTP: who may watch, what arrives, what a download holds.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend, Socket, TestApp, TestBrowser};

async fn ready_cluster(app: &TestApp, browser: &TestBrowser, name: &str) -> (String, String) {
    let id = browser.new_cluster(name).await;
    browser.wait_for_phase(&id, "Ready").await;
    let pods: Value = browser.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    let server =
        pods.as_array().unwrap().iter().find(|p| p["role"] == "server").expect("a server pod");
    let _ = app;
    (id, server["name"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_watches_live_lines_over_the_websocket() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "logs").await;
    let mut socket = open(&ada, &format!("/ws/clusters/{id}/logs?pod={pod}&tail=5")).await;
    let mut lines = Vec::new();
    let mut statuses = Vec::new();
    while lines.len() < 8 {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        let message: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        match message["type"].as_str().unwrap() {
            "lines" => lines.extend(message["lines"].as_array().unwrap().iter().cloned()),
            "status" => statuses.push(message["connected"].as_bool().unwrap()),
            other => assert!(other == "heartbeat" || other == "skipped", "unexpected {other}"),
        }
    }
    assert!(statuses.contains(&true) || !lines.is_empty());
    // Each line is `[ts, text, level]`.
    let first = &lines[0];
    assert!(first[0].as_str().unwrap().ends_with('Z'));
    assert!(first[1].is_string());
    assert!(lines.iter().any(|l| l[2].is_string()), "no level was recognised in {lines:?}");
}

/// The owner's log websocket at `path`, from the app's own origin.
async fn open(browser: &TestBrowser, path: &str) -> Socket {
    browser.websocket(path).await.expect("websocket")
}

/// The lines a log websocket sends until it has been quiet for a second.
async fn lines_until_quiet(socket: &mut Socket) -> Vec<Value> {
    let mut lines = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(1), socket.next()).await
    {
        let message: Value = serde_json::from_str(message.unwrap().to_text().unwrap()).unwrap();
        assert_ne!(message["type"], "skipped", "lines were lost: {message}");
        if message["type"] == "lines" {
            lines.extend(message["lines"].as_array().unwrap().iter().cloned());
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_resuming_after_the_upstream_ended_gets_nothing_twice() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "resume").await;
    // Hold the log still, so that what the first socket saw is the whole log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.hostsim().set_log_rate(0.0);
    let path = format!("/ws/clusters/{id}/logs?pod={pod}&tail=all");
    let mut socket = open(&ada, &path).await;
    let seen = lines_until_quiet(&mut socket).await;
    assert!(seen.len() >= 10, "{} lines", seen.len());
    drop(socket);
    // Past the hub's linger: the upstream ends, as it does when kraft restarts.
    tokio::time::sleep(Duration::from_secs(7)).await;

    // Resume as the browser does, after the fifth line from the end.
    let at = &seen[seen.len() - 5];
    let same = seen[..seen.len() - 4].iter().filter(|l| l[0] == at[0]).count();
    let since = at[0].as_str().unwrap().replace('+', "%2B");
    let path = format!("/ws/clusters/{id}/logs?pod={pod}&since={since}&seen={same}&tail=all");
    let mut socket = open(&ada, &path).await;
    let resumed = lines_until_quiet(&mut socket).await;
    assert_eq!(resumed, seen[seen.len() - 4..], "exactly the lines after the resume point");

    // A new viewer of a new upstream gets the tail it asks for, not the upstream's whole history.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let path = format!("/ws/clusters/{id}/logs?pod={pod}&tail=3");
    let mut socket = open(&ada, &path).await;
    assert_eq!(lines_until_quiet(&mut socket).await, seen[seen.len() - 3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_other_sites_cannot_watch_logs() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "private").await;
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;

    let status_of = |error: tokio_tungstenite::tungstenite::Error| match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("unexpected error {other}"),
    };
    let path = format!("/ws/clusters/{id}/logs?pod={pod}");
    let stranger = mallory.websocket(&path).await.unwrap_err();
    assert_eq!(status_of(stranger), 404, "a stranger learns nothing");
    let missing = format!("/ws/clusters/{}/logs?pod={pod}", uuid::Uuid::new_v4());
    let nothing = mallory.websocket(&missing).await.unwrap_err();
    assert_eq!(status_of(nothing), 404);
    let other_pod = format!("/ws/clusters/{id}/logs?pod=kube-apiserver");
    let foreign_pod = ada.websocket(&other_pod).await.unwrap_err();
    assert_eq!(status_of(foreign_pod), 404, "only the cluster's own pods");
    let cross = ada.websocket_from(&path, "https://evil.example").await.unwrap_err();
    assert_eq!(status_of(cross), 403, "cross-origin upgrade");
    let anonymous = app.another_browser();
    let nobody = anonymous.websocket(&path).await.unwrap_err();
    assert_eq!(status_of(nobody), 401);
    let download = mallory
        .client
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod={pod}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_download_as_a_size_limited_text_file() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "dl").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = ada
        .client
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod={pod}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"{pod}-k3k-dl-server.log\"").as_str()
    );
    let text = response.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(text.len() <= kraft::logs::DOWNLOAD_LIMIT_BYTES);
    assert!(
        text.lines().all(|l| l.split(' ').next().is_some_and(|ts| ts.ends_with('Z'))),
        "every line is timestamped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_has_a_previous_log() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "crashy").await;
    let container = "k3k-crashy-server";
    let form = [("id", id.as_str()), ("pod", pod.as_str())];
    let ask = || ada.call("clusters/previous-log", &form);

    // No restart yet: a plain explanation, not an empty log.
    let none = ask().await;
    assert_eq!(none.status(), 409);
    assert!(none.text().await.unwrap().contains("has not restarted"));
    let download = |previous: bool| {
        let url = app.url(&format!(
            "/api/clusters/{id}/logs/download?pod={pod}{}",
            if previous { "&previous=true" } else { "" }
        ));
        let client = ada.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(download(true).await.status(), 404);

    let detail: Value = ada.call("clusters/get", &[("id", &id)]).await.json().await.unwrap();
    let namespace = detail["host_namespace"].as_str().unwrap();
    assert!(app.hostsim().restart_container(namespace, &pod, container));

    let lines: Vec<Value> = ask().await.json().await.unwrap();
    let last = lines.last().expect("the previous run's lines");
    assert!(last[1].as_str().unwrap().contains("context deadline exceeded"), "{last}");
    assert_eq!(last[2], "fatal");
    assert!(lines.iter().all(|l| l[0].as_str().unwrap().ends_with('Z')));
    let pods: Value = ada.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    let restarted = pods.as_array().unwrap().iter().find(|p| p["name"] == pod.as_str()).unwrap();
    assert_eq!(restarted["restarts"], 1, "the pod list shows the restart");

    let file = download(true).await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["content-disposition"],
        format!("attachment; filename=\"{pod}-{container}-previous.log\"").as_str()
    );
    assert!(file.text().await.unwrap().contains("context deadline exceeded"));
    let current = download(false).await.text().await.unwrap();
    assert!(!current.contains("context deadline exceeded"), "the current run started afresh");

    // Someone else gets nothing.
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    let theirs = mallory.call("clusters/previous-log", &[("id", &id), ("pod", &pod)]).await;
    assert_eq!(theirs.status(), 404);
}

/// Finding 8 of REAL-K3K.md: in shared mode the tenant's own pods run on the host, synced by
/// k3k-kubelet with `k3k.io/clusterName` and whatever labels the tenant gave them. One the
/// tenant creates through its kubeconfig, labelled to look like a K3k server, is neither listed
/// nor readable through KRaft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_tenant_workload_is_never_taken_for_a_k3k_pod() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, PostParams};

    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, _) = ready_cluster(&app, &ada, "shared").await;
    let yaml = ada.kubeconfig(&id, "1").await.text().await.unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let tenant: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let impostor: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nginx", "labels": {"cluster": "shared", "role": "server"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
    }))
    .unwrap();
    tenant.create(&PostParams::default(), &impostor).await.unwrap();
    let host: Api<Pod> = Api::all(app.host().await);
    let synced = ListParams::default().labels("k3k.io/clusterName=shared,role=server");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let name =
        loop {
            let running =
                host.list(&synced).await.unwrap().items.into_iter().find(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                });
            if let Some(pod) = running {
                break pod.metadata.name.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "the tenant pod never ran on the host");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

    let listed: Value = ada.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(!names.is_empty());
    assert!(!names.contains(&name.as_str()), "{names:?}");
    let download = ada
        .client
        .get(app.url(&format!("/api/clusters/{id}/logs/download?pod={name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 404);
}

/// One account may hold only so many live logs open: past the cap the handshake is refused with
/// 429 and a message before anything is opened upstream, and closing a log gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_logs_past_the_per_user_cap_are_refused_with_429_until_one_closes() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.max_log_views_per_user = 3).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "capped").await;
    let path = format!("/ws/clusters/{id}/logs?pod={pod}&tail=1");
    let mut open_logs = Vec::new();
    for _ in 0..3 {
        open_logs.push(open(&ada, &path).await);
    }
    let refused = ada.websocket(&path).await.expect_err("a fourth live log");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("not an HTTP refusal: {refused}");
    };
    assert_eq!(response.status().as_u16(), 429);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("3 live logs open already"), "{body}");
    let detail: Value = ada.call("clusters/get", &[("id", &id)]).await.json().await.unwrap();
    let log =
        format!("/api/v1/namespaces/{}/pods/{pod}/log", detail["host_namespace"].as_str().unwrap());
    assert_eq!(app.hostsim().streams_opened(&log), 1, "one upstream, no more");

    let mut closed = open_logs.pop().unwrap();
    closed.close(None).await.unwrap();
    drop(closed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ada.websocket(&path).await {
            Ok(socket) => break open_logs.push(socket),
            Err(error) => assert!(
                std::time::Instant::now() < deadline,
                "the closed log's place never came back: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Downloads and previous-run reads share one small per-user cap while they are under way (each
/// holds megabytes while it is read): a third one at once is refused with 429; once they are done
/// the next is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_reads_past_the_per_user_cap_are_refused_with_429() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, pod) = ready_cluster(&app, &ada, "reads").await;
    let url = app.url(&format!("/api/clusters/{id}/logs/download?pod={pod}"));
    // The host answers slowly: two reads stay under way for a while.
    app.hostsim().faults().set_latency(Duration::from_millis(1500));
    let slow = |client: reqwest::Client, url: String| {
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    };
    let first = slow(ada.client.clone(), url.clone());
    let second = slow(ada.client.clone(), url.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = ada.client.get(&url).send().await.unwrap();
    assert_eq!(third.status(), 429);
    let message = third.text().await.unwrap();
    assert!(message.contains("2 log downloads under way already"), "{message}");
    let previous = ada.call("clusters/previous-log", &[("id", &id), ("pod", &pod)]).await;
    assert_eq!(previous.status(), 429, "a previous-run read counts too");
    assert_eq!((first.await.unwrap(), second.await.unwrap()), (200, 200));
    app.hostsim().faults().set_latency(Duration::ZERO);
    assert_eq!(ada.client.get(&url).send().await.unwrap().status(), 200, "places given back");
}

/// A host that answers 503 gets a few more tries and then the user an answer: kube's own retry
/// (15 tries, the backoff doubling to 1,000 s) held the cluster page's pod list for minutes, and
/// the page with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_answers_503_is_tried_a_few_times_then_the_page_is_told() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let (id, _) = ready_cluster(&app, &ada, "outage").await;
    let detail: Value = ada.call("clusters/get", &[("id", &id)]).await.json().await.unwrap();
    let pods = format!("/api/v1/namespaces/{}/pods", detail["host_namespace"].as_str().unwrap());
    app.hostsim().faults().set_error_rate(&pods, 1.0, 503);
    let before = app.hostsim().request_count(&pods);
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        ada.call("clusters/pods", &[("id", id.as_str())]),
    )
    .await
    .expect("an answer while the host is down, not minutes of retries");
    assert_eq!(answer.status(), 503, "{:?}", answer.text().await);
    // The first try and four more.
    assert_eq!(app.hostsim().request_count(&pods) - before, 5);
    app.hostsim().faults().clear();
    let listed = ada.call("clusters/pods", &[("id", id.as_str())]).await;
    assert_eq!(listed.status(), 200);
}

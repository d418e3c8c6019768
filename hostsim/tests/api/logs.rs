//! Pod logs through kube-rs: tail, follow, and the kubelet's 400s.

use futures::AsyncBufReadExt;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;

use crate::harness::{api_error, spawn_host_with, ClusterSpec};

fn fast_logs() -> hostsim::Config {
    hostsim::Config { log_lines_per_second: 50.0, ..hostsim::Config::default() }
}

#[tokio::test]
async fn log_stream_follow_yields_new_lines() {
    let app = spawn_host_with(fast_logs()).await;
    app.namespace("k3k-log").await;
    app.create_cluster("k3k-log", "l", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-log", "l", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-log");
    let tail = pods
        .logs("k3k-l-server-0", &LogParams { tail_lines: Some(3), ..Default::default() })
        .await
        .expect("logs");
    assert_eq!(tail.lines().count(), 3);
    let lp = LogParams {
        follow: true,
        tail_lines: Some(1),
        timestamps: true,
        container: Some("k3k-l-server".into()),
        ..Default::default()
    };
    let stream = pods.log_stream("k3k-l-server-0", &lp).await.expect("log stream");
    let mut lines = stream.lines();
    let mut got = Vec::new();
    while got.len() < 20 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(3), lines.next())
            .await
            .expect("a line in time");
        got.push(next.expect("stream open").expect("line"));
    }
    assert!(got.iter().all(|l| l.starts_with("20")), "timestamps prefix every line");
    assert!(got.iter().any(|l| l.contains("level=info")));
    assert_eq!(app.sim.request_count("/api/v1/namespaces/k3k-log/pods/k3k-l-server-0/log"), 2);
}

#[tokio::test]
async fn logs_of_a_multi_container_pod_need_a_container() {
    let app = spawn_host_with(fast_logs()).await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "two"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}})).expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("pod");
    let (code, _, message) = api_error(pods.logs("two", &LogParams::default()).await);
    assert_eq!(code, 400);
    assert_eq!(message, "a container name must be specified for pod two, choose one of: [a b]");
    let (code, _, message) = api_error(
        pods.logs("two", &LogParams { container: Some("a".into()), ..Default::default() }).await,
    );
    assert_eq!(code, 400);
    assert_eq!(message, "container \"a\" in pod \"two\" is waiting to start: ContainerCreating");
    let (code, _, _) = api_error(pods.logs("missing", &LogParams::default()).await);
    assert_eq!(code, 404);
}

#[tokio::test]
async fn limit_bytes_and_since_seconds_cut_the_log() {
    let app = spawn_host_with(fast_logs()).await;
    app.namespace("k3k-cut").await;
    app.create_cluster("k3k-cut", "c", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-cut", "c", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-cut");
    let limited = pods
        .logs("k3k-c-server-0", &LogParams { limit_bytes: Some(100), ..Default::default() })
        .await
        .expect("logs");
    assert_eq!(limited.len(), 100);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let all = pods.logs("k3k-c-server-0", &LogParams::default()).await.expect("all");
    let recent = pods
        .logs("k3k-c-server-0", &LogParams { since_seconds: Some(1), ..Default::default() })
        .await
        .expect("recent");
    assert!(recent.lines().count() < all.lines().count());
    assert!(!recent.contains("Starting single node setup"));
    assert!(all.starts_with("[INFO] ["));
}

#[tokio::test]
async fn open_follow_streams_are_counted_until_the_client_leaves() {
    let app = spawn_host_with(fast_logs()).await;
    app.namespace("k3k-open").await;
    app.create_cluster("k3k-open", "o", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-open", "o", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-open");
    let path = "/api/v1/namespaces/k3k-open/pods/k3k-o-server-0/log";
    let lp = LogParams { follow: true, tail_lines: Some(1), ..Default::default() };
    let mut lines = pods.log_stream("k3k-o-server-0", &lp).await.expect("stream").lines();
    lines.next().await.expect("a line").expect("ok");
    assert_eq!(app.sim.open_streams(path), 1);
    drop(lines);
    for _ in 0..100 {
        if app.sim.open_streams(path) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the stream stayed open after the client left");
}

#[tokio::test]
async fn a_restarted_container_keeps_its_previous_log() {
    let app = spawn_host_with(fast_logs()).await;
    app.namespace("k3k-prev").await;
    app.create_cluster("k3k-prev", "p", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-prev", "p", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-prev");
    let pod = "k3k-p-server-0";
    let previous = LogParams { previous: true, ..Default::default() };
    let (code, _, message) = api_error(pods.logs(pod, &previous).await);
    assert_eq!(code, 400, "no restart yet");
    assert_eq!(
        message,
        "previous terminated container \"k3k-p-server\" in pod \"k3k-p-server-0\" not found"
    );

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = pods.logs(pod, &LogParams::default()).await.expect("logs");
    assert!(app.sim.restart_container("k3k-prev", pod, "k3k-p-server"));
    assert!(!app.sim.restart_container("k3k-prev", pod, "nope"));

    let old = pods.logs(pod, &previous).await.expect("previous log");
    assert!(old.starts_with(&before), "the previous log is the old run's log");
    assert!(old.trim_end().ends_with("context deadline exceeded\""), "it ends with the crash");
    let now = pods.logs(pod, &LogParams::default()).await.expect("current log");
    assert!(!now.contains("context deadline exceeded"), "the new run starts afresh");
    let status = pods.get(pod).await.expect("pod").status.expect("status");
    let container = &status.container_statuses.expect("statuses")[0];
    assert_eq!(container.restart_count, 1);
    let terminated = container.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(terminated.map(|t| t.exit_code), Some(1));
}

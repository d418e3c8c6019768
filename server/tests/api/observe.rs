//! `GET /metrics`: scraped like Prometheus does and parsed with a Prometheus text parser.

use std::collections::HashMap;

use crate::helpers::{spawn_app, Backend};

/// The scrape's samples: (name, labels) → value.
async fn scrape(address: &str) -> Vec<prometheus_parse::Sample> {
    let response = reqwest::get(format!("{address}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format").samples
}

/// The value of `name` with all of `labels`, summed over the other labels; `None` if absent.
fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            prometheus_parse::Value::Histogram(ref buckets) => {
                Some(buckets.last().map_or(0.0, |b| b.count))
            }
            _ => None,
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_in_prometheus_text_format_with_every_series() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;
    assert_eq!(ada.login("ada", "not the password").await.status(), 401);
    let id = ada.new_cluster("demo").await;
    ada.wait_for_phase(&id, "Ready").await;
    let kubeconfig = ada.named_kubeconfig(&id, "laptop", "1").await.text().await.unwrap();
    let token = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap();
    let through = reqwest::Client::new()
        .get(app.url(&format!("/k8s/clusters/{id}/api/v1/namespaces")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);

    let samples = scrape(&app.address).await;
    let has = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    // HTTP by route pattern (never the raw path), method and status, with a latency histogram.
    assert!(has("kraft_http_requests_total", &[("route", "/healthz"), ("status", "200")]) >= 1.0);
    assert!(has("kraft_http_request_duration_seconds_count", &[("route", "/healthz")]) >= 1.0);
    assert!(
        !samples.iter().any(|s| s.labels.get("route").is_some_and(|r| r.contains(&id))),
        "a cluster id made it into a label"
    );
    // The gateway, sign-ins, the reconciler, the host API, clusters by phase.
    assert!(has("kraft_gateway_requests_total", &[("code", "200")]) >= 1.0);
    assert!(has("kraft_gateway_request_duration_seconds_count", &[]) >= 1.0);
    assert!(has("kraft_sign_ins_total", &[("outcome", "failed")]) >= 1.0);
    has("kraft_sign_ins_total", &[("outcome", "succeeded")]);
    assert!(has("kraft_reconciler_passes_total", &[]) >= 1.0);
    has("kraft_reconciler_errors_total", &[]);
    has("kraft_reconciler_repairs_total", &[("action", "orphans_removed")]);
    assert!(has("kraft_host_api_requests_total", &[("method", "GET")]) >= 1.0);
    assert!(has("kraft_host_api_request_duration_seconds_count", &[("method", "PATCH")]) >= 1.0);
    has("kraft_host_api_errors_total", &[]);
    assert_eq!(has("kraft_clusters", &[("phase", "Ready")]), 1.0);
    assert_eq!(has("kraft_clusters", &[("phase", "Failed")]), 0.0);
    // Live views, log and metrics hubs: present from the first scrape.
    for kind in ["clusters", "dashboard", "logs", "metrics"] {
        has("kraft_websockets_open", &[("kind", kind)]);
    }
    has("kraft_log_upstreams", &[]);
    has("kraft_log_lines_skipped_total", &[]);
    has("kraft_metrics_polls_total", &[]);
    // HELP lines come with the series.
    let text = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    let helps: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert!(helps.contains_key("kraft_gateway_requests_total"), "{text}");
}

/// With `KRAFT_METRICS_ADDR`, `/metrics` is only there: what exposes the UI cannot expose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_an_address_of_their_own() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let own = app.metrics_address.clone().expect("a metrics address");
    let samples = scrape(&own).await;
    assert!(value(&samples, "kraft_leader", &[]).is_some(), "the platform's series are there");
    let ui = reqwest::get(format!("{own}/")).await.unwrap();
    assert_eq!(ui.status(), 404, "nothing but /metrics on the metrics address");
}

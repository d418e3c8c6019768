//! `GET /metrics`: Prometheus text exposition of what [`platform::observe`] counts, rendered by
//! `metrics-exporter-prometheus`, plus the HTTP layer that counts and times every request.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use platform::clusters::Phase;
use platform::observe;
use platform::Platform;

/// Latency buckets (seconds): sub-millisecond gateway hops up to slow host calls.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder (the `metrics` facade has one global recorder): installed once, on
/// first use; several applications in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        observe::describe();
        handle
    })
}

/// `GET /metrics`.
pub async fn scrape(State(platform): State<Platform>) -> Response {
    let handle = handle();
    // Gauges that are cheaper to read at scrape time than to keep up to date.
    match platform.clusters().count_by_phase().await {
        Ok(counts) => {
            for phase in Phase::ALL {
                let n = counts
                    .iter()
                    .filter(|(p, _)| p == phase.as_str())
                    .map(|(_, n)| *n)
                    .sum::<i64>();
                gauge!(observe::CLUSTERS, "phase" => phase.as_str()).set(n as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot count clusters for /metrics"),
    }
    gauge!(observe::LOG_UPSTREAMS).set(platform.logs().upstreams() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
        .into_response()
}

/// Counts and times every request by its route pattern (never the raw path: one series per
/// route, whatever the ids in it), method and status.
pub async fn http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = observe::method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(observe::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    histogram!(observe::HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

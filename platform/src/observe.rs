//! What KRaft counts for Prometheus. Everything is recorded through the `metrics` facade (a no-op
//! until the server installs its Prometheus recorder), under the names below, so the platform and
//! the server share one vocabulary and `/metrics` shows every series from the first scrape on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};

pub const HTTP_REQUESTS: &str = "kraft_http_requests_total";
pub const HTTP_DURATION: &str = "kraft_http_request_duration_seconds";
pub const WEBSOCKETS_OPEN: &str = "kraft_websockets_open";
pub const LOG_UPSTREAMS: &str = "kraft_log_upstreams";
pub const LOG_LINES_SKIPPED: &str = "kraft_log_lines_skipped_total";
pub const METRICS_POLLS: &str = "kraft_metrics_polls_total";
pub const RECONCILE_PASSES: &str = "kraft_reconciler_passes_total";
pub const RECONCILE_ERRORS: &str = "kraft_reconciler_errors_total";
pub const RECONCILE_REPAIRS: &str = "kraft_reconciler_repairs_total";
pub const HOST_REQUESTS: &str = "kraft_host_api_requests_total";
pub const HOST_DURATION: &str = "kraft_host_api_request_duration_seconds";
pub const HOST_ERRORS: &str = "kraft_host_api_errors_total";
pub const CLUSTERS: &str = "kraft_clusters";
pub const SIGN_INS: &str = "kraft_sign_ins_total";
pub const GATEWAY_REQUESTS: &str = "kraft_gateway_requests_total";
pub const GATEWAY_DURATION: &str = "kraft_gateway_request_duration_seconds";
pub const LEADER: &str = "kraft_leader";

/// The kinds of live view (`kind` label of [`WEBSOCKETS_OPEN`]).
pub const WEBSOCKET_KINDS: [&str; 4] = ["clusters", "dashboard", "logs", "metrics"];
/// What the reconciler repairs (`action` label of [`RECONCILE_REPAIRS`]).
pub const REPAIRS: [&str; 6] =
    ["provisioned", "updated", "marked_failed", "rows_removed", "orphans_removed", "expired"];

/// HELP texts, and every series at zero so a scrape shows them before anything happened.
pub fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route, method and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer an HTTP request (its head).");
    describe_gauge!(WEBSOCKETS_OPEN, "Live-view websockets open now, by kind.");
    describe_gauge!(LOG_UPSTREAMS, "Pod log streams from the host open now (one per pod).");
    describe_counter!(
        LOG_LINES_SKIPPED,
        "Log lines a slow viewer missed because the ring moved past it."
    );
    describe_counter!(METRICS_POLLS, "metrics.k8s.io polls of the host made by the metrics hub.");
    describe_counter!(RECONCILE_PASSES, "Full reconciler passes.");
    describe_counter!(RECONCILE_ERRORS, "Reconciler passes that failed.");
    describe_counter!(RECONCILE_REPAIRS, "Drift the reconciler repaired, by action.");
    describe_counter!(HOST_REQUESTS, "Requests to the host cluster's API, by method and status.");
    describe_histogram!(HOST_DURATION, Unit::Seconds, "Host API response time (until its head).");
    describe_counter!(HOST_ERRORS, "Host API requests that failed to connect or got a 5xx.");
    describe_gauge!(CLUSTERS, "Virtual clusters by phase.");
    describe_counter!(SIGN_INS, "Password sign-ins, by outcome (succeeded, failed, throttled).");
    describe_counter!(GATEWAY_REQUESTS, "Cluster API requests through the gateway, by status.");
    describe_histogram!(
        GATEWAY_DURATION,
        Unit::Seconds,
        "Gateway response time (until its head), token check and upstream included."
    );
    describe_gauge!(LEADER, "1 while this replica holds the leader Lease (runs the reconciler).");
    gauge!(LEADER).set(0.0);
    for kind in WEBSOCKET_KINDS {
        gauge!(WEBSOCKETS_OPEN, "kind" => kind).set(0.0);
    }
    for action in REPAIRS {
        counter!(RECONCILE_REPAIRS, "action" => action).absolute(0);
    }
    for outcome in ["succeeded", "failed", "throttled"] {
        counter!(SIGN_INS, "outcome" => outcome).absolute(0);
    }
    gauge!(LOG_UPSTREAMS).set(0.0);
    counter!(LOG_LINES_SKIPPED).absolute(0);
    counter!(METRICS_POLLS).absolute(0);
    counter!(RECONCILE_PASSES).absolute(0);
    counter!(RECONCILE_ERRORS).absolute(0);
    counter!(HOST_ERRORS).absolute(0);
}

/// Counts one open websocket of `kind` while it lives.
pub struct OpenWebsocket(&'static str);

impl OpenWebsocket {
    pub fn new(kind: &'static str) -> Self {
        gauge!(WEBSOCKETS_OPEN, "kind" => kind).increment(1.0);
        Self(kind)
    }
}

impl Drop for OpenWebsocket {
    fn drop(&mut self) {
        gauge!(WEBSOCKETS_OPEN, "kind" => self.0).decrement(1.0);
    }
}

/// A tower layer for the host's kube client: every request counted and timed by method and status.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostApiLayer;

impl<S> tower_layer::Layer<S> for HostApiLayer {
    type Service = HostApi<S>;
    fn layer(&self, inner: S) -> HostApi<S> {
        HostApi(inner)
    }
}

#[derive(Clone, Debug)]
pub struct HostApi<S>(S);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for HostApi<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = method_label(request.method());
        let started = Instant::now();
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await;
            let status = match &response {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            let code = if status == 0 { "error".to_owned() } else { status.to_string() };
            counter!(HOST_REQUESTS, "method" => method, "code" => code).increment(1);
            histogram!(HOST_DURATION, "method" => method).record(started.elapsed().as_secs_f64());
            if status == 0 || status >= 500 {
                counter!(HOST_ERRORS).increment(1);
            }
            response
        })
    }
}

/// A method as a label from a fixed set (no caller-chosen label values).
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

//! The metrics hub against a real simulated host over HTTPS: aggregation equal to a direct read,
//! one upstream poll per interval however many viewers, history on subscribe, no polling without
//! viewers, unavailability and recovery, quota usage, and slow viewers that hold nobody back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use platform::host::k3k::{Cluster, ClusterMode, ClusterSpec};
use platform::stream::metrics::{
    Availability, ClusterSample, ClusterTarget, MetricsEvent, MetricsHub, MetricsSettings, PodRole,
    QuotaPair, Received, Subscription,
};
use platform::stream::quantity;

const METRICS_PATH: &str = "/apis/metrics.k8s.io";
const WAIT: Duration = Duration::from_secs(15);

struct Sim {
    running: hostsim::Running,
    client: kube::Client,
}

async fn host() -> Sim {
    let running = hostsim::start(hostsim::Config {
        pod_start_delay: Duration::from_millis(50),
        ready_delay: Duration::from_millis(50),
        log_lines_per_second: 0.0,
        ..Default::default()
    })
    .await
    .expect("hostsim starts");
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&running.kubeconfig_yaml()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig is usable");
    // What the hub wants: a 503 is seen at once, not retried inside one poll.
    config.default_retry = false;
    Sim { client: kube::Client::try_from(config).expect("client"), running }
}

/// A hub polling every `interval`, run on its own task and stopped when dropped.
struct RunningHub {
    hub: Arc<MetricsHub>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::ops::Deref for RunningHub {
    type Target = Arc<MetricsHub>;
    fn deref(&self) -> &Arc<MetricsHub> {
        &self.hub
    }
}

fn settings(interval_ms: u64) -> MetricsSettings {
    MetricsSettings {
        interval: Duration::from_millis(interval_ms),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn run_hub(sim: &Sim, settings: MetricsSettings) -> RunningHub {
    let hub = MetricsHub::new(sim.client.clone(), settings);
    let task = tokio::spawn(hub.clone().run());
    RunningHub { hub, task }
}

impl Sim {
    async fn namespace(&self, name: &str, policy: Option<&str>) {
        let mut ns = serde_json::json!({"metadata": {"name": name}});
        if let Some(policy) = policy {
            ns["metadata"]["labels"] = serde_json::json!({"policy.k3k.io/policy-name": policy});
        }
        let ns: Namespace = serde_json::from_value(ns).expect("namespace");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    /// A virtual cluster with one server and `agents` agents, all running.
    async fn running_cluster(&self, ns: &str, name: &str, agents: i32) -> ClusterTarget {
        let clusters: Api<Cluster> = Api::namespaced(self.client.clone(), ns);
        let cluster = Cluster::new(
            name,
            ClusterSpec {
                mode: Some(ClusterMode::Virtual),
                servers: Some(1),
                agents: Some(agents),
                ..Default::default()
            },
        );
        clusters.create(&PostParams::default(), &cluster).await.expect("cluster created");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let selector = ListParams::default().labels(&format!("cluster={name}"));
        let deadline = Instant::now() + WAIT;
        loop {
            let list = pods.list(&selector).await.expect("pods");
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if running == 1 + agents as usize {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster's pods never all ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ClusterTarget::new(ns, name)
    }

    fn metrics_requests(&self) -> u64 {
        self.running.request_count(METRICS_PATH)
    }
}

async fn next(sub: &mut Subscription) -> Received {
    tokio::time::timeout(WAIT, sub.recv()).await.expect("an event in time").expect("hub alive")
}

async fn next_sample(sub: &mut Subscription) -> Arc<ClusterSample> {
    loop {
        match next(sub).await {
            Received::Event(MetricsEvent::Sample(sample)) => return sample,
            Received::Event(MetricsEvent::Quota(_)) => {}
            other => panic!("expected a sample, got {other:?}"),
        }
    }
}

async fn next_unavailable(sub: &mut Subscription) -> String {
    loop {
        match next(sub).await {
            Received::Event(MetricsEvent::Unavailable { reason }) => return reason,
            Received::Event(MetricsEvent::Sample(_) | MetricsEvent::Quota(_)) => {}
            Received::Lagged(n) => panic!("lost {n} events"),
        }
    }
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_totals_are_the_sum_of_every_container_of_its_server_and_agent_pods() {
    let sim = host().await;
    sim.namespace("m-sum", None).await;
    let target = sim.running_cluster("m-sum", "sum", 2).await;
    // Another cluster in another namespace must not leak in.
    sim.namespace("m-other", None).await;
    sim.running_cluster("m-other", "sum", 1).await;
    let hub = run_hub(&sim, settings(200));
    let mut sub = hub.subscribe(target.clone());
    let sample = next_sample(&mut sub).await;

    // The same pods read directly, containers summed here.
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client.clone(), "m-sum", &resource);
    let direct = api.list(&ListParams::default().labels("cluster=sum")).await.expect("metrics");
    let mut cpu = 0.0;
    let mut memory = 0u64;
    let mut names = Vec::new();
    for pod in &direct.items {
        names.push(pod.metadata.name.clone().unwrap_or_default());
        for container in pod.data["containers"].as_array().expect("containers") {
            let usage = &container["usage"];
            cpu += quantity::cpu_millicores(usage["cpu"].as_str().expect("cpu")).expect("cpu");
            memory += quantity::bytes(usage["memory"].as_str().expect("mem")).expect("memory");
        }
    }
    names.sort();

    let hub_names: Vec<&str> = sample.by_pod.iter().map(|p| p.pod.as_str()).collect();
    assert_eq!(hub_names, names);
    assert_eq!(sample.by_pod.iter().filter(|p| p.role == PodRole::Server).count(), 1);
    assert_eq!(sample.by_pod.iter().filter(|p| p.role == PodRole::Agent).count(), 2);
    // The simulated usage drifts slowly with time; the two reads are a moment apart.
    assert!(
        close(sample.cpu_millicores, cpu, 0.05),
        "hub {} vs direct {cpu}",
        sample.cpu_millicores
    );
    assert!(
        close(sample.memory_bytes as f64, memory as f64, 0.02),
        "hub {} vs direct {memory}",
        sample.memory_bytes
    );
    let by_pod_cpu: f64 = sample.by_pod.iter().map(|p| p.cpu_millicores).sum();
    let by_pod_memory: u64 = sample.by_pod.iter().map(|p| p.memory_bytes).sum();
    assert!(close(by_pod_cpu, sample.cpu_millicores, 1e-12));
    assert_eq!(by_pod_memory, sample.memory_bytes);
    // Plausible magnitudes: a server uses tens of millicores and hundreds of MiB.
    assert!(sample.cpu_millicores > 10.0 && sample.cpu_millicores < 2000.0);
    assert!(sample.memory_bytes > 100 << 20);
    assert_eq!(sub.availability, Availability::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_poll_per_interval_serves_one_viewer_or_twenty() {
    let sim = host().await;
    sim.namespace("m-fan", None).await;
    let target = sim.running_cluster("m-fan", "fan", 1).await;
    let hub = run_hub(&sim, settings(200));
    const INTERVALS: u64 = 10;

    let mut first = hub.subscribe(target.clone());
    next_sample(&mut first).await;
    let (before, polls_before, started) = (sim.metrics_requests(), hub.polls(), Instant::now());
    for _ in 0..INTERVALS {
        next_sample(&mut first).await;
    }
    let one_viewer = sim.metrics_requests() - before;
    assert!(started.elapsed() >= Duration::from_millis(200 * (INTERVALS - 1)), "polled too often");
    assert!(one_viewer.abs_diff(INTERVALS) <= 1, "{one_viewer} requests for {INTERVALS} intervals");
    assert!((hub.polls() - polls_before).abs_diff(INTERVALS) <= 1);

    let mut others: Vec<Subscription> = (0..19).map(|_| hub.subscribe(target.clone())).collect();
    next_sample(&mut first).await;
    // Bring everybody to the same event.
    let mut latest = Vec::new();
    for other in &mut others {
        latest.push(next_sample(other).await);
    }
    let (before, started) = (sim.metrics_requests(), Instant::now());
    for _ in 0..INTERVALS {
        let sample = next_sample(&mut first).await;
        for other in &mut others {
            // Every viewer gets the very same sample: shared, not copied per viewer.
            assert!(Arc::ptr_eq(&next_sample(other).await, &sample));
        }
    }
    let twenty_viewers = sim.metrics_requests() - before;
    assert!(started.elapsed() >= Duration::from_millis(200 * (INTERVALS - 1)), "polled too often");
    assert!(
        twenty_viewers.abs_diff(INTERVALS) <= 1,
        "{twenty_viewers} requests for {INTERVALS} intervals with 20 viewers"
    );
    assert_eq!(hub.subscribers(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_viewer_gets_the_bounded_history_at_once() {
    let sim = host().await;
    sim.namespace("m-hist", None).await;
    let target = sim.running_cluster("m-hist", "hist", 0).await;
    let hub = run_hub(
        &sim,
        MetricsSettings { history: 5, downsample: 2, long_history: 3, ..settings(100) },
    );
    let mut first = hub.subscribe(target.clone());
    assert!(first.history.is_empty());
    assert_eq!(first.availability, Availability::Pending);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_sample(&mut first).await);
    }
    let second = hub.subscribe(target.clone());
    assert!(second.history.len() >= 3, "history of {}", second.history.len());
    assert!(second.history.iter().any(|s| Arc::ptr_eq(s, &seen[2])));
    assert_eq!(second.availability, Availability::Available);
    assert!(second.history.windows(2).all(|w| w[0].ts <= w[1].ts), "oldest first");

    for _ in 0..6 {
        next_sample(&mut first).await;
    }
    let third = hub.subscribe(target);
    assert_eq!(third.history.len(), 5, "the ring is bounded");
    // Nine or more samples make at least four averaged pairs, of which the long ring keeps three;
    // the newest pair ends at a sample still in the short history.
    assert_eq!(third.long_history.len(), 3);
    let mean = &third.long_history[2];
    let end = third.history.iter().position(|s| s.ts == mean.ts).expect("pair end in history");
    assert!(end >= 1);
    let pair = &third.history[end - 1..=end];
    let expected = (pair[0].cpu_millicores + pair[1].cpu_millicores) / 2.0;
    assert!((mean.cpu_millicores - expected).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_polled_while_nobody_watches() {
    let sim = host().await;
    sim.namespace("m-idle", None).await;
    let target = sim.running_cluster("m-idle", "idle", 0).await;
    let hub = run_hub(&sim, settings(100));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sim.metrics_requests(), 0, "no viewer, no poll");
    assert_eq!(hub.polls(), 0);

    let mut sub = hub.subscribe(target.clone());
    let kept = next_sample(&mut sub).await;
    next_sample(&mut sub).await;
    drop(sub);
    assert_eq!(hub.subscribers(), 0);
    // A poll may have been in flight when the viewer left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (requests, polls) = (sim.metrics_requests(), hub.polls());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sim.metrics_requests(), requests, "polling went on without viewers");
    assert_eq!(hub.polls(), polls);

    // Coming back within the linger time finds the history, and polling resumes.
    let mut back = hub.subscribe(target);
    assert!(back.history.iter().any(|s| Arc::ptr_eq(s, &kept)));
    next_sample(&mut back).await;
    assert!(sim.metrics_requests() > requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_in_two_namespaces_still_cost_one_request_per_interval() {
    let sim = host().await;
    sim.namespace("m-a", None).await;
    sim.namespace("m-b", None).await;
    let a = sim.running_cluster("m-a", "a", 0).await;
    let b = sim.running_cluster("m-b", "b", 0).await;
    let hub = run_hub(&sim, settings(100));
    let mut sub_a = hub.subscribe(a);
    next_sample(&mut sub_a).await;
    let before = sim.metrics_requests();
    let mut sub_b = hub.subscribe(b);
    for _ in 0..5 {
        next_sample(&mut sub_b).await;
    }
    // Two watched clusters in two namespaces still cost one request per interval.
    let requests = sim.metrics_requests() - before;
    assert!(requests <= 7, "{requests} requests for ~5 intervals");
    for _ in 0..2 {
        let sample = next_sample(&mut sub_a).await;
        assert!(sample.by_pod.iter().all(|p| p.pod.starts_with("k3k-a-")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_metrics_api_is_reported_and_samples_return_after_recovery() {
    let sim = host().await;
    sim.namespace("m-down", None).await;
    let target = sim.running_cluster("m-down", "down", 1).await;
    let hub = run_hub(&sim, settings(100));
    let mut sub = hub.subscribe(target.clone());
    next_sample(&mut sub).await;

    sim.running.faults().set_metrics_unavailable(true);
    let reason = next_unavailable(&mut sub).await;
    assert!(reason.contains("unavailable"), "reason: {reason}");
    // While down, a new viewer is told so at once instead of seeing zeros.
    let late = hub.subscribe(target.clone());
    assert!(matches!(late.availability, Availability::Unavailable { .. }));
    assert!(!late.history.is_empty(), "the history from before is still there");
    // Unavailability is reported once, not at every poll.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(sub.events.is_empty(), "{} events while down", sub.events.len());

    sim.running.faults().set_metrics_unavailable(false);
    let sample = next_sample(&mut sub).await;
    assert!(sample.cpu_millicores > 0.0);
    assert_eq!(hub.subscribe(target).availability, Availability::Available);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_running_pods_is_unavailable_rather_than_zero() {
    let sim = host().await;
    sim.namespace("m-none", None).await;
    let hub = run_hub(&sim, settings(100));
    let mut sub = hub.subscribe(ClusterTarget::new("m-none", "ghost"));
    let reason = next_unavailable(&mut sub).await;
    assert!(reason.contains("no running"), "reason: {reason}");
    // Once its pods run, samples arrive.
    let target = sim.running_cluster("m-none", "ghost", 0).await;
    assert_eq!(target, sub.target);
    let sample = next_sample(&mut sub).await;
    assert_eq!(sample.by_pod.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_loses_events_without_holding_back_a_fast_one() {
    let sim = host().await;
    sim.namespace("m-slow", None).await;
    let target = sim.running_cluster("m-slow", "slow", 0).await;
    let hub = run_hub(&sim, MetricsSettings { buffer: 4, ..settings(50) });
    let mut slow = hub.subscribe(target.clone());
    let mut fast = hub.subscribe(target);
    let started = Instant::now();
    for _ in 0..12 {
        next_sample(&mut fast).await;
    }
    // The fast viewer kept pace with the polls although the slow one read nothing.
    assert!(started.elapsed() < Duration::from_secs(5));
    match next(&mut slow).await {
        Received::Lagged(missed) => assert!(missed >= 8, "missed {missed}"),
        other => panic!("the slow viewer should be told what it missed, got {other:?}"),
    }
    // Then it reads what the bounded buffer kept, and goes on.
    assert!(slow.events.len() <= 4);
    next_sample(&mut slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_usage_is_read_from_the_tenant_resource_quota() {
    let sim = host().await;
    let vcps: Api<DynamicObject> = Api::all_with(
        sim.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
            "virtualclusterpolicies",
        ),
    );
    let vcp: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy",
        "metadata": {"name": "tenant"},
        "spec": {"allowedMode": "virtual",
                 "quota": {"hard": {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi",
                                    "requests.storage": "10Gi"}},
                 "limit": {"limits": [{"type": "Container",
                                       "defaultRequest": {"cpu": "500m", "memory": "256Mi"},
                                       "default": {"cpu": "1", "memory": "512Mi"}}]}}
    }))
    .expect("policy");
    vcps.create(&PostParams::default(), &vcp).await.expect("policy created");
    sim.namespace("m-quota", Some("tenant")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let target = sim.running_cluster("m-quota", "quota", 1).await;

    let hub = run_hub(&sim, settings(100));
    let mut sub = hub.subscribe(target);
    let quotas: Api<ResourceQuota> = Api::namespaced(sim.client.clone(), "m-quota");
    let deadline = Instant::now() + WAIT;
    let usage = loop {
        let direct = quotas.get("k3k-tenant").await.expect("quota").status.expect("status");
        let (hard, used) = (direct.hard.unwrap_or_default(), direct.used.unwrap_or_default());
        let pair = |key: &str, parse: fn(&str) -> f64| QuotaPair {
            used: used.get(key).map(|q| parse(&q.0)).unwrap_or(0.0),
            hard: parse(&hard[key].0),
        };
        let millicores = |q: &str| quantity::cpu_millicores(q).expect("cpu");
        let amount = |q: &str| quantity::Quantity::parse(q).expect("quantity").value();
        let expected = (
            pair("requests.cpu", millicores),
            pair("requests.memory", amount),
            pair("requests.storage", amount),
            pair("pods", amount),
        );
        if let Received::Event(MetricsEvent::Quota(usage)) = next(&mut sub).await {
            if (usage.cpu, usage.memory, usage.storage, usage.pods)
                == (Some(expected.0), Some(expected.1), Some(expected.2), Some(expected.3))
            {
                break usage;
            }
        }
        assert!(Instant::now() < deadline, "the hub's quota never matched the ResourceQuota");
    };
    assert_eq!(usage.cpu.map(|p| p.hard), Some(4000.0));
    assert_eq!(usage.memory.map(|p| p.hard), Some((8u64 << 30) as f64));
    assert_eq!(usage.storage.map(|p| p.hard), Some((10u64 << 30) as f64));
    assert_eq!(usage.pods, Some(QuotaPair { used: 2.0, hard: 10.0 }));
    assert_eq!(usage.cpu.map(|p| p.used), Some(1000.0), "two pods at the 500m default request");
    // A later viewer gets the quota in its snapshot.
    assert_eq!(hub.subscribe(sub.target.clone()).quota, Some(usage));
}

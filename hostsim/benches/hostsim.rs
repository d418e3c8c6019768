//! hostsim performance figures (not a test): `cargo bench -p hostsim`.
//!
//! Prints: list latency with 1,000 pods, watch fan-out to 100 watchers, the line rate of one
//! `logs -f` stream, and resident memory with 100 Ready clusters. Client and server share the
//! process, so the memory figure includes the kube-rs clients.

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn client(sim: &hostsim::Running) -> BenchResult<Client> {
    let kc = Kubeconfig::from_yaml(&sim.kubeconfig_yaml())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn namespace(client: &Client, name: &str) -> BenchResult<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    Ok(())
}

async fn list_1000_pods() -> BenchResult<()> {
    let sim = hostsim::start(hostsim::Config::default()).await?;
    let client = client(&sim).await?;
    namespace(&client, "bench").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let started = Instant::now();
    let creates = futures::stream::iter(0..1000).map(|i| {
        let pods = pods.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("pod-{i:04}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
                "spec": {"containers": [{"name": "main", "image": "rancher/k3s:v1.33.1-k3s1"}]},
            }))?;
            pods.create(&PostParams::default(), &pod).await?;
            BenchResult::Ok(())
        }
    });
    let results: Vec<BenchResult<()>> = creates.buffer_unordered(16).collect().await;
    for r in results {
        r?;
    }
    let create_secs = started.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let list = pods.list(&ListParams::default()).await?;
        samples.push(t.elapsed());
        assert_eq!(list.items.len(), 1000);
    }
    samples.sort();
    let mut selected = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let list = pods.list(&ListParams::default().labels("shard=3")).await?;
        selected.push(t.elapsed());
        assert_eq!(list.items.len(), 100);
    }
    selected.sort();
    println!(
        "list 1,000 pods (kube-rs, HTTPS, JSON): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over 30 lists; \
         labelSelector (100 of 1,000): p50 {:.1} ms; 1,000 creates at concurrency 16: {:.2} s ({:.0}/s)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        percentile(&selected, 0.5).as_secs_f64() * 1e3,
        create_secs,
        1000.0 / create_secs
    );
    sim.shutdown().await;
    Ok(())
}

async fn watch_fan_out() -> BenchResult<()> {
    const WATCHERS: usize = 100;
    const EVENTS: usize = 200;
    let sim = hostsim::start(hostsim::Config::default()).await?;
    let client = client(&sim).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = cms.list(&ListParams::default()).await?.metadata.resource_version.unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut tasks = Vec::new();
    for w in 0..WATCHERS {
        let cms = cms.clone();
        let rv = rv.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let stream = cms.watch(&WatchParams::default().timeout(290), &rv).await?;
            let mut stream = std::pin::pin!(stream);
            let mut seen = 0;
            while let Some(ev) = stream.next().await {
                if let WatchEvent::Added(_) = ev? {
                    seen += 1;
                    if seen == EVENTS {
                        let _ = tx.send((w, Instant::now()));
                        break;
                    }
                }
            }
            BenchResult::Ok(())
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for i in 0..EVENTS {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}}),
        )?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let writes = started.elapsed();
    let mut done = 0;
    let mut last = started;
    while let Some((_, at)) = rx.recv().await {
        done += 1;
        last = last.max(at);
    }
    let total = last - started;
    println!(
        "watch fan-out: {WATCHERS} watchers x {EVENTS} events = {} deliveries; all delivered {:.0} ms after the first write \
         (writes took {:.0} ms); {:.0} deliveries/s; {done}/{WATCHERS} watchers complete",
        WATCHERS * EVENTS,
        total.as_secs_f64() * 1e3,
        writes.as_secs_f64() * 1e3,
        (WATCHERS * EVENTS) as f64 / total.as_secs_f64()
    );
    for t in tasks {
        t.await??;
    }
    sim.shutdown().await;
    Ok(())
}

async fn log_throughput() -> BenchResult<()> {
    let config = hostsim::Config {
        log_lines_per_second: 5.0,
        log_ring_lines: 10_000,
        ..hostsim::Config::default()
    };
    let sim = hostsim::start(config).await?;
    let client = client(&sim).await?;
    namespace(&client, "k3k-logs").await?;
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "k3k-logs",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
            "clusters",
        ),
    );
    let c: kube::api::DynamicObject = serde_json::from_value(
        json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": "l"}, "spec": {}}),
    )?;
    clusters.create(&PostParams::default(), &c).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "k3k-logs");
    for _ in 0..100 {
        if pods.logs("k3k-l-server-0", &LogParams::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for rate in [1_000.0, 20_000.0, 200_000.0] {
        sim.set_log_rate(rate);
        let lp =
            LogParams { follow: true, tail_lines: Some(0), timestamps: true, ..Default::default() };
        let mut lines = pods.log_stream("k3k-l-server-0", &lp).await?.lines();
        let started = Instant::now();
        let window = Duration::from_secs(3);
        let mut n = 0u64;
        while started.elapsed() < window {
            match tokio::time::timeout(window.saturating_sub(started.elapsed()), lines.next()).await
            {
                Ok(Some(Ok(_))) => n += 1,
                _ => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!("log follow stream at a generated {rate:.0} lines/s: received {:.0} lines/s ({n} lines in {secs:.1} s)", n as f64 / secs);
    }
    sim.set_log_rate(5.0);
    sim.shutdown().await;
    Ok(())
}

async fn memory_100_clusters() -> BenchResult<()> {
    let before = rss_kib();
    let sim = hostsim::start(hostsim::Config::default()).await?;
    let client = client(&sim).await?;
    let started_rss = rss_kib();
    let started = Instant::now();
    for i in 0..100 {
        let ns = format!("k3k-c{i}");
        namespace(&client, &ns).await?;
        let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
                "clusters",
            ),
        );
        let c: kube::api::DynamicObject = serde_json::from_value(
            json!({"apiVersion": "k3k.io/v1beta1", "kind": "Cluster", "metadata": {"name": format!("c{i}")}, "spec": {"mode": "virtual", "agents": 1}}),
        )?;
        clusters.create(&PostParams::default(), &c).await?;
    }
    let all: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
            "clusters",
        ),
    );
    loop {
        let list = all.list(&ListParams::default()).await?;
        let ready = list.items.iter().filter(|c| c.data["status"]["phase"] == "Ready").count();
        if ready == 100 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("only {ready} of 100 clusters Ready after 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    println!(
        "memory with 100 Ready clusters (virtual mode, 1 server + 1 agent, each with its own TLS API): RSS {:.1} MiB \
         (process before start {:.1} MiB, after start {:.1} MiB; +{:.1} MiB for 100 clusters, {:.0} KiB each); \
         {} objects in the store; all Ready {:.1} s after the first create",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        started_rss as f64 / 1024.0,
        (after.saturating_sub(started_rss)) as f64 / 1024.0,
        after.saturating_sub(started_rss) as f64 / 100.0,
        sim.object_count(),
        ready_after.as_secs_f64()
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run briefly then.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    if want("memory") {
        memory_100_clusters().await?;
    }
    if want("list") {
        list_1000_pods().await?;
    }
    if want("watch") {
        watch_fan_out().await?;
    }
    if want("logs") {
        log_throughput().await?;
    }
    Ok(())
}

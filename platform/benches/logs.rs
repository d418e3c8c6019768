//! Log hub figures: upstream streams for many viewers of one pod, and what 100 / 1,000 viewers
//! receive at 10,000 lines/s, taking lines as the websocket does (every 100 ms). hostsim
//! (generating the lines) runs in the same process, so the CPU figure is an upper bound for the
//! hub. The same through kraft's websockets: `cargo bench -p server --bench logs`. Prints figures,
//! asserts nothing.
//!
//!     cargo bench -p platform --bench logs

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use platform::host::k3k::{Cluster, ClusterMode, ClusterSpec};
use platform::stream::logs::{LogHub, LogKey, LogSettings};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn server_pod(client: &kube::Client, name: &str) -> anyhow::Result<LogKey> {
    let ns = format!("bench-{name}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns);
    let spec =
        ClusterSpec { mode: Some(ClusterMode::Virtual), servers: Some(1), ..Default::default() };
    clusters.create(&PostParams::default(), &Cluster::new(name, spec)).await?;
    let pod = format!("k3k-{name}-server-0");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pods.get_opt(&pod).await?.and_then(|p| p.status).and_then(|s| s.phase).as_deref()
        != Some("Running")
    {
        anyhow::ensure!(Instant::now() < deadline, "the pod never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(LogKey { namespace: ns, pod, container: format!("k3k-{name}-server") })
}

/// Batches like the websocket's: at most one take every 100 ms.
const BATCH: Duration = Duration::from_millis(100);

/// `viewers` viewers of `key` for `seconds`: (delivered fraction, process CPU in cores, lines
/// per second each viewer was offered).
async fn run(viewers: usize, hub: &Arc<LogHub>, key: &LogKey, seconds: u64) -> (f64, f64, f64) {
    let received = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let mut subscription = hub.subscribe(key.clone(), Some(0), None);
        let (received, skipped, counting) = (received.clone(), skipped.clone(), counting.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                subscription.changed().await;
                let taken = subscription.take(usize::MAX);
                if counting.load(Ordering::Relaxed) {
                    received.fetch_add(taken.lines.len() as u64, Ordering::Relaxed);
                    skipped.fetch_add(taken.skipped, Ordering::Relaxed);
                }
                tokio::time::sleep(BATCH).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::Relaxed);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu_before) / elapsed;
    for task in tasks {
        task.abort();
    }
    let (received, skipped) = (received.load(Ordering::Relaxed), skipped.load(Ordering::Relaxed));
    let offered = (received + skipped) as f64;
    (received as f64 / offered.max(1.0), cpu, offered / viewers as f64 / elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = hostsim::start(hostsim::Config {
        log_lines_per_second: 10.0,
        log_ring_lines: 20_000,
        pod_start_delay: Duration::from_millis(50),
        ready_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml())?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?,
    )?;
    let key = server_pod(&client, "bench").await?;
    let hub = LogHub::new(client.clone(), LogSettings::default());
    let log_path = format!("/api/v1/namespaces/{}/pods/{}/log", key.namespace, key.pod);

    let (before, streams_before) = (sim.request_count(&log_path), sim.streams_opened(&log_path));
    let viewers: Vec<_> = (0..100).map(|_| hub.subscribe(key.clone(), Some(100), None)).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "upstream log streams for 1 pod x 100 viewers: {} (goal 1; {} requests with the history read)",
        sim.streams_opened(&log_path) - streams_before,
        sim.request_count(&log_path) - before
    );
    drop(viewers);

    sim.set_log_rate(10_000.0);
    for viewers in [100, 1000] {
        let (delivered, cpu, rate) = run(viewers, &hub, &key, 5).await;
        println!(
            "{viewers} viewers at {rate:.0} lines/s upstream: delivered {:.3} %, process CPU {cpu:.2} cores (hostsim included), peak RSS {:.1} MiB",
            delivered * 100.0,
            peak_rss_mib()
        );
    }
    sim.shutdown().await;
    Ok(())
}

//! 1,000 dashboards at once: upstream metrics polls per interval, and the kraft server's CPU and
//! memory while it pushes every cluster's numbers to every dashboard.
//!
//! The real `kraft` binary runs as a child process (so its RSS and CPU are its own), against a
//! fresh PostgreSQL database and hostsim over HTTPS (in this process). 10 users own 5 clusters
//! each (50 clusters); each user has 100 dashboard websockets open (1,000 sockets, 5,000
//! cluster subscriptions). Prints figures; asserts only sanity.
//!
//!     cargo bench -p server --bench dashboard
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use support::{call, ready_clusters, sign_up, BenchDatabase, Server};

const USERS: usize = 10;
const CLUSTERS_PER_USER: usize = 5;
const SOCKETS_PER_USER: usize = 100;
const INTERVAL: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(20);
const METRICS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/pods";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = BenchDatabase::create("dashboard").await?;
    let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let server = Server::start(
        &database.url,
        dir.path(),
        &kubeconfig,
        &[
            ("KRAFT_MAX_CLUSTERS", CLUSTERS_PER_USER.to_string()),
            ("KRAFT_METRICS_INTERVAL", format!("{}s", INTERVAL.as_secs())),
        ],
    )
    .await?;
    let address = server.address.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;

    println!("  kraft RSS at start: {:.1} MiB", server.memory_mib().1);
    println!(
        "setup: {USERS} users x {CLUSTERS_PER_USER} clusters, {SOCKETS_PER_USER} dashboards each, interval {INTERVAL:?}"
    );
    let mut users = Vec::new();
    for u in 0..USERS {
        let user = sign_up(&http, &address, &format!("user{u}")).await?;
        for c in 0..CLUSTERS_PER_USER {
            let response = call(
                &http,
                &address,
                Some(&user.cookie),
                "clusters/create",
                &[("name", &format!("c{c}"))],
            )
            .await?;
            anyhow::ensure!(response.status() == 200, "create failed: {}", response.status());
        }
        users.push(user);
    }
    println!(
        "  kraft RSS after {USERS} sign-ups and {} creates: {:.1} MiB",
        USERS * CLUSTERS_PER_USER,
        server.memory_mib().1
    );
    let started = Instant::now();
    loop {
        let mut ready = 0;
        for user in &users {
            ready += ready_clusters(&http, &address, user).await?;
        }
        if ready == USERS * CLUSTERS_PER_USER {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "only {ready} Ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("  50 clusters Ready after {:.1} s", started.elapsed().as_secs_f64());
    let (_, idle_rss) = server.memory_mib();
    println!("  kraft RSS before any dashboard: {idle_rss:.1} MiB");

    // Open the dashboards.
    let samples = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let opened = Instant::now();
    let mut tasks = Vec::new();
    for user in &users {
        for _ in 0..SOCKETS_PER_USER {
            let socket = support::websocket(&server, user, "/ws/dashboard").await?;
            let (samples, messages, bytes) = (samples.clone(), messages.clone(), bytes.clone());
            tasks.push(tokio::spawn(async move {
                let (_, mut incoming) = socket.split();
                while let Some(Ok(message)) = incoming.next().await {
                    let text = message.to_text().unwrap_or_default();
                    messages.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                    if text.starts_with("{\"type\":\"sample\"") {
                        samples.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    let sockets = tasks.len();
    println!("  {sockets} websockets open after {:.1} s", opened.elapsed().as_secs_f64());
    // Let every subscription see a poll before measuring.
    tokio::time::sleep(INTERVAL * 3).await;

    let polls_before = hostsim.request_count(METRICS_PATH);
    let samples_before = samples.load(Ordering::Relaxed);
    let bytes_before = bytes.load(Ordering::Relaxed);
    let cpu_before = server.cpu_time();
    let window_start = Instant::now();
    let mut peak_rss: f64 = 0.0;
    while window_start.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(server.memory_mib().1);
    }
    let elapsed = window_start.elapsed();
    let polls = hostsim.request_count(METRICS_PATH) - polls_before;
    let delivered = samples.load(Ordering::Relaxed) - samples_before;
    let sent_bytes = bytes.load(Ordering::Relaxed) - bytes_before;
    let cpu = server.cpu_time() - cpu_before;
    let (hwm, rss) = server.memory_mib();
    let intervals = elapsed.as_secs_f64() / INTERVAL.as_secs_f64();
    let expected = intervals * (sockets * CLUSTERS_PER_USER) as f64;

    println!(
        "dashboard: {sockets} websockets over {} clusters, {:.1} s window",
        USERS * CLUSTERS_PER_USER,
        elapsed.as_secs_f64()
    );
    println!(
        "  upstream PodMetrics polls: {polls} in {intervals:.1} intervals = {:.2} per interval",
        polls as f64 / intervals
    );
    println!(
        "  samples delivered: {delivered} of ~{expected:.0} expected ({:.1} %), {:.0} messages/s, {:.1} MiB/s",
        delivered as f64 / expected * 100.0,
        delivered as f64 / elapsed.as_secs_f64(),
        sent_bytes as f64 / elapsed.as_secs_f64() / 1048576.0
    );
    println!(
        "  kraft CPU: {:.1} % of one core ({:.2} s CPU in {:.1} s)",
        cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        cpu.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("  kraft RSS: {rss:.1} MiB now, {peak_rss:.1} MiB peak in the window, {hwm:.1} MiB high-water mark (since start)");
    println!("  total messages received by the clients: {}", messages.load(Ordering::Relaxed));

    for task in tasks {
        task.abort();
    }
    drop(server);
    hostsim.shutdown().await;
    database.drop_it().await?;
    Ok(())
}

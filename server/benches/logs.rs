//! Live logs through kraft's websockets: 100 and then 1,000 browsers following one server pod's
//! log while the host writes 10,000 lines a second. Prints the upstream log streams the host
//! saw, the fraction of lines the viewers got (the rest they were told they lost), and the kraft
//! server's CPU and memory.
//!
//! The real `kraft` binary runs as a child process (so its CPU and RSS are its own) against a
//! fresh PostgreSQL database and hostsim over HTTPS; hostsim and the websocket clients share this
//! process. With both on the same two cores, at 1,000 viewers the clients' own reading limits
//! what can be delivered; so 1,000 viewers run twice, the second time with kraft pinned to core 0
//! and this process (clients and hostsim) to core 1 (`taskset`): what kraft alone sustains on one
//! core. Prints figures; asserts only sanity.
//!
//!     cargo bench -p server --bench logs
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use support::{call, clusters, sign_up, BenchDatabase, Server};

const RATE: f64 = 10_000.0;
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counts {
    lines: AtomicU64,
    skipped: AtomicU64,
    bytes: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = BenchDatabase::create("logs").await?;
    let hostsim = hostsim::start(hostsim::Config {
        log_lines_per_second: 10.0,
        log_ring_lines: 20_000,
        ..Default::default()
    })
    .await
    .context("start hostsim")?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    // One account opens every viewer: its cap on live logs (16 by default) is raised to match.
    let server = Server::start(
        &database.url,
        dir.path(),
        &kubeconfig,
        &[("KRAFT_MAX_LOG_VIEWS_PER_USER", "2000".into())],
    )
    .await?;
    let address = server.address.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;

    let user = sign_up(&http, &address, "viewer").await?;
    let response =
        call(&http, &address, Some(&user.cookie), "clusters/create", &[("name", "bench")]).await?;
    anyhow::ensure!(response.status() == 200, "create failed: {}", response.status());
    let started = Instant::now();
    let id = loop {
        let list = clusters(&http, &address, &user).await?;
        if let Some(ready) = list.iter().find(|c| c["phase"] == "Ready") {
            break ready["id"].as_str().context("cluster id")?.to_owned();
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "the cluster never got Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pods: Vec<serde_json::Value> =
        call(&http, &address, Some(&user.cookie), "clusters/pods", &[("id", &id)])
            .await?
            .json()
            .await?;
    let pod = pods.iter().find(|p| p["role"] == "server").context("no server pod")?;
    let (pod, container) = (
        pod["name"].as_str().context("pod name")?.to_owned(),
        pod["containers"][0].as_str().context("container")?.to_owned(),
    );
    let path = format!("/ws/clusters/{id}/logs?pod={pod}&container={container}&tail=0");
    // The pod's log path on the host, to count the upstream requests there.
    let host = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&hostsim.kubeconfig_yaml())?,
            &Default::default(),
        )
        .await?,
    )?;
    let found = kube::Api::<k8s_openapi::api::core::v1::Pod>::all(host)
        .list(&kube::api::ListParams::default().fields(&format!("metadata.name={pod}")))
        .await?;
    let namespace =
        found.items.first().and_then(|p| p.metadata.namespace.clone()).context("pod")?;
    let log_path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/log");
    println!(
        "kraft log websockets: {pod}/{container}, {} lines/s from the host, {:.0} s windows",
        RATE,
        WINDOW.as_secs_f64()
    );
    println!("  kraft RSS before any viewer: {:.1} MiB", server.memory_mib().1);

    hostsim.set_log_rate(RATE);
    let rounds = [(100, "shared cores"), (1000, "shared cores"), (1000, "pinned")];
    for (viewers, placement) in rounds {
        if placement == "pinned" {
            support::pin(server.pid(), "0")?;
            support::pin(std::process::id(), "1")?;
        }
        let counts = Arc::new(Counts::default());
        let counting = Arc::new(AtomicBool::new(false));
        let streams_before = hostsim.streams_opened(&log_path);
        let mut tasks = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..viewers {
            let socket = match support::websocket(&server, &user, &path).await {
                Ok(socket) => socket,
                Err(error) => {
                    refused.push(error.to_string());
                    continue;
                }
            };
            let (counts, counting) = (counts.clone(), counting.clone());
            tasks.push(tokio::spawn(async move {
                let (_, mut incoming) = socket.split();
                while let Some(Ok(message)) = incoming.next().await {
                    if !counting.load(Ordering::Relaxed) {
                        continue;
                    }
                    let text = message.to_text().unwrap_or_default();
                    counts.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                    if text.starts_with(r#"{"type":"lines""#) {
                        // Every line is an array that starts with its timestamp, `["`; inside a
                        // line's text the quotes are escaped.
                        let n = text.matches(r#"[""#).count();
                        counts.lines.fetch_add(n as u64, Ordering::Relaxed);
                    } else if let Some(rest) = text.strip_prefix(r#"{"type":"skipped","n":"#) {
                        let n = rest.trim_end_matches('}').parse::<u64>().unwrap_or(0);
                        counts.skipped.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Let every socket get going before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        counting.store(true, Ordering::Relaxed);
        let cpu_before = server.cpu_time();
        let window = Instant::now();
        let mut peak_rss: f64 = 0.0;
        while window.elapsed() < WINDOW {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak_rss = peak_rss.max(server.memory_mib().1);
        }
        counting.store(false, Ordering::Relaxed);
        let elapsed = window.elapsed().as_secs_f64();
        let cpu = (server.cpu_time() - cpu_before).as_secs_f64() / elapsed;
        let lines = counts.lines.load(Ordering::Relaxed);
        let skipped = counts.skipped.load(Ordering::Relaxed);
        let offered = (lines + skipped) as f64;
        let placement = match placement {
            "pinned" => "kraft on core 0; clients and hostsim on core 1",
            _ => "kraft, clients and hostsim sharing cores 0-1",
        };
        println!("{viewers} viewers ({placement}):");
        if !refused.is_empty() {
            println!("  refused at opening: {} ({})", refused.len(), refused[0]);
        }
        println!(
            "  upstream log streams at the host: {} (goal 1)",
            hostsim.streams_opened(&log_path) - streams_before
        );
        println!(
            "  lines offered per viewer: {:.0}/s; delivered {:.3} % ({lines} lines, {skipped} lost and reported), {:.1} MiB/s to the clients",
            offered / viewers as f64 / elapsed,
            lines as f64 / offered.max(1.0) * 100.0,
            counts.bytes.load(Ordering::Relaxed) as f64 / elapsed / 1048576.0
        );
        let (hwm, rss) = server.memory_mib();
        println!(
            "  kraft CPU {:.2} cores; RSS {rss:.1} MiB now, {peak_rss:.1} MiB peak in the window, {hwm:.1} MiB high-water mark",
            cpu
        );
        for task in tasks {
            task.abort();
        }
        // Wait out the hub's linger (5 s after the last viewer) so the next round opens its own
        // upstream and its request count means what it says.
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    drop(server);
    hostsim.shutdown().await;
    database.drop_it().await?;
    Ok(())
}

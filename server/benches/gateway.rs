//! Cluster access through KRaft's gateway, on the real `kraft` binary (a child process, so its
//! RSS and CPU are its own) against hostsim over HTTPS and a fresh PostgreSQL database:
//!
//! 1. overhead: p50 / p99 of `GET /api/v1/namespaces` through the gateway and straight to the
//!    virtual cluster's API (K3k's admin kubeconfig), interleaved in one run, both with kube-rs;
//! 2. token checks: requests/s of an authenticated request the gateway answers itself (a
//!    cluster that is not Ready yet: 503 after the token check), 50 at a time;
//! 3. 1,000 concurrent watches through one KRaft: its extra RSS and CPU, and how many see an
//!    event;
//! 4. `logs -f` of a tenant pod writing 10,000 lines/s: lines through the gateway against the
//!    same stream read straight from the cluster.
//!
//! Prints figures; fails only if it cannot run.
//!
//!     cargo bench -p server --bench gateway
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, LogParams, PostParams};
use support::{call, ready_clusters, sign_up, BenchDatabase, Server, User};

const SAMPLES: usize = 2_000;
const WATCHES: usize = 1_000;
const LOG_RATE: f64 = 10_000.0;
const LOG_WINDOW: Duration = Duration::from_secs(10);

async fn kube_client(yaml: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates cluster `name` for `user` and returns its id once Ready (or at once with `wait` off).
async fn cluster(
    http: &reqwest::Client,
    server: &Server,
    user: &User,
    name: &str,
    wait: bool,
) -> anyhow::Result<String> {
    let response =
        call(http, &server.address, Some(&user.cookie), "clusters/create", &[("name", name)])
            .await?;
    anyhow::ensure!(response.status() == 200, "create failed: {}", response.status());
    let id: String = response.json().await?;
    let started = Instant::now();
    while wait && ready_clusters(http, &server.address, user).await? == 0 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "cluster never Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(id)
}

async fn kubeconfig(
    http: &reqwest::Client,
    server: &Server,
    user: &User,
    id: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{}/api/clusters/{id}/kubeconfig", server.address))
        .header("Cookie", format!("kraft_session={}", user.cookie))
        .header("Origin", &server.address)
        .form(&[("name", "bench"), ("days", "1")])
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "kubeconfig: {}", response.status());
    Ok(response.text().await?)
}

fn token_of(yaml: &str) -> anyhow::Result<String> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)?;
    let token = kubeconfig.auth_infos[0].auth_info.as_ref().and_then(|a| a.token.clone());
    Ok(secrecy::ExposeSecret::expose_secret(&token.context("no token")?).to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raise_open_files();
    let database = BenchDatabase::create("gateway").await?;
    let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
    let dir = tempfile::tempdir()?;
    let host_kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&host_kubeconfig, hostsim.kubeconfig_yaml())?;
    let server = Server::start(&database.url, dir.path(), &host_kubeconfig, &[]).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let user = sign_up(&http, &server.address, "bench").await?;
    let id = cluster(&http, &server, &user, "bench", true).await?;
    let yaml = kubeconfig(&http, &server, &user, &id).await?;
    let token = token_of(&yaml)?;
    let gateway = kube_client(&yaml).await?;
    // Straight to the virtual API with K3k's own admin kubeconfig, as the gateway dials it.
    let host = kube_client(&hostsim.kubeconfig_yaml()).await?;
    let namespace = format!("kraft-bench-{}", &id[..8]);
    let secret = Api::<Secret>::namespaced(host, &namespace).get("k3k-bench-kubeconfig").await?;
    let admin =
        secret.data.and_then(|d| d.get("kubeconfig.yaml").cloned()).context("no kubeconfig")?;
    let direct = kube_client(std::str::from_utf8(&admin.0)?).await?;

    // 1. Overhead.
    let get = || http::Request::get("/api/v1/namespaces").body(Vec::new()).expect("request");
    for _ in 0..200 {
        direct.request_text(get()).await?;
        gateway.request_text(get()).await?;
    }
    let (mut through, mut straight) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        let t = Instant::now();
        direct.request_text(get()).await?;
        straight.push(t.elapsed());
        let t = Instant::now();
        gateway.request_text(get()).await?;
        through.push(t.elapsed());
    }
    through.sort();
    straight.sort();
    let (p50d, p99d) = (percentile(&straight, 0.5), percentile(&straight, 0.99));
    let (p50g, p99g) = (percentile(&through, 0.5), percentile(&through, 0.99));
    println!("1. GET /api/v1/namespaces, {SAMPLES} each, interleaved (kube-rs, keep-alive):");
    println!("   straight to the virtual API: p50 {:.3} ms, p99 {:.3} ms", ms(p50d), ms(p99d));
    println!("   through KRaft's gateway:     p50 {:.3} ms, p99 {:.3} ms", ms(p50g), ms(p99g));
    println!("   overhead: p50 {:+.3} ms, p99 {:+.3} ms", ms(p50g) - ms(p50d), ms(p99g) - ms(p99d));

    // 2. Token checks: a cluster stuck provisioning answers 503 right after the check.
    hostsim.faults().set_provisioning(hostsim::Provisioning::Stuck, Duration::ZERO);
    let stuck = cluster(&http, &server, &user, "stuck", false).await?;
    let stuck_token = token_of(&kubeconfig(&http, &server, &user, &stuck).await?)?;
    hostsim.faults().clear();
    let url = format!("{}/k8s/clusters/{stuck}/api", server.address);
    let done = Arc::new(AtomicU64::new(0));
    let window = Duration::from_secs(5);
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    let workers: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, token, done) =
                (http.clone(), url.clone(), stuck_token.clone(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < window {
                    let r = http.get(&url).bearer_auth(&token).send().await;
                    if r.is_ok_and(|r| r.status() == 503) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!("2. authenticated requests the gateway answers itself, 50 at a time, {window:?}:");
    println!(
        "   {:.0} requests/s on {} cores; kraft CPU {:.0}% of one core",
        n as f64 / elapsed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        (server.cpu_time() - cpu_before).as_secs_f64() / elapsed * 100.0
    );

    // 3. 1,000 watches.
    let (_, rss_before) = server.memory_mib();
    let url = format!(
        "{}/k8s/clusters/{id}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=false",
        server.address
    );
    let seen = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::with_capacity(WATCHES);
    for _ in 0..WATCHES {
        let response =
            http.get(&url).bearer_auth(&token).timeout(Duration::from_secs(120)).send().await?;
        anyhow::ensure!(response.status() == 200, "watch: {}", response.status());
        let seen = seen.clone();
        streams.push(tokio::spawn(async move {
            let mut response = response;
            while let Ok(Some(chunk)) = response.chunk().await {
                if chunk.windows(b"\"ADDED\"".len()).any(|w| w == b"\"ADDED\"") {
                    seen.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_open) = server.memory_mib();
    let cpu_before = server.cpu_time();
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let idle_cpu = (server.cpu_time() - cpu_before).as_secs_f64() / idle.as_secs_f64() * 100.0;
    let map: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "ping"}}))?;
    let started = Instant::now();
    Api::<ConfigMap>::namespaced(direct.clone(), "default")
        .create(&PostParams::default(), &map)
        .await?;
    while seen.load(Ordering::Relaxed) < WATCHES as u64
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = started.elapsed();
    println!("3. {WATCHES} concurrent watches through one KRaft:");
    println!(
        "   kraft RSS {:.1} MiB before, {:.1} MiB with them open: {:+.1} MiB; idle CPU {:.1}% of one core",
        rss_before,
        rss_open,
        rss_open - rss_before,
        idle_cpu
    );
    println!(
        "   an event reached {} of {WATCHES} watches in {:.0} ms",
        seen.load(Ordering::Relaxed),
        ms(delivered)
    );
    for s in streams {
        s.abort();
    }

    // 4. logs -f at 10,000 lines/s.
    hostsim.set_virtual_log_rate(LOG_RATE);
    let pods: Api<Pod> = Api::namespaced(gateway.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "chatty"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let started = Instant::now();
    while pods.get("chatty").await?.status.and_then(|s| s.phase).as_deref() != Some("Running") {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "pod never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let follow = LogParams { follow: true, tail_lines: Some(0), ..Default::default() };
    let count = |client: kube::Client| {
        let follow = follow.clone();
        async move {
            let pods: Api<Pod> = Api::namespaced(client, "default");
            let mut lines = pods.log_stream("chatty", &follow).await?.lines();
            let deadline = tokio::time::Instant::now() + LOG_WINDOW;
            let mut n = 0u64;
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, lines.next()).await {
                n += 1;
            }
            anyhow::Ok(n)
        }
    };
    let cpu_before = server.cpu_time();
    let (via_gateway, straight_lines) = tokio::join!(count(gateway.clone()), count(direct.clone()));
    let (via_gateway, straight_lines) = (via_gateway?, straight_lines?);
    println!(
        "4. logs -f of a pod writing {LOG_RATE} lines/s, {LOG_WINDOW:?}, both streams at once:"
    );
    println!(
        "   straight {straight_lines} lines, through the gateway {via_gateway} lines: {:.1} % delivered; kraft CPU {:.1}% of one core",
        via_gateway as f64 / straight_lines.max(1) as f64 * 100.0,
        (server.cpu_time() - cpu_before).as_secs_f64() / LOG_WINDOW.as_secs_f64() * 100.0
    );

    drop(server);
    hostsim.shutdown().await;
    database.drop_it().await?;
    Ok(())
}

/// 1,000 watches take ~4,000 descriptors across this process and kraft: lift the soft limit to
/// the hard one (kraft inherits it).
fn raise_open_files() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

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

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const USERS: usize = 10;
const CLUSTERS_PER_USER: usize = 5;
const SOCKETS_PER_USER: usize = 100;
const INTERVAL: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";
const METRICS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/pods";

/// Kills the server when the bench ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) a process has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name; 100 ticks a second.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

struct User {
    cookie: String,
}

async fn call(
    http: &reqwest::Client,
    address: &str,
    cookie: Option<&str>,
    endpoint: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    let mut request = http
        .post(format!("{address}/api/{endpoint}"))
        .header("Accept", "application/json")
        .header("Origin", address)
        .form(form);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", format!("kraft_session={cookie}"));
    }
    Ok(request.send().await?)
}

async fn sign_up(http: &reqwest::Client, address: &str, name: &str) -> anyhow::Result<User> {
    let email = format!("{name}@example.org");
    let response = call(
        http,
        address,
        None,
        "account/register",
        &[
            ("email", email.as_str()),
            ("username", name),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await?;
    anyhow::ensure!(response.status() == 200, "sign-up failed: {}", response.status());
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("kraft_session="))
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    Ok(User { cookie })
}

async fn ready_clusters(
    http: &reqwest::Client,
    address: &str,
    user: &User,
) -> anyhow::Result<usize> {
    let list: Vec<serde_json::Value> =
        call(http, address, Some(&user.cookie), "clusters/list", &[]).await?.json().await?;
    Ok(list.iter().filter(|c| c["phase"] == "Ready").count())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("KRAFT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let base = base.rsplit_once('/').map_or(base.clone(), |(b, _)| b.to_owned());
    let admin = Database::connect(format!("{base}/postgres")).await.context("PostgreSQL")?;
    let name = format!("kraft_bench_dashboard_{}", std::process::id());
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;

    let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let address = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_kraft"))
        .arg("serve")
        .env("KRAFT_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("{base}/{name}"))
        .env("KRAFT_DATA_DIR", dir.path())
        .env("KRAFT_SITE_ROOT", dir.path().join("site"))
        .env("KRAFT_HOST_KUBECONFIG", &kubeconfig)
        .env("KRAFT_MAX_CLUSTERS", CLUSTERS_PER_USER.to_string())
        .env("KRAFT_METRICS_INTERVAL", format!("{}s", INTERVAL.as_secs()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start kraft")?;
    let server = Server(child);
    let pid = server.0.id();

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let started = Instant::now();
    while http.get(format!("{address}/healthz")).send().await.is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "kraft did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("  kraft RSS at start: {:.1} MiB", support::memory_mib(&pid.to_string()).1);
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
        support::memory_mib(&pid.to_string()).1
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
    let (_, idle_rss) = support::memory_mib(&pid.to_string());
    println!("  kraft RSS before any dashboard: {idle_rss:.1} MiB");

    // Open the dashboards.
    let samples = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let opened = Instant::now();
    let mut tasks = Vec::new();
    for user in &users {
        for _ in 0..SOCKETS_PER_USER {
            let mut request =
                format!("ws://127.0.0.1:{port}/ws/dashboard").into_client_request()?;
            request
                .headers_mut()
                .insert("Cookie", format!("kraft_session={}", user.cookie).parse()?);
            request.headers_mut().insert("Origin", address.parse()?);
            let (socket, _) = tokio_tungstenite::connect_async(request).await?;
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
    let cpu_before = cpu_time(pid);
    let window_start = Instant::now();
    let mut peak_rss: f64 = 0.0;
    while window_start.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(support::memory_mib(&pid.to_string()).1);
    }
    let elapsed = window_start.elapsed();
    let polls = hostsim.request_count(METRICS_PATH) - polls_before;
    let delivered = samples.load(Ordering::Relaxed) - samples_before;
    let sent_bytes = bytes.load(Ordering::Relaxed) - bytes_before;
    let cpu = cpu_time(pid) - cpu_before;
    let (hwm, rss) = support::memory_mib(&pid.to_string());
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
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    Ok(())
}

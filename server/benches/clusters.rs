//! Clusters at scale: create request → Cluster CR accepted on the host (p50/p99), the cluster
//! list with 100 clusters (JSON server function and SSR page), and how the reconciler converges
//! after the simulated host restarts with its state lost. Runs the real kraft against a fresh
//! PostgreSQL database and hostsim over HTTPS, in this process; prints figures, asserts nothing
//! beyond sanity.
//!
//!     cargo bench -p server --bench clusters
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use kraft::cli::Cli;
use kraft::Application;
use kube::api::{Api, ListParams};
use platform::host::k3k::Cluster;
use reqwest::cookie::Jar;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Clusters per scenario (one user, `max_clusters` raised to match).
const N: usize = 100;
/// Requests per list measurement.
const LIST_REQUESTS: usize = 50;
/// How often convergence is polled.
const POLL: Duration = Duration::from_millis(50);
/// The longest any wait may take before the scenario gives up on it.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";
const MANAGED: &str = "app.kubernetes.io/managed-by=kraft";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// "n=.. p50 .. p99 .. max .."
fn summary(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "n={} p50 {} p99 {} max {}",
        sorted.len(),
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or_default())
    )
}

fn mean(samples: &[Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.iter().sum::<Duration>() / samples.len() as u32
}

/// The PostgreSQL server and the database name every scenario reuses (dropped in between).
struct Env {
    admin: DatabaseConnection,
    base: String,
    name: String,
    data_dir: PathBuf,
}

impl Env {
    fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    async fn drop_database(&self) -> anyhow::Result<()> {
        self.admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .await
            .context("drop the bench database")?;
        Ok(())
    }
}

/// One running kraft with its own hostsim and database, signed in as one user.
struct Run {
    address: String,
    client: reqwest::Client,
    db: DatabaseConnection,
    host: kube::Client,
    hostsim: hostsim::Running,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(env: &Env, sim: hostsim::Config, reconcile: Duration) -> anyhow::Result<Run> {
    env.drop_database().await?;
    env.admin
        .execute_unprepared(&format!("CREATE DATABASE \"{}\"", env.name))
        .await
        .context("create the bench database")?;
    let hostsim = hostsim::start(sim).await.context("start hostsim")?;
    std::fs::create_dir_all(&env.data_dir)?;
    let kubeconfig = env.data_dir.join("host-kubeconfig.yaml");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let mut config = Cli::try_parse_from(["kraft"])?.config;
    config.addr = "127.0.0.1:0".parse()?;
    config.database_url = Some(env.url());
    config.data_dir = env.data_dir.clone();
    config.site_root = env.data_dir.join("site");
    config.session_idle = Duration::from_secs(3600);
    config.session_absolute = Duration::from_secs(24 * 3600);
    config.host_kubeconfig = Some(kubeconfig);
    config.max_clusters = N;
    config.reconcile_interval = reconcile;
    let app = Application::build(config).await.context("kraft starts")?;
    let address = format!("http://{}", app.local_addr());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .cookie_provider(Arc::new(Jar::default()))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&hostsim.kubeconfig_yaml())?;
    let host_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let host = kube::Client::try_from(host_config)?;
    let db = Database::connect(&env.url()).await.context("bench's own database connection")?;
    let run = Run { address, client, db, host, hostsim, stop, server };

    let response = run
        .call(
            "account/register",
            &[
                ("email", "ada@example.org"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await?;
    anyhow::ensure!(response.status() == 200, "sign-up failed: {}", response.status());
    Ok(run)
}

impl Run {
    /// A server function, as the Leptos client calls it (URL-encoded in, JSON out).
    async fn call(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{}/api/{endpoint}", self.address))
            .header("Accept", "application/json")
            .header("Origin", &self.address)
            .form(form)
            .send()
            .await
    }

    /// The Cluster objects KRaft manages on the host.
    async fn host_clusters(&self) -> Result<usize, kube::Error> {
        let api: Api<Cluster> = Api::all(self.host.clone());
        Ok(api.list(&ListParams::default().labels(MANAGED)).await?.items.len())
    }

    async fn cluster_on_host(&self, id: &str) -> Result<bool, kube::Error> {
        let api: Api<Cluster> = Api::all(self.host.clone());
        let selector = format!("kraft.dev/cluster-id={id}");
        Ok(!api.list(&ListParams::default().labels(&selector)).await?.items.is_empty())
    }

    /// Row count per phase, straight from the database.
    async fn phases(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let rows = self
            .db
            .query_all(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT phase, COUNT(*) FROM clusters GROUP BY phase",
            ))
            .await?;
        let mut phases = BTreeMap::new();
        for row in rows {
            phases.insert(row.try_get_by_index::<String>(0)?, row.try_get_by_index::<i64>(1)?);
        }
        Ok(phases)
    }

    async fn phase_count(&self, phase: &str) -> anyhow::Result<usize> {
        Ok(self.phases().await?.get(phase).copied().unwrap_or(0) as usize)
    }

    async fn stop(self, env: &Env) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        let _ = self.db.close().await;
        self.hostsim.shutdown().await;
        env.drop_database().await
    }
}

/// One create: the HTTP latency, and the time from the request until the bench saw the
/// Cluster on the host (`immediate` if it was already there when the response arrived).
struct Created {
    http: Duration,
    visible: Option<Duration>,
    immediate: bool,
}

async fn create_one(run: &Run, i: usize) -> anyhow::Result<Created> {
    let name = format!("bench-{i:03}");
    let started = Instant::now();
    let response = run.call("clusters/create", &[("name", &name)]).await?;
    let http = started.elapsed();
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status == 200, "create {name}: {status} {body}");
    let id: String =
        serde_json::from_str(&body).with_context(|| format!("create {name}: {body}"))?;
    let mut immediate = true;
    let deadline = started + Duration::from_secs(10);
    let visible = loop {
        if run.cluster_on_host(&id).await.unwrap_or(false) {
            break Some(started.elapsed());
        }
        immediate = false;
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(Created { http, visible, immediate })
}

/// Creates N clusters, `concurrency` requests at a time, and prints the figures.
async fn create_all(run: &Run, concurrency: usize, label: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let results: Vec<(usize, anyhow::Result<Created>)> = futures::stream::iter(0..N)
        .map(|i| async move { (i, create_one(run, i).await) })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut ordered: Vec<(usize, Created)> = Vec::new();
    let mut failures = Vec::new();
    for (i, result) in results {
        match result {
            Ok(created) => ordered.push((i, created)),
            Err(error) => failures.push(format!("#{i}: {error:#}")),
        }
    }
    ordered.sort_by_key(|(i, _)| *i);
    let http: Vec<Duration> = ordered.iter().map(|(_, c)| c.http).collect();
    let visible: Vec<Duration> = ordered.iter().filter_map(|(_, c)| c.visible).collect();
    let immediate = ordered.iter().filter(|(_, c)| c.immediate).count();
    println!(
        "[{label}] {N} creates, concurrency {concurrency}: {} in total ({:.1} creates/s), {} failed",
        secs(elapsed),
        N as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    for failure in failures.iter().take(3) {
        println!("[{label}]   failure {failure}");
    }
    println!(
        "[{label}] create HTTP latency (returns after namespace + Cluster SSA): {}",
        summary(&http)
    );
    println!(
        "[{label}] create request -> Cluster CR seen on host by the bench: {} ({immediate}/{} already there when the response arrived, {} never seen within 10 s)",
        summary(&visible),
        ordered.len(),
        ordered.len() - visible.len()
    );
    if http.len() >= 20 {
        println!(
            "[{label}] create HTTP latency, mean of first 10 vs last 10 (more rows/objects): {} vs {}",
            ms(mean(&http[..10])),
            ms(mean(&http[http.len() - 10..]))
        );
    }
    Ok(())
}

/// Waits (bounded) until `check` holds; returns how long it took, or `None` on timeout.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

fn took(d: Option<Duration>) -> String {
    d.map(secs).unwrap_or_else(|| format!("not within {}", secs(WAIT_LIMIT)))
}

/// The list with N clusters: the JSON server function and the server-rendered page.
async fn list_latencies(run: &Run, label: &str) -> anyhow::Result<()> {
    let mut json = Vec::with_capacity(LIST_REQUESTS);
    let mut json_bytes = 0;
    let mut json_items = 0;
    for _ in 0..LIST_REQUESTS {
        let started = Instant::now();
        let response = run.call("clusters/list", &[]).await?;
        let status = response.status();
        let body = response.bytes().await?;
        json.push(started.elapsed());
        anyhow::ensure!(status == 200, "list: {status}");
        json_bytes = body.len();
        json_items = serde_json::from_slice::<Vec<serde_json::Value>>(&body)?.len();
    }
    let mut html = Vec::with_capacity(LIST_REQUESTS);
    let mut html_bytes = 0;
    let mut html_names = 0;
    for _ in 0..LIST_REQUESTS {
        let started = Instant::now();
        let response = run
            .client
            .get(format!("{}/clusters", run.address))
            .header("Accept", "text/html")
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        html.push(started.elapsed());
        anyhow::ensure!(status == 200, "GET /clusters: {status}");
        html_bytes = body.len();
        html_names = (0..N).filter(|i| body.contains(&format!("bench-{i:03}"))).count();
    }
    println!(
        "[{label}] POST /api/clusters/list ({json_items} clusters, {json_bytes} bytes): {}",
        summary(&json)
    );
    println!(
        "[{label}] GET /clusters SSR page ({html_names}/{N} cluster names in the HTML, {html_bytes} bytes): {}",
        summary(&html)
    );
    Ok(())
}

/// Scenario 1: N clusters go Ready, the host restarts with its state lost; the rows should
/// all turn Failed (a Ready cluster that vanished is never silently replaced).
async fn ready_then_lost(env: &Env, reconcile: Duration, measure: bool) -> anyhow::Result<()> {
    let label = format!("ready/lost, resync {}", secs(reconcile));
    let run = start(env, hostsim::Config::default(), reconcile).await?;
    create_all(&run, 1, &label).await?;
    let ready =
        wait_until(WAIT_LIMIT, || async { run.phase_count("Ready").await.unwrap_or(0) == N }).await;
    println!(
        "[{label}] all {N} rows Ready {} after the last create (hostsim pod_start_delay 150 ms, ready_delay 300 ms)",
        took(ready)
    );
    if ready.is_none() {
        println!("[{label}] phases: {:?}; skipping the rest", run.phases().await?);
        return run.stop(env).await;
    }
    if measure {
        list_latencies(&run, &label).await?;
    }

    let requests_before = run.hostsim.request_count("/");
    let started = Instant::now();
    run.hostsim.restart(false);
    let mut first_failed = None;
    let mut all_failed = None;
    let mut host_max = 0;
    while started.elapsed() < WAIT_LIMIT {
        let failed = run.phase_count("Failed").await?;
        if failed > 0 && first_failed.is_none() {
            first_failed = Some(started.elapsed());
        }
        if let Ok(count) = run.host_clusters().await {
            host_max = host_max.max(count);
        }
        if failed == N {
            all_failed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let requests = run.hostsim.request_count("/") - requests_before;
    println!(
        "[{label}] after restart(false): first row Failed {}, all {N} rows Failed {}",
        took(first_failed),
        took(all_failed)
    );
    // A moment more, to see that nothing is re-created behind the Failed rows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "[{label}] rows then: {:?}; Cluster objects on host: max {host_max} while converging, {} two seconds later; {requests} host requests meanwhile (bench polling included)",
        run.phases().await?,
        run.host_clusters().await.map(|n| n.to_string()).unwrap_or_else(|e| e.to_string())
    );
    run.stop(env).await
}

/// Scenario 2: N clusters that never got Ready (long ready_delay); the host restarts with its
/// state lost; the reconciler should re-create every namespace and Cluster.
async fn provisioning_then_lost(
    env: &Env,
    reconcile: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    let label = format!("provisioning/lost, resync {}", secs(reconcile));
    let sim =
        hostsim::Config { ready_delay: Duration::from_secs(600), ..hostsim::Config::default() };
    let run = start(env, sim, reconcile).await?;
    create_all(&run, concurrency, &label).await?;
    let settled = wait_until(WAIT_LIMIT, || async {
        run.host_clusters().await.unwrap_or(0) == N
            && run.phase_count("Provisioning").await.unwrap_or(0) == N
    })
    .await;
    if settled.is_none() {
        println!(
            "[{label}] never got {N} Cluster objects and {N} Provisioning rows (rows {:?}); skipping the rest",
            run.phases().await?
        );
        return run.stop(env).await;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(run.host.clone());
    let policies: Api<platform::host::k3k::VirtualClusterPolicy> = Api::all(run.host.clone());

    let requests_before = run.hostsim.request_count("/");
    let started = Instant::now();
    run.hostsim.restart(false);
    let mut first = None;
    let mut all = None;
    let mut errors = 0;
    while started.elapsed() < WAIT_LIMIT {
        match run.host_clusters().await {
            Ok(count) => {
                if count > 0 && first.is_none() {
                    first = Some(started.elapsed());
                }
                if count == N {
                    all = Some(started.elapsed());
                    break;
                }
            }
            Err(_) => errors += 1,
        }
        tokio::time::sleep(POLL).await;
    }
    let requests = run.hostsim.request_count("/") - requests_before;
    println!(
        "[{label}] after restart(false): first Cluster re-created {}, all {N} re-created {} ({requests} host requests meanwhile, bench polling included; {errors} failed polls)",
        took(first),
        took(all)
    );
    let namespaces = namespaces.list(&ListParams::default().labels(MANAGED)).await?.items.len();
    let policies = policies.list(&ListParams::default()).await?.items.len();
    println!(
        "[{label}] then: {namespaces} managed namespaces, {policies} VirtualClusterPolicies on host (KRaft applies policies only at start), rows {:?}",
        run.phases().await?
    );
    run.stop(env).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::var("KRAFT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("kraft_bench_clusters_{}", std::process::id());
    let admin = Database::connect(&admin_url)
        .await
        .with_context(|| format!("PostgreSQL must be reachable at {admin_url}"))?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url).to_owned();
    let data_dir = std::env::temp_dir().join(&name);
    let env = Env { admin, base, name, data_dir };
    let default_resync = Cli::try_parse_from(["kraft"])?.config.reconcile_interval;
    println!(
        "clusters bench: N={N}, one user, max_clusters={N}, PostgreSQL, hostsim over HTTPS, all in one process; default reconcile_interval {}",
        secs(default_resync)
    );

    let bench_started = Instant::now();
    let outcome = async {
        ready_then_lost(&env, default_resync, true).await?;
        provisioning_then_lost(&env, default_resync, 10).await?;
        provisioning_then_lost(&env, Duration::from_secs(1), 10).await?;
        ready_then_lost(&env, Duration::from_secs(1), false).await?;
        anyhow::Ok(())
    }
    .await;

    let (peak, now) = support::memory_mib("self");
    println!(
        "peak RSS (VmHWM, server + hostsim + bench client): {peak:.1} MiB; RSS now {now:.1} MiB; bench took {}",
        secs(bench_started.elapsed())
    );
    let _ = env.drop_database().await;
    let _ = std::fs::remove_dir_all(&env.data_dir);
    outcome
}

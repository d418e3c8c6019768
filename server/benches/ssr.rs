//! SSR throughput: requests a second and latency (p50/p99) of the signed-in cluster list with 100
//! clusters, the signed-in dashboard and `/healthz`, on PostgreSQL and on SQLite, under `oha`
//! (a maintained HTTP load generator from crates.io) with 64 keep-alive connections.
//!
//! The real release `kraft` binary runs as a child process against a fresh database and hostsim
//! over HTTPS (in this process). One user owns 100 clusters (`KRAFT_MAX_CLUSTERS` raised to
//! match); once they are all Ready the reconciler is slowed to once an hour so that it does not
//! run during a measurement. Each case runs with two placements on a 2-core machine: server on
//! core 0 and load generator on core 1 (`taskset`), and both sharing both cores. PostgreSQL is a
//! system service and stays unpinned in both; its CPU is reported beside the server's. Prints
//! figures; asserts only sanity (every response 200).
//!
//!     cargo bench -p server --bench ssr
//!
//! Needs `oha` on PATH or in ~/.cache/kraft/oha/bin (`cargo install oha --locked --root
//! ~/.cache/kraft/oha`) and `taskset` (util-linux). KRAFT_BENCH_SECONDS (default 10) and
//! KRAFT_BENCH_CONNECTIONS (default 64) change the load; KRAFT_BENCH_BACKENDS (default
//! `postgres,sqlite`) picks the databases. KRAFT_TEST_DATABASE_URL picks the PostgreSQL server
//! (default postgres://postgres@127.0.0.1:5432/postgres). KRAFT_BENCH_PROFILE=<dir> records
//! `perf record -g` of the server during the pinned signed-in cases into
//! <dir>/perf-<backend>-{clusters,dashboard}.data (read them with `perf report -i ... --no-children`);
//! the profiler's own CPU lowers those cases' figures. KRAFT_BENCH_BINARY runs another kraft build
//! (a copy of an earlier one, for before/after figures).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use support::{call, ready_clusters, sign_up, BenchDatabase, Server, User};

const CLUSTERS: usize = 100;
const READY_LIMIT: Duration = Duration::from_secs(180);

/// Where the server and the load generator may run, as `taskset -c` lists.
struct Placement {
    label: &'static str,
    server: &'static str,
    client: &'static str,
}

const PLACEMENTS: [Placement; 2] = [
    Placement { label: "pinned: server on core 0, oha on core 1", server: "0", client: "1" },
    Placement { label: "shared: server and oha on cores 0-1", server: "0-1", client: "0-1" },
];

/// One measured path.
struct Case {
    label: &'static str,
    path: &'static str,
    signed_in: bool,
}

const CASES: [Case; 3] = [
    Case { label: "/clusters (signed in, 100 clusters)", path: "/clusters", signed_in: true },
    Case { label: "/ dashboard (signed in, 100 clusters)", path: "/", signed_in: true },
    Case { label: "/healthz", path: "/healthz", signed_in: false },
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `oha` from PATH or from the cache directory it is installed into.
fn oha() -> anyhow::Result<PathBuf> {
    let cached = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cache/kraft/oha/bin/oha"))
        .filter(|p| p.exists());
    if let Some(path) = cached {
        return Ok(path);
    }
    let found = Command::new("oha").arg("--version").output().is_ok_and(|o| o.status.success());
    anyhow::ensure!(found, "oha is missing: cargo install oha --locked --root ~/.cache/kraft/oha");
    Ok(PathBuf::from("oha"))
}

/// CPU time (user + system) of every PostgreSQL process on this machine.
fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(support::cpu_time)
        .sum()
}

/// What oha measured.
struct Load {
    requests: u64,
    non_200: u64,
    per_second: f64,
    p50: f64,
    p99: f64,
}

fn run_oha(
    oha: &Path,
    cpus: &str,
    url: &str,
    cookie: Option<&str>,
    seconds: u64,
    connections: u64,
) -> anyhow::Result<Load> {
    let mut command = Command::new("taskset");
    command
        .args(["--cpu-list", cpus])
        .arg(oha)
        // -w: requests in flight at the deadline finish (else oha counts them as errors).
        .args(["--no-tui", "--output-format", "json", "-w", "-z"])
        .arg(format!("{seconds}s"))
        .arg("-c")
        .arg(connections.to_string());
    if let Some(cookie) = cookie {
        command.arg("-H").arg(format!("Cookie: kraft_session={cookie}"));
    }
    let output = command.arg(url).output().context("run oha")?;
    anyhow::ensure!(
        output.status.success(),
        "oha failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).context("oha's JSON")?;
    let codes = report["statusCodeDistribution"].as_object().cloned().unwrap_or_default();
    let count = |code: Option<&str>| -> u64 {
        codes
            .iter()
            .filter(|(c, _)| code.is_none_or(|code| c.as_str() == code))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    };
    let ok = count(Some("200"));
    let errors: u64 = report["errorDistribution"]
        .as_object()
        .map(|e| e.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    let seconds = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    Ok(Load {
        requests: count(None),
        non_200: count(None) - ok + errors,
        per_second: seconds(&report["summary"]["requestsPerSec"]),
        p50: seconds(&report["latencyPercentiles"]["p50"]),
        p99: seconds(&report["latencyPercentiles"]["p99"]),
    })
}

/// Signs a user up, creates their 100 clusters and waits until all are Ready.
async fn owner_of_100_clusters(http: &reqwest::Client, address: &str) -> anyhow::Result<User> {
    let user = sign_up(http, address, "owner").await?;
    for c in 0..CLUSTERS {
        let response = call(
            http,
            address,
            Some(&user.cookie),
            "clusters/create",
            &[("name", &format!("c{c}"))],
        )
        .await?;
        anyhow::ensure!(response.status() == 200, "create failed: {}", response.status());
    }
    let started = Instant::now();
    loop {
        let ready = ready_clusters(http, address, &user).await?;
        if ready == CLUSTERS {
            break;
        }
        anyhow::ensure!(started.elapsed() < READY_LIMIT, "only {ready} of {CLUSTERS} Ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(user)
}

async fn bench(
    backend: &str,
    oha: &Path,
    seconds: u64,
    connections: u64,
    profile_to: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let postgres = match backend {
        "postgres" => Some(BenchDatabase::create("ssr").await?),
        "sqlite" => None,
        other => anyhow::bail!("unknown backend {other}: postgres or sqlite"),
    };
    let url = match &postgres {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("kraft.db").display()),
    };
    let settings = |reconcile: &str| {
        vec![
            ("KRAFT_MAX_CLUSTERS", CLUSTERS.to_string()),
            ("KRAFT_RECONCILE_INTERVAL", reconcile.to_owned()),
        ]
    };
    // Create with the usual reconciler, then measure on a server whose reconciler stays quiet.
    let server = Server::start(&url, dir.path(), &kubeconfig, &settings("10s")).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let started = Instant::now();
    let user = owner_of_100_clusters(&http, &server.address).await?;
    println!("{backend}: {CLUSTERS} clusters Ready after {:.1} s", started.elapsed().as_secs_f64());
    drop(server);
    let server = Server::start(&url, dir.path(), &kubeconfig, &settings("1h")).await?;
    let clusters = support::clusters(&http, &server.address, &user).await?;
    anyhow::ensure!(clusters.len() == CLUSTERS, "the session survives a restart");
    let page = http
        .get(format!("{}/clusters", server.address))
        .header("Cookie", format!("kraft_session={}", user.cookie))
        .send()
        .await?;
    anyhow::ensure!(page.status() == 200, "/clusters: {}", page.status());
    let page = page.text().await?;
    anyhow::ensure!(page.contains("c99"), "/clusters lists the user's clusters");
    println!("  /clusters page: {} bytes", page.len());

    for placement in &PLACEMENTS {
        support::pin(server.pid(), placement.server)?;
        println!("{backend}, {}, {connections} connections, {seconds} s each:", placement.label);
        for case in &CASES {
            let url = format!("{}{}", server.address, case.path);
            let cookie = case.signed_in.then_some(user.cookie.as_str());
            // Warm up: pool connections, caches.
            run_oha(oha, placement.client, &url, cookie, 1, connections)?;
            let profile = profile_to
                .as_ref()
                .filter(|_| case.signed_in && placement.server == "0")
                .map(|dir| {
                    std::fs::create_dir_all(dir)?;
                    let page =
                        if case.path == "/" { "dashboard" } else { case.path.trim_matches('/') };
                    let file = dir.join(format!("perf-{backend}-{page}.data"));
                    println!("  recording a profile of kraft to {}", file.display());
                    Command::new("perf")
                        .args(["record", "-F", "499", "-g", "--call-graph", "dwarf,16384", "-o"])
                        .arg(&file)
                        .args(["-p", &server.pid().to_string()])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                })
                .transpose()
                .context("perf")?;
            let (server_before, postgres_before) = (server.cpu_time(), postgres_cpu());
            let load = run_oha(oha, placement.client, &url, cookie, seconds, connections)?;
            if let Some(mut perf) = profile {
                // perf writes its file on SIGINT.
                let _ = Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
                perf.wait()?;
            }
            let server_cpu = server.cpu_time().saturating_sub(server_before);
            // Saturating: a PostgreSQL backend that exits meanwhile takes its time with it.
            let postgres_cpu = postgres_cpu().saturating_sub(postgres_before);
            anyhow::ensure!(
                load.non_200 == 0 && load.requests > 0,
                "{}: {} of {} responses were not 200",
                case.label,
                load.non_200,
                load.requests
            );
            let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / load.requests as f64;
            println!(
                "  {:<40} {:>7.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} requests, all 200)",
                case.label,
                load.per_second,
                load.p50 * 1000.0,
                load.p99 * 1000.0,
                load.requests
            );
            println!(
                "  {:<40} kraft CPU {:.0} % of a core ({:.0} µs/request){}",
                "",
                server_cpu.as_secs_f64() / seconds as f64 * 100.0,
                per_request(server_cpu),
                if postgres.is_some() {
                    format!(
                        ", PostgreSQL CPU {:.0} % ({:.0} µs/request)",
                        postgres_cpu.as_secs_f64() / seconds as f64 * 100.0,
                        per_request(postgres_cpu)
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    drop(server);
    hostsim.shutdown().await;
    if let Some(database) = postgres {
        database.drop_it().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let oha = oha()?;
    let seconds = env_number("KRAFT_BENCH_SECONDS", 10);
    let connections = env_number("KRAFT_BENCH_CONNECTIONS", 64);
    let backends =
        std::env::var("KRAFT_BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".to_owned());
    let profile_to = std::env::var_os("KRAFT_BENCH_PROFILE").map(PathBuf::from);
    println!(
        "ssr: oha {} against the release kraft, {} cores here",
        oha.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        bench(backend, &oha, seconds, connections, profile_to.as_ref()).await?;
    }
    Ok(())
}

//! What the server benchmarks share: a fresh PostgreSQL database, the real `kraft` binary as a
//! child process against hostsim, accounts through the server functions, and the figures read
//! off /proc. Each benchmark uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub const PASSWORD: &str = "correct horse battery staple";

/// The fields of /proc/<process>/status (`"self"` or a pid) as numbers: kB for the sizes, a
/// count for `Threads:`; a field that is absent reads 0.
pub fn proc_status(process: &str) -> impl Fn(&str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    move |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }
}

/// (VmHWM, VmRSS) in MiB of a process: `"self"` or a pid, as under /proc.
pub fn memory_mib(process: &str) -> (f64, f64) {
    let field = proc_status(process);
    (field("VmHWM:") / 1024.0, field("VmRSS:") / 1024.0)
}

/// CPU time (user + system) a process has used.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name; 100 ticks a second.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Pins every thread of `pid` to `cpus`, a `taskset --cpu-list` (threads it starts later
/// inherit it).
pub fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("taskset (util-linux)")?;
    anyhow::ensure!(status.success(), "taskset failed for {pid}");
    Ok(())
}

/// A database of its own on the PostgreSQL server of KRAFT_TEST_DATABASE_URL (default
/// postgres://postgres@127.0.0.1:5432/postgres), dropped by [`BenchDatabase::drop_it`].
pub struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    pub url: String,
}

impl BenchDatabase {
    pub async fn create(label: &str) -> anyhow::Result<Self> {
        let base = std::env::var("KRAFT_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let base = base.rsplit_once('/').map_or(base.clone(), |(b, _)| b.to_owned());
        let admin = Database::connect(format!("{base}/postgres")).await.context("PostgreSQL")?;
        let name = format!("kraft_bench_{label}_{}", std::process::id());
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self { url: format!("{base}/{name}"), admin, name })
    }

    pub async fn drop_it(self) -> anyhow::Result<()> {
        let name = &self.name;
        self.admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        Ok(())
    }
}

/// The real `kraft` binary serving on a free loopback port; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub address: String,
}

impl Server {
    /// Starts kraft on `database_url` against the host of `kubeconfig`, with extra settings
    /// `env`, and waits until it answers.
    pub async fn start(
        database_url: &str,
        data_dir: &Path,
        kubeconfig: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // KRAFT_BENCH_BINARY runs another build (say, a copy of the last commit's) for an A/B.
        let binary = std::env::var_os("KRAFT_BENCH_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_kraft").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("KRAFT_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("KRAFT_DATA_DIR", data_dir)
            .env("KRAFT_SITE_ROOT", data_dir.join("site"))
            .env("KRAFT_HOST_KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        // KRAFT_BENCH_SERVER_LOG=<file> keeps kraft's log (at KRAFT_BENCH_RUST_LOG, default
        // info) to see what it did during a run.
        if let Some(file) = std::env::var_os("KRAFT_BENCH_SERVER_LOG") {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
            let level = std::env::var("KRAFT_BENCH_RUST_LOG").unwrap_or_else(|_| "info".into());
            command.env("RUST_LOG", level).stdout(log.try_clone()?).stderr(log);
        }
        let server = Self {
            child: command.spawn().context("start kraft")?,
            port,
            address: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http.get(format!("{}/healthz", server.address)).send().await.is_err() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "kraft did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmHWM, VmRSS) of the server in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        memory_mib(&self.pid().to_string())
    }

    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct User {
    pub cookie: String,
}

/// Calls a server function as the browser's forms do.
pub async fn call(
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

/// Registers `name` and returns its session.
pub async fn sign_up(http: &reqwest::Client, address: &str, name: &str) -> anyhow::Result<User> {
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

/// The user's clusters as `clusters/list` returns them.
pub async fn clusters(
    http: &reqwest::Client,
    address: &str,
    user: &User,
) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(call(http, address, Some(&user.cookie), "clusters/list", &[]).await?.json().await?)
}

/// How many of the user's clusters are Ready.
pub async fn ready_clusters(
    http: &reqwest::Client,
    address: &str,
    user: &User,
) -> anyhow::Result<usize> {
    Ok(clusters(http, address, user).await?.iter().filter(|c| c["phase"] == "Ready").count())
}

/// A websocket to `path` on the server with the user's session, as the browser opens it.
pub async fn websocket(
    server: &Server,
    user: &User,
    path: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}{path}", server.port).into_client_request()?;
    request.headers_mut().insert("Cookie", format!("kraft_session={}", user.cookie).parse()?);
    request.headers_mut().insert("Origin", server.address.parse()?);
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

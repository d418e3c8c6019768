//! Start-up and idle memory of the real `kraft` binary, run as a child process:
//!
//! - **start-up**: from spawning `kraft serve` to the first `200` from `/readyz`, zero-config
//!   (SQLite in a fresh data directory and the in-process hostsim: the first start makes the
//!   database), then again on the same directory (a restart);
//! - **idle memory**: RSS after 10 quiet seconds, split into anonymous memory (heap, stacks: what
//!   KRaft holds) and file-backed pages (the binary's code and data as mapped), with the
//!   high-water mark and the thread count. Once right after start, once after a sign-up and a
//!   few signed-in pages. Zero-config holds the simulated host too, so the platform alone is
//!   measured against hostsim in this process, on SQLite and on PostgreSQL; the difference is the
//!   simulated host's share.
//!
//! Prints figures; asserts only that kraft starts and answers.
//!
//!     cargo bench -p server --bench idle
//!
//! KRAFT_BENCH_BINARY runs another kraft build; KRAFT_TEST_DATABASE_URL picks the PostgreSQL
//! server (default postgres://postgres@127.0.0.1:5432/postgres); KRAFT_BENCH_IDLE_SECONDS
//! (default 10) is how long it is left alone before each reading.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use support::{sign_up, BenchDatabase};

/// Memory of a process as /proc/<pid>/status tells it, in MiB.
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    rss: f64,
    anon: f64,
    file: f64,
    high_water: f64,
    threads: u32,
}

fn memory(pid: u32) -> Memory {
    let field = support::proc_status(&pid.to_string());
    Memory {
        rss: field("VmRSS:") / 1024.0,
        anon: field("RssAnon:") / 1024.0,
        file: (field("RssFile:") + field("RssShmem:")) / 1024.0,
        high_water: field("VmHWM:") / 1024.0,
        threads: field("Threads:") as u32,
    }
}

/// A kraft process; killed when dropped.
struct Kraft {
    child: Child,
    address: String,
}

impl Drop for Kraft {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    std::env::var_os("KRAFT_BENCH_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_kraft").into())
        .into()
}

/// The release site next to the binary's workspace, as `scripts/run.sh` serves it.
fn site_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site")
}

/// Spawns `kraft serve` with `env` (and nothing else of the caller's KRAFT_* or DATABASE_URL)
/// and answers it with the time until `/readyz` said 200.
async fn start(data_dir: &Path, env: &[(&str, String)]) -> anyhow::Result<(Kraft, Duration)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("KRAFT_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .env("KRAFT_ADDR", format!("127.0.0.1:{port}"))
        .env("KRAFT_DATA_DIR", data_dir)
        .env("KRAFT_SITE_ROOT", site_root())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let address = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let kraft = Kraft { child: command.spawn().context("start kraft")?, address };
    loop {
        let ready = http.get(format!("{}/readyz", kraft.address)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Ok((kraft, started.elapsed()));
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "kraft was not ready in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn idle_for() -> Duration {
    let seconds = std::env::var("KRAFT_BENCH_IDLE_SECONDS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(seconds.unwrap_or(10))
}

/// A sign-up and the pages a new user sees first, then quiet again.
async fn use_it(kraft: &Kraft, name: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let user = sign_up(&http, &kraft.address, name).await?;
    for path in ["/", "/clusters", "/clusters/new", "/account"] {
        let page = http
            .get(format!("{}{path}", kraft.address))
            .header("Cookie", format!("kraft_session={}", user.cookie))
            .send()
            .await?;
        anyhow::ensure!(page.status() == 200, "{path}: {}", page.status());
        page.bytes().await?;
    }
    Ok(())
}

fn print_memory(label: &str, m: Memory) {
    println!(
        "  {label:<34} RSS {:>6.1} MiB = anonymous {:>6.1} + file-backed {:>5.1}; high-water {:>6.1} MiB; {} threads",
        m.rss, m.anon, m.file, m.high_water, m.threads
    );
}

/// Idle memory of one configuration: after start, and after a sign-up and a few pages.
async fn idle_case(
    label: &str,
    data_dir: &Path,
    env: &[(&str, String)],
) -> anyhow::Result<(Memory, Memory)> {
    let (kraft, ready) = start(data_dir, env).await?;
    println!("{label} (ready in {} ms)", ready.as_millis());
    tokio::time::sleep(idle_for()).await;
    let fresh = memory(kraft.child.id());
    print_memory("idle after start", fresh);
    use_it(&kraft, "idle").await?;
    tokio::time::sleep(idle_for()).await;
    let used = memory(kraft.child.id());
    print_memory("idle after a sign-up and 4 pages", used);
    Ok((fresh, used))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("kraft: {}", binary().display());

    println!("\nstart-up, zero-config (SQLite + in-process hostsim), spawn to /readyz 200:");
    let mut firsts = Vec::new();
    let mut restarts = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir()?;
        let (first, elapsed) = start(dir.path(), &[]).await?;
        drop(first);
        firsts.push(elapsed);
        let (_again, elapsed) = start(dir.path(), &[]).await?;
        restarts.push(elapsed);
    }
    let show = |v: &mut Vec<Duration>| {
        v.sort();
        let ms: Vec<String> = v.iter().map(|d| format!("{}", d.as_millis())).collect();
        format!("median {} ms ({} ms)", v[v.len() / 2].as_millis(), ms.join(", "))
    };
    println!("  first start (makes the database): {}", show(&mut firsts));
    println!("  restart (database there):         {}", show(&mut restarts));

    println!("\nidle memory (after {} s quiet):", idle_for().as_secs());
    let dir = tempfile::tempdir()?;
    let (zero_fresh, zero_used) = idle_case("zero-config", dir.path(), &[]).await?;

    let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let host = [
        ("KRAFT_HOST_KUBECONFIG", kubeconfig.display().to_string()),
        ("KRAFT_HOST_IS_HOSTSIM", "true".to_owned()),
    ];
    let sqlite_dir = tempfile::tempdir()?;
    let (sqlite_fresh, sqlite_used) =
        idle_case("platform alone, SQLite, hostsim elsewhere", sqlite_dir.path(), &host).await?;

    let database = BenchDatabase::create("idle").await?;
    let mut postgres = host.to_vec();
    postgres.push(("DATABASE_URL", database.url.clone()));
    let pg_dir = tempfile::tempdir()?;
    let postgres_case =
        idle_case("platform alone, PostgreSQL, hostsim elsewhere", pg_dir.path(), &postgres).await;
    database.drop_it().await?;
    postgres_case?;

    println!(
        "\nthe in-process hostsim's share of zero-config (zero-config minus the platform alone on \
         SQLite): {:.1} MiB after start, {:.1} MiB after use",
        zero_fresh.rss - sqlite_fresh.rss,
        zero_used.rss - sqlite_used.rss
    );
    Ok(())
}

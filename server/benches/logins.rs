//! Login throughput under 50 concurrent sign-ins, and whether `/healthz` stays fast meanwhile.
//! Runs the real kraft against a fresh PostgreSQL database; prints figures, asserts nothing.
//!
//!     cargo bench -p server --bench logins
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

use std::time::{Duration, Instant};

use clap::Parser;
use kraft::cli::Cli;
use kraft::Application;
use sea_orm::{ConnectionTrait, Database};

const USERS: usize = 50;
const LOGINS_PER_USER: usize = 8;
const PASSWORD: &str = "correct horse battery staple";

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::var("KRAFT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("kraft_bench_{}", std::process::id());
    let admin = Database::connect(&admin_url).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url).to_owned();

    let data_dir = std::env::temp_dir().join(&name);
    let hostsim = hostsim::start(hostsim::Config::default()).await?;
    std::fs::create_dir_all(&data_dir)?;
    let kubeconfig = data_dir.join("host-kubeconfig.yaml");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
    let mut config = Cli::try_parse_from(["kraft"])?.config;
    config.addr = "127.0.0.1:0".parse()?;
    config.database_url = Some(format!("{base}/{name}"));
    config.data_dir = data_dir.clone();
    config.site_root = data_dir.join("site");
    config.host_kubeconfig = Some(kubeconfig);
    let app = Application::build(config).await?;
    let address = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::new();
    let call = {
        let (client, address) = (client.clone(), address.clone());
        move |endpoint: &'static str, form: Vec<(&'static str, String)>| {
            let client = client.clone();
            let address = address.clone();
            async move {
                client
                    .post(format!("{address}/api/{endpoint}"))
                    .header("Accept", "application/json")
                    .form(&form)
                    .send()
                    .await
            }
        }
    };
    for i in 0..USERS {
        let response = call(
            "account/register",
            vec![
                ("email", format!("user{i}@example.org")),
                ("username", format!("user{i}")),
                ("password", PASSWORD.to_owned()),
                ("password_confirm", PASSWORD.to_owned()),
            ],
        )
        .await?;
        anyhow::ensure!(response.status() == 200, "sign-up failed: {}", response.status());
    }

    // /healthz every 5 ms while the logins run.
    let (health_stop_tx, mut health_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let health = {
        let client = client.clone();
        let url = format!("{address}/healthz");
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let started = Instant::now();
                let ok = client.get(&url).send().await.map(|r| r.status() == 200).unwrap_or(false);
                samples.push((started.elapsed(), ok));
                tokio::select! {
                    _ = &mut health_stop_rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            samples
        })
    };

    let started = Instant::now();
    let workers: Vec<_> = (0..USERS)
        .map(|i| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(LOGINS_PER_USER);
                let mut failures = 0;
                for _ in 0..LOGINS_PER_USER {
                    let t = Instant::now();
                    let response = call(
                        "account/login",
                        vec![("identifier", format!("user{i}")), ("password", PASSWORD.to_owned())],
                    )
                    .await;
                    latencies.push(t.elapsed());
                    if !matches!(response, Ok(ref r) if r.status() == 200) {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut logins = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (l, f) = worker.await?;
        logins.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    let _ = health_stop_tx.send(());
    let health = health.await?;

    logins.sort();
    let mut health_latencies: Vec<Duration> = health.iter().map(|(d, _)| *d).collect();
    health_latencies.sort();
    let health_failures = health.iter().filter(|(_, ok)| !ok).count();

    println!(
        "logins: {} by {USERS} concurrent users in {:.2} s",
        logins.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "login throughput: {:.1} logins/s ({failures} failed)",
        logins.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "login latency: p50 {} p99 {} max {}",
        ms(percentile(&logins, 50.0)),
        ms(percentile(&logins, 99.0)),
        ms(*logins.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "/healthz meanwhile: {} requests, p50 {} p99 {} max {} ({health_failures} failed)",
        health_latencies.len(),
        ms(percentile(&health_latencies, 50.0)),
        ms(percentile(&health_latencies, 99.0)),
        ms(*health_latencies.last().unwrap_or(&Duration::ZERO))
    );

    let _ = stop_tx.send(());
    server.await??;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    hostsim.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

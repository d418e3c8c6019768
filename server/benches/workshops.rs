//! A workshop room: 100 attendees press "Join" within 10 s, each until their cluster is Ready
//! and a kubeconfig is in hand (p50 / p99), with a warm pool of 100 and without one; kraft's CPU
//! and RSS meanwhile. Then the organizer's board with 200 seats, open in 10 browser tabs (10
//! websockets): messages per second and kraft's CPU, against its CPU with no board open.
//!
//! The real `kraft` binary runs as a child process (its CPU and RSS are its own) on a fresh
//! PostgreSQL database, against hostsim over HTTPS in this process. Prints figures; asserts only
//! sanity.
//!
//!     cargo bench -p server --bench workshops
//!
//! KRAFT_TEST_DATABASE_URL picks the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use support::{call, sign_up, BenchDatabase, Server, User};

const ATTENDEES: usize = 100;
/// The joins start evenly spread over this window.
const ROOM: Duration = Duration::from_secs(10);
const BOARD_SEATS: usize = 200;
const BOARD_TABS: usize = 10;
const BOARD_WINDOW: Duration = Duration::from_secs(20);
const WAIT_LIMIT: Duration = Duration::from_secs(180);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

struct Room {
    server: Server,
    _hostsim: hostsim::Running,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    organizer: User,
}

impl Room {
    async fn open(database: &BenchDatabase) -> anyhow::Result<Self> {
        let hostsim = hostsim::start(hostsim::Config::default()).await.context("start hostsim")?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("host.kubeconfig");
        std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml())?;
        let server = Server::start(
            &database.url,
            dir.path(),
            &kubeconfig,
            &[
                ("KRAFT_ADMIN_BOOTSTRAP", "first-account".into()),
                ("KRAFT_SIGNUP_LIMIT_PER_ADDRESS", "1000".into()),
                ("KRAFT_SIGNUP_LIMIT_TOTAL", "1000".into()),
            ],
        )
        .await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        // The first account is the admin, and admins may organize without an allowance.
        let organizer = sign_up(&http, &server.address, "organizer").await?;
        Ok(Self { server, _hostsim: hostsim, _dir: dir, http, organizer })
    }

    async fn post(
        &self,
        user: &User,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        call(&self.http, &self.server.address, Some(&user.cookie), endpoint, form).await
    }

    /// A workshop running now for an hour; answers (id, code).
    async fn workshop(&self, seats: usize, pool: usize) -> anyhow::Result<(String, String)> {
        let start = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        let end = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let (seats, pool) = (seats.to_string(), pool.to_string());
        let response = self
            .post(
                &self.organizer,
                "workshops/create",
                &[
                    ("title", "Room"),
                    ("starts_at", &start),
                    ("ends_at", &end),
                    ("seats", &seats),
                    ("pool", &pool),
                ],
            )
            .await?;
        anyhow::ensure!(response.status() == 200, "create workshop: {}", response.text().await?);
        let id: String = response.json().await?;
        let board = self.board(&id).await?;
        Ok((id, board["workshop"]["code"].as_str().context("code")?.to_owned()))
    }

    async fn board(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let response = self.post(&self.organizer, "workshops/board", &[("id", id)]).await?;
        anyhow::ensure!(response.status() == 200, "board: {}", response.status());
        Ok(response.json().await?)
    }

    async fn attendees(&self, prefix: &str, n: usize) -> anyhow::Result<Vec<User>> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            users.push(sign_up(&self.http, &self.server.address, &format!("{prefix}{i}")).await?);
        }
        Ok(users)
    }
}

/// One attendee: Join, then the cluster page until Ready, then a kubeconfig.
async fn join_to_kubeconfig(
    http: reqwest::Client,
    address: String,
    user: User,
    code: String,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response =
        call(&http, &address, Some(&user.cookie), "workshops/join", &[("key", &code)]).await?;
    anyhow::ensure!(response.status() == 200, "join: {}", response.text().await?);
    let cluster: String = response.json().await?;
    loop {
        let detail: serde_json::Value =
            call(&http, &address, Some(&user.cookie), "clusters/get", &[("id", &cluster)])
                .await?
                .json()
                .await?;
        if detail["summary"]["phase"] == "Ready" {
            break;
        }
        anyhow::ensure!(started.elapsed() < WAIT_LIMIT, "cluster {cluster} never Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kubeconfig = http
        .post(format!("{address}/api/clusters/{cluster}/kubeconfig"))
        .header("Cookie", format!("kraft_session={}", user.cookie))
        .header("Origin", &address)
        .form(&[("name", "workshop"), ("days", "1")])
        .send()
        .await?;
    anyhow::ensure!(kubeconfig.status() == 200, "kubeconfig: {}", kubeconfig.status());
    let _ = kubeconfig.bytes().await?;
    Ok(started.elapsed())
}

/// 100 joins spread over the room's 10 s; prints the figures.
async fn room(label: &str, pool: usize) -> anyhow::Result<()> {
    let database = BenchDatabase::create(&format!("workshops_{pool}")).await?;
    let room = Room::open(&database).await?;
    let (id, code) = room.workshop(BOARD_SEATS, pool).await?;
    let attendees = room.attendees("attendee", ATTENDEES).await?;
    if pool > 0 {
        let filling = Instant::now();
        loop {
            let board = room.board(&id).await?;
            if board["pool_ready"].as_u64() == Some(pool as u64) {
                break;
            }
            anyhow::ensure!(
                filling.elapsed() < WAIT_LIMIT,
                "the pool never filled: {}",
                board["pool_ready"]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!("  pool of {pool} Ready after {:.1} s", filling.elapsed().as_secs_f64());
    }
    let cpu_before = room.server.cpu_time();
    let began = Instant::now();
    let gap = ROOM / ATTENDEES as u32;
    let mut joins = Vec::new();
    for (i, user) in attendees.into_iter().enumerate() {
        let at = began + gap * i as u32;
        let (http, address, code) = (room.http.clone(), room.server.address.clone(), code.clone());
        joins.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            join_to_kubeconfig(http, address, user, code).await
        }));
    }
    let mut times = Vec::new();
    for join in joins {
        times.push(join.await??);
    }
    let wall = began.elapsed();
    let cpu = room.server.cpu_time() - cpu_before;
    let (hwm, rss) = room.server.memory_mib();
    times.sort();
    println!(
        "{label}: {ATTENDEES} joins over {}s → Ready + kubeconfig: p50 {} p99 {} max {}; all done in {:.1} s; kraft CPU {:.1} s ({:.0}% of one core), RSS {rss:.1} MiB (peak {hwm:.1} MiB)",
        ROOM.as_secs(),
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
    );
    if pool == 0 {
        board(&room, &id, &code).await?;
    }
    drop(room);
    database.drop_it().await
}

/// Fills the workshop to 200 seats, then 10 tabs follow its board over the websocket, as the
/// page does; kraft's CPU over the same time with no board open is the baseline.
async fn board(room: &Room, id: &str, code: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    let more = room.attendees("late", BOARD_SEATS - ATTENDEES).await?;
    for user in &more {
        let response = room.post(user, "workshops/join", &[("key", code)]).await?;
        anyhow::ensure!(response.status() == 200, "join: {}", response.text().await?);
    }
    let board = room.board(id).await?;
    let seats = board["seats"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(seats == BOARD_SEATS, "{seats} seats on the board");
    // Let the last clusters settle, then the baseline.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_before = room.server.cpu_time();
    tokio::time::sleep(BOARD_WINDOW).await;
    let baseline = room.server.cpu_time() - cpu_before;

    let messages = Arc::new(AtomicU64::new(0));
    let boards = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let path = format!("/ws/workshops/{id}");
    let mut tabs = Vec::new();
    let opened = Instant::now();
    for _ in 0..BOARD_TABS {
        let socket = support::websocket(&room.server, &room.organizer, &path).await?;
        let (messages, boards, bytes) = (messages.clone(), boards.clone(), bytes.clone());
        tabs.push(tokio::spawn(async move {
            let (_, mut incoming) = socket.split();
            while let Some(Ok(message)) = incoming.next().await {
                let text = message.to_text().unwrap_or_default();
                messages.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                if text.starts_with("{\"type\":\"board\"") {
                    boards.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let first_board = opened.elapsed();
    // The opening messages (board and histories) are not the steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (m0, b0, y0) = (
        messages.load(Ordering::Relaxed),
        boards.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    );
    let cpu_before = room.server.cpu_time();
    let began = Instant::now();
    tokio::time::sleep(BOARD_WINDOW).await;
    let wall = began.elapsed();
    let cpu = room.server.cpu_time() - cpu_before;
    let (m, b, y) = (
        messages.load(Ordering::Relaxed) - m0,
        boards.load(Ordering::Relaxed) - b0,
        bytes.load(Ordering::Relaxed) - y0,
    );
    for tab in tabs {
        tab.abort();
    }
    let per_second = |n: u64| n as f64 / wall.as_secs_f64();
    println!(
        "board: {BOARD_SEATS} seats, {BOARD_TABS} websockets (opened in {:.1} s) for {:.0} s: {:.1} messages/s ({:.1} boards/s), {:.1} KiB/s; kraft CPU {:.1}% of one core, {:.1}% with no board open",
        first_board.as_secs_f64(),
        wall.as_secs_f64(),
        per_second(m),
        per_second(b),
        per_second(y) / 1024.0,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        100.0 * baseline.as_secs_f64() / BOARD_WINDOW.as_secs_f64(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    room("warm pool of 100", ATTENDEES).await?;
    room("no pool", 0).await?;
    Ok(())
}

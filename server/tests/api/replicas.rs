//! Several `kraft` processes on one PostgreSQL and one host: sessions work across them, one leader
//! (a Lease on the host) runs the reconciler, and when the leader is killed another takes over
//! within the lease duration and finishes what it left.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use crate::helpers::{browser, ws_request, Socket, TestBrowser, TestDatabase};

const LEASE: Duration = Duration::from_secs(3);

/// A `kraft serve` child process; killed (SIGKILL) when dropped.
pub struct Kraft {
    child: Child,
    pub address: String,
    data: tempfile::TempDir,
}

impl Kraft {
    /// What it has logged so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("kraft.log")).unwrap_or_default()
    }
}

impl Drop for Kraft {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn kraft(database_url: &str, host_kubeconfig: &std::path::Path) -> Kraft {
    kraft_process(Some(database_url), host_kubeconfig, &[]).await
}

/// Starts `kraft serve` on `host_kubeconfig` (on its own SQLite file without `database_url`),
/// with `extra` settings, and waits until it is ready.
pub async fn kraft_process(
    database_url: Option<&str>,
    host_kubeconfig: &std::path::Path,
    extra: &[(&str, &str)],
) -> Kraft {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(data.path().join("kraft.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kraft"));
    command
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("KRAFT_ADDR", format!("127.0.0.1:{port}"))
        .env("KRAFT_DATA_DIR", data.path())
        .env("KRAFT_SITE_ROOT", data.path().join("site"))
        .env("KRAFT_HOST_KUBECONFIG", host_kubeconfig)
        .env("KRAFT_HOST_IS_HOSTSIM", "true")
        .env("KRAFT_LEASE_DURATION", format!("{}s", LEASE.as_secs()))
        .env("KRAFT_RECONCILE_INTERVAL", "1s")
        .env("RUST_LOG", "info");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("kraft starts");
    let kraft = Kraft { child, address: format!("http://127.0.0.1:{port}"), data };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", kraft.address)).await {
            if r.status() == 200 {
                break;
            }
        }
        if Instant::now() > deadline {
            panic!("kraft on {} never got ready:\n{}", kraft.address, kraft.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kraft
}

/// Whether the process says (on `/metrics`) that it leads.
async fn leads(kraft: &Kraft) -> bool {
    let Ok(response) = reqwest::get(format!("{}/metrics", kraft.address)).await else {
        return false;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines().any(|l| l.trim() == "kraft_leader 1")
}

/// Waits until exactly one of `krafts` leads; its index.
async fn the_leader(krafts: &[&Kraft], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        for (i, k) in krafts.iter().enumerate() {
            if leads(k).await {
                leaders.push(i);
            }
        }
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [one] = leaders[..] {
            return one;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two `kraft` processes on a fresh database and hostsim, once one of them leads.
struct Replicas {
    database: TestDatabase,
    hostsim: hostsim::Running,
    leader: Kraft,
    follower: Kraft,
    _dir: tempfile::TempDir,
}

async fn replicas() -> Replicas {
    let database = TestDatabase::create_postgres().await;
    let url = database.url().unwrap();
    let hostsim = hostsim::start(hostsim::Config::default()).await.expect("hostsim starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("host.kubeconfig");
    std::fs::write(&kubeconfig, hostsim.kubeconfig_yaml()).unwrap();
    // The first migrates the database; the second starts on it.
    let a = kraft(&url, &kubeconfig).await;
    let b = kraft(&url, &kubeconfig).await;
    let first = the_leader(&[&a, &b], Duration::from_secs(10)).await;
    let (leader, follower) = if first == 0 { (a, b) } else { (b, a) };
    Replicas { database, hostsim, leader, follower, _dir: dir }
}

/// The live cluster list on `kraft`, signed in with the session cookie's value `cookie`.
async fn live_list(kraft: &Kraft, cookie: &str) -> Socket {
    let request = ws_request(&kraft.address, "/ws/clusters", Some(cookie), &kraft.address);
    tokio_tungstenite::connect_async(request).await.expect("websocket").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_is_killed_mid_create_and_another_takes_over() {
    let Replicas { database, hostsim, leader, follower, _dir } = replicas().await;

    // A session made on one replica works on the other (cookies are per host, not per port).
    let (client, jar) = browser();
    let on = |k: &Kraft| TestBrowser {
        address: k.address.clone(),
        client: client.clone(),
        jar: jar.clone(),
    };
    on(&follower).sign_up("ada").await;
    assert!(on(&leader).clusters().await.is_empty(), "signed in on the leader too");

    // Create on the leader and kill it (SIGKILL) while the request is in flight.
    let creating = {
        let browser = on(&leader);
        tokio::spawn(async move { browser.create_cluster(&[("name", "demo")]).await.status() })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let killed = Instant::now();
    drop(leader);
    let _ = creating.await;

    // The follower takes over within the lease duration (and one retry).
    the_leader(&[&follower], LEASE + Duration::from_secs(3)).await;
    let took_over = killed.elapsed();
    eprintln!("the follower led {took_over:?} after the kill");
    assert!(took_over < LEASE + Duration::from_secs(3), "took {took_over:?}");

    // Whatever the kill interrupted converges: a cluster that was recorded becomes Ready, exactly
    // once on the host; nothing is left on the host without a row.
    let follower_browser = on(&follower);
    let mut clusters = follower_browser.clusters().await;
    if clusters.is_empty() {
        // Killed before the row was written: create it here instead.
        follower_browser.new_cluster("demo").await;
        clusters = follower_browser.clusters().await;
    }
    let id = clusters[0]["id"].as_str().unwrap().to_owned();
    follower_browser.wait_for_phase(&id, "Ready").await;

    let host = {
        let kc = kube::config::Kubeconfig::from_yaml(&hostsim.kubeconfig_yaml()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    };
    let namespaces: Api<Namespace> = Api::all(host.clone());
    let ours =
        namespaces.list(&ListParams::default().labels("kraft.dev/cluster-id")).await.unwrap().items;
    let ids: Vec<String> = ours
        .iter()
        .filter_map(|ns| ns.metadata.labels.as_ref()?.get("kraft.dev/cluster-id").cloned())
        .collect();
    assert_eq!(ids, vec![id.clone()], "one namespace, for the one cluster: no orphan, no double");
    let k3k: Api<platform::host::k3k::Cluster> = Api::all(host);
    let objects = k3k.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(objects.len(), 1, "one K3k Cluster");
    drop(follower);
    database.drop_now().await;
}

/// Graceful shutdown (SIGTERM): the leader releases its Lease, so another leads at once rather
/// than after the lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_hands_over_at_once() {
    let Replicas { database, mut leader, follower, hostsim: _hostsim, _dir } = replicas().await;

    // Live views work on a replica that does not lead: the leader's reconciler marks the cluster
    // Ready, and the follower's live list pushes it.
    let (client, jar) = browser();
    let ada = TestBrowser { address: follower.address.clone(), client, jar };
    ada.sign_up("ada").await;
    let cookie = ada.session_cookie().unwrap();
    let mut socket = live_list(&follower, &cookie).await;
    let id = ada.new_cluster("live").await;
    let pushed_ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.to_text() else { continue };
            let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            let ready = value["clusters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["id"] == id.as_str() && c["phase"] == "Ready");
            if ready {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(pushed_ready, Ok(true), "the follower pushed the leader's Ready");
    assert!(!leads(&follower).await);

    // A live view on the replica that stops is closed with "restart", so the browser reconnects.
    let mut on_leader = live_list(&leader, &cookie).await;
    assert!(on_leader.next().await.is_some(), "a first snapshot");

    let stopping = Instant::now();
    let status =
        Command::new("kill").args(["-TERM", &leader.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = on_leader.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some((1012, "KRaft is restarting".to_owned())));
    let exit = leader.child.wait().unwrap();
    assert!(exit.success(), "kraft exits cleanly on SIGTERM: {exit:?}");
    the_leader(&[&follower], LEASE).await;
    let handed_over = stopping.elapsed();
    assert!(handed_over < LEASE, "took {handed_over:?}: the lease was not released");
    drop(follower);
    database.drop_now().await;
}

//! The log hub against a real simulated host over HTTPS: one upstream per container however many
//! viewers, skip accounting for slow viewers, and resumption after a dropped stream with no gap and
//! no duplicate.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, LogParams, PostParams};
use platform::host::k3k::{Cluster, ClusterMode, ClusterSpec};
use platform::stream::logs::{
    split_timestamp, LogHub, LogKey, LogLine, LogSettings, LogSubscription, Taken,
};

struct Sim {
    running: hostsim::Running,
    client: kube::Client,
}

async fn host(lines_per_second: f64) -> Sim {
    let running = hostsim::start(hostsim::Config {
        log_lines_per_second: lines_per_second,
        pod_start_delay: Duration::from_millis(50),
        ready_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .expect("hostsim");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&running.kubeconfig_yaml()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Sim { client: kube::Client::try_from(config).unwrap(), running }
}

/// A cluster whose server pod runs; returns the server pod's log key.
async fn running_server(sim: &Sim, name: &str) -> LogKey {
    let ns = format!("logs-{name}");
    let namespaces: Api<Namespace> = Api::all(sim.client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    let clusters: Api<Cluster> = Api::namespaced(sim.client.clone(), &ns);
    let cluster = Cluster::new(
        name,
        ClusterSpec { mode: Some(ClusterMode::Virtual), servers: Some(1), ..Default::default() },
    );
    clusters.create(&PostParams::default(), &cluster).await.unwrap();
    let pod = format!("k3k-{name}-server-0");
    let pods: Api<Pod> = Api::namespaced(sim.client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let phase = pods.get_opt(&pod).await.unwrap().and_then(|p| p.status).and_then(|s| s.phase);
        if phase.as_deref() == Some("Running") {
            break;
        }
        assert!(Instant::now() < deadline, "the server pod never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    LogKey { namespace: ns, pod, container: format!("k3k-{name}-server") }
}

/// Waits for news and takes all of it.
async fn news(viewer: &mut LogSubscription) -> Taken {
    tokio::time::timeout(Duration::from_secs(10), viewer.changed()).await.expect("news in time");
    viewer.take(usize::MAX)
}

/// At least `n` new lines, none lost.
async fn lines(viewer: &mut LogSubscription, n: usize) -> Vec<Arc<LogLine>> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let taken = news(viewer).await;
        assert_eq!(taken.skipped, 0, "the viewer lost lines unexpectedly");
        lines.extend(taken.lines);
    }
    lines
}

/// At least `n` lines, then whatever else comes within 300 ms (none lost): all a viewer gets of
/// a log that stands still.
async fn settled(viewer: &mut LogSubscription, n: usize) -> Vec<Arc<LogLine>> {
    let mut got = lines(viewer, n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = viewer.take(usize::MAX);
    assert_eq!(rest.skipped, 0, "the viewer lost lines unexpectedly");
    got.extend(rest.lines);
    got
}

/// The host's own record of `key`'s log, with timestamps.
async fn host_log(sim: &Sim, key: &LogKey) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    let pods: Api<Pod> = Api::namespaced(sim.client.clone(), &key.namespace);
    let params = LogParams {
        container: Some(key.container.clone()),
        timestamps: true,
        ..Default::default()
    };
    let full = pods.logs(&key.pod, &params).await.unwrap();
    full.lines().filter_map(split_timestamp).map(|(ts, t)| (ts, t.to_owned())).collect()
}

/// Followed log streams opened at the host for `key`'s pod (the history read is not one).
fn log_streams(sim: &Sim, key: &LogKey) -> u64 {
    sim.running
        .streams_opened(&format!("/api/v1/namespaces/{}/pods/{}/log", key.namespace, key.pod))
}

/// Asserts that exactly `n` followed streams were opened for `key`'s pod. A viewer can have its
/// first lines, from the history read, before the stream after it is open: wait for it a little.
async fn assert_streams(sim: &Sim, key: &LogKey, n: u64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while log_streams(sim, key) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(log_streams(sim, key), n, "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_viewers_share_one_upstream_stream() {
    let sim = host(20.0).await;
    let key = running_server(&sim, "fanout").await;
    let hub = LogHub::new(sim.client.clone(), LogSettings::default());
    let mut viewers: Vec<_> = (0..50).map(|_| hub.subscribe(key.clone(), Some(10), None)).collect();
    for viewer in &mut viewers {
        lines(viewer, 1).await;
    }
    assert_streams(&sim, &key, 1, "one upstream stream for 50 viewers").await;
    assert_eq!(hub.upstreams(), 1);

    // The last viewer leaving stops the upstream after the linger time.
    drop(viewers);
    let deadline = Instant::now() + Duration::from_secs(15);
    while hub.upstreams() > 0 {
        assert!(Instant::now() < deadline, "the upstream outlived its viewers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_viewer_gets_the_tail_it_asks_for() {
    let sim = host(50.0).await;
    let key = running_server(&sim, "tail").await;
    let hub = LogHub::new(sim.client.clone(), LogSettings::default());
    let mut first = hub.subscribe(key.clone(), None, None);
    let seen = lines(&mut first, 30).await;
    // Hold the log still so that the tails below are exact.
    sim.running.set_log_rate(0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = seen;
    seen.extend(first.take(usize::MAX).lines);

    let tail = hub.subscribe(key.clone(), Some(10), None).take(usize::MAX).lines;
    assert_eq!(tail, seen[seen.len() - 10..], "the tail is the newest 10 lines");
    let all = hub.subscribe(key.clone(), None, None).take(usize::MAX).lines;
    assert!(all.len() >= 30, "{}", all.len());
    assert_eq!(all[all.len() - seen.len()..], seen[..], "all retained ends with what we saw");
    assert!(all.windows(2).all(|w| w[0].ts <= w[1].ts), "tail out of order");
    // Resuming after a line gives what follows it, however many lines share its timestamp.
    let at = &all[all.len() - 5];
    let same = all[..all.len() - 4].iter().filter(|l| l.ts == at.ts).count();
    let resumed = hub.subscribe(key.clone(), None, Some((at.ts, same))).take(usize::MAX).lines;
    assert_eq!(resumed, seen[seen.len() - 4..]);
    assert_streams(&sim, &key, 1, "tails come from the hub's ring, not new streams").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_upstream_places_its_first_viewers_after_reading_the_history() {
    let sim = host(100.0).await;
    let key = running_server(&sim, "cold").await;
    // Let the log grow, then hold it still so that the host's record is what a viewer should get.
    tokio::time::sleep(Duration::from_millis(800)).await;
    sim.running.set_log_rate(0.0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let host_lines = host_log(&sim, &key).await;
    let n = host_lines.len();
    assert!(n > 30, "the log has a history: {n} lines");
    let texts = |lines: &[Arc<LogLine>]| -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
        lines.iter().map(|l| (l.ts, l.text.clone())).collect()
    };

    // Viewers that start the upstream get the tail they ask for, not everything it reads.
    let hub = LogHub::new(sim.client.clone(), LogSettings::default());
    let mut ten = hub.subscribe(key.clone(), Some(10), None);
    let mut none = hub.subscribe(key.clone(), Some(0), None);
    let got = settled(&mut ten, 10).await;
    assert_eq!(texts(&got), host_lines[n - 10..], "the first viewer's tail is exact");
    assert!(none.take(usize::MAX).lines.is_empty(), "tail=0 on a new upstream gives no history");

    // A browser resuming on a hub that never saw it (kraft restarted, or the upstream lingered out)
    // gets what follows its last line: nothing twice, however many lines share that timestamp.
    let restarted = LogHub::new(sim.client.clone(), LogSettings::default());
    let at = &host_lines[n - 5];
    let same = host_lines[..n - 4].iter().filter(|(ts, _)| *ts == at.0).count();
    let mut resumed = restarted.subscribe(key.clone(), None, Some((at.0, same)));
    let got = settled(&mut resumed, 4).await;
    assert_eq!(texts(&got), host_lines[n - 4..], "a resume on a new upstream repeats nothing");
    assert_streams(&sim, &key, 2, "one followed stream per hub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_loses_lines_and_is_told_how_many_without_slowing_others() {
    let sim = host(1000.0).await;
    let key = running_server(&sim, "slow").await;
    let settings = LogSettings { ring_lines: 256, ..Default::default() };
    let hub = LogHub::new(sim.client.clone(), settings);
    let mut slow = hub.subscribe(key.clone(), Some(0), None);
    let mut fast = hub.subscribe(key.clone(), Some(0), None);
    // The fast viewer keeps reading 1,000 lines while the slow one takes nothing.
    let mut read = lines(&mut fast, 1000).await;
    sim.running.set_log_rate(0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    read.extend(fast.take(usize::MAX).lines);

    let taken = slow.take(usize::MAX);
    assert_eq!(taken.lines.len(), 256, "the slow viewer's backlog is the ring, no more");
    assert_eq!(taken.lines, read[read.len() - 256..], "it keeps the newest lines");
    assert_eq!(
        taken.skipped + taken.lines.len() as u64,
        read.len() as u64,
        "it is told exactly how many lines it lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upstream_resumes_without_gap_or_duplicate() {
    let sim = host(200.0).await;
    let key = running_server(&sim, "drop").await;
    let hub = LogHub::new(sim.client.clone(), LogSettings::default());
    let mut viewer = hub.subscribe(key.clone(), Some(0), None);
    let mut seen: Vec<Arc<LogLine>> = lines(&mut viewer, 100).await;
    sim.running.faults().drop_connections();
    let (mut dropped, mut reconnected) = (false, false);
    while seen.len() < 400 {
        let taken = news(&mut viewer).await;
        assert_eq!(taken.skipped, 0, "lost lines");
        seen.extend(taken.lines);
        match taken.status {
            Some((false, _)) => dropped = true,
            Some((true, _)) => reconnected |= dropped,
            None => {}
        }
    }
    assert!(dropped, "the viewer was not told the stream dropped");
    assert!(reconnected, "the viewer was not told the stream came back");
    assert!(log_streams(&sim, &key) >= 2, "the upstream was not reopened");

    // Compare with the host's own record of the same span: every line, once, in order.
    let host_lines = host_log(&sim, &key).await;
    let first = host_lines
        .iter()
        .position(|(ts, t)| *ts == seen[0].ts && *t == seen[0].text)
        .expect("the first line we saw is in the host's log");
    let expected: Vec<&(chrono::DateTime<chrono::Utc>, String)> =
        host_lines[first..first + seen.len()].iter().collect();
    let got: Vec<(chrono::DateTime<chrono::Utc>, String)> =
        seen.iter().map(|l| (l.ts, l.text.clone())).collect();
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a line was delivered twice");
    for (i, (want, have)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(*want, have, "line {i} differs: a gap or a reordering after the reconnect");
    }
}

/// The hub's memory budget is shared by its running upstreams: one alone may fill it, and when
/// a second starts the first gives up its excess at once; both keep serving their newest lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_share_the_memory_budget() {
    let sim = host(2000.0).await;
    let first = running_server(&sim, "budget-a").await;
    let second = running_server(&sim, "budget-b").await;
    let budget = 256 << 10;
    let settings = LogSettings { budget_bytes: budget, ..Default::default() };
    let hub = LogHub::new(sim.client.clone(), settings);
    let mut a = hub.subscribe(first.clone(), Some(5), None);
    lines(&mut a, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.retained_bytes() < budget * 3 / 4 {
        assert!(Instant::now() < deadline, "one upstream never came near the budget");
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.take(usize::MAX);
    }
    assert!(hub.retained_bytes() <= budget, "{} > {budget}", hub.retained_bytes());
    let mut b = hub.subscribe(second.clone(), Some(5), None);
    assert!(hub.retained_bytes() <= budget / 2, "the first upstream kept more than its share");
    // Its viewer gets lines (a slow take may lose some to the small share: not counted here).
    let mut got = 0;
    while got < 10 {
        got += news(&mut b).await.lines.len();
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(hub.retained_bytes() <= budget, "{} > {budget}", hub.retained_bytes());
        a.take(usize::MAX);
        b.take(usize::MAX);
    }
    // The first still serves new lines (a wake-up left from the loop may bring none yet).
    let deadline = Instant::now() + Duration::from_secs(10);
    while news(&mut a).await.lines.is_empty() {
        assert!(Instant::now() < deadline, "the first upstream serves no new lines");
    }
}

//! What the kernel, the kubelet and K3k's StatefulSet controller do to server pods over time:
//! undersized k3s servers are OOMKilled and crash-loop, deleted HA servers wait for their
//! removal from etcd, and a cluster whose only server is replaced is down meanwhile.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use crate::harness::{spawn_host_with, wait_gone, Cluster, ClusterSpec};

const ETCD_FINALIZER: &str = "etcdpod.k3k.io/finalizer";
/// K3k's Ready condition while no server of the cluster is ready, in the profile played.
fn not_ready() -> &'static str {
    hostsim::k3k::K3kVersion::from_env().server_not_ready()
}

async fn create_with_server_limit(app: &crate::harness::TestHost, ns: &str, memory: &str) {
    app.namespace(ns).await;
    // Dynamic: the harness's typed Cluster has no `serverLimit`.
    let resource = kube::api::ApiResource::erase::<Cluster>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(app.client.clone(), ns, &resource);
    let cluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {"mode": "shared", "servers": 1, "serverLimit": {"cpu": "1", "memory": memory}},
    }))
    .expect("cluster");
    api.create(&PostParams::default(), &cluster).await.expect("created");
}

async fn server(pods: &Api<Pod>) -> Pod {
    pods.get("k3k-c-server-0").await.expect("server pod")
}

async fn wait_pod(pods: &Api<Pod>, what: &str, cond: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pod = server(pods).await;
        if cond(&pod) {
            return pod;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not in time: {:?}", pod.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn container(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default()[0].clone()
}

/// A k3s server under 1 GiB is OOMKilled and crash-loops; the cluster is Provisioning ("server
/// not ready") while no server answers and Ready again when one does; its previous log is the
/// killed run.
#[tokio::test]
async fn an_undersized_server_is_oom_killed_and_crash_loops() {
    let app = spawn_host_with(hostsim::Config {
        oom_after: Duration::from_millis(600),
        crash_backoff: Duration::from_millis(800),
        ..hostsim::Config::default()
    })
    .await;
    create_with_server_limit(&app, "k3k-oom", "512Mi").await;
    app.wait_for_phase("k3k-oom", "c", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-oom");
    let down = wait_pod(&pods, "CrashLoopBackOff", |p| {
        container(p).state.and_then(|s| s.waiting).and_then(|w| w.reason).as_deref()
            == Some("CrashLoopBackOff")
    })
    .await;
    let status = container(&down);
    assert!(!status.ready);
    let last = status.last_state.and_then(|s| s.terminated).expect("lastState.terminated");
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("OOMKilled"), 137));
    let message = status.state.and_then(|s| s.waiting).and_then(|w| w.message).unwrap();
    assert!(
        message.starts_with(
            "back-off 800ms restarting failed container=k3k-c-server pod=k3k-c-server-0_k3k-oom("
        ),
        "{message}"
    );
    let ready = down.status.clone().and_then(|s| s.conditions).unwrap_or_default();
    assert!(ready.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
    assert_eq!(down.status_phase(), "Running", "a crash-looping pod stays Running");
    // No ready server: K3k's bootstrap request through the Service is refused, which it
    // reports as Provisioning (K3k v1.1.0 bootstrap.go ErrServerNotReady, status.go).
    let waiting = app.wait_for_phase("k3k-oom", "c", "Provisioning").await;
    let msg = waiting.status.unwrap().conditions[0]["message"].as_str().unwrap().to_string();
    assert_eq!(msg, not_ready());
    let events: Api<Event> = Api::namespaced(app.client.clone(), "k3k-oom");
    let backoff = events.list(&ListParams::default()).await.expect("events").items;
    assert!(backoff.iter().any(|e| e.reason.as_deref() == Some("BackOff")
        && e.type_.as_deref() == Some("Warning")
        && e.involved_object.name.as_deref() == Some("k3k-c-server-0")));

    let up =
        wait_pod(&pods, "restarted", |p| container(p).restart_count >= 1 && container(p).ready)
            .await;
    assert!(container(&up).state.and_then(|s| s.running).is_some());
    app.wait_for_phase("k3k-oom", "c", "Ready").await;
    let previous = pods
        .logs("k3k-c-server-0", &kube::api::LogParams { previous: true, ..Default::default() })
        .await
        .expect("previous log");
    assert!(!previous.is_empty(), "the killed run is the previous log");
}

/// The default (2Gi, more than k3s needs) and no limit at all never crash.
#[tokio::test]
async fn a_server_with_enough_memory_keeps_running() {
    let app = spawn_host_with(hostsim::Config {
        oom_after: Duration::from_millis(200),
        crash_backoff: Duration::from_millis(200),
        ..hostsim::Config::default()
    })
    .await;
    create_with_server_limit(&app, "k3k-fit", "2Gi").await;
    app.wait_for_phase("k3k-fit", "c", "Ready").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-fit");
    let pod = server(&pods).await;
    assert_eq!(container(&pod).restart_count, 0);
    assert!(container(&pod).ready);
}

/// K3k's StatefulSet controller puts its etcd finalizer on every server pod; a deleted HA
/// server stays Terminating until K3k has removed it from etcd; the last one, or one of a
/// deleted StatefulSet, goes at once.
#[tokio::test]
async fn a_deleted_ha_server_waits_for_its_etcd_member_removal() {
    let app = spawn_host_with(hostsim::Config {
        etcd_member_removal: Duration::from_millis(1500),
        pod_stop_delay: Duration::from_millis(100),
        ..hostsim::Config::default()
    })
    .await;
    app.namespace("k3k-ha").await;
    app.create_cluster("k3k-ha", "c", ClusterSpec { servers: Some(3), ..Default::default() }).await;
    app.wait_for_phase("k3k-ha", "c", "Ready").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-ha");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for i in 0..3 {
        loop {
            let pod = pods.get(&format!("k3k-c-server-{i}")).await.expect("server");
            if pod.metadata.finalizers.unwrap_or_default().iter().any(|f| f == ETCD_FINALIZER) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "server-{i} has no etcd finalizer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Scale to one server: server-1 and server-2 leave etcd first.
    app.clusters("k3k-ha")
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"servers": 1}})),
        )
        .await
        .expect("scaled");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leaving = pods.get("k3k-c-server-2").await.expect("still there while it leaves etcd");
    assert!(leaving.metadata.deletion_timestamp.is_some());
    wait_gone(&pods, "k3k-c-server-2", 10).await;
    wait_gone(&pods, "k3k-c-server-1", 10).await;
    assert!(pods.get_opt("k3k-c-server-0").await.expect("get").is_some());

    // The last server, and the whole cluster, go without waiting for etcd.
    let clusters = app.clusters("k3k-ha");
    clusters.delete("c", &DeleteParams::background()).await.expect("deleted");
    wait_gone(&clusters, "c", 5).await;
    wait_gone(&pods, "k3k-c-server-0", 5).await;
}

trait Phase {
    fn status_phase(&self) -> String;
}

impl Phase for Pod {
    fn status_phase(&self) -> String {
        self.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
    }
}

/// Replacing a one-server cluster's only server (here for a new version) leaves its Service
/// without endpoints: connecting to its API is refused and K3k says Provisioning until the new
/// server is ready. With a volume the cluster's state is still there after; with ephemeral
/// storage the new server starts an empty k3s with new CAs (K3k v1.1.0
/// pkg/controller/cluster/server/template.go `start_single_node`), and K3k writes a kubeconfig
/// for them.
#[tokio::test]
async fn replacing_the_only_server_takes_the_api_down_until_the_next_one_is_ready() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let app = spawn_host_with(hostsim::Config {
        pod_start_delay: Duration::from_millis(800),
        ..hostsim::Config::default()
    })
    .await;
    let resource = kube::api::ApiResource::erase::<Cluster>(&());
    for persistence in ["dynamic", "ephemeral"] {
        let ns = format!("k3k-{persistence}");
        app.namespace(&ns).await;
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(app.client.clone(), &ns, &resource);
        let cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "k3k.io/v1beta1", "kind": "Cluster",
            "metadata": {"name": "c"},
            "spec": {"mode": "shared", "servers": 1, "version": "v1.35.2-k3s1",
                     "persistence": {"type": persistence}},
        }))
        .expect("cluster");
        api.create(&PostParams::default(), &cluster).await.expect("created");
        app.wait_for_phase(&ns, "c", "Ready").await;
        let before = crate::harness::kubeconfig_secret(&app, &ns, "c").await;
        let client = crate::harness::client_with_retries(&before, false).await;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let kept = serde_json::from_value(serde_json::json!({"metadata": {"name": "kept"}}));
        maps.create(&PostParams::default(), &kept.expect("map")).await.expect("stored");

        let upgrade = serde_json::json!({"spec": {"version": "v1.36.2-k3s1"}});
        api.patch("c", &PatchParams::default(), &Patch::Merge(&upgrade)).await.expect("patched");
        let down = app.wait_for_phase(&ns, "c", "Provisioning").await;
        let status = down.status.expect("status");
        assert_eq!(status.conditions[0]["message"], not_ready(), "{persistence}");
        assert_eq!(status.conditions[0]["reason"], "Provisioning");
        let refused = client.apiserver_version().await.expect_err("nothing answers");
        let refused = format!("{refused:?}");
        assert!(refused.contains("ConnectionRefused"), "{persistence}: {refused}");

        app.wait_for_phase(&ns, "c", "Ready").await;
        let after = crate::harness::kubeconfig_secret(&app, &ns, "c").await;
        let fresh = crate::harness::client_with_retries(&after, false).await;
        let version = fresh.apiserver_version().await.expect("the new server answers");
        assert_eq!(version.git_version, "v1.36.2+k3s1");
        let fresh_maps: Api<ConfigMap> = Api::namespaced(fresh, "default");
        if persistence == "dynamic" {
            assert!(fresh_maps.get("kept").await.is_ok(), "the volume kept the datastore");
            assert!(client.apiserver_version().await.is_ok(), "same CAs, same credentials");
        } else {
            let gone = fresh_maps.get("kept").await.expect_err("an empty cluster");
            assert!(matches!(gone, kube::Error::Api(ref e) if e.code == 404), "{gone:?}");
            assert_ne!(after, before, "K3k wrote the new CA and credentials");
            assert!(client.apiserver_version().await.is_err(), "the old CA is gone");
        }
    }
}

//! hostsim: a simulated host Kubernetes cluster with K3k.
//!
//! It serves the Kubernetes REST API over real HTTPS on a loopback port (discovery, CRUD, list,
//! watch, patch, server-side apply, status, finalizers, garbage collection, pod logs,
//! metrics.k8s.io), validates custom resources against the K3k CRDs, and plays the K3k
//! controller: a `Cluster` gets K3k's pods, services and secrets, goes `Provisioning` → `Ready`,
//! and then serves its own small Kubernetes API over TLS with its own CAs.
//!
//! Start one with [`start`]; [`Running`] gives its URL, kubeconfig and fault-injection handle.

pub mod api;
pub mod authz;
pub mod container;
pub mod error;
pub mod faults;
pub mod host;
pub mod identity;
pub mod ingress;
pub mod k3k;
pub mod kubeconfig;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod object;
pub mod patch;
pub mod psa;
pub mod quota;
pub mod rbac;
pub mod resources;
pub mod runtime;
pub mod schema;
pub mod select;
pub mod spdy;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod vcluster;
pub mod warnings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use faults::{ErrorRule, FaultSettings, Faults, Provisioning};

use host::Host;

/// How the simulated cluster behaves. `Default` suits tests: fast provisioning, modest log rate.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the host API listens; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Serve HTTPS with a self-signed CA (in the kubeconfig); plain HTTP otherwise.
    pub tls: bool,
    /// The bearer token clients must present; random when `None`.
    pub token: Option<String>,
    /// The host's Kubernetes version (`/version`, K3k's `status.hostVersion`).
    pub host_version: String,
    /// How many host nodes exist (`hostsim-node-0` is the control plane, the rest workers):
    /// several by default, so per-node fan-out (shared mode's kubelet DaemonSet) shows.
    pub nodes: usize,
    /// How long a new pod stays `ContainerCreating` before it runs.
    pub pod_start_delay: Duration,
    /// How long a deleted running pod's containers take to stop (at most its grace period):
    /// until then it is `Terminating`, and so is a namespace that holds it.
    pub pod_stop_delay: Duration,
    /// How long after its servers run a cluster becomes `Ready`.
    pub ready_delay: Duration,
    /// Log lines per second written by every running container.
    pub log_lines_per_second: f64,
    /// Lines kept per container (what `tailLines` and `sinceTime` can reach).
    pub log_ring_lines: usize,
    /// Changes kept for watches to resume from; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Serve each Ready virtual cluster's own API on a loopback port.
    pub virtual_cluster_api: bool,
    /// Serve `metrics.k8s.io` (as if metrics-server were installed).
    pub metrics_api: bool,
    /// An ingress-nginx controller with wildcard DNS in front of it (see [`ingress`]); `None`:
    /// no ingress controller, and no host name resolves.
    pub ingress: Option<ingress::IngressController>,
    /// Where the ingress controller's TLS port listens; port 0 picks a free port.
    pub ingress_addr: SocketAddr,
    /// The K3k release played (CRDs, Ingress hosts; see [`k3k::K3kVersion`]); by default the
    /// one `HOSTSIM_K3K_VERSION` names, else v1.1.0.
    pub k3k_version: k3k::K3kVersion,
    /// What a k3s server's working set grows to: a server container whose memory limit is
    /// below it is OOMKilled [`oom_after`](Self::oom_after) into each run and restarted with the
    /// kubelet's back-off (docs.k3s.io reference/resource-profiling: a k3s server with a
    /// workload needs 768–896 MB on k3s 1.19, 1.4–1.6 GB on 1.26). 0: never.
    pub server_memory_needed: u64,
    /// How long an undersized server runs before the kernel kills it.
    pub oom_after: Duration,
    /// The kubelet's first crash-loop back-off, doubled after each restart up to 5 minutes
    /// (kubernetes v1.35 pkg/kubelet/kubelet.go `backOffPeriod` 10 s, `MaxContainerBackOff`
    /// 300 s).
    pub crash_backoff: Duration,
    /// How long K3k takes to remove a deleted HA server from the etcd member list before it
    /// lets the pod go (K3k v1.1.0 pkg/controller/cluster/statefulset.go handleServerPod →
    /// removePeer, at most `memberRemovalTimeout`, 1 minute, per try).
    pub etcd_member_removal: Duration,
    /// How long a virtual-mode node whose pod is gone stays `Ready` before it is marked
    /// unreachable (kube-controller-manager's `--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            host_version: "v1.35.2".into(),
            nodes: 5,
            pod_start_delay: Duration::from_millis(150),
            pod_stop_delay: Duration::from_secs(1),
            ready_delay: Duration::from_millis(300),
            log_lines_per_second: 5.0,
            log_ring_lines: 2000,
            watch_history: 20_000,
            bookmark_interval: Duration::from_secs(10),
            virtual_cluster_api: true,
            metrics_api: true,
            ingress: Some(ingress::IngressController::default()),
            ingress_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            k3k_version: k3k::K3kVersion::from_env(),
            server_memory_needed: 1 << 30,
            oom_after: Duration::from_secs(5),
            crash_backoff: Duration::from_secs(10),
            etcd_member_removal: Duration::from_secs(2),
            node_monitor_grace: Duration::from_secs(2),
        }
    }
}

/// A running hostsim. Dropping it without [`Running::shutdown`] leaves its tasks to the runtime.
pub struct Running {
    host: Arc<Host>,
    addr: SocketAddr,
    ingress_addr: Option<SocketAddr>,
    url: String,
    ca_pem: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("url", &self.url).finish()
    }
}

/// Installs what a fresh host cluster has: the K3k CRDs, the system namespaces, the bootstrap
/// RBAC policy and the nodes.
fn install(host: &Host) -> Result<()> {
    for crd in host.config.k3k_version.crds() {
        let obj: serde_json::Value =
            serde_yaml::from_str(crd).map_err(|e| Error::Internal(format!("embedded CRD: {e}")))?;
        host.ensure("apiextensions.k8s.io", "customresourcedefinitions", obj)?;
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease", "k3k-system"] {
        host.ensure("", "namespaces", json!({"metadata": {"name": ns}}))?;
    }
    for role in rbac::bootstrap::cluster_roles() {
        host.ensure(rbac::authorizer::GROUP, "clusterroles", role)?;
    }
    for binding in rbac::bootstrap::cluster_role_bindings() {
        host.ensure(rbac::authorizer::GROUP, "clusterrolebindings", binding)?;
    }
    // The API server's own Service takes the first address of the service range.
    let kubernetes_ip = host.network.kubernetes_service_ip().to_string();
    host.ensure(
        "",
        "services",
        json!({"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"clusterIP": kubernetes_ip, "clusterIPs": [kubernetes_ip], "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
    )?;
    if let Some(controller) = &host.config.ingress {
        // ingress-nginx's chart installs its IngressClass (charts/ingress-nginx
        // templates/controller-ingressclass.yaml, controller `k8s.io/ingress-nginx`).
        host.ensure(
            "networking.k8s.io",
            "ingressclasses",
            json!({"metadata": {"name": controller.class, "labels": {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}},
                   "spec": {"controller": ingress::CONTROLLER_NAME}}),
        )?;
    }
    for i in 0..host.config.nodes.max(1) {
        let name = format!("hostsim-node-{i}");
        host.ensure(
            "",
            "nodes",
            k3k::node_object(&host.network, &name, &host.config.host_version, i),
        )?;
    }
    Ok(())
}

/// Simulates an API server restart: open watches and log streams are cut; with
/// `keep_state == false` every object is forgotten too (old resourceVersions get 410 Gone).
pub fn restart(host: &Host, keep_state: bool) {
    host.faults.drop_connections();
    if !keep_state {
        host.store.wipe();
        host.logs.clear();
        host.vclusters.clear();
        host.registry.set_crds(&[]);
        if let Err(e) = install(host) {
            tracing::error!(error = %e, "reinstall after restart failed");
        }
    }
}

/// Crashes one container of a running pod and lets the kubelet start it again: its log so far
/// becomes the previous log (`previous=true`), followers' streams end, the container's
/// `restartCount` goes up and `lastState.terminated` says what happened. `false` when no such
/// container runs.
pub fn restart_container(host: &Host, ns: &str, pod: &str, container: &str) -> bool {
    if !host.logs.restart_container(ns, pod, container) {
        return false;
    }
    let now = object::now_rfc3339();
    let updated = host.modify("", "pods", ns, pod, Some("status"), |p| {
        let statuses =
            p.pointer_mut("/status/containerStatuses").and_then(serde_json::Value::as_array_mut);
        for status in statuses.into_iter().flatten().filter(|s| s["name"] == container) {
            let started = status.pointer("/state/running/startedAt").cloned();
            status["restartCount"] = json!(status["restartCount"].as_i64().unwrap_or(0) + 1);
            status["lastState"] = json!({"terminated": {
                "exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": now,
            }});
            status["state"] = json!({"running": {"startedAt": now}});
        }
    });
    if let Err(e) = updated {
        tracing::warn!(error = %e, "restart_container: pod status not updated");
    }
    true
}

/// Starts hostsim: binds, installs the CRDs and nodes, and runs the API server, the fake K3k
/// controller and the log generator until [`Running::shutdown`].
pub async fn start(config: Config) -> Result<Running> {
    let token =
        config.token.clone().unwrap_or_else(|| hex::encode(uuid::Uuid::new_v4().as_bytes()));
    let tls_enabled = config.tls;
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let ingress_listener = match &config.ingress {
        Some(_) => Some(TcpListener::bind(config.ingress_addr).await?),
        None => None,
    };
    let ingress_addr = ingress_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let host = Arc::new(Host::new(config, token, network::Network::reserve()));
    let _ = host.address.set(addr.to_string());
    install(&host)?;

    let (ca_pem, tls_config) = if tls_enabled {
        let ca = tls::Ca::new("hostsim-ca")?;
        let mut sans = vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        if !addr.ip().is_unspecified() && addr.ip().to_string() != "127.0.0.1" {
            sans.push(addr.ip().to_string());
        }
        let leaf = ca.issue_server("kube-apiserver", &sans)?;
        (Some(ca.cert_pem()), Some(tls::server_config(&leaf, None)?))
    } else {
        (None, None)
    };
    let scheme = if tls_enabled { "https" } else { "http" };
    let host_part =
        if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let url = format!("{scheme}://{host_part}:{}", addr.port());

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let app = api::router(host.clone());
    tasks.push(tokio::spawn(tls::serve(listener, tls_config, app, shutdown_rx.clone())));
    tasks.push(tokio::spawn(k3k::controller::run(host.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(run_log_generator(host.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(run_lifecycle(host.clone(), shutdown_rx.clone())));
    if let Some(listener) = ingress_listener {
        tasks.push(tokio::spawn(ingress::serve(host.clone(), listener, shutdown_rx.clone())));
    }
    Ok(Running { host, addr, ingress_addr, url, ca_pem, shutdown, tasks })
}

/// The kubelets and the namespace controller: stopped pods go, terminating namespaces empty.
pub(crate) async fn run_lifecycle(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => host.store.reap(),
            _ = tls::stopped(&mut shutdown) => return,
        }
    }
}

pub(crate) async fn run_log_generator(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(50);
    let mut ticker = tokio::time::interval(period);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = tokio::time::Instant::now();
                host.logs.tick(now - last);
                last = now;
            }
            _ = crate::tls::stopped(&mut shutdown) => return,
        }
    }
}

impl Running {
    /// The host API's base URL, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the ingress controller takes TLS (what wildcard DNS for the base domain would point
    /// at): dial it with the cluster's host name as SNI (kubeconfig `tls-server-name`).
    pub fn ingress_addr(&self) -> Option<SocketAddr> {
        self.ingress_addr
    }

    /// The admin's bearer token (user `kubernetes-admin`, group `system:masters`).
    pub fn token(&self) -> String {
        self.host.token.clone()
    }

    /// A token for the ServiceAccount `namespace/name`, issued as `kubectl create token` gets
    /// one (an hour, the API server's audience); the ServiceAccount must exist.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let answer = tokens::request(&self.host, namespace, name, &json!({}))?;
        answer
            .pointer("/status/token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Internal("TokenRequest without a token".into()))
    }

    /// The CA that signed the host API's serving certificate (PEM), when serving HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// A complete kubeconfig for the host API (context `hostsim`, bearer token, CA data).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(
            "hostsim",
            &self.url,
            self.ca_pem.as_deref(),
            kubeconfig::Credentials::Token(&self.host.token),
        )
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.host.faults
    }

    /// How many requests had a path starting with `path_prefix` (e.g. a pod's `/log` path).
    pub fn request_count(&self, path_prefix: &str) -> u64 {
        self.host.counters.count(path_prefix)
    }

    /// How many watches and followed log streams have been opened under `path_prefix`, ever.
    pub fn streams_opened(&self, path_prefix: &str) -> u64 {
        self.host.counters.streams_opened(path_prefix)
    }

    /// How many watches and followed log streams are open right now under `path_prefix`
    /// (e.g. `/api/v1/namespaces/k3k-a/pods/k3k-a-server-0/log`).
    pub fn open_streams(&self, path_prefix: &str) -> u64 {
        self.host.counters.open_streams(path_prefix)
    }

    /// How many objects the store holds.
    pub fn object_count(&self) -> usize {
        self.host.store.count()
    }

    /// Where a Ready virtual cluster's API listens on the simulated pod network: what its
    /// ClusterIP Service routes to from inside the host. Nothing outside the host learns it from
    /// the API; tests use it to stand in for a client running in a pod.
    pub fn virtual_cluster_endpoint(&self, namespace: &str, name: &str) -> Option<String> {
        self.host.vclusters.endpoint(namespace, name)
    }

    /// Log lines per second per running container from now on.
    pub fn set_log_rate(&self, lines_per_second: f64) {
        self.host.logs.set_rate(lines_per_second);
    }

    /// Log lines per second of the containers tenants run in virtual clusters.
    pub fn set_virtual_log_rate(&self, lines_per_second: f64) {
        self.host.vclusters.set_log_rate(lines_per_second);
    }

    /// Crashes and restarts one container (see [`restart_container`]).
    pub fn restart_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        restart_container(&self.host, namespace, pod, container)
    }

    /// Simulates an API server restart (see [`restart`]).
    pub fn restart(&self, keep_state: bool) {
        restart(&self.host, keep_state);
    }

    /// Stops serving, ends every stream and background task, and waits for them.
    pub async fn shutdown(self) {
        self.host.faults.drop_connections();
        let _ = self.shutdown.send(true);
        self.host.vclusters.clear();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

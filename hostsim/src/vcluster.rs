//! Virtual clusters' own API servers. Each Ready `Cluster` gets its CAs (server, client, etcd)
//! and, when enabled, a small Kubernetes API on its own loopback port, served over TLS with a
//! certificate from its server CA and requiring client certificates from its client CA — so a
//! kubeconfig built like `k3kcli kubeconfig generate` works with `kubectl`. Its nodes mirror the
//! cluster's server and agent pods; its controllers ([`workloads`]) and, in virtual mode, its
//! kubelets ([`kubelet`]) run what tenants create.
//!
//! The same API is served where a real host routes the cluster's Service: at
//! `<ClusterIP>:<port>` for each TCP port of `k3k-<name>-service` that targets k3s's 6443 (what
//! kube-proxy does), so K3k's admin kubeconfig (`https://<ClusterIP>`) works as written. The
//! ClusterIP is loopback ([`crate::network`]). Port 443 needs root or CAP_NET_BIND_SERVICE; without
//! either, the port is the kernel's pick and K3k's kubeconfig names it (`https://<ClusterIP>:<port>`,
//! the form K3k itself writes for a port other than 443) — the one place hostsim's URL differs
//! from K3k's.

pub mod kubelet;
pub mod workloads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::Result;
use crate::host::Host;
use crate::tls::Ca;
use crate::{api, k3k, Config};

/// A virtual cluster's certificate authorities (the content of `k3k-<name>-bootstrap`).
pub struct ClusterCerts {
    pub server_ca: Ca,
    pub client_ca: Ca,
    pub etcd_ca: Ca,
}

/// One node of a virtual cluster: its name, role (`server` or `agent`) and k3s version.
#[derive(Debug, Clone)]
pub struct VirtualNode {
    pub name: String,
    pub role: String,
    pub version: String,
}

struct VirtualCluster {
    uid: String,
    certs: Arc<ClusterCerts>,
    api: Option<Served>,
}

struct Served {
    endpoint: String,
    addr: std::net::SocketAddr,
    host: Arc<Host>,
    stop: watch::Sender<bool>,
    /// The listeners' own stop, `None` while no server pod is ready: the API is then refused
    /// at its addresses, and its open connections are closed (see [`Endpoints::server_gone`]).
    listening: Option<watch::Sender<bool>>,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    /// The server pod (uid) whose datastore holds the cluster's state: under ephemeral
    /// persistence that is the pod's emptyDir, gone with the pod.
    data_pod: String,
    /// The Service addresses served: (the Service's `<ClusterIP>:<port>`, where it is bound).
    service: Vec<(SocketAddr, SocketAddr)>,
    /// Shared mode's k3k-kubelet syncs its pods to the host (see [`k3k::kubelet`]).
    kubelet: bool,
    shared: kubelet::SharedKubelet,
    /// Nodes whose pod is gone (virtual mode), and since when: see [`Endpoints::sync_nodes`].
    departed: Arc<Mutex<HashMap<String, std::time::Instant>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.host.faults.drop_connections();
        self.listening = None;
        let _ = self.stop.send(true);
    }
}

impl Served {
    /// Serves the router on `listener` until the listeners are stopped.
    fn listen(&self, listener: TcpListener, stop: &watch::Sender<bool>) {
        tokio::spawn(crate::tls::serve(
            listener,
            Some(self.tls.clone()),
            self.router.clone(),
            stop.subscribe(),
        ));
    }
}

/// All virtual clusters by (namespace, name).
#[derive(Default)]
pub struct Endpoints(
    Mutex<HashMap<(String, String), VirtualCluster>>,
    /// Log lines per second of each tenant container, when set (benchmarks).
    Mutex<Option<f64>>,
);

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl Endpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), VirtualCluster>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cluster's CAs, created on first use (and anew for a new Cluster with the same name).
    pub fn certs(&self, ns: &str, name: &str, uid: &str) -> Result<Arc<ClusterCerts>> {
        let mut map = self.lock();
        if let Some(vc) = map.get(&key(ns, name)).filter(|vc| vc.uid == uid) {
            return Ok(vc.certs.clone());
        }
        // k3s names its CAs `<kind>@<unix seconds>` (k3s `pkg/daemons/control/deps/deps.go`,
        // `createSigningCertKey`: `fmt.Sprintf("%s-ca@%d", prefix, time.Now().Unix())`).
        let at = chrono::Utc::now().timestamp();
        let certs = Arc::new(ClusterCerts {
            server_ca: Ca::new(&format!("k3s-server-ca@{at}"))?,
            client_ca: Ca::new(&format!("k3s-client-ca@{at}"))?,
            etcd_ca: Ca::new(&format!("etcd-server-ca@{at}"))?,
        });
        map.insert(
            key(ns, name),
            VirtualCluster { uid: uid.to_string(), certs: certs.clone(), api: None },
        );
        Ok(certs)
    }

    /// Serves the cluster's API (once) on the pod network and at each of `service` (the
    /// Service's `<ClusterIP>:<port>`s), and returns its pod-network URL.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        network: &crate::network::Network,
        ns: &str,
        name: &str,
        uid: &str,
        sans: &[String],
        version: &str,
        service: &[SocketAddr],
        server_pod: &str,
    ) -> Result<String> {
        let certs = self.certs(ns, name, uid)?;
        if let Some(e) = self.endpoint(ns, name) {
            return Ok(e);
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let leaf = certs.server_ca.issue_server("k3s", sans)?;
        let tls = crate::tls::server_config(&leaf, Some(&certs.client_ca.cert_der()))?;
        let k3s_version = version.replacen("-k3s", "+k3s", 1);
        let config = Config {
            host_version: k3s_version,
            watch_history: 256,
            virtual_cluster_api: false,
            log_lines_per_second: self
                .1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(Config::default().log_lines_per_second),
            ..Config::default()
        };
        let mut vhost = Host::new(config, String::new(), network.unreserved_copy());
        vhost.client_cert_auth = true;
        let vhost = Arc::new(vhost);
        let _ = vhost.address.set(addr.to_string());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            vhost.ensure("", "namespaces", json!({"metadata": {"name": ns}}))?;
        }
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(crate::run_lifecycle(vhost.clone(), stop_rx.clone()));
        tokio::spawn(crate::run_log_generator(vhost.clone(), stop_rx.clone()));
        tokio::spawn(workloads::run(vhost.clone(), stop_rx.clone()));
        let shared = kubelet::SharedKubelet::default();
        tokio::spawn(kubelet::run(vhost.clone(), shared.clone(), version.into(), stop_rx.clone()));
        let router = api::router(vhost.clone());
        let mut listeners = Vec::new();
        let mut bound = Vec::new();
        for &wanted in service {
            let Some(listener) = bind_service(wanted).await else { continue };
            bound.push((wanted, listener.local_addr()?));
            listeners.push(listener);
        }
        listeners.push(listener);
        let endpoint = format!("https://127.0.0.1:{}", addr.port());
        let (listening, _) = watch::channel(false);
        let served = Served {
            endpoint: endpoint.clone(),
            addr,
            host: vhost,
            stop,
            listening: None,
            tls,
            router,
            data_pod: server_pod.to_string(),
            service: bound,
            kubelet: false,
            shared,
            departed: Arc::default(),
        };
        let mut map = self.lock();
        match map.get_mut(&key(ns, name)) {
            Some(vc) if vc.api.is_none() => {
                for listener in listeners {
                    served.listen(listener, &listening);
                }
                let mut served = served;
                served.listening = Some(listening);
                vc.api = Some(served);
                Ok(endpoint)
            }
            Some(vc) => Ok(vc.api.as_ref().map(|a| a.endpoint.clone()).unwrap_or(endpoint)),
            None => Ok(endpoint),
        }
    }

    /// No server pod of the cluster is ready: its Service has no endpoints, so connecting to
    /// the API is refused (kube-proxy rejects traffic to a Service without endpoints,
    /// kubernetes v1.36 pkg/proxy/iptables/proxier.go "has no endpoints" → REJECT) and open
    /// connections end with the pod. The cluster's state stays for the next server.
    pub fn server_gone(&self, ns: &str, name: &str) {
        let mut map = self.lock();
        let Some(api) = map.get_mut(&key(ns, name)).and_then(|vc| vc.api.as_mut()) else {
            return;
        };
        if api.listening.take().is_some() {
            api.host.faults.drop_connections();
            tracing::debug!(namespace = ns, cluster = name, "virtual API down: no server is ready");
        }
    }

    /// The server pod `server_pod` (uid) is ready: the API answers again at the same addresses.
    /// Under ephemeral persistence with one server (`ephemeral_single`) a server pod other than
    /// the one holding the datastore starts an empty k3s (K3k v1.1.0
    /// pkg/controller/cluster/server/template.go `start_single_node`: no data directory → a
    /// fresh `cluster-init`), with new CAs: the old cluster is dropped here and the next
    /// bootstrap makes the new one. Returns `false` when there is no API (any more).
    pub async fn server_back(
        &self,
        ns: &str,
        name: &str,
        server_pod: &str,
        ephemeral_single: bool,
    ) -> bool {
        let (pod_addr, service) = {
            let mut map = self.lock();
            let Some(vc) = map.get_mut(&key(ns, name)) else { return false };
            let Some(api) = vc.api.as_mut() else { return false };
            if ephemeral_single && api.data_pod != server_pod {
                drop(map);
                tracing::info!(
                    namespace = ns,
                    cluster = name,
                    "the only server was replaced and its ephemeral datastore is gone: the \
                     cluster starts empty"
                );
                self.stop(ns, name);
                return false;
            }
            api.data_pod = server_pod.to_string();
            if api.listening.is_some() {
                return true;
            }
            (api.addr, api.service.clone())
        };
        let mut listeners = Vec::new();
        // The Service's address is stable; the pod's may move (a new pod, a new IP).
        let pod_listener = match TcpListener::bind(pod_addr).await {
            Ok(l) => l,
            Err(_) => match TcpListener::bind(("127.0.0.1", 0)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "virtual API cannot listen again");
                    return false;
                }
            },
        };
        let mut bound = Vec::new();
        for (wanted, was) in service {
            let listener = match TcpListener::bind(was).await {
                Ok(l) => Some(l),
                Err(_) => bind_service(wanted).await,
            };
            let Some(listener) = listener else { continue };
            if let Ok(at) = listener.local_addr() {
                bound.push((wanted, at));
                listeners.push(listener);
            }
        }
        let mut map = self.lock();
        let Some(api) = map.get_mut(&key(ns, name)).and_then(|vc| vc.api.as_mut()) else {
            return false;
        };
        if api.listening.is_some() {
            return true;
        }
        if let Ok(addr) = pod_listener.local_addr() {
            api.addr = addr;
            api.endpoint = format!("https://127.0.0.1:{}", addr.port());
        }
        listeners.push(pod_listener);
        api.service = bound;
        let (listening, _) = watch::channel(false);
        for listener in listeners {
            api.listen(listener, &listening);
        }
        api.listening = Some(listening);
        tracing::debug!(namespace = ns, cluster = name, "virtual API up again");
        true
    }

    /// Whether the cluster's API is served now (it exists and a server is ready).
    pub fn serving(&self, ns: &str, name: &str) -> bool {
        self.lock()
            .get(&key(ns, name))
            .and_then(|vc| vc.api.as_ref())
            .is_some_and(|a| a.listening.is_some())
    }

    /// Starts shared mode's k3k-kubelet for the cluster's API (once; it stops with the API).
    pub fn start_kubelet(&self, host: &Arc<Host>, ns: &str, name: &str, version: &str) {
        let mut map = self.lock();
        let Some(api) = map.get_mut(&key(ns, name)).and_then(|vc| vc.api.as_mut()) else {
            return;
        };
        if api.kubelet {
            return;
        }
        api.kubelet = true;
        api.shared.set();
        tokio::spawn(k3k::kubelet::run(
            Arc::downgrade(host),
            api.host.clone(),
            ns.to_string(),
            name.to_string(),
            version.to_string(),
            api.stop.subscribe(),
        ));
    }

    /// Sets how many log lines per second every tenant container writes, in every virtual
    /// cluster, now and to come.
    pub fn set_log_rate(&self, lines_per_second: f64) {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Some(lines_per_second);
        for vc in self.lock().values() {
            if let Some(api) = &vc.api {
                api.host.logs.set_rate(lines_per_second);
            }
        }
    }

    /// Makes the virtual cluster's nodes `nodes`, and its API report `api_version`.
    ///
    /// A node whose pod is gone: with `lingering` (virtual mode: a k3s agent or server that
    /// stopped) the Node object stays, and once `grace` has passed without its kubelet it is
    /// what kube-controller-manager's node lifecycle controller makes of it (pkg/controller/
    /// nodelifecycle/node_lifecycle_controller.go `tryUpdateNodeHealth`, after
    /// `--node-monitor-grace-period`, 40 s there; shortened here like hostsim's other delays):
    /// every condition `Unknown` ("Kubelet stopped posting node status."), tainted
    /// `node.kubernetes.io/unreachable` (NoSchedule and NoExecute). Nothing deletes it: k3s's
    /// cloud provider says every instance exists, and K3k has no node cleanup in virtual mode
    /// (rancher/k3k#767, #1159: scaled-down and replaced agents stay `NotReady`). Without
    /// `lingering` (shared mode's k3k-kubelet, which manages its own node) it is removed.
    pub fn sync_nodes(
        &self,
        ns: &str,
        name: &str,
        nodes: &[VirtualNode],
        api_version: &str,
        lingering: bool,
        grace: Duration,
    ) {
        let map = self.lock();
        let Some(api) = map.get(&key(ns, name)).and_then(|vc| vc.api.as_ref()) else {
            return;
        };
        let host = api.host.clone();
        let departed = api.departed.clone();
        drop(map);
        let k3s = |v: &str| v.replacen("-k3s", "+k3s", 1);
        if host.version() != k3s(api_version) {
            host.set_version(&k3s(api_version));
        }
        let Ok(rt) = host.resource("", "nodes") else {
            return;
        };
        let (existing, _) = host.store.list(&rt.gr(), None);
        // A departed node somebody deleted is forgotten (and never made again).
        departed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n, _| existing.iter().any(|e| crate::object::name(e) == n));
        for node in &existing {
            let n = crate::object::name(node);
            if nodes.iter().any(|v| v.name == n) {
                continue;
            }
            if !lingering {
                let _ = host.delete(&rt, None, n);
                continue;
            }
            let mut gone = departed.lock().unwrap_or_else(|p| p.into_inner());
            if gone.contains_key(n) {
                continue;
            }
            let since = std::time::Instant::now();
            gone.insert(n.to_string(), since);
            let (host, departed, n) = (Arc::downgrade(&host), departed.clone(), n.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let still =
                    departed.lock().unwrap_or_else(|p| p.into_inner()).get(&n) == Some(&since);
                if let (true, Some(host)) = (still, host.upgrade()) {
                    node_unreachable(&host, &n);
                }
            });
        }
        for (i, v) in nodes.iter().enumerate() {
            let version = k3s(&v.version);
            let mut node = k3k::node_object(&host.network, &v.name, &version, i);
            if let Some(labels) =
                node.pointer_mut("/metadata/labels").and_then(|l| l.as_object_mut())
            {
                labels.remove("node-role.kubernetes.io/control-plane");
                if v.role == "server" {
                    labels.insert("node-role.kubernetes.io/control-plane".into(), "true".into());
                }
            }
            let info = node.pointer("/status/nodeInfo").cloned();
            let conditions = node.pointer("/status/conditions").cloned();
            let back = departed.lock().unwrap_or_else(|p| p.into_inner()).remove(&v.name).is_some();
            match existing.iter().find(|n| crate::object::name(n) == v.name) {
                // A server pod of the same name is back (scaled up again): its kubelet
                // registers the node again and posts Ready; the lifecycle controller lifts its
                // taints.
                Some(_) if back => {
                    let _ = host.modify("", "nodes", "", &v.name, Some("status"), |n| {
                        n["status"]["conditions"] = conditions.clone().unwrap_or_default();
                        if let Some(info) = &info {
                            n["status"]["nodeInfo"] = info.clone();
                        }
                    });
                    let _ = host.modify("", "nodes", "", &v.name, None, |n| {
                        if let Some(spec) = n["spec"].as_object_mut() {
                            spec.remove("taints");
                        }
                    });
                }
                // A node's pod was replaced by one of another version: the kubelet that
                // registers again reports its own (status is a subresource).
                Some(old)
                    if old.pointer("/status/nodeInfo/kubeletVersion").and_then(|k| k.as_str())
                        != Some(version.as_str()) =>
                {
                    let _ = host.modify("", "nodes", "", &v.name, Some("status"), |n| {
                        if let Some(info) = &info {
                            n["status"]["nodeInfo"] = info.clone();
                        }
                    });
                }
                _ => {}
            }
            if let Err(e) = host.ensure("", "nodes", node) {
                tracing::debug!(error = %e, "virtual node sync failed");
            }
        }
    }

    /// Where the cluster's API listens on the pod network (what its Service routes to).
    pub fn address(&self, ns: &str, name: &str) -> Option<std::net::SocketAddr> {
        self.lock().get(&key(ns, name)).and_then(|vc| vc.api.as_ref().map(|a| a.addr))
    }

    /// Where the Service address `wanted` (`<ClusterIP>:<port>`) of the cluster is bound: itself,
    /// or the same IP with another port where binding the privileged port was not allowed.
    pub fn service_address(&self, ns: &str, name: &str, wanted: SocketAddr) -> Option<SocketAddr> {
        let map = self.lock();
        let api = map.get(&key(ns, name)).and_then(|vc| vc.api.as_ref())?;
        api.service.iter().find(|(w, _)| *w == wanted).map(|(_, b)| *b)
    }

    pub fn endpoint(&self, ns: &str, name: &str) -> Option<String> {
        self.lock().get(&key(ns, name)).and_then(|vc| vc.api.as_ref().map(|a| a.endpoint.clone()))
    }

    /// Stops the cluster's API and forgets its CAs.
    pub fn stop(&self, ns: &str, name: &str) {
        let removed = self.lock().remove(&key(ns, name));
        drop(removed);
    }

    pub fn clear(&self) {
        let all: Vec<VirtualCluster> = self.lock().drain().map(|(_, v)| v).collect();
        drop(all);
    }
}

/// Binds a Service address as kube-proxy would make it answer. Without the right to bind a
/// privileged port the kernel picks the port (a warning says so); another error (say a system
/// where only 127.0.0.1 exists) leaves the address unserved, also with a warning. A listener of
/// a stopped API may still hold the address for a moment, so "in use" is retried briefly.
async fn bind_service(wanted: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        match TcpListener::bind(wanted).await {
            Ok(l) => return Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let fallback = SocketAddr::new(wanted.ip(), 0);
                match TcpListener::bind(fallback).await {
                    Ok(l) => {
                        tracing::warn!(
                            service = %wanted,
                            bound = ?l.local_addr().ok(),
                            "no permission to bind a privileged port (run as root or grant \
                             CAP_NET_BIND_SERVICE); serving the Service on another port"
                        );
                        return Some(l);
                    }
                    Err(e) => {
                        tracing::warn!(service = %wanted, error = %e, "Service address not served");
                        return None;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(service = %wanted, error = %e, "Service address not served");
                return None;
            }
        }
    }
    tracing::warn!(service = %wanted, "Service address still in use; not served");
    None
}

/// What the node lifecycle controller does to a node whose kubelet stopped posting status (see
/// [`Endpoints::sync_nodes`]); nothing if the node was deleted meanwhile.
fn node_unreachable(host: &Host, name: &str) {
    let now = crate::object::now_rfc3339();
    let marked = host.modify("", "nodes", "", name, Some("status"), |n| {
        if let Some(conditions) = n.pointer_mut("/status/conditions").and_then(|c| c.as_array_mut())
        {
            for c in conditions {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
            }
        }
    });
    if marked.is_ok() {
        let _ = host.modify("", "nodes", "", name, None, |n| {
            n["spec"]["taints"] = json!([
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": now},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": now},
            ]);
        });
    }
}

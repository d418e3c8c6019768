//! The emulated K3k cluster controller (K3K.md §2.4 and §4.3): reacts to `Cluster` objects by
//! laying out K3k's host objects (token and config secrets, services, StatefulSet and server
//! pods, agents, PVCs, bootstrap and kubeconfig secrets), drives pods from ContainerCreating to
//! Running and the Cluster through `Provisioning` → `Ready` on the configured schedule, records
//! K3k's events, and finalizes deletion. Also clears the finalizers K3k's other controllers own.
//!
//! It only produces outcomes through the same admission path as API clients; it never edits the
//! store directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::{
    kubelet, name_with_prefix, policy, CLUSTER_FINALIZER, ETCD_POD_FINALIZER, GROUP, POLICY_LABEL,
};
use crate::error::{Error, GroupResource, Result};
use crate::faults::Provisioning;
use crate::host::Host;
use crate::logs::Role;
use crate::object;
use crate::store::{random_suffix, ChangeType};
use crate::vcluster;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Cluster(String, String),
    Namespace(String),
    Policy(String),
    StatefulSet(String, String),
    /// A K3k server pod: its etcd finalizer.
    ServerPod(String, String),
    Quotas(String),
}

struct Controller {
    host: Arc<Host>,
    requeue: mpsc::UnboundedSender<(Key, Instant)>,
    /// When each pod (by uid) was first seen, for its start delay.
    pod_seen: HashMap<String, Instant>,
    /// When each cluster (by uid) had all its pods running, for the ready delay.
    running_since: HashMap<String, Instant>,
    /// Clusters (by uid) that flapped to Failed under the `Flap` fault, and until when they
    /// stay there (a K3k requeue with back-off, not the next event).
    flapped: HashMap<String, Instant>,
    /// Undersized server pods (by uid) the kernel keeps killing: see [`Crash`].
    crashes: HashMap<String, Crash>,
    /// Deleted HA server pods (by uid) and when K3k started removing them from etcd.
    leaving: HashMap<String, Instant>,
}

/// A server container that outgrows its memory limit: it runs until `due` and is OOMKilled,
/// or (`down`) waits out the kubelet's crash-loop back-off until `due` and is started again.
#[derive(Debug, Clone, Copy)]
struct Crash {
    due: Instant,
    down: bool,
    kills: u32,
}

fn clusters() -> GroupResource {
    GroupResource::new(GROUP, "clusters")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Runs the controller until shutdown.
pub async fn run(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = host.store.subscribe();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Key, Instant)>();
    let mut c = Controller {
        host: host.clone(),
        requeue: tx,
        pod_seen: HashMap::new(),
        running_since: HashMap::new(),
        flapped: Default::default(),
        crashes: HashMap::new(),
        leaving: HashMap::new(),
    };
    let mut fault_changes = host.faults.subscribe();
    let (timer_tx, mut timer_rx) = mpsc::unbounded_channel::<Key>();
    c.resync_all().await;
    let stop_template = shutdown.clone();
    loop {
        tokio::select! {
            _ = crate::tls::stopped(&mut shutdown) => return,
            msg = changes.recv() => match msg {
                Ok(change) => {
                    // A deleted pod's containers stop: followers' log streams end.
                    if change.kind == ChangeType::Deleted && change.gr == GroupResource::new("", "pods") {
                        host.logs.stop_pod(object::namespace(&change.object), object::name(&change.object));
                        c.crashes.remove(object::uid(&change.object));
                        c.leaving.remove(object::uid(&change.object));
                    }
                    for key in keys_for(&change.gr, change.kind, &change.object) {
                        c.reconcile(key).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => c.resync_all().await,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some((key, at)) = rx.recv() => {
                let timer_tx = timer_tx.clone();
                let mut stop = stop_template.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => { let _ = timer_tx.send(key); }
                        _ = crate::tls::stopped(&mut stop) => {}
                    }
                });
            }
            Some(key) = timer_rx.recv() => c.reconcile(key).await,
            Ok(()) = fault_changes.changed() => {
                if host.faults.settings().provisioning != Provisioning::Flap {
                    c.flapped.clear();
                }
                c.resync_all().await;
            }
        }
    }
}

fn keys_for(gr: &GroupResource, kind: ChangeType, obj: &Value) -> Vec<Key> {
    let ns = object::namespace(obj).to_string();
    let name = object::name(obj).to_string();
    match (gr.group.as_str(), gr.resource.as_str()) {
        (GROUP, "clusters") => vec![Key::Cluster(ns, name)],
        (GROUP, "virtualclusterpolicies") => vec![Key::Policy(name)],
        ("", "namespaces") if kind != ChangeType::Deleted => vec![Key::Namespace(name)],
        ("", "persistentvolumeclaims" | "services" | "secrets" | "configmaps") => {
            vec![Key::Quotas(ns)]
        }
        ("", "pods") | ("apps", "deployments") => {
            let mut keys = vec![Key::Quotas(ns.clone())];
            if gr.resource == "pods"
                && kind != ChangeType::Deleted
                && object::label(obj, "role") == Some("server")
                && object::label(obj, "k3k.io/clusterName").is_none()
            {
                keys.push(Key::ServerPod(ns.clone(), name.clone()));
            }
            if let Some(c) = object::label(obj, "cluster") {
                keys.push(Key::Cluster(ns, c.to_string()));
            }
            keys
        }
        ("apps", "statefulsets") if object::is_deleting(obj) => vec![Key::StatefulSet(ns, name)],
        _ => Vec::new(),
    }
}

impl Controller {
    async fn resync_all(&mut self) {
        let (all, _) = self.host.store.list(&clusters(), None);
        for c in all {
            let key = Key::Cluster(object::namespace(&c).into(), object::name(&c).into());
            self.reconcile(key).await;
        }
    }

    fn after(&self, key: Key, d: Duration) {
        let _ = self.requeue.send((key, Instant::now() + d));
    }

    async fn reconcile(&mut self, key: Key) {
        let result = match &key {
            Key::Cluster(ns, name) => self.reconcile_cluster(ns, name).await,
            Key::Namespace(ns) => policy::reconcile_namespace(&self.host, ns).map(|_| None),
            Key::Policy(name) => policy::reconcile_policy(&self.host, name).map(|_| None),
            Key::Quotas(ns) => policy::refresh_quotas(&self.host, ns).map(|_| None),
            Key::StatefulSet(ns, name) => self.server_statefulset_deleted(ns, name).map(|_| None),
            Key::ServerPod(ns, name) => self.reconcile_server_pod(ns, name),
        };
        match result {
            Ok(Some(d)) => self.after(key, d),
            Ok(None) | Err(Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(?key, error = %e, "reconcile failed; retrying");
                // K3k v1.1.0 `cluster/status.go` updateStatus: any other reconcile error makes
                // the Cluster Failed / ProvisioningFailed with the error's text, and a Warning.
                if let Key::Cluster(ns, name) = &key {
                    self.failed(ns, name, &e.to_string());
                }
                self.after(key, Duration::from_millis(500));
            }
        }
    }

    /// Marks the Cluster Failed with `msg`; a Warning event when the message is new.
    fn failed(&self, ns: &str, name: &str, msg: &str) {
        let Some(cluster) = self.host.store.get(&clusters(), ns, name) else {
            return;
        };
        if cluster.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let was = str_at(&cluster, "/status/phase") == "Failed"
            && cluster_condition_message(&cluster) == Some(msg);
        match self.set_phase(ns, name, "Failed", false, "ProvisioningFailed", msg) {
            Ok(updated) if !was => self.host.record_event(
                &updated,
                "Warning",
                "ProvisioningFailed",
                msg,
                super::CONTROLLER_COMPONENT,
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not mark the cluster failed"),
        }
    }

    fn set_status(&self, ns: &str, name: &str, f: impl Fn(&mut Value)) -> Result<Value> {
        self.host.modify(GROUP, "clusters", ns, name, Some("status"), |c| {
            if !c.get("status").is_some_and(Value::is_object) {
                c["status"] = json!({});
            }
            f(c)
        })
    }

    fn set_phase(
        &self,
        ns: &str,
        name: &str,
        phase: &str,
        ready: bool,
        reason: &str,
        message: &str,
    ) -> Result<Value> {
        let now = object::now_rfc3339();
        self.set_status(ns, name, |c| {
            let changed = str_at(c, "/status/phase") != phase
                || str_at(c, "/status/conditions/0/reason") != reason;
            c["status"]["phase"] = json!(phase);
            if changed {
                c["status"]["conditions"] = json!([{
                    "type": "Ready",
                    "status": if ready { "True" } else { "False" },
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": now,
                    "observedGeneration": c.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                }]);
            }
        })
    }

    /// Phase `Pending` with reason `ValidationFailed`, and a Warning event on the transition.
    fn pending(&self, cluster: &Value, message: &str) -> Result<Option<Duration>> {
        let (ns, name) = (object::namespace(cluster), object::name(cluster));
        let was = str_at(cluster, "/status/phase") == "Pending";
        let updated = self.set_phase(ns, name, "Pending", false, "ValidationFailed", message)?;
        if !was {
            self.host.record_event(
                &updated,
                "Warning",
                "ValidationFailed",
                message,
                super::CONTROLLER_COMPONENT,
            );
        }
        Ok(None)
    }

    async fn reconcile_cluster(&mut self, ns: &str, name: &str) -> Result<Option<Duration>> {
        let host = self.host.clone();
        let Some(cluster) = host.store.get(&clusters(), ns, name) else {
            host.vclusters.stop(ns, name);
            return Ok(None);
        };
        let uid = object::uid(&cluster).to_string();
        if object::is_deleting(&cluster) {
            if object::finalizers(&cluster).iter().any(|f| f == CLUSTER_FINALIZER) {
                self.set_phase(
                    ns,
                    name,
                    "Terminating",
                    false,
                    "Terminating",
                    "Cluster is being terminated",
                )?;
                host.vclusters.stop(ns, name);
                self.running_since.remove(&uid);
                host.modify(GROUP, "clusters", ns, name, None, |c| {
                    object::remove_finalizer(c, CLUSTER_FINALIZER)
                })?;
            }
            return Ok(None);
        }
        let phase = str_at(&cluster, "/status/phase").to_string();
        if phase.is_empty() || phase == "Unknown" {
            self.set_phase(
                ns,
                name,
                "Provisioning",
                false,
                "Provisioning",
                "Cluster is being provisioned",
            )?;
        }
        host.modify(GROUP, "clusters", ns, name, None, |c| {
            object::add_finalizer(c, CLUSTER_FINALIZER);
            object::set_label(c, "provider.cattle.io", "k3k");
        })?;
        let cluster = host
            .store
            .get(&clusters(), ns, name)
            .ok_or_else(|| Error::not_found(&clusters(), name))?;

        // Policy binding and controller-side validation.
        let namespace = host.store.get(&GroupResource::new("", "namespaces"), "", ns);
        let policy_name =
            namespace.as_ref().and_then(|n| object::label(n, POLICY_LABEL)).map(str::to_string);
        let mode = str_at(&cluster, "/spec/mode").to_string();
        let mode = if mode.is_empty() { "shared".to_string() } else { mode };
        let policy = policy_name.as_deref().and_then(|p| {
            host.store.get(&GroupResource::new(GROUP, "virtualclusterpolicies"), "", p)
        });
        let applied = policy.as_ref().map(policy::applied_policy);
        self.set_status(ns, name, |c| {
            match &policy_name {
                Some(p) => c["status"]["policyName"] = json!(p),
                None => {
                    if let Some(s) = c.get_mut("status").and_then(Value::as_object_mut) {
                        s.remove("policyName");
                    }
                }
            }
            if let Some(a) = &applied {
                c["status"]["policy"] = a.clone();
            }
        })?;
        if let Some(p) = &policy {
            let allowed =
                p.pointer("/spec/allowedMode").and_then(Value::as_str).unwrap_or("shared");
            if allowed != mode {
                return self.pending(
                    &cluster,
                    &format!("mode {mode:?} is not allowed by the policy {:?}", object::name(p)),
                );
            }
        }
        if name == "system" {
            return self.pending(&cluster, "invalid cluster name \"system\": reserved name");
        }
        let sans: Vec<String> = cluster
            .pointer("/spec/tlsSANs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let has_ingress = cluster.pointer("/spec/expose/ingress").is_some();
        let rc4 = host.config.k3k_version == super::K3kVersion::V1_2;
        if rc4 && has_ingress && !sans.iter().any(|s| s.parse::<std::net::IpAddr>().is_err()) {
            return self
                .pending(&cluster, "expose.ingress requires at least one DNS name in tlsSANs");
        }
        let faults = host.faults.settings();
        if faults.provisioning == Provisioning::Fail {
            let was = str_at(&cluster, "/status/phase") == "Failed";
            let msg = "failed to provision cluster: injected fault";
            let updated = self.set_phase(ns, name, "Failed", false, "ProvisioningFailed", msg)?;
            if !was {
                host.record_event(
                    &updated,
                    "Warning",
                    "ProvisioningFailed",
                    msg,
                    super::CONTROLLER_COMPONENT,
                );
            }
            return Ok(None);
        }

        // The pods are built from what the policy controller just put in `status.policy`.
        let cluster = host
            .store
            .get(&clusters(), ns, name)
            .ok_or_else(|| Error::not_found(&clusters(), name))?;
        if let Some(until) = self.flapped.get(&uid).filter(|u| Instant::now() < **u) {
            return Ok(Some(*until - Instant::now()));
        }
        if faults.provisioning == Provisioning::Flap
            && str_at(&cluster, "/status/phase") == "Ready"
            && !self.flapped.contains_key(&uid)
        {
            self.flapped.insert(uid.clone(), Instant::now() + Duration::from_secs(2));
            let msg = format!(
                "failed to ensure storage classes: Get \"https://{}/apis/storage.k8s.io/v1/storageclasses\": dial tcp: connect: connection refused",
                name_with_prefix(&[name, "service"])
            );
            let updated = self.set_phase(ns, name, "Failed", false, "ProvisioningFailed", &msg)?;
            host.record_event(
                &updated,
                "Warning",
                "ProvisioningFailed",
                &msg,
                super::CONTROLLER_COMPONENT,
            );
            return Ok(Some(Duration::from_secs(2)));
        }
        let layout = Layout::new(&host, &cluster, mode.clone());
        let svc_ip = layout.apply(&host, policy_name.is_some())?;

        // Status fields the controller owns.
        let host_version = host.config.host_version.clone();
        let mut all_sans = sans.clone();
        all_sans.push(svc_ip.clone());
        all_sans.push(layout.svc_name.clone());
        all_sans.push(format!("{}.{ns}", layout.svc_name));
        all_sans.sort();
        all_sans.dedup();
        let virtual_mode = mode != "shared";
        let cluster_cidr = non_empty(str_at(&cluster, "/spec/clusterCIDR"))
            .unwrap_or(if virtual_mode { "10.52.0.0/16" } else { "10.42.0.0/16" })
            .to_string();
        let service_cidr = non_empty(str_at(&cluster, "/spec/serviceCIDR"))
            .unwrap_or(if virtual_mode { "10.53.0.0/16" } else { "10.43.0.0/16" })
            .to_string();
        self.set_status(ns, name, |c| {
            if str_at(c, "/status/hostVersion").is_empty() {
                c["status"]["hostVersion"] = json!(host_version);
            }
            c["status"]["clusterCIDR"] = json!(cluster_cidr);
            c["status"]["serviceCIDR"] = json!(service_cidr);
            c["status"]["tlsSANs"] = json!(all_sans);
        })?;

        // Pods: ContainerCreating → Running after the start delay.
        let now = Instant::now();
        let mut next: Option<Duration> = None;
        let mut all_running = true;
        let (pods, _) = host.store.list(&GroupResource::new("", "pods"), Some(ns));
        let pods: Vec<Value> = pods
            .into_iter()
            .filter(|p| object::label(p, "cluster") == Some(name) && !object::is_deleting(p))
            .filter(|p| object::label(p, kubelet::CLUSTER_NAME_LABEL).is_none())
            .collect();
        for pod in &pods {
            if str_at(pod, "/status/phase") == "Running" {
                continue;
            }
            all_running = false;
            if str_at(pod, "/spec/nodeName").is_empty() {
                continue; // unschedulable: Pending until a node fits
            }
            let seen = *self.pod_seen.entry(object::uid(pod).to_string()).or_insert(now);
            let due = seen + host.config.pod_start_delay;
            if now >= due {
                self.start_pod(pod, &layout.version)?;
            } else {
                next = Some(next.map_or(due - now, |n: Duration| n.min(due - now)));
            }
        }
        let running: Vec<Value> =
            pods.iter().filter(|p| str_at(p, "/status/phase") == "Running").cloned().collect();
        let (crash_next, _) = self.crash_loop(&running)?;
        // Which server answers: a ready server pod is an endpoint of the cluster's Service.
        let (now_pods, _) = host.store.list(&GroupResource::new("", "pods"), Some(ns));
        let serving = now_pods.iter().find(|p| {
            object::label(p, "cluster") == Some(name)
                && object::label(p, "role") == Some("server")
                && object::label(p, kubelet::CLUSTER_NAME_LABEL).is_none()
                && !object::is_deleting(p)
                && str_at(p, "/status/phase") == "Running"
                && pod_ready(p)
        });
        let Some(serving) = serving.map(|p| object::uid(p).to_string()) else {
            // Every reconcile asks a server for the bootstrap data through the Service first;
            // with no ready server the connection is refused, which K3k reports as
            // Provisioning, "server not ready", and looks again in 10 s (K3k v1.1.0
            // pkg/controller/cluster/server/bootstrap/bootstrap.go requestBootstrap →
            // ErrServerNotReady; cluster/status.go updateStatus; cluster/cluster.go Reconcile).
            // So it is after Ready too: a one-server upgrade replaces the only server.
            host.vclusters.server_gone(ns, name);
            self.running_since.remove(&uid);
            let message = host.config.k3k_version.server_not_ready();
            self.set_phase(ns, name, "Provisioning", false, "Provisioning", message)?;
            let wait = [next, crash_next, Some(host.config.pod_start_delay)];
            return Ok(wait.into_iter().flatten().min());
        };
        let ephemeral = str_at(&cluster, "/spec/persistence/type") == "ephemeral";
        host.vclusters.server_back(ns, name, &serving, ephemeral && layout.servers() == 1).await;
        if !all_running || pods.is_empty() {
            self.running_since.remove(&uid);
            return Ok(next.or(Some(host.config.pod_start_delay)));
        }
        if faults.provisioning == Provisioning::Stuck {
            return Ok(Some(Duration::from_secs(1)));
        }
        let since = *self.running_since.entry(uid.clone()).or_insert(now);
        let due =
            since + host.config.ready_delay + Duration::from_millis(faults.provisioning_delay_ms);
        if now < due {
            return Ok(Some(due - now));
        }

        // Ready: bootstrap and kubeconfig secrets, the virtual cluster's API, status, event.
        layout.bootstrap(&host, &all_sans_for_cert(&cluster, &svc_ip, &layout), &serving).await?;
        // The virtual cluster's nodes: in virtual mode every server and agent pod is a k3s node
        // named after its pod's hostname (its name), an agent's with `-<node id>` appended
        // (K3k's agent config sets `with-node-id: true`; k3s pkg/agent/config/config.go
        // `ensureNodeID`: 8 random hex digits kept in the container's /etc/rancher/node/id, so
        // a new pod is a new node); in shared mode the servers run with `disable-agent` and
        // each k3k-kubelet registers as a node named after its host node (AGENT_HOSTNAME =
        // spec.nodeName, K3k v1.1.0 agent/shared.go).
        // Each k3s node reports the version of its own image (mid-upgrade they differ); a
        // shared-mode k3k-kubelet reports the cluster's (K3k v1.1.0 `agent/shared.go` config).
        let image_version = |p: &Value| {
            str_at(p, "/spec/containers/0/image")
                .rsplit_once(':')
                .map(|(_, tag)| tag.to_string())
                .unwrap_or_else(|| layout.version.clone())
        };
        let nodes: Vec<vcluster::VirtualNode> = pods
            .iter()
            .filter(|p| object::label(p, "k3k.io/clusterName").is_none())
            .filter(|p| virtual_mode || object::label(p, "mode") == Some("shared"))
            .map(|p| {
                let role = str_at(p, "/metadata/labels/role").to_string();
                if virtual_mode {
                    let hostname = pod_hostname(object::name(p));
                    let name = if role == "server" {
                        hostname
                    } else {
                        format!("{hostname}-{}", node_id(str_at(p, "/metadata/uid")))
                    };
                    vcluster::VirtualNode { name, role, version: image_version(p) }
                } else {
                    vcluster::VirtualNode {
                        name: str_at(p, "/spec/nodeName").to_string(),
                        role,
                        version: layout.version.clone(),
                    }
                }
            })
            .filter(|n| !n.name.is_empty())
            .collect();
        // The API answers from the servers; the first (the last a rolling update replaces)
        // says which version it is.
        let api_version = pods
            .iter()
            .find(|p| object::name(p) == format!("{}-0", name_with_prefix(&[name, "server"])))
            .map(image_version)
            .unwrap_or_else(|| layout.version.clone());
        host.vclusters.sync_nodes(
            ns,
            name,
            &nodes,
            &api_version,
            virtual_mode,
            host.config.node_monitor_grace,
        );
        if !virtual_mode {
            host.vclusters.start_kubelet(&host, ns, name, &layout.version);
        }
        if str_at(&layout.service_type(), "") == "LoadBalancer" {
            // What a cloud's load-balancer controller writes; the simulated host has none, so
            // the address is the Service's own loopback ClusterIP, where its ports are served.
            host.modify("", "services", ns, &layout.svc_name, Some("status"), |s| {
                let port = s.pointer("/spec/ports/0/port").cloned().unwrap_or(json!(443));
                s["status"] = json!({"loadBalancer": {"ingress": [{"ip": svc_ip, "ports": [{"port": port, "protocol": "TCP"}]}]}});
            })?;
        }
        // K3k builds a client from the kubeconfig it just wrote and calls the virtual API
        // through it (v1.1.0 `cluster.go` reconcile → `ensureStorageClasses` →
        // `newVirtualClient`, "needs to be done AFTER the kubeconfig has been generated"). With
        // `expose.ingress` that URL is the Ingress host, so the cluster is Ready only if that
        // name reaches this cluster's API through the ingress controller; any error is a
        // ProvisioningFailed (`status.go` updateStatus), retried with backoff.
        if let Some(url_host) = layout.ingress_host(&host) {
            let resolution = crate::ingress::resolve(&host, &url_host);
            if let Some(cause) = resolution.client_error(&url_host, ns, name) {
                // controller-runtime's lazy REST mapper discovers the group first.
                let msg = format!(
                    "failed to get restmapping: failed to get API group resources: unable to \
                     retrieve the complete list of server APIs: storage.k8s.io/v1: Get \
                     \"https://{url_host}/apis/storage.k8s.io/v1\": {cause}"
                );
                self.failed(ns, name, &msg);
                return Ok(Some(Duration::from_secs(1)));
            }
        }
        let was_ready = str_at(&cluster, "/status/phase") == "Ready";
        let updated = self.set_phase(
            ns,
            name,
            "Ready",
            true,
            "Provisioned",
            "Cluster successfully provisioned",
        )?;
        if !was_ready {
            host.record_event(
                &updated,
                "Normal",
                "Provisioned",
                "Cluster successfully provisioned",
                super::CONTROLLER_COMPONENT,
            );
        }
        Ok(crash_next)
    }

    /// K3k v1.1.0 pkg/controller/cluster/statefulset.go handleDeletion: a deleted server
    /// StatefulSet lets its pods go (their etcd finalizers), then itself.
    fn server_statefulset_deleted(&self, ns: &str, name: &str) -> Result<()> {
        for pod in self.server_pods_of(ns, name) {
            self.host.modify("", "pods", ns, object::name(&pod), None, |p| {
                object::remove_finalizer(p, ETCD_POD_FINALIZER)
            })?;
        }
        self.host
            .modify("apps", "statefulsets", ns, name, None, |s| {
                object::remove_finalizer(s, ETCD_POD_FINALIZER)
            })
            .map(|_| ())
    }

    /// The pods a server StatefulSet owns.
    fn server_pods_of(&self, ns: &str, sts: &str) -> Vec<Value> {
        let (pods, _) = self.host.store.list(&GroupResource::new("", "pods"), Some(ns));
        pods.into_iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|o| {
                    o.iter().any(|r| r["kind"] == "StatefulSet" && r["name"] == sts)
                })
            })
            .collect()
    }

    /// K3k's StatefulSet reconciler for one server pod (v1.1.0
    /// pkg/controller/cluster/statefulset.go Reconcile / handleServerPod): a live server pod
    /// gets the etcd finalizer; a deleted one keeps it until K3k has removed the server from
    /// the etcd member list, unless it is the StatefulSet's only pod or its Cluster is gone.
    /// (With the StatefulSet gone K3k does nothing: handleDeletion already let its pods go.)
    fn reconcile_server_pod(&mut self, ns: &str, name: &str) -> Result<Option<Duration>> {
        let host = self.host.clone();
        let Some(pod) = host.store.get(&GroupResource::new("", "pods"), ns, name) else {
            return Ok(None);
        };
        let has = object::finalizers(&pod).iter().any(|f| f == ETCD_POD_FINALIZER);
        if !object::is_deleting(&pod) {
            if !has {
                host.modify("", "pods", ns, name, None, |p| {
                    object::add_finalizer(p, ETCD_POD_FINALIZER)
                })?;
            }
            return Ok(None);
        }
        if !has {
            return Ok(None);
        }
        let owner = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().find(|r| r["kind"] == "StatefulSet"))
            .and_then(|r| r["name"].as_str())
            .map(str::to_string);
        let Some(sts_name) = owner else { return Ok(None) };
        let Some(sts) = host.store.get(&GroupResource::new("apps", "statefulsets"), ns, &sts_name)
        else {
            return Ok(None);
        };
        if object::is_deleting(&sts) {
            return Ok(None); // handleDeletion's job (Key::StatefulSet)
        }
        let cluster =
            object::label(&pod, "cluster").and_then(|c| host.store.get(&clusters(), ns, c));
        let alone = self.server_pods_of(ns, &sts_name).len() == 1;
        let uid = object::uid(&pod).to_string();
        if cluster.is_some() && !alone {
            let since = *self.leaving.entry(uid.clone()).or_insert_with(Instant::now);
            let due = since + host.config.etcd_member_removal;
            let now = Instant::now();
            if now < due {
                return Ok(Some(due - now));
            }
        }
        self.leaving.remove(&uid);
        host.modify("", "pods", ns, name, None, |p| {
            object::remove_finalizer(p, ETCD_POD_FINALIZER)
        })?;
        Ok(None)
    }

    /// The kernel and the kubelet for undersized k3s servers (see
    /// [`crate::Config::server_memory_needed`]): a running server container whose memory
    /// limit is below what k3s needs is OOMKilled (exit 137) after a while, waits out the
    /// crash-loop back-off in `CrashLoopBackOff` (not ready, a `BackOff` Warning on the pod, as
    /// kubernetes v1.35 pkg/kubelet/kuberuntime records it) and starts again with its
    /// `restartCount` up and the killed run as its previous log. Returns when to look again
    /// and whether every server of the cluster is down now.
    fn crash_loop(&mut self, pods: &[Value]) -> Result<(Option<Duration>, bool)> {
        let host = self.host.clone();
        let needed = host.config.server_memory_needed;
        let now = Instant::now();
        let mut next: Option<Duration> = None;
        let mut servers = 0;
        let mut down = 0;
        for pod in pods.iter().filter(|p| {
            object::label(p, "role") == Some("server")
                && object::label(p, "k3k.io/clusterName").is_none()
        }) {
            servers += 1;
            let limit = memory_limit(pod);
            if needed == 0 || limit.is_none_or(|l| l >= needed as f64) {
                continue;
            }
            let uid = object::uid(pod).to_string();
            let crash = self.crashes.entry(uid.clone()).or_insert(Crash {
                due: now + host.config.oom_after,
                down: false,
                kills: 0,
            });
            if now >= crash.due {
                let (ns, name) = (object::namespace(pod), object::name(pod));
                let container = str_at(pod, "/spec/containers/0/name").to_string();
                if crash.down {
                    crash.down = false;
                    crash.due = now + host.config.oom_after;
                    host.logs.restart_container(ns, name, &container);
                    let started = object::now_rfc3339();
                    host.modify("", "pods", ns, name, Some("status"), |p| {
                        set_container(p, &container, |c| {
                            c["restartCount"] = json!(c["restartCount"].as_i64().unwrap_or(0) + 1);
                            c["state"] = json!({"running": {"startedAt": started}});
                            c["ready"] = json!(true);
                            c["started"] = json!(true);
                        });
                        set_ready(p, None);
                    })?;
                } else {
                    crash.kills += 1;
                    crash.down = true;
                    let backoff = host
                        .config
                        .crash_backoff
                        .saturating_mul(1 << (crash.kills - 1).min(16))
                        .min(Duration::from_secs(300));
                    crash.due = now + backoff;
                    host.logs.kill_container(ns, name, &container);
                    let finished = object::now_rfc3339();
                    let uid_text = uid.clone();
                    let message = format!(
                        "back-off {} restarting failed container={container} pod={name}_{ns}({uid_text})",
                        go_duration(backoff)
                    );
                    let updated = host.modify("", "pods", ns, name, Some("status"), |p| {
                        set_container(p, &container, |c| {
                            let started = c.pointer("/state/running/startedAt").cloned();
                            c["lastState"] = json!({"terminated": {
                                "exitCode": 137, "reason": "OOMKilled",
                                "startedAt": started, "finishedAt": finished,
                                "containerID": c.get("containerID").cloned(),
                            }});
                            c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}});
                            c["ready"] = json!(false);
                            c["started"] = json!(false);
                        });
                        set_ready(p, Some(&container));
                    })?;
                    host.record_event(
                        &updated,
                        "Warning",
                        "BackOff",
                        &format!("Back-off restarting failed container {container} in pod {name}_{ns}({uid})"),
                        "kubelet",
                    );
                }
            }
            if crash.down {
                down += 1;
            }
            let wait = crash.due.saturating_duration_since(now);
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
        Ok((next, servers > 0 && down == servers))
    }

    fn start_pod(&self, pod: &Value, version: &str) -> Result<()> {
        let ns = object::namespace(pod);
        let name = object::name(pod);
        let now = object::now_rfc3339();
        let containers: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let role = match (object::label(pod, "role"), object::label(pod, "mode")) {
            (Some("server"), _) => Role::Server,
            (_, Some("shared")) => Role::Kubelet,
            _ => Role::Agent,
        };
        let image = pod.pointer("/spec/containers/0/image").cloned().unwrap_or(Value::Null);
        let (ip, host_ip) =
            self.host.pod_addresses(str_at(pod, "/spec/nodeName"), object::uid(pod));
        self.host.modify("", "pods", ns, name, Some("status"), |p| {
            let statuses: Vec<Value> = containers
                .iter()
                .map(|c| json!({"name": c, "ready": true, "started": true, "restartCount": 0, "image": image,
                    "imageID": "docker.io/rancher/k3s@sha256:0c3dd1d1bb9d", "containerID": format!("containerd://{}", random_suffix(12)),
                    "state": {"running": {"startedAt": now}}}))
                .collect();
            let qos = p.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort"));
            p["status"] = json!({
                "phase": "Running",
                "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                "startTime": now,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                ],
                "containerStatuses": statuses,
                "qosClass": qos,
            });
        })?;
        for c in &containers {
            self.host.logs.start(ns, name, c, role, version);
        }
        Ok(())
    }
}

/// Which of K3k's pods a pod spec is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodKind {
    Server,
    VirtualAgent,
    Kubelet,
}

/// A pod's hostname: its name, cut to 63 characters without a trailing `-` or `.` (kubernetes
/// pkg/kubelet/kubelet_pods.go `truncatePodHostnameIfNeeded`).
fn pod_hostname(pod_name: &str) -> String {
    let cut = &pod_name[..pod_name.len().min(63)];
    cut.trim_end_matches(['-', '.']).to_string()
}

/// The node id a k3s agent draws for itself (8 hex digits); here derived from its pod's uid, so
/// one pod keeps one id and a new pod gets another.
fn node_id(pod_uid: &str) -> String {
    let hex: String = pod_uid.chars().filter(char::is_ascii_hexdigit).collect();
    format!("{:0<8}", &hex[..hex.len().min(8)])
}

/// The memory limit a pod's first container runs under: the smaller of its own and the
/// pod-level one (Kubernetes 1.34 pod-level resources), in bytes; `None` if unlimited.
fn memory_limit(pod: &Value) -> Option<f64> {
    ["/spec/containers/0/resources/limits/memory", "/spec/resources/limits/memory"]
        .iter()
        .filter_map(|p| pod.pointer(p))
        .filter_map(|q| crate::quota::Quantity::from_value(q).map(|q| q.as_f64()))
        .reduce(f64::min)
}

/// Applies `f` to the status of container `name`.
fn set_container(pod: &mut Value, name: &str, f: impl Fn(&mut Value)) {
    let statuses = pod.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut);
    for status in statuses.into_iter().flatten().filter(|s| s["name"] == name) {
        f(status);
    }
}

/// The pod's `Ready` condition is true (what makes it an endpoint of a Service).
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The pod's `Ready` and `ContainersReady` conditions: true, or false for `unready`.
fn set_ready(pod: &mut Value, unready: Option<&str>) {
    let now = object::now_rfc3339();
    let conditions = pod.pointer_mut("/status/conditions").and_then(Value::as_array_mut);
    for c in conditions.into_iter().flatten() {
        if c["type"] != "Ready" && c["type"] != "ContainersReady" {
            continue;
        }
        let status = if unready.is_some() { "False" } else { "True" };
        if c["status"] != status {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        match unready {
            Some(name) => {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!("containers with unready status: [{name}]"));
            }
            None => {
                if let Some(m) = c.as_object_mut() {
                    m.remove("reason");
                    m.remove("message");
                }
            }
        }
    }
}

/// A duration as Go prints it in the kubelet's back-off message ("10s", "2m40s", "5m0s").
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() != 0 && s < 60 {
        format!("{}s", d.as_secs_f64())
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The controller that records a workload's pod events.
fn workload_component(workload: &Value) -> &'static str {
    match str_at(workload, "/kind") {
        "StatefulSet" => "statefulset-controller",
        "DaemonSet" => "daemonset-controller",
        _ => "replicaset-controller",
    }
}

/// A `pod-template-hash`: ten characters of the template's digest in the alphabet Kubernetes
/// uses for generated names (apimachinery `util/rand` SafeEncodeString), so it never spells a
/// word and changes whenever the template does.
pub(crate) fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        template.to_string().as_bytes(),
    ));
    digest.iter().take(10).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn cluster_condition_message(cluster: &Value) -> Option<&str> {
    cluster
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c.get("message"))
        .and_then(Value::as_str)
}

fn all_sans_for_cert(cluster: &Value, svc_ip: &str, layout: &Layout) -> Vec<String> {
    let mut sans: Vec<String> = cluster
        .pointer("/spec/tlsSANs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    sans.extend([
        svc_ip.to_string(),
        layout.svc_name.clone(),
        format!("{}.{}", layout.svc_name, layout.ns),
        "127.0.0.1".into(),
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default.svc".into(),
    ]);
    sans.sort();
    sans.dedup();
    sans
}

/// The host objects K3k creates for one Cluster.
struct Layout {
    ns: String,
    name: String,
    mode: String,
    version: String,
    owner: Value,
    cluster: Value,
    svc_name: String,
}

impl Layout {
    fn new(host: &Host, cluster: &Value, mode: String) -> Self {
        let version =
            non_empty(str_at(cluster, "/spec/version")).map(str::to_string).unwrap_or_else(|| {
                let hv = non_empty(str_at(cluster, "/status/hostVersion"))
                    .unwrap_or(&host.config.host_version);
                format!("{hv}-k3s1")
            });
        let name = object::name(cluster).to_string();
        Self {
            ns: object::namespace(cluster).to_string(),
            svc_name: name_with_prefix(&[&name, "service"]),
            name,
            mode,
            version,
            owner: object::controller_ref(cluster),
            cluster: cluster.clone(),
        }
    }

    fn meta(&self, name: &str, labels: Value) -> Value {
        json!({"name": name, "namespace": self.ns, "labels": labels, "ownerReferences": [self.owner]})
    }

    /// `spec.servers` (at least one).
    fn servers(&self) -> i64 {
        self.cluster.pointer("/spec/servers").and_then(Value::as_i64).unwrap_or(1).max(1)
    }

    fn service_type(&self) -> Value {
        let t = if self.cluster.pointer("/spec/expose/nodePort").is_some() {
            "NodePort"
        } else if self.cluster.pointer("/spec/expose/loadBalancer").is_some() {
            "LoadBalancer"
        } else {
            "ClusterIP"
        };
        json!(t)
    }

    fn ensure_absent(host: &Host, group: &str, plural: &str, obj: Value) -> Result<Value> {
        let rt = host.resource(group, plural)?;
        let ns = object::namespace(&obj).to_string();
        let name = object::name(&obj).to_string();
        match host.get(&rt, Some(&ns), &name) {
            Ok(existing) => Ok(existing),
            Err(_) => match host.create(&rt, Some(&ns), obj) {
                Err(Error::AlreadyExists { .. }) => host.get(&rt, Some(&ns), &name),
                other => other,
            },
        }
    }

    /// Creates or updates everything up to the pods; returns the Service's ClusterIP.
    fn apply(&self, host: &Host, has_policy: bool) -> Result<String> {
        let (ns, c) = (self.ns.as_str(), self.name.as_str());
        let server_labels = json!({"cluster": c, "role": "server"});
        // 1. token
        let token_ref = self.cluster.pointer("/spec/tokenSecretRef/name").and_then(Value::as_str);
        let token_secret = name_with_prefix(&[c, "token"]);
        let token = match token_ref {
            Some(r) => {
                let rns = non_empty(str_at(&self.cluster, "/spec/tokenSecretRef/namespace"))
                    .unwrap_or(ns);
                host.store
                    .get(&GroupResource::new("", "secrets"), rns, r)
                    .map(|s| decode_b64(str_at(&s, "/data/token")))
                    .unwrap_or_default()
            }
            None => {
                let mut bytes = [0u8; 16];
                rand::Rng::fill(&mut rand::rng(), &mut bytes);
                let s = Self::ensure_absent(
                    host,
                    "",
                    "secrets",
                    json!({
                        "metadata": self.meta(&token_secret, json!({})),
                        "type": "Opaque",
                        "data": {"token": b64(&hex::encode(bytes))},
                    }),
                )?;
                decode_b64(str_at(&s, "/data/token"))
            }
        };
        // 2. network policy (only without a bound policy)
        let netpol = name_with_prefix(&[c]);
        if has_policy {
            let rt = host.resource("networking.k8s.io", "networkpolicies")?;
            if host.get(&rt, Some(ns), &netpol).is_ok() {
                let _ = host.delete(&rt, Some(ns), &netpol);
            }
        } else {
            host.ensure(
                "networking.k8s.io",
                "networkpolicies",
                json!({
                    "metadata": self.meta(&netpol, json!({"cluster": c})),
                    "spec": policy::network_policy_spec(host, ns),
                }),
            )?;
        }
        // 3. service
        let mut ports = vec![
            json!({"name": "k3s-server-port", "port": 443, "targetPort": 6443, "protocol": "TCP"}),
            json!({"name": "k3s-etcd-port", "port": 2379, "targetPort": 2379, "protocol": "TCP"}),
        ];
        if let Some(np) = self.cluster.pointer("/spec/expose/nodePort") {
            for (i, key) in ["serverPort", "etcdPort"].iter().enumerate() {
                if let Some(p) =
                    np.get(*key).and_then(Value::as_i64).filter(|p| (30000..=32767).contains(p))
                {
                    ports[i]["nodePort"] = json!(p);
                }
            }
        }
        if let Some(lb) = self.cluster.pointer("/spec/expose/loadBalancer") {
            if let Some(p) = lb.get("serverPort").and_then(Value::as_i64).filter(|p| *p > 0) {
                ports[0]["port"] = json!(p);
            }
            if let Some(p) = lb.get("etcdPort").and_then(Value::as_i64).filter(|p| *p > 0) {
                ports[1]["port"] = json!(p);
            }
        }
        let mut svc_meta = self.meta(&self.svc_name, server_labels.clone());
        if let Some(a) = self.cluster.pointer("/spec/expose/annotations") {
            svc_meta["annotations"] = a.clone();
        }
        let svc = host.ensure(
            "",
            "services",
            json!({
                "metadata": svc_meta,
                "spec": {"type": self.service_type(), "selector": server_labels, "ports": ports},
            }),
        )?;
        let svc_ip = str_at(&svc, "/spec/clusterIP").to_string();
        // 4. server configs
        let sans: Vec<String> = self
            .cluster
            .pointer("/spec/tlsSANs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let virtual_mode = self.mode != "shared";
        for (secret, init) in [("init-server-config", true), ("server-config", false)] {
            let mut cfg = format!("cluster-init: {init}\ntoken: {token}\ntls-san:\n");
            for s in sans.iter().chain([svc_ip.clone(), self.svc_name.clone()].iter()) {
                cfg.push_str(&format!("  - {s}\n"));
            }
            if !init {
                cfg.push_str(&format!("server: https://{svc_ip}\n"));
            }
            if !virtual_mode {
                cfg.push_str("disable-agent: true\negress-selector-mode: disabled\ndisable:\n  - servicelb\n  - traefik\n  - metrics-server\n  - local-storage\n");
            }
            host.ensure(
                "",
                "secrets",
                json!({
                    "metadata": self.meta(&name_with_prefix(&[c, secret]), json!({})),
                    "type": "Opaque",
                    "data": {"config.yaml": b64(&cfg)},
                }),
            )?;
        }
        // 5. headless service
        let headless = name_with_prefix(&[c, "service", "headless"]);
        host.ensure("", "services", json!({
            "metadata": self.meta(&headless, server_labels.clone()),
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": server_labels, "ports": [
                {"name": "k3s-server-port", "port": 6443, "targetPort": 6443, "protocol": "TCP"},
                {"name": "k3s-etcd-port", "port": 2379, "targetPort": 2379, "protocol": "TCP"}]},
        }))?;
        // 6. statefulset, server pods, PVCs
        let servers = self.servers();
        let sts_name = name_with_prefix(&[c, "server"]);
        let dynamic = str_at(&self.cluster, "/spec/persistence/type") != "ephemeral";
        let size = self
            .cluster
            .pointer("/spec/persistence/storageRequestSize")
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .unwrap_or_else(|| "2G".into());
        let image = format!("rancher/k3s:{}", self.version);
        let container = name_with_prefix(&[c, "server"]);
        let revision = format!(
            "{sts_name}-{}",
            &hex::encode(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
                format!("{} {}", self.version, if servers > 1 { "ha" } else { "single" })
            )))[..10]
        );
        let mut sts_meta = self.meta(&sts_name, server_labels.clone());
        sts_meta["finalizers"] = json!([ETCD_POD_FINALIZER]);
        let mut sts_spec = json!({
            "replicas": servers,
            "serviceName": headless,
            "selector": {"matchLabels": server_labels},
            "template": {"metadata": {"labels": server_labels}, "spec": self.pod_spec(PodKind::Server, &container, &image)},
        });
        if dynamic {
            let mut pvc_spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
            if let Some(sc) = self.cluster.pointer("/spec/persistence/storageClassName") {
                pvc_spec["storageClassName"] = sc.clone();
            }
            sts_spec["volumeClaimTemplates"] =
                json!([{"metadata": {"name": "varlibrancherk3s"}, "spec": pvc_spec}]);
        }
        let sts =
            host.ensure("apps", "statefulsets", json!({"metadata": sts_meta, "spec": sts_spec}))?;
        let mut ready_servers = 0;
        let server_nodes =
            Self::eligible_nodes(host, &self.pod_spec(PodKind::Server, &container, &image));
        // K3k sets neither podManagementPolicy nor updateStrategy (v1.1.0
        // pkg/controller/cluster/server/server.go StatefulSetSpec), so the defaults hold:
        // OrderedReady makes pod i only once pods 0..i run, and RollingUpdate replaces one pod at
        // a time (kubernetes v1.36 pkg/controller/statefulset/stateful_set_control.go).
        let pod_gr = GroupResource::new("", "pods");
        let mut predecessors_running = true;
        for i in 0..servers {
            let pod_name = format!("{sts_name}-{i}");
            let existing = host.store.get(&pod_gr, ns, &pod_name);
            if existing.is_none() && !predecessors_running {
                break;
            }
            predecessors_running &= existing.as_ref().is_some_and(|p| {
                str_at(p, "/status/phase") == "Running" && !object::is_deleting(p)
            });
            // The StatefulSet controller makes the claim before the pod, and no pod without it
            // (kubernetes v1.36 pkg/controller/statefulset/stateful_pod_control.go
            // createPersistentVolumeClaims, recordClaimEvent).
            if dynamic {
                let pvc_name = format!("varlibrancherk3s-{pod_name}");
                let claim = Self::ensure_absent(
                    host,
                    "",
                    "persistentvolumeclaims",
                    json!({
                        "metadata": {"name": pvc_name, "namespace": ns, "labels": {"cluster": c, "role": "server"}},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem",
                                 "storageClassName": self.cluster.pointer("/spec/persistence/storageClassName").cloned().unwrap_or(json!("local-path"))},
                        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}},
                    }),
                );
                match claim {
                    Ok(_) => {}
                    Err(e @ (Error::Forbidden(_) | Error::Invalid { .. })) => {
                        let message = format!("create Claim {pvc_name} for Pod {pod_name} in StatefulSet {sts_name} failed error: {e}");
                        host.record_event(
                            &sts,
                            "Warning",
                            "FailedCreate",
                            &message,
                            "statefulset-controller",
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let labels = json!({"cluster": c, "role": "server", "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": pod_name, "apps.kubernetes.io/pod-index": i.to_string()});
            let pod = self.place(
                host,
                &pod_name,
                labels,
                &sts,
                PodKind::Server,
                &container,
                &image,
                &server_nodes,
                i as usize,
            )?;
            if pod.is_some_and(|p| str_at(&p, "/status/phase") == "Running") {
                ready_servers += 1;
            }
        }
        // Surplus server pods (scaled down).
        self.prune_pods(host, &format!("cluster={c},role=server"), |n| {
            n.strip_prefix(&format!("{sts_name}-"))
                .and_then(|i| i.parse::<i64>().ok())
                .is_some_and(|i| i < servers)
        })?;
        // A new template (an upgrade): once every pod runs, the pod with the largest ordinal
        // not at the update revision goes; the next pass makes it again at the new one.
        let server_pods: Vec<Value> = (0..servers)
            .filter_map(|i| host.store.get(&pod_gr, ns, &format!("{sts_name}-{i}")))
            .collect();
        let updated = server_pods
            .iter()
            .filter(|p| object::label(p, "controller-revision-hash") == Some(revision.as_str()))
            .count();
        let all_running = server_pods.len() == servers as usize
            && server_pods
                .iter()
                .all(|p| str_at(p, "/status/phase") == "Running" && !object::is_deleting(p));
        if all_running {
            if let Some(old) = server_pods
                .iter()
                .rev()
                .find(|p| object::label(p, "controller-revision-hash") != Some(revision.as_str()))
            {
                let rt = host.resource("", "pods")?;
                host.logs.stop_pod(ns, object::name(old));
                let _ = host.delete(&rt, Some(ns), object::name(old));
            }
        }
        host.modify("apps", "statefulsets", ns, &sts_name, Some("status"), |s| {
            s["status"] = json!({"replicas": server_pods.len(), "readyReplicas": ready_servers, "currentReplicas": server_pods.len() - updated,
                "availableReplicas": ready_servers, "updatedReplicas": updated, "updateRevision": revision, "observedGeneration": 1});
        })?;
        // 7. agents
        if virtual_mode {
            self.virtual_agents(host, &svc_ip, &token)?;
        } else {
            self.shared_agents(host, &svc_ip, &token)?;
        }
        // 8. ingress
        if let Some(ing) = self.cluster.pointer("/spec/expose/ingress") {
            // v1.1.0 makes every SAN a host (an IP one is refused by Ingress validation);
            // rc4 keeps DNS names only.
            let rc4 = host.config.k3k_version == super::K3kVersion::V1_2;
            let rules: Vec<Value> = sans
                .iter()
                .filter(|s| !rc4 || s.parse::<std::net::IpAddr>().is_err())
                .map(|h| {
                    json!({"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": self.svc_name, "port": {"number": 443}}}}]}})
                })
                .collect();
            let mut meta = self.meta(&name_with_prefix(&[c, "ingress"]), json!({"cluster": c}));
            if let Some(a) = ing.get("annotations") {
                meta["annotations"] = a.clone();
            }
            let mut spec = json!({"rules": rules});
            if let Some(class) = ing.get("ingressClassName") {
                spec["ingressClassName"] = class.clone();
            }
            host.ensure("networking.k8s.io", "ingresses", json!({"metadata": meta, "spec": spec}))?;
        }
        Ok(svc_ip)
    }

    /// With `expose.ingress`, the host of the cluster's Ingress's first rule (K3k's server URL).
    fn ingress_host(&self, host: &Host) -> Option<String> {
        self.cluster.pointer("/spec/expose/ingress")?;
        let ing = host.store.get(
            &GroupResource::new("networking.k8s.io", "ingresses"),
            &self.ns,
            &name_with_prefix(&[&self.name, "ingress"]),
        )?;
        ing.pointer("/spec/rules/0/host").and_then(Value::as_str).map(str::to_string)
    }

    /// A field K3k takes from `status.policy` when the bound policy sets it, else from the spec
    /// (K3k v1.1.0 `pkg/controller/cluster/server/server.go` podSpec and `agent/{virtual,shared}.go`).
    fn policy_or_spec(&self, policy_key: &str, spec_key: &str) -> Option<Value> {
        self.cluster
            .pointer(&format!("/status/policy/{policy_key}"))
            .filter(|v| !v.is_null())
            .or_else(|| self.cluster.pointer(&format!("/spec/{spec_key}")))
            .filter(|v| !v.is_null())
            .cloned()
    }

    /// The pod spec K3k v1.1.0 builds for `kind` (server: `server/server.go` podSpec; virtual
    /// agent: `agent/virtual.go` podSpec; shared-mode kubelet: `agent/shared.go` podSpec).
    ///
    /// What matters to admission is exact: virtual-mode servers and agents are
    /// `privileged: true`; shared-mode servers and kubelets carry no securityContext at all; a
    /// policy's (or the spec's) `securityContext` *replaces* the container's; `runtimeClassName`
    /// and `hostUsers` come from the policy over the spec; `serverLimit`/`workerLimit` become
    /// container limits and `serverResources`/`workerResources` pod-level resources (clearing the
    /// container's); the kubelet uses the host network only with `mirrorHostNodes`.
    fn pod_spec(&self, kind: PodKind, container: &str, image: &str) -> Value {
        let empty_dirs = ["run", "varrun", "varlibcni", "varlog", "varlibkubelet"];
        let mounts = |extra: &[(&str, &str)]| -> Vec<Value> {
            extra
                .iter()
                .map(|(n, p)| json!({"name": n, "mountPath": p}))
                .chain(
                    [
                        ("run", "/run"),
                        ("varrun", "/var/run"),
                        ("varlibcni", "/var/lib/cni"),
                        ("varlibkubelet", "/var/lib/kubelet"),
                        ("varlibrancherk3s", "/var/lib/rancher/k3s"),
                        ("varlog", "/var/log"),
                    ]
                    .iter()
                    .map(|(n, p)| json!({"name": n, "mountPath": p})),
                )
                .collect()
        };
        let secret_volume = |name: &str, secret: String| json!({"name": name, "secret": {"secretName": secret, "items": [{"key": "config.yaml", "path": "config.yaml"}]}});
        let c = self.name.as_str();
        let virtual_mode = self.mode != "shared";
        let mut spec = match kind {
            PodKind::Server => {
                let mut volumes = vec![
                    secret_volume("initconfig", name_with_prefix(&[c, "init-server-config"])),
                    secret_volume("config", name_with_prefix(&[c, "server-config"])),
                ];
                volumes.extend(empty_dirs.iter().map(|n| json!({"name": n, "emptyDir": {}})));
                if str_at(&self.cluster, "/spec/persistence/type") == "ephemeral" {
                    volumes.push(json!({"name": "varlibrancherk3s", "emptyDir": {}}));
                }
                // K3k's start script picks its setup by the server count (v1.1.0
                // pkg/controller/cluster/server/server.go setupStartCommand: CLUSTER_MODE
                // "single" for one server, "ha" above), so moving between one server and
                // several changes the pod template: every server pod is replaced.
                let command = if self.servers() > 1 {
                    "echo \"[INFO] [$(date -Iseconds)] Starting pod $POD_NAME in HA node setup\"\n/bin/k3s server --config /opt/rancher/k3s/server/config.yaml 2>&1 | tee /var/log/k3s.log"
                } else {
                    "echo \"[INFO] [$(date -Iseconds)] Starting single node setup...\"\n/bin/k3s server --config /opt/rancher/k3s/init/config.yaml 2>&1 | tee /var/log/k3s.log"
                };
                let mut container = json!({
                    "name": container, "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", command],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                    ],
                    "volumeMounts": mounts(&[("config", "/opt/rancher/k3s/server"), ("initconfig", "/opt/rancher/k3s/init")]),
                    "readinessProbe": {"tcpSocket": {"port": 6443}, "initialDelaySeconds": 60, "failureThreshold": 5, "timeoutSeconds": 10, "periodSeconds": 10, "successThreshold": 1},
                    "livenessProbe": {"exec": {"command": ["sh", "-c", "grep -q \"rejoin the cluster\" /var/log/k3s.log && exit 1 || exit 0"]},
                        "initialDelaySeconds": 10, "failureThreshold": 3, "periodSeconds": 3, "timeoutSeconds": 1, "successThreshold": 1},
                });
                // "start the pod unprivileged in shared mode" (server.go).
                if virtual_mode {
                    container["securityContext"] = json!({"privileged": true});
                }
                json!({"volumes": volumes, "containers": [container]})
            }
            PodKind::VirtualAgent => {
                let mut volumes =
                    vec![secret_volume("config", name_with_prefix(&[c, "agent", "config"]))];
                volumes.extend(
                    empty_dirs
                        .iter()
                        .chain(&["varlibrancherk3s"])
                        .map(|n| json!({"name": n, "emptyDir": {}})),
                );
                json!({"volumes": volumes, "containers": [{
                    "name": container, "image": image, "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"privileged": true},
                    "command": ["/bin/k3s"], "args": ["agent", "--config", "/opt/rancher/k3s/config.yaml"],
                    "resources": {},
                    "volumeMounts": mounts(&[("config", "/opt/rancher/k3s/")]),
                }]})
            }
            PodKind::Kubelet => {
                let mirror = self
                    .cluster
                    .pointer("/spec/mirrorHostNodes")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                json!({
                    "hostNetwork": mirror,
                    "dnsPolicy": if mirror { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
                    "serviceAccountName": container,
                    "volumes": [secret_volume("config", name_with_prefix(&[c, "agent", "config"]))],
                    "containers": [{
                        "name": container, "image": image, "imagePullPolicy": "IfNotPresent",
                        "env": [
                            {"name": "AGENT_HOSTNAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        ],
                        "volumeMounts": [{"name": "config", "mountPath": "/opt/rancher/k3k/"}],
                        "ports": [{"name": "kubelet-port", "protocol": "TCP", "containerPort": 10250}],
                    }],
                })
            }
        };
        let (limit_key, resources_key, affinity) = match kind {
            PodKind::Server => ("serverLimit", "serverResources", "serverAffinity"),
            _ => ("workerLimit", "workerResources", "agentAffinity"),
        };
        if let Some(limits) = self.cluster.pointer(&format!("/spec/{limit_key}")) {
            spec["containers"][0]["resources"] = json!({"limits": limits});
        }
        if let Some(resources) = self.cluster.pointer(&format!("/spec/{resources_key}")) {
            spec["containers"][0]["resources"] = json!({});
            spec["resources"] = resources.clone();
        }
        if let Some(sc) = self.policy_or_spec("securityContext", "securityContext") {
            spec["containers"][0]["securityContext"] = sc;
        }
        for (from_policy, field) in [
            ("runtimeClassName", "runtimeClassName"),
            ("hostUsers", "hostUsers"),
            (affinity, "affinity"),
        ] {
            if let Some(v) = self.policy_or_spec(from_policy, from_policy) {
                spec[field] = v;
            }
        }
        // The pods take the *spec's* node selector and priority class; the policy's defaults
        // only reach `status.policy` (K3k v1.1.0 server.go / virtual.go / shared.go).
        if let Some(sel) = self.cluster.pointer("/spec/nodeSelector") {
            spec["nodeSelector"] = sel.clone();
        }
        if let Some(pc) = non_empty(str_at(&self.cluster, "/spec/priorityClass")) {
            spec["priorityClassName"] = json!(pc);
        }
        spec["restartPolicy"] = json!("Always");
        if spec.get("serviceAccountName").is_none() {
            spec["serviceAccountName"] = json!("default");
        }
        spec
    }

    /// Creates one of K3k's pods through admission, as the owning workload's controller would.
    /// A pod that admission refuses (pod security, quota, limit range) is not created: the
    /// workload gets the `FailedCreate` Warning event its controller records, and `None` comes
    /// back (the controller retries on its next pass, as Kubernetes' do with back-off).
    #[allow(clippy::too_many_arguments)]
    fn pod(
        &self,
        host: &Host,
        name: &str,
        labels: Value,
        workload: &Value,
        kind: PodKind,
        container: &str,
        image: &str,
        node: Option<&str>,
    ) -> Result<Option<Value>> {
        let mut spec = self.pod_spec(kind, container, image);
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        if kind == PodKind::Server {
            spec["hostname"] = json!(name);
            spec["subdomain"] = json!(name_with_prefix(&[&self.name, "service", "headless"]));
        }
        let pod = json!({
            "metadata": {"name": name, "namespace": self.ns, "labels": labels,
                         "ownerReferences": [object::controller_ref(workload)]},
            "spec": spec,
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": container, "ready": false, "started": false, "restartCount": 0, "image": image, "imageID": "",
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]},
        });
        match Self::ensure_absent(host, "", "pods", pod) {
            Ok(p) => Ok(Some(p)),
            Err(e @ (Error::Forbidden(_) | Error::Invalid { .. })) => {
                // kubernetes v1.36 pkg/controller/statefulset/stateful_pod_control.go
                // recordPodEvent; pkg/controller/controller_utils.go CreatePods ("Error creating").
                let message = if kind == PodKind::Server {
                    format!(
                        "create Pod {name} in StatefulSet {} failed error: {e}",
                        object::name(workload)
                    )
                } else {
                    format!("Error creating: {e}")
                };
                host.record_event(
                    workload,
                    "Warning",
                    "FailedCreate",
                    &message,
                    workload_component(workload),
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes pods matching `selector` whose name `keep` rejects.
    fn prune_pods(&self, host: &Host, selector: &str, keep: impl Fn(&str) -> bool) -> Result<()> {
        let sel = crate::select::LabelSelector::parse(selector)?;
        let rt = host.resource("", "pods")?;
        let (pods, _) = host.store.list(&rt.gr(), Some(&self.ns));
        // Tenant pods synced from the virtual cluster may carry the same labels; they are
        // the k3k-kubelet's (see `kubelet`), not this workload's.
        for p in pods
            .iter()
            .filter(|p| sel.matches(p) && object::label(p, kubelet::CLUSTER_NAME_LABEL).is_none())
        {
            let n = object::name(p);
            if !keep(n) {
                host.logs.stop_pod(&self.ns, n);
                let _ = host.delete(&rt, Some(&self.ns), n);
            }
        }
        Ok(())
    }

    /// The nodes a pod with `spec` may run on: Ready, schedulable, untainted for NoSchedule /
    /// NoExecute (K3k's pods carry no tolerations), and matching `spec.nodeSelector`.
    fn eligible_nodes(host: &Host, spec: &Value) -> Vec<String> {
        let (nodes, _) = host.store.list(&GroupResource::new("", "nodes"), None);
        let selector = spec.get("nodeSelector").and_then(Value::as_object);
        let mut names: Vec<String> = nodes
            .iter()
            .filter(|n| !n.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false))
            .filter(|n| {
                !n.pointer("/spec/taints").and_then(Value::as_array).is_some_and(|ts| {
                    ts.iter().any(|t| matches!(str_at(t, "/effect"), "NoSchedule" | "NoExecute"))
                })
            })
            .filter(|n| {
                selector
                    .is_none_or(|sel| sel.iter().all(|(k, v)| object::label(n, k) == v.as_str()))
            })
            .map(|n| object::name(n).to_string())
            .collect();
        names.sort();
        names
    }

    /// A pod the scheduler cannot place stays Pending with the scheduler's condition and event
    /// (kubernetes v1.36 pkg/scheduler/schedule_one.go, framework/types.go FitError).
    fn unschedulable(host: &Host, pod: &Value, total_nodes: usize) -> Result<()> {
        if str_at(pod, "/status/conditions/0/reason") == "Unschedulable" {
            return Ok(());
        }
        let message = format!(
            "0/{total_nodes} nodes are available: {total_nodes} node(s) didn't match Pod's node affinity/selector. preemption: 0/{total_nodes} nodes are available: {total_nodes} Preemption is not helpful for scheduling."
        );
        let now = object::now_rfc3339();
        let updated = host.modify("", "pods", object::namespace(pod), object::name(pod), Some("status"), |p| {
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": now}]);
        })?;
        host.record_event(&updated, "Warning", "FailedScheduling", &message, "default-scheduler");
        Ok(())
    }

    /// Virtual-mode agents: K3k makes a Deployment `k3k-<cluster>-agent` (K3k v1.1.0
    /// `agent/virtual.go`); the Deployment controller makes a ReplicaSet
    /// `<deployment>-<pod-template-hash>` and the ReplicaSet controller its pods, so the pods'
    /// controller is the ReplicaSet and admission refusals are its `FailedCreate` events.
    fn virtual_agents(&self, host: &Host, svc_ip: &str, token: &str) -> Result<()> {
        let (ns, c) = (self.ns.as_str(), self.name.as_str());
        let agents =
            self.cluster.pointer("/spec/agents").and_then(Value::as_i64).unwrap_or(0).max(0)
                as usize;
        host.ensure("", "secrets", json!({
            "metadata": self.meta(&name_with_prefix(&[c, "agent", "config"]), json!({})),
            "type": "Opaque",
            "data": {"config.yaml": b64(&format!("server: https://{svc_ip}\ntoken: {token}\nwith-node-id: true\n"))},
        }))?;
        let labels = json!({"cluster": c, "type": "agent", "mode": "virtual"});
        let name = name_with_prefix(&[c, "agent"]);
        let image = format!("rancher/k3s:{}", self.version);
        let template_spec = self.pod_spec(PodKind::VirtualAgent, "k3k-agent", &image);
        let deploy = host.ensure(
            "apps",
            "deployments",
            json!({
                "metadata": self.meta(&name, labels.clone()),
                "spec": {"replicas": agents, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": template_spec}},
            }),
        )?;
        let hash = template_hash(&template_spec);
        let rs_name = format!("{name}-{hash}");
        let mut rs_labels = labels.clone();
        rs_labels["pod-template-hash"] = json!(hash);
        let rs = host.ensure(
            "apps",
            "replicasets",
            json!({
                "metadata": {"name": rs_name, "namespace": ns, "labels": rs_labels,
                             "ownerReferences": [object::controller_ref(&deploy)]},
                "spec": {"replicas": agents, "selector": {"matchLabels": rs_labels},
                         "template": {"metadata": {"labels": rs_labels}, "spec": template_spec}},
            }),
        )?;
        // Older ReplicaSets of the Deployment (an upgrade changed the template) scale to zero.
        let (sets, _) = host.store.list(&GroupResource::new("apps", "replicasets"), Some(ns));
        let rt = host.resource("", "pods")?;
        let (pods, _) = host.store.list(&rt.gr(), Some(ns));
        for old in sets.iter().filter(|s| {
            object::name(s) != rs_name
                && object::label(s, "cluster") == Some(c)
                && object::label(s, "type") == Some("agent")
        }) {
            for p in pods.iter().filter(|p| {
                object::label(p, "pod-template-hash") == object::label(old, "pod-template-hash")
            }) {
                host.logs.stop_pod(ns, object::name(p));
                let _ = host.delete(&rt, Some(ns), object::name(p));
            }
            host.modify("apps", "replicasets", ns, object::name(old), None, |s| {
                s["spec"]["replicas"] = json!(0)
            })?;
        }
        let mut existing: Vec<Value> = pods
            .into_iter()
            .filter(|p| {
                object::label(p, "pod-template-hash") == Some(hash.as_str())
                    && object::label(p, "cluster") == Some(c)
                    && !object::is_deleting(p)
            })
            .collect();
        let nodes = Self::eligible_nodes(host, &template_spec);
        let mut tries = 0;
        while existing.len() < agents && tries < agents {
            tries += 1;
            let pod_name = format!("{rs_name}-{}", random_suffix(5));
            if let Some(p) = self.place(
                host,
                &pod_name,
                rs_labels.clone(),
                &rs,
                PodKind::VirtualAgent,
                "k3k-agent",
                &image,
                &nodes,
                existing.len(),
            )? {
                existing.push(p);
            } else {
                break;
            }
        }
        for p in existing.iter().skip(agents) {
            host.logs.stop_pod(ns, object::name(p));
            let _ = host.delete(&rt, Some(ns), object::name(p));
        }
        let ready = existing
            .iter()
            .take(agents)
            .filter(|p| str_at(p, "/status/phase") == "Running")
            .count();
        host.modify("apps", "replicasets", ns, &rs_name, Some("status"), |s| {
            s["status"] = json!({"replicas": existing.len().min(agents), "readyReplicas": ready, "availableReplicas": ready, "fullyLabeledReplicas": existing.len().min(agents), "observedGeneration": 1});
        })?;
        host.modify("apps", "deployments", ns, &name, Some("status"), |d| {
            d["status"] = json!({"replicas": existing.len().min(agents), "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": existing.len().min(agents), "observedGeneration": 1});
        })?;
        Ok(())
    }

    /// Creates a pod on one of `nodes` (round robin by `index`), or leaves it unschedulable when
    /// none fits, as the scheduler would.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &self,
        host: &Host,
        name: &str,
        labels: Value,
        workload: &Value,
        kind: PodKind,
        container: &str,
        image: &str,
        nodes: &[String],
        index: usize,
    ) -> Result<Option<Value>> {
        let node = (!nodes.is_empty()).then(|| nodes[index % nodes.len()].clone());
        let pod =
            self.pod(host, name, labels, workload, kind, container, image, node.as_deref())?;
        if let (Some(p), None) = (&pod, &node) {
            let total = host.store.list(&GroupResource::new("", "nodes"), None).0.len();
            Self::unschedulable(host, p, total)?;
        }
        Ok(pod)
    }

    /// Shared-mode kubelets: a DaemonSet `k3k-<cluster>-kubelet`, so one pod per eligible host
    /// node (K3k v1.1.0 `agent/shared.go`; the DaemonSet has no node selector of its own).
    fn shared_agents(&self, host: &Host, svc_ip: &str, token: &str) -> Result<()> {
        let (ns, c) = (self.ns.as_str(), self.name.as_str());
        let name = name_with_prefix(&[c, "kubelet"]);
        let cfg = format!(
            "clusterName: {c}\nclusterNamespace: {ns}\nkubeletPort: 10250\nmirrorHostNodes: false\nserverIP: {svc_ip}\nserviceName: {}\ntoken: {token}\nversion: {}\n",
            self.svc_name, self.version
        );
        host.ensure(
            "",
            "secrets",
            json!({
                "metadata": self.meta(&name_with_prefix(&[c, "agent", "config"]), json!({})),
                "type": "Opaque",
                "data": {"config.yaml": b64(&cfg)},
            }),
        )?;
        let labels = json!({"cluster": c, "type": "agent", "mode": "shared"});
        host.ensure("", "serviceaccounts", json!({"metadata": self.meta(&name, json!({}))}))?;
        host.ensure("", "services", json!({
            "metadata": self.meta(&name, json!({})),
            "spec": {"selector": labels, "ports": [{"name": "k3s-kubelet-port", "port": 10250, "protocol": "TCP"}]},
        }))?;
        let dns = name_with_prefix(&[c, "kube-dns"]);
        host.ensure(
            "",
            "services",
            json!({
                "metadata": self.meta(&dns, json!({})),
                "spec": {"selector": {"k3k.io/clusterName": c, "k8s-app": "kube-dns"}, "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
            }),
        )?;
        let image = "rancher/k3k-kubelet:v1.1.0";
        let template_spec = self.pod_spec(PodKind::Kubelet, &name, image);
        let ds = host.ensure(
            "apps",
            "daemonsets",
            json!({
                "metadata": self.meta(&name, labels.clone()),
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": template_spec}},
            }),
        )?;
        let sel =
            crate::select::LabelSelector::parse(&format!("cluster={c},type=agent,mode=shared"))?;
        let (pods, _) = host.store.list(&GroupResource::new("", "pods"), Some(ns));
        let existing: Vec<Value> =
            pods.into_iter().filter(|p| sel.matches(p) && !object::is_deleting(p)).collect();
        let nodes = Self::eligible_nodes(host, &template_spec);
        for node in &nodes {
            if existing.iter().any(|p| str_at(p, "/spec/nodeName") == node) {
                continue;
            }
            let pod_name = format!("{name}-{}", random_suffix(5));
            let created = self.pod(
                host,
                &pod_name,
                labels.clone(),
                &ds,
                PodKind::Kubelet,
                &name,
                image,
                Some(node),
            )?;
            if created.is_none() {
                break;
            }
        }
        let ready = existing.iter().filter(|p| str_at(p, "/status/phase") == "Running").count();
        host.modify("apps", "daemonsets", ns, &name, Some("status"), |d| {
            d["status"] = json!({"desiredNumberScheduled": nodes.len(), "currentNumberScheduled": existing.len(),
                "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": existing.len(), "numberMisscheduled": 0, "observedGeneration": 1});
        })?;
        Ok(())
    }

    /// Bootstrap and kubeconfig secrets, and the virtual cluster's own API. Returns its endpoint.
    async fn bootstrap(&self, host: &Host, sans: &[String], server_pod: &str) -> Result<()> {
        let (ns, c) = (self.ns.as_str(), self.name.as_str());
        let uid = object::uid(&self.cluster).to_string();
        let certs = host.vclusters.certs(ns, c, &uid)?;
        let now = object::now_rfc3339();
        let entry = |pem: String| json!({"Timestamp": now, "Content": pem});
        let bootstrap = json!({
            "serverCA": entry(certs.server_ca.cert_pem()),
            "serverCAKey": entry(certs.server_ca.key_pem_sec1()?),
            "clientCA": entry(certs.client_ca.cert_pem()),
            "clientCAKey": entry(certs.client_ca.key_pem_sec1()?),
            "etcdServerCA": entry(certs.etcd_ca.cert_pem()),
            "etcdServerCAKey": entry(certs.etcd_ca.key_pem_sec1()?),
        });
        // K3k writes both secrets on every reconcile (v1.1.0 cluster.go ensureBootstrapSecret,
        // ensureKubeconfigSecret: CreateOrUpdate, a new admin certificate each time); hostsim
        // reconciles far more often, so it writes them when they no longer match the cluster's
        // CAs and address (a one-server ephemeral cluster restarted with new CAs).
        let server_ca = certs.server_ca.cert_pem();
        let ca_line = server_ca.lines().nth(1).unwrap_or_default().to_string();
        let bootstrap_name = name_with_prefix(&[c, "bootstrap"]);
        if !secret_has(host, ns, &bootstrap_name, "bootstrap", &[&ca_line]) {
            host.ensure(
                "",
                "secrets",
                json!({
                    "metadata": self.meta(&bootstrap_name, json!({})),
                    "type": "Opaque",
                    "data": {"bootstrap": b64(&bootstrap.to_string())},
                }),
            )?;
        }
        let svc = host.store.get(&GroupResource::new("", "services"), ns, &self.svc_name);
        let svc_ip =
            svc.as_ref().map(|s| str_at(s, "/spec/clusterIP").to_string()).unwrap_or_default();
        let service_addrs = svc.as_ref().map(k3s_service_addresses).unwrap_or_default();
        if host.config.virtual_cluster_api {
            host.vclusters
                .start(&host.network, ns, c, &uid, sans, &self.version, &service_addrs, server_pod)
                .await?;
        }
        // What serves `https://<ClusterIP>` (port 443): the address itself, or the kernel's
        // pick when 443 could not be bound (see `vcluster`).
        let svc_port = service_addrs
            .iter()
            .find(|a| a.port() == 443)
            .and_then(|a| host.vclusters.service_address(ns, c, *a))
            .map_or(443, |a| a.port());
        let kubeconfig_name = name_with_prefix(&[c, "kubeconfig"]);
        // v1.1.0 `pkg/controller/kubeconfig/kubeconfig.go` getURLFromService: the Service
        // address, or `https://<ingress rules[0].host>` when exposed through an Ingress.
        let exposed = self.cluster.pointer("/spec/expose/ingress").is_some();
        let url = match self.ingress_host(host) {
            Some(h) => format!("https://{h}"),
            // v1.1.0 indexes `Spec.Rules[0]` of an Ingress without rules (no SAN at all).
            None if exposed => {
                return Err(Error::Internal(
                    "panic: runtime error: index out of range [0] with length 0 [recovered]".into(),
                ))
            }
            // `url := "https://" + ip; if port != 443 { url += ":<port>" }`; K3k passes 443.
            None if svc_port == 443 => format!("https://{svc_ip}"),
            None => format!("https://{svc_ip}:{svc_port}"),
        };
        let marks = [format!("server: {url}\n"), b64(&server_ca)];
        let marks: Vec<&str> = marks.iter().map(String::as_str).collect();
        if secret_has(host, ns, &kubeconfig_name, "kubeconfig.yaml", &marks) {
            return Ok(());
        }
        let client = certs.client_ca.issue_client("system:admin", Some("system:masters"))?;
        let chain = format!("{}{}", client.cert_pem, certs.client_ca.cert_pem());
        let kubeconfig = crate::kubeconfig::render(
            "default",
            &url,
            Some(&server_ca),
            crate::kubeconfig::Credentials::ClientCert {
                cert_pem: &chain,
                key_pem: &client.key_pem_sec1()?,
            },
        );
        host.ensure(
            "",
            "secrets",
            json!({
                "metadata": self.meta(&kubeconfig_name, json!({})),
                "type": "Opaque",
                "data": {"kubeconfig.yaml": b64(&kubeconfig)},
            }),
        )?;
        Ok(())
    }
}

/// Whether the secret `name` has `key` and its decoded text contains each of `marks`.
fn secret_has(host: &Host, ns: &str, name: &str, key: &str, marks: &[&str]) -> bool {
    host.store
        .get(&GroupResource::new("", "secrets"), ns, name)
        .and_then(|s| s.pointer(&format!("/data/{key}")).and_then(Value::as_str).map(decode_b64))
        .is_some_and(|text| marks.iter().all(|m| text.contains(m)))
}

/// The Service's `<ClusterIP>:<port>`s that reach k3s's API: TCP ports whose `targetPort` is
/// k3s's 6443 (K3k v1.1.0 pkg/controller/cluster/server/service.go: `k3s-server-port`, port 443
/// or `expose.loadBalancer.serverPort`, target 6443; `k3s-etcd-port` 2379 reaches etcd, which
/// hostsim does not serve).
fn k3s_service_addresses(svc: &Value) -> Vec<std::net::SocketAddr> {
    let Ok(ip) = str_at(svc, "/spec/clusterIP").parse::<std::net::Ipv4Addr>() else {
        return Vec::new();
    };
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == "TCP")
        .filter(|p| {
            let target = p.get("targetPort").or_else(|| p.get("port"));
            target.and_then(Value::as_i64) == Some(6443)
        })
        .filter_map(|p| p.get("port").and_then(Value::as_u64))
        .filter_map(|port| u16::try_from(port).ok())
        .map(|port| std::net::SocketAddr::from((ip, port)))
        .collect()
}

fn decode_b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

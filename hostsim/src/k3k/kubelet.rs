//! K3k's shared-mode kubelet (k3k-kubelet, a virtual kubelet) for one cluster: the virtual
//! cluster's scheduler puts a tenant pod on one of its nodes (each named after a host node), and
//! the kubelet makes a host pod of it in the cluster's host namespace, through the host's
//! admission (Pod Security, LimitRange, quota), then copies the host pod's status back. A pod the
//! host refuses stays Pending in the virtual cluster with the refusal as a Warning event on it.
//!
//! The host pod is the virtual one translated as K3k v1.1.0 does it
//! (`k3k-kubelet/translate/host.go` TranslateTo / TranslateName, `k3k-kubelet/provider/provider.go`
//! createPod): the tenant's own labels plus `k3k.io/clusterName=<cluster>`, the annotations
//! `k3k.io/name` and `k3k.io/namespace`, no owner references or finalizers, the name
//! `SafeConcatName("<name>-<namespace>-<cluster>", hex("<name>+<namespace>+<cluster>"))`, the
//! cluster's node selector instead of the pod's, and a hostname. K3k clears `nodeName` and
//! prefers the kubelet's node; with nothing else pulling, the host scheduler puts it there, and
//! so does this (hostsim has no scheduler).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::safe_concat_name;
use crate::error::{Error, GroupResource};
use crate::host::Host;
use crate::logs::Role;
use crate::object;

/// K3k's label on what it syncs to the host for a virtual cluster.
pub const CLUSTER_NAME_LABEL: &str = "k3k.io/clusterName";
const NAME_ANNOTATION: &str = "k3k.io/name";
const NAMESPACE_ANNOTATION: &str = "k3k.io/namespace";

fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}

/// `TranslateName` (K3k v1.1.0 k3k-kubelet/translate/host.go).
pub fn host_name(namespace: &str, name: &str, cluster: &str) -> String {
    let names = [name, namespace, cluster];
    let prefix = names.join("-");
    let suffix = hex::encode(names.join("+"));
    safe_concat_name(&[prefix, suffix])
}

struct Kubelet {
    host: Weak<Host>,
    vhost: Arc<Host>,
    ns: String,
    cluster: String,
    version: String,
    /// When each host pod (by uid) was first seen, for the start delay.
    seen: HashMap<String, Instant>,
    /// The last refusal recorded per virtual pod (uid), so one event is not written twice.
    refused: HashMap<String, String>,
}

/// Runs the kubelet until `stop`.
pub async fn run(
    host: Weak<Host>,
    vhost: Arc<Host>,
    ns: String,
    cluster: String,
    version: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut virtual_changes = vhost.store.subscribe();
    let Some(mut host_changes) = host.upgrade().map(|h| h.store.subscribe()) else { return };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = Kubelet {
        host,
        vhost,
        ns,
        cluster,
        version,
        seen: HashMap::new(),
        refused: HashMap::new(),
    };
    loop {
        tokio::select! {
            _ = crate::tls::stopped(&mut stop) => return,
            msg = virtual_changes.recv() => match msg {
                Ok(c) if c.gr != pods() => continue,
                Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            msg = host_changes.recv() => match msg {
                Ok(c) if c.gr != pods() || object::label(&c.object, CLUSTER_NAME_LABEL) != Some(k.cluster.as_str()) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            _ = tick.tick() => {}
        }
        if !k.sync() {
            return;
        }
    }
}

impl Kubelet {
    /// One pass over every virtual pod; `false` once the host is gone.
    fn sync(&mut self) -> bool {
        let Some(host) = self.host.upgrade() else { return false };
        let (virtual_pods, _) = self.vhost.store.list(&pods(), None);
        let (host_pods, _) = host.store.list(&pods(), Some(&self.ns));
        let mut by_name: HashMap<String, Value> = host_pods
            .into_iter()
            .filter(|p| object::label(p, CLUSTER_NAME_LABEL) == Some(self.cluster.as_str()))
            .map(|p| (object::name(&p).to_string(), p))
            .collect();
        for vpod in &virtual_pods {
            let name = host_name(object::namespace(vpod), object::name(vpod), &self.cluster);
            let hpod = by_name.remove(&name);
            if let Err(e) = self.sync_pod(&host, vpod, &name, hpod) {
                tracing::debug!(pod = object::name(vpod), error = %e, "k3k-kubelet sync failed");
            }
        }
        // Host pods whose virtual pod is gone go too (the provider's DeletePod).
        for (name, hpod) in by_name {
            if !object::is_deleting(&hpod) {
                let _ = host.store.delete(&pods(), &self.ns, &name);
            }
        }
        true
    }

    fn sync_pod(
        &mut self,
        host: &Host,
        vpod: &Value,
        name: &str,
        hpod: Option<Value>,
    ) -> crate::error::Result<()> {
        let (vns, vname) = (object::namespace(vpod), object::name(vpod));
        if object::is_deleting(vpod) {
            if hpod.as_ref().is_some_and(|h| !object::is_deleting(h)) {
                host.store.delete(&pods(), &self.ns, name)?;
            }
            return Ok(());
        }
        let node = match vpod.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match self.schedule() {
                Some(n) => {
                    let bound = n.clone();
                    self.vhost.modify("", "pods", vns, vname, None, |p| {
                        p["spec"]["nodeName"] = json!(bound);
                    })?;
                    n
                }
                None => return Ok(()), // no node yet: Pending, as a real scheduler leaves it
            },
        };
        // No host pod yet, or it was deleted under a live virtual pod: (re)made. What
        // virtual-kubelet's pod controller does in the second case is not checked yet.
        let Some(hpod) = hpod else {
            return self.create_host_pod(host, vpod, name, &node);
        };
        let uid = object::uid(&hpod).to_string();
        if hpod.pointer("/status/phase").and_then(Value::as_str) == Some("Pending")
            && !object::is_deleting(&hpod)
        {
            let seen = *self.seen.entry(uid).or_insert_with(Instant::now);
            if seen.elapsed() >= host.config.pod_start_delay {
                self.start(host, &hpod)?;
            }
        }
        // The virtual pod shows the host pod's status.
        let status = host
            .store
            .get(&pods(), &self.ns, name)
            .and_then(|h| h.get("status").cloned())
            .unwrap_or_default();
        self.vhost.modify("", "pods", vns, vname, Some("status"), |p| {
            p["status"] = status.clone();
        })?;
        // The provider serves the virtual pod's logs, attach and exec (virtual-kubelet's
        // GetContainerLogs): its running containers write a log in the virtual cluster too.
        if status.get("phase").and_then(Value::as_str) == Some("Running") {
            for c in status.get("containerStatuses").and_then(Value::as_array).into_iter().flatten()
            {
                if let Some(c) = c.get("name").and_then(Value::as_str) {
                    self.vhost.logs.start(vns, vname, c, Role::Workload, &self.version);
                }
            }
        }
        Ok(())
    }

    /// The virtual scheduler: the node with the fewest pods (they are the kubelet's nodes).
    fn schedule(&self) -> Option<String> {
        let (nodes, _) = self.vhost.store.list(&GroupResource::new("", "nodes"), None);
        let (vpods, _) = self.vhost.store.list(&pods(), None);
        nodes.iter().map(|n| object::name(n).to_string()).min_by_key(|n| {
            let count = vpods
                .iter()
                .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(n))
                .count();
            (count, n.clone())
        })
    }

    fn create_host_pod(
        &mut self,
        host: &Host,
        vpod: &Value,
        name: &str,
        node: &str,
    ) -> crate::error::Result<()> {
        let (vns, vname) = (object::namespace(vpod), object::name(vpod));
        let mut pod = vpod.clone();
        let meta = object::metadata_mut(&mut pod);
        for field in
            ["ownerReferences", "finalizers", "resourceVersion", "uid", "creationTimestamp"]
        {
            meta.remove(field);
        }
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(self.ns));
        let labels = object::child_mut(meta, "labels");
        labels.insert(CLUSTER_NAME_LABEL.into(), json!(self.cluster));
        let annotations = object::child_mut(meta, "annotations");
        annotations.insert(NAME_ANNOTATION.into(), json!(vname));
        annotations.insert(NAMESPACE_ANNOTATION.into(), json!(vns));
        let cluster =
            host.store.get(&GroupResource::new(super::GROUP, "clusters"), &self.ns, &self.cluster);
        let selector = cluster
            .as_ref()
            .and_then(|c| {
                c.pointer("/status/policy/nodeSelector")
                    .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
                    .or_else(|| c.pointer("/spec/nodeSelector"))
            })
            .cloned();
        let spec = &mut pod["spec"];
        match selector {
            Some(s) => spec["nodeSelector"] = s,
            None => {
                if let Some(m) = spec.as_object_mut() {
                    m.remove("nodeSelector");
                }
            }
        }
        if spec.get("hostname").is_none() {
            spec["hostname"] = json!(safe_concat_name(&[vname]));
        }
        spec["nodeName"] = json!(node);
        let containers: Vec<Value> = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
                       "started": false, "restartCount": 0,
                       "state": {"waiting": {"reason": "ContainerCreating"}}})
            })
            .collect();
        pod["status"] = json!({"phase": "Pending", "containerStatuses": containers});
        let rt = host.resource("", "pods")?;
        match host.create(&rt, Some(&self.ns), pod) {
            Ok(_) => {
                self.refused.remove(object::uid(vpod));
                Ok(())
            }
            Err(e @ (Error::Forbidden(_) | Error::Invalid { .. })) => {
                // virtual-kubelet node/pod.go: a failed provider create is a
                // `ProviderCreateFailed` Warning on the pod, retried.
                let message = e.to_string();
                if self.refused.get(object::uid(vpod)) != Some(&message) {
                    self.refused.insert(object::uid(vpod).to_string(), message.clone());
                    self.vhost.record_event(
                        vpod,
                        "Warning",
                        "ProviderCreateFailed",
                        &message,
                        "k3k-kubelet",
                    );
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The host kubelet starts the pod's containers, unless one cannot be made: then the pod
    /// stays Pending with that container `CreateContainerConfigError` and a `Failed` Warning
    /// (kubernetes v1.35 `pkg/kubelet/kuberuntime/kuberuntime_container.go` startContainer:
    /// `Error: <err>`, reason `events.FailedToCreateContainer`). The others are not started
    /// either here; a real kubelet starts them and the phase is Pending all the same
    /// (`kubelet_pods.go` getPhase: any waiting container keeps it Pending).
    fn start(&self, host: &Host, hpod: &Value) -> crate::error::Result<()> {
        let name = object::name(hpod);
        let now = object::now_rfc3339();
        let refused: Vec<(String, String)> = hpod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let error = crate::runtime::container_config_error(hpod, c)?;
                Some((c["name"].as_str()?.to_string(), error))
            })
            .collect();
        if !refused.is_empty() {
            return self.refuse_containers(host, hpod, &refused);
        }
        let containers: Vec<String> = hpod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let node = hpod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
        let (ip, host_ip) = host.pod_addresses(node, object::uid(hpod));
        host.modify("", "pods", &self.ns, name, Some("status"), |p| {
            let images: HashMap<String, Value> = p["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| Some((c["name"].as_str()?.to_string(), c["image"].clone())))
                .collect();
            let statuses: Vec<Value> = containers
                .iter()
                .map(|c| {
                    json!({"name": c, "ready": true, "started": true, "restartCount": 0,
                           "image": images.get(c).cloned().unwrap_or(Value::Null), "imageID": "",
                           "containerID": format!("containerd://{}", crate::store::random_suffix(12)),
                           "state": {"running": {"startedAt": now}}})
                })
                .collect();
            let qos = p.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort"));
            p["status"] = json!({
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                "startTime": now, "qosClass": qos, "containerStatuses": statuses,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                ],
            });
        })?;
        for c in &containers {
            host.logs.start(&self.ns, name, c, Role::Workload, &self.version);
        }
        Ok(())
    }
}

impl Kubelet {
    fn refuse_containers(
        &self,
        host: &Host,
        hpod: &Value,
        refused: &[(String, String)],
    ) -> crate::error::Result<()> {
        let already =
            hpod.pointer("/status/containerStatuses").and_then(Value::as_array).is_some_and(|s| {
                s.iter().any(|c| {
                    c.pointer("/state/waiting/reason").and_then(Value::as_str)
                        == Some("CreateContainerConfigError")
                })
            });
        if already {
            return Ok(()); // the spec's security context is immutable: the answer stays
        }
        let now = object::now_rfc3339();
        let unready: Vec<&str> = refused.iter().map(|(c, _)| c.as_str()).collect();
        host.modify("", "pods", &self.ns, object::name(hpod), Some("status"), |p| {
            if let Some(statuses) =
                p.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut)
            {
                for s in statuses.iter_mut() {
                    if let Some((_, error)) =
                        refused.iter().find(|(c, _)| Some(c.as_str()) == s["name"].as_str())
                    {
                        s["state"] = json!({"waiting": {
                            "reason": "CreateContainerConfigError", "message": error}});
                    }
                }
            }
            p["status"]["conditions"] = json!([
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "lastTransitionTime": now,
                 "reason": "ContainersNotReady",
                 "message": format!("containers with unready status: [{}]", unready.join(" "))},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now,
                 "reason": "ContainersNotReady",
                 "message": format!("containers with unready status: [{}]", unready.join(" "))},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ]);
        })?;
        for (_, error) in refused {
            host.record_event(hpod, "Warning", "Failed", &format!("Error: {error}"), "kubelet");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_k3k_translated_names() {
        let name = host_name("default", "web", "demo");
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("web-default-demo-"), "{name}");
        assert_ne!(name, host_name("other", "web", "demo"));
        assert_eq!(name, host_name("default", "web", "demo"), "idempotent");
    }
}

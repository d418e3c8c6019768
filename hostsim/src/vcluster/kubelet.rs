//! The virtual cluster's scheduler and kubelets in virtual mode, where every server and agent
//! pod is a k3s node with a real kubelet (K3k v1.1.0 `pkg/controller/cluster/agent/virtual.go`):
//! a pod is bound to the node with the fewest pods, its containers start after
//! `pod_start_delay`, and it runs with an address from its node's pod CIDR, Ready conditions,
//! container statuses, a log, and the events a kubelet writes. In shared mode K3k's
//! k3k-kubelet does this instead (see [`crate::k3k::kubelet`]); this one stands back once
//! [`SharedKubelet::set`] says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::Digest;
use tokio::sync::{broadcast, watch};

use crate::error::{GroupResource, Result};
use crate::host::Host;
use crate::logs::Role;
use crate::object;
use crate::store::ChangeType;

fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}

/// Whether shared mode's k3k-kubelet runs this cluster's pods.
#[derive(Debug, Clone, Default)]
pub struct SharedKubelet(Arc<AtomicBool>);

impl SharedKubelet {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The sandbox ID containerd gives a pod (64 hex digits), stable for the pod's uid: what the
/// kubelet's streaming errors name the pod by.
pub fn sandbox_id(pod: &Value) -> String {
    hex::encode(sha2::Sha256::digest(format!("sandbox/{}", object::uid(pod)).as_bytes()))
}

/// Runs until `stop`. `version` is the k3s version (for nothing but log lines).
pub async fn run(
    vhost: Arc<Host>,
    shared: SharedKubelet,
    version: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = vhost.store.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let mut orphaned: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = crate::tls::stopped(&mut stop) => return,
            msg = changes.recv() => match msg {
                Ok(c) if c.gr == pods() && c.kind == ChangeType::Deleted => {
                    // A deleted pod's containers stop: followers' log streams end.
                    vhost.logs.stop_pod(object::namespace(&c.object), object::name(&c.object));
                    bound.remove(object::uid(&c.object));
                    orphaned.remove(object::uid(&c.object));
                    continue;
                }
                Ok(c) if c.gr != pods() => continue,
                Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            _ = tick.tick() => {}
        }
        if shared.is_set() {
            continue;
        }
        for pod in vhost.store.list(&pods(), None).0 {
            if let Err(e) = sync_pod(&vhost, &pod, &version, &mut bound, &mut orphaned) {
                tracing::debug!(pod = object::name(&pod), error = %e, "virtual kubelet sync failed");
            }
        }
    }
}

fn sync_pod(
    vhost: &Host,
    pod: &Value,
    version: &str,
    bound: &mut HashMap<String, Instant>,
    orphaned: &mut HashMap<String, Instant>,
) -> Result<()> {
    if object::is_deleting(pod) {
        return Ok(());
    }
    let node = object::str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        return schedule(vhost, pod, bound);
    }
    // Only a node's own kubelet starts its pods: one bound to a node that does not exist
    // stays as it is, until the pod garbage collector deletes it, at once and for good
    // (kubernetes pkg/controller/podgc/gc_controller.go `gcOrphaned`: after `quarantineTime`,
    // 40 s there, like the node grace period; hostsim uses its `node_monitor_grace` for both).
    // Its controller, if any, makes another, which the scheduler binds to a node that exists.
    let Some(node_object) = vhost.store.get(&GroupResource::new("", "nodes"), "", node) else {
        let since = *orphaned.entry(object::uid(pod).to_string()).or_insert_with(Instant::now);
        if since.elapsed() >= vhost.config.node_monitor_grace {
            let rt = vhost.resource("", "pods")?;
            let force = json!({"gracePeriodSeconds": 0});
            vhost.delete_with(&rt, Some(object::namespace(pod)), object::name(pod), &force)?;
        }
        return Ok(());
    };
    orphaned.remove(object::uid(pod));
    // A node whose kubelet is gone (unreachable) starts nothing.
    let conditions = node_object.pointer("/status/conditions").and_then(Value::as_array);
    if !conditions.into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True") {
        return Ok(());
    }
    let since = *bound.entry(object::uid(pod).to_string()).or_insert_with(Instant::now);
    let phase = object::str_at(pod, "/status/phase");
    if phase != "Running" && since.elapsed() >= vhost.config.pod_start_delay {
        start(vhost, pod, node, version)?;
    }
    Ok(())
}

/// A taint that does not keep `pod` off its node: a `PreferNoSchedule` one, or one of the pod's
/// tolerations matches it (key, or any key with `Exists` and no key; value with `Equal`;
/// effect, or any effect when the toleration names none).
fn tolerated(pod: &Value, taint: &Value) -> bool {
    let field = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    if field(taint, "effect") == "PreferNoSchedule" {
        return true;
    }
    let tolerations = pod.pointer("/spec/tolerations").and_then(Value::as_array);
    tolerations.into_iter().flatten().any(|t| {
        let (key, op, effect) = (field(t, "key"), field(t, "operator"), field(t, "effect"));
        let key_ok = if key.is_empty() { op == "Exists" } else { key == field(taint, "key") };
        let value_ok = op == "Exists" || field(t, "value") == field(taint, "value");
        key_ok && value_ok && (effect.is_empty() || effect == field(taint, "effect"))
    })
}

/// The default scheduler: among the nodes the pod may go to (not cordoned, no `NoSchedule` or
/// `NoExecute` taint it does not tolerate: the `NodeUnschedulable` and `TaintToleration`
/// filters, so never an unreachable node), the one with the fewest pods, then a binding (the
/// `pods/binding` subresource sets `spec.nodeName`) and a `Scheduled` event.
fn schedule(vhost: &Host, pod: &Value, bound: &mut HashMap<String, Instant>) -> Result<()> {
    let (nodes, _) = vhost.store.list(&GroupResource::new("", "nodes"), None);
    let (all, _) = vhost.store.list(&pods(), None);
    let fits = |n: &&Value| {
        let cordoned = n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
        let taints = n.pointer("/spec/taints").and_then(Value::as_array);
        !cordoned && taints.into_iter().flatten().all(|t| tolerated(pod, t))
    };
    let Some(node) =
        nodes.iter().filter(fits).map(|n| object::name(n).to_string()).min_by_key(|n| {
            let count = all.iter().filter(|p| object::str_at(p, "/spec/nodeName") == n).count();
            (count, n.clone())
        })
    else {
        return Ok(()); // no node yet: Pending, as a real scheduler leaves it
    };
    let (ns, name) = (object::namespace(pod), object::name(pod));
    let now = object::now_rfc3339();
    let containers = container_names(pod);
    let bound_node = node.clone();
    vhost.modify("", "pods", ns, name, None, |p| {
        p["spec"]["nodeName"] = json!(bound_node);
    })?;
    let updated = vhost.modify("", "pods", ns, name, Some("status"), |p| {
        let waiting: Vec<Value> = containers
            .iter()
            .map(|(c, image)| {
                json!({"name": c, "image": image, "imageID": "", "ready": false, "started": false,
                       "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}})
            })
            .collect();
        let qos = p.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort"));
        p["status"] = json!({
            "phase": "Pending", "qosClass": qos, "startTime": now,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady",
                 "message": format!("containers with unready status: [{}]", containers.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" "))},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady",
                 "message": format!("containers with unready status: [{}]", containers.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" "))},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": waiting,
        });
    })?;
    bound.insert(object::uid(pod).to_string(), Instant::now());
    // kubernetes v1.35 pkg/scheduler/schedule_one.go: "Successfully assigned %v/%v to %v".
    vhost.record_event(
        &updated,
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{name} to {node}"),
        "default-scheduler",
    );
    Ok(())
}

fn container_names(pod: &Value) -> Vec<(String, Value)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), c["image"].clone())))
        .collect()
}

/// `imagePullPolicy`'s default: `Always` for `:latest` or no tag, else `IfNotPresent`
/// (kubernetes v1.35 pkg/apis/core/v1/defaults.go SetDefaults_Container).
fn pulls_always(container: &Value) -> bool {
    match container.get("imagePullPolicy").and_then(Value::as_str) {
        Some(p) => p == "Always",
        None => {
            let image = container["image"].as_str().unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or("");
            !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        }
    }
}

/// The kubelet starts the pod's containers: events as `kuberuntime_container.go` and
/// `images/image_manager.go` write them (kubernetes v1.35), then the Running status.
fn start(vhost: &Host, pod: &Value, node: &str, version: &str) -> Result<()> {
    let (ns, name) = (object::namespace(pod), object::name(pod));
    let specs: Vec<Value> =
        pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    for c in &specs {
        let cname = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        if pulls_always(c) {
            vhost.record_event(
                pod,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
                "kubelet",
            );
            vhost.record_event(
                pod,
                "Normal",
                "Pulled",
                &format!("Successfully pulled image \"{image}\" in 1.024s (1.024s including waiting). Image size: 72195292 bytes."),
                "kubelet",
            );
        } else {
            vhost.record_event(
                pod,
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
                "kubelet",
            );
        }
        vhost.record_event(
            pod,
            "Normal",
            "Created",
            &format!("Created container: {cname}"),
            "kubelet",
        );
        vhost.record_event(
            pod,
            "Normal",
            "Started",
            &format!("Started container {cname}"),
            "kubelet",
        );
    }
    // Loopback addresses from the node's pod CIDR, as the host's kubelets hand out.
    let (ip, host_ip) = vhost.pod_addresses(node, object::uid(pod));
    let now = object::now_rfc3339();
    vhost.modify("", "pods", ns, name, Some("status"), |p| {
        let statuses: Vec<Value> = specs
            .iter()
            .map(|c| {
                let image = c["image"].as_str().unwrap_or("");
                let digest = hex::encode(sha2::Sha256::digest(image.as_bytes()));
                let id = hex::encode(sha2::Sha256::digest(format!("{}/{}", object::uid(p), c["name"]).as_bytes()));
                json!({"name": c["name"], "image": image, "imageID": format!("{image}@sha256:{digest}"),
                       "containerID": format!("containerd://{id}"), "ready": true, "started": true,
                       "restartCount": 0, "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let qos = p.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort"));
        let start = p.pointer("/status/startTime").cloned().unwrap_or(json!(now));
        p["status"] = json!({
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}], "startTime": start, "qosClass": qos,
            "containerStatuses": statuses,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
        });
    })?;
    for c in &specs {
        vhost.logs.start(ns, name, c["name"].as_str().unwrap_or(""), Role::Workload, version);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_matching_toleration_lets_a_pod_onto_a_tainted_node() {
        let unreachable = json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"});
        let pod = |tolerations: Value| json!({"spec": {"tolerations": tolerations}});
        assert!(!tolerated(&json!({"spec": {}}), &unreachable));
        // What DefaultTolerationSeconds adds to every pod: NoExecute only, so it is still not
        // scheduled there.
        let defaults = pod(json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                    "effect": "NoExecute", "tolerationSeconds": 300}]));
        assert!(!tolerated(&defaults, &unreachable));
        assert!(tolerated(&pod(json!([{"operator": "Exists"}])), &unreachable));
        assert!(tolerated(
            &pod(json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}])),
            &unreachable
        ));
        let dedicated = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        assert!(tolerated(&pod(json!([{"key": "dedicated", "value": "gpu"}])), &dedicated));
        assert!(!tolerated(&pod(json!([{"key": "dedicated", "value": "cpu"}])), &dedicated));
        assert!(tolerated(&json!({}), &json!({"key": "x", "effect": "PreferNoSchedule"})));
    }
}

//! The virtual cluster's kube-controller-manager, for what tenants create most: the Deployment
//! controller makes a ReplicaSet per pod template (`<deployment>-<pod-template-hash>`) and
//! scales the older ones to zero, the ReplicaSet controller makes and deletes pods to match
//! `replicas`, and both write the status `kubectl rollout status` and `kubectl get` read
//! (kubernetes v1.35 `pkg/controller/deployment/sync.go`, `pkg/controller/replicaset/
//! replica_set.go`). Pods go through the virtual API's admission like any client's; who runs
//! them is the kubelet's business (see [`super::kubelet`] and [`crate::k3k::kubelet`]).
//!
//! A rollout replaces every old pod at once (no `maxSurge` / `maxUnavailable` pacing).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::error::{GroupResource, Result};
use crate::host::Host;
use crate::object;
use crate::store::random_suffix;

fn gr(group: &str, plural: &str) -> GroupResource {
    GroupResource::new(group, plural)
}

/// Runs both controllers until `stop`.
pub async fn run(vhost: Arc<Host>, mut stop: watch::Receiver<bool>) {
    let mut changes = vhost.store.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::tls::stopped(&mut stop) => return,
            msg = changes.recv() => match msg {
                Ok(c) if !matches!((c.gr.group.as_str(), c.gr.resource.as_str()),
                    ("apps", "deployments" | "replicasets") | ("", "pods")) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
            _ = tick.tick() => {}
        }
        for d in vhost.store.list(&gr("apps", "deployments"), None).0 {
            if let Err(e) = sync_deployment(&vhost, &d) {
                tracing::debug!(deployment = object::name(&d), error = %e, "deployment sync failed");
            }
        }
        for rs in vhost.store.list(&gr("apps", "replicasets"), None).0 {
            if let Err(e) = sync_replica_set(&vhost, &rs) {
                tracing::debug!(replicaset = object::name(&rs), error = %e, "replicaset sync failed");
            }
        }
    }
}

fn replicas(obj: &Value) -> i64 {
    // `replicas` defaults to 1 (k8s.io/api apps/v1 DeploymentSpec, ReplicaSetSpec).
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).max(0)
}

fn owned_by<'a>(items: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let uid = object::uid(owner);
    items.iter().filter(|o| object::owner_uids(o).iter().any(|u| u == uid)).collect()
}

fn int_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn sync_deployment(vhost: &Host, d: &Value) -> Result<()> {
    if object::is_deleting(d) {
        return Ok(());
    }
    let (ns, name) = (object::namespace(d), object::name(d));
    let want = replicas(d);
    let template = d.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let hash = crate::k3k::controller::template_hash(&template);
    let rs_name = format!("{name}-{hash}");
    let (sets, _) = vhost.store.list(&gr("apps", "replicasets"), Some(ns));
    let owned = owned_by(&sets, d);
    let mut template = template;
    object::set_label(&mut template, "pod-template-hash", &hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    labels["pod-template-hash"] = json!(hash);
    let current = match owned.iter().find(|s| object::name(s) == rs_name) {
        Some(rs) => (*rs).clone(),
        None => {
            let rt = vhost.resource("apps", "replicasets")?;
            let rs = vhost.create(
                &rt,
                Some(ns),
                json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                                 "annotations": {"deployment.kubernetes.io/desired-replicas": want.to_string(),
                                                 "deployment.kubernetes.io/revision": (owned.len() + 1).to_string()},
                                 "ownerReferences": [object::controller_ref(d)]},
                    "spec": {"replicas": want, "selector": selector, "template": template},
                }),
            )?;
            // kubernetes v1.35 pkg/controller/deployment/sync.go scaleReplicaSet:
            // "Scaled up replica set %s to %d from %d".
            vhost.record_event(
                d,
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} to {want} from 0"),
                "deployment-controller",
            );
            rs
        }
    };
    if replicas(&current) != want {
        let from = replicas(&current);
        vhost.modify("apps", "replicasets", ns, &rs_name, None, |s| {
            s["spec"]["replicas"] = json!(want);
        })?;
        let verb = if want > from { "up" } else { "down" };
        vhost.record_event(
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled {verb} replica set {rs_name} to {want} from {from}"),
            "deployment-controller",
        );
    }
    let mut old_replicas = 0;
    for old in owned.iter().filter(|s| object::name(s) != rs_name) {
        let from = replicas(old);
        old_replicas += int_at(old, "/status/replicas");
        if from > 0 {
            vhost.modify("apps", "replicasets", ns, object::name(old), None, |s| {
                s["spec"]["replicas"] = json!(0);
            })?;
            vhost.record_event(
                d,
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled down replica set {} to 0 from {from}", object::name(old)),
                "deployment-controller",
            );
        }
    }
    let current = vhost.store.get(&gr("apps", "replicasets"), ns, &rs_name).unwrap_or(current);
    let updated = int_at(&current, "/status/replicas");
    let ready = int_at(&current, "/status/readyReplicas");
    let available = int_at(&current, "/status/availableReplicas");
    let total = updated + old_replicas;
    let generation = d.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    let now = object::now_rfc3339();
    let done = updated == want && available == want && old_replicas == 0;
    // kubernetes v1.35 pkg/controller/deployment/util/deployment_util.go: the reasons and
    // messages of the Available and Progressing conditions.
    let available_cond = if available >= want {
        json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
               "message": "Deployment has minimum availability."})
    } else {
        json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
               "message": "Deployment does not have minimum availability."})
    };
    let progressing = if done {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
               "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed.")})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
               "message": format!("ReplicaSet \"{rs_name}\" is progressing.")})
    };
    vhost.modify("apps", "deployments", ns, name, Some("status"), |d| {
        let mut conditions = Vec::new();
        for cond in [&available_cond, &progressing] {
            let old = d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == cond["type"]).cloned());
            let mut c = cond.clone();
            let same = old.as_ref().is_some_and(|o| {
                o["status"] == c["status"]
                    && o["reason"] == c["reason"]
                    && o["message"] == c["message"]
            });
            match old {
                Some(o) if same => c = o,
                Some(o) if o["status"] == c["status"] => {
                    c["lastTransitionTime"] = o["lastTransitionTime"].clone();
                    c["lastUpdateTime"] = json!(now);
                }
                _ => {
                    c["lastTransitionTime"] = json!(now);
                    c["lastUpdateTime"] = json!(now);
                }
            }
            conditions.push(c);
        }
        let mut status = json!({
            "observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
            "readyReplicas": ready, "availableReplicas": available,
            "conditions": conditions,
        });
        if total - available > 0 {
            status["unavailableReplicas"] = json!(total - available);
        }
        d["status"] = status;
    })?;
    Ok(())
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn sync_replica_set(vhost: &Host, rs: &Value) -> Result<()> {
    if object::is_deleting(rs) {
        return Ok(());
    }
    let (ns, name) = (object::namespace(rs), object::name(rs));
    let want = replicas(rs) as usize;
    let (pods, _) = vhost.store.list(&gr("", "pods"), Some(ns));
    let live: Vec<&Value> = owned_by(&pods, rs)
        .into_iter()
        .filter(|p| {
            !object::is_deleting(p)
                && !matches!(object::str_at(p, "/status/phase"), "Succeeded" | "Failed")
        })
        .collect();
    let rt = vhost.resource("", "pods")?;
    if live.len() < want {
        for _ in live.len()..want {
            let mut template = rs.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
            let pod_name = format!("{name}-{}", random_suffix(5));
            let meta = object::metadata_mut(&mut template);
            meta.insert("name".into(), json!(pod_name));
            meta.insert("namespace".into(), json!(ns));
            meta.insert("generateName".into(), json!(format!("{name}-")));
            meta.insert("ownerReferences".into(), json!([object::controller_ref(rs)]));
            template["apiVersion"] = json!("v1");
            template["kind"] = json!("Pod");
            match vhost.create(&rt, Some(ns), template) {
                // kubernetes v1.35 pkg/controller/controller_utils.go CreatePods:
                // "Created pod: %v", and FailedCreate "Error creating: %v".
                Ok(_) => vhost.record_event(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {pod_name}"),
                    "replicaset-controller",
                ),
                Err(e) => {
                    vhost.record_event(
                        rs,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {e}"),
                        "replicaset-controller",
                    );
                    break;
                }
            }
        }
    } else if live.len() > want {
        // The controller deletes the least useful pods first: not ready, then the newest.
        let mut doomed = live.clone();
        doomed.sort_by_key(|p| {
            (is_ready(p), std::cmp::Reverse(object::str_at(p, "/metadata/creationTimestamp")))
        });
        for p in doomed.into_iter().take(live.len() - want) {
            let pod_name = object::name(p).to_string();
            if vhost.delete(&rt, Some(ns), &pod_name).is_ok() {
                vhost.record_event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {pod_name}"),
                    "replicaset-controller",
                );
            }
        }
    }
    let (pods, _) = vhost.store.list(&gr("", "pods"), Some(ns));
    let live: Vec<&Value> =
        owned_by(&pods, rs).into_iter().filter(|p| !object::is_deleting(p)).collect();
    let ready = live.iter().filter(|p| is_ready(p)).count();
    let generation = rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    vhost.modify("apps", "replicasets", ns, name, Some("status"), |s| {
        s["status"] = json!({
            "replicas": live.len(), "fullyLabeledReplicas": live.len(),
            "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": generation,
        });
    })?;
    Ok(())
}

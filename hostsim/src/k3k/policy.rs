//! The emulated K3k VirtualClusterPolicy controller (K3K.md §2.3): for every namespace labelled
//! `policy.k3k.io/policy-name`, the policy's NetworkPolicy, ResourceQuota and LimitRange
//! `k3k-<policy>` (owned by the cluster-scoped VCP), the pod-security labels on the namespace,
//! `status.policy` on its Clusters, cleanup of objects of other policies, and the VCP finalizer.
//! Also keeps ResourceQuota `status.hard`/`status.used` roughly current.

use serde_json::{json, Value};

use super::{GROUP, MANAGED_BY_LABEL, POLICY_FINALIZER, POLICY_LABEL, POLICY_MANAGER};
use crate::error::{GroupResource, Result};
use crate::host::Host;
use crate::object;
use crate::quota;

fn vcps() -> GroupResource {
    GroupResource::new(GROUP, "virtualclusterpolicies")
}

/// The egress/ingress rules K3k's NetworkPolicy carries for a namespace. v1.1.0 selects every
/// pod of the namespace (`pkg/controller/policy/networkpolicy.go`, no podSelector); v1.2.0-rc4
/// only the synced workload pods (same file, "Isolate only virtual cluster workload Pods", #989).
///
/// Egress excludes the host's pod CIDRs: with the chart's default `host.clusterCIDR: ""` K3k
/// lists every Node's `spec.podCIDRs` (or `podCIDR`) (v1.1.0 networkpolicy.go
/// reconcileNetworkPolicy).
pub fn network_policy_spec(host: &Host, ns: &str) -> Value {
    let version = host.config.k3k_version;
    let (nodes, _) = host.store.list(&GroupResource::new("", "nodes"), None);
    let mut pod_cidrs: Vec<Value> = Vec::new();
    for node in &nodes {
        match node.pointer("/spec/podCIDRs").and_then(Value::as_array) {
            Some(cidrs) if !cidrs.is_empty() => pod_cidrs.extend(cidrs.iter().cloned()),
            _ => pod_cidrs.extend(node.pointer("/spec/podCIDR").cloned()),
        }
    }
    let pods = match version {
        super::K3kVersion::V1_1_0 => json!({}),
        super::K3kVersion::V1_2 => {
            json!({"matchExpressions": [{"key": "k3k.io/clusterName", "operator": "Exists"}]})
        }
    };
    json!({
        "podSelector": pods,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{}],
        "egress": [{"to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": pod_cidrs}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
        ]}],
    })
}

/// `cluster.status.policy` as the VCP controller copies it.
pub fn applied_policy(vcp: &Value) -> Value {
    let spec = vcp.get("spec").cloned().unwrap_or(json!({}));
    let mut p = json!({"name": object::name(vcp)});
    for (from, to) in [
        ("defaultPriorityClass", "priorityClass"),
        ("defaultNodeSelector", "nodeSelector"),
        ("defaultServerAffinity", "serverAffinity"),
        ("defaultAgentAffinity", "agentAffinity"),
        ("sync", "sync"),
        ("runtimeClassName", "runtimeClassName"),
        ("podSecurityContext", "podSecurityContext"),
        ("securityContext", "securityContext"),
        ("hostUsers", "hostUsers"),
    ] {
        if let Some(v) = spec.get(from) {
            p[to] = v.clone();
        }
    }
    p
}

fn managed_labels(policy: &str) -> Value {
    json!({MANAGED_BY_LABEL: POLICY_MANAGER, POLICY_LABEL: policy})
}

/// Brings one namespace in line with the policy it is bound to (or with none).
pub fn reconcile_namespace(host: &Host, ns: &str) -> Result<()> {
    let Some(namespace) = host.store.get(&GroupResource::new("", "namespaces"), "", ns) else {
        return Ok(());
    };
    if object::is_deleting(&namespace) {
        return Ok(());
    }
    let bound = object::label(&namespace, POLICY_LABEL).map(str::to_string);
    let policy = bound
        .as_deref()
        .and_then(|p| host.store.get(&vcps(), "", p))
        .filter(|p| !object::is_deleting(p));

    // Objects of other policies go.
    for (group, plural) in
        [("networking.k8s.io", "networkpolicies"), ("", "resourcequotas"), ("", "limitranges")]
    {
        let rt = host.resource(group, plural)?;
        let (items, _) = host.store.list(&rt.gr(), Some(ns));
        for item in items {
            let managed = object::label(&item, MANAGED_BY_LABEL) == Some(POLICY_MANAGER);
            let theirs = object::label(&item, POLICY_LABEL).map(str::to_string);
            let current = policy.as_ref().map(|p| object::name(p).to_string());
            if managed && theirs != current {
                let _ = host.delete(&rt, Some(ns), object::name(&item));
            }
        }
    }
    let Some(policy) = policy else {
        return Ok(());
    };
    let pname = object::name(&policy).to_string();
    let name = format!("k3k-{pname}");
    let owner = object::controller_ref(&policy);
    let meta = json!({"name": name, "namespace": ns, "labels": managed_labels(&pname), "ownerReferences": [owner]});
    let spec = policy.get("spec").cloned().unwrap_or(json!({}));

    let netpol_rt = host.resource("networking.k8s.io", "networkpolicies")?;
    if spec.get("disableNetworkPolicy").and_then(Value::as_bool) == Some(true) {
        if host.get(&netpol_rt, Some(ns), &name).is_ok() {
            let _ = host.delete(&netpol_rt, Some(ns), &name);
        }
    } else {
        host.ensure(
            "networking.k8s.io",
            "networkpolicies",
            json!({"metadata": meta, "spec": network_policy_spec(host, ns)}),
        )?;
    }
    let quota_rt = host.resource("", "resourcequotas")?;
    match spec.get("quota") {
        Some(q) => {
            host.ensure("", "resourcequotas", json!({"metadata": meta, "spec": q}))?;
            refresh_quota_status(host, ns, &name)?;
        }
        None => {
            if host.get(&quota_rt, Some(ns), &name).is_ok() {
                let _ = host.delete(&quota_rt, Some(ns), &name);
            }
        }
    }
    let limit_rt = host.resource("", "limitranges")?;
    match spec.get("limit") {
        Some(l) => {
            host.ensure("", "limitranges", json!({"metadata": meta, "spec": l}))?;
        }
        None => {
            if host.get(&limit_rt, Some(ns), &name).is_ok() {
                let _ = host.delete(&limit_rt, Some(ns), &name);
            }
        }
    }
    if let Some(level) = spec.get("podSecurityAdmissionLevel").and_then(Value::as_str) {
        let level = level.to_string();
        host.modify("", "namespaces", "", ns, None, |n| {
            object::set_label(n, "pod-security.kubernetes.io/enforce", &level);
            object::set_label(n, "pod-security.kubernetes.io/enforce-version", "latest");
            if level != "privileged" {
                object::set_label(n, "pod-security.kubernetes.io/warn", &level);
                object::set_label(n, "pod-security.kubernetes.io/warn-version", "latest");
            }
        })?;
    }
    let applied = applied_policy(&policy);
    let (clusters, _) = host.store.list(&GroupResource::new(GROUP, "clusters"), Some(ns));
    for c in clusters {
        host.modify(GROUP, "clusters", ns, object::name(&c), Some("status"), |c| {
            c["status"]["policy"] = applied.clone();
        })?;
    }
    Ok(())
}

/// A VCP changed: finalize it when deleting, otherwise reconcile every bound namespace.
pub fn reconcile_policy(host: &Host, name: &str) -> Result<()> {
    let Some(vcp) = host.store.get(&vcps(), "", name) else {
        return Ok(());
    };
    if object::is_deleting(&vcp) {
        host.modify(GROUP, "virtualclusterpolicies", "", name, Some("status"), |p| {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "Terminating",
                "message": "policy is being terminated", "lastTransitionTime": object::now_rfc3339()}]);
        })?;
        host.modify(GROUP, "virtualclusterpolicies", "", name, None, |p| {
            object::remove_finalizer(p, POLICY_FINALIZER)
        })?;
        return Ok(());
    }
    host.modify(GROUP, "virtualclusterpolicies", "", name, None, |p| {
        object::add_finalizer(p, POLICY_FINALIZER)
    })?;
    let (namespaces, _) = host.store.list(&GroupResource::new("", "namespaces"), None);
    let mut bound = 0;
    for ns in namespaces {
        if object::label(&ns, POLICY_LABEL) == Some(name) {
            bound += 1;
            reconcile_namespace(host, object::name(&ns))?;
        }
    }
    let generation = vcp.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    host.modify(GROUP, "virtualclusterpolicies", "", name, Some("status"), |p| {
        p["status"]["observedGeneration"] = generation.clone();
        p["status"]["summary"] = json!(format!("{bound} namespace(s) bound"));
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "reason": "Reconciled",
            "message": "policy applied", "lastTransitionTime": p.pointer("/status/conditions/0/lastTransitionTime").cloned().unwrap_or(json!(object::now_rfc3339()))}]);
    })?;
    Ok(())
}

/// Kept for callers of the old helper; quantities live in [`crate::quota`] now.
pub use crate::quota::parse_quantity;

/// Refreshes the status of every policy-managed ResourceQuota in `ns`.
pub fn refresh_quotas(host: &Host, ns: &str) -> Result<()> {
    let (quotas, _) = host.store.list(&GroupResource::new("", "resourcequotas"), Some(ns));
    for q in quotas {
        if object::label(&q, MANAGED_BY_LABEL) == Some(POLICY_MANAGER) {
            refresh_quota_status(host, ns, object::name(&q))?;
        }
    }
    Ok(())
}

/// What the quota controller writes (`pkg/controller/resourcequota`): `status.hard` is
/// `spec.hard` as stored, `status.used` the quota's usage over the namespace's objects (only
/// those matching its scopes) for every `spec.hard` resource an evaluator accounts for, per
/// [`crate::quota`].
pub fn refresh_quota_status(host: &Host, ns: &str, name: &str) -> Result<()> {
    let Some(q) = host.store.get(&GroupResource::new("", "resourcequotas"), ns, name) else {
        return Ok(());
    };
    let hard = q.pointer("/spec/hard").cloned().unwrap_or(json!({}));
    let used = quota::status_used(&hard, &host.quota_used(&q));
    let status = json!({"hard": quota::status_hard(&hard), "used": used});
    host.modify("", "resourcequotas", ns, name, Some("status"), |q| {
        q["status"] = status.clone();
    })?;
    Ok(())
}

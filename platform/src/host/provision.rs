//! What KRaft puts on the host for a cluster, and how it takes it away. Every call is idempotent
//! (server-side apply with one field manager; deletes that find nothing are fine), so a retry after
//! a crash never duplicates anything. Every object carries labels that lead back to its row.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    LimitRangeItem, LimitRangeSpec, Namespace, Node, ResourceQuotaSpec,
};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;

use crate::clusters::spec::ClusterSettings;
use crate::db::entities::clusters;
use crate::host::k3k::{
    Cluster, ClusterMode, ExposeConfig, IngressConfig, PersistenceConfig, PersistenceMode,
    PodSecurityLevel, VirtualClusterPolicy, VirtualClusterPolicySpec,
};
use crate::host::{is_already_terminating, is_forbidden, is_not_found, Host, HostError};

pub const FIELD_MANAGER: &str = "kraft";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kraft";
pub const CLUSTER_ID_LABEL: &str = "kraft.dev/cluster-id";
pub const OWNER_ID_LABEL: &str = "kraft.dev/owner-id";
/// The installation of KRaft that made the object (its database's id): two installations on one
/// host, or a database restored next to a newer one, never sweep each other's tenants.
pub const INSTALLATION_LABEL: &str = "kraft.dev/installation";
pub const POLICY_LABEL: &str = "policy.k3k.io/policy-name";

/// The label selector for everything KRaft manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// One policy per cluster (K3k binds a policy to namespaces, and every cluster has its own):
/// its quota fits exactly that cluster's servers and agents.
pub fn policy_name(row: &clusters::Model) -> String {
    format!("kraft-{}", row.id)
}

/// The names of the per-mode policies KRaft used to install (swept once nothing is bound).
const LEGACY_POLICIES: [&str; 2] = ["kraft-shared", "kraft-virtual"];

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect()
}

/// `n` × each quantity plus `base`, in millicores (`cpu`) or bytes, printed as Kubernetes would
/// accept it back.
fn total(base: &str, parts: &[(usize, &str)], cpu: bool) -> String {
    use crate::host::stream::quantity::{bytes, cpu_millicores};
    if cpu {
        let m: f64 = cpu_millicores(base).unwrap_or(0.0)
            + parts.iter().map(|(n, q)| *n as f64 * cpu_millicores(q).unwrap_or(0.0)).sum::<f64>();
        let m = m.round() as u64;
        if m.is_multiple_of(1000) {
            (m / 1000).to_string()
        } else {
            format!("{m}m")
        }
    } else {
        let b: u64 = bytes(base).unwrap_or(0)
            + parts.iter().map(|(n, q)| *n as u64 * bytes(q).unwrap_or(0)).sum::<u64>();
        match b {
            b if b.is_multiple_of(1 << 30) => format!("{}Gi", b >> 30),
            b if b.is_multiple_of(1 << 20) => format!("{}Mi", b >> 20),
            b => b.to_string(),
        }
    }
}

/// The policy of one cluster. The quota holds the tenant's own allowance **plus** that
/// cluster's K3k pods (its servers, and a kubelet per host node in shared mode or its agents in
/// virtual mode), so K3k's pods never starve the tenant or get refused themselves (K3k v1.1.0
/// `agent/shared.go`: a DaemonSet, one pod per node).
///
/// Pod security: shared mode runs under `baseline`, which admits K3k's unprivileged pods and
/// refuses privileged tenant pods, host namespaces and hostPath; virtual mode's pods are
/// privileged, so its namespaces are `privileged`, confined to a sandbox runtime class.
pub fn policy(
    row: &clusters::Model,
    settings: &ClusterSettings,
    host_nodes: usize,
    installation: uuid::Uuid,
) -> VirtualClusterPolicy {
    let mode = row.mode();
    let tenant = &settings.tenant;
    let servers = row.servers.max(1) as usize;
    let k3k = &settings.k3k;
    let workers = match mode {
        ClusterMode::Shared => (host_nodes, &k3k.kubelet),
        _ => (row.agents.max(0) as usize, &k3k.agent),
    };
    let cpu = total(&tenant.cpu, &[(servers, &k3k.server.cpu), (workers.0, &workers.1.cpu)], true);
    let memory = total(
        &tenant.memory,
        &[(servers, &k3k.server.memory), (workers.0, &workers.1.memory)],
        false,
    );
    let scratch = total(
        &tenant.ephemeral_storage,
        &[(servers, &k3k.server.ephemeral_storage), (workers.0, &workers.1.ephemeral_storage)],
        false,
    );
    let pods = (tenant.pods.parse::<usize>().unwrap_or(50) + servers + workers.0).to_string();
    let quota = ResourceQuotaSpec {
        hard: Some(quantities(&[
            ("requests.cpu", &cpu),
            ("limits.cpu", &cpu),
            ("requests.memory", &memory),
            ("limits.memory", &memory),
            ("requests.storage", &tenant.storage),
            ("requests.ephemeral-storage", &scratch),
            ("limits.ephemeral-storage", &scratch),
            ("persistentvolumeclaims", "10"),
            ("pods", &pods),
            ("services", "20"),
            ("services.nodeports", "0"),
            ("services.loadbalancers", "0"),
            ("secrets", "100"),
            ("configmaps", "100"),
        ])),
        ..Default::default()
    };
    let limit = LimitRangeSpec {
        limits: vec![LimitRangeItem {
            type_: "Container".into(),
            // Ephemeral storage is not in quota's must-specify set (kubernetes v1.35
            // pkg/quota/v1/evaluator/core/pods.go validationSet), so without a default a
            // container stating none would use the node's disk unaccounted.
            default: Some(quantities(&[
                ("cpu", "500m"),
                ("memory", "512Mi"),
                ("ephemeral-storage", "1Gi"),
            ])),
            default_request: Some(quantities(&[
                ("cpu", "100m"),
                ("memory", "128Mi"),
                ("ephemeral-storage", "256Mi"),
            ])),
            max: Some(quantities(&[
                ("cpu", &tenant.cpu),
                ("memory", &tenant.memory),
                ("ephemeral-storage", &tenant.ephemeral_storage),
            ])),
            ..Default::default()
        }],
    };
    let isolation = settings.virtual_isolation.as_ref().filter(|_| mode == ClusterMode::Virtual);
    let level = pod_security_level(mode, settings);
    let mut policy = VirtualClusterPolicy::new(
        &policy_name(row),
        VirtualClusterPolicySpec {
            allowed_mode: Some(mode),
            quota: Some(quota),
            limit: Some(limit),
            // KRaft keeps the namespace's network policies itself (see `egress`): K3k's would
            // allow what KRaft's must deny.
            disable_network_policy: Some(true),
            pod_security_admission_level: Some(level),
            runtime_class_name: isolation.map(|i| i.runtime_class.clone()),
            default_node_selector: isolation.map(|i| i.node_selector.clone()),
        },
    );
    policy.metadata.labels = serde_json::from_value(labels(row, installation)).ok();
    policy
}

/// The Pod Security level of a mode's namespaces (see [`ClusterSettings::check`]).
pub fn pod_security_level(mode: ClusterMode, settings: &ClusterSettings) -> PodSecurityLevel {
    match mode {
        ClusterMode::Shared => match settings.tenant.pod_security.as_str() {
            "restricted" => PodSecurityLevel::Restricted,
            _ => PodSecurityLevel::Baseline,
        },
        _ => PodSecurityLevel::Privileged,
    }
}

/// The namespace of a row, bound to its mode's policy and carrying that policy's Pod Security
/// labels from its first write, exactly as K3k's policy controller sets them (K3k v1.1.0
/// `pkg/controller/policy/namespace.go`): nothing can be admitted into it before the policy
/// controller gets to it, whatever order the host runs things in.
pub fn namespace_object(
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> serde_json::Value {
    let mut ns_labels = labels(row, installation);
    ns_labels[POLICY_LABEL] = json!(policy_name(row));
    let level = pod_security_level(row.mode(), settings);
    let level = serde_json::to_value(level).unwrap_or(json!("baseline"));
    ns_labels["pod-security.kubernetes.io/enforce"] = level.clone();
    ns_labels["pod-security.kubernetes.io/enforce-version"] = json!("latest");
    if level != json!("privileged") {
        ns_labels["pod-security.kubernetes.io/warn"] = level;
        ns_labels["pod-security.kubernetes.io/warn-version"] = json!("latest");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": row.host_namespace, "labels": ns_labels},
    })
}

/// Host nodes a pod without tolerations may be scheduled on: schedulable and without a
/// NoSchedule or NoExecute taint. Shared mode's kubelet DaemonSet puts one pod on each.
pub async fn schedulable_nodes(host: &Host) -> Result<usize, HostError> {
    let nodes: Api<Node> = Api::all(host.client());
    let nodes = nodes.list(&ListParams::default()).await?.items;
    Ok(nodes
        .iter()
        .filter(|n| {
            let spec = n.spec.as_ref();
            !spec.and_then(|s| s.unschedulable).unwrap_or(false)
                && !spec.and_then(|s| s.taints.as_ref()).is_some_and(|ts| {
                    ts.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                })
        })
        .count())
}

/// Host nodes shared mode's kubelet DaemonSet would use, when any mode needs the count.
pub async fn kubelet_nodes(host: &Host, settings: &ClusterSettings) -> Result<usize, HostError> {
    if settings.modes.contains(&ClusterMode::Shared) {
        schedulable_nodes(host).await
    } else {
        Ok(0)
    }
}

/// Installs or updates a cluster's policy. Skipped when `current` (the policy as listed) already
/// has the wanted spec, so a reconcile pass costs one list, not a write per cluster.
pub async fn ensure_policy(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    host_nodes: usize,
    installation: uuid::Uuid,
    current: Option<&VirtualClusterPolicy>,
) -> Result<bool, HostError> {
    let mut policy = policy(row, settings, host_nodes, installation);
    // What KRaft sets is there as it wants it (the server may add defaults of its own).
    let wanted = serde_json::to_value(&policy.spec).unwrap_or_default();
    let same = |c: &VirtualClusterPolicy| {
        let have = serde_json::to_value(&c.spec).unwrap_or_default();
        let fields = wanted.as_object().into_iter().flatten();
        fields.filter(|(_, v)| !v.is_null()).all(|(k, v)| have.get(k) == Some(v))
            && c.labels().get(CLUSTER_ID_LABEL) == Some(&row.id.to_string())
    };
    if current.is_some_and(same) {
        return Ok(false);
    }
    policy.metadata.managed_fields = None;
    let body = serde_json::to_value(&policy).map_err(|e| HostError::Invalid(e.to_string()))?;
    let api: Api<VirtualClusterPolicy> = Api::all(host.client());
    api.patch(&policy_name(row), &apply(), &Patch::Apply(body)).await?;
    Ok(true)
}

/// The policies KRaft manages on the host.
pub async fn policies(host: &Host) -> Result<Vec<VirtualClusterPolicy>, HostError> {
    let api: Api<VirtualClusterPolicy> = Api::all(host.client());
    Ok(api.list(&ListParams::default().labels(&managed_selector())).await?.items)
}

/// Whether a managed policy is left over: a cluster policy of this installation whose cluster has
/// no row (or whose namespace is gone while its row is being deleted), or one of the old
/// per-mode policies once no namespace is bound to it.
pub fn policy_is_orphan(
    policy: &VirtualClusterPolicy,
    installation: uuid::Uuid,
    live_ids: &HashSet<String>,
    bound: &HashSet<String>,
) -> bool {
    let name = policy.name_any();
    if bound.contains(&name) || policy.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let labels = policy.labels();
    match labels.get(CLUSTER_ID_LABEL) {
        Some(id) => {
            labels.get(INSTALLATION_LABEL) == Some(&installation.to_string())
                && !live_ids.contains(id)
        }
        None => LEGACY_POLICIES.contains(&name.as_str()),
    }
}

/// Deletes a policy; `false` if it was already gone.
pub async fn delete_policy(host: &Host, name: &str) -> Result<bool, HostError> {
    let api: Api<VirtualClusterPolicy> = Api::all(host.client());
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The labels every object of a row carries (they lead back to it).
pub(crate) fn labels(row: &clusters::Model, installation: uuid::Uuid) -> serde_json::Value {
    let mut labels = json!({
        MANAGED_BY_LABEL: MANAGED_BY,
        CLUSTER_ID_LABEL: row.id.to_string(),
        INSTALLATION_LABEL: installation.to_string(),
    });
    if let Some(owner) = row.owner_id {
        labels[OWNER_ID_LABEL] = json!(owner.to_string());
    }
    labels
}

/// The `Cluster` object for a row.
pub fn cluster_object(
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> Result<serde_json::Value, HostError> {
    let mut sans = row.tls_sans();
    if !sans.contains(&row.hostname) {
        sans.insert(0, row.hostname.clone());
    }
    let persistence = if row.persistence() == PersistenceMode::Ephemeral {
        PersistenceConfig { mode: Some(PersistenceMode::Ephemeral), ..Default::default() }
    } else {
        PersistenceConfig {
            mode: Some(PersistenceMode::Dynamic),
            storage_request_size: Some(format!("{}Gi", row.storage_gi)),
            ..Default::default()
        }
    };
    // Exposed through an ingress with TLS passthrough on the platform hostname: NodePort and
    // LoadBalancer services are forbidden by the tenant quota.
    let expose = settings.ingress_class.as_ref().map(|class| ExposeConfig {
        ingress: Some(IngressConfig {
            ingress_class_name: Some(class.clone()),
            annotations: Some(BTreeMap::from([
                ("nginx.ingress.kubernetes.io/ssl-passthrough".to_owned(), "true".to_owned()),
                ("nginx.ingress.kubernetes.io/backend-protocol".to_owned(), "HTTPS".to_owned()),
            ])),
        }),
        ..Default::default()
    });
    let isolation =
        settings.virtual_isolation.as_ref().filter(|_| row.mode() == ClusterMode::Virtual);
    let limits = |r: &crate::clusters::Resources| {
        BTreeMap::from([
            ("cpu".to_owned(), r.cpu.clone()),
            ("memory".to_owned(), r.memory.clone()),
            ("ephemeral-storage".to_owned(), r.ephemeral_storage.clone()),
        ])
    };
    let spec = crate::host::k3k::ClusterSpec {
        mode: Some(row.mode()),
        servers: Some(row.servers),
        agents: Some(row.agents),
        version: Some(row.version.clone()),
        persistence: Some(persistence),
        expose,
        tls_sans: Some(sans),
        server_limit: Some(limits(&settings.k3k.server)),
        worker_limit: Some(limits(match row.mode() {
            ClusterMode::Shared => &settings.k3k.kubelet,
            _ => &settings.k3k.agent,
        })),
        // Set on the Cluster too: K3k creates pods from the spec before (and regardless of
        // whether) the policy controller has copied the policy into `status.policy`.
        node_selector: isolation.map(|i| i.node_selector.clone()),
        runtime_class_name: isolation.map(|i| i.runtime_class.clone()),
    };
    Ok(json!({
        "apiVersion": "k3k.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": row.name, "namespace": row.host_namespace, "labels": labels(row, installation)},
        "spec": serde_json::to_value(spec).map_err(|e| HostError::Invalid(e.to_string()))?,
    }))
}

/// Creates (or confirms) the cluster's policy, then its namespace bound to it, KRaft's own rights
/// in it and its network policies, then the `Cluster`: nothing lands in the namespace before its quota, pod security
/// and egress rules apply.
pub async fn ensure(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> Result<(), HostError> {
    let nodes = kubelet_nodes(host, settings).await?;
    ensure_policy(host, row, settings, nodes, installation, None).await?;
    bind_namespace(host, row, settings, installation).await?;
    bind_tenant_role(host, row, settings, installation, None).await?;
    crate::host::egress::ensure(host, row, settings, installation, None).await?;
    let clusters: Api<Cluster> = Api::namespaced(host.client(), &row.host_namespace);
    clusters
        .patch(&row.name, &apply(), &Patch::Apply(cluster_object(row, settings, installation)?))
        .await?;
    Ok(())
}

/// Applies the row's namespace (its labels bind it to its own policy).
pub async fn bind_namespace(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> Result<(), HostError> {
    let namespace = namespace_object(row, settings, installation);
    let namespaces: Api<Namespace> = Api::all(host.client());
    namespaces.patch(&row.host_namespace, &apply(), &Patch::Apply(namespace)).await?;
    Ok(())
}

/// The RoleBinding in every cluster namespace that gives KRaft the tenant ClusterRole there.
pub const TENANT_BINDING: &str = "kraft-tenant";

/// The tenant RoleBinding of a row's namespace: `role` for `subject` (KRaft itself).
pub fn tenant_binding(
    row: &clusters::Model,
    role: &str,
    subject: &crate::host::Subject,
    installation: uuid::Uuid,
) -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": TENANT_BINDING, "namespace": row.host_namespace, "labels": labels(row, installation)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    })
}

/// Binds KRaft to the tenant ClusterRole in the row's namespace, when the operator named one
/// (see [`ClusterSettings::tenant_role`]). Skipped when `current` (the binding as listed) is
/// already as wanted. The API server lets KRaft make it only because KRaft may `bind` that one
/// role (RBAC escalation check); `true` if it wrote.
pub async fn bind_tenant_role(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
    current: Option<&RoleBinding>,
) -> Result<bool, HostError> {
    let Some(role) = settings.tenant_role.as_deref() else { return Ok(false) };
    let subject = host.identity().await?;
    let same = |b: &RoleBinding| {
        b.role_ref.kind == "ClusterRole"
            && b.role_ref.name == role
            && b.subjects.as_deref() == Some(std::slice::from_ref(&subject))
    };
    if current.is_some_and(same) {
        return Ok(false);
    }
    let api: Api<RoleBinding> = Api::namespaced(host.client(), &row.host_namespace);
    let binding = tenant_binding(row, role, &subject, installation);
    match api.patch(TENANT_BINDING, &apply(), &Patch::Apply(binding)).await {
        Ok(_) => Ok(true),
        Err(e) if crate::host::rights::note_binding(&e, role) => Err(HostError::Api(e)),
        Err(e) => Err(e.into()),
    }
}

/// The tenant RoleBindings KRaft made (one list for a reconciler pass).
pub async fn tenant_bindings(host: &Host) -> Result<Vec<RoleBinding>, HostError> {
    let api: Api<RoleBinding> = Api::all(host.client());
    Ok(api.list(&ListParams::default().labels(&managed_selector())).await?.items)
}

/// Asks the host to remove the cluster and its namespace, then its policy; `true` once the
/// namespace and the policy are gone.
///
/// The `Cluster` is deleted only while its namespace stands: once the namespace is terminating,
/// the namespace controller is deleting everything in it, KRaft's own `kraft-tenant` RoleBinding
/// first among equals, so KRaft may no longer touch the `Cluster` (a 403, not a 404) and has no
/// need to.
pub async fn remove(host: &Host, row: &clusters::Model) -> Result<bool, HostError> {
    let (namespace, cluster) = (row.host_namespace.as_str(), row.name.as_str());
    let namespaces: Api<Namespace> = Api::all(host.client());
    match namespaces.get_opt(namespace).await? {
        None => {
            delete_policy(host, &policy_name(row)).await?;
            return Ok(true);
        }
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => return Ok(false),
        Some(_) => {}
    }
    let clusters: Api<Cluster> = Api::namespaced(host.client(), namespace);
    match clusters.delete(cluster, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        // No right in this namespace (a namespace from before KRaft bound itself in each one):
        // the namespace's deletion takes the `Cluster` with it.
        Err(e) if is_forbidden(&e) => crate::host::rights::note(&e),
        Err(e) => return Err(e.into()),
    }
    match namespaces.delete(namespace, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        // Still Terminating from an earlier pass: its pods are stopping.
        Err(e) if is_already_terminating(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    if namespaces.get_opt(namespace).await?.is_some() {
        return Ok(false);
    }
    delete_policy(host, &policy_name(row)).await?;
    Ok(true)
}

/// Everything on the host that KRaft manages: namespaces and `Cluster` objects.
pub async fn inventory(host: &Host) -> Result<(Vec<Namespace>, Vec<Cluster>), HostError> {
    let selector = ListParams::default().labels(&managed_selector());
    let namespaces: Api<Namespace> = Api::all(host.client());
    let namespaces = namespaces.list(&selector).await?.items;
    let clusters: Api<Cluster> = Api::all(host.client());
    let clusters = clusters.list(&selector).await?.items;
    Ok((namespaces, clusters))
}

/// Deletes a namespace (its objects go with it); `false` if it was already gone.
pub async fn delete_namespace(host: &Host, name: &str) -> Result<bool, HostError> {
    let namespaces: Api<Namespace> = Api::all(host.client());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if is_already_terminating(&e) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Something happened to a managed `Cluster` (or the watch was interrupted, with why).
/// Changes to this installation's `Cluster`s as they happen: `Some` with a cluster that was
/// created or changed while watching, `None` for anything a look at one object cannot settle
/// (a deletion, the watch's first list after a start or a lost watch).
pub fn watch_clusters(
    host: &Host,
) -> futures::stream::BoxStream<'static, Result<Option<Cluster>, String>> {
    use futures::StreamExt;
    let api: Api<Cluster> = Api::all(host.client());
    let config = watcher::Config::default().labels(&managed_selector());
    watcher(api, config)
        .default_backoff()
        .map(|event| {
            event
                .map(|event| match event {
                    watcher::Event::Apply(cluster) => Some(cluster),
                    watcher::Event::Delete(_)
                    | watcher::Event::Init
                    | watcher::Event::InitApply(_)
                    | watcher::Event::InitDone => None,
                })
                .map_err(|e| {
                    match &e {
                        watcher::Error::InitialListFailed(e)
                        | watcher::Error::WatchStartFailed(e)
                        | watcher::Error::WatchFailed(e) => crate::host::rights::note(e),
                        watcher::Error::WatchError(status) => {
                            crate::host::rights::note_status(status.code, &status.message)
                        }
                        watcher::Error::NoResourceVersion => {}
                    }
                    e.to_string()
                })
        })
        .boxed()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clusters::VirtualIsolation;

    pub(crate) fn row(mode: &str) -> clusters::Model {
        let now = chrono::Utc::now();
        clusters::Model {
            id: uuid::Uuid::nil(),
            owner_id: None,
            name: "demo".into(),
            host_namespace: "kraft-demo-00000000".into(),
            hostname: "demo-ada.kraft.localhost".into(),
            mode: mode.into(),
            servers: 1,
            agents: 1,
            version: "v1.36.2-k3s1".into(),
            tls_sans: "[]".into(),
            persistence: "dynamic".into(),
            storage_gi: 2,
            phase: "Provisioning".into(),
            status_message: None,
            conditions: None,
            endpoint: None,
            host_version: None,
            created_at: now,
            updated_at: now,
            ready_at: None,
            deleting_at: None,
            last_api_request_at: None,
            workshop_id: None,
            expires_at: None,
            pooled: false,
        }
    }

    fn hard(policy: &VirtualClusterPolicy, key: &str) -> String {
        policy.spec.quota.as_ref().and_then(|q| q.hard.as_ref()).map(|h| h[key].0.clone()).unwrap()
    }

    /// The namespace is never without its pod security level, not even between KRaft's
    /// write and K3k's policy controller's.
    #[test]
    fn the_namespace_carries_its_pod_security_labels_from_the_first_write() {
        let settings = ClusterSettings {
            modes: vec![ClusterMode::Shared, ClusterMode::Virtual],
            ..ClusterSettings::default()
        };
        let ns = namespace_object(&row("shared"), &settings, uuid::Uuid::nil());
        let labels = &ns["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(labels["pod-security.kubernetes.io/enforce-version"], "latest");
        assert_eq!(labels["pod-security.kubernetes.io/warn"], "baseline");
        assert_eq!(labels[POLICY_LABEL], format!("kraft-{}", uuid::Uuid::nil()));
        let ns = namespace_object(&row("virtual"), &settings, uuid::Uuid::nil());
        let labels = &ns["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert!(
            labels.get("pod-security.kubernetes.io/warn").is_none(),
            "K3k sets no warn for privileged"
        );
    }

    #[test]
    fn totals_print_as_kubernetes_reads_them() {
        assert_eq!(total("4", &[(3, "1"), (5, "250m")], true), "8250m");
        assert_eq!(total("4", &[(1, "500m"), (1, "500m")], true), "5");
        assert_eq!(total("8Gi", &[(3, "2Gi"), (5, "256Mi")], false), "15616Mi");
        assert_eq!(total("8Gi", &[(2, "512Mi")], false), "9Gi");
    }

    /// Findings 2 and 4 (issue 14): shared mode under `baseline`, with a quota that holds the
    /// tenant's allowance plus K3k's own pods (3 servers, a kubelet on each of 5 nodes), where
    /// it used to be `restricted` with the tenant allowance alone.
    #[test]
    fn shared_policy_is_baseline_and_its_quota_fits_k3k_pods() {
        let settings = ClusterSettings::default();
        let row = clusters::Model { servers: 3, ..row("shared") };
        let policy = policy(&row, &settings, 5, uuid::Uuid::nil());
        assert_eq!(policy.spec.pod_security_admission_level, Some(PodSecurityLevel::Baseline));
        assert_eq!(policy.spec.runtime_class_name, None);
        // 4 + 3 × 1 + 5 × 250m CPU; 8Gi + 3 × 2Gi + 5 × 256Mi; 50 + 3 + 5 pods.
        assert_eq!(hard(&policy, "limits.cpu"), "8250m");
        assert_eq!(hard(&policy, "requests.memory"), "15616Mi");
        assert_eq!(hard(&policy, "pods"), "58");
        assert_eq!(hard(&policy, "requests.storage"), "20Gi");
        // 10Gi + 3 × 2Gi + 5 × 256Mi of scratch space, and every container has a default.
        assert_eq!(hard(&policy, "limits.ephemeral-storage"), "17664Mi");
        assert_eq!(hard(&policy, "requests.ephemeral-storage"), "17664Mi");
        let limit = &policy.spec.limit.as_ref().unwrap().limits[0];
        let default = limit.default.as_ref().unwrap();
        assert_eq!(default["ephemeral-storage"].0, "1Gi");
        assert_eq!(limit.max.as_ref().unwrap()["ephemeral-storage"].0, "10Gi");
    }

    #[test]
    fn virtual_policy_is_privileged_only_inside_the_sandbox_on_dedicated_nodes() {
        let selector = BTreeMap::from([("kraft.dev/virtual".to_owned(), "true".to_owned())]);
        let settings = ClusterSettings {
            modes: vec![ClusterMode::Shared, ClusterMode::Virtual],
            virtual_isolation: Some(VirtualIsolation {
                runtime_class: "gvisor".into(),
                node_selector: selector.clone(),
            }),
            ..ClusterSettings::default()
        };
        let row3 = clusters::Model { servers: 3, agents: 3, ..row("virtual") };
        let policy = policy(&row3, &settings, 5, uuid::Uuid::nil());
        assert_eq!(policy.spec.pod_security_admission_level, Some(PodSecurityLevel::Privileged));
        assert_eq!(policy.spec.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(policy.spec.default_node_selector.as_ref(), Some(&selector));
        // Agents, not kubelets: 4 + 3 × 1 + 3 × 1.
        assert_eq!(hard(&policy, "limits.cpu"), "10");

        let installation = uuid::Uuid::nil();
        let cr = cluster_object(&row("virtual"), &settings, installation).unwrap();
        assert_eq!(cr["spec"]["runtimeClassName"], "gvisor");
        assert_eq!(cr["spec"]["nodeSelector"]["kraft.dev/virtual"], "true");
        assert_eq!(
            cr["spec"]["serverLimit"],
            serde_json::json!({"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"})
        );
        assert_eq!(
            cr["spec"]["workerLimit"],
            serde_json::json!({"cpu": "1", "memory": "2Gi", "ephemeral-storage": "10Gi"})
        );
        let shared = cluster_object(&row("shared"), &settings, installation).unwrap();
        assert!(shared["spec"].get("runtimeClassName").is_none());
        assert!(shared["spec"].get("nodeSelector").is_none());
        assert_eq!(
            shared["spec"]["workerLimit"],
            serde_json::json!({"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "256Mi"})
        );
    }

    /// Each cluster has its own policy, sized for its own servers and agents, and labelled so
    /// the reconciler can find it again (and sweep it once its cluster is gone).
    #[test]
    fn every_cluster_gets_its_own_policy_sized_for_it() {
        let settings = ClusterSettings {
            modes: vec![ClusterMode::Shared, ClusterMode::Virtual],
            virtual_isolation: Some(VirtualIsolation {
                runtime_class: "gvisor".into(),
                node_selector: BTreeMap::new(),
            }),
            ..ClusterSettings::default()
        };
        let installation = uuid::Uuid::new_v4();
        let small = clusters::Model { id: uuid::Uuid::new_v4(), ..row("virtual") };
        let big =
            clusters::Model { id: uuid::Uuid::new_v4(), servers: 3, agents: 3, ..row("virtual") };
        let (a, b) =
            (policy(&small, &settings, 5, installation), policy(&big, &settings, 5, installation));
        assert_ne!(a.name_any(), b.name_any());
        assert_eq!(a.name_any(), format!("kraft-{}", small.id));
        // 4 + 1 server + 1 agent, against 4 + 3 + 3.
        assert_eq!(hard(&a, "limits.cpu"), "6");
        assert_eq!(hard(&b, "limits.cpu"), "10");
        assert_eq!(a.labels()[CLUSTER_ID_LABEL], small.id.to_string());
        assert_eq!(a.labels()[INSTALLATION_LABEL], installation.to_string());
        let ns = namespace_object(&small, &settings, installation);
        assert_eq!(ns["metadata"]["labels"][POLICY_LABEL], a.name_any());

        let live: HashSet<String> = [small.id.to_string()].into();
        let none = HashSet::new();
        assert!(!policy_is_orphan(&a, installation, &live, &none));
        assert!(policy_is_orphan(&b, installation, &live, &none), "no row: an orphan");
        let bound: HashSet<String> = [b.name_any()].into();
        assert!(!policy_is_orphan(&b, installation, &live, &bound), "still bound: kept");
        assert!(!policy_is_orphan(&b, uuid::Uuid::new_v4(), &live, &none), "another KRaft's");
        let mut legacy = a.clone();
        legacy.metadata.name = Some("kraft-shared".into());
        legacy.metadata.labels =
            Some(BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]));
        assert!(policy_is_orphan(&legacy, installation, &live, &none));
        let kept: HashSet<String> = ["kraft-shared".to_owned()].into();
        assert!(!policy_is_orphan(&legacy, installation, &live, &kept));
    }
}

//! What KRaft puts on the host for a cluster, and how it takes it away. Every call is idempotent
//! (server-side apply with one field manager; deletes that find nothing are fine), so a retry after
//! a crash never duplicates anything. Every object carries labels that lead back to its row.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use crate::clusters::spec::ClusterSettings;
use crate::db::entities::clusters;
use crate::host::k3k::{
    Cluster, ClusterMode, ExposeConfig, IngressConfig, PersistenceConfig, PersistenceMode,
    PodSecurityLevel, VirtualClusterPolicy, VirtualClusterPolicySpec,
};
use crate::host::{is_not_found, Host, HostError};

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

/// One policy per allowed mode: a K3k policy allows exactly one mode.
pub fn policy_name(mode: ClusterMode) -> String {
    format!("kraft-{}", mode.as_str())
}

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect()
}

/// The tenant policy: quota (no NodePort or LoadBalancer services, bounded CPU, memory, storage
/// and object counts), container defaults, network isolation and pod security.
pub fn policy(mode: ClusterMode, settings: &ClusterSettings) -> VirtualClusterPolicy {
    let tenant = &settings.tenant;
    let quota = ResourceQuotaSpec {
        hard: Some(quantities(&[
            ("requests.cpu", &tenant.cpu),
            ("limits.cpu", &tenant.cpu),
            ("requests.memory", &tenant.memory),
            ("limits.memory", &tenant.memory),
            ("requests.storage", &tenant.storage),
            ("persistentvolumeclaims", "10"),
            ("pods", &tenant.pods),
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
            default: Some(quantities(&[("cpu", "500m"), ("memory", "512Mi")])),
            default_request: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            max: Some(quantities(&[("cpu", &tenant.cpu), ("memory", &tenant.memory)])),
            ..Default::default()
        }],
    };
    let level = match tenant.pod_security.as_str() {
        "privileged" => PodSecurityLevel::Privileged,
        "baseline" => PodSecurityLevel::Baseline,
        _ => PodSecurityLevel::Restricted,
    };
    let mut policy = VirtualClusterPolicy::new(
        &policy_name(mode),
        VirtualClusterPolicySpec {
            allowed_mode: Some(mode),
            quota: Some(quota),
            limit: Some(limit),
            disable_network_policy: Some(false),
            pod_security_admission_level: Some(level),
        },
    );
    policy.metadata.labels =
        Some(BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]));
    policy
}

/// Installs or updates the platform's policies (at start).
pub async fn ensure_policies(host: &Host, settings: &ClusterSettings) -> Result<(), HostError> {
    let api: Api<VirtualClusterPolicy> = Api::all(host.client());
    for mode in &settings.modes {
        let mut policy = policy(*mode, settings);
        policy.metadata.managed_fields = None;
        let body = serde_json::to_value(&policy).map_err(|e| HostError::Invalid(e.to_string()))?;
        api.patch(&policy_name(*mode), &apply(), &Patch::Apply(body)).await?;
    }
    Ok(())
}

fn labels(row: &clusters::Model, installation: uuid::Uuid) -> serde_json::Value {
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
    let spec = crate::host::k3k::ClusterSpec {
        mode: Some(row.mode()),
        servers: Some(row.servers),
        agents: Some(row.agents),
        version: Some(row.version.clone()),
        persistence: Some(persistence),
        expose,
        tls_sans: Some(sans),
    };
    Ok(json!({
        "apiVersion": "k3k.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": row.name, "namespace": row.host_namespace, "labels": labels(row, installation)},
        "spec": serde_json::to_value(spec).map_err(|e| HostError::Invalid(e.to_string()))?,
    }))
}

/// Creates (or confirms) the namespace, bound to the mode's policy, then the `Cluster`.
pub async fn ensure(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> Result<(), HostError> {
    let mut ns_labels = labels(row, installation);
    ns_labels[POLICY_LABEL] = json!(policy_name(row.mode()));
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": row.host_namespace, "labels": ns_labels},
    });
    let namespaces: Api<Namespace> = Api::all(host.client());
    namespaces.patch(&row.host_namespace, &apply(), &Patch::Apply(namespace)).await?;
    let clusters: Api<Cluster> = Api::namespaced(host.client(), &row.host_namespace);
    clusters
        .patch(&row.name, &apply(), &Patch::Apply(cluster_object(row, settings, installation)?))
        .await?;
    Ok(())
}

/// Asks the host to remove the cluster and its namespace; `true` once the namespace is gone.
pub async fn remove(host: &Host, namespace: &str, cluster: &str) -> Result<bool, HostError> {
    let clusters: Api<Cluster> = Api::namespaced(host.client(), namespace);
    match clusters.delete(cluster, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let namespaces: Api<Namespace> = Api::all(host.client());
    match namespaces.delete(namespace, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(true),
        Err(e) => return Err(e.into()),
    }
    match namespaces.get_opt(namespace).await? {
        None => Ok(true),
        Some(_) => Ok(false),
    }
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
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Something happened to a managed `Cluster` (or the watch was interrupted, with why).
pub fn watch_clusters(host: &Host) -> futures::stream::BoxStream<'static, Result<(), String>> {
    use futures::StreamExt;
    let api: Api<Cluster> = Api::all(host.client());
    let config = watcher::Config::default().labels(&managed_selector());
    watcher(api, config)
        .default_backoff()
        .map(|event| event.map(|_| ()).map_err(|e| e.to_string()))
        .boxed()
}

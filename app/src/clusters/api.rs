//! Cluster server functions and the types they send to the browser (and over `/ws/clusters`).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{
    answer, meta, platform, require_admin, require_cluster, require_user, respond, Form,
};
use crate::error::ApiError;

/// Where a cluster is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterPhase {
    Pending,
    Provisioning,
    Ready,
    /// Was Ready; the host reports an error it usually recovers from. Still usable.
    Degraded,
    Failed,
    /// Asked to go; the host has not confirmed yet.
    Deleting,
    Terminating,
    Unknown,
}

impl ClusterPhase {
    /// Its API has been up: kubeconfig, logs and metrics are offered.
    pub fn is_running(self) -> bool {
        matches!(self, ClusterPhase::Ready | ClusterPhase::Degraded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPhase::Pending => "Pending",
            ClusterPhase::Provisioning => "Provisioning",
            ClusterPhase::Ready => "Ready",
            ClusterPhase::Degraded => "Degraded",
            ClusterPhase::Failed => "Failed",
            ClusterPhase::Deleting => "Deleting",
            ClusterPhase::Terminating => "Terminating",
            ClusterPhase::Unknown => "Unknown",
        }
    }
}

/// How K3k runs a cluster (spelled as K3k spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    Shared,
    Virtual,
    Hcp,
}

impl ClusterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Shared => "shared",
            ClusterMode::Virtual => "virtual",
            ClusterMode::Hcp => "hcp",
        }
    }
}

/// Where a cluster keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// A volume of `storage_gi` per server.
    Dynamic,
    /// Gone with the pod.
    Ephemeral,
}

/// One cluster as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub id: String,
    pub name: String,
    pub phase: ClusterPhase,
    pub message: Option<String>,
    pub endpoint: Option<String>,
    pub mode: ClusterMode,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    /// RFC 3339.
    pub created_at: String,
    /// When the platform deletes it, in words ("in 3 h"), once that is near (see
    /// `platform::clusters::EXPIRY_WARNING`).
    pub expires_soon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionView {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub at: Option<String>,
    pub count: i32,
    /// What it is about, e.g. `StatefulSet k3k-demo-server`.
    pub object: String,
}

/// Everything the detail page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDetail {
    pub summary: ClusterSummary,
    pub hostname: String,
    pub tls_sans: Vec<String>,
    pub persistence: Persistence,
    pub storage_gi: i32,
    pub host_namespace: String,
    pub host_version: Option<String>,
    pub conditions: Vec<ConditionView>,
    pub events: Vec<EventView>,
    /// Why the host refuses to run the cluster, read from its Warning events.
    pub blocked_by: Option<String>,
    /// The last API request through KRaft's gateway, in words ("3 min ago").
    pub last_api_request: Option<String>,
    /// When the platform deletes it.
    pub expiry: Option<ExpiryView>,
    /// A change of version or size the host is still carrying out.
    pub rollout: Option<RolloutView>,
    /// What the owner may change it to; `None`: nothing (a workshop's cluster, or going).
    pub change: Option<ChangeOptions>,
}

/// When a cluster is deleted by the platform, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryView {
    /// RFC 3339.
    pub at: String,
    /// "in 2 h".
    pub words: String,
    /// At its workshop's end (plus grace); otherwise after a period without use.
    pub workshop: bool,
    /// Close enough to warn about.
    pub soon: bool,
}

/// Where a change of a cluster stands: pods running the wanted version out of those wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    pub version: String,
    pub servers_done: i32,
    pub servers_wanted: i32,
    pub agents_done: i32,
    pub agents_wanted: i32,
}

/// What the change form offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOptions {
    /// Versions it may be upgraded to (one minor at a time, never back).
    pub upgrades: Vec<String>,
    pub max_servers: i32,
    /// 0 for a shared cluster (its workloads run on the host's nodes).
    pub max_agents: i32,
}

/// Whether a kubeconfig still opens its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KubeconfigState {
    Active,
    Expired,
    Revoked,
}

/// One kubeconfig of a cluster as its owner's list shows it (times already in words: the
/// server's clock says how long ago).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeconfigView {
    pub id: String,
    pub name: String,
    /// The token's first characters, e.g. `kraft_Ab3xYz…`.
    pub shown: String,
    pub created: String,
    /// "in 29 days", "expired 2 days ago".
    pub expires: String,
    /// "3 min ago from 192.0.2.7", or `None`: never used.
    pub last_used: Option<String>,
    pub state: KubeconfigState,
}

/// What the create form may offer this user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterOptions {
    pub versions: Vec<String>,
    pub modes: Vec<ClusterMode>,
    pub max_servers: i32,
    pub max_agents: i32,
    pub max_storage_gi: i32,
    pub max_clusters: usize,
    pub base_domain: String,
    /// The host is the in-process simulation (zero-config mode).
    pub simulated_host: bool,
}

/// A message on `/ws/clusters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClustersMessage {
    /// The user's clusters, as they are now.
    Snapshot { clusters: Vec<ClusterSummary> },
    /// Keeps idle connections open through proxies.
    Heartbeat,
}

#[server(prefix = "/api", endpoint = "clusters/options")]
pub async fn get_cluster_options() -> Result<ClusterOptions, ApiError> {
    answer(async {
        let current = require_user().await?;
        let platform = platform()?;
        let clusters = platform.clusters();
        let settings = clusters
            .settings_for(current.user.id)
            .await
            .map_err(platform::clusters::ClusterError::from)?;
        Ok(ClusterOptions {
            versions: settings.versions.clone(),
            modes: settings.modes.iter().map(|m| ClusterMode::from(*m)).collect(),
            max_servers: settings.max_servers,
            max_agents: settings.max_agents,
            max_storage_gi: settings.max_storage_gi,
            max_clusters: settings.max_clusters,
            base_domain: settings.base_domain.clone(),
            simulated_host: clusters.host().simulated(),
        })
    })
    .await
}

#[server(prefix = "/api", endpoint = "clusters/list")]
pub async fn list_clusters() -> Result<Vec<ClusterSummary>, ApiError> {
    answer(async {
        let current = require_user().await?;
        let platform = platform()?;
        let rows = platform.clusters().listing(current.user.id).await?;
        Ok(rows.iter().map(ClusterSummary::from).collect())
    })
    .await
}

#[server(prefix = "/api", endpoint = "clusters/get")]
pub async fn get_cluster(id: String) -> Result<ClusterDetail, ApiError> {
    answer(async {
        let owned = require_cluster(&id).await?;
        let row = owned.cluster;
        // Events are a nicety: a host hiccup must not hide the cluster.
        let events =
            platform()?.clusters().events(owned.user.id, row.id).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "could not read the cluster's host events");
                Vec::new()
            });
        let platform = platform()?;
        let clusters = platform.clusters();
        let mut detail = ClusterDetail::from((&row, events));
        // Progress is a nicety too.
        detail.rollout = clusters
            .rollout(&row)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "could not read the cluster's pods");
                None
            })
            .map(|r| RolloutView {
                version: r.version,
                servers_done: r.servers_done,
                servers_wanted: r.servers_wanted,
                agents_done: r.agents_done,
                agents_wanted: r.agents_wanted,
            });
        let settings = clusters
            .settings_for(owned.user.id)
            .await
            .map_err(platform::clusters::ClusterError::from)?;
        detail.change =
            (row.workshop_id.is_none() && row.deleting_at.is_none()).then(|| ChangeOptions {
                upgrades: settings.upgrade_targets(&row.version),
                max_servers: settings.max_servers,
                max_agents: if row.mode() == platform::host::k3k::ClusterMode::Shared {
                    0
                } else {
                    settings.max_agents
                },
            });
        Ok(detail)
    })
    .await
}

/// Upgrades or scales a cluster (empty fields keep what it has).
#[server(prefix = "/api", endpoint = "clusters/change")]
pub async fn change_cluster(
    id: String,
    #[server(default)] version: String,
    #[server(default)] servers: String,
    #[server(default)] agents: String,
    /// `on` when the owner accepts that the change starts an ephemeral cluster empty.
    #[server(default)]
    start_empty: String,
) -> Result<(), ApiError> {
    let form = Form::new("change-cluster")
        .keep("version", &version)
        .keep("servers", &servers)
        .keep("agents", &agents)
        .notice("The change is on its way to the host.");
    respond(form, async {
        let owned = require_cluster(&id).await?;
        let meta = meta().await;
        let start_empty = matches!(start_empty.as_str(), "on" | "true");
        let input =
            platform::clusters::ChangeClusterInput { version, servers, agents, start_empty };
        platform()?
            .clusters()
            .change(&owned.user, owned.cluster.id, &input, meta.client_addr.as_deref())
            .await?;
        Ok(())
    })
    .await
}

/// Puts off an idle cluster's deletion by a full period.
#[server(prefix = "/api", endpoint = "clusters/keep")]
pub async fn keep_cluster(id: String) -> Result<(), ApiError> {
    respond(
        Form::new("keep-cluster").notice("Kept: the cluster's expiry moved a full period ahead."),
        async {
            let owned = require_cluster(&id).await?;
            let meta = meta().await;
            platform()?
                .clusters()
                .keep(&owned.user, owned.cluster.id, meta.client_addr.as_deref())
                .await?;
            Ok(())
        },
    )
    .await
}

#[server(prefix = "/api", endpoint = "clusters/create")]
pub async fn create_cluster(
    name: String,
    #[server(default)] tls_sans: String,
    #[server(default)] servers: String,
    #[server(default)] agents: String,
    #[server(default)] version: String,
    #[server(default)] mode: String,
    #[server(default)] persistence: String,
    #[server(default)] storage_gi: String,
) -> Result<String, ApiError> {
    let form = Form::new("create-cluster")
        .keep("name", &name)
        .keep("tls_sans", &tls_sans)
        .keep("servers", &servers)
        .keep("agents", &agents)
        .keep("version", &version)
        .keep("mode", &mode)
        .keep("persistence", &persistence)
        .keep("storage_gi", &storage_gi);
    respond(form, async {
        let current = require_user().await?;
        let platform = platform()?;
        let input = platform::clusters::CreateClusterInput {
            name,
            tls_sans,
            servers,
            agents,
            version,
            mode,
            persistence,
            storage_gi,
        };
        let meta = meta().await;
        let row =
            platform.clusters().create(&current.user, &input, meta.client_addr.as_deref()).await?;
        leptos_axum::redirect(&format!("/clusters/{}", row.id));
        Ok(row.id.to_string())
    })
    .await
}

#[server(prefix = "/api", endpoint = "clusters/delete")]
pub async fn delete_cluster(id: String, confirm_name: String) -> Result<(), ApiError> {
    let form = Form::new("delete-cluster").keep("confirm_name", &confirm_name);
    respond(form, async {
        let owned = require_cluster(&id).await?;
        let meta = meta().await;
        platform()?
            .clusters()
            .delete(&owned.user, owned.cluster.id, &confirm_name, meta.client_addr.as_deref())
            .await?;
        leptos_axum::redirect("/clusters");
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "clusters/kubeconfigs")]
pub async fn list_kubeconfigs(id: String) -> Result<Vec<KubeconfigView>, ApiError> {
    answer(async {
        let owned = require_cluster(&id).await?;
        let list = platform()?.access().list(owned.cluster.id).await?;
        let now = chrono::Utc::now();
        Ok(list.into_iter().map(|t| KubeconfigView::at(t, now)).collect())
    })
    .await
}

/// Revokes one of the cluster's kubeconfigs (`kubeconfig` is its id), or all (`all`).
#[server(prefix = "/api", endpoint = "clusters/kubeconfigs/revoke")]
pub async fn revoke_kubeconfig(id: String, kubeconfig: String) -> Result<u64, ApiError> {
    answer(async {
        let owned = require_cluster(&id).await?;
        let which = match kubeconfig.as_str() {
            "all" => None,
            one => Some(uuid::Uuid::parse_str(one).map_err(|_| ApiError::NotFound)?),
        };
        let meta = meta().await;
        let revoked = platform()?
            .access()
            .revoke(&owned.user, &owned.cluster, which, meta.client_addr.as_deref())
            .await?;
        Ok(revoked)
    })
    .await
}

/// A cluster in the admin's list: whose it is, too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClusterRow {
    pub cluster: ClusterSummary,
    /// None once the owner's account is deleted (the cluster is then being removed).
    pub owner: Option<String>,
    pub host_namespace: String,
}

#[server(prefix = "/api", endpoint = "admin/clusters")]
pub async fn admin_clusters() -> Result<Vec<AdminClusterRow>, ApiError> {
    answer(async {
        require_admin().await?;
        let platform = platform()?;
        let rows = platform.clusters().list_all().await?;
        let mut owners: std::collections::HashMap<uuid::Uuid, Option<String>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let owner = match row.owner_id {
                Some(id) => match owners.get(&id) {
                    Some(name) => name.clone(),
                    None => {
                        let name = platform.accounts().user(id).await?.map(|u| u.username);
                        owners.insert(id, name.clone());
                        name
                    }
                },
                None => None,
            };
            out.push(AdminClusterRow {
                cluster: ClusterSummary::from(row),
                owner,
                host_namespace: row.host_namespace.clone(),
            });
        }
        Ok(out)
    })
    .await
}

//! Virtual mode's lingering nodes. Every k3s server and agent pod of a virtual-mode cluster
//! registers a Node in that cluster. When the pod goes (agents scaled down, an agent or a server
//! replaced by an upgrade, an agent moved off a drained host node), its Node stays, `NotReady`,
//! for good: k3s's cloud provider says every instance exists, so Kubernetes never deletes it,
//! and K3k has no node cleanup in virtual mode (rancher/k3k#767, #1159). K3k starts agents with
//! `with-node-id`, so each new agent pod is a new node: every upgrade of a cluster with agents
//! would leave one `NotReady` node per agent in the tenant's `kubectl get nodes`.
//!
//! The leader looks at every virtual-mode cluster that has been Ready now and then, and deletes
//! the nodes that are not Ready and whose pod is gone from the host; never a Ready node, never
//! one whose pod is still there (a crash-looping agent keeps its node).

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ObjectList;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{ClusterError, Clusters};
use crate::db::entities::clusters;
use crate::host::gateway::Upstreams;
use crate::host::k3k::ClusterMode;
use crate::host::{tenant, HostError};

impl Clusters {
    /// Runs [`Self::tidy_nodes`] every `every`, for as long as this replica leads.
    pub async fn tidy_nodes_forever(self: Arc<Self>, upstreams: Arc<Upstreams>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if let Err(error) = self.tidy_nodes(&upstreams).await {
                tracing::warn!(%error, "could not look for lingering virtual nodes");
            }
        }
    }

    /// One look at every virtual-mode cluster that has been Ready; answers how many lingering
    /// nodes it deleted. A cluster whose API or pods cannot be read now is skipped.
    pub async fn tidy_nodes(&self, upstreams: &Upstreams) -> Result<usize, ClusterError> {
        let rows = clusters::Entity::find()
            .filter(clusters::Column::Mode.eq(ClusterMode::Virtual.as_str()))
            .filter(clusters::Column::ReadyAt.is_not_null())
            .filter(clusters::Column::DeletingAt.is_null())
            .all(&self.db)
            .await?;
        let mut removed = 0;
        for row in rows {
            match self.tidy_cluster_nodes(upstreams, &row).await {
                Ok(n) => removed += n,
                Err(error) => {
                    tracing::debug!(cluster = %row.id, %error, "could not look at the cluster's nodes")
                }
            }
        }
        Ok(removed)
    }

    async fn tidy_cluster_nodes(
        &self,
        upstreams: &Upstreams,
        row: &clusters::Model,
    ) -> Result<usize, HostError> {
        let Some(api) = upstreams.get(&row.host_namespace, &row.name).await? else {
            return Ok(0);
        };
        // The nodes first, then the pods: a node registered after the pods were listed belongs
        // to a pod in the list.
        let (status, body) = api.call(Method::GET, "/api/v1/nodes").await?;
        if !status.is_success() {
            return Err(HostError::Invalid(format!("listing the cluster's nodes: {status}")));
        }
        let nodes: ObjectList<Node> = serde_json::from_slice(&body)
            .map_err(|e| HostError::Invalid(format!("the cluster's node list: {e}")))?;
        let selector = format!("cluster={}", row.name);
        let pods = tenant::pods(&self.host, &row.host_namespace, &selector).await?;
        let mut removed = 0;
        for name in lingering(&nodes.items, &pods) {
            let (status, _) = api.call(Method::DELETE, &format!("/api/v1/nodes/{name}")).await?;
            if status.is_success() || status == StatusCode::NOT_FOUND {
                tracing::info!(cluster = %row.id, node = %name, "deleted a node whose pod is gone");
                removed += 1;
            } else {
                tracing::warn!(cluster = %row.id, node = %name, %status, "could not delete a node whose pod is gone");
            }
        }
        Ok(removed)
    }
}

/// The nodes of a virtual-mode cluster that are not Ready and that no pod in `pods` runs: a
/// server's node is named after its pod's hostname, an agent's after it plus `-` and its
/// 8-hex-digit node id (k3s pkg/agent/config/config.go, `with-node-id`).
fn lingering(nodes: &[Node], pods: &[Pod]) -> Vec<String> {
    let hostnames: Vec<String> =
        pods.iter().filter_map(|p| p.metadata.name.as_deref()).map(pod_hostname).collect();
    let runs = |node: &str| {
        hostnames.iter().any(|h| {
            node == h
                || node
                    .strip_prefix(h.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    };
    nodes
        .iter()
        .filter(|n| !ready(n))
        .filter_map(|n| n.metadata.name.clone())
        .filter(|name| !runs(name))
        .collect()
}

/// Its `Ready` condition is `True`.
fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod's hostname: its name, cut to 63 characters without a trailing `-` or `.` (kubernetes
/// pkg/kubelet/kubelet_pods.go `truncatePodHostnameIfNeeded`).
fn pod_hostname(name: &str) -> String {
    name[..name.len().min(63)].trim_end_matches(['-', '.']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    #[test]
    fn only_a_node_that_is_not_ready_and_has_no_pod_lingers() {
        let pods = [pod("k3k-web-server-0"), pod("k3k-web-agent-7d9f8-x2k4q")];
        let nodes = [
            node("k3k-web-server-0", "Unknown"),
            node("k3k-web-server-1", "Unknown"),
            node("k3k-web-server-2", "True"),
            node("k3k-web-agent-7d9f8-x2k4q-0a1b2c3d", "False"),
            node("k3k-web-agent-7d9f8-abcde-0a1b2c3d", "Unknown"),
            node("k3k-web-agent-7d9f8-fghij-99887766", "True"),
            node("k3k-web-agent-7d9f8-x2k4q-nothex00", "Unknown"),
        ];
        assert_eq!(
            lingering(&nodes, &pods),
            [
                "k3k-web-server-1",
                "k3k-web-agent-7d9f8-abcde-0a1b2c3d",
                "k3k-web-agent-7d9f8-x2k4q-nothex00"
            ]
        );
    }

    #[test]
    fn a_node_without_a_ready_condition_counts_as_not_ready_but_keeps_its_pod() {
        let bare: Node = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "k3k-a-agent-1-2-0000abcd"}}),
        )
        .unwrap();
        assert_eq!(
            lingering(std::slice::from_ref(&bare), &[pod("k3k-a-agent-1-2")]),
            Vec::<String>::new()
        );
        assert_eq!(lingering(&[bare], &[]), ["k3k-a-agent-1-2-0000abcd"]);
    }

    #[test]
    fn long_pod_names_are_cut_like_hostnames() {
        let long = format!("k3k-{}-agent-5f6c7-abcde", "x".repeat(50));
        let host = pod_hostname(&long);
        assert_eq!(host.len(), 63);
        let nodes = [node(&format!("{host}-12345678"), "Unknown")];
        assert!(lingering(&nodes, &[pod(&long)]).is_empty());
        assert_eq!(pod_hostname("abc-"), "abc");
    }
}

//! The host's capacity against what tenants hold, for the admin: every node's allocatable CPU
//! and memory, and every cluster namespace's tenant quota (what it may use, `hard`, and what it
//! uses, `used`), summed per tenant. Two list calls per poll, whatever the number of clusters:
//! nodes, and the ResourceQuotas K3k's policies made (by label, in all namespaces).
//!
//! One poller for any number of viewers: it runs while someone watches ([`CapacityHub`]) and
//! stops when the last viewer leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, ResourceQuota};
use kube::api::{Api, ListParams};
use serde::Serialize;
use tokio::sync::watch;

use super::stream::metrics::{quota_usage, POLICY_LABEL};
use super::stream::quantity::{bytes, cpu_millicores};
use super::{Host, HostError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCapacity {
    pub name: String,
    pub ready: bool,
    /// Allocatable: what pods may request on it.
    pub cpu_millicores: f64,
    pub memory_bytes: f64,
}

/// The summed quotas of some cluster namespaces: what they may request (`hard`) and do (`used`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Held {
    pub cpu_hard_millicores: f64,
    pub cpu_used_millicores: f64,
    pub memory_hard_bytes: f64,
    pub memory_used_bytes: f64,
}

impl Held {
    fn add(&mut self, other: &Held) {
        self.cpu_hard_millicores += other.cpu_hard_millicores;
        self.cpu_used_millicores += other.cpu_used_millicores;
        self.memory_hard_bytes += other.memory_hard_bytes;
        self.memory_used_bytes += other.memory_used_bytes;
    }
}

/// One tenant's clusters at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantUsage {
    pub username: String,
    pub clusters: usize,
    pub held: Held,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityOverview {
    pub at: DateTime<Utc>,
    pub nodes: Vec<NodeCapacity>,
    pub allocatable_cpu_millicores: f64,
    pub allocatable_memory_bytes: f64,
    /// Every tenant together.
    pub held: Held,
    /// Busiest (most CPU held) first.
    pub tenants: Vec<TenantUsage>,
    /// Why the last poll failed, if it did (the numbers are then the last good ones, or none).
    pub error: Option<String>,
}

/// What the host says: nodes, and each cluster namespace's quota.
pub struct HostReading {
    pub nodes: Vec<NodeCapacity>,
    pub quotas: HashMap<String, Held>,
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Reads nodes and the tenant quotas, with two list calls.
pub async fn read(host: &Host) -> Result<HostReading, HostError> {
    let nodes: Api<Node> = Api::all(host.client());
    let nodes = nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|node| {
            let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
            let quantity = |key: &str| allocatable.and_then(|a| a.get(key)).map(|q| q.0.clone());
            NodeCapacity {
                name: node.metadata.name.clone().unwrap_or_default(),
                ready: ready(node),
                cpu_millicores: quantity("cpu")
                    .and_then(|q| cpu_millicores(&q).ok())
                    .unwrap_or_default(),
                memory_bytes: quantity("memory").and_then(|q| bytes(&q).ok()).unwrap_or_default()
                    as f64,
            }
        })
        .collect();
    let quotas: Api<ResourceQuota> = Api::all(host.client());
    let mut by_namespace: HashMap<String, Vec<ResourceQuota>> = HashMap::new();
    for quota in quotas.list(&ListParams::default().labels(POLICY_LABEL)).await?.items {
        if let Some(namespace) = quota.metadata.namespace.clone() {
            by_namespace.entry(namespace).or_default().push(quota);
        }
    }
    let quotas = by_namespace
        .into_iter()
        .map(|(namespace, quotas)| {
            let usage = quota_usage(&quotas);
            let held = Held {
                cpu_hard_millicores: usage.cpu.map_or(0.0, |p| p.hard),
                cpu_used_millicores: usage.cpu.map_or(0.0, |p| p.used),
                memory_hard_bytes: usage.memory.map_or(0.0, |p| p.hard),
                memory_used_bytes: usage.memory.map_or(0.0, |p| p.used),
            };
            (namespace, held)
        })
        .collect();
    Ok(HostReading { nodes, quotas })
}

/// Puts a reading together with who owns which namespace (`namespace → username`).
pub fn overview(reading: HostReading, owners: &HashMap<String, String>) -> CapacityOverview {
    let mut tenants: HashMap<&str, TenantUsage> = HashMap::new();
    let mut held = Held::default();
    for (namespace, owner) in owners {
        let tenant = tenants.entry(owner.as_str()).or_insert_with(|| TenantUsage {
            username: owner.clone(),
            clusters: 0,
            held: Held::default(),
        });
        tenant.clusters += 1;
        if let Some(quota) = reading.quotas.get(namespace) {
            tenant.held.add(quota);
            held.add(quota);
        }
    }
    let mut tenants: Vec<TenantUsage> = tenants.into_values().collect();
    tenants.sort_by(|a, b| {
        b.held
            .cpu_hard_millicores
            .total_cmp(&a.held.cpu_hard_millicores)
            .then_with(|| a.username.cmp(&b.username))
    });
    let ready = reading.nodes.iter().filter(|n| n.ready);
    let (cpu, memory) =
        ready.fold((0.0, 0.0), |(c, m), n| (c + n.cpu_millicores, m + n.memory_bytes));
    CapacityOverview {
        at: Utc::now(),
        allocatable_cpu_millicores: cpu,
        allocatable_memory_bytes: memory,
        nodes: reading.nodes,
        held,
        tenants,
        error: None,
    }
}

/// Where the latest overview is published while anyone watches.
pub struct CapacityHub {
    sender: watch::Sender<Option<Arc<CapacityOverview>>>,
    running: std::sync::Mutex<bool>,
    pub interval: Duration,
}

impl CapacityHub {
    pub fn new(interval: Duration) -> Self {
        Self { sender: watch::channel(None).0, running: std::sync::Mutex::new(false), interval }
    }

    /// A viewer's feed; the first viewer starts the poller (`poll` makes one overview).
    pub fn subscribe<F, Fut>(
        self: &Arc<Self>,
        poll: F,
    ) -> watch::Receiver<Option<Arc<CapacityOverview>>>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = CapacityOverview> + Send,
    {
        let receiver = self.sender.subscribe();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            let hub = self.clone();
            tokio::spawn(async move {
                loop {
                    let overview = poll().await;
                    hub.sender.send_replace(Some(Arc::new(overview)));
                    tokio::time::sleep(hub.interval).await;
                    let mut running = hub.running.lock().unwrap_or_else(|p| p.into_inner());
                    if hub.sender.receiver_count() == 0 {
                        *running = false;
                        return;
                    }
                }
            });
        }
        receiver
    }
}

//! The reconciler: keeps rows and host objects consistent, whatever crashed or who ran
//! `kubectl delete`.
//!
//! - A row whose host objects are missing is provisioned again while it has never been Ready
//!   (a crash between steps); a cluster that was Ready and vanished is marked Failed, never
//!   silently replaced.
//! - Host objects without a row (orphans) are deleted.
//! - A row marked for deletion is removed once the host confirms its namespace is gone.
//! - Phase, conditions, endpoint and version flow from the `Cluster`'s status into the row.
//!
//! It runs a full pass every resync interval and at once when a watched `Cluster` changes or a
//! request asks for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::provision;
use super::{ClusterError, Clusters};
use crate::db::entities::clusters;
use crate::host::k3k::{Cluster, ClusterPhase};
use crate::host::HostError;
use crate::observe;

/// What K3k's status says while no server of a cluster is ready (v1.1.0
/// pkg/controller/cluster/server/bootstrap/bootstrap.go `ErrServerNotReady`, wrapped as
/// "failed to request bootstrap secret: server not ready").
const K3K_SERVER_NOT_READY: &str = "server not ready";
/// A cluster's message while its first server starts.
pub const SERVER_STARTING: &str = "Waiting for the cluster's k3s server to start.";
/// A cluster's message (it is `Degraded`) while it was Ready and now no server answers.
pub const SERVER_RESTARTING: &str = "unavailable: no server of this cluster is ready. One is starting (after an upgrade or a restart); the API answers again once it is ready.";

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub provisioned: usize,
    pub updated: usize,
    pub marked_failed: usize,
    pub rows_removed: usize,
    pub orphans_removed: usize,
    /// Clusters past their expiry, now being deleted.
    pub expired: usize,
    /// Steps that failed (each logged); the pass went on with the rest.
    pub errors: usize,
}

impl Report {
    /// Adds what this pass repaired to [`observe::RECONCILE_REPAIRS`].
    fn count(&self) {
        let repairs = [
            self.provisioned,
            self.updated,
            self.marked_failed,
            self.rows_removed,
            self.orphans_removed,
            self.expired,
        ];
        for (action, n) in observe::REPAIRS.into_iter().zip(repairs) {
            if n > 0 {
                metrics::counter!(observe::RECONCILE_REPAIRS, "action" => action)
                    .increment(n as u64);
            }
        }
    }
}

/// What a pass learnt from the host before it looked at the rows. A list the host refused (a
/// right the operator left out, say) is `None`: only the repairs that need it are skipped.
struct HostView {
    nodes: Option<usize>,
    policies: Option<HashMap<String, crate::host::k3k::VirtualClusterPolicy>>,
    network_policies: Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>>,
    bindings: Option<Vec<k8s_openapi::api::rbac::v1::RoleBinding>>,
}

/// The value of a host call, or `None` with the failure logged and counted.
fn optional<T>(what: &str, result: Result<T, HostError>, report: &mut Report) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            report.errors += 1;
            tracing::warn!(%error, "reconciler: could not {what}; the rest of the pass goes on");
            None
        }
    }
}

impl Clusters {
    /// One full pass over host and database. A failure with one cluster (or one kind of host
    /// object) is logged and counted in the report, and every other cluster is still reconciled;
    /// only a pass that cannot see the host's namespaces and clusters, or the rows, fails whole.
    pub async fn reconcile_once(&self) -> Result<Report, ClusterError> {
        let mut report = Report::default();
        // The host first, then the rows: a namespace or policy seen here was created after its
        // row, so a row created meanwhile can never make it look orphaned.
        let r = &mut report;
        let view = HostView {
            nodes: optional(
                "count the host's nodes",
                provision::kubelet_nodes(&self.host, &self.settings()).await,
                r,
            ),
            policies: optional(
                "list the cluster policies",
                provision::policies(&self.host).await,
                r,
            )
            .map(|ps| ps.into_iter().map(|p| (p.name_any(), p)).collect()),
            network_policies: optional(
                "list the network policies",
                crate::host::egress::list(&self.host).await,
                r,
            ),
            bindings: match self.settings().tenant_role {
                Some(_) => optional(
                    "list KRaft's tenant role bindings",
                    provision::tenant_bindings(&self.host).await,
                    r,
                ),
                None => Some(Vec::new()),
            },
        };
        let (host_namespaces, host_clusters) = provision::inventory(&self.host).await?;
        if let Err(error) = self.follow_idle_expiry().await {
            report.errors += 1;
            tracing::warn!(%error, "reconciler: could not bring idle expiries up to date");
        }
        match self.expire_due().await {
            Ok(expired) => report.expired = expired,
            Err(error) => {
                report.errors += 1;
                tracing::warn!(%error, "reconciler: could not look for expired clusters");
            }
        }
        let rows = clusters::Entity::find().all(&self.db).await?;

        let ns_by_name: HashMap<String, &Namespace> =
            host_namespaces.iter().map(|ns| (ns.name_any(), ns)).collect();
        let cr_by_key: HashMap<(String, String), &Cluster> = host_clusters
            .iter()
            .map(|c| ((c.namespace().unwrap_or_default(), c.name_any()), c))
            .collect();

        for row in &rows {
            let namespace = ns_by_name.get(&row.host_namespace).copied();
            let cr = cr_by_key.get(&(row.host_namespace.clone(), row.name.clone())).copied();
            if let Err(error) = self.reconcile_row(row, namespace, cr, &view, &mut report).await {
                report.errors += 1;
                tracing::warn!(cluster = %row.id, %error, "reconciler: this cluster failed; the others go on");
            }
        }

        let known: HashSet<&str> = rows.iter().map(|r| r.host_namespace.as_str()).collect();
        let installation = self.installation.to_string();
        for ns in &host_namespaces {
            let name = ns.name_any();
            let going = ns.metadata.deletion_timestamp.is_some();
            // Only a cluster namespace this installation made is ever an orphan: another KRaft's
            // (or one from before installations were labelled) is left alone.
            let labels = ns.labels();
            let ours = labels.get(provision::INSTALLATION_LABEL) == Some(&installation)
                && labels.contains_key(provision::CLUSTER_ID_LABEL);
            if ours && !known.contains(name.as_str()) && !going {
                tracing::info!(namespace = %name, "deleting an orphaned cluster namespace");
                let deleted = provision::delete_namespace(&self.host, &name).await;
                if optional("delete an orphaned namespace", deleted, &mut report) == Some(true) {
                    report.orphans_removed += 1;
                }
            }
        }
        // Policies left over by a crash between steps, by a deleted row, or from before every
        // cluster had its own; never one a namespace is still bound to.
        let live_ids: HashSet<String> = rows.iter().map(|r| r.id.to_string()).collect();
        let bound: HashSet<String> = host_namespaces
            .iter()
            .filter_map(|ns| ns.labels().get(provision::POLICY_LABEL).cloned())
            .collect();
        for policy in view.policies.iter().flat_map(HashMap::values) {
            if provision::policy_is_orphan(policy, self.installation, &live_ids, &bound) {
                tracing::info!(policy = %policy.name_any(), "deleting an orphaned cluster policy");
                let deleted = provision::delete_policy(&self.host, &policy.name_any()).await;
                if optional("delete an orphaned policy", deleted, &mut report) == Some(true) {
                    report.orphans_removed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Retires every cluster past its expiry (a workshop's end plus its grace period), audited
    /// as the platform's doing; answers how many.
    async fn expire_due(&self) -> Result<usize, ClusterError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let due = clusters::Entity::find()
            .filter(clusters::Column::ExpiresAt.lte(chrono::Utc::now()))
            .filter(clusters::Column::DeletingAt.is_null())
            .all(&self.db)
            .await?;
        for row in &due {
            let event = crate::accounts::AuditEvent::on(
                crate::accounts::AuditAction::ClusterExpired,
                None,
                row.owner_id,
                None,
            )
            .target(&row.name);
            if let Err(error) = self.retire(row, event).await {
                tracing::warn!(cluster = %row.id, %error, "could not retire an expired cluster");
            }
        }
        Ok(due.len())
    }

    /// One row against what the host holds for it.
    async fn reconcile_row(
        &self,
        row: &clusters::Model,
        namespace: Option<&Namespace>,
        cr: Option<&Cluster>,
        view: &HostView,
        report: &mut Report,
    ) -> Result<(), ClusterError> {
        if row.deleting_at.is_some() {
            if provision::remove(&self.host, row).await? {
                clusters::Entity::delete_by_id(row.id).exec(&self.db).await?;
                report.rows_removed += 1;
                self.changed(row);
            }
            return Ok(());
        }
        let terminating =
            namespace.and_then(|ns| ns.status.as_ref()).and_then(|s| s.phase.as_deref())
                == Some("Terminating");
        let on_host = match (namespace, cr) {
            (Some(_), Some(cr)) if !terminating => Some(cr),
            _ => None,
        };
        if let Some(cr) = on_host {
            // Status first: it needs nothing but what was listed, so a repair below that fails
            // (a right the operator left out) never keeps a row from showing its cluster.
            if self.update_from_host(row, cr).await? {
                report.updated += 1;
            }
            // A change (upgrade, scale) recorded in the row that the host has not been told of:
            // the request that made it failed or crashed before applying it.
            if !spec_matches(row, cr) {
                provision::ensure(&self.host, row, &self.settings(), self.installation).await?;
                report.provisioned += 1;
            }
            // Every cluster's own policy, restored if someone deleted it and grown with the
            // host's nodes (shared mode runs a kubelet on each); a namespace bound to another
            // policy (the old per-mode ones) is moved to its own.
            let name = provision::policy_name(row);
            if let (Some(nodes), Some(policies)) = (view.nodes, &view.policies) {
                let current = policies.get(&name);
                provision::ensure_policy(
                    &self.host,
                    row,
                    &self.settings(),
                    nodes,
                    self.installation,
                    current,
                )
                .await?;
            }
            // KRaft's own rights in the namespace (a namespace from before they were per
            // namespace gets them here).
            if let Some(bindings) = &view.bindings {
                let current = bindings.iter().find(|b| {
                    b.namespace().as_deref() == Some(row.host_namespace.as_str())
                        && b.name_any() == provision::TENANT_BINDING
                });
                provision::bind_tenant_role(
                    &self.host,
                    row,
                    &self.settings(),
                    self.installation,
                    current,
                )
                .await?;
            }
            // Its network policies, put back if someone deleted or changed them.
            if let Some(network_policies) = &view.network_policies {
                let current: Vec<_> = network_policies
                    .iter()
                    .filter(|p| p.namespace().as_deref() == Some(row.host_namespace.as_str()))
                    .collect();
                crate::host::egress::ensure(
                    &self.host,
                    row,
                    &self.settings(),
                    self.installation,
                    Some(&current),
                )
                .await?;
            }
            let bound = namespace.map(|ns| ns.labels().get(provision::POLICY_LABEL));
            if bound != Some(Some(&name)) {
                provision::bind_namespace(&self.host, row, &self.settings(), self.installation)
                    .await?;
            }
        } else if row.ready_at.is_some() {
            if row.phase != "Failed" {
                self.set_status(
                    row,
                    "Failed",
                    Some("The cluster was removed from the host outside KRaft. Delete it here to free its name."),
                )
                .await?;
                report.marked_failed += 1;
            }
        } else if !terminating {
            // Never Ready and half there (a crash between steps, or a create that failed):
            // finish the job, unless the namespace is still going away.
            provision::ensure(&self.host, row, &self.settings(), self.installation).await?;
            report.provisioned += 1;
        }
        Ok(())
    }

    /// Copies what the host says into the row; `true` if anything changed.
    async fn update_from_host(
        &self,
        row: &clusters::Model,
        cr: &Cluster,
    ) -> Result<bool, ClusterError> {
        let status = cr.status.clone().unwrap_or_default();
        let k3k_phase = match status.phase.unwrap_or(ClusterPhase::Unknown) {
            // A Cluster the controller has not looked at yet is still being provisioned.
            ClusterPhase::Unknown if row.ready_at.is_none() => ClusterPhase::Provisioning,
            phase => phase,
        };
        let ready_condition =
            status.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == "Ready")).cloned();
        let reason = ready_condition.as_ref().map(|c| c.message.clone()).filter(|m| !m.is_empty());
        // No server of the cluster is ready: K3k's request for the bootstrap data through the
        // cluster's Service is refused, and it reports Provisioning (K3k v1.1.0
        // pkg/controller/cluster/status.go). After Ready that is a server being replaced (an
        // upgrade of a one-server cluster) or restarting: the API is down for now, not gone.
        let no_server = k3k_phase == ClusterPhase::Provisioning
            && reason.as_deref().is_some_and(|r| r.contains(K3K_SERVER_NOT_READY));
        let restarting = no_server && row.ready_at.is_some();
        // K3k reports `Failed` on any reconcile error and recovers on its next pass (K3k
        // v1.1.0 pkg/controller/cluster/status.go): after Ready that is "degraded", not dead.
        let degraded = (k3k_phase == ClusterPhase::Failed && row.ready_at.is_some()) || restarting;
        let message = match k3k_phase {
            ClusterPhase::Ready => None,
            _ if restarting => Some(SERVER_RESTARTING.to_owned()),
            _ if no_server => Some(SERVER_STARTING.to_owned()),
            _ if degraded => Some(format!(
                "degraded: {}",
                reason.as_deref().unwrap_or("the host reports a provisioning error")
            )),
            _ => reason,
        };
        let conditions = status.conditions.as_ref().and_then(|c| serde_json::to_string(c).ok());
        let endpoint = match k3k_phase {
            ClusterPhase::Ready => Some(self.settings().gateway_url(row.id)),
            _ => row.endpoint.clone(),
        };
        let phase_text =
            if degraded { "Degraded".to_owned() } else { k3k_phase.as_str().to_owned() };
        let unchanged = row.phase == phase_text
            && row.status_message == message
            && row.conditions == conditions
            && row.endpoint == endpoint
            && row.host_version == status.host_version;
        if unchanged {
            return Ok(false);
        }
        let now = Utc::now();
        let ready_at = match (row.ready_at, k3k_phase) {
            (None, ClusterPhase::Ready) => Some(now),
            (existing, _) => existing,
        };
        clusters::Entity::update(clusters::ActiveModel {
            id: Set(row.id),
            phase: Set(phase_text),
            status_message: Set(message),
            conditions: Set(conditions),
            endpoint: Set(endpoint),
            host_version: Set(status.host_version.clone()),
            ready_at: Set(ready_at),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        self.changed(row);
        Ok(true)
    }

    async fn set_status(
        &self,
        row: &clusters::Model,
        phase: &str,
        message: Option<&str>,
    ) -> Result<(), ClusterError> {
        clusters::Entity::update(clusters::ActiveModel {
            id: Set(row.id),
            phase: Set(phase.to_owned()),
            status_message: Set(message.map(str::to_owned)),
            updated_at: Set(Utc::now()),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        self.changed(row);
        Ok(())
    }

    /// Copies one `Cluster`'s live status into its row, as a pass would: `false` when the
    /// change needs a full pass instead (no row for it, a row being deleted, a spec the row
    /// disagrees with, an object going away).
    async fn follow_cluster(&self, cr: &Cluster) -> Result<bool, ClusterError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        if cr.metadata.deletion_timestamp.is_some() {
            return Ok(false);
        }
        let Some(namespace) = cr.namespace() else { return Ok(false) };
        let row = clusters::Entity::find()
            .filter(clusters::Column::HostNamespace.eq(namespace))
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(false) };
        if row.deleting_at.is_some() || row.name != cr.name_any() || !spec_matches(&row, cr) {
            return Ok(false);
        }
        if self.update_from_host(&row, cr).await? {
            Report { updated: 1, ..Report::default() }.count();
        }
        Ok(true)
    }

    /// One full pass, counted and logged.
    async fn full_pass(&self) {
        metrics::counter!(observe::RECONCILE_PASSES).increment(1);
        match self.reconcile_once().await {
            Ok(report) if report != Report::default() => {
                report.count();
                if report.errors > 0 {
                    metrics::counter!(observe::RECONCILE_ERRORS).increment(report.errors as u64);
                }
                tracing::debug!(?report, "reconciled")
            }
            Ok(_) => {}
            Err(error) => {
                metrics::counter!(observe::RECONCILE_ERRORS).increment(1);
                tracing::warn!(%error, "reconcile pass failed; retrying")
            }
        }
    }

    /// Runs forever: a full pass at start, on request, every `resync`, and on a host change one
    /// object cannot settle. A live change to one `Cluster` (the K3k controller reporting
    /// progress) is copied to its row at once, without a pass over every cluster: with a room
    /// of clusters provisioning together, a pass per status change kept each Ready waiting
    /// behind passes over all the others.
    pub async fn run_reconciler(self: Arc<Self>, resync: Duration) {
        let mut changes = provision::watch_clusters(&self.host);
        let mut full = true;
        let mut next_full = tokio::time::Instant::now();
        // The latest of each changed `Cluster` since the last look, by namespace and name.
        let mut live: HashMap<(String, String), Cluster> = HashMap::new();
        loop {
            if !full {
                for cluster in std::mem::take(&mut live).into_values() {
                    match self.follow_cluster(&cluster).await {
                        Ok(true) => {}
                        Ok(false) => full = true,
                        Err(error) => {
                            tracing::debug!(%error, "could not follow a cluster; a full pass will");
                            full = true;
                        }
                    }
                }
            }
            if full {
                // A pass reads every `Cluster` as it is now: what the watch said is in it.
                live.clear();
                self.full_pass().await;
                next_full = tokio::time::Instant::now() + resync;
                full = false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next_full) => full = true,
                () = self.wake.notified() => full = true,
                event = changes.next() => note_change(event, &mut live, &mut full),
            }
            // Let a burst of changes settle into one pass; a change to one cluster is followed
            // at once (a pause here would cap how many a second the loop can follow).
            if full {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            while let Some(Some(event)) = changes.next().now_or_never() {
                note_change(Some(event), &mut live, &mut full);
            }
        }
    }
}

/// Adds one event of the `Cluster` watch to what the reconciler looks at next: the cluster it
/// names, or a full pass when one object cannot settle it (or the watch broke or ended).
fn note_change(
    event: Option<Result<Option<Cluster>, String>>,
    live: &mut HashMap<(String, String), Cluster>,
    full: &mut bool,
) {
    match event {
        Some(Ok(Some(cluster))) => {
            live.insert((cluster.namespace().unwrap_or_default(), cluster.name_any()), cluster);
        }
        Some(Ok(None)) | None => *full = true,
        Some(Err(error)) => {
            tracing::debug!(%error, "cluster watch interrupted");
            *full = true;
        }
    }
}

/// The host's `Cluster` asks for what the row records (servers, agents, version): when not, a
/// change the row holds has not reached the host yet.
fn spec_matches(row: &clusters::Model, cr: &Cluster) -> bool {
    let spec = &cr.spec;
    spec.servers == Some(row.servers)
        && spec.agents == Some(row.agents)
        && spec.version.as_deref() == Some(row.version.as_str())
}

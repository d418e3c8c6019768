//! Virtual clusters: what users ask for (rows), what the host runs (K3k objects), and the
//! reconciler that keeps the two honest. The UI only ever shows what the host confirmed.

pub use crate::host::provision;
pub mod capacity;
pub mod limits;
mod nodes;
pub mod reconcile;
pub mod record;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, SqlErr, TransactionTrait,
};
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

pub use record::{ClusterListing, Phase, StatusCondition};
pub use spec::{
    upgrade_check, ChangeClusterInput, ClusterChangeRequest, ClusterRequest, ClusterSettings,
    CreateClusterInput, K3kResources, K3sVersion, Resources, TenantLimits, VirtualIsolation,
    EXPIRY_WARNING, UPGRADE_EMPTIES_EPHEMERAL,
};

use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, User};
use crate::db::entities::{clusters, users};
use crate::host::{tenant, Host, HostError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    LimitReached(String),
    /// The user holds as many of something open as one account may (live logs, log reads).
    #[error(transparent)]
    CapReached(#[from] crate::caps::CapReached),
    #[error("no such cluster")]
    NotFound,
    /// Something of a cluster the caller may see does not exist; the message says what.
    #[error("{0}")]
    Missing(String),
    /// The cluster exists but cannot do this yet (e.g. a kubeconfig before it is Ready).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<kube::Error> for ClusterError {
    fn from(error: kube::Error) -> Self {
        ClusterError::Host(HostError::from(error))
    }
}

/// A cluster as the rest of the platform sees it.
pub type ClusterRecord = clusters::Model;

/// Something changed about a cluster (its owner's views should refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterChange {
    pub owner_id: Option<Uuid>,
    pub cluster_id: Uuid,
}

/// An event the host recorded about a cluster ("why is it pending").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEvent {
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub at: Option<String>,
    pub count: i32,
    /// What it is about, e.g. `StatefulSet k3k-demo-server`.
    pub object: String,
}

/// The kinds whose Warning events explain a cluster stuck before Ready: K3k's workloads, their
/// pods and claims. Admission refusals (pod security, quota, runtime class) are `FailedCreate`
/// events on the workload, not on the Cluster (kubernetes v1.36 `pkg/controller/statefulset/
/// stateful_pod_control.go`, `pkg/controller/controller_utils.go`).
const WORKLOAD_KINDS: [&str; 6] =
    ["StatefulSet", "Deployment", "ReplicaSet", "DaemonSet", "Pod", "PersistentVolumeClaim"];

/// One sentence on why a cluster cannot start, from its Warning events (newest first).
pub fn explain_events(events: &[HostEvent]) -> Option<String> {
    events.iter().filter(|e| e.kind == "Warning").find_map(|e| {
        let m = e.message.as_str();
        let after = |marker: &str| m.find(marker).map(|i| m[i + marker.len()..].trim().to_owned());
        if let Some(why) = after("violates PodSecurity") {
            Some(format!("The host's pod security refuses the cluster's pods: {why}"))
        } else if let Some(why) = after("exceeded quota:") {
            Some(format!("The cluster's pods do not fit the namespace quota: {why}"))
        } else if let Some(why) = after("failed quota:") {
            Some(format!("The namespace quota refuses the cluster's pods: {why}"))
        } else if m.contains("RuntimeClass") && m.contains("not found") {
            Some(format!("The host has no such runtime class: {m}"))
        } else if e.reason == "FailedScheduling" {
            Some(format!("No host node can run the cluster's pods: {m}"))
        } else {
            None
        }
    })
}

pub struct Clusters {
    db: DatabaseConnection,
    host: Host,
    /// What the operator configured, with what an admin changed since (see `crate::settings`).
    settings: std::sync::RwLock<Arc<ClusterSettings>>,
    /// Marks this installation's host objects; the orphan sweep takes only those.
    installation: Uuid,
    changes: broadcast::Sender<ClusterChange>,
    /// Wakes the reconciler early (a new row, a deletion, a host event).
    wake: Arc<Notify>,
    /// What each user holds open (live logs, log reads).
    caps: crate::caps::UserCaps,
}

const ROW_DELETING: &str = "Deleting";
/// How long a request waits for the host before leaving the rest to the reconciler.
const HOST_CALL_BUDGET: Duration = Duration::from_secs(5);
const ROW_PROVISIONING: &str = "Provisioning";

impl Clusters {
    pub fn new(
        db: DatabaseConnection,
        host: Host,
        settings: ClusterSettings,
        installation: Uuid,
    ) -> Self {
        let (changes, _) = broadcast::channel(256);
        let caps = crate::caps::UserCaps::new(settings.user_limits);
        Self {
            db,
            host,
            settings: std::sync::RwLock::new(Arc::new(settings)),
            installation,
            changes,
            wake: Arc::new(Notify::new()),
            caps,
        }
    }

    pub fn installation(&self) -> Uuid {
        self.installation
    }

    /// The rules clusters are made by, as they are now (an admin may change them while KRaft
    /// runs: hold on to this only for one request).
    pub fn settings(&self) -> Arc<ClusterSettings> {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the rules (the caller checked them).
    pub fn set_settings(&self, settings: ClusterSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }

    /// A place for one more live log view of `owner_id`, held while the view is open.
    pub fn log_view_permit(&self, owner_id: Uuid) -> Result<crate::caps::Permit, ClusterError> {
        Ok(self.caps.acquire(owner_id, crate::caps::Use::LogView)?)
    }

    /// A place for one more log read (download or previous run) of `owner_id`, held until what
    /// was read has been sent.
    pub fn log_read_permit(&self, owner_id: Uuid) -> Result<crate::caps::Permit, ClusterError> {
        Ok(self.caps.acquire(owner_id, crate::caps::Use::LogRead)?)
    }

    /// What each user holds open now.
    pub fn caps(&self) -> &crate::caps::UserCaps {
        &self.caps
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Changes to any cluster, for live views.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterChange> {
        self.changes.subscribe()
    }

    pub(crate) fn changed(&self, row: &clusters::Model) {
        // Nobody listening is fine.
        let _ = self.changes.send(ClusterChange { owner_id: row.owner_id, cluster_id: row.id });
    }

    /// On a replica that does not lead, another process writes what the reconciler finds: look
    /// at every row's `updated_at` each `every` and tell live views about what changed, appeared
    /// or went away, as the leader's own writes do on the leader.
    pub async fn follow_changes(self: Arc<Self>, every: std::time::Duration) {
        use sea_orm::QuerySelect;
        let mut seen: std::collections::HashMap<Uuid, (Option<Uuid>, chrono::DateTime<Utc>)> =
            std::collections::HashMap::new();
        let mut first = true;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let rows: Vec<(Uuid, Option<Uuid>, chrono::DateTime<Utc>)> =
                match clusters::Entity::find()
                    .select_only()
                    .columns([
                        clusters::Column::Id,
                        clusters::Column::OwnerId,
                        clusters::Column::UpdatedAt,
                    ])
                    .into_tuple()
                    .all(&self.db)
                    .await
                {
                    Ok(rows) => rows,
                    Err(error) => {
                        tracing::debug!(%error, "cannot look for cluster changes");
                        continue;
                    }
                };
            let mut now = std::collections::HashMap::with_capacity(rows.len());
            for (id, owner, updated) in rows {
                if !first && seen.get(&id) != Some(&(owner, updated)) {
                    let _ = self.changes.send(ClusterChange { owner_id: owner, cluster_id: id });
                }
                now.insert(id, (owner, updated));
            }
            for (id, (owner, _)) in &seen {
                if !now.contains_key(id) {
                    let _ = self.changes.send(ClusterChange { owner_id: *owner, cluster_id: *id });
                }
            }
            seen = now;
            first = false;
        }
    }

    pub fn wake_reconciler(&self) {
        self.wake.notify_one();
    }

    /// Validates, checks the user's limits, records the row, then provisions on the host.
    /// If the host call fails the row stays `Provisioning` and the reconciler retries it.
    pub async fn create(
        &self,
        owner: &User,
        input: &CreateClusterInput,
        client_addr: Option<&str>,
    ) -> Result<ClusterRecord, ClusterError> {
        let settings = self.settings_for(owner.id).await?;
        let request = settings.parse(input).map_err(ClusterError::Invalid)?;
        let row = self.new_row(owner, &request, None);
        // Count and insert in one transaction that first takes the owner's row for writing: on
        // PostgreSQL a row lock, on SQLite the database's write lock. Parallel creates of one user
        // are serialised there, so none can count before another's insert is committed.
        let txn = self.db.begin().await?;
        users::Entity::update_many()
            .col_expr(users::Column::Username, Expr::col(users::Column::Username).into())
            .filter(users::Column::Id.eq(owner.id))
            .exec(&txn)
            .await?;
        // A workshop's clusters count against its seats, not against their owner's limit.
        let owned = clusters::Entity::find()
            .filter(clusters::Column::OwnerId.eq(owner.id))
            .filter(clusters::Column::WorkshopId.is_null())
            .count(&txn)
            .await?;
        if owned as usize >= settings.max_clusters {
            let going = clusters::Entity::find()
                .filter(clusters::Column::OwnerId.eq(owner.id))
                .filter(clusters::Column::WorkshopId.is_null())
                .filter(clusters::Column::DeletingAt.is_not_null())
                .count(&txn)
                .await?;
            return Err(ClusterError::LimitReached(if going > 0 {
                format!(
                    "You have {owned} clusters, the most your account allows; {going} of them {} still being deleted on the host, so try again once {} gone.",
                    if going == 1 { "is" } else { "are" },
                    if going == 1 { "it is" } else { "they are" },
                )
            } else {
                format!(
                    "You have {owned} clusters, the most your account allows. Delete one to create another."
                )
            }));
        }
        self.insert_row(&txn, &row).await?;
        txn.commit().await?;
        self.launch(owner, &row, client_addr).await?;
        Ok(row)
    }

    /// The row of a new cluster `request` of `owner`, not yet stored; `workshop` is the workshop
    /// whose seat (or pool) it is.
    pub(crate) fn new_row(
        &self,
        owner: &User,
        request: &ClusterRequest,
        workshop: Option<&crate::db::entities::workshops::Model>,
    ) -> ClusterRecord {
        let id = Uuid::new_v4();
        let now = Utc::now();
        let short = id.simple().to_string();
        clusters::Model {
            id,
            owner_id: Some(owner.id),
            name: request.name.clone(),
            host_namespace: format!("kraft-{}-{}", request.name, &short[..8]),
            // A workshop cluster may change hands (from the pool to an attendee): its name is
            // unique by itself, and its host name follows the workshop, not the owner.
            hostname: match workshop {
                Some(w) => self.settings().hostname(&request.name, &w.code.to_lowercase()),
                None => self.settings().hostname(&request.name, &owner.username),
            },
            mode: request.mode.as_str().to_owned(),
            servers: request.servers,
            agents: request.agents,
            version: request.version.clone(),
            tls_sans: serde_json::to_string(&request.tls_sans).unwrap_or_else(|_| "[]".into()),
            persistence: match request.persistence {
                crate::host::k3k::PersistenceMode::Dynamic => "dynamic".into(),
                crate::host::k3k::PersistenceMode::Ephemeral => "ephemeral".into(),
            },
            storage_gi: request.storage_gi,
            phase: ROW_PROVISIONING.into(),
            status_message: Some("Asking the host for the cluster".into()),
            conditions: None,
            endpoint: None,
            host_version: None,
            created_at: now,
            updated_at: now,
            ready_at: None,
            deleting_at: None,
            last_api_request_at: None,
            workshop_id: workshop.map(|w| w.id),
            expires_at: match workshop {
                Some(w) => Some(w.clusters_expire_at()),
                None => self.idle_expiry_from(now),
            },
            pooled: false,
        }
    }

    /// Stores a new row inside the caller's transaction; a name the owner already uses is a field
    /// error.
    pub(crate) async fn insert_row(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        row: &ClusterRecord,
    ) -> Result<(), ClusterError> {
        let taken = clusters::Entity::find()
            .filter(clusters::Column::OwnerId.eq(row.owner_id))
            .filter(clusters::Column::Name.eq(&row.name))
            .one(txn)
            .await?;
        match taken {
            // Its namespace stays Terminating on the host while the pods stop; the name (and its
            // host name) is free once the host confirms it is gone.
            Some(old) if old.deleting_at.is_some() => {
                return Err(ClusterError::Invalid(vec![FieldError::new(
                    "name",
                    format!(
                        "Your cluster {} is still being deleted: its name is free again once the host has removed it, usually within a minute.",
                        row.name
                    ),
                )]))
            }
            Some(_) => return Err(name_taken(&row.name)),
            None => {}
        }
        let active: clusters::ActiveModel = row.clone().into();
        if let Err(error) = clusters::Entity::insert(active).exec_without_returning(txn).await {
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => name_taken(&row.name),
                _ => ClusterError::Database(error),
            });
        }
        Ok(())
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Re-applies a row's host objects after it changed hands (its owner label); a failure is
    /// left to the reconciler.
    pub(crate) async fn relabel(&self, row: &ClusterRecord) {
        if let Err(error) =
            provision::ensure(&self.host, row, &self.settings(), self.installation).await
        {
            tracing::warn!(cluster = %row.id, %error, "could not relabel a cluster for its new owner");
        }
    }

    /// After a new row is committed: audits it, tells its owner's views, and provisions it on
    /// the host within the request's budget (the reconciler finishes what is left).
    pub(crate) async fn launch(
        &self,
        owner: &User,
        row: &ClusterRecord,
        client_addr: Option<&str>,
    ) -> Result<(), ClusterError> {
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::ClusterCreated, owner.id, client_addr).target(&row.name),
        )
        .await?;
        self.changed(row);
        // The row is the promise; if the host is slow or failing, the reconciler keeps it and
        // the user is not kept waiting.
        match tokio::time::timeout(
            HOST_CALL_BUDGET,
            provision::ensure(&self.host, row, &self.settings(), self.installation),
        )
        .await
        {
            // The host has it all: the reconciler follows its progress from the watch.
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(cluster = %row.id, %error, "provisioning failed; the reconciler will retry");
                self.wake_reconciler();
            }
            Err(_) => {
                tracing::warn!(cluster = %row.id, "provisioning is slow; the reconciler will finish it");
                self.wake_reconciler();
            }
        }
        Ok(())
    }

    /// Upgrades or scales one of `owner`'s clusters within policy (see
    /// [`ClusterSettings::parse_change`]): the row first (the reconciler carries it to the host
    /// whatever happens next), then the host within the request's budget. A workshop's cluster
    /// keeps what its organizer chose.
    pub async fn change(
        &self,
        owner: &User,
        id: Uuid,
        input: &ChangeClusterInput,
        client_addr: Option<&str>,
    ) -> Result<ClusterRecord, ClusterError> {
        let row = self.get(owner.id, id).await?;
        if row.deleting_at.is_some() {
            return Err(ClusterError::NotReady("The cluster is being deleted.".into()));
        }
        if row.workshop_id.is_some() {
            return Err(ClusterError::LimitReached(
                "A workshop's cluster keeps the version and size its organizer chose.".into(),
            ));
        }
        let settings = self.settings_for(owner.id).await?;
        let change = settings.parse_change(&row, input).map_err(ClusterError::Invalid)?;
        if (change.version.as_str(), change.servers, change.agents)
            == (row.version.as_str(), row.servers, row.agents)
        {
            return Ok(row);
        }
        // Only from what was validated against: a change that raced this one (two tabs) must
        // not let a version skip a minor.
        let updated = clusters::Entity::update_many()
            .col_expr(clusters::Column::Version, Expr::value(change.version.clone()))
            .col_expr(clusters::Column::Servers, Expr::value(change.servers))
            .col_expr(clusters::Column::Agents, Expr::value(change.agents))
            .col_expr(clusters::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(clusters::Column::Id.eq(row.id))
            .filter(clusters::Column::DeletingAt.is_null())
            .filter(clusters::Column::Version.eq(row.version.clone()))
            .filter(clusters::Column::Servers.eq(row.servers))
            .filter(clusters::Column::Agents.eq(row.agents))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(ClusterError::NotReady(
                "The cluster changed meanwhile: look at it again and retry.".into(),
            ));
        }
        let mut what = Vec::new();
        if change.version != row.version {
            what.push(format!("{} → {}", row.version, change.version));
        }
        if change.servers != row.servers {
            what.push(format!("servers {} → {}", row.servers, change.servers));
        }
        if change.agents != row.agents {
            what.push(format!("agents {} → {}", row.agents, change.agents));
        }
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::ClusterChanged, owner.id, client_addr).target(format!(
                "{}: {}",
                row.name,
                what.join(", ")
            )),
        )
        .await?;
        let row = self.get(owner.id, id).await?;
        self.changed(&row);
        match tokio::time::timeout(
            HOST_CALL_BUDGET,
            provision::ensure(&self.host, &row, &self.settings(), self.installation),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(cluster = %row.id, %error, "applying a change failed; the reconciler will retry");
                self.wake_reconciler();
            }
            Err(_) => {
                tracing::warn!(cluster = %row.id, "applying a change is slow; the reconciler will finish it");
                self.wake_reconciler();
            }
        }
        Ok(row)
    }

    /// When a cluster last used at `used` expires, if idle clusters do.
    fn idle_expiry_from(&self, used: chrono::DateTime<Utc>) -> Option<chrono::DateTime<Utc>> {
        let ttl = chrono::TimeDelta::from_std(self.settings().idle_expiry?).ok()?;
        used.checked_add_signed(ttl)
    }

    /// Moves one of `owner`'s clusters' idle expiry a full period ahead ("keep"); answers the
    /// new expiry. Only idle expiry can be put off: a workshop's end is its organizer's.
    pub async fn keep(
        &self,
        owner: &User,
        id: Uuid,
        client_addr: Option<&str>,
    ) -> Result<chrono::DateTime<Utc>, ClusterError> {
        let row = self.get(owner.id, id).await?;
        if row.deleting_at.is_some() {
            return Err(ClusterError::NotReady("The cluster is being deleted.".into()));
        }
        if row.workshop_id.is_some() {
            return Err(ClusterError::LimitReached(
                "A workshop's cluster is deleted when the workshop ends; only its organizer can extend it.".into(),
            ));
        }
        let Some(until) = self.idle_expiry_from(Utc::now()) else {
            return Err(ClusterError::NotReady("Clusters here do not expire.".into()));
        };
        clusters::Entity::update_many()
            .col_expr(clusters::Column::ExpiresAt, Expr::value(until))
            .col_expr(clusters::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(clusters::Column::Id.eq(row.id))
            .filter(clusters::Column::DeletingAt.is_null())
            .exec(&self.db)
            .await?;
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::ClusterKept, owner.id, client_addr).target(&row.name),
        )
        .await?;
        self.changed(&row);
        Ok(until)
    }

    /// Keeps every idle expiry in step with the setting and with use: a cluster used through
    /// the gateway moves its expiry on, expiries never move back (what an owner was shown
    /// holds), a cluster that had none when the setting was turned on gets at least a warning
    /// period, and with the setting off only workshops' clusters expire. Answers how many rows
    /// changed.
    pub(crate) async fn follow_idle_expiry(&self) -> Result<usize, ClusterError> {
        use sea_orm::QuerySelect;
        let Some(_) = self.settings().idle_expiry else {
            let cleared = clusters::Entity::update_many()
                .col_expr(
                    clusters::Column::ExpiresAt,
                    Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .filter(clusters::Column::WorkshopId.is_null())
                .filter(clusters::Column::ExpiresAt.is_not_null())
                .filter(clusters::Column::DeletingAt.is_null())
                .exec(&self.db)
                .await?;
            return Ok(cleared.rows_affected as usize);
        };
        type Row = (
            Uuid,
            chrono::DateTime<Utc>,
            Option<chrono::DateTime<Utc>>,
            Option<chrono::DateTime<Utc>>,
        );
        let rows: Vec<Row> = clusters::Entity::find()
            .select_only()
            .columns([
                clusters::Column::Id,
                clusters::Column::CreatedAt,
                clusters::Column::LastApiRequestAt,
                clusters::Column::ExpiresAt,
            ])
            .filter(clusters::Column::WorkshopId.is_null())
            .filter(clusters::Column::DeletingAt.is_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let now = Utc::now();
        let mut moved = 0;
        for (id, created, used, expires) in rows {
            let Some(by_use) = self.idle_expiry_from(used.unwrap_or(created).max(created)) else {
                continue;
            };
            let wanted = match expires {
                Some(current) => by_use.max(current),
                None => by_use.max(now + spec::EXPIRY_WARNING),
            };
            if Some(wanted) != expires {
                clusters::Entity::update_many()
                    .col_expr(clusters::Column::ExpiresAt, Expr::value(wanted))
                    .filter(clusters::Column::Id.eq(id))
                    .filter(clusters::Column::DeletingAt.is_null())
                    .exec(&self.db)
                    .await?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// How far the host has come with what the row asks for: its servers (and a virtual
    /// cluster's agents) running the row's version, and none too many. `None` once it is all
    /// there (or the cluster is not running yet: then it is provisioning, not changing).
    pub async fn rollout(&self, row: &ClusterRecord) -> Result<Option<Rollout>, ClusterError> {
        if row.ready_at.is_none() || row.deleting_at.is_some() {
            return Ok(None);
        }
        let selector = format!("cluster={},!{}", row.name, crate::stream::metrics::WORKLOAD_LABEL);
        let pods = tenant::pods(&self.host, &row.host_namespace, &selector).await?;
        let image = format!(":{}", row.version);
        let mut rollout = Rollout {
            version: row.version.clone(),
            servers_wanted: row.servers,
            agents_wanted: if row.mode() == crate::host::k3k::ClusterMode::Shared {
                0
            } else {
                row.agents
            },
            ..Rollout::default()
        };
        for pod in pods.iter().filter(|p| made_by_k3k(p)) {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let server = labels.get("role").map(String::as_str) == Some("server");
            let agent = labels.get("type").map(String::as_str) == Some("agent")
                && labels.get("mode").map(String::as_str) != Some("shared");
            if !server && !agent {
                continue; // shared mode's kubelets follow the host's nodes
            }
            let current = pod.metadata.deletion_timestamp.is_none()
                && pod.spec.as_ref().is_some_and(|s| {
                    s.containers
                        .iter()
                        .all(|c| c.image.as_deref().is_some_and(|i| i.ends_with(&image)))
                })
                && pod.status.as_ref().is_some_and(|s| {
                    s.phase.as_deref() == Some("Running")
                        && s.container_statuses.iter().flatten().all(|c| c.ready)
                });
            let (count, done) = if server {
                (&mut rollout.servers_present, &mut rollout.servers_done)
            } else {
                (&mut rollout.agents_present, &mut rollout.agents_done)
            };
            *count += 1;
            if current {
                *done += 1;
            }
        }
        Ok((!rollout.complete()).then_some(rollout))
    }

    pub async fn list(&self, owner_id: Uuid) -> Result<Vec<ClusterRecord>, ClusterError> {
        Ok(clusters::Entity::find()
            .filter(clusters::Column::OwnerId.eq(owner_id))
            .filter(clusters::Column::Pooled.eq(false))
            .order_by_asc(clusters::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// The owner's clusters as lists show them (only the columns a list needs), oldest first.
    pub async fn listing(&self, owner_id: Uuid) -> Result<Vec<ClusterListing>, ClusterError> {
        use sea_orm::QuerySelect;
        Ok(clusters::Entity::find()
            .select_only()
            .columns(ClusterListing::COLUMNS)
            .filter(clusters::Column::OwnerId.eq(owner_id))
            .filter(clusters::Column::Pooled.eq(false))
            .order_by_asc(clusters::Column::CreatedAt)
            .into_model::<ClusterListing>()
            .all(&self.db)
            .await?)
    }

    /// How many clusters are in each phase (phases with none are left out).
    pub async fn count_by_phase(&self) -> Result<Vec<(String, i64)>, ClusterError> {
        use sea_orm::{FromQueryResult, QuerySelect};
        #[derive(FromQueryResult)]
        struct Count {
            phase: String,
            n: i64,
        }
        let counts = clusters::Entity::find()
            .select_only()
            .column(clusters::Column::Phase)
            .column_as(clusters::Column::Id.count(), "n")
            .group_by(clusters::Column::Phase)
            .into_model::<Count>()
            .all(&self.db)
            .await?;
        Ok(counts.into_iter().map(|c| (c.phase, c.n)).collect())
    }

    /// All clusters (admins).
    pub async fn list_all(&self) -> Result<Vec<ClusterRecord>, ClusterError> {
        Ok(clusters::Entity::find().order_by_asc(clusters::Column::CreatedAt).all(&self.db).await?)
    }

    /// A cluster of `owner_id`; someone else's is exactly as "not found" as a missing one.
    /// Whether no server of cluster `id` answers for now, as its row says: how the gateway
    /// explains a request that could not get through.
    pub async fn server_restarting(&self, id: Uuid) -> Result<bool, ClusterError> {
        let row = clusters::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row.is_some_and(|r| r.server_restarting()))
    }

    pub async fn get(&self, owner_id: Uuid, id: Uuid) -> Result<ClusterRecord, ClusterError> {
        clusters::Entity::find_by_id(id)
            .filter(clusters::Column::OwnerId.eq(owner_id))
            .one(&self.db)
            .await?
            .ok_or(ClusterError::NotFound)
    }

    /// Marks the cluster for deletion (after the user typed its name) and starts removing it
    /// from the host; the row goes when the host confirms.
    pub async fn delete(
        &self,
        owner: &User,
        id: Uuid,
        typed_name: &str,
        client_addr: Option<&str>,
    ) -> Result<(), ClusterError> {
        let row = self.get(owner.id, id).await?;
        if typed_name.trim() != row.name {
            return Err(ClusterError::Invalid(vec![FieldError::new(
                "confirm_name",
                "Type the cluster's name exactly to confirm.",
            )]));
        }
        self.retire(
            &row,
            AuditEvent::own(AuditAction::ClusterDeleted, owner.id, client_addr).target(&row.name),
        )
        .await
    }

    /// Marks a cluster for deletion, records why, and starts removing it from the host within
    /// the request's budget (the reconciler finishes what is left, then drops the row).
    pub(crate) async fn retire(
        &self,
        row: &ClusterRecord,
        event: AuditEvent,
    ) -> Result<(), ClusterError> {
        self.mark_deleting(row).await?;
        audit::record(&self.db, event).await?;
        match tokio::time::timeout(HOST_CALL_BUDGET, provision::remove(&self.host, row)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(cluster = %row.id, %error, "host deletion failed; the reconciler will retry")
            }
            Err(_) => {
                tracing::warn!(cluster = %row.id, "host deletion is slow; the reconciler will finish it")
            }
        }
        self.wake_reconciler();
        Ok(())
    }

    async fn mark_deleting(&self, row: &clusters::Model) -> Result<(), ClusterError> {
        if row.deleting_at.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        clusters::Entity::update(clusters::ActiveModel {
            id: Set(row.id),
            phase: Set(ROW_DELETING.into()),
            status_message: Set(Some("Removing the cluster from the host".into())),
            deleting_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        self.changed(row);
        Ok(())
    }

    /// Marks every cluster of a user for deletion (account deletion); the reconciler removes
    /// them from the host and then the rows, which outlive the account until then.
    pub async fn delete_all_of(&self, owner_id: Uuid) -> Result<usize, ClusterError> {
        // Their workshops' pooled clusters too.
        let rows = clusters::Entity::find()
            .filter(clusters::Column::OwnerId.eq(owner_id))
            .all(&self.db)
            .await?;
        for row in &rows {
            self.mark_deleting(row).await?;
            if let Err(error) = provision::remove(&self.host, row).await {
                tracing::warn!(cluster = %row.id, %error, "host deletion failed; the reconciler will retry");
            }
        }
        self.wake_reconciler();
        Ok(rows.len())
    }

    /// The host's events about a cluster, newest first.
    pub async fn events(&self, owner_id: Uuid, id: Uuid) -> Result<Vec<HostEvent>, ClusterError> {
        let row = self.get(owner_id, id).await?;
        let list = tenant::events(&self.host, &row.host_namespace).await?;
        let own_prefix =
            format!("{}-", crate::host::names::k3k_object(&row.name, "").trim_end_matches('-'));
        let claim_prefix = format!("varlibrancherk3s-{own_prefix}");
        let mut events: Vec<HostEvent> = list
            .into_iter()
            .filter(|e| {
                let kind = e.involved_object.kind.as_deref().unwrap_or_default();
                let name = e.involved_object.name.as_deref().unwrap_or_default();
                // K3k's own objects only (synced tenant pods have other names).
                let k3k = name.starts_with(&own_prefix) || name.starts_with(&claim_prefix);
                kind == "Cluster"
                    || (k3k
                        && e.type_.as_deref() == Some("Warning")
                        && WORKLOAD_KINDS.contains(&kind))
            })
            .map(|e| HostEvent {
                object: format!(
                    "{} {}",
                    e.involved_object.kind.as_deref().unwrap_or_default(),
                    e.involved_object.name.as_deref().unwrap_or_default()
                ),
                kind: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
                at: e
                    .last_timestamp
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.map(|t| t.0.to_string())),
                count: e.count.unwrap_or(1),
            })
            .collect();
        events.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(events)
    }
}

/// What kubectl's STATUS column says of a crash-looping pod instead of its phase (which stays
/// `Running`), with why its last run ended: "CrashLoopBackOff (OOMKilled)".
fn crash_loop(statuses: &[k8s_openapi::api::core::v1::ContainerStatus]) -> Option<String> {
    statuses.iter().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        if waiting != "CrashLoopBackOff" {
            return None;
        }
        let ended = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        Some(match ended.and_then(|t| t.reason.clone()) {
            Some(reason) => format!("{waiting} ({reason})"),
            None => waiting,
        })
    })
}

/// Where a change of a cluster's version or size stands on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    pub version: String,
    pub servers_wanted: i32,
    /// Server pods running the wanted version and ready.
    pub servers_done: i32,
    /// Server pods there are, whatever their version.
    pub servers_present: i32,
    pub agents_wanted: i32,
    pub agents_done: i32,
    pub agents_present: i32,
}

impl Rollout {
    pub fn complete(&self) -> bool {
        self.servers_done == self.servers_wanted
            && self.servers_present == self.servers_wanted
            && self.agents_done == self.agents_wanted
            && self.agents_present == self.agents_wanted
    }
}

/// A server or agent pod of a cluster, as the log viewer lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPod {
    pub name: String,
    pub role: crate::stream::metrics::PodRole,
    pub containers: Vec<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
}

impl Clusters {
    /// The server and agent pods of one of `owner_id`'s clusters.
    pub async fn pods(&self, owner_id: Uuid, id: Uuid) -> Result<Vec<ClusterPod>, ClusterError> {
        let row = self.get(owner_id, id).await?;
        let selector = format!("cluster={},!{}", row.name, crate::stream::metrics::WORKLOAD_LABEL);
        let list = tenant::pods(&self.host, &row.host_namespace, &selector).await?;
        let mut pods: Vec<ClusterPod> = list
            .into_iter()
            .filter(made_by_k3k)
            .map(|pod| {
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let role = if labels.get("role").map(String::as_str) == Some("server") {
                    crate::stream::metrics::PodRole::Server
                } else {
                    crate::stream::metrics::PodRole::Agent
                };
                let status = pod.status.clone().unwrap_or_default();
                let statuses = status.container_statuses.clone().unwrap_or_default();
                ClusterPod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    role,
                    containers: pod
                        .spec
                        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
                        .unwrap_or_default(),
                    phase: crash_loop(&statuses)
                        .unwrap_or_else(|| status.phase.unwrap_or_else(|| "Unknown".into())),
                    ready: !statuses.is_empty() && statuses.iter().all(|c| c.ready),
                    restarts: statuses.iter().map(|c| c.restart_count).sum(),
                }
            })
            .collect();
        use crate::stream::metrics::PodRole;
        pods.sort_by(|a, b| {
            (a.role != PodRole::Server, &a.name).cmp(&(b.role != PodRole::Server, &b.name))
        });
        Ok(pods)
    }

    /// Where the logs of `pod`/`container` of one of `owner_id`'s clusters are; a pod that is not
    /// the cluster's is as "not found" as a missing one.
    pub async fn log_key(
        &self,
        owner_id: Uuid,
        id: Uuid,
        pod: &str,
        container: Option<&str>,
    ) -> Result<crate::stream::logs::LogKey, ClusterError> {
        let row = self.get(owner_id, id).await?;
        let pods = self.pods(owner_id, id).await?;
        let found = pods.into_iter().find(|p| p.name == pod).ok_or(ClusterError::NotFound)?;
        let container = match container.filter(|c| !c.is_empty()) {
            Some(c) if found.containers.iter().any(|x| x == c) => c.to_owned(),
            Some(_) => return Err(ClusterError::NotFound),
            None => found.containers.first().cloned().ok_or(ClusterError::NotFound)?,
        };
        Ok(crate::stream::logs::LogKey {
            namespace: row.host_namespace,
            pod: found.name,
            container,
        })
    }

    /// The log of a container's previous run (it crashed or was restarted), at most the last
    /// `max_lines` lines, read the way live lines are (timestamp, level, long lines cut).
    /// `NotReady` with a plain explanation when the container has not restarted. The caller holds
    /// one of the user's log read permits.
    pub async fn previous_log(
        &self,
        _permit: &crate::caps::Permit,
        owner_id: Uuid,
        id: Uuid,
        pod: &str,
        container: Option<&str>,
        max_lines: i64,
    ) -> Result<(crate::stream::logs::LogKey, Vec<crate::stream::logs::LogLine>), ClusterError>
    {
        use crate::stream::logs::{newest_lines, split_timestamp, LogLine, LogSettings};
        let key = self.log_key(owner_id, id, pod, container).await?;
        let params = kube::api::LogParams {
            container: Some(key.container.clone()),
            previous: true,
            timestamps: true,
            tail_lines: Some(max_lines),
            ..Default::default()
        };
        let kept = match tenant::log(&self.host, &key.namespace, &key.pod, &params).await {
            Ok(reader) => newest_lines(reader, 8 * 1024 * 1024).await.0,
            // The kubelet answers 400 when there is no terminated container to read.
            Err(kube::Error::Api(status)) if status.code == 400 => {
                return Err(ClusterError::NotReady(format!(
                    "{} in {} has not restarted, so there is no previous log.",
                    key.container, key.pod
                )))
            }
            Err(error) => return Err(error.into()),
        };
        let max_chars = LogSettings::default().max_line_chars;
        let lines = kept
            .iter()
            .filter_map(|line| split_timestamp(line))
            .map(|(ts, text)| LogLine::new(ts, text, max_chars))
            .collect();
        Ok((key, lines))
    }
}

/// A log as a file: the newest lines within a size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDownload {
    pub key: crate::stream::logs::LogKey,
    pub previous: bool,
    pub text: String,
}

impl LogDownload {
    pub fn filename(&self) -> String {
        let run = if self.previous { "-previous" } else { "" };
        format!("{}-{}{run}.log", self.key.pod, self.key.container)
    }
}

/// A download is cut at this size.
pub const DOWNLOAD_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// At most this many of the newest lines are read for a download, then cut to the size limit.
const DOWNLOAD_READ_LINES: i64 = 200_000;

impl Clusters {
    /// The retained log of a container (or of its previous run), its newest
    /// `DOWNLOAD_LIMIT_BYTES`, with a first line saying what was left out, if anything. The
    /// caller holds one of the user's log read permits until the text is sent.
    pub async fn download_log(
        &self,
        _permit: &crate::caps::Permit,
        owner_id: Uuid,
        id: Uuid,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogDownload, ClusterError> {
        use crate::stream::logs::newest_lines;
        let key = self.log_key(owner_id, id, pod, container).await?;
        let params = kube::api::LogParams {
            container: Some(key.container.clone()),
            timestamps: true,
            // The newest lines (the host's own `limitBytes` would keep the oldest); the line count
            // only bounds what is read for a log far over the limit.
            tail_lines: Some(DOWNLOAD_READ_LINES),
            previous,
            ..Default::default()
        };
        let reader = match tenant::log(&self.host, &key.namespace, &key.pod, &params).await {
            Ok(reader) => reader,
            // The kubelet answers 400 when there is no terminated container to read.
            Err(kube::Error::Api(status)) if previous && status.code == 400 => {
                return Err(ClusterError::Missing(
                    "This container has not restarted, so there is no previous log.".into(),
                ))
            }
            Err(error) => return Err(error.into()),
        };
        let (kept, cut) = newest_lines(reader, DOWNLOAD_LIMIT_BYTES).await;
        let mut text = String::new();
        if cut > 0 {
            text = format!(
                "[kraft: {cut} bytes of older lines left out; a download holds the newest {} MiB]\n",
                DOWNLOAD_LIMIT_BYTES >> 20
            );
        }
        for line in kept {
            text.push_str(&line);
            text.push('\n');
        }
        Ok(LogDownload { key, previous, text })
    }
}

fn name_taken(name: &str) -> ClusterError {
    ClusterError::Invalid(vec![FieldError::new(
        "name",
        format!("You already have a cluster called {name}."),
    )])
}

/// K3k's own pods belong to the workloads it makes: the servers' StatefulSet, the virtual agents'
/// Deployment (through its ReplicaSet) and the shared-mode kubelet DaemonSet (K3k v1.1.0
/// `pkg/controller/cluster/server/server.go`, `agent/virtual.go`, `agent/shared.go`). A pod
/// without such a controller is not one of them, whatever its labels say.
fn made_by_k3k(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|owner| {
        owner.controller == Some(true)
            && owner.api_version == "apps/v1"
            && matches!(owner.kind.as_str(), "StatefulSet" | "ReplicaSet" | "DaemonSet")
    })
}

//! Per-user limits: an admin gives one account more (a teacher, a CI pipeline) or less than the
//! platform's limits (clusters, servers, agents, storage). Each is kept in the database over the
//! platform's value (an empty field goes back to it), audited, and read at every create or change,
//! so every replica applies it at once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::{ClusterError, ClusterSettings, Clusters};
use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, User};
use crate::db::entities::{user_limits, users};
use crate::settings::whole_number;

/// What one account may have beyond (or short of) the platform's limits; `None`: the platform's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserLimits {
    pub max_clusters: Option<usize>,
    pub max_servers: Option<i32>,
    pub max_agents: Option<i32>,
    pub max_storage_gi: Option<i32>,
}

/// The admin's form, as typed: an empty field means "the platform's". Its fields are named
/// `account`, `clusters`, `servers`, `agents` and `volume_gi` (field errors say which).
#[derive(Debug, Clone, Default)]
pub struct UserLimitsInput {
    pub max_clusters: String,
    pub max_servers: String,
    pub max_agents: String,
    pub max_storage_gi: String,
}

impl From<user_limits::Model> for UserLimits {
    fn from(row: user_limits::Model) -> Self {
        Self {
            max_clusters: row.max_clusters.and_then(|n| usize::try_from(n).ok()),
            max_servers: row.max_servers,
            max_agents: row.max_agents,
            max_storage_gi: row.max_storage_gi,
        }
    }
}

impl UserLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply(&self, settings: &mut ClusterSettings) {
        if let Some(n) = self.max_clusters {
            settings.max_clusters = n;
        }
        if let Some(n) = self.max_servers {
            settings.max_servers = n;
        }
        if let Some(n) = self.max_agents {
            settings.max_agents = n;
        }
        if let Some(n) = self.max_storage_gi {
            settings.max_storage_gi = n;
        }
    }

    /// "5 clusters, 6 agents" (what differs from the platform's).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.max_clusters {
            parts.push(format!("{n} clusters"));
        }
        if let Some(n) = self.max_servers {
            parts.push(format!("{n} servers"));
        }
        if let Some(n) = self.max_agents {
            parts.push(format!("{n} agents"));
        }
        if let Some(n) = self.max_storage_gi {
            parts.push(format!("{n} GiB storage"));
        }
        if parts.is_empty() {
            "the platform's limits".into()
        } else {
            parts.join(", ")
        }
    }
}

impl UserLimitsInput {
    fn parse(&self) -> Result<UserLimits, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut number = |field, raw: &str, range| {
            whole_number(field, raw, range).unwrap_or_else(|e| {
                errors.push(e);
                None
            })
        };
        let limits = UserLimits {
            max_clusters: number("clusters", &self.max_clusters, 0..=1000).map(|n| n as usize),
            max_servers: number("servers", &self.max_servers, 1..=3).map(|n| n as i32),
            max_agents: number("agents", &self.max_agents, 0..=50).map(|n| n as i32),
            max_storage_gi: number("volume_gi", &self.max_storage_gi, 1..=10_000).map(|n| n as i32),
        };
        if limits.max_servers == Some(2) {
            errors.push(FieldError::new(
                "servers",
                "Use 1 or 3: etcd needs an odd number of servers.",
            ));
        }
        if errors.is_empty() {
            Ok(limits)
        } else {
            Err(errors)
        }
    }
}

impl Clusters {
    /// The settings `user_id`'s clusters are made and changed under: the platform's, with the
    /// user's own limits over them.
    pub async fn settings_for(&self, user_id: Uuid) -> Result<Arc<ClusterSettings>, DbErr> {
        let row = user_limits::Entity::find_by_id(user_id).one(&self.db).await?;
        let Some(limits) = row.map(UserLimits::from).filter(|l| !l.is_empty()) else {
            return Ok(self.settings());
        };
        let mut settings = (*self.settings()).clone();
        limits.apply(&mut settings);
        Ok(Arc::new(settings))
    }

    /// Every account's own limits (for the admin page).
    pub async fn user_limits(&self) -> Result<HashMap<Uuid, UserLimits>, DbErr> {
        let rows = user_limits::Entity::find().all(&self.db).await?;
        Ok(rows.into_iter().map(|row| (row.user_id, UserLimits::from(row))).collect())
    }

    /// Sets the limits of the account `username` (all fields empty: the platform's again).
    pub async fn set_user_limits(
        &self,
        admin: &User,
        username: &str,
        input: &UserLimitsInput,
        client_addr: Option<&str>,
    ) -> Result<UserLimits, ClusterError> {
        let user = users::Entity::find()
            .filter(users::Column::Username.eq(username.trim().to_lowercase()))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                ClusterError::Invalid(vec![FieldError::new(
                    "account",
                    "No account has this username.",
                )])
            })?;
        let limits = input.parse().map_err(ClusterError::Invalid)?;
        let txn = self.db.begin().await?;
        if limits.is_empty() {
            user_limits::Entity::delete_by_id(user.id).exec(&txn).await?;
        } else {
            let column = |n: Option<i32>| Set(n);
            let row = user_limits::ActiveModel {
                user_id: Set(user.id),
                max_clusters: column(limits.max_clusters.map(|n| n as i32)),
                max_servers: column(limits.max_servers),
                max_agents: column(limits.max_agents),
                max_storage_gi: column(limits.max_storage_gi),
                updated_at: Set(Utc::now()),
            };
            user_limits::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(user_limits::Column::UserId)
                        .update_columns([
                            user_limits::Column::MaxClusters,
                            user_limits::Column::MaxServers,
                            user_limits::Column::MaxAgents,
                            user_limits::Column::MaxStorageGi,
                            user_limits::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        audit::record(
            &txn,
            AuditEvent::on(AuditAction::LimitsSet, Some(admin.id), Some(user.id), client_addr)
                .target(format!("{}: {}", user.username, limits.describe())),
        )
        .await?;
        txn.commit().await?;
        Ok(limits)
    }
}

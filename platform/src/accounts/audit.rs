//! The audit trail: who did what to which account, when, and from where.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::db::entities::audit_events;

/// What happened. The string forms are stored and shown; never rename one that has shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Registered,
    LoginSucceeded,
    LoginFailed,
    LoggedOut,
    PasswordChanged,
    SessionRevoked,
    OtherSessionsRevoked,
    AccountDeleted,
    InviteCreated,
    ClusterCreated,
    ClusterDeleted,
    KubeconfigIssued,
    KubeconfigRevoked,
    ClusterExpired,
    AccountDisabled,
    AccountEnabled,
    AccountDeletedByAdmin,
    AccountApproved,
    ClusterChanged,
    ClusterKept,
    OrganizerSeatsSet,
    WorkshopCreated,
    WorkshopJoined,
    WorkshopChanged,
    WorkshopEnded,
    SeatReset,
    AttendeeRemoved,
    ApiTokenCreated,
    ApiTokenRevoked,
    SettingsChanged,
    IdentityLinked,
    GroupsApplied,
    LimitsSet,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Registered => "account.registered",
            AuditAction::LoginSucceeded => "login.succeeded",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::LoggedOut => "logout",
            AuditAction::PasswordChanged => "password.changed",
            AuditAction::SessionRevoked => "session.revoked",
            AuditAction::OtherSessionsRevoked => "sessions.revoked_others",
            AuditAction::AccountDeleted => "account.deleted",
            AuditAction::InviteCreated => "invite.created",
            AuditAction::ClusterCreated => "cluster.created",
            AuditAction::ClusterDeleted => "cluster.deleted",
            AuditAction::KubeconfigIssued => "kubeconfig.issued",
            AuditAction::KubeconfigRevoked => "kubeconfig.revoked",
            AuditAction::ClusterExpired => "cluster.expired",
            AuditAction::AccountDisabled => "account.disabled",
            AuditAction::AccountEnabled => "account.enabled",
            AuditAction::AccountDeletedByAdmin => "account.deleted_by_admin",
            AuditAction::AccountApproved => "account.approved",
            AuditAction::ClusterChanged => "cluster.changed",
            AuditAction::ClusterKept => "cluster.kept",
            AuditAction::OrganizerSeatsSet => "organizer.seats_set",
            AuditAction::WorkshopCreated => "workshop.created",
            AuditAction::WorkshopJoined => "workshop.joined",
            AuditAction::WorkshopChanged => "workshop.changed",
            AuditAction::WorkshopEnded => "workshop.ended",
            AuditAction::SeatReset => "workshop.seat_reset",
            AuditAction::AttendeeRemoved => "workshop.attendee_removed",
            AuditAction::ApiTokenCreated => "api_token.created",
            AuditAction::ApiTokenRevoked => "api_token.revoked",
            AuditAction::SettingsChanged => "settings.changed",
            AuditAction::IdentityLinked => "identity.linked",
            AuditAction::GroupsApplied => "account.groups_applied",
            AuditAction::LimitsSet => "account.limits_set",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub action: AuditAction,
    pub actor_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub target: Option<String>,
    pub client_addr: Option<String>,
}

impl AuditEvent {
    /// An event a user caused on their own account.
    pub fn own(action: AuditAction, user_id: Uuid, client_addr: Option<&str>) -> Self {
        Self {
            action,
            actor_id: Some(user_id),
            subject_id: Some(user_id),
            target: None,
            client_addr: client_addr.map(str::to_owned),
        }
    }

    /// An event `actor_id` caused on `subject_id`'s account or cluster (an organizer resetting an
    /// attendee's seat, an admin), or the platform itself (`actor_id` None: expiry).
    pub fn on(
        action: AuditAction,
        actor_id: Option<Uuid>,
        subject_id: Option<Uuid>,
        client_addr: Option<&str>,
    ) -> Self {
        Self {
            action,
            actor_id,
            subject_id,
            target: None,
            client_addr: client_addr.map(str::to_owned),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into().chars().take(255).collect());
        self
    }
}

pub async fn record(db: &impl ConnectionTrait, event: AuditEvent) -> Result<(), DbErr> {
    let row = audit_events::ActiveModel {
        id: Set(Uuid::new_v4()),
        occurred_at: Set(Utc::now()),
        actor_id: Set(event.actor_id),
        subject_id: Set(event.subject_id),
        action: Set(event.action.as_str().to_owned()),
        target: Set(event.target),
        client_addr: Set(event.client_addr),
    };
    audit_events::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// An event as the account page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub target: Option<String>,
    pub client_addr: Option<String>,
}

/// The newest events about or by `user_id`.
pub async fn for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    limit: u64,
) -> Result<Vec<AuditEntry>, DbErr> {
    let rows = audit_events::Entity::find()
        .filter(
            Condition::any()
                .add(audit_events::Column::SubjectId.eq(user_id))
                .add(audit_events::Column::ActorId.eq(user_id)),
        )
        .order_by_desc(audit_events::Column::OccurredAt)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuditEntry {
            occurred_at: row.occurred_at,
            action: row.action,
            target: row.target,
            client_addr: row.client_addr,
        })
        .collect())
}

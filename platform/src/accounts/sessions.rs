//! Who is signed in: a request's session resolved to its user, the session list, sign-out and
//! revocation, and the re-check that long-lived connections (websockets) make, since they outlive
//! the request that authenticated them.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::session_store::{self, AccountSession, SessionInfo};
use super::{AccountError, Accounts, RequestMeta, User};
use crate::db::entities::{sessions, users};

/// What a long-lived connection remembers of the session that opened it, to ask later whether it
/// still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub user_id: Uuid,
    id_hash: String,
    authenticated_at: DateTime<Utc>,
}

fn session_error(error: impl std::fmt::Display) -> AccountError {
    AccountError::Database(DbErr::Custom(error.to_string()))
}

impl Accounts {
    /// The signed-in user behind a session, if the session is still valid (the absolute
    /// lifetime is enforced here; the idle one by the store's expiry).
    pub async fn authenticate(
        &self,
        session: &AccountSession,
    ) -> Result<Option<User>, AccountError> {
        let Some(state) = session.auth().await.map_err(session_error)? else {
            return Ok(None);
        };
        let age = (Utc::now() - state.authenticated_at).to_std().unwrap_or_default();
        let user = users::Entity::find_by_id(state.user_id)
            .one(&self.db)
            .await?
            .filter(|user| user.disabled_at.is_none());
        match user {
            Some(user) if age < self.settings.session_absolute => {
                session.touch(state).await.map_err(session_error)?;
                Ok(Some(user.into()))
            }
            _ => {
                session.end().await.map_err(session_error)?;
                Ok(None)
            }
        }
    }

    /// What a websocket keeps to re-check its session later (`None` for a session without a
    /// stored row or without a user).
    pub async fn live_session(
        &self,
        session: &AccountSession,
    ) -> Result<Option<LiveSession>, AccountError> {
        let Some(state) = session.auth().await.map_err(session_error)? else {
            return Ok(None);
        };
        Ok(session.id_hash().map(|id_hash| LiveSession {
            user_id: state.user_id,
            id_hash,
            authenticated_at: state.authenticated_at,
        }))
    }

    /// Whether a session that was valid is still: its row exists (not signed out, revoked or
    /// expired), it is within its absolute lifetime, and its user exists and is not disabled.
    /// Read from the database, so a revocation on another replica counts too.
    pub async fn still_signed_in(&self, live: &LiveSession) -> Result<bool, AccountError> {
        let age = (Utc::now() - live.authenticated_at).to_std().unwrap_or_default();
        if age >= self.settings.session_absolute {
            return Ok(false);
        }
        let session = sessions::Entity::find_by_id(live.id_hash.clone())
            .filter(sessions::Column::UserId.eq(live.user_id))
            .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
            .count(&self.db)
            .await?;
        if session == 0 {
            return Ok(false);
        }
        let user = users::Entity::find_by_id(live.user_id)
            .filter(users::Column::DisabledAt.is_null())
            .count(&self.db)
            .await?;
        Ok(user > 0)
    }

    pub async fn sessions(
        &self,
        user_id: Uuid,
        current: Option<&str>,
    ) -> Result<Vec<SessionInfo>, AccountError> {
        Ok(session_store::list_for_user(&self.db, user_id, current).await?)
    }

    /// Signs out one of the user's sessions; another user's session is "not found".
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        public_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), AccountError> {
        let deleted = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::PublicId.eq(public_id))
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(AccountError::NotFound);
        }
        self.revoked(user_id);
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::SessionRevoked, user_id, meta.client_addr.as_deref()),
        )
        .await?;
        Ok(())
    }

    pub async fn revoke_other_sessions(
        &self,
        user_id: Uuid,
        keep: &str,
        meta: &RequestMeta,
    ) -> Result<u64, AccountError> {
        let deleted = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::IdHash.ne(keep))
            .exec(&self.db)
            .await?;
        self.revoked(user_id);
        audit::record(
            &self.db,
            AuditEvent::own(
                AuditAction::OtherSessionsRevoked,
                user_id,
                meta.client_addr.as_deref(),
            )
            .target(format!("{} session(s)", deleted.rows_affected)),
        )
        .await?;
        Ok(deleted.rows_affected)
    }

    /// Signs out: the session's row goes first, then live views of the user re-check theirs.
    pub async fn sign_out(
        &self,
        session: &AccountSession,
        user_id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<(), AccountError> {
        session.end().await.map_err(session_error)?;
        if let Some(user_id) = user_id {
            self.revoked(user_id);
            audit::record(
                &self.db,
                AuditEvent::own(AuditAction::LoggedOut, user_id, meta.client_addr.as_deref()),
            )
            .await?;
        }
        Ok(())
    }
}

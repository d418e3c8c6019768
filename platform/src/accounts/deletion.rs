//! Deleting an account: the password and typed username are checked first; the caller then hands
//! the account's clusters to the reconciler, and only after that are the account's own rows gone.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::{AccountError, Accounts, RequestMeta, User};
use crate::db::entities::{audit_events, invites, sessions, user_identities, users};

impl Accounts {
    /// Checks a deletion request: the current password and the username typed to confirm.
    pub async fn verify_deletion(
        &self,
        user_id: Uuid,
        password: &str,
        typed_username: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        // An account made by single sign-on has no password: the typed username (on a session
        // its provider opened) confirms alone.
        let user = if self.has_password(user_id).await? {
            self.confirm_password(user_id, password, "password", meta).await?
        } else {
            users::Entity::find_by_id(user_id).one(&self.db).await?.ok_or(AccountError::NotFound)?
        };
        if typed_username.trim() != user.username {
            return Err(AccountError::field(
                "confirm_username",
                "Type your username exactly to confirm.",
            ));
        }
        Ok(user.into())
    }

    /// Removes the account's own rows (after its clusters were handed to the reconciler). A
    /// final audit event keeps the fact, not the person.
    pub async fn delete_account_data(
        &self,
        user: &User,
        meta: &RequestMeta,
    ) -> Result<(), AccountError> {
        let user_id = user.id;
        let txn = self.db.begin().await?;
        sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        user_identities::Entity::delete_many()
            .filter(user_identities::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        audit_events::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(audit_events::Column::SubjectId.eq(user_id))
                    .add(audit_events::Column::ActorId.eq(user_id)),
            )
            .exec(&txn)
            .await?;
        invites::Entity::update_many()
            .filter(invites::Column::CreatedBy.eq(user_id))
            .set(invites::ActiveModel { created_by: Set(None), ..Default::default() })
            .exec(&txn)
            .await?;
        users::Entity::delete_by_id(user_id).exec(&txn).await?;
        audit::record(
            &txn,
            AuditEvent {
                action: AuditAction::AccountDeleted,
                actor_id: None,
                subject_id: None,
                target: Some(user.username.clone()),
                client_addr: meta.client_addr.clone(),
            },
        )
        .await?;
        txn.commit().await?;
        self.revoked(user_id);
        Ok(())
    }
}

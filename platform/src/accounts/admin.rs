//! What an admin does to other accounts: disable one (it can no longer sign in, and its
//! sessions, kubeconfigs and live views stop at once; its clusters are kept) and enable it again.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::audit::{self, AuditAction, AuditEvent};
use super::{AccountError, Accounts, RequestMeta, User};
use crate::db::entities::{sessions, users};

impl Accounts {
    /// The account called `username`.
    pub async fn by_username(&self, username: &str) -> Result<User, AccountError> {
        users::Entity::find()
            .filter(users::Column::Username.eq(username.trim().to_lowercase()))
            .one(&self.db)
            .await?
            .map(User::from)
            .ok_or(AccountError::NotFound)
    }

    /// Disables (`disabled`) or enables the account `username`. A disabled account's sessions
    /// are ended here and its live views told at once; its kubeconfigs are refused by every
    /// replica within [`crate::access::CHECK_TTL`]. An admin cannot disable themselves.
    pub async fn set_disabled(
        &self,
        admin: &User,
        username: &str,
        disabled: bool,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let user = self.by_username(username).await?;
        if user.id == admin.id {
            return Err(AccountError::NotAllowed(
                "You cannot disable your own account; another admin can.".into(),
            ));
        }
        if user.awaiting_approval {
            return Err(AccountError::NotAllowed(format!(
                "{} waits for approval: approve or delete the account.",
                user.username
            )));
        }
        if user.disabled == disabled {
            return Ok(user);
        }
        users::Entity::update(users::ActiveModel {
            id: Set(user.id),
            disabled_at: Set(disabled.then(Utc::now)),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        if disabled {
            sessions::Entity::delete_many()
                .filter(sessions::Column::UserId.eq(user.id))
                .exec(&self.db)
                .await?;
            self.revoked(user.id);
        }
        let action =
            if disabled { AuditAction::AccountDisabled } else { AuditAction::AccountEnabled };
        audit::record(
            &self.db,
            AuditEvent::on(action, Some(admin.id), Some(user.id), meta.client_addr.as_deref())
                .target(&user.username),
        )
        .await?;
        Ok(User { disabled, ..user })
    }

    /// Approves an account that signed up in approval mode: it can sign in from now on.
    pub async fn approve(
        &self,
        admin: &User,
        username: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let user = self.by_username(username).await?;
        if !user.awaiting_approval {
            return Err(AccountError::NotAllowed(format!(
                "{} is not waiting for approval.",
                user.username
            )));
        }
        users::Entity::update(users::ActiveModel {
            id: Set(user.id),
            disabled_at: Set(None),
            awaiting_approval: Set(false),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        audit::record(
            &self.db,
            AuditEvent::on(
                AuditAction::AccountApproved,
                Some(admin.id),
                Some(user.id),
                meta.client_addr.as_deref(),
            )
            .target(&user.username),
        )
        .await?;
        Ok(User { disabled: false, awaiting_approval: false, ..user })
    }
}

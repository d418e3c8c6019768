//! Password checks: signing in, and re-entering the current password to change it or to delete the
//! account. Every check passes the throttle first, which counts it before the hash runs.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    TransactionTrait,
};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::credentials::NewPassword;
use super::password::Verified;
use super::{AccountError, Accounts, RequestMeta, User};
use crate::db::entities::{sessions, users};

impl Accounts {
    /// Checks a sign-in. Unknown account and wrong password look the same from outside, in
    /// message and in time (a dummy hash is verified when there is no account).
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        if !self.settings.password_sign_in {
            return Err(AccountError::PasswordSignInOff);
        }
        let identifier = identifier.trim().to_lowercase();
        let address = meta.client_addr.as_deref();
        let column =
            if identifier.contains('@') { users::Column::Email } else { users::Column::Username };
        let row =
            users::Entity::find().filter(column.eq(identifier.as_str())).one(&self.db).await?;
        // One bucket per account, whether it is named by email or by username.
        let account_key = row.as_ref().map_or(identifier.as_str(), |u| u.username.as_str());
        let attempt = self.throttle.reserve(account_key, address).await.map_err(|retry_after| {
            metrics::counter!(crate::observe::SIGN_INS, "outcome" => "throttled").increment(1);
            AccountError::Throttled { retry_after }
        })?;
        let verdict =
            self.verifier.verify(password, row.as_ref().map(|u| u.password_hash.as_str())).await?;
        // Only the right password learns that the account is disabled.
        if let Some(user) =
            row.as_ref().filter(|u| u.disabled_at.is_some() && verdict != Verified::No)
        {
            self.throttle.succeeded(attempt).await;
            let event = AuditEvent::own(AuditAction::LoginFailed, user.id, address).target(
                if user.awaiting_approval { "awaiting approval" } else { "account disabled" },
            );
            audit::record(&self.db, event).await?;
            return Err(if user.awaiting_approval {
                AccountError::AwaitingApproval
            } else {
                AccountError::Disabled
            });
        }
        let Some(user) = row.clone().filter(|_| verdict != Verified::No) else {
            let event = AuditEvent {
                action: AuditAction::LoginFailed,
                actor_id: None,
                subject_id: row.as_ref().map(|u| u.id),
                target: None,
                client_addr: meta.client_addr.clone(),
            };
            metrics::counter!(crate::observe::SIGN_INS, "outcome" => "failed").increment(1);
            audit::record(&self.db, event).await?;
            return Err(AccountError::BadCredentials);
        };
        self.throttle.succeeded(attempt).await;
        metrics::counter!(crate::observe::SIGN_INS, "outcome" => "succeeded").increment(1);
        if let Verified::YesRehashed(hash) = verdict {
            let mut active = user.clone().into_active_model();
            active.password_hash = Set(hash);
            active.update(&self.db).await?;
        }
        audit::record(&self.db, AuditEvent::own(AuditAction::LoginSucceeded, user.id, address))
            .await?;
        Ok(user.into())
    }

    /// Verifies the current password of a signed-in user (throttled like a login).
    pub(crate) async fn confirm_password(
        &self,
        user_id: Uuid,
        password: &str,
        field: &'static str,
        meta: &RequestMeta,
    ) -> Result<users::Model, AccountError> {
        let user = users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .ok_or(AccountError::NotFound)?;
        let attempt = self
            .throttle
            .reserve(&user.username, meta.client_addr.as_deref())
            .await
            .map_err(|retry_after| AccountError::Throttled { retry_after })?;
        if self.verifier.verify(password, Some(&user.password_hash)).await? == Verified::No {
            return Err(AccountError::field(field, "Your current password is not correct."));
        }
        self.throttle.succeeded(attempt).await;
        Ok(user)
    }

    /// Changes the password and signs out every other session of the user.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new: &str,
        confirmation: &str,
        keep_session: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), AccountError> {
        if !self.has_password(user_id).await? {
            return Err(AccountError::field(
                "current_password",
                "Your account signs in through single sign-on and has no password to change.",
            ));
        }
        let user = self.confirm_password(user_id, current, "current_password", meta).await?;
        let password = NewPassword::parse(
            ("new_password", "new_password_confirm"),
            new,
            confirmation,
            &user.username,
            &user.email,
        )
        .map_err(|e| AccountError::Invalid(vec![e]))?;
        if new == current {
            return Err(AccountError::field(
                "new_password",
                "Choose a password different from your current one.",
            ));
        }
        let hash = self.hasher.hash(password.expose()).await?;
        let txn = self.db.begin().await?;
        let mut active = user.into_active_model();
        active.password_hash = Set(hash);
        active.update(&txn).await?;
        let mut others =
            sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user_id));
        if let Some(keep) = keep_session {
            others = others.filter(sessions::Column::IdHash.ne(keep));
        }
        others.exec(&txn).await?;
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::PasswordChanged, user_id, meta.client_addr.as_deref()),
        )
        .await?;
        txn.commit().await?;
        self.revoked(user_id);
        Ok(())
    }
}

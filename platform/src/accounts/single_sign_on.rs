//! What a verified single sign-on identity means for accounts:
//! - an identity KRaft knows (`user_identities`: issuer and subject) signs in to its account;
//! - an unknown identity whose provider-verified email belongs to an account is linked to it only
//!   after the user proves the account is theirs by entering its password once;
//! - any other identity gets a new account (sign-up mode permitting) with no password.
//!
//! With an admin or organizer group configured, each sign-in brings the account's role and
//! organizer allowance in line with the groups the provider lists.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::credentials::{Email, Username};
use super::oidc::{ExternalIdentity, OidcClient};
use super::registration::Grant;
use super::{AccountError, Accounts, RequestMeta, Role, SignupMode, User};
use crate::db::entities::{user_identities, users};

/// The password hash of an account made by single sign-on: no PHC string, so no password
/// matches it (see `PasswordHasher::verify`).
pub const NO_PASSWORD: &str = "!single-sign-on";

/// How long a pending link waits for the account's password.
const LINK_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Where a single sign-on leaves the browser.
#[derive(Debug)]
pub enum SsoOutcome {
    SignedIn(User),
    /// An account has the identity's (verified) email: its password links the two, once.
    LinkNeeded(PendingLink),
}

/// An identity waiting to be linked to the account with its email (kept in the browser's
/// session, never shown to it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    pub user_id: Uuid,
    pub email: String,
    identity: ExternalIdentity,
    started_at: DateTime<Utc>,
}

impl PendingLink {
    pub fn expired(&self) -> bool {
        Utc::now() - self.started_at > LINK_WINDOW
    }
}

/// A username for a new account from what the provider says (`preferred_username`, else the
/// email's local part): lowercase letters, digits and single hyphens, starting with a letter.
fn base_username(identity: &ExternalIdentity) -> String {
    let source = identity
        .preferred_username
        .as_deref()
        .or_else(|| identity.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or("user");
    let mut name = String::new();
    for c in source.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "user-");
    }
    name.truncate(26);
    let mut name = name.trim_end_matches('-').to_owned();
    while name.len() < 3 {
        name.push('x');
    }
    name
}

impl Accounts {
    /// The configured provider, if single sign-on is on.
    pub fn oidc(&self) -> Option<&OidcClient> {
        self.settings.oidc.as_deref()
    }

    /// Whether accounts may sign in (and sign up) with a password.
    pub fn password_sign_in(&self) -> bool {
        self.settings.password_sign_in
    }

    /// Signs in the identity a provider vouched for (see the module's rules).
    pub async fn sign_in_external(
        &self,
        identity: ExternalIdentity,
        meta: &RequestMeta,
    ) -> Result<SsoOutcome, AccountError> {
        let address = meta.client_addr.as_deref();
        let known = user_identities::Entity::find()
            .filter(user_identities::Column::Issuer.eq(identity.issuer.as_str()))
            .filter(user_identities::Column::Subject.eq(identity.subject.as_str()))
            .one(&self.db)
            .await?;
        if let Some(known) = known {
            user_identities::Entity::update(user_identities::ActiveModel {
                id: Set(known.id),
                email: Set(identity.email.clone()),
                last_used_at: Set(Utc::now()),
                ..Default::default()
            })
            .exec(&self.db)
            .await?;
            let user = self.usable(known.user_id, meta).await?;
            let user = self.sync_groups(user, &identity, meta).await?;
            self.signed_in_by_provider(&user, address).await?;
            return Ok(SsoOutcome::SignedIn(user));
        }
        let email =
            identity.email.as_deref().map(|e| e.trim().to_lowercase()).ok_or_else(|| {
                AccountError::NotAllowed(
                    "Your identity provider did not share an email address, and KRaft needs one. \
                 Ask its administrator to release the email claim to KRaft."
                        .into(),
                )
            })?;
        if !identity.email_verified {
            return Err(AccountError::NotAllowed(format!(
                "Your identity provider has not verified {email}, so KRaft cannot use it. \
                 Verify it with your provider and sign in again."
            )));
        }
        let owner =
            users::Entity::find().filter(users::Column::Email.eq(&email)).one(&self.db).await?;
        if let Some(owner) = owner {
            return Ok(SsoOutcome::LinkNeeded(PendingLink {
                user_id: owner.id,
                email,
                identity,
                started_at: Utc::now(),
            }));
        }
        let user = self.register_external(&email, &identity, meta).await?;
        if user.awaiting_approval {
            return Err(AccountError::AwaitingApproval);
        }
        let user = self.sync_groups(user, &identity, meta).await?;
        self.signed_in_by_provider(&user, address).await?;
        Ok(SsoOutcome::SignedIn(user))
    }

    /// The user proved the account with `link.email` is theirs (its password): the identity is
    /// linked to it, and signs in to it from now on.
    pub async fn link_external(
        &self,
        link: &PendingLink,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        if link.expired() {
            return Err(AccountError::NotAllowed(
                "This link request expired: sign in with your provider again.".into(),
            ));
        }
        let owner = self.confirm_password(link.user_id, password, "password", meta).await?;
        if owner.email != link.email {
            // The account's email changed since: the provider's word no longer names it.
            return Err(AccountError::NotFound);
        }
        let user = self.usable(owner.id, meta).await?;
        let txn = self.db.begin().await?;
        insert_identity(&txn, user.id, &link.identity).await?;
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::IdentityLinked, user.id, meta.client_addr.as_deref())
                .target(&link.identity.issuer),
        )
        .await?;
        txn.commit().await?;
        let user = self.sync_groups(user, &link.identity, meta).await?;
        self.signed_in_by_provider(&user, meta.client_addr.as_deref()).await?;
        Ok(user)
    }

    /// The account `user_id`, if it may sign in.
    async fn usable(&self, user_id: Uuid, meta: &RequestMeta) -> Result<User, AccountError> {
        let user = self.user(user_id).await?.ok_or(AccountError::NotFound)?;
        if user.disabled {
            let reason =
                if user.awaiting_approval { "awaiting approval" } else { "account disabled" };
            audit::record(
                &self.db,
                AuditEvent::own(AuditAction::LoginFailed, user.id, meta.client_addr.as_deref())
                    .target(reason),
            )
            .await?;
            return Err(if user.awaiting_approval {
                AccountError::AwaitingApproval
            } else {
                AccountError::Disabled
            });
        }
        Ok(user)
    }

    async fn signed_in_by_provider(
        &self,
        user: &User,
        address: Option<&str>,
    ) -> Result<(), AccountError> {
        metrics::counter!(crate::observe::SIGN_INS, "outcome" => "succeeded").increment(1);
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::LoginSucceeded, user.id, address).target("single sign-on"),
        )
        .await?;
        Ok(())
    }

    /// A new account for `identity`, with no password, under the sign-up mode: `closed` makes
    /// none, `approval` makes one that waits. (`invite` does make one: the operator's provider
    /// vouches for its users.)
    async fn register_external(
        &self,
        email: &str,
        identity: &ExternalIdentity,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let mode = self.signup_mode();
        if mode == SignupMode::Closed {
            return Err(AccountError::NotAllowed(
                "Sign-up is closed on this KRaft: an admin has to create your account first."
                    .into(),
            ));
        }
        let email = Email::parse(email).map_err(|e| {
            AccountError::NotAllowed(format!(
                "KRaft cannot use the email address your provider gave ({email}): {}",
                e.message
            ))
        })?;
        let base = base_username(identity);
        let held = mode == SignupMode::Approval;
        // The first free name among `base`, `base-2` … `base-9`, then random suffixes; a race
        // for the same name (the unique index) moves on to the next.
        let mut candidates: Vec<String> =
            std::iter::once(base.clone()).chain((2..10).map(|n| format!("{base}-{n}"))).collect();
        for _ in 0..3 {
            let mut bytes = [0u8; 3];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            candidates.push(format!("{base}-{}", hex::encode(bytes)));
        }
        for candidate in candidates {
            let Ok(username) = Username::parse(&candidate) else { continue };
            let taken = users::Entity::find()
                .filter(users::Column::Username.eq(username.as_str()))
                .one(&self.db)
                .await?
                .is_some();
            if taken {
                continue;
            }
            let grant = Grant::SingleSignOn { held, identity };
            match self.insert_user(&email, &username, NO_PASSWORD.to_owned(), grant, meta).await {
                Err(AccountError::Invalid(errors))
                    if errors.iter().all(|e| e.field == Username::FIELD) =>
                {
                    continue
                }
                other => return other,
            }
        }
        Err(AccountError::NotAllowed(
            "KRaft could not find a free username for you; ask an admin.".into(),
        ))
    }

    /// Brings role and organizer allowance in line with the provider's groups (only those
    /// mappings an operator configured).
    async fn sync_groups(
        &self,
        user: User,
        identity: &ExternalIdentity,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let Some(oidc) = self.oidc() else { return Ok(user) };
        let settings = oidc.settings();
        let member = |group: &Option<String>| {
            group.as_ref().is_some_and(|g| identity.groups.iter().any(|have| have == g))
        };
        let mut changed = users::ActiveModel { id: Set(user.id), ..Default::default() };
        let mut user = user;
        let mut notes = Vec::new();
        if settings.admin_group.is_some() {
            let role = if member(&settings.admin_group) { Role::Admin } else { Role::User };
            if role != user.role {
                changed.role = Set(role);
                notes.push(format!("role {} from the provider's groups", role_name(role)));
                user.role = role;
            }
        }
        if member(&settings.organizer_group) && user.organizer_seats < settings.organizer_seats {
            changed.organizer_seats = Set(settings.organizer_seats);
            notes.push(format!(
                "{} organizer seats from the provider's groups",
                settings.organizer_seats
            ));
            user.organizer_seats = settings.organizer_seats;
        }
        if notes.is_empty() {
            return Ok(user);
        }
        let txn = self.db.begin().await?;
        users::Entity::update(changed).exec(&txn).await?;
        audit::record(
            &txn,
            AuditEvent::on(
                AuditAction::GroupsApplied,
                None,
                Some(user.id),
                meta.client_addr.as_deref(),
            )
            .target(notes.join("; ")),
        )
        .await?;
        txn.commit().await?;
        // An admin's live views on this replica re-check at once (a demotion ends them).
        self.revoked(user.id);
        Ok(user)
    }

    /// Whether the account has a password (accounts made by single sign-on have none until…
    /// never: they sign in through their provider).
    pub async fn has_password(&self, user_id: Uuid) -> Result<bool, AccountError> {
        let user = users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .ok_or(AccountError::NotFound)?;
        Ok(user.password_hash != NO_PASSWORD)
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
    }
}

/// Records that `identity` signs in to `user_id`. An identity already linked (to any account)
/// is refused: one identity, one account.
pub(super) async fn insert_identity(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    identity: &ExternalIdentity,
) -> Result<(), AccountError> {
    let now = Utc::now();
    let row = user_identities::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        issuer: Set(identity.issuer.clone()),
        subject: Set(identity.subject.clone()),
        email: Set(identity.email.clone()),
        created_at: Set(now),
        last_used_at: Set(now),
    };
    match user_identities::Entity::insert(row).exec_without_returning(db).await {
        Ok(_) => Ok(()),
        Err(error) => Err(match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AccountError::NotAllowed(
                "This identity already signs in to a KRaft account.".into(),
            ),
            _ => AccountError::Database(error),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(preferred: Option<&str>, email: Option<&str>) -> ExternalIdentity {
        ExternalIdentity {
            issuer: "https://idp.example".into(),
            subject: "s".into(),
            email: email.map(str::to_owned),
            email_verified: true,
            preferred_username: preferred.map(str::to_owned),
            groups: Vec::new(),
        }
    }

    #[test]
    fn usernames_follow_the_rules_whatever_the_provider_says() {
        for (preferred, email, expected) in [
            (Some("Ada.Lovelace"), None, "ada-lovelace"),
            (None, Some("grace_hopper@navy.mil"), "grace-hopper"),
            (Some("42"), None, "user-42"),
            (Some("é"), None, "user"),
            (Some("--x--"), None, "xxx"),
            (Some("averyveryveryverylongname-with-parts"), None, "averyveryveryverylongname"),
            (None, None, "user"),
        ] {
            let name = base_username(&identity(preferred, email));
            assert_eq!(name, expected, "{preferred:?} {email:?}");
            assert!(Username::parse(&name).is_ok(), "{name}");
            assert!(Username::parse(&format!("{name}-9")).is_ok());
        }
    }
}

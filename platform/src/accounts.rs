//! Accounts: sign-up, sign-in, password changes, sessions, account deletion, invites and the audit
//! trail. HTTP and cookies are the caller's business; this module sees typed inputs and the
//! database.

pub mod audit;
pub mod credentials;
pub mod password;
pub mod session;
pub mod throttle;

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, SqlErr, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use audit::{AuditAction, AuditEntry, AuditEvent};
pub use credentials::{Email, FieldError, NewPassword, Username};
pub use password::{HashError, PasswordHasher, Verified};
pub use session::{AccountSession, AuthState, DbSessionStore, SessionInfo};
pub use throttle::{Limits, LoginThrottle};

pub use crate::db::entities::users::Role;
use crate::db::entities::{account_bootstrap, invites, sessions, users};

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    Open,
    /// A single-use invite code from an admin is required.
    Invite,
    Closed,
}

impl SignupMode {
    /// As the configuration spells it: `open`, `invite` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignupMode::Open => "open",
            SignupMode::Invite => "invite",
            SignupMode::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub signup: SignupMode,
    /// A session unused for this long expires.
    pub session_idle: Duration,
    /// A session expires this long after sign-in, however active.
    pub session_absolute: Duration,
    pub throttle: Limits,
    /// How many password hashes may run at once.
    pub hash_concurrency: usize,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            signup: SignupMode::Open,
            session_idle: Duration::from_secs(7 * 24 * 3600),
            session_absolute: Duration::from_secs(30 * 24 * 3600),
            throttle: Limits::default(),
            hash_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        }
    }
}

/// A user as the rest of the platform sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self {
            id: row.id,
            email: row.email,
            username: row.username,
            role: row.role,
            created_at: row.created_at,
        }
    }
}

/// Where a request came from, for throttling and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("sign-up is closed")]
    SignupClosed,
    #[error("wrong credentials")]
    BadCredentials,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error("no such object")]
    NotFound,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl AccountError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        AccountError::Invalid(vec![FieldError::new(field, message)])
    }
}

pub struct RegisterInput {
    pub email: String,
    pub username: String,
    pub password: String,
    pub password_confirm: String,
    pub invite: Option<String>,
}

pub struct Accounts {
    db: DatabaseConnection,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    settings: AccountSettings,
}

const INVITE_FIELD: &str = "invite";

impl Accounts {
    pub fn new(db: DatabaseConnection, settings: AccountSettings) -> Result<Self, HashError> {
        Self::with_hasher(db, settings.clone(), PasswordHasher::new(settings.hash_concurrency)?)
    }

    pub fn with_hasher(
        db: DatabaseConnection,
        settings: AccountSettings,
        hasher: PasswordHasher,
    ) -> Result<Self, HashError> {
        Ok(Self { db, hasher, throttle: LoginThrottle::new(settings.throttle), settings })
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Creates an account from the sign-up form. The first account ever becomes admin.
    pub async fn register(
        &self,
        input: RegisterInput,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        if self.settings.signup == SignupMode::Closed {
            return Err(AccountError::SignupClosed);
        }
        let mut errors = Vec::new();
        let email = Email::parse(&input.email).map_err(|e| errors.push(e)).ok();
        let username = Username::parse(&input.username).map_err(|e| errors.push(e)).ok();
        let password = NewPassword::parse(
            ("password", "password_confirm"),
            &input.password,
            &input.password_confirm,
            &input.username,
            &input.email,
        )
        .map_err(|e| errors.push(e))
        .ok();
        let invite = input.invite.as_deref().map(str::trim).filter(|code| !code.is_empty());
        if self.settings.signup == SignupMode::Invite && invite.is_none() {
            errors
                .push(FieldError::new(INVITE_FIELD, "Sign-up needs an invite code from an admin."));
        }
        let (Some(email), Some(username), Some(password)) = (email, username, password) else {
            return Err(AccountError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let invite = match self.settings.signup {
            SignupMode::Invite => invite,
            _ => None,
        };
        let hash = self.hasher.hash(password.expose()).await?;
        self.insert_user(&email, &username, hash, Role::User, invite, meta).await
    }

    /// Creates an account from the command line (no sign-up mode applies).
    pub async fn create_user(
        &self,
        email: &str,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AccountError> {
        let mut errors = Vec::new();
        let email_ok = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let username_ok = Username::parse(username).map_err(|e| errors.push(e)).ok();
        let password_ok =
            NewPassword::parse(("password", "password"), password, password, username, email)
                .map_err(|e| errors.push(e))
                .ok();
        let (Some(email), Some(username), Some(password)) = (email_ok, username_ok, password_ok)
        else {
            return Err(AccountError::Invalid(errors));
        };
        let hash = self.hasher.hash(password.expose()).await?;
        self.insert_user(&email, &username, hash, role, None, &RequestMeta::default()).await
    }

    async fn insert_user(
        &self,
        email: &Email,
        username: &Username,
        password_hash: String,
        role: Role,
        invite: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let txn = self.db.begin().await?;
        let mut taken = Vec::new();
        if users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&txn)
            .await?
            .is_some()
        {
            taken.push(email_taken());
        }
        if users::Entity::find()
            .filter(users::Column::Username.eq(username.as_str()))
            .one(&txn)
            .await?
            .is_some()
        {
            taken.push(username_taken());
        }
        if !taken.is_empty() {
            return Err(AccountError::Invalid(taken));
        }
        let id = Uuid::new_v4();
        let now = Utc::now();
        let row = users::ActiveModel {
            id: Set(id),
            email: Set(email.as_str().to_owned()),
            username: Set(username.as_str().to_owned()),
            password_hash: Set(password_hash),
            role: Set(role),
            created_at: Set(now),
            disabled_at: Set(None),
        };
        // Two racing sign-ups for the same name: the unique index decides, with the same message.
        if let Err(error) = users::Entity::insert(row).exec_without_returning(&txn).await {
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("email") => {
                    AccountError::Invalid(vec![email_taken()])
                }
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    AccountError::Invalid(vec![username_taken()])
                }
                _ => AccountError::Database(error),
            });
        }
        if let Some(code) = invite {
            let used = invites::Entity::update_many()
                .filter(invites::Column::CodeHash.eq(hash_code(code)))
                .filter(invites::Column::UsedAt.is_null())
                .filter(invites::Column::ExpiresAt.gt(now))
                .set(invites::ActiveModel {
                    used_by: Set(Some(id)),
                    used_at: Set(Some(now)),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
            if used.rows_affected != 1 {
                return Err(AccountError::field(
                    INVITE_FIELD,
                    "This invite code is not valid or was already used.",
                ));
            }
        }
        // Whoever inserts the bootstrap row first was the first account ever: the primary key
        // makes two racing first sign-ups impossible to both win, on PostgreSQL and SQLite alike.
        let first = account_bootstrap::Entity::insert(account_bootstrap::ActiveModel {
            id: Set(1),
            first_user_id: Set(id),
        })
        .on_conflict(OnConflict::column(account_bootstrap::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?
            == 1;
        let role = if first { Role::Admin } else { role };
        if first || role == Role::Admin {
            users::Entity::update_many()
                .filter(users::Column::Id.eq(id))
                .set(users::ActiveModel { role: Set(role), ..Default::default() })
                .exec(&txn)
                .await?;
        }
        let mut event = AuditEvent::own(AuditAction::Registered, id, meta.client_addr.as_deref())
            .target(username.as_str());
        if first {
            event = event.target(format!("{} (first account: admin)", username.as_str()));
        }
        audit::record(&txn, event).await?;
        txn.commit().await?;
        Ok(User {
            id,
            email: email.as_str().to_owned(),
            username: username.as_str().to_owned(),
            role,
            created_at: now,
        })
    }

    /// Checks a sign-in. Unknown account and wrong password look the same from outside, in
    /// message and in time (a dummy hash is verified when there is no account).
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let identifier = identifier.trim().to_lowercase();
        let address = meta.client_addr.as_deref();
        self.throttle
            .check(&identifier, address)
            .map_err(|retry_after| AccountError::Throttled { retry_after })?;
        let column =
            if identifier.contains('@') { users::Column::Email } else { users::Column::Username };
        let row =
            users::Entity::find().filter(column.eq(identifier.as_str())).one(&self.db).await?;
        let usable = row.as_ref().filter(|user| user.disabled_at.is_none());
        let verdict =
            self.hasher.verify(password, usable.map(|u| u.password_hash.as_str())).await?;
        let Some(user) = usable.cloned().filter(|_| verdict != Verified::No) else {
            self.throttle.record_failure(&identifier, address);
            let event = AuditEvent {
                action: AuditAction::LoginFailed,
                actor_id: None,
                subject_id: row.as_ref().map(|u| u.id),
                target: None,
                client_addr: meta.client_addr.clone(),
            };
            audit::record(&self.db, event).await?;
            return Err(AccountError::BadCredentials);
        };
        if let Verified::YesRehashed(hash) = verdict {
            let mut active = user.clone().into_active_model();
            active.password_hash = Set(hash);
            active.update(&self.db).await?;
        }
        self.throttle.record_success(&identifier);
        audit::record(&self.db, AuditEvent::own(AuditAction::LoginSucceeded, user.id, address))
            .await?;
        Ok(user.into())
    }

    /// The signed-in user behind a session, if the session is still valid (the absolute
    /// lifetime is enforced here; the idle one by the store's expiry).
    pub async fn authenticate(
        &self,
        session: &AccountSession,
    ) -> Result<Option<User>, AccountError> {
        let Some(state) = session
            .auth()
            .await
            .map_err(|e| AccountError::Database(DbErr::Custom(e.to_string())))?
        else {
            return Ok(None);
        };
        let age = (Utc::now() - state.authenticated_at).to_std().unwrap_or_default();
        let user = users::Entity::find_by_id(state.user_id)
            .one(&self.db)
            .await?
            .filter(|user| user.disabled_at.is_none());
        match user {
            Some(user) if age < self.settings.session_absolute => {
                session
                    .touch(state)
                    .await
                    .map_err(|e| AccountError::Database(DbErr::Custom(e.to_string())))?;
                Ok(Some(user.into()))
            }
            _ => {
                session
                    .end()
                    .await
                    .map_err(|e| AccountError::Database(DbErr::Custom(e.to_string())))?;
                Ok(None)
            }
        }
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        Ok(users::Entity::find_by_id(id).one(&self.db).await?.map(User::from))
    }

    /// Every account, oldest first (for admins).
    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        let rows =
            users::Entity::find().order_by_asc(users::Column::CreatedAt).all(&self.db).await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Verifies the current password of a signed-in user (throttled like a login).
    async fn confirm_password(
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
        let address = meta.client_addr.as_deref();
        self.throttle
            .check(&user.username, address)
            .map_err(|retry_after| AccountError::Throttled { retry_after })?;
        if self.hasher.verify(password, Some(&user.password_hash)).await? == Verified::No {
            self.throttle.record_failure(&user.username, address);
            return Err(AccountError::field(field, "Your current password is not correct."));
        }
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
        Ok(())
    }

    pub async fn sessions(
        &self,
        user_id: Uuid,
        current: Option<&str>,
    ) -> Result<Vec<SessionInfo>, AccountError> {
        Ok(session::list_for_user(&self.db, user_id, current).await?)
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

    pub async fn record_logout(
        &self,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), AccountError> {
        Ok(audit::record(
            &self.db,
            AuditEvent::own(AuditAction::LoggedOut, user_id, meta.client_addr.as_deref()),
        )
        .await?)
    }

    pub async fn audit_log(
        &self,
        user_id: Uuid,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, AccountError> {
        Ok(audit::for_user(&self.db, user_id, limit).await?)
    }

    /// Checks a deletion request: the current password and the username typed to confirm.
    pub async fn verify_deletion(
        &self,
        user_id: Uuid,
        password: &str,
        typed_username: &str,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let user = self.confirm_password(user_id, password, "password", meta).await?;
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
        crate::db::entities::audit_events::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(crate::db::entities::audit_events::Column::SubjectId.eq(user_id))
                    .add(crate::db::entities::audit_events::Column::ActorId.eq(user_id)),
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
        Ok(())
    }

    /// Issues a single-use invite code; only its hash is stored.
    pub async fn create_invite(
        &self,
        created_by: Option<Uuid>,
        valid_for: Duration,
    ) -> Result<String, AccountError> {
        let mut bytes = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let code = format!("kraft-{}", hex::encode(bytes));
        let now = Utc::now();
        let expires_at =
            now + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::days(7));
        invites::Entity::insert(invites::ActiveModel {
            id: Set(Uuid::new_v4()),
            code_hash: Set(hash_code(&code)),
            created_by: Set(created_by),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_by: Set(None),
            used_at: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        audit::record(
            &self.db,
            AuditEvent {
                action: AuditAction::InviteCreated,
                actor_id: created_by,
                subject_id: created_by,
                target: Some(format!("expires {}", expires_at.format("%Y-%m-%d %H:%M UTC"))),
                client_addr: None,
            },
        )
        .await?;
        Ok(code)
    }
}

fn email_taken() -> FieldError {
    FieldError::new(Email::FIELD, "An account with this email already exists.")
}

fn username_taken() -> FieldError {
    FieldError::new(Username::FIELD, "This username is taken.")
}

fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

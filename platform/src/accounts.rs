//! Accounts: sign-up, sign-in, password changes, sessions, account deletion, invites and the audit
//! trail. HTTP and cookies are the caller's business; this module sees typed inputs and the
//! database. The service is one `Accounts`, its methods split by concern:
//! `registration` (sign-up, invites, the first admin), `sign_in` (password checks),
//! `sessions` (who is signed in, revocation) and `deletion`.

pub mod admin;
pub mod audit;
pub mod credentials;
pub mod deletion;
pub mod oidc;
pub mod password;
pub mod registration;
pub mod session_store;
pub mod sessions;
pub mod sign_in;
pub mod single_sign_on;
pub mod throttle;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use audit::{AuditAction, AuditEntry, AuditEvent};
pub use credentials::{Email, FieldError, NewPassword, Username};
pub use password::{HashError, PasswordHasher, Verified};
pub use registration::RegisterInput;
pub use session_store::{AccountSession, AuthState, DbSessionStore, SessionInfo, Stash};
pub use sessions::LiveSession;
pub use single_sign_on::{PendingLink, SsoOutcome};
pub use throttle::{Limits, LoginThrottle, SignupLimits, SignupThrottle};

use crate::db::entities::users;
pub use crate::db::entities::users::Role;

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    Open,
    /// A single-use invite code from an admin is required.
    Invite,
    Closed,
    /// Anyone may sign up; the account waits until an admin approves it.
    Approval,
}

impl SignupMode {
    pub const ALL: [SignupMode; 4] =
        [SignupMode::Open, SignupMode::Invite, SignupMode::Approval, SignupMode::Closed];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// As the configuration spells it: `open`, `invite`, `approval` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignupMode::Open => "open",
            SignupMode::Invite => "invite",
            SignupMode::Closed => "closed",
            SignupMode::Approval => "approval",
        }
    }
}

/// How the first admin comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// While no admin exists, a one-time setup token is printed in the server log at start; the
    /// registration that carries it makes an admin. For any install strangers can reach.
    Token,
    /// The first account ever registered becomes admin: only for a local, zero-config KRaft,
    /// where the person at the keyboard is the first to register.
    FirstAccount,
}

#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub signup: SignupMode,
    pub bootstrap: AdminBootstrap,
    /// A session unused for this long expires.
    pub session_idle: Duration,
    /// A session expires this long after sign-in, however active.
    pub session_absolute: Duration,
    pub throttle: Limits,
    pub signup_limits: SignupLimits,
    /// How many password checks (sign-in, current password) may run at once.
    pub hash_concurrency: usize,
    /// How many new-password hashes (sign-up, password change) may run at once: their own
    /// budget, so a flood of sign-ups cannot make sign-ins wait.
    pub signup_hash_concurrency: usize,
    /// OpenID Connect single sign-on, when an operator configured a provider.
    pub oidc: Option<std::sync::Arc<oidc::OidcClient>>,
    /// Whether accounts may sign in and sign up with a password (off: only single sign-on;
    /// `kraft admin` commands still work).
    pub password_sign_in: bool,
}

impl Default for AccountSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            signup: SignupMode::Open,
            bootstrap: AdminBootstrap::Token,
            session_idle: Duration::from_secs(7 * 24 * 3600),
            session_absolute: Duration::from_secs(30 * 24 * 3600),
            throttle: Limits::default(),
            signup_limits: SignupLimits::default(),
            hash_concurrency: cores,
            signup_hash_concurrency: (cores / 2).max(1),
            oidc: None,
            password_sign_in: true,
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
    /// How many seats this user's open workshops may have in all (0: not an organizer; admins
    /// organize without an allowance).
    pub organizer_seats: i32,
    /// An admin disabled the account: it cannot sign in, and its sessions, API access and
    /// kubeconfigs are refused (its clusters are kept).
    pub disabled: bool,
    /// Signed up in approval mode; an admin has not approved it yet.
    pub awaiting_approval: bool,
}

impl User {
    /// Whether the user may organize workshops.
    pub fn organizes(&self) -> bool {
        self.role == Role::Admin || self.organizer_seats > 0
    }
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self {
            id: row.id,
            email: row.email,
            username: row.username,
            role: row.role,
            created_at: row.created_at,
            organizer_seats: row.organizer_seats,
            disabled: row.disabled_at.is_some(),
            awaiting_approval: row.awaiting_approval,
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
    /// The right password for an account an admin disabled.
    #[error("the account is disabled")]
    Disabled,
    /// The right password for an account that waits for an admin's approval.
    #[error("the account awaits approval")]
    AwaitingApproval,
    /// Password sign-in (and sign-up) is turned off: single sign-on only.
    #[error("password sign-in is turned off")]
    PasswordSignInOff,
    /// The caller may not do this; the message says why.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl AccountError {
    pub(crate) fn field(field: &'static str, message: impl Into<String>) -> Self {
        AccountError::Invalid(vec![FieldError::new(field, message)])
    }
}

pub struct Accounts {
    db: DatabaseConnection,
    /// Checks passwords (sign-in, re-entered current passwords).
    verifier: PasswordHasher,
    /// Hashes new passwords (sign-up, password change).
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    signups: SignupThrottle,
    settings: AccountSettings,
    /// The ids of users whose sessions were ended (sign-out, revocation, password change,
    /// deletion): live views of that user re-check their session at once.
    revocations: broadcast::Sender<Uuid>,
    /// Who may sign up, as an admin last set it (`settings.signup` seeds it).
    signup: std::sync::RwLock<SignupMode>,
}

impl Accounts {
    pub fn new(db: DatabaseConnection, settings: AccountSettings) -> Result<Self, HashError> {
        Ok(Self {
            verifier: PasswordHasher::new(settings.hash_concurrency)?,
            hasher: PasswordHasher::new(settings.signup_hash_concurrency)?,
            // Counted in the database: the limits hold across every replica.
            throttle: LoginThrottle::shared(settings.throttle, db.clone()),
            signups: SignupThrottle::shared(settings.signup_limits, db.clone()),
            revocations: broadcast::channel(1024).0,
            signup: std::sync::RwLock::new(settings.signup),
            db,
            settings,
        })
    }

    /// Accounts on their own, for the `kraft admin` commands: the database, no host.
    pub async fn open(url: &crate::DatabaseUrl, settings: AccountSettings) -> crate::Result<Self> {
        let db = crate::db::connect(url).await?;
        crate::db::migrate(&db).await?;
        Ok(Self::new(db, settings)?)
    }

    /// Closes the database pool (when opened with `open`).
    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close().await
    }

    /// The database the accounts live in (for services that open beside them, e.g. the CLI's).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The settings KRaft started with (the sign-up mode may have changed since: see
    /// [`Accounts::signup_mode`]).
    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Who may sign up, now (an admin may change it while KRaft runs).
    pub fn signup_mode(&self) -> SignupMode {
        *self.signup.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_signup_mode(&self, mode: SignupMode) {
        *self.signup.write().unwrap_or_else(|p| p.into_inner()) = mode;
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

    pub async fn audit_log(
        &self,
        user_id: Uuid,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, AccountError> {
        Ok(audit::for_user(&self.db, user_id, limit).await?)
    }

    /// Sessions of `user_id` were ended: tell the live views.
    fn revoked(&self, user_id: Uuid) {
        // Nobody listening is fine.
        let _ = self.revocations.send(user_id);
    }

    /// The users whose sessions end, as they end.
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<Uuid> {
        self.revocations.subscribe()
    }
}

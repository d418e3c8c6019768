//! Sign-up: the form's validation (one place, for the sign-up form and `kraft admin create-user`
//! alike), invite codes, the sign-up limits, and how the first admin is made.

use std::time::Duration;

use chrono::Utc;
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, SqlErr, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::credentials::{Email, FieldError, NewPassword, Username};
use super::{AccountError, Accounts, AdminBootstrap, RequestMeta, Role, SignupMode, User};
use crate::db::entities::{account_bootstrap, installation, invites, users};

pub struct RegisterInput {
    pub email: String,
    pub username: String,
    pub password: String,
    pub password_confirm: String,
    pub invite: Option<String>,
    /// The one-time setup token that makes this account the first admin.
    pub setup_token: Option<String>,
    /// A workshop's join link token or code: while the workshop takes attendees, its link is
    /// the invitation, whatever the sign-up mode.
    pub workshop: Option<String>,
}

const INVITE_FIELD: &str = "invite";
const SETUP_TOKEN_FIELD: &str = "setup_token";

/// A new account's fields, each valid.
struct NewAccount {
    email: Email,
    username: Username,
    password: NewPassword,
}

impl NewAccount {
    /// Parses every field, collecting a message for each bad one.
    fn parse(
        email: &str,
        username: &str,
        password: (&str, &str),
        fields: (&'static str, &'static str),
        mut errors: Vec<FieldError>,
    ) -> Result<Self, AccountError> {
        let parsed_email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let parsed_username = Username::parse(username).map_err(|e| errors.push(e)).ok();
        let parsed_password = NewPassword::parse(fields, password.0, password.1, username, email)
            .map_err(|e| errors.push(e))
            .ok();
        match (parsed_email, parsed_username, parsed_password) {
            (Some(email), Some(username), Some(password)) if errors.is_empty() => {
                Ok(Self { email, username, password })
            }
            _ => Err(AccountError::Invalid(errors)),
        }
    }
}

/// Who a new account becomes, decided inside its transaction.
pub(super) enum Grant<'a> {
    /// `kraft admin create-user`: exactly the role asked for.
    Role(Role),
    /// The sign-up form: a user, or the first admin (see `AdminBootstrap`).
    SignUp { invite: Option<&'a str>, setup_token: Option<&'a str>, held: bool },
    /// A first single sign-on: a user (or the first admin in `FirstAccount` mode) that the
    /// identity signs in to.
    SingleSignOn { held: bool, identity: &'a super::oidc::ExternalIdentity },
}

impl Accounts {
    /// Creates an account from the sign-up form.
    pub async fn register(
        &self,
        input: RegisterInput,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        if !self.settings.password_sign_in {
            return Err(AccountError::PasswordSignInOff);
        }
        let setup_token =
            input.setup_token.as_deref().map(str::trim).filter(|token| !token.is_empty());
        // The one-time setup token makes the first admin whatever the sign-up mode: an operator
        // who closed sign-up (or requires invites) still needs a first admin to invite anyone.
        let bootstrapping =
            setup_token.is_some() && self.settings.bootstrap == AdminBootstrap::Token;
        let workshop = input.workshop.as_deref().map(str::trim).filter(|key| !key.is_empty());
        let attending = match workshop {
            Some(key) => crate::workshops::admits_newcomer(&self.db, key).await?,
            None => false,
        };
        let admitted = bootstrapping || attending;
        if self.signup_mode() == SignupMode::Closed && !admitted {
            return Err(AccountError::SignupClosed);
        }
        let invite = input.invite.as_deref().map(str::trim).filter(|code| !code.is_empty());
        let needs_invite = self.signup_mode() == SignupMode::Invite && !admitted;
        let mut errors = Vec::new();
        if needs_invite && invite.is_none() {
            errors
                .push(FieldError::new(INVITE_FIELD, "Sign-up needs an invite code from an admin."));
        }
        let account = NewAccount::parse(
            &input.email,
            &input.username,
            (&input.password, &input.password_confirm),
            ("password", "password_confirm"),
            errors,
        )?;
        let invite = if needs_invite { invite } else { None };
        // Invite and setup token are checked before anything that could tell whether an email is
        // registered, so a bogus code reveals nothing.
        if let Some(code) = invite {
            if !self.invite_is_valid(code).await? {
                return Err(invalid_invite());
            }
        }
        let setup_token = if bootstrapping { setup_token } else { None };
        if let Some(token) = setup_token {
            if !self.setup_token_is_valid(token).await? {
                return Err(invalid_setup_token());
            }
        }
        // A workshop room signs up from one address (the venue's network): a workshop's seats,
        // which an admin allowed its organizer, bound those sign-ups instead of the limits.
        if !attending {
            self.signups
                .reserve(meta.client_addr.as_deref())
                .await
                .map_err(|retry_after| AccountError::Throttled { retry_after })?;
        }
        let hash = self.hasher.hash(account.password.expose()).await?;
        let held = self.signup_mode() == SignupMode::Approval && !admitted;
        self.insert_user(
            &account.email,
            &account.username,
            hash,
            Grant::SignUp { invite, setup_token, held },
            meta,
        )
        .await
    }

    /// Creates an account from the command line (no sign-up mode or limit applies).
    pub async fn create_user(
        &self,
        email: &str,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AccountError> {
        let account = NewAccount::parse(
            email,
            username,
            (password, password),
            ("password", "password"),
            Vec::new(),
        )?;
        let hash = self.hasher.hash(account.password.expose()).await?;
        self.insert_user(
            &account.email,
            &account.username,
            hash,
            Grant::Role(role),
            &RequestMeta::default(),
        )
        .await
    }

    pub(super) async fn insert_user(
        &self,
        email: &Email,
        username: &Username,
        password_hash: String,
        grant: Grant<'_>,
        meta: &RequestMeta,
    ) -> Result<User, AccountError> {
        let held = matches!(
            grant,
            Grant::SignUp { held: true, .. } | Grant::SingleSignOn { held: true, .. }
        );
        let txn = self.db.begin().await?;
        let taken = self.taken(&txn, email, username).await?;
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
            role: Set(Role::User),
            created_at: Set(now),
            // In approval mode a sign-up waits, disabled, for an admin (a workshop's link and
            // the first admin's setup token are approvals of their own).
            disabled_at: Set(held.then_some(now)),
            organizer_seats: Set(0),
            awaiting_approval: Set(held),
        };
        // Racing sign-ups for the same name: the unique index decides. Which name was taken is
        // read back from the table, not from the database's wording of the error.
        if let Err(error) = users::Entity::insert(row).exec_without_returning(&txn).await {
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    drop(txn);
                    let taken = self.taken(&self.db, email, username).await?;
                    AccountError::Invalid(if taken.is_empty() {
                        vec![username_taken()]
                    } else {
                        taken
                    })
                }
                _ => AccountError::Database(error),
            });
        }
        let role = match grant {
            Grant::Role(role) => role,
            Grant::SignUp { invite, setup_token, .. } => {
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
                        return Err(invalid_invite());
                    }
                }
                match self.settings.bootstrap {
                    AdminBootstrap::FirstAccount if claim_first_account(&txn, id).await? => {
                        Role::Admin
                    }
                    AdminBootstrap::Token if setup_token.is_some() => {
                        if !claim_setup_token(&txn, setup_token.unwrap_or_default()).await? {
                            return Err(invalid_setup_token());
                        }
                        Role::Admin
                    }
                    _ => Role::User,
                }
            }
            Grant::SingleSignOn { identity, .. } => {
                super::single_sign_on::insert_identity(&txn, id, identity).await?;
                match self.settings.bootstrap {
                    AdminBootstrap::FirstAccount if claim_first_account(&txn, id).await? => {
                        Role::Admin
                    }
                    _ => Role::User,
                }
            }
        };
        // The first admin is nobody's to approve.
        let held = held && role != Role::Admin;
        if role == Role::Admin {
            users::Entity::update_many()
                .filter(users::Column::Id.eq(id))
                .set(users::ActiveModel {
                    role: Set(role),
                    disabled_at: Set(None),
                    awaiting_approval: Set(false),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
        }
        let target = match role {
            Role::Admin => format!("{} (admin)", username.as_str()),
            Role::User if held => format!("{} (awaiting approval)", username.as_str()),
            Role::User => username.as_str().to_owned(),
        };
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::Registered, id, meta.client_addr.as_deref())
                .target(target),
        )
        .await?;
        txn.commit().await?;
        Ok(User {
            id,
            email: email.as_str().to_owned(),
            username: username.as_str().to_owned(),
            role,
            created_at: now,
            organizer_seats: 0,
            disabled: held,
            awaiting_approval: held,
        })
    }

    /// Field errors for an email or username that already has an account.
    async fn taken(
        &self,
        db: &impl ConnectionTrait,
        email: &Email,
        username: &Username,
    ) -> Result<Vec<FieldError>, DbErr> {
        let mut taken = Vec::new();
        if users::Entity::find().filter(users::Column::Email.eq(email.as_str())).count(db).await?
            > 0
        {
            taken.push(FieldError::new(Email::FIELD, "An account with this email already exists."));
        }
        if users::Entity::find()
            .filter(users::Column::Username.eq(username.as_str()))
            .count(db)
            .await?
            > 0
        {
            taken.push(username_taken());
        }
        Ok(taken)
    }

    async fn setup_token_is_valid(&self, token: &str) -> Result<bool, DbErr> {
        Ok(!admin_exists(&self.db).await?
            && installation::Entity::find()
                .filter(installation::Column::Id.eq(1))
                .filter(installation::Column::SetupTokenHash.eq(hash_code(token)))
                .count(&self.db)
                .await?
                > 0)
    }

    async fn invite_is_valid(&self, code: &str) -> Result<bool, DbErr> {
        Ok(invites::Entity::find()
            .filter(invites::Column::CodeHash.eq(hash_code(code)))
            .filter(invites::Column::UsedAt.is_null())
            .filter(invites::Column::ExpiresAt.gt(Utc::now()))
            .count(&self.db)
            .await?
            > 0)
    }

    /// In `Token` mode with no admin yet: a fresh setup token (only its hash is stored; each start
    /// replaces the previous one). `None` when an admin exists or in `FirstAccount` mode.
    pub async fn prepare_setup_token(&self) -> Result<Option<String>, AccountError> {
        if self.settings.bootstrap != AdminBootstrap::Token {
            return Ok(None);
        }
        let admins = users::Entity::find()
            .filter(users::Column::Role.eq(Role::Admin))
            .count(&self.db)
            .await?;
        if admins > 0 {
            installation::Entity::update_many()
                .filter(installation::Column::Id.eq(1))
                .set(installation::ActiveModel {
                    setup_token_hash: Set(None),
                    ..Default::default()
                })
                .exec(&self.db)
                .await?;
            return Ok(None);
        }
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = format!("kraft-setup-{}", hex::encode(bytes));
        installation::Entity::update_many()
            .filter(installation::Column::Id.eq(1))
            .set(installation::ActiveModel {
                setup_token_hash: Set(Some(hash_code(&token))),
                ..Default::default()
            })
            .exec(&self.db)
            .await?;
        Ok(Some(token))
    }

    /// Whether a setup token is waiting to be used (the sign-up page then asks for it).
    pub async fn awaiting_setup(&self) -> Result<bool, AccountError> {
        if self.settings.bootstrap != AdminBootstrap::Token {
            return Ok(false);
        }
        Ok(!admin_exists(&self.db).await?
            && installation::Entity::find()
                .filter(installation::Column::SetupTokenHash.is_not_null())
                .count(&self.db)
                .await?
                > 0)
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

/// Whoever inserts the bootstrap row first was the first account ever: the primary key makes
/// two racing first sign-ups impossible to both win, on PostgreSQL and SQLite alike.
async fn claim_first_account(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(account_bootstrap::Entity::insert(account_bootstrap::ActiveModel {
        id: Set(1),
        first_user_id: Set(id),
    })
    .on_conflict(OnConflict::column(account_bootstrap::Column::Id).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?
        == 1)
}

/// Uses up the setup token: one conditional update, so two racing registrations with the same
/// token cannot both become admin.
async fn admin_exists(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(users::Entity::find().filter(users::Column::Role.eq(Role::Admin)).count(db).await? > 0)
}

/// Uses up the setup token; `false` when it is wrong, used, or an admin exists already (e.g. one
/// made with `kraft admin create-user --admin` since the token was printed).
async fn claim_setup_token(db: &impl ConnectionTrait, token: &str) -> Result<bool, DbErr> {
    if admin_exists(db).await? {
        return Ok(false);
    }
    let claimed = installation::Entity::update_many()
        .filter(installation::Column::Id.eq(1))
        .filter(installation::Column::SetupTokenHash.eq(hash_code(token)))
        .set(installation::ActiveModel { setup_token_hash: Set(None), ..Default::default() })
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

fn invalid_setup_token() -> AccountError {
    AccountError::field(SETUP_TOKEN_FIELD, "This setup token is not valid or was already used.")
}

fn invalid_invite() -> AccountError {
    AccountError::field(INVITE_FIELD, "This invite code is not valid or was already used.")
}

fn username_taken() -> FieldError {
    FieldError::new(Username::FIELD, "This username is taken.")
}

fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

//! Sessions: the typed view of a tower-sessions `Session` (never string keys in handlers) and the
//! database-backed store behind it.
//!
//! The store keeps one row per session, keyed by the SHA-256 of the session id so that a database
//! dump holds no usable cookie. The row also carries what the account page lists (user, created,
//! last seen, user agent, address) and a public id the UI can revoke by.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::Session;
use uuid::Uuid;

use crate::db::entities::sessions;

/// The one key under which KRaft keeps its state in a session.
const AUTH_KEY: &str = "kraft.auth";
/// Last-seen times are written at most this often, so browsing is not a stream of writes.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a browser's session keeps between the steps of a single sign-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stash {
    /// The `state`, `nonce` and PKCE verifier of a sign-in at the provider.
    SignOn,
    /// An identity waiting for the password of the account it is to be linked to.
    Link,
}

impl Stash {
    fn as_str(self) -> &'static str {
        match self {
            Stash::SignOn => "kraft.oidc",
            Stash::Link => "kraft.oidc_link",
        }
    }
}

/// Who is signed in on a session, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub user_id: Uuid,
    pub authenticated_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
}

/// How long a visitor's session made only to carry a sign-in under way lives.
pub const STASH_IDLE: time::Duration = time::Duration::minutes(15);

/// A tower-sessions session seen through KRaft's types.
#[derive(Clone)]
pub struct AccountSession(Session);

impl From<Session> for AccountSession {
    fn from(session: Session) -> Self {
        Self(session)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("session error: {0}")]
pub struct SessionError(String);

impl From<tower_sessions::session::Error> for SessionError {
    fn from(error: tower_sessions::session::Error) -> Self {
        Self(error.to_string())
    }
}

impl AccountSession {
    pub async fn auth(&self) -> Result<Option<AuthState>, SessionError> {
        Ok(self.0.get::<AuthState>(AUTH_KEY).await?)
    }

    /// Signs `user_id` in on a fresh session id (the old id dies: no session fixation).
    pub async fn begin(
        &self,
        user_id: Uuid,
        user_agent: Option<String>,
        client_addr: Option<String>,
    ) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        let now = Utc::now();
        let state = AuthState {
            user_id,
            authenticated_at: now,
            seen_at: now,
            user_agent: user_agent.map(|ua| ua.chars().take(512).collect()),
            client_addr,
        };
        self.0.insert(AUTH_KEY, state).await?;
        Ok(())
    }

    /// Gives the session a new id, keeping who is signed in (after a password change).
    pub async fn rotate(&self) -> Result<(), SessionError> {
        Ok(self.0.cycle_id().await?)
    }

    /// Ends the session: its row is deleted and the cookie removed.
    pub async fn end(&self) -> Result<(), SessionError> {
        Ok(self.0.flush().await?)
    }

    /// Records activity, at most once a minute (which also pushes the idle expiry back).
    pub async fn touch(&self, mut state: AuthState) -> Result<(), SessionError> {
        let now = Utc::now();
        if (now - state.seen_at).to_std().unwrap_or_default() >= TOUCH_EVERY {
            state.seen_at = now;
            self.0.insert(AUTH_KEY, state).await?;
        }
        Ok(())
    }

    /// Keeps `value` for a later request of this browser (a single sign-on under way). A
    /// visitor's session made for it lives [`STASH_IDLE`] unless it signs in: sign-ins that are
    /// started and never finished leave nothing behind for long.
    pub async fn stash<T: Serialize>(&self, key: Stash, value: &T) -> Result<(), SessionError> {
        if self.auth().await?.is_none() {
            // This request's save only: the next request of the session has the usual expiry.
            self.0.set_expiry(Some(tower_sessions::Expiry::OnInactivity(STASH_IDLE)));
        }
        self.0.insert(key.as_str(), value).await?;
        Ok(())
    }

    /// What was stashed under `key`, left in place.
    pub async fn stashed<T: DeserializeOwned>(
        &self,
        key: Stash,
    ) -> Result<Option<T>, SessionError> {
        Ok(self.0.get::<T>(key.as_str()).await?)
    }

    /// What was stashed under `key`, removed: it can be used once.
    pub async fn take<T: DeserializeOwned>(&self, key: Stash) -> Result<Option<T>, SessionError> {
        Ok(self.0.remove::<T>(key.as_str()).await?)
    }

    /// The hash that identifies this session's row, if it has one yet.
    pub fn id_hash(&self) -> Option<String> {
        self.0.id().map(|id| hash_id(&id))
    }
}

pub(crate) fn hash_id(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

/// The tower-sessions store on KRaft's database (PostgreSQL or SQLite, through sea-orm).
#[derive(Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DbSessionStore")
    }
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn backend(error: impl fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

fn to_chrono(at: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or_else(Utc::now)
}

fn to_time(at: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .map(|t| t + time::Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos())))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The columns a record determines.
struct Derived {
    data: String,
    expires_at: DateTime<Utc>,
    user_id: Option<Uuid>,
    user_agent: Option<String>,
    client_addr: Option<String>,
}

fn derive(record: &Record) -> session_store::Result<Derived> {
    let data = serde_json::to_string(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let auth = record
        .data
        .get(AUTH_KEY)
        .and_then(|value| serde_json::from_value::<AuthState>(value.clone()).ok());
    Ok(Derived {
        data,
        expires_at: to_chrono(record.expiry_date),
        user_id: auth.as_ref().map(|a| a.user_id),
        user_agent: auth.as_ref().and_then(|a| a.user_agent.clone()),
        client_addr: auth.and_then(|a| a.client_addr),
    })
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let derived = derive(record)?;
        let now = Utc::now();
        loop {
            let row = sessions::ActiveModel {
                id_hash: Set(hash_id(&record.id)),
                public_id: Set(Uuid::new_v4()),
                user_id: Set(derived.user_id),
                data: Set(derived.data.clone()),
                expires_at: Set(derived.expires_at),
                created_at: Set(now),
                last_seen_at: Set(now),
                user_agent: Set(derived.user_agent.clone()),
                client_addr: Set(derived.client_addr.clone()),
            };
            let inserted = sessions::Entity::insert(row)
                .on_conflict(OnConflict::column(sessions::Column::IdHash).do_nothing().to_owned())
                .exec_without_returning(&self.db)
                .await
                .map_err(backend)?;
            if inserted == 1 {
                return Ok(());
            }
            // An id collision (vanishingly rare): draw another.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // Update only: a session revoked elsewhere while this request ran must stay dead,
        // so a save never brings a deleted row back.
        let derived = derive(record)?;
        sessions::Entity::update_many()
            .filter(sessions::Column::IdHash.eq(hash_id(&record.id)))
            .set(sessions::ActiveModel {
                user_id: Set(derived.user_id),
                data: Set(derived.data),
                expires_at: Set(derived.expires_at),
                last_seen_at: Set(Utc::now()),
                user_agent: Set(derived.user_agent),
                client_addr: Set(derived.client_addr),
                ..Default::default()
            })
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row = sessions::Entity::find_by_id(hash_id(id))
            .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: HashMap<String, serde_json::Value> = serde_json::from_str(&row.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date: to_time(row.expires_at) }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::Entity::delete_by_id(hash_id(id)).exec(&self.db).await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sessions::Entity::delete_many()
            .filter(sessions::Column::ExpiresAt.lte(Utc::now()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// A session as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub public_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
    pub current: bool,
}

pub(crate) async fn list_for_user(
    db: &DatabaseConnection,
    user_id: Uuid,
    current_hash: Option<&str>,
) -> Result<Vec<SessionInfo>, sea_orm::DbErr> {
    let rows = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
        .order_by_desc(sessions::Column::LastSeenAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| SessionInfo {
            current: current_hash == Some(row.id_hash.as_str()),
            public_id: row.public_id,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            user_agent: row.user_agent,
            client_addr: row.client_addr,
        })
        .collect())
}

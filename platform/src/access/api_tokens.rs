//! Personal API tokens: what scripts, CI pipelines and the `kraft` CLI present to the JSON API
//! (`/api/v1`). Each is named, scoped and expiring, shown once, stored only as a hash, listed with
//! its last use, and revocable. Like kubeconfig tokens, a replica trusts what it looked up about
//! one for at most [`CHECK_TTL`](super::CHECK_TTL): a revocation or a disabled account takes
//! effect on every replica within that time (at once on the replica that made it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{hash, lock, mint, parse_name, well_formed, AccessError, Denied, CHECK_TTL};
use crate::accounts::throttle::TokenThrottle;
use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, User};
use crate::db::entities::{api_tokens, users};

/// What every API token starts with: tells it apart from a kubeconfig's token (`kraft_`) in a
/// log or a leaked file, and lets secret scanners find it.
pub const API_TOKEN_PREFIX: &str = "kraftpat_";
/// Characters of the token shown in lists (the prefix and the first random ones).
const SHOWN: usize = API_TOKEN_PREFIX.len() + 6;
/// Most live (unrevoked, unexpired) tokens one account may hold.
pub const MAX_PER_USER: usize = 25;
/// Validities a token may be created for, in days.
pub const VALIDITY_DAYS: [u32; 5] = [1, 7, 30, 90, 365];
/// Cached look-ups kept at most; past it, stale ones go, then all.
const MAX_CACHED: usize = 10_000;

/// What a token may do. `clusters` and `kubeconfigs` include `read`: nobody manages what they
/// cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// List and read clusters, their status and their kubeconfigs' list.
    Read,
    /// Create, change and delete clusters.
    Clusters,
    /// Issue and revoke kubeconfigs.
    Kubeconfigs,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Clusters, Scope::Kubeconfigs];

    /// The scopes a form's checkboxes turn on (a checked box sends a value, an unchecked one
    /// nothing).
    pub fn checked(read: &str, clusters: &str, kubeconfigs: &str) -> Vec<Scope> {
        [(read, Scope::Read), (clusters, Scope::Clusters), (kubeconfigs, Scope::Kubeconfigs)]
            .into_iter()
            .filter(|(on, _)| !on.is_empty())
            .map(|(_, scope)| scope)
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Clusters => "clusters",
            Scope::Kubeconfigs => "kubeconfigs",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A token's scopes as stored: space-separated, sorted, without duplicates.
fn store_scopes(scopes: &[Scope]) -> String {
    let mut sorted = scopes.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

fn load_scopes(stored: &str) -> Vec<Scope> {
    stored.split_whitespace().filter_map(Scope::parse).collect()
}

/// An API token as its owner's list shows it.
#[derive(Debug, Clone)]
pub struct ApiTokenInfo {
    pub id: Uuid,
    pub name: String,
    /// The token's start, e.g. `kraftpat_Ab3xYz…`.
    pub shown: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_tokens::Model> for ApiTokenInfo {
    fn from(row: api_tokens::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            shown: format!("{}…", row.prefix),
            scopes: load_scopes(&row.scopes),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            last_used_from: row.last_used_from,
            revoked_at: row.revoked_at,
        }
    }
}

/// A token just created: the only time it exists in the clear.
pub struct IssuedApiToken {
    pub info: ApiTokenInfo,
    pub token: String,
}

/// What a request presenting a good token may do, and as whom.
#[derive(Debug, Clone)]
pub struct ApiGrant {
    pub token_id: Uuid,
    pub user: User,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

impl ApiGrant {
    /// Whether the token may do what `scope` covers (`read` comes with every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        scope == Scope::Read && !self.scopes.is_empty() || self.scopes.contains(&scope)
    }
}

struct Cached {
    at: Instant,
    /// `None`: no usable token by that hash (unknown, revoked, account gone or disabled).
    grant: Option<ApiGrant>,
}

pub struct ApiTokens {
    db: DatabaseConnection,
    cache: Mutex<HashMap<String, Cached>>,
    /// Last use per token, written every few seconds by [`super::Access::run`].
    usage: Mutex<HashMap<Uuid, (DateTime<Utc>, String)>>,
    failures: Arc<TokenThrottle>,
}

impl ApiTokens {
    pub(super) fn new(db: DatabaseConnection, failures: Arc<TokenThrottle>) -> Self {
        Self { db, cache: Mutex::new(HashMap::new()), usage: Mutex::new(HashMap::new()), failures }
    }

    /// Creates a token named `name` for `owner`, with `scopes`, valid for `days`.
    pub async fn create(
        &self,
        owner: &User,
        name: &str,
        scopes: &[Scope],
        days: u32,
        client_addr: Option<&str>,
    ) -> Result<IssuedApiToken, AccessError> {
        let mut errors = Vec::new();
        let name = parse_name(name)
            .map_err(|_| {
                errors.push(FieldError {
                    field: "name",
                    message: "Give the token a name of at most 64 characters, e.g. laptop or CI."
                        .into(),
                })
            })
            .ok();
        if scopes.is_empty() {
            errors.push(FieldError {
                field: "scopes",
                message: "Choose at least one scope: read, clusters or kubeconfigs.".into(),
            });
        }
        if !VALIDITY_DAYS.contains(&days) {
            errors.push(FieldError {
                field: "days",
                message: "Choose a validity of 1, 7, 30, 90 or 365 days.".into(),
            });
        }
        let (Some(name), true) = (name, errors.is_empty()) else {
            return Err(AccessError::Invalid(errors));
        };
        let now = Utc::now();
        let live: Vec<api_tokens::Model> = api_tokens::Entity::find()
            .filter(api_tokens::Column::UserId.eq(owner.id))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .filter(api_tokens::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?;
        if live.iter().any(|t| t.name.eq_ignore_ascii_case(&name)) {
            return Err(AccessError::Invalid(vec![FieldError {
                field: "name",
                message: format!(
                    "You already have a token named \"{name}\": revoke it or choose another name."
                ),
            }]));
        }
        if live.len() >= MAX_PER_USER {
            return Err(AccessError::LimitReached(format!(
                "An account may hold {MAX_PER_USER} API tokens at once: revoke one you no longer use."
            )));
        }
        let token = mint(API_TOKEN_PREFIX);
        let row = api_tokens::Model {
            id: Uuid::new_v4(),
            user_id: owner.id,
            name,
            prefix: token[..SHOWN].to_owned(),
            token_hash: hash(&token),
            scopes: store_scopes(scopes),
            created_at: now,
            expires_at: now + chrono::Duration::days(i64::from(days)),
            last_used_at: None,
            last_used_from: None,
            revoked_at: None,
        };
        api_tokens::Entity::insert(api_tokens::ActiveModel::from(row.clone()))
            .exec(&self.db)
            .await?;
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::ApiTokenCreated, owner.id, client_addr).target(format!(
                "\"{}\" ({}, {}, valid until {})",
                row.name,
                row.prefix,
                row.scopes,
                row.expires_at.format("%Y-%m-%d %H:%M UTC")
            )),
        )
        .await?;
        Ok(IssuedApiToken { info: row.into(), token })
    }

    /// The owner's tokens, newest first.
    pub async fn list(&self, owner_id: Uuid) -> Result<Vec<ApiTokenInfo>, AccessError> {
        let rows = api_tokens::Entity::find()
            .filter(api_tokens::Column::UserId.eq(owner_id))
            .order_by_desc(api_tokens::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let pending = lock(&self.usage).clone();
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut info = ApiTokenInfo::from(row);
                if let Some((at, from)) = pending.get(&info.id) {
                    info.last_used_at = Some(*at);
                    info.last_used_from = Some(from.clone());
                }
                info
            })
            .collect())
    }

    /// Revokes one of the owner's tokens.
    pub async fn revoke(
        &self,
        owner: &User,
        token_id: Uuid,
        client_addr: Option<&str>,
    ) -> Result<(), AccessError> {
        let revoked = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(api_tokens::Column::UserId.eq(owner.id))
            .filter(api_tokens::Column::Id.eq(token_id))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?
            .rows_affected;
        if revoked == 0 {
            return Err(AccessError::NotFound);
        }
        lock(&self.cache).retain(|_, c| c.grant.as_ref().is_none_or(|g| g.token_id != token_id));
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::ApiTokenRevoked, owner.id, client_addr)
                .target(format!("API token {token_id}")),
        )
        .await?;
        Ok(())
    }

    /// Forgets what this replica knows about the user's tokens (disabled, deleted).
    pub fn forget_user(&self, user_id: Uuid) {
        lock(&self.cache).retain(|_, c| c.grant.as_ref().is_none_or(|g| g.user.id != user_id));
    }

    /// Checks a bearer token presented from `client_addr`, and notes its use.
    pub async fn authenticate(&self, token: &str, client_addr: &str) -> Result<ApiGrant, Denied> {
        self.failures.check(client_addr).map_err(Denied::Throttled)?;
        let found = match self.lookup(token).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "API token check failed");
                return Err(Denied::Unauthorized);
            }
        };
        let now = Utc::now();
        match found {
            Some(grant) if grant.expires_at > now => {
                lock(&self.usage).insert(grant.token_id, (now, client_addr.to_owned()));
                Ok(grant)
            }
            _ => {
                self.failures.failed(client_addr);
                Err(Denied::Unauthorized)
            }
        }
    }

    async fn lookup(&self, token: &str) -> Result<Option<ApiGrant>, DbErr> {
        if !well_formed(token, API_TOKEN_PREFIX) {
            return Ok(None);
        }
        let key = hash(token);
        if let Some(c) = lock(&self.cache).get(&key).filter(|c| c.at.elapsed() < CHECK_TTL) {
            return Ok(c.grant.clone());
        }
        let grant = self.load(&key).await?;
        let mut cache = lock(&self.cache);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.at.elapsed() < CHECK_TTL);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, Cached { at: Instant::now(), grant: grant.clone() });
        Ok(grant)
    }

    async fn load(&self, key: &str) -> Result<Option<ApiGrant>, DbErr> {
        let Some(token) = api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenHash.eq(key))
            .one(&self.db)
            .await?
            .filter(|t| t.revoked_at.is_none())
        else {
            return Ok(None);
        };
        let Some(user) = users::Entity::find_by_id(token.user_id)
            .one(&self.db)
            .await?
            .filter(|u| u.disabled_at.is_none() && !u.awaiting_approval)
        else {
            return Ok(None);
        };
        Ok(Some(ApiGrant {
            token_id: token.id,
            user: user.into(),
            scopes: load_scopes(&token.scopes),
            expires_at: token.expires_at,
        }))
    }

    /// Writes what was noted about token use since the last flush.
    pub async fn flush_usage(&self) -> Result<(), DbErr> {
        let usage = std::mem::take(&mut *lock(&self.usage));
        for (id, (at, from)) in usage {
            api_tokens::Entity::update_many()
                .col_expr(api_tokens::Column::LastUsedAt, Expr::value(at))
                .col_expr(api_tokens::Column::LastUsedFrom, Expr::value(from))
                .filter(api_tokens::Column::Id.eq(id))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Deletes tokens that expired or were revoked more than a week ago.
    pub async fn sweep(&self) -> Result<u64, DbErr> {
        let before = Utc::now() - chrono::Duration::days(7);
        let gone = api_tokens::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(api_tokens::Column::ExpiresAt.lt(before))
                    .add(api_tokens::Column::RevokedAt.lt(before)),
            )
            .exec(&self.db)
            .await?;
        Ok(gone.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_sorted_and_once() {
        let stored = store_scopes(&[Scope::Kubeconfigs, Scope::Read, Scope::Kubeconfigs]);
        assert_eq!(stored, "read kubeconfigs");
        assert_eq!(load_scopes(&stored), vec![Scope::Read, Scope::Kubeconfigs]);
        assert_eq!(load_scopes("read bogus clusters"), vec![Scope::Read, Scope::Clusters]);
    }

    #[test]
    fn every_scope_reads_and_only_its_own_writes() {
        let user = User {
            id: Uuid::nil(),
            email: "a@example.org".into(),
            username: "a".into(),
            role: crate::accounts::Role::User,
            created_at: Utc::now(),
            organizer_seats: 0,
            disabled: false,
            awaiting_approval: false,
        };
        let grant = |scopes: Vec<Scope>| ApiGrant {
            token_id: Uuid::nil(),
            user: user.clone(),
            scopes,
            expires_at: Utc::now(),
        };
        let kubeconfigs = grant(vec![Scope::Kubeconfigs]);
        assert!(kubeconfigs.allows(Scope::Read));
        assert!(kubeconfigs.allows(Scope::Kubeconfigs));
        assert!(!kubeconfigs.allows(Scope::Clusters));
        let read = grant(vec![Scope::Read]);
        assert!(read.allows(Scope::Read) && !read.allows(Scope::Clusters));
        assert!(!grant(vec![]).allows(Scope::Read));
    }
}

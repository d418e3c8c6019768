//! Cluster access through KRaft's gateway: named kubeconfigs, each holding a random bearer token
//! for one cluster that KRaft stores only as a hash. Tokens are checked here for every gateway
//! request; they die when revoked, when they expire, with their cluster and with their account.
//!
//! Every replica caches what it looked up for at most [`CHECK_TTL`], so a revocation made
//! anywhere takes effect everywhere within that time (at once on the replica that revoked).
//! When a token was last used (and from where), and each cluster's last API request, are kept
//! in memory and written every [`USAGE_FLUSH`]: never a database write per request.

pub mod api_tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use rand::RngCore as _;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::accounts::throttle::TokenThrottle;
use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, User};
use crate::clusters::{ClusterRecord, Phase};
use crate::db::entities::{cluster_tokens, clusters, users};

/// What every token starts with: says what it is when it turns up somewhere it should not.
pub const TOKEN_PREFIX: &str = "kraft_";
/// Random bytes in a token (kubeconfig and API alike): 320 bits, of which the part shown in
/// lists leaves more than 256 unknown.
const TOKEN_BYTES: usize = 40;
/// Characters of the token shown in lists (the prefix and the first random ones).
const SHOWN: usize = TOKEN_PREFIX.len() + 6;
/// How long a replica trusts what it looked up about a token.
pub const CHECK_TTL: Duration = Duration::from_secs(3);
/// How often last-use times are written.
pub const USAGE_FLUSH: Duration = Duration::from_secs(5);
/// Most live (unrevoked, unexpired) kubeconfigs one cluster may have.
pub const MAX_PER_CLUSTER: usize = 25;
/// Cached look-ups kept at most; past it, stale ones go, then all.
const MAX_CACHED: usize = 10_000;
/// Validities a kubeconfig may be issued for, in days.
pub const VALIDITY_DAYS: [u32; 4] = [1, 7, 30, 90];

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no such kubeconfig")]
    NotFound,
    #[error("{0}")]
    LimitReached(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Why a gateway request is refused before it reaches a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Unknown, revoked or expired token, or a token of another cluster: one answer for all.
    Unauthorized,
    /// Too many failed tokens from this address; try again after this long.
    Throttled(Duration),
}

/// A token that may reach a cluster, with what the gateway needs to get there.
#[derive(Debug, Clone)]
pub struct Grant {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub host_namespace: String,
    pub phase: Phase,
}

/// A kubeconfig as its owner's list shows it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    /// The token's start, e.g. `kraft_Ab3xYz…`.
    pub shown: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<cluster_tokens::Model> for TokenInfo {
    fn from(row: cluster_tokens::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            shown: format!("{}…", row.prefix),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            last_used_from: row.last_used_from,
            revoked_at: row.revoked_at,
        }
    }
}

/// A kubeconfig just issued: the only time its token exists in the clear.
pub struct Issued {
    pub info: TokenInfo,
    pub yaml: String,
    /// The context's (and cluster's and user's) name in `yaml`.
    pub context: String,
}

struct Cached {
    at: Instant,
    /// `None`: no usable token by that hash (unknown, revoked, cluster or account gone).
    grant: Option<(Grant, DateTime<Utc>)>,
}

#[derive(Default)]
struct Usage {
    tokens: HashMap<Uuid, (DateTime<Utc>, String)>,
    clusters: HashMap<Uuid, DateTime<Utc>>,
}

pub struct Access {
    db: DatabaseConnection,
    cache: Mutex<HashMap<String, Cached>>,
    usage: Mutex<Usage>,
    /// Failed bearer tokens (kubeconfig and API alike) per client address.
    failures: Arc<TokenThrottle>,
    api: api_tokens::ApiTokens,
}

/// A new bearer token: `prefix` and 320 random bits, URL-safe.
pub(crate) fn mint(prefix: &str) -> String {
    let mut random = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

/// Whether `token` has the shape [`mint`] gives for `prefix` (anything else is not looked up).
pub(crate) fn well_formed(token: &str, prefix: &str) -> bool {
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0u8; TOKEN_BYTES]).len();
    token.starts_with(prefix) && token.len() == prefix.len() + random
}

pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A kubeconfig name: what the user calls the place it lives ("laptop", "CI").
pub(crate) fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    let error = |message: &str| FieldError { field: "name", message: message.into() };
    if name.is_empty() {
        return Err(error("Give the kubeconfig a name, e.g. laptop or CI."));
    }
    if name.chars().count() > 64 {
        return Err(error("Use at most 64 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(error("Use letters, digits, spaces and punctuation only."));
    }
    Ok(name.to_owned())
}

impl Access {
    pub fn new(db: DatabaseConnection) -> Self {
        // Twenty wrong tokens a minute from one address: a typo is forgiven, a search is not.
        let failures = Arc::new(TokenThrottle::shared(20, Duration::from_secs(60), db.clone()));
        Self {
            db: db.clone(),
            cache: Mutex::new(HashMap::new()),
            usage: Mutex::new(Usage::default()),
            api: api_tokens::ApiTokens::new(db, failures.clone()),
            failures,
        }
    }

    /// Personal API tokens (the JSON API's and the CLI's way in).
    pub fn api_tokens(&self) -> &api_tokens::ApiTokens {
        &self.api
    }

    /// Issues a kubeconfig named `name` for `cluster` (which the caller checked `owner` owns),
    /// valid for `days`, reaching the cluster at `endpoint` (the gateway's URL for it).
    pub async fn issue(
        &self,
        owner: &User,
        cluster: &ClusterRecord,
        name: &str,
        days: u32,
        endpoint: &Endpoint,
        client_addr: Option<&str>,
    ) -> Result<Issued, AccessError> {
        let mut errors = Vec::new();
        let name = parse_name(name).map_err(|e| errors.push(e)).ok();
        if !VALIDITY_DAYS.contains(&days) {
            errors.push(FieldError {
                field: "days",
                message: "Choose a validity of 1, 7, 30 or 90 days.".into(),
            });
        }
        let (Some(name), true) = (name, errors.is_empty()) else {
            return Err(AccessError::Invalid(errors));
        };
        let now = Utc::now();
        let live: Vec<cluster_tokens::Model> = cluster_tokens::Entity::find()
            .filter(cluster_tokens::Column::ClusterId.eq(cluster.id))
            .filter(cluster_tokens::Column::RevokedAt.is_null())
            .filter(cluster_tokens::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?;
        if live.iter().any(|t| t.name.eq_ignore_ascii_case(&name)) {
            return Err(AccessError::Invalid(vec![FieldError {
                field: "name",
                message: format!(
                    "This cluster already has a kubeconfig named \"{name}\": revoke it or choose another name."
                ),
            }]));
        }
        if live.len() >= MAX_PER_CLUSTER {
            return Err(AccessError::LimitReached(format!(
                "A cluster may have {MAX_PER_CLUSTER} kubeconfigs at once: revoke one you no longer use."
            )));
        }
        let token = mint(TOKEN_PREFIX);
        let expires_at = now + chrono::Duration::days(i64::from(days));
        let row = cluster_tokens::Model {
            id: Uuid::new_v4(),
            cluster_id: cluster.id,
            user_id: owner.id,
            name,
            prefix: token[..SHOWN].to_owned(),
            token_hash: hash(&token),
            created_at: now,
            expires_at,
            last_used_at: None,
            last_used_from: None,
            revoked_at: None,
        };
        cluster_tokens::Entity::insert(cluster_tokens::ActiveModel::from(row.clone()))
            .exec(&self.db)
            .await?;
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::KubeconfigIssued, owner.id, client_addr).target(format!(
                "{} \"{}\" ({}, valid until {})",
                cluster.name,
                row.name,
                row.prefix,
                expires_at.format("%Y-%m-%d %H:%M UTC")
            )),
        )
        .await?;
        let context = format!("{}-{}", cluster.name, owner.username);
        let yaml = kubeconfig_yaml(endpoint, &context, &token);
        Ok(Issued { info: row.into(), yaml, context })
    }

    /// A cluster's kubeconfigs, newest first (the caller checked ownership).
    pub async fn list(&self, cluster_id: Uuid) -> Result<Vec<TokenInfo>, AccessError> {
        let rows = cluster_tokens::Entity::find()
            .filter(cluster_tokens::Column::ClusterId.eq(cluster_id))
            .order_by_desc(cluster_tokens::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let pending = lock(&self.usage).tokens.clone();
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut info = TokenInfo::from(row);
                // What this replica saw and has not written yet is newer.
                if let Some((at, from)) = pending.get(&info.id) {
                    info.last_used_at = Some(*at);
                    info.last_used_from = Some(from.clone());
                }
                info
            })
            .collect())
    }

    /// Revokes one kubeconfig of the cluster, or all of them (`token_id` `None`); how many.
    pub async fn revoke(
        &self,
        owner: &User,
        cluster: &ClusterRecord,
        token_id: Option<Uuid>,
        client_addr: Option<&str>,
    ) -> Result<u64, AccessError> {
        let mut update = cluster_tokens::Entity::update_many()
            .col_expr(cluster_tokens::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(cluster_tokens::Column::ClusterId.eq(cluster.id))
            .filter(cluster_tokens::Column::RevokedAt.is_null());
        if let Some(id) = token_id {
            update = update.filter(cluster_tokens::Column::Id.eq(id));
        }
        let revoked = update.exec(&self.db).await?.rows_affected;
        if token_id.is_some() && revoked == 0 {
            return Err(AccessError::NotFound);
        }
        lock(&self.cache).retain(|_, c| {
            c.grant.as_ref().is_none_or(|(g, _)| {
                g.cluster_id != cluster.id || token_id.is_some_and(|id| id != g.token_id)
            })
        });
        let what = match token_id {
            Some(id) => format!("{} kubeconfig {id}", cluster.name),
            None => format!("{} all kubeconfigs ({revoked})", cluster.name),
        };
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::KubeconfigRevoked, owner.id, client_addr).target(what),
        )
        .await?;
        Ok(revoked)
    }

    /// Checks a bearer token for a request to `cluster_id` from `client_addr`, and notes its use.
    pub async fn authenticate(
        &self,
        token: &str,
        cluster_id: Uuid,
        client_addr: &str,
    ) -> Result<Grant, Denied> {
        self.failures.check(client_addr).map_err(Denied::Throttled)?;
        let found = match self.lookup(token).await {
            Ok(found) => found,
            Err(error) => {
                // The database is down: nobody gets in, and no address is blamed for it.
                tracing::warn!(%error, "token check failed");
                return Err(Denied::Unauthorized);
            }
        };
        let now = Utc::now();
        match found {
            Some((grant, expires_at)) if grant.cluster_id == cluster_id && expires_at > now => {
                let mut usage = lock(&self.usage);
                usage.tokens.insert(grant.token_id, (now, client_addr.to_owned()));
                usage.clusters.insert(grant.cluster_id, now);
                Ok(grant)
            }
            _ => {
                self.failures.failed(client_addr);
                Err(Denied::Unauthorized)
            }
        }
    }

    async fn lookup(&self, token: &str) -> Result<Option<(Grant, DateTime<Utc>)>, DbErr> {
        if !well_formed(token, TOKEN_PREFIX) {
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

    async fn load(&self, key: &str) -> Result<Option<(Grant, DateTime<Utc>)>, DbErr> {
        let Some(token) = cluster_tokens::Entity::find()
            .filter(cluster_tokens::Column::TokenHash.eq(key))
            .one(&self.db)
            .await?
            .filter(|t| t.revoked_at.is_none())
        else {
            return Ok(None);
        };
        let Some(cluster) = clusters::Entity::find_by_id(token.cluster_id)
            .one(&self.db)
            .await?
            .filter(|c| c.owner_id == Some(token.user_id) && c.deleting_at.is_none())
        else {
            return Ok(None);
        };
        let Some(user) = users::Entity::find_by_id(token.user_id)
            .one(&self.db)
            .await?
            .filter(|u| u.disabled_at.is_none())
        else {
            return Ok(None);
        };
        let grant = Grant {
            token_id: token.id,
            user_id: user.id,
            username: user.username,
            cluster_id: cluster.id,
            phase: cluster.phase(),
            cluster_name: cluster.name,
            host_namespace: cluster.host_namespace,
        };
        Ok(Some((grant, token.expires_at)))
    }

    /// Writes what was noted about token use since the last flush.
    pub async fn flush_usage(&self) -> Result<(), DbErr> {
        let usage = std::mem::take(&mut *lock(&self.usage));
        for (id, (at, from)) in usage.tokens {
            cluster_tokens::Entity::update_many()
                .col_expr(cluster_tokens::Column::LastUsedAt, Expr::value(at))
                .col_expr(cluster_tokens::Column::LastUsedFrom, Expr::value(from))
                .filter(cluster_tokens::Column::Id.eq(id))
                .exec(&self.db)
                .await?;
        }
        for (id, at) in usage.clusters {
            clusters::Entity::update_many()
                .col_expr(clusters::Column::LastApiRequestAt, Expr::value(at))
                .filter(clusters::Column::Id.eq(id))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Deletes kubeconfigs that expired or were revoked more than a week ago.
    pub async fn sweep(&self) -> Result<u64, DbErr> {
        let before = Utc::now() - chrono::Duration::days(7);
        let gone = cluster_tokens::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(cluster_tokens::Column::ExpiresAt.lt(before))
                    .add(cluster_tokens::Column::RevokedAt.lt(before)),
            )
            .exec(&self.db)
            .await?;
        Ok(gone.rows_affected)
    }

    /// Flushes use every [`USAGE_FLUSH`] and sweeps old tokens hourly; runs until aborted.
    pub async fn run(self: std::sync::Arc<Self>, leadership: crate::leader::Leadership) {
        let mut every = tokio::time::interval(USAGE_FLUSH);
        let mut last_sweep = Instant::now();
        loop {
            every.tick().await;
            // Addresses blocked by every replica's failed tokens together.
            self.failures.refresh().await;
            if let Err(error) = self.flush_usage().await {
                tracing::warn!(%error, "could not record kubeconfig use");
            }
            if let Err(error) = self.api.flush_usage().await {
                tracing::warn!(%error, "could not record API token use");
            }
            // Usage is buffered per replica and flushed by each; the sweep is the leader's.
            if leadership.is_leader() && last_sweep.elapsed() > Duration::from_secs(3600) {
                last_sweep = Instant::now();
                if let Err(error) = self.sweep().await {
                    tracing::warn!(%error, "could not delete old kubeconfigs");
                }
                if let Err(error) = self.api.sweep().await {
                    tracing::warn!(%error, "could not delete old API tokens");
                }
            }
        }
    }
}

/// Where a kubeconfig sends kubectl: the gateway's URL for one cluster, and the CA (PEM) that
/// signs its certificate when the system does not trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    pub ca_pem: Option<String>,
}

/// A kubeconfig that reaches `endpoint` with a bearer token, assembled with kube's types.
fn kubeconfig_yaml(endpoint: &Endpoint, context: &str, token: &str) -> String {
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: context.to_owned(),
            cluster: Some(Cluster {
                server: Some(endpoint.server.clone()),
                certificate_authority_data: endpoint
                    .ca_pem
                    .as_ref()
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: context.to_owned(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_owned().into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: context.to_owned(),
            context: Some(Context {
                cluster: context.to_owned(),
                user: Some(context.to_owned()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(context.to_owned()),
        ..Default::default()
    };
    serde_yaml::to_string(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_names_the_gateway_and_holds_the_token() {
        let endpoint =
            Endpoint { server: "https://kraft.example/k8s/clusters/x".into(), ca_pem: None };
        let yaml = kubeconfig_yaml(&endpoint, "demo-ada", "kraft_t");
        let parsed = Kubeconfig::from_yaml(&yaml).expect("parses");
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://kraft.example/k8s/clusters/x"));
        assert_eq!(cluster.certificate_authority_data, None, "{yaml}");
        assert!(yaml.contains("token: kraft_t"), "{yaml}");
        assert_eq!(parsed.current_context.as_deref(), Some("demo-ada"));
    }

    #[test]
    fn a_kubeconfig_carries_the_ca_of_a_self_signed_gateway() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let endpoint = Endpoint {
            server: "https://127.0.0.1:3000/k8s/clusters/x".into(),
            ca_pem: Some(pem.into()),
        };
        let parsed = Kubeconfig::from_yaml(&kubeconfig_yaml(&endpoint, "c", "t")).unwrap();
        let data = parsed.clusters[0].cluster.as_ref().unwrap().certificate_authority_data.clone();
        let decoded = base64::engine::general_purpose::STANDARD.decode(data.unwrap()).unwrap();
        assert_eq!(decoded, pem.as_bytes());
    }

    #[test]
    fn kubeconfig_names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  laptop ").unwrap(), "laptop");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert!(parse_name("a\nb").is_err());
    }
}

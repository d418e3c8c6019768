//! Attempt limits: password checks per account and per client address, sign-ups per address and
//! for the whole platform. Each limit counts attempts inside a sliding window.
//!
//! An attempt is *reserved* before the expensive work (the password hash) and counted at once, so
//! concurrent guesses cannot all pass a check that none of them has recorded yet. A password check
//! that succeeds gives its reservation back.
//!
//! With a database (every running KRaft) the attempts are rows of `throttle_events`, so every
//! replica counts the same ones: a limit holds for the platform, not per process. Check and count
//! happen in one transaction that holds a Postgres advisory lock per key (SQLite: one process, one
//! writer), so two replicas cannot both let the last allowed attempt through. Failed gateway tokens
//! are checked on every gateway request, so that check stays in memory: each replica records its
//! failures in the table and reads every replica's blocked addresses back every few seconds.
//! Without a database (unit tests) everything is in memory.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;

use crate::db::entities::throttle_events;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_account: usize,
    pub per_address: usize,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { per_account: 5, per_address: 20, window: Duration::from_secs(300) }
    }
}

/// Sign-ups allowed per client address and for the whole platform, per window.
#[derive(Debug, Clone, Copy)]
pub struct SignupLimits {
    pub per_address: usize,
    pub total: usize,
    pub window: Duration,
}

impl Default for SignupLimits {
    fn default() -> Self {
        Self { per_address: 10, total: 100, window: Duration::from_secs(3600) }
    }
}

/// Keys are namespaced so an account name can never collide with an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
    SignupAddress(String),
    SignupTotal,
    TokenAddress(String),
}

impl Key {
    /// The key as the shared table stores it.
    fn stored(&self) -> String {
        match self {
            Key::Account(a) => format!("account:{a}"),
            Key::Address(a) => format!("address:{a}"),
            Key::SignupAddress(a) => format!("signup-address:{a}"),
            Key::SignupTotal => "signup-total".into(),
            Key::TokenAddress(a) => format!("{TOKEN_PREFIX}{a}"),
        }
    }
}

const TOKEN_PREFIX: &str = "token-address:";

/// Bounded: past this many keys, keys whose attempts have all left their window are dropped; if
/// that is not enough, new keys share one overflow bucket per kind rather than grow the map.
const MAX_KEYS: usize = 100_000;
/// Account keys longer than this are cut: an identifier is at most an email address.
const MAX_KEY_BYTES: usize = 256;

/// Attempts inside a window, per key.
struct Windows {
    attempts: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl Windows {
    fn new() -> Self {
        Self { attempts: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic while holding the lock leaves counters that are still meaningful.
        self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts an attempt against every key, or refuses it (with how long to wait) if any key is at
    /// its limit. Check and count happen under one lock.
    fn reserve(&self, keys: &[(Key, usize)], window: Duration) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut attempts = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in keys {
            if let Some(times) = attempts.get_mut(key) {
                prune(times, now, window);
                if times.len() >= *limit {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(window.saturating_sub(now - *oldest));
                    }
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait.max(Duration::from_secs(1)));
        }
        if attempts.len() >= MAX_KEYS {
            attempts.retain(|_, times| {
                prune(times, now, window);
                !times.is_empty()
            });
        }
        for (key, limit) in keys {
            let times = attempts.entry(key.clone()).or_default();
            times.push_back(now);
            while times.len() > *limit {
                times.pop_front();
            }
        }
        Ok(now)
    }

    /// Takes back one attempt counted at `at` for `key`.
    fn give_back(&self, key: &Key, at: Instant) {
        let mut attempts = self.lock();
        if let Some(times) = attempts.get_mut(key) {
            if let Some(position) = times.iter().rposition(|t| *t == at) {
                times.remove(position);
            }
            if times.is_empty() {
                attempts.remove(key);
            }
        }
    }

    /// How long `key` must wait, if it is at `limit` (without counting anything).
    fn blocked(&self, key: &Key, limit: usize, window: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut attempts = self.lock();
        let times = attempts.get_mut(key)?;
        prune(times, now, window);
        let oldest = times.front().copied();
        (times.len() >= limit)
            .then(|| oldest.map(|o| window.saturating_sub(now - o)))
            .flatten()
            .map(|wait| wait.max(Duration::from_secs(1)))
    }

    fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

/// Attempts as rows every replica sees.
struct Shared {
    db: DatabaseConnection,
    /// One check-and-count at a time in this process (SQLite has no advisory locks, and there
    /// is only one process on it).
    serial: tokio::sync::Mutex<()>,
}

impl Shared {
    fn new(db: DatabaseConnection) -> Self {
        Self { db, serial: tokio::sync::Mutex::new(()) }
    }

    /// Counts an attempt against every key (one row each), or refuses it with how long to wait.
    async fn reserve(
        &self,
        keys: &[(Key, usize)],
        window: Duration,
    ) -> Result<Result<Vec<Uuid>, Duration>, DbErr> {
        let _one = self.serial.lock().await;
        let txn = self.db.begin().await?;
        let mut stored: Vec<(String, usize)> = keys.iter().map(|(k, l)| (k.stored(), *l)).collect();
        // Locks in one order, so two replicas never wait on each other's.
        stored.sort();
        if txn.get_database_backend() == DbBackend::Postgres {
            for (key, _) in &stored {
                txn.execute(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    [key.clone().into()],
                ))
                .await?;
            }
        }
        let now = Utc::now();
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let mut wait = Duration::ZERO;
        for (key, limit) in &stored {
            let (count, oldest): (i64, Option<chrono::DateTime<Utc>>) =
                throttle_events::Entity::find()
                    .select_only()
                    .column_as(throttle_events::Column::Id.count(), "n")
                    .column_as(throttle_events::Column::At.min(), "oldest")
                    .filter(throttle_events::Column::Key.eq(key.as_str()))
                    .filter(throttle_events::Column::At.gt(since))
                    .into_tuple()
                    .one(&txn)
                    .await?
                    .unwrap_or((0, None));
            if count as usize >= *limit {
                let left =
                    oldest.map_or(window, |o| (o - since).to_std().unwrap_or_default().min(window));
                wait = wait.max(left.max(Duration::from_secs(1)));
            }
        }
        if !wait.is_zero() {
            txn.rollback().await?;
            return Ok(Err(wait));
        }
        let mut ids = Vec::with_capacity(stored.len());
        for (key, _) in &stored {
            let id = Uuid::new_v4();
            let row =
                throttle_events::ActiveModel { id: Set(id), key: Set(key.clone()), at: Set(now) };
            throttle_events::Entity::insert(row).exec_without_returning(&txn).await?;
            ids.push(id);
        }
        txn.commit().await?;
        Ok(Ok(ids))
    }

    /// Takes back rows counted for an attempt.
    async fn give_back(&self, ids: &[Uuid]) -> Result<(), DbErr> {
        if !ids.is_empty() {
            throttle_events::Entity::delete_many()
                .filter(throttle_events::Column::Id.is_in(ids.iter().copied()))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    async fn forget(&self, key: &Key) -> Result<(), DbErr> {
        throttle_events::Entity::delete_many()
            .filter(throttle_events::Column::Key.eq(key.stored()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn record(&self, key: &Key) -> Result<(), DbErr> {
        let row = throttle_events::ActiveModel {
            id: Set(Uuid::new_v4()),
            key: Set(key.stored()),
            at: Set(Utc::now()),
        };
        throttle_events::Entity::insert(row).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Keys starting with `prefix` with at least `limit` attempts in `window`, and how long each
    /// stays blocked.
    async fn blocked(
        &self,
        prefix: &str,
        limit: usize,
        window: Duration,
    ) -> Result<Vec<(String, Duration)>, DbErr> {
        let now = Utc::now();
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let rows: Vec<(String, i64, Option<chrono::DateTime<Utc>>)> =
            throttle_events::Entity::find()
                .select_only()
                .column(throttle_events::Column::Key)
                .column_as(throttle_events::Column::Id.count(), "n")
                .column_as(throttle_events::Column::At.min(), "oldest")
                .filter(throttle_events::Column::Key.starts_with(prefix))
                .filter(throttle_events::Column::At.gt(since))
                .group_by(throttle_events::Column::Key)
                .having(
                    Expr::expr(Func::count(Expr::col(throttle_events::Column::Id)))
                        .gte(limit as i64),
                )
                .into_tuple()
                .all(&self.db)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(key, _, oldest)| {
                let left = oldest.map_or(window, |o| (o - since).to_std().unwrap_or_default());
                (key, left.min(window))
            })
            .collect())
    }
}

/// Deletes attempts older than any window (the leader's sweeper calls it).
pub async fn sweep(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let before = Utc::now() - chrono::Duration::hours(2);
    Ok(throttle_events::Entity::delete_many()
        .filter(throttle_events::Column::At.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

/// A database error in a throttle lets the attempt through (the sign-in itself needs the same
/// database, and says so), and is logged.
fn logged<T>(result: Result<T, DbErr>, fallback: T) -> T {
    result.unwrap_or_else(|error| {
        tracing::warn!(%error, "throttle: the shared attempt count is unavailable");
        fallback
    })
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

/// The key of a client address: IPv6 clients by their /64 (one subscriber usually holds a whole
/// /64, so single addresses would be free to rotate), IPv4 and anything unparsable as given.
pub fn address_key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

fn account_key(account: &str) -> Key {
    let mut account = account.trim().to_lowercase();
    if account.len() > MAX_KEY_BYTES {
        let mut cut = MAX_KEY_BYTES;
        while !account.is_char_boundary(cut) {
            cut -= 1;
        }
        account.truncate(cut);
    }
    Key::Account(account)
}

/// Password checks (sign-in, and re-entering the current password): per account and per address.
pub struct LoginThrottle {
    limits: Limits,
    windows: Windows,
    shared: Option<Shared>,
}

/// A password check that was let through and counted as a failure until it succeeds.
#[must_use = "a successful check must be reported with `LoginThrottle::succeeded`"]
pub struct Attempt {
    account: Key,
    address: Option<Key>,
    at: Instant,
    /// The shared rows, in the order `Shared::reserve` sorted the keys (by stored key).
    rows: Vec<(String, Uuid)>,
}

impl LoginThrottle {
    /// In this process only.
    pub fn new(limits: Limits) -> Self {
        Self { limits, windows: Windows::new(), shared: None }
    }

    /// Counted in `db`, for every replica.
    pub fn shared(limits: Limits, db: DatabaseConnection) -> Self {
        Self { limits, windows: Windows::new(), shared: Some(Shared::new(db)) }
    }

    /// Lets one password check through and counts it, or `Err(wait)` when it must be refused.
    pub async fn reserve(&self, account: &str, address: Option<&str>) -> Result<Attempt, Duration> {
        let account = account_key(account);
        let address = address.map(|a| Key::Address(address_key(a)));
        let mut keys = vec![(account.clone(), self.limits.per_account)];
        if let Some(address) = &address {
            keys.push((address.clone(), self.limits.per_address));
        }
        let Some(shared) = &self.shared else {
            let at = self.windows.reserve(&keys, self.limits.window)?;
            return Ok(Attempt { account, address, at, rows: Vec::new() });
        };
        let ids = logged(shared.reserve(&keys, self.limits.window).await, Ok(Vec::new()))?;
        let mut stored: Vec<String> = keys.iter().map(|(k, _)| k.stored()).collect();
        stored.sort();
        let rows = stored.into_iter().zip(ids).collect();
        Ok(Attempt { account, address, at: Instant::now(), rows })
    }

    fn rows_of(attempt: &Attempt, key: &Key) -> Vec<Uuid> {
        let stored = key.stored();
        attempt.rows.iter().filter(|(k, _)| *k == stored).map(|(_, id)| *id).collect()
    }

    /// The password was right: the account's failures are forgotten, and the attempt no longer
    /// counts against the address.
    pub async fn succeeded(&self, attempt: Attempt) {
        let Some(shared) = &self.shared else {
            self.windows.forget(&attempt.account);
            if let Some(address) = &attempt.address {
                self.windows.give_back(address, attempt.at);
            }
            return;
        };
        logged(shared.forget(&attempt.account).await, ());
        if let Some(address) = &attempt.address {
            logged(shared.give_back(&Self::rows_of(&attempt, address)).await, ());
        }
    }

    /// The attempt was not a password check after all (e.g. the account vanished meanwhile).
    pub async fn cancel(&self, attempt: Attempt) {
        let Some(shared) = &self.shared else {
            self.windows.give_back(&attempt.account, attempt.at);
            if let Some(address) = &attempt.address {
                self.windows.give_back(address, attempt.at);
            }
            return;
        };
        let ids: Vec<Uuid> = attempt.rows.iter().map(|(_, id)| *id).collect();
        logged(shared.give_back(&ids).await, ());
    }
}

/// Sign-ups: per address and for the whole platform.
pub struct SignupThrottle {
    limits: SignupLimits,
    windows: Windows,
    shared: Option<Shared>,
}

impl SignupThrottle {
    /// In this process only.
    pub fn new(limits: SignupLimits) -> Self {
        Self { limits, windows: Windows::new(), shared: None }
    }

    /// Counted in `db`, for every replica.
    pub fn shared(limits: SignupLimits, db: DatabaseConnection) -> Self {
        Self { limits, windows: Windows::new(), shared: Some(Shared::new(db)) }
    }

    /// Counts one sign-up, or `Err(wait)` when it must be refused.
    pub async fn reserve(&self, address: Option<&str>) -> Result<(), Duration> {
        let mut keys = vec![(Key::SignupTotal, self.limits.total)];
        if let Some(address) = address {
            keys.push((Key::SignupAddress(address_key(address)), self.limits.per_address));
        }
        match &self.shared {
            None => self.windows.reserve(&keys, self.limits.window).map(|_| ()),
            Some(shared) => {
                logged(shared.reserve(&keys, self.limits.window).await, Ok(Vec::new())).map(|_| ())
            }
        }
    }
}

/// Failed bearer-token checks (the cluster gateway), per client address: only failures count,
/// so a client with a good token is never slowed down, and one guessing is refused for a while.
pub struct TokenThrottle {
    per_address: usize,
    window: Duration,
    windows: Windows,
    shared: Option<std::sync::Arc<Shared>>,
    /// Addresses every replica's failures together block, as last read (stored key → until).
    blocked: Mutex<HashMap<String, Instant>>,
}

impl TokenThrottle {
    /// In this process only.
    pub fn new(per_address: usize, window: Duration) -> Self {
        Self {
            per_address,
            window,
            windows: Windows::new(),
            shared: None,
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Failures also recorded in `db`; [`TokenThrottle::refresh`] reads every replica's back.
    pub fn shared(per_address: usize, window: Duration, db: DatabaseConnection) -> Self {
        Self {
            shared: Some(std::sync::Arc::new(Shared::new(db))),
            ..Self::new(per_address, window)
        }
    }

    /// `Err(wait)` while the address has failed too often to be heard (here, or on any replica
    /// as of the last refresh).
    pub fn check(&self, address: &str) -> Result<(), Duration> {
        let key = Key::TokenAddress(address_key(address));
        if let Some(wait) = self.windows.blocked(&key, self.per_address, self.window) {
            return Err(wait);
        }
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&key.stored()) {
            Some(until) if *until > Instant::now() => {
                Err((*until - Instant::now()).max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed check (and records it for the other replicas).
    pub fn failed(&self, address: &str) {
        let key = Key::TokenAddress(address_key(address));
        let _ = self.windows.reserve(&[(key.clone(), self.per_address)], self.window);
        if let Some(shared) = self.shared.clone() {
            tokio::spawn(async move { logged(shared.record(&key).await, ()) });
        }
    }

    /// Reads which addresses every replica's failures together block now.
    pub async fn refresh(&self) {
        let Some(shared) = &self.shared else { return };
        let Ok(rows) = shared.blocked(TOKEN_PREFIX, self.per_address, self.window).await else {
            return;
        };
        let now = Instant::now();
        let fresh: HashMap<String, Instant> =
            rows.into_iter().map(|(key, left)| (key, now + left)).collect();
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_token_checks_count_and_only_for_their_address() {
        let t = TokenThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.check("192.0.2.1").is_ok());
            t.failed("192.0.2.1");
        }
        let wait = t.check("192.0.2.1").expect_err("refused");
        assert!(wait > Duration::from_secs(58), "{wait:?}");
        assert!(t.check("192.0.2.2").is_ok());
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Limits {
            per_account: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn an_account_is_locked_after_too_many_failures() {
        let t = throttle();
        for _ in 0..3 {
            let _failed = t.reserve("ada", Some("10.0.0.1")).await.unwrap();
        }
        let wait = t.reserve("ada", Some("10.0.0.2")).await.err().unwrap();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59), "{wait:?}");
        // Another account from another address is unaffected.
        assert!(t.reserve("bob", Some("10.0.0.2")).await.is_ok());
    }

    #[tokio::test]
    async fn reserved_attempts_count_before_they_finish() {
        // Concurrent checks: none has finished, yet the fourth is refused.
        let t = throttle();
        let mut pending = Vec::new();
        for _ in 0..3 {
            pending.push(t.reserve("ada", None).await.unwrap());
        }
        assert!(t.reserve("ada", None).await.is_err());
        // One of them turns out right: the account starts over.
        let mut pending = pending.into_iter();
        t.succeeded(pending.next().unwrap()).await;
        assert!(t.reserve("ada", None).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_is_locked_across_accounts() {
        let t = throttle();
        for name in ["a", "b", "c", "d", "e"] {
            let _failed = t.reserve(name, Some("10.0.0.9")).await.unwrap();
        }
        assert!(t.reserve("fresh", Some("10.0.0.9")).await.is_err());
        assert!(t.reserve("fresh", Some("10.0.0.8")).await.is_ok());
    }

    #[tokio::test]
    async fn a_success_does_not_count_against_the_address() {
        let t = throttle();
        for _ in 0..10 {
            let attempt = t.reserve("ada", Some("10.0.0.9")).await.unwrap();
            t.succeeded(attempt).await;
        }
        assert!(t.reserve("bob", Some("10.0.0.9")).await.is_ok());
    }

    #[tokio::test]
    async fn account_keys_are_case_insensitive_and_bounded() {
        let t = throttle();
        for _ in 0..3 {
            let _failed = t.reserve("Ada", None).await.unwrap();
        }
        assert!(t.reserve("ada", None).await.is_err(), "account keys are case-insensitive");
        let long = "x".repeat(1 << 20);
        let _failed = t.reserve(&long, None).await.unwrap();
        let stored = t.windows.lock().keys().map(|k| format!("{k:?}").len()).max().unwrap();
        assert!(stored <= MAX_KEY_BYTES + 32, "a 1 MiB identifier is stored cut: {stored}");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(address_key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(address_key("198.51.100.7"), "198.51.100.7");
    }

    #[tokio::test]
    async fn sign_ups_are_limited_per_address_and_in_total() {
        let t = SignupThrottle::new(SignupLimits {
            per_address: 2,
            total: 3,
            window: Duration::from_secs(60),
        });
        assert!(t.reserve(Some("a")).await.is_ok());
        assert!(t.reserve(Some("a")).await.is_ok());
        assert!(t.reserve(Some("a")).await.is_err());
        assert!(t.reserve(Some("b")).await.is_ok());
        assert!(
            t.reserve(Some("c")).await.is_err(),
            "the platform-wide limit holds across addresses"
        );
    }

    /// A migrated database in a temporary file, as two replicas would share it.
    async fn database() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::DatabaseUrl::sqlite_file(&dir.path().join("kraft.db"));
        let db = crate::db::connect(&url).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn replicas_on_one_database_share_their_counts() {
        let (_dir, db) = database().await;
        let limits = Limits { per_account: 3, per_address: 5, window: Duration::from_secs(60) };
        let (one, two) =
            (LoginThrottle::shared(limits, db.clone()), LoginThrottle::shared(limits, db.clone()));
        let _failed = one.reserve("ada", Some("10.0.0.1")).await.unwrap();
        let _failed = two.reserve("ada", Some("10.0.0.2")).await.unwrap();
        let _failed = one.reserve("ada", Some("10.0.0.3")).await.unwrap();
        let wait = two.reserve("ada", Some("10.0.0.4")).await.err().expect("the fourth is refused");
        assert!(wait > Duration::from_secs(58), "{wait:?}");
        // A right password on one replica clears the account on both.
        let (_dir2, fresh) = database().await;
        let (one, two) =
            (LoginThrottle::shared(limits, fresh.clone()), LoginThrottle::shared(limits, fresh));
        for _ in 0..2 {
            let _failed = one.reserve("bob", None).await.unwrap();
        }
        let right = two.reserve("bob", None).await.unwrap();
        two.succeeded(right).await;
        for _ in 0..3 {
            let _failed = one.reserve("bob", None).await.unwrap();
        }
        assert!(two.reserve("bob", None).await.is_err());

        let signups = SignupLimits { per_address: 2, total: 3, window: Duration::from_secs(60) };
        let (one, two) = (
            SignupThrottle::shared(signups, db.clone()),
            SignupThrottle::shared(signups, db.clone()),
        );
        assert!(one.reserve(Some("a")).await.is_ok());
        assert!(two.reserve(Some("a")).await.is_ok());
        assert!(one.reserve(Some("a")).await.is_err(), "per address, across replicas");
        assert!(two.reserve(Some("b")).await.is_ok());
        assert!(one.reserve(Some("c")).await.is_err(), "in total, across replicas");
    }

    #[tokio::test]
    async fn a_token_guesser_blocked_on_one_replica_is_blocked_on_the_other_after_a_refresh() {
        let (_dir, db) = database().await;
        let one = TokenThrottle::shared(3, Duration::from_secs(60), db.clone());
        let two = TokenThrottle::shared(3, Duration::from_secs(60), db.clone());
        for _ in 0..3 {
            one.failed("192.0.2.1");
        }
        assert!(one.check("192.0.2.1").is_err());
        // The failures are written by background tasks; the other replica reads them back.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            two.refresh().await;
            if two.check("192.0.2.1").is_err() {
                break;
            }
            assert!(Instant::now() < deadline, "never blocked on the other replica");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(two.check("192.0.2.2").is_ok());
        assert_eq!(sweep(&db).await.unwrap(), 0, "nothing is old enough to go");
    }
}

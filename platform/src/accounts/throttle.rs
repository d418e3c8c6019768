//! Attempt limits: password checks per account and per client address, sign-ups per address and
//! for the whole platform. Each limit counts attempts inside a sliding window.
//!
//! An attempt is *reserved* before the expensive work (the password hash) and counted at once, so
//! concurrent guesses cannot all pass a check that none of them has recorded yet. A password check
//! that succeeds gives its reservation back. In memory, per process.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

/// A password check that was let through and counted as a failure until it succeeds.
#[must_use = "a successful check must be reported with `LoginThrottle::succeeded`"]
pub struct Attempt {
    account: Key,
    address: Option<Key>,
    at: Instant,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        Self { limits, windows: Windows::new() }
    }

    /// Lets one password check through and counts it, or `Err(wait)` when it must be refused.
    pub fn reserve(&self, account: &str, address: Option<&str>) -> Result<Attempt, Duration> {
        let account = account_key(account);
        let address = address.map(|a| Key::Address(address_key(a)));
        let mut keys = vec![(account.clone(), self.limits.per_account)];
        if let Some(address) = &address {
            keys.push((address.clone(), self.limits.per_address));
        }
        let at = self.windows.reserve(&keys, self.limits.window)?;
        Ok(Attempt { account, address, at })
    }

    /// The password was right: the account's failures are forgotten, and the attempt no longer
    /// counts against the address.
    pub fn succeeded(&self, attempt: Attempt) {
        self.windows.forget(&attempt.account);
        if let Some(address) = &attempt.address {
            self.windows.give_back(address, attempt.at);
        }
    }

    /// The attempt was not a password check after all (e.g. the account vanished meanwhile).
    pub fn cancel(&self, attempt: Attempt) {
        self.windows.give_back(&attempt.account, attempt.at);
        if let Some(address) = &attempt.address {
            self.windows.give_back(address, attempt.at);
        }
    }
}

/// Sign-ups: per address and for the whole platform.
pub struct SignupThrottle {
    limits: SignupLimits,
    windows: Windows,
}

impl SignupThrottle {
    pub fn new(limits: SignupLimits) -> Self {
        Self { limits, windows: Windows::new() }
    }

    /// Counts one sign-up, or `Err(wait)` when it must be refused.
    pub fn reserve(&self, address: Option<&str>) -> Result<(), Duration> {
        let mut keys = vec![(Key::SignupTotal, self.limits.total)];
        if let Some(address) = address {
            keys.push((Key::SignupAddress(address_key(address)), self.limits.per_address));
        }
        self.windows.reserve(&keys, self.limits.window).map(|_| ())
    }
}

/// Failed bearer-token checks (the cluster gateway), per client address: only failures count,
/// so a client with a good token is never slowed down, and one guessing is refused for a while.
pub struct TokenThrottle {
    per_address: usize,
    window: Duration,
    windows: Windows,
}

impl TokenThrottle {
    pub fn new(per_address: usize, window: Duration) -> Self {
        Self { per_address, window, windows: Windows::new() }
    }

    /// `Err(wait)` while the address has failed too often to be heard.
    pub fn check(&self, address: &str) -> Result<(), Duration> {
        let key = Key::TokenAddress(address_key(address));
        self.windows.blocked(&key, self.per_address, self.window).map_or(Ok(()), Err)
    }

    /// Counts a failed check.
    pub fn failed(&self, address: &str) {
        let key = Key::TokenAddress(address_key(address));
        let _ = self.windows.reserve(&[(key, self.per_address)], self.window);
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

    #[test]
    fn an_account_is_locked_after_too_many_failures() {
        let t = throttle();
        for _ in 0..3 {
            let _failed = t.reserve("ada", Some("10.0.0.1")).unwrap();
        }
        let wait = t.reserve("ada", Some("10.0.0.2")).err().unwrap();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59), "{wait:?}");
        // Another account from another address is unaffected.
        assert!(t.reserve("bob", Some("10.0.0.2")).is_ok());
    }

    #[test]
    fn reserved_attempts_count_before_they_finish() {
        // Concurrent checks: none has finished, yet the fourth is refused.
        let t = throttle();
        let pending: Vec<Attempt> = (0..3).map(|_| t.reserve("ada", None).unwrap()).collect();
        assert!(t.reserve("ada", None).is_err());
        // One of them turns out right: the account starts over.
        let mut pending = pending.into_iter();
        t.succeeded(pending.next().unwrap());
        assert!(t.reserve("ada", None).is_ok());
    }

    #[test]
    fn an_address_is_locked_across_accounts() {
        let t = throttle();
        for name in ["a", "b", "c", "d", "e"] {
            let _failed = t.reserve(name, Some("10.0.0.9")).unwrap();
        }
        assert!(t.reserve("fresh", Some("10.0.0.9")).is_err());
        assert!(t.reserve("fresh", Some("10.0.0.8")).is_ok());
    }

    #[test]
    fn a_success_does_not_count_against_the_address() {
        let t = throttle();
        for _ in 0..10 {
            let attempt = t.reserve("ada", Some("10.0.0.9")).unwrap();
            t.succeeded(attempt);
        }
        assert!(t.reserve("bob", Some("10.0.0.9")).is_ok());
    }

    #[test]
    fn account_keys_are_case_insensitive_and_bounded() {
        let t = throttle();
        for _ in 0..3 {
            let _failed = t.reserve("Ada", None).unwrap();
        }
        assert!(t.reserve("ada", None).is_err(), "account keys are case-insensitive");
        let long = "x".repeat(1 << 20);
        let _failed = t.reserve(&long, None).unwrap();
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

    #[test]
    fn sign_ups_are_limited_per_address_and_in_total() {
        let t = SignupThrottle::new(SignupLimits {
            per_address: 2,
            total: 3,
            window: Duration::from_secs(60),
        });
        assert!(t.reserve(Some("a")).is_ok());
        assert!(t.reserve(Some("a")).is_ok());
        assert!(t.reserve(Some("a")).is_err());
        assert!(t.reserve(Some("b")).is_ok());
        assert!(t.reserve(Some("c")).is_err(), "the platform-wide limit holds across addresses");
    }
}

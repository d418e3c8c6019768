//! Login throttling, per account and per client address: after too many failures inside a window,
//! further attempts are refused until the oldest failure leaves the window. In memory, per process.

use std::collections::{HashMap, VecDeque};
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

/// Keys are namespaced so an account name can never collide with an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
}

/// Bounded: when it tracks more keys than this, the stalest are forgotten first.
const MAX_KEYS: usize = 100_000;

pub struct LoginThrottle {
    limits: Limits,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        Self { limits, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` when this attempt must be refused.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in self.keys(account, address) {
            if let Some(times) = failures.get_mut(&key) {
                prune(times, now, self.limits.window);
                if times.len() >= limit {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(self.limits.window.saturating_sub(now - *oldest));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.max(Duration::from_secs(1)))
        }
    }

    pub fn record_failure(&self, account: &str, address: Option<&str>) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= MAX_KEYS {
            let window = self.limits.window;
            failures.retain(|_, times| {
                prune(times, now, window);
                !times.is_empty()
            });
        }
        for (key, limit) in self.keys(account, address) {
            let times = failures.entry(key).or_default();
            prune(times, now, self.limits.window);
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        self.lock().remove(&Key::Account(account.to_owned()));
    }

    fn keys(&self, account: &str, address: Option<&str>) -> Vec<(Key, usize)> {
        let mut keys = vec![(Key::Account(account.to_lowercase()), self.limits.per_account)];
        if let Some(address) = address {
            keys.push((Key::Address(address.to_owned()), self.limits.per_address));
        }
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic while holding the lock leaves counters that are still meaningful.
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(t.check("ada", Some("10.0.0.1")).is_ok());
            t.record_failure("ada", Some("10.0.0.1"));
        }
        let wait = t.check("ada", Some("10.0.0.2")).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(59), "{wait:?}");
        // Another account from another address is unaffected.
        assert!(t.check("bob", Some("10.0.0.2")).is_ok());
    }

    #[test]
    fn an_address_is_locked_across_accounts() {
        let t = throttle();
        for name in ["a", "b", "c", "d", "e"] {
            t.record_failure(name, Some("10.0.0.9"));
        }
        assert!(t.check("fresh", Some("10.0.0.9")).is_err());
        assert!(t.check("fresh", Some("10.0.0.8")).is_ok());
    }

    #[test]
    fn success_clears_the_account() {
        let t = throttle();
        for _ in 0..3 {
            t.record_failure("Ada", None);
        }
        assert!(t.check("ada", None).is_err(), "account keys are case-insensitive");
        t.record_success("ada");
        assert!(t.check("ada", None).is_ok());
    }
}

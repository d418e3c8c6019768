//! Per-user caps on what holds KRaft's own resources while it is open: live log views (each one a
//! socket, a cursor and possibly an upstream stream from the host) and log reads (downloads and
//! previous-run reads, each up to a few MiB in memory while it is read and sent). One tenant
//! opening hundreds of them must not exhaust KRaft for everyone else.
//!
//! A [`Permit`] is taken before the work starts and held for as long as it runs; dropping it gives
//! the place back. The counts live in this process: with several replicas each one applies the cap
//! on its own (a user spread over `n` replicas may hold up to `n` times as much).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

/// What a permit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// A live log view (the log websocket).
    LogView,
    /// A log download or a read of a container's previous run.
    LogRead,
}

/// How many of each one user may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    pub log_views: usize,
    pub log_reads: usize,
}

impl Default for UserLimits {
    fn default() -> Self {
        Self { log_views: 16, log_reads: 2 }
    }
}

impl UserLimits {
    fn of(&self, what: Use) -> usize {
        match what {
            Use::LogView => self.log_views,
            Use::LogRead => self.log_reads,
        }
    }
}

/// A user already holds as many as the cap allows; the message says which and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CapReached(pub String);

type Counts = Arc<Mutex<HashMap<(Uuid, Use), usize>>>;

/// The open counts of every user, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct UserCaps {
    limits: UserLimits,
    counts: Counts,
}

impl UserCaps {
    pub fn new(limits: UserLimits) -> Self {
        Self { limits, counts: Counts::default() }
    }

    pub fn limits(&self) -> UserLimits {
        self.limits
    }

    /// A permit for one more `what` of `user`, or why not.
    pub fn acquire(&self, user: Uuid, what: Use) -> Result<Permit, CapReached> {
        let limit = self.limits.of(what);
        let mut counts = lock(&self.counts);
        let held = counts.entry((user, what)).or_insert(0);
        if *held >= limit {
            return Err(CapReached(match what {
                Use::LogView => format!(
                    "You have {limit} live logs open already, the most one account may have at \
                     once. Close a log you are not reading (another tab or window) and try again."
                ),
                Use::LogRead => format!(
                    "You have {limit} log downloads under way already, the most one account may \
                     have at once. Wait for one to finish and try again."
                ),
            }));
        }
        *held += 1;
        Ok(Permit { counts: self.counts.clone(), key: (user, what) })
    }

    /// How many `what` the user holds now.
    pub fn held(&self, user: Uuid, what: Use) -> usize {
        lock(&self.counts).get(&(user, what)).copied().unwrap_or(0)
    }
}

fn lock(counts: &Counts) -> MutexGuard<'_, HashMap<(Uuid, Use), usize>> {
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

/// One place under a user's cap, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    counts: Counts,
    key: (Uuid, Use),
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(held) = counts.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_cap_and_a_dropped_permit_frees_its_place() {
        let caps = UserCaps::new(UserLimits { log_views: 2, log_reads: 1 });
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let first = caps.acquire(alice, Use::LogView).unwrap();
        let _second = caps.acquire(alice, Use::LogView).unwrap();
        let refused = caps.acquire(alice, Use::LogView).unwrap_err();
        assert!(refused.0.contains("2 live logs open already"), "{refused}");
        // Other users and other uses have their own counts.
        let _bob = caps.acquire(bob, Use::LogView).unwrap();
        let read = caps.acquire(alice, Use::LogRead).unwrap();
        assert!(caps.acquire(alice, Use::LogRead).unwrap_err().0.contains("1 log downloads"));
        drop(first);
        assert_eq!(caps.held(alice, Use::LogView), 1);
        let _again = caps.acquire(alice, Use::LogView).unwrap();
        drop(read);
        assert_eq!(caps.held(alice, Use::LogRead), 0);
        assert!(lock(&caps.counts).get(&(alice, Use::LogRead)).is_none(), "no entry left behind");
    }
}

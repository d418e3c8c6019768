//! Password hashing with argon2id (OWASP parameters: m=19456 KiB, t=2, p=1). Hashing is CPU-heavy,
//! so it runs on blocking threads behind a semaphore: a burst of logins queues instead of starving
//! the async runtime, and a queue that stays full answers "busy" instead of growing without bound.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// How long a request may wait for a hashing slot before it is told to come back later.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and here is a hash with the current parameters to store instead.
    YesRehashed(String),
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    /// A real hash of a random password: unknown accounts are verified against it so that a
    /// login takes as long whether the account exists or not.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency` is how many hashes may run at once (the CPU count is a good value).
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        Self::with_params(concurrency, Self::owasp_params()?)
    }

    pub fn owasp_params() -> Result<Params, HashError> {
        Params::new(19_456, 2, 1, None).map_err(|e| HashError::Failed(e.to_string()))
    }

    pub fn with_params(concurrency: usize, params: Params) -> Result<Self, HashError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    fn argon(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon(&params)
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Checks `password` against `stored` (or against the dummy hash when there is no account).
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let params = self.params.clone();
        let password = password.to_owned();
        // An account without a password (single sign-on) keeps a marker that is no PHC string:
        // it is checked like a missing account, against the dummy hash, and never matches.
        let stored = stored.filter(|hash| hash.starts_with('$'));
        let exists = stored.is_some();
        let stored = stored.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.to_string());
        self.run(move || {
            let parsed =
                PasswordHash::new(&stored).map_err(|e| HashError::Failed(e.to_string()))?;
            let ok = Self::argon(&params).verify_password(password.as_bytes(), &parsed).is_ok();
            if !ok || !exists {
                return Ok(Verified::No);
            }
            if Self::is_current(&parsed, &params) {
                return Ok(Verified::Yes);
            }
            let salt = SaltString::generate(&mut OsRng);
            let rehashed = Self::argon(&params)
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| HashError::Failed(e.to_string()))?;
            Ok(Verified::YesRehashed(rehashed.to_string()))
        })
        .await?
    }

    fn is_current(hash: &PasswordHash<'_>, params: &Params) -> bool {
        let Ok(stored) = Params::try_from(hash) else { return false };
        hash.algorithm.as_str() == "argon2id"
            && hash.version == Some(Version::V0x13.into())
            && stored.m_cost() == params.m_cost()
            && stored.t_cost() == params.t_cost()
            && stored.p_cost() == params.p_cost()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(2, Params::new(1024, 1, 1, None).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert_eq!(
            hasher.verify("correct horse battery", Some(&hash)).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(hasher.verify("wrong horse battery", Some(&hash)).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let hasher = cheap();
        assert_eq!(hasher.verify("anything at all", None).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn old_parameters_are_rehashed_on_a_correct_password() {
        let old = cheap().hash("correct horse battery").await.unwrap();
        let current =
            PasswordHasher::with_params(2, Params::new(2048, 2, 1, None).unwrap()).unwrap();
        match current.verify("correct horse battery", Some(&old)).await.unwrap() {
            Verified::YesRehashed(new) => assert!(new.contains("m=2048,t=2,p=1"), "{new}"),
            other => panic!("expected a rehash, got {other:?}"),
        }
        assert_eq!(current.verify("wrong", Some(&old)).await.unwrap(), Verified::No);
    }

    #[test]
    fn owasp_parameters() {
        let params = PasswordHasher::owasp_params().unwrap();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19_456, 2, 1));
    }
}

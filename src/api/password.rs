//! Passwords of web UI users: Argon2id (RFC 9106) in PHC string format, with
//! the argon2 crate's default cost (m = 19 MiB, t = 2, p = 1: OWASP's
//! recommended minimum). Hashing is blocking and memory-hungry, so it runs on tokio's blocking pool, two at a time at
//! most: a burst of logins cannot take more than ~40 MiB of a 1 GB box.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2: at least 8).
pub const MIN_LEN: usize = 8;
/// Longest accepted: long enough for any passphrase, bounded for hashing.
pub const MAX_LEN: usize = 256;

static SLOTS: Semaphore = Semaphore::const_new(2);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be {MIN_LEN} to {MAX_LEN} characters")]
    Policy,
    #[error("no randomness from the OS for a salt: {0}")]
    Random(getrandom::Error),
    #[error("argon2 failed: {0}")]
    Hash(String),
}

/// Refuses passwords outside the length policy.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_LEN..=MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::Policy)
    }
}

/// Hashes `password` (after [`check_policy`]) on the blocking pool.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    check_policy(&password)?;
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Hashes right here (for the CLI and tests), after [`check_policy`].
pub fn hash_now(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(PasswordError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `phc` (a stored hash). With `phc` `None` (no
/// such user) a dummy hash is checked anyway, so a wrong user name costs
/// the same time as a wrong password and names cannot be probed.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    let Ok(_slot) = SLOTS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
        verify_now(&password, &phc)
    })
    .await
    .unwrap_or(false)
}

fn verify_now(password: &str, phc: &str) -> bool {
    // A bad stored string is a failed login, never a panic.
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // The value never matches anything anyone types: random each start.
        let random = crate::util::random_hex(16).unwrap_or_else(|_| "camgate-dummy".into());
        hash_now(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_now("correct horse").unwrap();
        let b = hash_now("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_now("correct horse", &a));
        assert!(!verify_now("correct horsE", &a));
        assert!(!verify_now("correct horse", "not a phc string"));
        assert!(!verify_now("", ""));
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("1234567").is_err());
        assert!(check_policy("12345678").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn unknown_users_cost_a_verification_too() {
        assert!(!verify("whatever".into(), None).await);
        let h = hash("sesame-open".into()).await.unwrap();
        assert!(verify("sesame-open".into(), Some(h)).await);
        assert!(matches!(
            hash("short".into()).await,
            Err(PasswordError::Policy)
        ));
    }
}

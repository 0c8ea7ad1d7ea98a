//! Password hashes. Quay stores bcrypt hashes (`$2b$` with cost 12 from py-bcrypt), so Wharf
//! writes the same format: a database can move between the two and its users keep their
//! passwords. Hashing is CPU-heavy by design, so it runs on the blocking pool.

/// bcrypt cost factor, Quay's.
const COST: u32 = 12;

/// Hashing failed (the system random source, or the blocking pool).
#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct HashError(String);

/// Hashes a password for storage.
pub async fn hash(password: &str) -> Result<String, HashError> {
    let password = password.to_string();
    match tokio::task::spawn_blocking(move || bcrypt::hash(password, COST)).await {
        Ok(result) => result.map_err(|e| HashError(e.to_string())),
        Err(join) => Err(HashError(join.to_string())),
    }
}

/// Checks a password against a stored hash. A malformed hash never matches.
pub async fn verify(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_string(), stored.to_string());
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &stored).unwrap_or(false))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_look_like_quays() {
        let h = super::hash("correct horse").await.unwrap();
        assert!(h.starts_with("$2b$12$"), "{h}");
        assert!(super::verify("correct horse", &h).await);
        assert!(!super::verify("wrong horse", &h).await);
        assert!(!super::verify("correct horse", "not a hash").await);
    }

    #[tokio::test]
    async fn verifies_hashes_written_by_other_bcrypt_implementations() {
        // Made by Apache's `htpasswd -nbB -C 4 u password` (the `$2y$` variant).
        let apache = "$2y$04$fkdN0Q4hZGmvtkoNgr0gSOIGMIYL1gJ4WdUeGlFXjBRtZ9u05re22";
        assert!(super::verify("password", apache).await);
        assert!(!super::verify("Password", apache).await);
    }
}

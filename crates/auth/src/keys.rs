//! The keys that sign registry tokens. Every installation has an instance key in the
//! `service_key` table: its public JWK for any node to verify tokens, its private key encrypted
//! with the `DATABASE_SECRET_KEY`-derived key so every node can sign with it. The first node to
//! start creates it; if two start at once, both keys are valid and the newer one signs.

use data_encoding::BASE64;
use db::{Db, NewServiceKey};

use crate::crypto::SecretKey;
use crate::jwt::{KeySet, PublicKey, SigningKey};
use crate::service::AuthError;

/// The newest key of `service` with a private key, created if there is none.
pub(crate) async fn signing_key(
    db: &Db,
    secret_key: &SecretKey,
    service: &str,
) -> Result<SigningKey, AuthError> {
    for row in db.service_keys(service).await? {
        let Some(ciphertext) = row.private_key_ciphertext else {
            continue;
        };
        let der = BASE64
            .decode(secret_key.decrypt(&ciphertext)?.as_bytes())
            .map_err(|_| crate::crypto::CryptoError::Malformed)?;
        return Ok(SigningKey::from_pkcs8_der(&der)?);
    }
    let key = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|e| AuthError::Db(db::DbError::Invariant(format!("key generation: {e}"))))??;
    let private = secret_key.encrypt(&BASE64.encode(&key.to_pkcs8_der()?))?;
    db.insert_service_key(NewServiceKey {
        kid: key.kid().to_string(),
        service: service.to_string(),
        jwk: key.public_key().to_jwk().to_string(),
        private_key_ciphertext: Some(private),
        expiration_ms: None,
    })
    .await?;
    tracing::info!(
        kid = key.kid(),
        service,
        "created the instance key that signs registry tokens"
    );
    Ok(key)
}

/// Every unexpired public key of `service`.
pub(crate) async fn load_keys(db: &Db, service: &str) -> Result<KeySet, AuthError> {
    let mut keys = KeySet::new();
    for row in db.service_keys(service).await? {
        let jwk: serde_json::Value = match serde_json::from_str(&row.jwk) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!(kid = row.kid, error = %e, "unreadable service key skipped");
                continue;
            }
        };
        match PublicKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(key);
            }
            Err(e) => tracing::warn!(kid = row.kid, error = %e, "unusable service key skipped"),
        }
    }
    Ok(keys)
}

//! Secrets at rest and bearer secrets: the field encryption that protects secrets Wharf must be
//! able to show again (robot tokens, OAuth client secrets), the random strings that become
//! credentials in Quay's formats, and the hashes that bearer credentials are looked up by.
//!
//! Field encryption is AES-256-GCM under a key derived with HKDF-SHA256 from the configured
//! `DATABASE_SECRET_KEY`, stored as `v1$` + base64url(nonce ‖ ciphertext ‖ tag). The version
//! prefix lets a later scheme coexist with rows written by this one. (Quay's own `v0$$` values,
//! AES-CCM under a differently derived key, are not readable here.)
//!
//! Bearer credentials (OAuth access tokens, app-specific tokens) are split into a lookup part
//! stored in clear and a secret part stored as a hash. The secrets are long random strings, so a
//! fast unsalted hash is enough: brute force over 20+ random alphanumerics is out of reach, and a
//! slow hash would only cost time on every request.
//!
//! All randomness comes from AWS-LC's CSPRNG, the project's only crypto provider.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{constant_time, digest, hkdf, rand};
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};

/// `A-Z0-9`: Quay's default alphabet for generated credentials.
pub const UPPER_ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// `A-Za-z0-9`.
pub const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a robot account token (`A-Z0-9`).
pub const ROBOT_TOKEN_LEN: usize = 64;
/// Length of an OAuth application's client id (`A-Z0-9`).
pub const OAUTH_CLIENT_ID_LEN: usize = 20;
/// Length of an OAuth application's client secret (`A-Z0-9`).
pub const OAUTH_CLIENT_SECRET_LEN: usize = 40;
/// Length of the generated `DATABASE_SECRET_KEY` of an embedded installation.
pub const DATABASE_SECRET_KEY_LEN: usize = 48;

/// The version prefix of field-encrypted values written by [`SecretKey::encrypt`].
const FIELD_VERSION_V1: &str = "v1";
/// HKDF salt and info for the v1 field key. Changing either makes every stored value unreadable.
const FIELD_KEY_SALT_V1: &[u8] = b"wharf field encryption v1 salt";
const FIELD_KEY_INFO_V1: &[u8] = b"wharf field encryption v1 aes-256-gcm key";
/// Additional authenticated data, so a v1 ciphertext cannot be passed off under another version.
const FIELD_AAD_V1: &[u8] = b"wharf field encryption v1";
const GCM_TAG_LEN: usize = 16;

/// Prefix of the hashes written by [`hash_secret`].
const HASH_PREFIX_SHA256: &str = "sha256:";

/// Why a stored value could not be decrypted, or a value not encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The value is not `<version>$<base64url>` or is too short to hold a nonce and a tag.
    #[error("the encrypted value is malformed")]
    Malformed,
    /// The value names an encryption version this build does not know.
    #[error("unknown field encryption version {0:?}")]
    UnknownVersion(String),
    /// Authentication failed: the value was written under another `DATABASE_SECRET_KEY`, or it
    /// was altered. AES-GCM cannot tell the two apart.
    #[error("the encrypted value does not authenticate (wrong DATABASE_SECRET_KEY or tampered)")]
    Decrypt,
    /// AWS-LC refused to encrypt (in practice: a plaintext of tens of gigabytes).
    #[error("encryption failed")]
    Encrypt,
}

/// The key that encrypts secrets stored in the database. Derived from `DATABASE_SECRET_KEY`.
pub struct SecretKey {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// Derives the field key from the configured `DATABASE_SECRET_KEY` (any string).
    pub fn derive(database_secret_key: &str) -> SecretKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, FIELD_KEY_SALT_V1)
            .extract(database_secret_key.as_bytes());
        let mut key_bytes = [0u8; 32];
        // Both calls fail only for lengths other than the fixed 32 bytes asked for here.
        prk.expand(&[FIELD_KEY_INFO_V1], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut key_bytes))
            .expect("HKDF-SHA256 yields 32 bytes");
        let key = RandomizedNonceKey::new(&AES_256_GCM, &key_bytes)
            .expect("AES-256-GCM accepts a 32-byte key");
        key_bytes.fill(0);
        SecretKey { key }
    }

    /// Encrypts `plaintext` for storage. Two encryptions of the same text differ (random nonce).
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut sealed = plaintext.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(FIELD_AAD_V1), &mut sealed)
            .map_err(|_| CryptoError::Encrypt)?;
        let mut stored = Vec::with_capacity(NONCE_LEN + sealed.len());
        stored.extend_from_slice(nonce.as_ref());
        stored.extend_from_slice(&sealed);
        Ok(format!(
            "{FIELD_VERSION_V1}${}",
            BASE64URL_NOPAD.encode(&stored)
        ))
    }

    /// Decrypts a value written by [`SecretKey::encrypt`].
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let (version, payload) = stored.split_once('$').ok_or(CryptoError::Malformed)?;
        if version != FIELD_VERSION_V1 {
            // Bound what goes into the error: a plaintext secret with a `$` in it could land here.
            return Err(CryptoError::UnknownVersion(
                version.chars().take(8).collect(),
            ));
        }
        let mut bytes = BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + GCM_TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN])
            .map_err(|_| CryptoError::Malformed)?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(FIELD_AAD_V1), &mut bytes[NONCE_LEN..])
            .map_err(|_| CryptoError::Decrypt)?;
        // Authenticated bytes came from `encrypt`, which only takes `&str`.
        String::from_utf8(plaintext.to_vec()).map_err(|_| CryptoError::Malformed)
    }
}

/// Fills `buf` from the system CSPRNG.
fn fill_random(buf: &mut [u8]) {
    // AWS-LC's RAND_bytes returns 1 or aborts the process: the error arm of the Rust binding is
    // unreachable, and returning a `Result` would push an impossible error onto every caller.
    rand::fill(buf).expect("AWS-LC RAND_bytes cannot fail without aborting");
}

/// A string of `len` characters drawn uniformly from `alphabet` (at most 256 distinct bytes,
/// normally ASCII) with the system CSPRNG. Rejection sampling keeps the draw unbiased. An empty
/// alphabet gives an empty string.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return String::new();
    }
    // The largest multiple of `n` that fits in a byte; bytes at or above it are redrawn.
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    out
}

/// A new robot account token: 64 characters of `A-Z0-9`.
pub fn generate_robot_token() -> String {
    random_string(ROBOT_TOKEN_LEN, UPPER_ALPHANUMERIC)
}

/// A new OAuth application client id: 20 characters of `A-Z0-9`.
pub fn generate_oauth_client_id() -> String {
    random_string(OAUTH_CLIENT_ID_LEN, UPPER_ALPHANUMERIC)
}

/// A new OAuth application client secret: 40 characters of `A-Z0-9`.
pub fn generate_oauth_client_secret() -> String {
    random_string(OAUTH_CLIENT_SECRET_LEN, UPPER_ALPHANUMERIC)
}

/// A `DATABASE_SECRET_KEY` for an installation started without configuration: 48 random
/// alphanumerics (about 285 bits), written to the data directory by the server.
pub fn generate_database_secret_key() -> String {
    random_string(DATABASE_SECRET_KEY_LEN, ALPHANUMERIC)
}

/// The shape of a bearer credential made of a lookup part (stored in clear, indexed) followed by
/// a secret part (stored as [`hash_secret`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFormat {
    /// Characters of the lookup part (Quay's `token_name`).
    pub lookup_len: usize,
    /// Characters of the secret part (Quay's `token_code`).
    pub secret_len: usize,
}

/// OAuth access tokens: 40 characters of `A-Za-z0-9`, 20 of lookup then 20 of secret.
pub const OAUTH_ACCESS_TOKEN: TokenFormat = TokenFormat {
    lookup_len: 20,
    secret_len: 20,
};

/// App-specific tokens: 120 characters of `A-Za-z0-9`, 60 of lookup then 60 of secret.
pub const APP_SPECIFIC_TOKEN: TokenFormat = TokenFormat {
    lookup_len: 60,
    secret_len: 60,
};

impl TokenFormat {
    /// Total length of a token in this format.
    pub const fn total_len(&self) -> usize {
        self.lookup_len + self.secret_len
    }

    /// A new token in this format, `A-Za-z0-9`. Split it with [`TokenFormat::split`] to store it.
    pub fn generate(&self) -> String {
        random_string(self.total_len(), ALPHANUMERIC)
    }

    /// Splits a presented token; `None` if it cannot be a token of this format.
    pub fn split(&self, presented: &str) -> Option<SplitToken> {
        SplitToken::split(presented, self.lookup_len, self.secret_len)
    }
}

/// A presented bearer credential cut into its lookup part and its secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct SplitToken {
    pub lookup: String,
    pub secret: String,
}

impl std::fmt::Debug for SplitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitToken")
            .field("lookup", &self.lookup)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SplitToken {
    /// Splits `presented` into `lookup_len` characters of lookup and `secret_len` of secret.
    /// Rejects any other length and anything but ASCII alphanumerics, so a lookup never runs
    /// on input that no generated token can match.
    pub fn split(presented: &str, lookup_len: usize, secret_len: usize) -> Option<SplitToken> {
        if presented.len() != lookup_len.checked_add(secret_len)?
            || !presented.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        // All ASCII, so any byte index is a character boundary.
        let (lookup, secret) = presented.split_at(lookup_len);
        Some(SplitToken {
            lookup: lookup.to_string(),
            secret: secret.to_string(),
        })
    }
}

/// Hashes a high-entropy secret for storage: `sha256:` + lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    let digest = digest::digest(&digest::SHA256, secret.as_bytes());
    format!("{HASH_PREFIX_SHA256}{}", HEXLOWER.encode(digest.as_ref()))
}

/// Whether `secret` matches a hash written by [`hash_secret`], compared in constant time. An
/// unknown or malformed stored hash never matches.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    if !stored_hash.starts_with(HASH_PREFIX_SHA256) {
        return false;
    }
    constant_time_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Byte equality whose time depends only on the lengths, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips() {
        let key = SecretKey::derive("the configured DATABASE_SECRET_KEY");
        for plaintext in ["", "robot token ABC123", "ünïcödé $ with dollars $$"] {
            let stored = key.encrypt(plaintext).unwrap();
            assert!(stored.starts_with("v1$"), "{stored}");
            assert_eq!(key.decrypt(&stored).unwrap(), plaintext);
        }
    }

    #[test]
    fn derivation_is_deterministic_and_key_dependent() {
        let stored = SecretKey::derive("k").encrypt("secret").unwrap();
        assert_eq!(SecretKey::derive("k").decrypt(&stored).unwrap(), "secret");
        assert_eq!(
            SecretKey::derive("K").decrypt(&stored),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn tampered_values_fail() {
        let key = SecretKey::derive("k");
        let stored = key.encrypt("a secret worth keeping").unwrap();
        let mut bytes = BASE64URL_NOPAD.decode(&stored.as_bytes()[3..]).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("v1${}", BASE64URL_NOPAD.encode(&bytes));
            assert_eq!(
                key.decrypt(&tampered),
                Err(CryptoError::Decrypt),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        // Truncating the tag also fails.
        let truncated = format!("v1${}", BASE64URL_NOPAD.encode(&bytes[..bytes.len() - 1]));
        assert_eq!(key.decrypt(&truncated), Err(CryptoError::Decrypt));
    }

    #[test]
    fn bad_formats_are_errors_not_panics() {
        let key = SecretKey::derive("k");
        assert_eq!(key.decrypt(""), Err(CryptoError::Malformed));
        assert_eq!(key.decrypt("no dollar"), Err(CryptoError::Malformed));
        assert_eq!(key.decrypt("v1$"), Err(CryptoError::Malformed));
        assert_eq!(key.decrypt("v1$!!!"), Err(CryptoError::Malformed));
        assert_eq!(key.decrypt("v1$AAAA"), Err(CryptoError::Malformed));
        assert_eq!(key.decrypt("v1$AAAA=="), Err(CryptoError::Malformed));
        assert_eq!(
            key.decrypt("v0$$c29tZXRoaW5n"),
            Err(CryptoError::UnknownVersion("v0".into()))
        );
        assert_eq!(
            key.decrypt("v2$AAAA"),
            Err(CryptoError::UnknownVersion("v2".into()))
        );
    }

    #[test]
    fn nonces_differ_between_encryptions() {
        let key = SecretKey::derive("k");
        let (a, b) = (key.encrypt("same").unwrap(), key.encrypt("same").unwrap());
        assert_ne!(a, b);
        let nonce =
            |s: &str| BASE64URL_NOPAD.decode(&s.as_bytes()[3..]).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", SecretKey::derive("k")),
            "SecretKey(<redacted>)"
        );
        let split = OAUTH_ACCESS_TOKEN
            .split(&OAUTH_ACCESS_TOKEN.generate())
            .unwrap();
        assert!(!format!("{split:?}").contains(&split.secret));
    }

    #[test]
    fn random_strings_have_the_length_and_alphabet() {
        for (len, alphabet) in [
            (0, ALPHANUMERIC),
            (1, b"x".as_slice()),
            (1000, UPPER_ALPHANUMERIC),
            (200, b"ab"),
        ] {
            let s = random_string(len, alphabet);
            assert_eq!(s.len(), len);
            assert!(s.bytes().all(|b| alphabet.contains(&b)), "{s}");
        }
        assert_eq!(random_string(10, b""), "");
        // Every character of the alphabet turns up in a long string: nothing is cut off.
        let s = random_string(5000, ALPHANUMERIC);
        assert!(ALPHANUMERIC.iter().all(|c| s.as_bytes().contains(c)));
        assert_ne!(
            random_string(40, ALPHANUMERIC),
            random_string(40, ALPHANUMERIC)
        );
    }

    #[test]
    fn quay_formats() {
        let robot = generate_robot_token();
        assert_eq!(robot.len(), 64);
        assert!(robot.bytes().all(|b| UPPER_ALPHANUMERIC.contains(&b)));
        assert_eq!(generate_oauth_client_id().len(), 20);
        let client_secret = generate_oauth_client_secret();
        assert_eq!(client_secret.len(), 40);
        assert!(
            client_secret
                .bytes()
                .all(|b| UPPER_ALPHANUMERIC.contains(&b))
        );
        assert_eq!(generate_database_secret_key().len(), 48);

        let access = OAUTH_ACCESS_TOKEN.generate();
        assert_eq!(access.len(), 40);
        let split = OAUTH_ACCESS_TOKEN.split(&access).unwrap();
        assert_eq!((split.lookup.len(), split.secret.len()), (20, 20));
        assert_eq!(format!("{}{}", split.lookup, split.secret), access);

        let app = APP_SPECIFIC_TOKEN.generate();
        assert_eq!(app.len(), 120);
        let split = APP_SPECIFIC_TOKEN.split(&app).unwrap();
        assert_eq!((split.lookup.len(), split.secret.len()), (60, 60));
    }

    #[test]
    fn split_rejects_bad_input() {
        let good = "a".repeat(20) + &"B".repeat(20);
        assert!(OAUTH_ACCESS_TOKEN.split(&good).is_some());
        for bad in [
            String::new(),
            "a".repeat(39),
            "a".repeat(41),
            "a".repeat(19) + "-" + &"B".repeat(20),
            "a".repeat(19) + " " + &"B".repeat(20),
            // 40 bytes but not 40 ASCII characters.
            "é".repeat(20),
            "a".repeat(38) + "é",
        ] {
            assert_eq!(OAUTH_ACCESS_TOKEN.split(&bad), None, "{bad:?}");
        }
        assert_eq!(SplitToken::split("ab", usize::MAX, 2), None);
        assert_eq!(
            SplitToken::split("ab12", 2, 2),
            Some(SplitToken {
                lookup: "ab".into(),
                secret: "12".into()
            })
        );
    }

    #[test]
    fn secret_hashes_verify() {
        let secret = OAUTH_ACCESS_TOKEN.generate();
        let stored = hash_secret(&secret);
        assert!(stored.starts_with("sha256:"));
        assert_eq!(stored.len(), "sha256:".len() + 64);
        assert!(verify_secret(&secret, &stored));
        assert!(!verify_secret("other", &stored));
        assert!(!verify_secret(&secret, &stored[..stored.len() - 1]));
        assert!(!verify_secret(&secret, &stored["sha256:".len()..]));
        assert!(!verify_secret(&secret, ""));
        // Known vector: SHA-256("abc").
        assert_eq!(
            hash_secret("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

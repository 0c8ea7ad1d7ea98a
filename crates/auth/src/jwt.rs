//! Registry bearer tokens in Quay's format: RS256 JWTs with a `kid` header, an `access` list of
//! repository scopes and Quay's signed auth `context`, minted by the `/v2/auth` endpoint and
//! checked on every `/v2` request. Also the instance's RSA keys, their RFC 7638 key ids and the
//! JWK set Quay publishes at `/keys/services/quay/keys`.
//!
//! The compact serialization is written here on aws-lc-rs directly rather than through
//! `jsonwebtoken`. This module needs one algorithm, and by hand that is a few dozen lines, while
//! the crate would (a) re-parse the RSA private key on every signature and rebuild the public key
//! on every verification, where we keep both parsed (verification is on the request path),
//! (b) need keys converted to PKCS#1 DER, while aws-lc-rs generates and stores PKCS#8, (c) bring
//! its own base64 crate and a `signature` trait crate, and (d) still leave Quay's rules to us:
//! the maximum `exp - iat`, the future-`iat` check, the required `kid` lookup among several keys.
//! Its validation would also accept an array `aud`, which Quay never mints.
//!
//! Verification follows Quay's `registry_jwt.decode_bearer_token` and `jwtutil.StrictJWT`: the
//! header must say RS256 and carry a `kid` naming a known key; no key is ever taken from the
//! token itself (`jwk`, `jku`, `x5u` are ignored); `aud` and `iss` must match exactly; `exp`,
//! `nbf` and `iat` are required and checked with 30 s of leeway; and a token whose `exp` lies
//! more than `REGISTRY_JWT_AUTH_MAX_FRESH_S` after its `iat` is refused.

use std::collections::{BTreeMap, HashMap};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use aws_lc_rs::{digest, rand::SystemRandom};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// Quay's `INSTANCE_SERVICE_KEY_SERVICE` default: the `iss` of registry tokens.
pub const DEFAULT_ISSUER: &str = "quay";
/// Lifetime of a minted registry token (Quay: `TOKEN_VALIDITY_LIFETIME_S`).
pub const DEFAULT_LIFETIME_SECS: i64 = 3600;
/// Quay's `REGISTRY_JWT_AUTH_MAX_FRESH_S` default: the longest accepted `exp - iat`.
pub const DEFAULT_MAX_FRESH_SECS: i64 = 3660;
/// Clock skew allowed on `exp`, `nbf` and `iat` (Quay's `JWT_CLOCK_SKEW_SECONDS`).
pub const LEEWAY_SECS: i64 = 30;
/// The `sub` of a token issued to an anonymous caller.
pub const ANONYMOUS_SUBJECT: &str = "(anonymous)";
/// `com.apostille.root` when no TUF root applies (Quay's `DISABLED_TUF_ROOT`).
pub const DISABLED_TUF_ROOT: &str = "$disabled";

const ALGORITHM: &str = "RS256";
/// Longer input is refused before any decoding; a token with hundreds of scopes stays far below.
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// RSA moduli accepted from JWKs, in bytes: what `RSA_PKCS1_2048_8192_SHA256` verifies.
const MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// Why a token was not minted or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than RS256 (`none`, `HS256`, …).
    #[error("token algorithm is not RS256")]
    UnsupportedAlgorithm,
    #[error("token has no kid header")]
    MissingKid,
    #[error("token is signed by an unknown key")]
    UnknownKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` lies in the future, beyond the leeway.
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token is for another audience")]
    WrongAudience,
    #[error("token is from another issuer")]
    WrongIssuer,
    /// `exp - iat` is longer than the configured maximum freshness.
    #[error("token was signed for too long a lifetime")]
    TooLongLived,
    #[error("could not sign the token")]
    Signing,
}

/// Why a key could not be generated, loaded or exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate an RSA key")]
    Generate,
    #[error("RSA key rejected: {0}")]
    Rejected(String),
    #[error("could not encode the key")]
    Encode,
    #[error("invalid JWK: {0}")]
    Jwk(&'static str),
}

/// One granted scope: `{"type":"repository","name":"ns/repo","actions":["pull","push"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name exactly as the client asked for it.
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    /// A `repository` scope.
    pub fn repository(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".to_string(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// What authenticated the caller (Quay's `ContextEntityKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Anonymous,
    User,
    Robot,
    Token,
    #[serde(rename = "oauthtoken")]
    OAuthToken,
    #[serde(rename = "appspecifictoken")]
    AppSpecificToken,
    #[serde(rename = "signed_data")]
    SignedData,
}

/// The pre-2.6 `kind` Quay still writes next to `entity_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyKind {
    #[default]
    Anonymous,
    User,
    #[serde(rename = "oauth")]
    OAuth,
    Token,
}

impl EntityKind {
    /// The legacy `kind` Quay writes for this entity kind.
    pub fn legacy_kind(self) -> LegacyKind {
        match self {
            EntityKind::User | EntityKind::Robot | EntityKind::AppSpecificToken => LegacyKind::User,
            EntityKind::OAuthToken => LegacyKind::OAuth,
            EntityKind::Token => LegacyKind::Token,
            EntityKind::Anonymous | EntityKind::SignedData => LegacyKind::Anonymous,
        }
    }
}

/// Quay's signed auth context (`AuthContext.to_signed_dict`, version 2) plus its TUF claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenContext {
    pub version: u32,
    pub entity_kind: EntityKind,
    /// The user's uuid, the robot's name, the token's id… `null` for anonymous callers. Quay
    /// omits the key in that case, so a missing key reads as `None`.
    #[serde(default)]
    pub entity_reference: Option<String>,
    #[serde(default)]
    pub kind: LegacyKind,
    /// The authenticated user's name, if a user (or a robot, or a user's token) authenticated.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(
        rename = "com.apostille.roots",
        default,
        deserialize_with = "null_as_empty"
    )]
    pub tuf_roots: BTreeMap<String, String>,
    #[serde(rename = "com.apostille.root", default = "disabled_tuf_root")]
    pub tuf_root: String,
}

fn disabled_tuf_root() -> String {
    DISABLED_TUF_ROOT.to_string()
}

/// Quay writes `null` roots when it has none to offer; read that as an empty map.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

impl TokenContext {
    /// A version-2 context with TUF disabled, the legacy `kind` derived from `entity_kind`.
    pub fn new(
        entity_kind: EntityKind,
        entity_reference: Option<String>,
        user: Option<String>,
    ) -> TokenContext {
        TokenContext {
            version: 2,
            entity_kind,
            entity_reference,
            kind: entity_kind.legacy_kind(),
            user,
            tuf_roots: BTreeMap::new(),
            tuf_root: disabled_tuf_root(),
        }
    }

    /// The context of an anonymous caller.
    pub fn anonymous() -> TokenContext {
        TokenContext::new(EntityKind::Anonymous, None, None)
    }
}

/// The claims of a registry bearer token, with Quay's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryClaims {
    pub iss: String,
    pub aud: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
    /// Username, robot `namespace+name`, or [`ANONYMOUS_SUBJECT`].
    pub sub: String,
    #[serde(default)]
    pub access: Vec<Access>,
    pub context: TokenContext,
}

impl RegistryClaims {
    /// Claims valid from `now_secs` for `lifetime_secs`, as Quay's `generate_bearer_token` sets.
    pub fn new(
        issuer: &str,
        audience: &str,
        subject: &str,
        access: Vec<Access>,
        context: TokenContext,
        now_secs: i64,
        lifetime_secs: i64,
    ) -> RegistryClaims {
        RegistryClaims {
            iss: issuer.to_string(),
            aud: audience.to_string(),
            nbf: now_secs,
            iat: now_secs,
            exp: now_secs.saturating_add(lifetime_secs),
            sub: subject.to_string(),
            access,
            context,
        }
    }
}

/// An RSA public key that verifies registry tokens, under its key id.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    /// Big-endian modulus and exponent without leading zeros, as JWKs carry them.
    n: Vec<u8>,
    e: Vec<u8>,
    /// Parsed once, so verification does not rebuild the key.
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid && self.n == other.n && self.e == other.e
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// `kid` defaults to the RFC 7638 thumbprint.
    fn from_components(n: &[u8], e: &[u8], kid: Option<String>) -> Result<PublicKey, KeyError> {
        let strip = |b: &[u8]| -> Vec<u8> {
            let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            b[first..].to_vec()
        };
        let (n, e) = (strip(n), strip(e));
        if !MODULUS_BYTES.contains(&n.len()) {
            return Err(KeyError::Jwk("the modulus must have 2048 to 8192 bits"));
        }
        if e.is_empty() || e.len() > 8 {
            return Err(KeyError::Jwk("bad public exponent"));
        }
        let parsed = RsaPublicKeyComponents { n: &n, e: &e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(|err| KeyError::Rejected(err.to_string()))?;
        let kid = kid.unwrap_or_else(|| thumbprint(&n, &e));
        Ok(PublicKey { kid, n, e, parsed })
    }

    /// The key id tokens name in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.n, &self.e)
    }

    /// `{"kty":"RSA","n":…,"e":…,"kid":…,"alg":"RS256","use":"sig"}`.
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "n": BASE64URL_NOPAD.encode(&self.n),
            "e": BASE64URL_NOPAD.encode(&self.e),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        })
    }

    /// Reads an RSA JWK. Its `kid` is kept if present (keys created by Quay may name theirs),
    /// otherwise the thumbprint is used. A JWK for another algorithm or use is refused.
    pub fn from_jwk(jwk: &Value) -> Result<PublicKey, KeyError> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("RSA") {
            return Err(KeyError::Jwk("kty must be RSA"));
        }
        if jwk
            .get("alg")
            .is_some_and(|a| a.as_str() != Some(ALGORITHM))
        {
            return Err(KeyError::Jwk("alg must be RS256"));
        }
        if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
            return Err(KeyError::Jwk("use must be sig"));
        }
        let component = |name: &'static str| {
            field(name)
                .and_then(|v| BASE64URL_NOPAD.decode(v.as_bytes()).ok())
                .ok_or(KeyError::Jwk("n and e must be base64url strings"))
        };
        let kid = match jwk.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
            Some(_) => return Err(KeyError::Jwk("kid must be a non-empty string")),
        };
        PublicKey::from_components(&component("n")?, &component("e")?, kid)
    }
}

fn thumbprint(n: &[u8], e: &[u8]) -> String {
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        BASE64URL_NOPAD.encode(e),
        BASE64URL_NOPAD.encode(n)
    );
    BASE64URL_NOPAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// The instance's private key that signs registry tokens.
pub struct SigningKey {
    pair: RsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        SigningKey::from_pair(pair)
    }

    /// Loads a key stored with [`SigningKey::to_pkcs8_der`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        SigningKey::from_pair(pair)
    }

    fn from_pair(pair: RsaKeyPair) -> Result<SigningKey, KeyError> {
        let public = pair.public_key();
        let public = PublicKey::from_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
            None,
        )?;
        Ok(SigningKey { pair, public })
    }

    /// The unencrypted PKCS#8 DER of the private key; encrypt it before storing it.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let der = self.pair.as_der().map_err(|_| KeyError::Encode)?;
        Ok(der.as_ref().to_vec())
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// The public keys tokens may be signed with, by key id. Holding several lets keys rotate: a new
/// key signs while tokens from the old one stay valid until they expire.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds a key, returning the one it replaces under the same kid.
    pub fn insert(&mut self, key: PublicKey) -> Option<PublicKey> {
        self.keys.insert(key.kid.clone(), key)
    }

    pub fn remove(&mut self, kid: &str) -> Option<PublicKey> {
        self.keys.remove(kid)
    }

    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `{"keys":[jwk,…]}` document of these keys, ordered by kid.
    pub fn to_jwks(&self) -> Value {
        let mut keys: Vec<&PublicKey> = self.keys.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        jwks_document(keys)
    }

    /// Reads a `{"keys":[jwk,…]}` document.
    pub fn from_jwks(document: &Value) -> Result<KeySet, KeyError> {
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeyError::Jwk("a JWK set needs a keys array"))?;
        keys.iter().map(PublicKey::from_jwk).collect()
    }
}

impl FromIterator<PublicKey> for KeySet {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> KeySet {
        let mut set = KeySet::new();
        for key in iter {
            set.insert(key);
        }
        set
    }
}

/// The document Quay serves at `/keys/services/quay/keys`: `{"keys":[jwk,…]}`.
pub fn jwks_document<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> Value {
    json!({ "keys": keys.into_iter().map(PublicKey::to_jwk).collect::<Vec<_>>() })
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the verifier must understand (RFC 7515 §4.1.11); we understand none.
    #[serde(default)]
    crit: Option<Value>,
}

/// Signs `claims` with `key`: `base64url(header).base64url(claims).base64url(signature)`.
pub fn mint(key: &SigningKey, claims: &RegistryClaims) -> Result<String, TokenError> {
    let header = HeaderOut {
        alg: ALGORITHM,
        typ: "JWT",
        kid: key.kid(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| TokenError::Signing)?;
    let claims = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
    let mut token = BASE64URL_NOPAD.encode(&header);
    token.push('.');
    BASE64URL_NOPAD.encode_append(&claims, &mut token);
    let mut signature = vec![0; key.pair.public_modulus_len()];
    // AWS-LC's PKCS#1 v1.5 signing is deterministic and ignores the generator.
    key.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            token.as_bytes(),
            &mut signature,
        )
        .map_err(|_| TokenError::Signing)?;
    token.push('.');
    BASE64URL_NOPAD.encode_append(&signature, &mut token);
    Ok(token)
}

/// The three segments of a compact JWS: (header, payload, signature), still encoded.
fn segments(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(TokenError::Malformed("not three segments")),
    }
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    BASE64URL_NOPAD
        .decode(segment.as_bytes())
        .map_err(|_| TokenError::Malformed("bad base64url"))
}

fn decode_header(segment: &str) -> Result<HeaderIn, TokenError> {
    serde_json::from_slice(&decode_segment(segment)?)
        .map_err(|_| TokenError::Malformed("bad header"))
}

/// The `kid` of a token, unverified: enough to choose or fetch a key, nothing to trust.
pub fn peek_kid(token: &str) -> Option<String> {
    let (header, _, _) = segments(token).ok()?;
    decode_header(header).ok()?.kid
}

/// Verifies a registry token and returns its claims.
///
/// `audience` is the server hostname, `issuer` Quay's `INSTANCE_SERVICE_KEY_SERVICE`, and
/// `max_fresh_secs` `REGISTRY_JWT_AUTH_MAX_FRESH_S`.
pub fn verify(
    token: &str,
    keys: &KeySet,
    audience: &str,
    issuer: &str,
    now_secs: i64,
    max_fresh_secs: i64,
) -> Result<RegistryClaims, TokenError> {
    let (header_b64, payload_b64, signature_b64) = segments(token)?;
    let header = decode_header(header_b64)?;
    if header.alg != ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported crit header"));
    }
    let kid = header.kid.ok_or(TokenError::MissingKid)?;
    let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
    let signature = decode_segment(signature_b64)?;
    // The signing input is the token up to the second dot, exactly as received.
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    key.parsed
        .verify_sig(signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;

    let claims: RegistryClaims = serde_json::from_slice(&decode_segment(payload_b64)?)
        .map_err(|_| TokenError::Malformed("bad claims"))?;
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.exp < now_secs.saturating_sub(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    let latest_start = now_secs.saturating_add(LEEWAY_SECS);
    if claims.nbf > latest_start || claims.iat > latest_start {
        return Err(TokenError::NotYetValid);
    }
    if claims.exp.saturating_sub(claims.iat) > max_fresh_secs {
        return Err(TokenError::TooLongLived);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::hmac;

    use super::*;

    const AUD: &str = "registry.example.com";
    const NOW: i64 = 1_700_000_000;

    /// RSA key generation is the slow step of these tests: two keys serve them all.
    fn keys() -> &'static (SigningKey, SigningKey) {
        static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            (
                SigningKey::generate().unwrap(),
                SigningKey::generate().unwrap(),
            )
        })
    }

    fn key_set(key: &SigningKey) -> KeySet {
        [key.public_key().clone()].into_iter().collect()
    }

    fn claims() -> RegistryClaims {
        let context = TokenContext::new(
            EntityKind::User,
            Some("5e1c1ed3-2ab4-4dd6-8f0b-04fbd1c0b6a3".into()),
            Some("alice".into()),
        );
        let access = vec![Access::repository("alice/app", &["pull", "push"])];
        RegistryClaims::new(
            DEFAULT_ISSUER,
            AUD,
            "alice",
            access,
            context,
            NOW,
            DEFAULT_LIFETIME_SECS,
        )
    }

    fn check(token: &str, keys: &KeySet, now: i64) -> Result<RegistryClaims, TokenError> {
        verify(
            token,
            keys,
            AUD,
            DEFAULT_ISSUER,
            now,
            DEFAULT_MAX_FRESH_SECS,
        )
    }

    /// A token with any header and payload, signed by `key` (RS256 over the given text).
    fn forge(key: &SigningKey, header: &Value, payload: &Value) -> String {
        let mut token = BASE64URL_NOPAD.encode(header.to_string().as_bytes());
        token.push('.');
        BASE64URL_NOPAD.encode_append(payload.to_string().as_bytes(), &mut token);
        let mut signature = vec![0; key.pair.public_modulus_len()];
        let rng = SystemRandom::new();
        key.pair
            .sign(&RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut signature)
            .unwrap();
        format!("{token}.{}", BASE64URL_NOPAD.encode(&signature))
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let (key, _) = keys();
        let token = mint(key, &claims()).unwrap();
        assert_eq!(check(&token, &key_set(key), NOW + 10), Ok(claims()));
        assert_eq!(peek_kid(&token).as_deref(), Some(key.kid()));

        let header: Value =
            serde_json::from_slice(&decode_segment(token.split('.').next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()})
        );
    }

    #[test]
    fn claims_have_quays_shape() {
        let value = serde_json::to_value(claims()).unwrap();
        assert_eq!(
            value,
            json!({
                "iss": "quay", "aud": AUD, "nbf": NOW, "iat": NOW, "exp": NOW + 3600, "sub": "alice",
                "access": [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}],
                "context": {
                    "version": 2, "entity_kind": "user",
                    "entity_reference": "5e1c1ed3-2ab4-4dd6-8f0b-04fbd1c0b6a3",
                    "kind": "user", "user": "alice",
                    "com.apostille.roots": {}, "com.apostille.root": "$disabled",
                },
            })
        );
        let anonymous = serde_json::to_value(TokenContext::anonymous()).unwrap();
        assert_eq!(anonymous["entity_kind"], "anonymous");
        assert_eq!(anonymous["entity_reference"], Value::Null);
        assert_eq!(anonymous["kind"], "anonymous");
        assert_eq!(EntityKind::OAuthToken.legacy_kind(), LegacyKind::OAuth);
        assert_eq!(
            serde_json::to_value(EntityKind::AppSpecificToken).unwrap(),
            "appspecifictoken"
        );
    }

    #[test]
    fn reads_contexts_as_quay_writes_them() {
        // Quay leaves out entity_reference and user for anonymous callers, and may write null roots.
        let context: TokenContext = serde_json::from_value(json!({
            "version": 2, "entity_kind": "anonymous", "kind": "anonymous",
            "com.apostille.roots": null, "com.apostille.root": "$disabled",
        }))
        .unwrap();
        assert_eq!(context, TokenContext::anonymous());
        let oauth: TokenContext = serde_json::from_value(json!({
            "version": 2, "entity_kind": "oauthtoken", "entity_reference": "uuid",
            "kind": "oauth", "oauth": "uuid", "user": "bob",
            "com.apostille.roots": {}, "com.apostille.root": "$disabled",
        }))
        .unwrap();
        assert_eq!(oauth.kind, LegacyKind::OAuth);
    }

    #[test]
    fn another_key_with_the_same_kid_fails() {
        let (key, other) = keys();
        let mut claims_json = serde_json::to_value(claims()).unwrap();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()});
        let forged = forge(other, &header, &claims_json);
        assert_eq!(
            check(&forged, &key_set(key), NOW),
            Err(TokenError::BadSignature)
        );

        // Changing the claims of a genuine token breaks its signature too.
        let genuine = mint(key, &claims()).unwrap();
        claims_json["sub"] = json!("admin");
        let (h, _, s) = segments(&genuine).unwrap();
        let altered = format!(
            "{h}.{}.{s}",
            BASE64URL_NOPAD.encode(claims_json.to_string().as_bytes())
        );
        assert_eq!(
            check(&altered, &key_set(key), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn wrong_audience_or_issuer_fails() {
        let (key, _) = keys();
        let token = mint(key, &claims()).unwrap();
        let keys = key_set(key);
        assert_eq!(
            verify(
                &token,
                &keys,
                "other.example.com",
                DEFAULT_ISSUER,
                NOW,
                DEFAULT_MAX_FRESH_SECS
            ),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            verify(&token, &keys, AUD, "not-quay", NOW, DEFAULT_MAX_FRESH_SECS),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn time_checks_allow_thirty_seconds_of_leeway() {
        let (key, _) = keys();
        let keys = key_set(key);
        let token = mint(key, &claims()).unwrap();
        let exp = NOW + DEFAULT_LIFETIME_SECS;
        assert!(check(&token, &keys, exp + LEEWAY_SECS).is_ok());
        assert_eq!(
            check(&token, &keys, exp + LEEWAY_SECS + 1),
            Err(TokenError::Expired)
        );
        assert!(check(&token, &keys, NOW - LEEWAY_SECS).is_ok());
        assert_eq!(
            check(&token, &keys, NOW - LEEWAY_SECS - 1),
            Err(TokenError::NotYetValid)
        );

        // A future iat is refused even when nbf is fine.
        let mut future_iat = claims();
        future_iat.iat = NOW + 100;
        let token = mint(key, &future_iat).unwrap();
        assert_eq!(check(&token, &keys, NOW), Err(TokenError::NotYetValid));
    }

    #[test]
    fn tokens_signed_for_too_long_fail() {
        let (key, _) = keys();
        let keys = key_set(key);
        let mut long = claims();
        long.exp = long.iat + DEFAULT_MAX_FRESH_SECS;
        assert!(check(&mint(key, &long).unwrap(), &keys, NOW).is_ok());
        long.exp += 1;
        assert_eq!(
            check(&mint(key, &long).unwrap(), &keys, NOW),
            Err(TokenError::TooLongLived)
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        let (key, _) = keys();
        let keys = key_set(key);
        let payload = serde_json::to_value(claims()).unwrap();
        let encode = |v: &Value| BASE64URL_NOPAD.encode(v.to_string().as_bytes());

        let none = json!({"alg": "none", "typ": "JWT", "kid": key.kid()});
        let token = format!("{}.{}.", encode(&none), encode(&payload));
        assert_eq!(
            check(&token, &keys, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );

        // The classic confusion: HMAC keyed with the public key's bytes.
        let hs256 = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid()});
        let input = format!("{}.{}", encode(&hs256), encode(&payload));
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, &key.public_key().n);
        let tag = hmac::sign(&mac_key, input.as_bytes());
        let token = format!("{input}.{}", BASE64URL_NOPAD.encode(tag.as_ref()));
        assert_eq!(
            check(&token, &keys, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );

        let rs512 = json!({"alg": "RS512", "kid": key.kid()});
        assert_eq!(
            check(&forge(key, &rs512, &payload), &keys, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        let crit = json!({"alg": "RS256", "kid": key.kid(), "crit": ["exp"]});
        assert!(matches!(
            check(&forge(key, &crit, &payload), &keys, NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn kid_is_required_and_must_be_known() {
        let (key, other) = keys();
        let payload = serde_json::to_value(claims()).unwrap();
        let no_kid = forge(key, &json!({"alg": "RS256", "typ": "JWT"}), &payload);
        assert_eq!(
            check(&no_kid, &key_set(key), NOW),
            Err(TokenError::MissingKid)
        );
        assert_eq!(peek_kid(&no_kid), None);
        let token = mint(other, &claims()).unwrap();
        assert_eq!(
            check(&token, &key_set(key), NOW),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            check(&token, &KeySet::new(), NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let (old, new) = keys();
        let keys: KeySet = [old.public_key().clone(), new.public_key().clone()]
            .into_iter()
            .collect();
        assert!(check(&mint(old, &claims()).unwrap(), &keys, NOW).is_ok());
        assert!(check(&mint(new, &claims()).unwrap(), &keys, NOW).is_ok());
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let (key, _) = keys();
        let keys = key_set(key);
        let valid = mint(key, &claims()).unwrap();
        let payload = serde_json::to_value(claims()).unwrap();
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        let inputs = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b.c.d",
            "é.é.é",
            &huge,
            &valid[..valid.len() - 1],
            &format!("{valid}."),
            &format!("{valid}="),
            &valid.replacen('.', "..", 1),
        ];
        for input in inputs {
            assert!(check(input, &keys, NOW).is_err(), "{input:?}");
            let _ = peek_kid(input);
        }
        // Well-signed but not registry claims.
        let header = json!({"alg": "RS256", "kid": key.kid()});
        for payload in [json!([]), json!({"sub": "x"}), json!("text")] {
            let token = forge(key, &header, &payload);
            assert_eq!(
                check(&token, &keys, NOW),
                Err(TokenError::Malformed("bad claims"))
            );
        }
        let mut float_exp = payload.clone();
        float_exp["exp"] = json!(1.7e9);
        assert!(check(&forge(key, &header, &float_exp), &keys, NOW).is_err());
    }

    #[test]
    fn kids_are_stable_thumbprints() {
        let (key, other) = keys();
        assert_eq!(key.kid(), key.public_key().thumbprint());
        assert_ne!(key.kid(), other.kid());
        let reloaded = SigningKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        assert!(check(&mint(&reloaded, &claims()).unwrap(), &key_set(key), NOW).is_ok());
        assert!(matches!(
            SigningKey::from_pkcs8_der(b"junk"),
            Err(KeyError::Rejected(_))
        ));
        // 43 characters of base64url without padding: a SHA-256.
        assert_eq!(key.kid().len(), 43);
    }

    #[test]
    fn thumbprint_matches_rfc_7638() {
        // The example key of RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
        });
        let key = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(key.thumbprint(), key.kid());
    }

    #[test]
    fn jwks_round_trip() {
        let (key, other) = keys();
        let jwk = key.public_key().to_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kid"], key.kid());
        let n = BASE64URL_NOPAD
            .decode(jwk["n"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
        let back = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(&back, key.public_key());
        assert!(
            check(
                &mint(key, &claims()).unwrap(),
                &[back].into_iter().collect(),
                NOW
            )
            .is_ok()
        );

        // A JWK naming its own kid keeps it.
        let mut named = jwk.clone();
        named["kid"] = json!("quay-instance-key");
        assert_eq!(
            PublicKey::from_jwk(&named).unwrap().kid(),
            "quay-instance-key"
        );

        let both: KeySet = [key.public_key().clone(), other.public_key().clone()]
            .into_iter()
            .collect();
        let document = both.to_jwks();
        assert_eq!(document["keys"].as_array().unwrap().len(), 2);
        let read = KeySet::from_jwks(&document).unwrap();
        assert_eq!(read.get(other.kid()), Some(other.public_key()));
        let mut sorted = [key.public_key(), other.public_key()];
        sorted.sort_by(|a, b| a.kid().cmp(b.kid()));
        assert_eq!(document, jwks_document(sorted));
    }

    #[test]
    fn bad_jwks_are_refused() {
        let (key, _) = keys();
        let good = key.public_key().to_jwk();
        let with = |field: &str, value: Value| {
            let mut jwk = good.clone();
            jwk[field] = value;
            jwk
        };
        let small_n = BASE64URL_NOPAD.encode(&[0xff; 128]);
        for bad in [
            json!(null),
            json!({}),
            with("kty", json!("EC")),
            with("alg", json!("HS256")),
            with("use", json!("enc")),
            with("n", json!("not base64!")),
            with("n", json!(small_n)),
            with("e", json!(65537)),
            with("e", json!("")),
            with("kid", json!(7)),
        ] {
            assert!(
                matches!(PublicKey::from_jwk(&bad), Err(KeyError::Jwk(_))),
                "{bad}"
            );
        }
        assert!(KeySet::from_jwks(&json!({"keys": "no"})).is_err());
        assert!(KeySet::from_jwks(&json!({"keys": [good, {}]})).is_err());
    }
}

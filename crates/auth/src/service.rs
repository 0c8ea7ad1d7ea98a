//! [`Auth`]: the identity service the HTTP surfaces share. It checks credentials (passwords,
//! robot tokens, OAuth and app-specific tokens), turns an identity into the [`Caller`] the
//! permission rules judge, and owns the keys that sign registry tokens.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use db::{AccessFacts, AccountRow, Db};

use crate::crypto::{self, APP_SPECIFIC_TOKEN, OAUTH_ACCESS_TOKEN, SecretKey};
use crate::jwt::{EntityKind, KeySet, SigningKey};
use crate::permissions::{
    Caller, NamespaceFacts, Policy, Principal, RepoFacts, RepoState, Role, TeamRole, Visibility,
};
use crate::scope::OAuthScopes;

/// What the configuration says about authentication.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// `SERVER_HOSTNAME`; None: the `Host` of each request stands in (embedded mode).
    pub server_hostname: Option<String>,
    /// `PREFERRED_URL_SCHEME`.
    pub url_scheme: String,
    /// `INSTANCE_SERVICE_KEY_SERVICE`: issuer of registry tokens and service of their keys.
    pub issuer: String,
    /// Lifetime of registry tokens.
    pub token_lifetime: Duration,
    /// `REGISTRY_JWT_AUTH_MAX_FRESH_S`.
    pub max_fresh: Duration,
    /// `SUPER_USERS`.
    pub superusers: HashSet<String>,
    /// `GLOBAL_READONLY_SUPER_USERS`.
    pub global_readonly_superusers: HashSet<String>,
    /// `FEATURE_SUPER_USERS`.
    pub superusers_enabled: bool,
    /// `FEATURE_ANONYMOUS_ACCESS`, `FEATURE_SUPERUSERS_FULL_ACCESS`, `REGISTRY_STATE`.
    pub policy: Policy,
    /// `CREATE_PRIVATE_REPO_ON_PUSH`.
    pub private_repos_on_push: bool,
    /// `FEATURE_APP_SPECIFIC_TOKENS`.
    pub app_specific_tokens: bool,
    /// `LIBRARY_NAMESPACE` when `FEATURE_LIBRARY_SUPPORT`.
    pub library_namespace: Option<String>,
    /// `DIRECT_OAUTH_CLIENTID_WHITELIST`.
    pub oauth_direct_clients: HashSet<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            server_hostname: None,
            url_scheme: "http".to_string(),
            issuer: crate::jwt::DEFAULT_ISSUER.to_string(),
            token_lifetime: Duration::from_secs(crate::jwt::DEFAULT_LIFETIME_SECS as u64),
            max_fresh: Duration::from_secs(crate::jwt::DEFAULT_MAX_FRESH_SECS as u64),
            superusers: HashSet::new(),
            global_readonly_superusers: HashSet::new(),
            superusers_enabled: true,
            policy: Policy::default(),
            private_repos_on_push: true,
            app_specific_tokens: true,
            library_namespace: Some("library".to_string()),
            oauth_direct_clients: HashSet::new(),
        }
    }
}

/// Who made a request, and through what.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user or robot; None for anonymous callers.
    pub account: Option<AccountRow>,
    pub kind: EntityKind,
    /// Scopes of an OAuth token; None for full-access credentials.
    pub scopes: Option<OAuthScopes>,
    /// What Quay records as the entity: a user's uuid, a robot's name, a token's uuid.
    pub entity_reference: Option<String>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            account: None,
            kind: EntityKind::Anonymous,
            scopes: None,
            entity_reference: None,
        }
    }

    pub fn username(&self) -> Option<&str> {
        self.account.as_ref().map(|a| a.username.as_str())
    }

    pub fn account_id(&self) -> Option<i64> {
        self.account.as_ref().map(|a| a.id)
    }

    pub fn is_anonymous(&self) -> bool {
        self.account.is_none()
    }
}

/// Credentials that did not identify anyone. The message is Quay's and safe to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCredentials(pub String);

/// An operational failure while authenticating.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Invalid(#[from] InvalidCredentials),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("stored secret unusable: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("signing key: {0}")]
    Key(#[from] crate::jwt::KeyError),
    #[error("could not sign the token: {0}")]
    Token(#[from] crate::jwt::TokenError),
}

/// How credentials were presented, for the authentication-attempt counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptKind {
    Password,
    Robot,
    OAuthToken,
    AppToken,
}

/// Counts of authentication attempts by kind and outcome, for
/// `quay_authentication_attempts_total` when metrics are exported.
#[derive(Default)]
pub struct AttemptCounters {
    counts: [[AtomicU64; 2]; 4],
}

impl AttemptCounters {
    fn record(&self, kind: AttemptKind, success: bool) {
        self.counts[kind as usize][usize::from(success)].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for one kind and outcome.
    pub fn get(&self, kind: AttemptKind, success: bool) -> u64 {
        self.counts[kind as usize][usize::from(success)].load(Ordering::Relaxed)
    }
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Db,
    pub secret_key: SecretKey,
    pub settings: AuthSettings,
    pub signing_key: SigningKey,
    pub keys: std::sync::RwLock<KeySet>,
    /// Verified registry tokens by SHA-256 of the token.
    pub verified: moka::sync::Cache<[u8; 32], Arc<crate::registry::Grants>>,
    /// Recent successful password checks, keyed by SHA-256 of the stored hash and the
    /// password: bcrypt costs a quarter second, and clients authenticate on every pull.
    pub passwords: moka::sync::Cache<[u8; 32], ()>,
    pub attempts: AttemptCounters,
}

impl Auth {
    /// Opens the service: loads this installation's signing key from the database, creating one
    /// on first start.
    pub async fn open(
        db: Db,
        database_secret_key: &str,
        settings: AuthSettings,
    ) -> Result<Auth, AuthError> {
        let secret_key = SecretKey::derive(database_secret_key);
        let signing_key = crate::keys::signing_key(&db, &secret_key, &settings.issuer).await?;
        let keys = crate::keys::load_keys(&db, &settings.issuer).await?;
        Ok(Auth {
            inner: Arc::new(Inner {
                db,
                secret_key,
                settings,
                signing_key,
                keys: std::sync::RwLock::new(keys),
                verified: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(300))
                    .build(),
                passwords: moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(60))
                    .build(),
                attempts: AttemptCounters::default(),
            }),
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    pub fn attempts(&self) -> &AttemptCounters {
        &self.inner.attempts
    }

    /// Checks HTTP Basic credentials the way Quay's registry does: `$oauthtoken`, `$app`,
    /// `$token`, a robot `owner+name` with its token, or a user with a password.
    pub async fn login(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        match username {
            "$oauthtoken" => self.oauth_token(password).await,
            "$app" => self.app_token(password).await,
            // Quay's legacy repository tokens; Wharf never issues them.
            "$token" => Err(InvalidCredentials("Invalid access token".into()).into()),
            robot if robot.contains('+') => self.robot(robot, password).await,
            user => self.password(user, password).await,
        }
    }

    async fn password(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        let invalid = || InvalidCredentials("Invalid Username or Password".into());
        let account = self.inner.db.find_account(username).await?;
        let Some(account) = account.filter(|a| !a.organization && !a.robot) else {
            self.inner.attempts.record(AttemptKind::Password, false);
            return Err(invalid().into());
        };
        let Some(stored) = account.password_hash.clone() else {
            self.inner.attempts.record(AttemptKind::Password, false);
            return Err(invalid().into());
        };
        let cache_key = password_cache_key(&stored, password);
        let valid = self.inner.passwords.contains_key(&cache_key)
            || crate::password::verify(password, &stored).await;
        if !valid {
            self.inner.attempts.record(AttemptKind::Password, false);
            self.inner.db.record_failed_login(account.id).await?;
            return Err(invalid().into());
        }
        if !account.enabled {
            self.inner.attempts.record(AttemptKind::Password, false);
            return Err(InvalidCredentials(
                "This user has been disabled. Please contact your administrator.".into(),
            )
            .into());
        }
        self.inner.passwords.insert(cache_key, ());
        self.inner.attempts.record(AttemptKind::Password, true);
        if account.invalid_login_attempts != 0 {
            self.inner.db.clear_failed_logins(account.id).await?;
        }
        Ok(Identity {
            entity_reference: Some(account.uuid.clone()),
            account: Some(account),
            kind: EntityKind::User,
            scopes: None,
        })
    }

    async fn robot(&self, name: &str, token: &str) -> Result<Identity, AuthError> {
        let Some(robot) = self.inner.db.find_robot(name).await? else {
            self.inner.attempts.record(AttemptKind::Robot, false);
            return Err(
                InvalidCredentials("Could not find robot with specified username".into()).into(),
            );
        };
        let stored = self.inner.secret_key.decrypt(&robot.token_ciphertext)?;
        if !crypto::constant_time_eq(stored.as_bytes(), token.as_bytes()) {
            self.inner.attempts.record(AttemptKind::Robot, false);
            return Err(InvalidCredentials(format!(
                "Could not find robot with username: {name} and supplied password."
            ))
            .into());
        }
        let owner = self.inner.db.find_account_by_id(robot.owner_id).await?;
        if !robot.enabled || owner.is_none_or(|o| !o.enabled) {
            self.inner.attempts.record(AttemptKind::Robot, false);
            return Err(InvalidCredentials(
                "This user has been disabled. Please contact your administrator.".into(),
            )
            .into());
        }
        let account = self
            .inner
            .db
            .find_account_by_id(robot.account_id)
            .await?
            .ok_or_else(|| InvalidCredentials("Invalid Username or Password".into()))?;
        self.inner.attempts.record(AttemptKind::Robot, true);
        Ok(Identity {
            account: Some(account),
            kind: EntityKind::Robot,
            scopes: None,
            entity_reference: Some(name.to_string()),
        })
    }

    /// Checks an OAuth access token (`Authorization: Bearer` on the API, `$oauthtoken` on the
    /// registry).
    pub async fn oauth_token(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = || InvalidCredentials("OAuth access token could not be validated".into());
        let Some(split) = OAUTH_ACCESS_TOKEN.split(token) else {
            self.inner.attempts.record(AttemptKind::OAuthToken, false);
            return Err(invalid().into());
        };
        let found = self.inner.db.find_access_token(&split.lookup).await?;
        let Some(row) =
            found.filter(|r| crypto::verify_secret(&split.secret, &r.token.token_code_hash))
        else {
            self.inner.attempts.record(AttemptKind::OAuthToken, false);
            return Err(invalid().into());
        };
        if row.token.expires_ms.is_some_and(|e| e <= db::now_ms()) {
            self.inner.attempts.record(AttemptKind::OAuthToken, false);
            return Err(InvalidCredentials("OAuth access token has expired".into()).into());
        }
        if !row.account.enabled {
            self.inner.attempts.record(AttemptKind::OAuthToken, false);
            return Err(
                InvalidCredentials("Granter of the oauth access token is disabled".into()).into(),
            );
        }
        // Scopes were checked when the token was made; an unknown one now grants nothing.
        let scopes = OAuthScopes::parse(&row.token.scope).unwrap_or(OAuthScopes::EMPTY);
        self.inner.attempts.record(AttemptKind::OAuthToken, true);
        Ok(Identity {
            entity_reference: Some(row.token.uuid.clone()),
            account: Some(row.account),
            kind: EntityKind::OAuthToken,
            scopes: Some(scopes),
        })
    }

    async fn app_token(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = || InvalidCredentials("Invalid token".into());
        let split = APP_SPECIFIC_TOKEN
            .split(token)
            .filter(|_| self.inner.settings.app_specific_tokens);
        let Some(split) = split else {
            self.inner.attempts.record(AttemptKind::AppToken, false);
            return Err(invalid().into());
        };
        let found = self.inner.db.find_app_token(&split.lookup).await?;
        let Some((row, account)) =
            found.filter(|(r, _)| crypto::verify_secret(&split.secret, &r.token_secret_hash))
        else {
            self.inner.attempts.record(AttemptKind::AppToken, false);
            return Err(invalid().into());
        };
        if row.expiration_ms.is_some_and(|e| e <= db::now_ms()) || !account.enabled {
            self.inner.attempts.record(AttemptKind::AppToken, false);
            return Err(invalid().into());
        }
        self.inner.attempts.record(AttemptKind::AppToken, true);
        Ok(Identity {
            account: Some(account),
            kind: EntityKind::AppSpecificToken,
            scopes: None,
            entity_reference: Some(row.uuid),
        })
    }

    /// The caller as the permission rules see it.
    pub fn caller(&self, identity: &Identity) -> Caller {
        let principal = match (&identity.account, identity.kind) {
            (None, _) => Principal::Anonymous,
            (Some(_), EntityKind::Robot) => Principal::Robot,
            (Some(account), _) => {
                let settings = &self.inner.settings;
                let listed = settings.superusers.contains(&account.username) || account.superuser;
                Principal::User {
                    superuser: settings.superusers_enabled
                        && listed
                        && identity
                            .scopes
                            .is_none_or(|s| s.contains(OAuthScopes::SUPER_USER)),
                    global_readonly: settings
                        .global_readonly_superusers
                        .contains(&account.username),
                }
            }
        };
        Caller {
            principal,
            scopes: identity.scopes,
        }
    }

    /// Facts about a namespace (and repository) for `identity`; None when the namespace does
    /// not exist.
    pub async fn facts(
        &self,
        identity: &Identity,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Option<Facts>, AuthError> {
        let facts = self
            .inner
            .db
            .access_facts(identity.account_id(), namespace, repository)
            .await?;
        Ok(facts.map(|f| Facts::from_db(identity, f)))
    }
}

/// [`AccessFacts`] in the permission rules' terms, with the rows they came from.
#[derive(Clone, Debug)]
pub struct Facts {
    pub namespace_row: AccountRow,
    pub repository_row: Option<db::RepositoryRow>,
    pub namespace: NamespaceFacts,
    pub repository: Option<RepoFacts>,
}

impl Facts {
    fn from_db(identity: &Identity, f: AccessFacts) -> Facts {
        let owned_by_caller = !f.namespace.organization
            && identity.kind != EntityKind::Robot
            && identity.account_id() == Some(f.namespace.id);
        let namespace = NamespaceFacts {
            is_org: f.namespace.organization,
            owned_by_caller,
            team_role: f.team_roles.iter().filter_map(|r| TeamRole::parse(r)).max(),
            enabled: f.namespace.enabled,
        };
        let granted = f
            .repository_roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .max();
        let repository = f.repository.as_ref().map(|r| RepoFacts {
            visibility: Visibility::parse(&r.visibility).unwrap_or(Visibility::Private),
            state: RepoState::from_i32(r.state).unwrap_or(RepoState::ReadOnly),
            granted,
            caller_is_mirror_robot: false,
        });
        Facts {
            namespace_row: f.namespace,
            repository_row: f.repository,
            namespace,
            repository,
        }
    }
}

fn password_cache_key(stored_hash: &str, password: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(stored_hash.len() + 1 + password.len());
    input.extend_from_slice(stored_hash.as_bytes());
    input.push(0);
    input.extend_from_slice(password.as_bytes());
    sha256(&input)
}

/// SHA-256 of `bytes`, as a cache key.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

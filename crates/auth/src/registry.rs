//! Registry tokens, Quay's way: `GET /v2/auth` down-scopes the requested `repository:` scopes
//! to what the caller may do (creating a repository a permitted push names), and the registry
//! accepts the signed result on every request. Verified tokens are cached by their hash, so a
//! request costs one hash and one cache lookup.

use std::collections::HashMap;
use std::sync::Arc;

use db::{CreateRepositoryOutcome, NewRepository};
use types::name::RepositoryPath;

use crate::jwt::{self, Access, EntityKind, RegistryClaims, TokenContext, TokenError};
use crate::permissions::{self, RepoState};
use crate::scope::{Action, RegistryScope, ScopeError};
use crate::service::{Auth, AuthError, Identity, sha256};

/// Why a token request was refused (as opposed to down-scoped).
#[derive(Debug, thiserror::Error)]
pub enum TokenRequestError {
    /// A scope that is not `repository:<name>:<actions>` (400 `INVALID_REQUEST`).
    #[error("Unable to decode repository and actions: {0}")]
    InvalidScope(String),
    /// A scope naming an invalid repository (400 `NAME_INVALID`).
    #[error("Invalid repository name: {0}")]
    InvalidName(String),
    /// The namespace is disabled (405 `DENIED`).
    #[error("Namespace {0} has been disabled. Please contact a system administrator.")]
    NamespaceDisabled(String),
    /// An anonymous request without any scope (401).
    #[error("access to the requested resource is not authorized")]
    NoScope,
    #[error(transparent)]
    Internal(#[from] AuthError),
}

impl From<db::DbError> for TokenRequestError {
    fn from(e: db::DbError) -> Self {
        TokenRequestError::Internal(e.into())
    }
}

/// What a verified registry token allows.
#[derive(Clone, Debug)]
pub struct Grants {
    /// `sub`: a username, a robot name or `(anonymous)`.
    pub subject: String,
    pub entity_kind: EntityKind,
    /// The user behind the token, if any (`context.user`).
    pub user: Option<String>,
    expires_secs: i64,
    audience: String,
    /// Normalized repository path → granted actions.
    access: HashMap<String, Vec<Action>>,
}

impl Grants {
    /// Whether the token grants `action` on `path`. `*` also grants pull and push.
    pub fn allows(&self, path: &RepositoryPath, action: Action) -> bool {
        self.access
            .get(&path.to_string())
            .is_some_and(|actions| actions.contains(&action) || actions.contains(&Action::All))
    }

    pub fn is_anonymous(&self) -> bool {
        self.entity_kind == EntityKind::Anonymous
    }
}

impl Auth {
    /// The audience and service name tokens carry: `SERVER_HOSTNAME`, or the request's host.
    pub fn service_name<'a>(&'a self, request_host: &'a str) -> &'a str {
        self.inner
            .settings
            .server_hostname
            .as_deref()
            .unwrap_or(request_host)
    }

    /// `WWW-Authenticate` for a registry refusal, optionally naming the scope to ask for.
    pub fn challenge(&self, request_host: &str, scope: Option<&str>) -> String {
        let service = self.service_name(request_host);
        let mut value = format!(
            "Bearer realm=\"{}://{service}/v2/auth\",service=\"{service}\"",
            self.inner.settings.url_scheme
        );
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        value
    }

    /// Issues a registry token for `identity` covering `scopes` (the `scope` query values),
    /// each down-scoped to what the caller may do. A push the caller may create a repository
    /// for creates it here, as Quay does.
    pub async fn registry_token(
        &self,
        identity: &Identity,
        service: &str,
        scopes: &[String],
    ) -> Result<String, TokenRequestError> {
        let scopes: Vec<&String> = scopes.iter().filter(|s| !s.is_empty()).collect();
        if identity.is_anonymous() && scopes.is_empty() {
            return Err(TokenRequestError::NoScope);
        }
        let settings = &self.inner.settings;
        let hostname = self.service_name(service);
        let caller = self.caller(identity);
        let mut access = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let parsed =
                RegistryScope::parse(scope, hostname, settings.library_namespace.as_deref())
                    .map_err(|e| match e {
                        ScopeError::InvalidName { source, .. } => {
                            TokenRequestError::InvalidName(source.to_string())
                        }
                        _ => TokenRequestError::InvalidScope(scope.to_string()),
                    })?;
            let actions = self.grant(identity, &caller, &parsed).await?;
            let actions: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
            access.push(Access::repository(&parsed.requested_name, &actions));
        }
        let (subject, user) = match identity.username() {
            Some(name) => (name.to_string(), Some(name.to_string())),
            None => (jwt::ANONYMOUS_SUBJECT.to_string(), None),
        };
        let context = TokenContext::new(identity.kind, identity.entity_reference.clone(), user);
        let claims = RegistryClaims::new(
            &settings.issuer,
            service,
            &subject,
            access,
            context,
            now_secs(),
            settings.token_lifetime.as_secs() as i64,
        );
        Ok(jwt::mint(&self.inner.signing_key, &claims).map_err(AuthError::from)?)
    }

    /// The actions granted for one scope, creating the repository when a push may.
    async fn grant(
        &self,
        identity: &Identity,
        caller: &permissions::Caller,
        scope: &RegistryScope,
    ) -> Result<Vec<Action>, TokenRequestError> {
        let path = &scope.path;
        let Some(facts) = self
            .facts(identity, path.namespace(), Some(path.name()))
            .await?
        else {
            return Ok(Vec::new());
        };
        if !facts.namespace.enabled {
            return Err(TokenRequestError::NamespaceDisabled(
                path.namespace().to_string(),
            ));
        }
        let repo = facts
            .repository
            .filter(|r| r.state != RepoState::MarkedForDeletion);
        let policy = &self.inner.settings.policy;
        let grant = permissions::registry_actions(
            caller,
            &facts.namespace,
            repo.as_ref(),
            &scope.actions,
            policy,
        );
        if grant.create_repository {
            let visibility = if self.inner.settings.private_repos_on_push {
                "private"
            } else {
                "public"
            };
            let created = self
                .inner
                .db
                .create_repository(NewRepository {
                    namespace_id: facts.namespace_row.id,
                    name: path.name().to_string(),
                    visibility: visibility.to_string(),
                    description: None,
                    creator: identity.account_id(),
                })
                .await?;
            if let CreateRepositoryOutcome::Exists(_) = created {
                // Someone created it since the facts were read: judge against the real row.
                return Box::pin(self.grant(identity, caller, scope)).await;
            }
            tracing::info!(repository = %path, by = identity.username(), "repository created by push");
        }
        Ok(grant.actions)
    }

    /// Verifies a registry token presented as `Authorization: Bearer`. `request_host` is the
    /// expected audience when no `SERVER_HOSTNAME` is configured.
    pub async fn verify_registry_token(
        &self,
        token: &str,
        request_host: &str,
    ) -> Result<Arc<Grants>, TokenError> {
        let audience = self.service_name(request_host);
        let key = sha256(token.as_bytes());
        let now = now_secs();
        if let Some(hit) = self.inner.verified.get(&key) {
            if hit.expires_secs < now - jwt::LEEWAY_SECS {
                self.inner.verified.invalidate(&key);
                return Err(TokenError::Expired);
            }
            if hit.audience != audience {
                return Err(TokenError::WrongAudience);
            }
            return Ok(hit);
        }
        let claims = match self.verify_uncached(token, audience, now) {
            Err(TokenError::UnknownKey) => {
                // Another node may have made a key since this one loaded them.
                let keys = crate::keys::load_keys(&self.inner.db, &self.inner.settings.issuer)
                    .await
                    .map_err(|_| TokenError::UnknownKey)?;
                if let Ok(mut current) = self.inner.keys.write() {
                    *current = keys;
                }
                self.verify_uncached(token, audience, now)?
            }
            other => other?,
        };
        let grants = Arc::new(self.grants_of(claims));
        self.inner.verified.insert(key, grants.clone());
        Ok(grants)
    }

    fn verify_uncached(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<RegistryClaims, TokenError> {
        let keys = self.inner.keys.read().map_err(|_| TokenError::UnknownKey)?;
        jwt::verify(
            token,
            &keys,
            audience,
            &self.inner.settings.issuer,
            now,
            self.inner.settings.max_fresh.as_secs() as i64,
        )
    }

    fn grants_of(&self, claims: RegistryClaims) -> Grants {
        let settings = &self.inner.settings;
        let hostname = self.service_name(&claims.aud).to_string();
        let mut access: HashMap<String, Vec<Action>> = HashMap::new();
        for entry in claims.access.iter().filter(|a| a.kind == "repository") {
            let name = entry
                .name
                .strip_prefix(&format!("{hostname}/"))
                .unwrap_or(&entry.name);
            let Ok(path) = RepositoryPath::parse(name, settings.library_namespace.as_deref())
            else {
                continue;
            };
            let actions = access.entry(path.to_string()).or_default();
            for action in entry.actions.iter().filter_map(|a| Action::parse(a)) {
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
        }
        Grants {
            subject: claims.sub,
            entity_kind: claims.context.entity_kind,
            user: claims.context.user,
            expires_secs: claims.exp,
            audience: claims.aud,
            access,
        }
    }

    /// The public keys that verify registry tokens, as Quay publishes them at
    /// `/keys/services/<service>/keys`.
    pub fn jwks(&self) -> serde_json::Value {
        match self.inner.keys.read() {
            Ok(keys) => keys.to_jwks(),
            Err(_) => serde_json::json!({ "keys": [] }),
        }
    }
}

fn now_secs() -> i64 {
    db::now_ms() / 1000
}

impl Auth {
    /// Whose view of the repositories `/v2/_catalog` shows for a token.
    pub async fn catalog_viewer(&self, grants: &Grants) -> Result<db::Viewer, AuthError> {
        let Some(user) = &grants.user else {
            return Ok(if self.inner.settings.policy.anonymous_access {
                db::Viewer::Public
            } else {
                db::Viewer::Account(-1)
            });
        };
        let Some(account) = self.inner.db.find_account(user).await? else {
            return Ok(db::Viewer::Public);
        };
        let identity = Identity {
            account: Some(account.clone()),
            kind: grants.entity_kind,
            scopes: None,
            entity_reference: None,
        };
        let caller = self.caller(&identity);
        let policy = &self.inner.settings.policy;
        Ok(match caller.principal {
            permissions::Principal::User {
                superuser,
                global_readonly,
            } if global_readonly || (superuser && policy.superusers_full_access) => {
                db::Viewer::Everything
            }
            _ => db::Viewer::Account(account.id),
        })
    }
}

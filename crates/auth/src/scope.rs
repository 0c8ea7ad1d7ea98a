//! Scopes a credential may carry: the OAuth scopes of Quay's `auth/scopes.py`, and the
//! `repository:<name>:<actions>` scopes a registry client asks for at `GET /v2/auth`.
//!
//! Both parsers are pure; deciding what a caller actually gets lives in [`crate::permissions`].

use std::fmt;
use std::ops::BitOr;
use std::str::FromStr;

use types::NameError;
use types::name::RepositoryPath;

use crate::permissions::Role;

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// An OAuth scope string named a scope Quay does not know (or an empty item between
    /// separators, which Quay also refuses).
    #[error("unknown OAuth scope {0:?}")]
    UnknownOAuthScope(String),
    /// An empty `scope=` parameter. Quay answers 401 to an anonymous caller and skips the
    /// parameter for an authenticated one.
    #[error("empty scope")]
    Empty,
    /// Not a `repository:<name>:<actions>` scope Quay's grammar accepts: another resource type
    /// (`registry:catalog:*`), an unknown action, or characters no repository path may contain.
    /// Quay answers 400 `INVALID_REQUEST`.
    #[error("unable to decode repository and actions: {0}")]
    UnsupportedScope(String),
    /// The scope is well formed but names an invalid repository. Quay answers 400 `NAME_INVALID`.
    #[error("invalid repository name in scope {scope:?}: {source}")]
    InvalidName {
        scope: String,
        #[source]
        source: NameError,
    },
}

/// A set of OAuth scopes, stored exactly as granted (no implied scopes are added, so
/// [`to_string`](ToString::to_string) gives back what the user approved). Implication
/// (`repo:admin` ⇒ `repo:write` ⇒ `repo:read`) is answered by [`OAuthScopes::implies`] and by the
/// role caps in [`crate::permissions`], which is where Quay applies it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OAuthScopes(u16);

/// Every scope in display order, with its name.
const NAMES: [(OAuthScopes, &str); 9] = [
    (OAuthScopes::REPO_READ, "repo:read"),
    (OAuthScopes::REPO_WRITE, "repo:write"),
    (OAuthScopes::REPO_ADMIN, "repo:admin"),
    (OAuthScopes::REPO_CREATE, "repo:create"),
    (OAuthScopes::USER_READ, "user:read"),
    (OAuthScopes::USER_ADMIN, "user:admin"),
    (OAuthScopes::ORG_ADMIN, "org:admin"),
    (OAuthScopes::SUPER_USER, "super:user"),
    (OAuthScopes::DIRECT_USER_LOGIN, "direct_user_login"),
];

impl OAuthScopes {
    pub const EMPTY: OAuthScopes = OAuthScopes(0);
    pub const REPO_READ: OAuthScopes = OAuthScopes(1);
    pub const REPO_WRITE: OAuthScopes = OAuthScopes(1 << 1);
    pub const REPO_ADMIN: OAuthScopes = OAuthScopes(1 << 2);
    pub const REPO_CREATE: OAuthScopes = OAuthScopes(1 << 3);
    pub const USER_READ: OAuthScopes = OAuthScopes(1 << 4);
    pub const USER_ADMIN: OAuthScopes = OAuthScopes(1 << 5);
    pub const ORG_ADMIN: OAuthScopes = OAuthScopes(1 << 6);
    pub const SUPER_USER: OAuthScopes = OAuthScopes(1 << 7);
    /// Quay's internal "full access" scope of session logins. It is never granted to an OAuth
    /// application, so [`OAuthScopes::parse`] refuses it; code may still build it.
    pub const DIRECT_USER_LOGIN: OAuthScopes = OAuthScopes(1 << 8);

    /// The scopes an OAuth application may be granted (everything but `direct_user_login`).
    /// Quay hides `super:user` from the authorize page when `FEATURE_SUPER_USERS` is off; that
    /// filter belongs to the page, not here.
    pub const fn all_grantable() -> OAuthScopes {
        OAuthScopes(Self::DIRECT_USER_LOGIN.0 - 1)
    }

    /// Parses a scope string as Quay does: items separated by single spaces or commas. The
    /// empty string is the empty set; any unknown item (including an empty one between two
    /// separators, and `direct_user_login`) refuses the whole string.
    pub fn parse(s: &str) -> Result<OAuthScopes, ScopeError> {
        if s.is_empty() {
            return Ok(OAuthScopes::EMPTY);
        }
        s.split([' ', ','])
            .try_fold(OAuthScopes::EMPTY, |set, item| {
                NAMES
                    .iter()
                    .find(|(scope, name)| *name == item && *scope != Self::DIRECT_USER_LOGIN)
                    .map(|(scope, _)| set | *scope)
                    .ok_or_else(|| ScopeError::UnknownOAuthScope(item.to_string()))
            })
    }

    /// Whether every scope of `other` is literally in the set.
    pub const fn contains(self, other: OAuthScopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set grants every scope of `other`, counting Quay's implied scopes
    /// (`repo:admin` ⇒ `repo:write` ⇒ `repo:read`) and `direct_user_login` as everything.
    pub const fn implies(self, other: OAuthScopes) -> bool {
        self.expanded().contains(other)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn union(self, other: OAuthScopes) -> OAuthScopes {
        OAuthScopes(self.0 | other.0)
    }

    /// The set with Quay's `IMPLIED_SCOPES` added.
    const fn expanded(self) -> OAuthScopes {
        if self.contains(Self::DIRECT_USER_LOGIN) {
            return OAuthScopes(Self::all_grantable().0 | Self::DIRECT_USER_LOGIN.0);
        }
        let mut bits = self.0;
        if self.contains(Self::REPO_ADMIN) {
            bits |= Self::REPO_WRITE.0;
        }
        if bits & Self::REPO_WRITE.0 != 0 {
            bits |= Self::REPO_READ.0;
        }
        OAuthScopes(bits)
    }

    /// The names of the scopes in the set, in display order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        NAMES
            .into_iter()
            .filter(move |(scope, _)| self.contains(*scope))
            .map(|(_, name)| name)
    }
}

impl BitOr for OAuthScopes {
    type Output = OAuthScopes;

    fn bitor(self, rhs: OAuthScopes) -> OAuthScopes {
        self.union(rhs)
    }
}

impl FromStr for OAuthScopes {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OAuthScopes::parse(s)
    }
}

/// Space-separated, in the order `repo:read repo:write repo:admin repo:create user:read
/// user:admin org:admin super:user direct_user_login`.
impl fmt::Display for OAuthScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for OAuthScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuthScopes({:?})", self.to_string())
    }
}

/// An action of a registry token scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    /// `*`: administer the repository.
    All,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "*" => Some(Action::All),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::All => "*",
        }
    }

    /// The repository role a granted action stands for when a registry JWT is verified:
    /// `pull` → read, `push` → write, `*` → admin.
    pub const fn role(self) -> Role {
        match self {
            Action::Pull => Role::Read,
            Action::Push => Role::Write,
            Action::All => Role::Admin,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `scope=repository:<name>:<actions>` parameter of `GET /v2/auth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryScope {
    /// The name exactly as requested, host prefix included: Quay echoes it back as the token's
    /// `access[].name`, and clients match on it.
    pub requested_name: String,
    pub path: RepositoryPath,
    /// The requested actions in request order, without duplicates.
    pub actions: Vec<Action>,
}

impl RegistryScope {
    /// Parses Quay's grammar
    /// `repository:(<server_hostname>/)?<path>:(push|pull|*)(,(push|pull|*))*`.
    ///
    /// The actions follow the last `:`, so a host prefix with a port (`localhost:8080/ns/repo`)
    /// works. The prefix is stripped only when it equals `server_hostname` (compared without
    /// regard to ASCII case, as host names are); otherwise it stays part of the path, where its
    /// `:` or dots make the scope fail as Quay's regex would. A single-component path is placed
    /// in `library_namespace` when given.
    pub fn parse(
        scope: &str,
        server_hostname: &str,
        library_namespace: Option<&str>,
    ) -> Result<RegistryScope, ScopeError> {
        if scope.is_empty() {
            return Err(ScopeError::Empty);
        }
        let unsupported = || ScopeError::UnsupportedScope(scope.to_string());
        let rest = scope.strip_prefix("repository:").ok_or_else(unsupported)?;
        let (requested_name, actions_text) = rest.rsplit_once(':').ok_or_else(unsupported)?;

        let mut actions = Vec::with_capacity(3);
        for item in actions_text.split(',') {
            let action = Action::parse(item).ok_or_else(unsupported)?;
            if !actions.contains(&action) {
                actions.push(action);
            }
        }

        let path_text = strip_host(requested_name, server_hostname);
        if !matches_path_grammar(path_text) {
            return Err(unsupported());
        }
        let path = RepositoryPath::parse(path_text, library_namespace).map_err(|source| {
            ScopeError::InvalidName {
                scope: scope.to_string(),
                source,
            }
        })?;

        Ok(RegistryScope {
            requested_name: requested_name.to_string(),
            path,
            actions,
        })
    }
}

/// `name` without a leading `<hostname>/`, if it has one.
fn strip_host<'a>(name: &'a str, hostname: &str) -> &'a str {
    if hostname.is_empty() {
        return name;
    }
    match (name.get(..hostname.len()), name.get(hostname.len()..)) {
        (Some(head), Some(tail)) if head.eq_ignore_ascii_case(hostname) => {
            tail.strip_prefix('/').unwrap_or(name)
        }
        _ => name,
    }
}

/// Quay's path part of the scope regex: `([.a-zA-Z0-9_-]+/)*[.a-zA-Z0-9_-]+`. Paths that pass
/// it but break the naming rules are `NAME_INVALID`; paths that fail it are `INVALID_REQUEST`.
fn matches_path_grammar(path: &str) -> bool {
    path.split('/').all(|component| {
        !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_scopes_parse_space_or_comma_separated() {
        let s = OAuthScopes::parse("repo:read repo:write").unwrap();
        assert_eq!(s, OAuthScopes::REPO_READ | OAuthScopes::REPO_WRITE);
        let s = OAuthScopes::parse("user:read,org:admin super:user").unwrap();
        assert_eq!(
            s,
            OAuthScopes::USER_READ | OAuthScopes::ORG_ADMIN | OAuthScopes::SUPER_USER
        );
        assert_eq!(OAuthScopes::parse("").unwrap(), OAuthScopes::EMPTY);
        assert!(OAuthScopes::parse("").unwrap().is_empty());
        // Duplicates collapse.
        assert_eq!(
            OAuthScopes::parse("repo:read,repo:read").unwrap(),
            OAuthScopes::REPO_READ
        );
        assert_eq!("repo:create".parse(), Ok(OAuthScopes::REPO_CREATE));
    }

    #[test]
    fn oauth_scopes_refuse_unknown_items() {
        assert_eq!(
            OAuthScopes::parse("repo:read repo:delete"),
            Err(ScopeError::UnknownOAuthScope("repo:delete".into()))
        );
        // The internal full-access scope is never accepted from outside.
        assert_eq!(
            OAuthScopes::parse("direct_user_login"),
            Err(ScopeError::UnknownOAuthScope("direct_user_login".into()))
        );
        // Quay splits on each single separator, so doubled or trailing separators leave an empty
        // item, which it refuses.
        for bad in [
            "repo:read  user:read",
            "repo:read,",
            " repo:read",
            "repo:read, user:read",
        ] {
            assert_eq!(
                OAuthScopes::parse(bad),
                Err(ScopeError::UnknownOAuthScope(String::new())),
                "{bad:?}"
            );
        }
        assert!(OAuthScopes::parse("REPO:READ").is_err());
    }

    #[test]
    fn oauth_scopes_display_in_canonical_order() {
        let all = OAuthScopes::all_grantable();
        assert_eq!(
            all.to_string(),
            "repo:read repo:write repo:admin repo:create user:read user:admin org:admin super:user"
        );
        assert!(!all.contains(OAuthScopes::DIRECT_USER_LOGIN));
        let s = OAuthScopes::parse("super:user,repo:read").unwrap();
        assert_eq!(s.to_string(), "repo:read super:user");
        assert_eq!(OAuthScopes::EMPTY.to_string(), "");
        assert_eq!(
            OAuthScopes::DIRECT_USER_LOGIN.to_string(),
            "direct_user_login"
        );
        assert_eq!(
            format!("{:?}", OAuthScopes::REPO_READ),
            "OAuthScopes(\"repo:read\")"
        );
        // Every grantable scope round-trips through its string.
        for name in all.names() {
            assert_eq!(OAuthScopes::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(OAuthScopes::parse(&all.to_string()), Ok(all));
    }

    #[test]
    fn oauth_scopes_contains_is_literal_and_implies_follows_quay() {
        let admin = OAuthScopes::REPO_ADMIN;
        assert!(!admin.contains(OAuthScopes::REPO_READ));
        assert!(admin.implies(OAuthScopes::REPO_READ | OAuthScopes::REPO_WRITE));
        assert!(!admin.implies(OAuthScopes::REPO_CREATE));
        assert!(OAuthScopes::REPO_WRITE.implies(OAuthScopes::REPO_READ));
        assert!(!OAuthScopes::REPO_WRITE.implies(OAuthScopes::REPO_ADMIN));
        assert!(!OAuthScopes::REPO_READ.implies(OAuthScopes::REPO_WRITE));
        // Neither org:admin nor user:admin implies anything else.
        assert!(!OAuthScopes::ORG_ADMIN.implies(OAuthScopes::REPO_CREATE));
        assert!(!OAuthScopes::USER_ADMIN.implies(OAuthScopes::USER_READ));
        assert!(OAuthScopes::DIRECT_USER_LOGIN.implies(OAuthScopes::all_grantable()));
        assert!(OAuthScopes::EMPTY.implies(OAuthScopes::EMPTY));
        assert!(!OAuthScopes::EMPTY.implies(OAuthScopes::REPO_READ));
    }

    fn parse(scope: &str) -> Result<RegistryScope, ScopeError> {
        RegistryScope::parse(scope, "quay.example.com", Some("library"))
    }

    #[test]
    fn registry_scope_basic() {
        let s = parse("repository:acme/app:pull,push").unwrap();
        assert_eq!(s.requested_name, "acme/app");
        assert_eq!(s.path.to_string(), "acme/app");
        assert_eq!(s.actions, vec![Action::Pull, Action::Push]);

        let s = parse("repository:acme/team/app:*").unwrap();
        assert_eq!((s.path.namespace(), s.path.name()), ("acme", "team/app"));
        assert_eq!(s.actions, vec![Action::All]);
    }

    #[test]
    fn registry_scope_actions_keep_request_order_without_duplicates() {
        let s = parse("repository:acme/app:push,pull,push,*,pull").unwrap();
        assert_eq!(s.actions, vec![Action::Push, Action::Pull, Action::All]);
        let strings: Vec<_> = s.actions.iter().map(|a| a.as_str()).collect();
        assert_eq!(strings, ["push", "pull", "*"]);
    }

    #[test]
    fn registry_scope_host_prefix() {
        let s = parse("repository:quay.example.com/acme/app:pull").unwrap();
        assert_eq!(s.requested_name, "quay.example.com/acme/app");
        assert_eq!(s.path.to_string(), "acme/app");

        // Host names compare without regard to case; the requested name is echoed unchanged.
        let s = parse("repository:Quay.Example.COM/acme/app:pull").unwrap();
        assert_eq!(s.requested_name, "Quay.Example.COM/acme/app");
        assert_eq!(s.path.to_string(), "acme/app");

        // The host alone followed by one component is a library repository.
        let s = parse("repository:quay.example.com/alpine:pull").unwrap();
        assert_eq!(s.path.to_string(), "library/alpine");

        // A host with a port: the actions follow the last ':'.
        let s = RegistryScope::parse(
            "repository:localhost:8080/ns/repo:pull,push",
            "localhost:8080",
            None,
        )
        .unwrap();
        assert_eq!(s.requested_name, "localhost:8080/ns/repo");
        assert_eq!(s.path.to_string(), "ns/repo");
        assert_eq!(s.actions, vec![Action::Pull, Action::Push]);

        // Another host's prefix is not stripped; its ':' fails Quay's grammar (400).
        assert_eq!(
            parse("repository:localhost:8080/ns/repo:pull"),
            Err(ScopeError::UnsupportedScope(
                "repository:localhost:8080/ns/repo:pull".into()
            ))
        );
        // Without a port, another host stays in the path: its first component becomes the
        // namespace, which is what Quay's regex does too.
        let s = parse("repository:other.example.com/ns/repo:pull").unwrap();
        assert_eq!(
            (s.path.namespace(), s.path.name()),
            ("other.example.com", "ns/repo")
        );
        assert!(matches!(
            parse("repository:Other.Example.com/ns/repo:pull"),
            Err(ScopeError::InvalidName { .. })
        ));
        // A hostname that is only a prefix of the first component is not a host prefix.
        let s = parse("repository:quay.example.community/app:pull").unwrap();
        assert_eq!(s.path.namespace(), "quay.example.community");
    }

    #[test]
    fn registry_scope_library_namespace() {
        let s = parse("repository:alpine:pull").unwrap();
        assert_eq!(s.requested_name, "alpine");
        assert_eq!(s.path.to_string(), "library/alpine");
        assert!(matches!(
            RegistryScope::parse("repository:alpine:pull", "quay.example.com", None),
            Err(ScopeError::InvalidName {
                source: NameError::MissingNamespace(_),
                ..
            })
        ));
    }

    #[test]
    fn registry_scope_refuses_other_resource_types() {
        for scope in [
            "registry:catalog:*",
            "repository(plugin):acme/app:pull",
            "Repository:acme/app:pull",
            "acme/app:pull",
            "repository:acme/app",
            "repository:",
        ] {
            assert_eq!(
                parse(scope),
                Err(ScopeError::UnsupportedScope(scope.into())),
                "{scope}"
            );
        }
        assert_eq!(parse(""), Err(ScopeError::Empty));
    }

    #[test]
    fn registry_scope_refuses_unknown_or_malformed_actions() {
        for scope in [
            "repository:acme/app:delete",
            "repository:acme/app:pull,delete",
            "repository:acme/app:",
            "repository:acme/app:pull,",
            "repository:acme/app:,pull",
            "repository:acme/app:pull, push",
            "repository:acme/app:PULL",
            "repository:acme/app:pull push",
        ] {
            assert_eq!(
                parse(scope),
                Err(ScopeError::UnsupportedScope(scope.into())),
                "{scope}"
            );
        }
    }

    #[test]
    fn registry_scope_path_grammar_versus_name_rules() {
        // Characters outside Quay's path grammar, or empty components: 400 INVALID_REQUEST.
        for scope in [
            "repository:acme/app/:pull",
            "repository:/acme/app:pull",
            "repository:acme//app:pull",
            "repository:acme/a pp:pull",
            "repository:acme/app@sha:pull",
            "repository::pull",
        ] {
            assert_eq!(
                parse(scope),
                Err(ScopeError::UnsupportedScope(scope.into())),
                "{scope}"
            );
        }
        // Inside the grammar but against the naming rules: 400 NAME_INVALID.
        for scope in [
            "repository:acme/App:pull",
            "repository:Acme/app:pull",
            "repository:a/app:pull",
            "repository:acme/-app:pull",
            "repository:acme/.app:pull",
            "repository:a..b/app:pull",
        ] {
            assert!(
                matches!(parse(scope), Err(ScopeError::InvalidName { .. })),
                "{scope}: {:?}",
                parse(scope)
            );
        }
        let long = format!("repository:acme/{}:pull", "a".repeat(256));
        assert!(matches!(parse(&long), Err(ScopeError::InvalidName { .. })));
    }

    #[test]
    fn actions_map_to_roles() {
        assert_eq!(Action::Pull.role(), Role::Read);
        assert_eq!(Action::Push.role(), Role::Write);
        assert_eq!(Action::All.role(), Role::Admin);
        for a in [Action::Pull, Action::Push, Action::All] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(Action::parse("delete"), None);
    }
}

//! Registry authentication the way `docker` and `skopeo` do it: a request goes out anonymously
//! until the registry answers 401 with a `WWW-Authenticate` challenge. A `Bearer` challenge
//! names a token endpoint (`realm`), a `service` and the `scope` the request needs; the client
//! asks the realm for a token (with HTTP Basic credentials when it has some, anonymously
//! otherwise), caches it per scope and sends the request again. Once a registry has asked for
//! tokens, later requests fetch the token for their scope up front instead of waiting for
//! another 401, and every request of a scope reuses its cached token. A `Basic` challenge is
//! answered with the credentials on every later request. A registry that never answers 401
//! costs nothing beyond one atomic load per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use data_encoding::BASE64;
use reqwest::header::HeaderValue;

/// HTTP Basic credentials, sent to a registry's token realm (or to the registry itself when it
/// asks for Basic authentication), never anywhere else.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    fn header(&self) -> anyhow::Result<HeaderValue> {
        let encoded = BASE64.encode(format!("{}:{}", self.username, self.password).as_bytes());
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// What a request needs from the registry, in token-scope terms.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// `/v2/` and `/v2/_catalog`: any token will do.
    Registry,
    /// Reading a repository.
    Pull(&'a str),
    /// Writing a repository (uploads, manifest PUT).
    Push(&'a str),
}

impl Access<'_> {
    /// The `scope` parameter a client asks for, and the key its token is cached under (the
    /// empty string for registry-wide requests, which ask for no scope).
    pub fn scope(self) -> String {
        match self {
            Access::Registry => String::new(),
            Access::Pull(repo) => format!("repository:{repo}:pull"),
            Access::Push(repo) => format!("repository:{repo}:pull,push"),
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` value: the scheme, then
/// `key=value` or `key="quoted, value"` parameters separated by commas.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let params = parse_params(rest);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

fn parse_params(input: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ',') {
            key.push(c);
        }
        if chars.next() != Some('=') {
            return out;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim_end().to_string();
        }
        out.push((key.trim().to_string(), value));
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved characters).
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How the registry wants requests authenticated, as learnt from its challenges.
#[derive(Clone, Debug)]
pub enum Scheme {
    /// No challenge seen yet: requests go out without `Authorization`.
    Anonymous,
    Basic,
    /// Tokens from `realm` (an absolute URL on the registry's origin) for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The per-registry authentication state: the scheme, the token cache and the credentials.
pub struct AuthState {
    basic: Option<HeaderValue>,
    username: Option<String>,
    /// False until the first challenge: the fast path for anonymous registries.
    challenged: AtomicBool,
    scheme: RwLock<Arc<Scheme>>,
    /// Scope (see [`Access::scope`]) → `Bearer <token>`.
    tokens: RwLock<HashMap<String, HeaderValue>>,
    /// One fetch per scope at a time: workers needing the same token wait for the first.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tokens fetched from the realm so far (token-scenario requests excluded).
    fetched: AtomicU64,
}

impl AuthState {
    pub fn new(credentials: Option<&Credentials>) -> anyhow::Result<Self> {
        Ok(AuthState {
            basic: credentials.map(Credentials::header).transpose()?,
            username: credentials.map(|c| c.username.clone()),
            challenged: AtomicBool::new(false),
            scheme: RwLock::new(Arc::new(Scheme::Anonymous)),
            tokens: RwLock::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            fetched: AtomicU64::new(0),
        })
    }

    pub fn scheme(&self) -> Arc<Scheme> {
        if !self.challenged.load(Ordering::Acquire) {
            return Arc::new(Scheme::Anonymous);
        }
        self.scheme.read().map_or_else(
            |_| Arc::new(Scheme::Anonymous),
            |scheme| Arc::clone(&scheme),
        )
    }

    pub fn set_scheme(&self, scheme: Scheme) {
        if let Ok(mut current) = self.scheme.write() {
            *current = Arc::new(scheme);
        }
        self.challenged.store(true, Ordering::Release);
    }

    /// Whether requests must carry something: false until the first challenge.
    pub fn challenged(&self) -> bool {
        self.challenged.load(Ordering::Acquire)
    }

    pub fn basic(&self) -> Option<&HeaderValue> {
        self.basic.as_ref()
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn cached(&self, scope: &str) -> Option<HeaderValue> {
        self.tokens.read().ok()?.get(scope).cloned()
    }

    pub fn store(&self, scope: &str, token: HeaderValue) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.insert(scope.to_string(), token);
        }
    }

    /// The lock that serializes fetches of `scope`'s token.
    pub fn fetch_lock(&self, scope: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.fetching.lock() {
            Ok(mut map) => Arc::clone(map.entry(scope.to_string()).or_default()),
            Err(_) => Arc::default(),
        }
    }

    /// Forgets the fetch lock of `scope` once its token is cached; late waiters still hold
    /// their clone and find the token in the cache.
    pub fn fetch_done(&self, scope: &str) {
        if let Ok(mut map) = self.fetching.lock() {
            map.remove(scope);
        }
    }

    pub fn count_fetch(&self) {
        self.fetched.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// How requests are authenticated, for the report: `anonymous`, `basic as USER`,
    /// `bearer token as USER` or `bearer token, anonymous`.
    pub fn describe(&self) -> String {
        let who = self
            .username
            .as_deref()
            .map_or_else(|| ", anonymous".to_string(), |u| format!(" as {u}"));
        match *self.scheme() {
            Scheme::Anonymous => "anonymous (no challenge)".to_string(),
            Scheme::Basic => format!("basic{who}"),
            Scheme::Bearer { .. } => format!("bearer token{who}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_keep_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5000/v2/auth",service="127.0.0.1:5000",scope="repository:bench/m:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5000/v2/auth".into(),
                service: Some("127.0.0.1:5000".into()),
                scope: Some("repository:bench/m:pull,push".into()),
            })
        );
        let c = parse_challenge(r#"bearer realm="http://h/token", service=h"#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/token".into(),
                service: Some("h".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn scopes_and_escaping() {
        assert_eq!(Access::Registry.scope(), "");
        assert_eq!(Access::Pull("a/b").scope(), "repository:a/b:pull");
        assert_eq!(Access::Push("a/b").scope(), "repository:a/b:pull,push");
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(query_escape("127.0.0.1:80"), "127.0.0.1%3A80");
    }

    #[test]
    fn credentials_make_a_basic_header() {
        let c = Credentials {
            username: "bench".into(),
            password: "pass word".into(),
        };
        assert_eq!(c.header().unwrap(), "Basic YmVuY2g6cGFzcyB3b3Jk");
    }
}

//! Repository paths, tags and manifest references, validated by Quay's rules.
//!
//! A repository path is `namespace/name`, where `name` may itself contain `/` (Quay's extended
//! repository names). Namespaces follow Quay's user/organization name rule and are 2 to 255
//! characters; the repository name is at most 255 characters. A path with a single component is
//! placed in the library namespace when the caller supplies one.

use std::fmt;

use crate::digest::{Digest, DigestError};

/// Why a name, tag or reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid namespace {0:?}")]
    Namespace(String),
    #[error("invalid repository name {0:?}")]
    Repository(String),
    #[error("repository path {0:?} has no namespace")]
    MissingNamespace(String),
    #[error("invalid tag {0:?}")]
    Tag(String),
    #[error("invalid digest: {0}")]
    Digest(#[from] DigestError),
}

/// `namespace/repository`, both parts validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepositoryPath {
    namespace: String,
    name: String,
}

impl RepositoryPath {
    /// Parses a full path such as `acme/team/app`. A single component (`alpine`) is placed in
    /// `library_namespace` when one is given, and refused otherwise.
    pub fn parse(path: &str, library_namespace: Option<&str>) -> Result<Self, NameError> {
        let (namespace, name) = match path.split_once('/') {
            Some((ns, rest)) => (ns, rest),
            None => match library_namespace {
                Some(lib) => (lib, path),
                None => return Err(NameError::MissingNamespace(path.to_string())),
            },
        };
        Self::new(namespace, name)
    }

    pub fn new(namespace: &str, name: &str) -> Result<Self, NameError> {
        if !valid_namespace(namespace) {
            return Err(NameError::Namespace(namespace.to_string()));
        }
        if !valid_repository_name(name) {
            return Err(NameError::Repository(name.to_string()));
        }
        Ok(RepositoryPath {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RepositoryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Quay's namespace rule: `[a-z0-9]+([._-][a-z0-9]+)*`, 2 to 255 characters.
pub fn valid_namespace(s: &str) -> bool {
    if !(2..=255).contains(&s.len()) {
        return false;
    }
    let mut previous_was_separator = true;
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => previous_was_separator = false,
            b'.' | b'_' | b'-' if !previous_was_separator => previous_was_separator = true,
            _ => return false,
        }
    }
    !previous_was_separator
}

/// Quay's extended repository name rule: components `[a-z0-9][.a-z0-9_-]*` joined by `/`, at most
/// 255 characters in all.
pub fn valid_repository_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    s.split('/').all(|component| {
        let mut bytes = component.bytes();
        matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
            && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    })
}

/// A tag name: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut bytes = s.bytes();
        let ok = s.len() <= 128
            && bytes.next().is_some_and(word)
            && bytes.all(|b| word(b) || b == b'.' || b == b'-');
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(NameError::Tag(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL names: a tag or a digest. Anything containing `:` is read as a digest,
/// because `:` can never appear in a tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(Tag::parse(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_namespace_and_name() {
        let p = RepositoryPath::parse("acme/team/app", None).unwrap();
        assert_eq!((p.namespace(), p.name()), ("acme", "team/app"));
        let p = RepositoryPath::parse("alpine", Some("library")).unwrap();
        assert_eq!(p.to_string(), "library/alpine");
        assert_eq!(
            RepositoryPath::parse("alpine", None),
            Err(NameError::MissingNamespace("alpine".into()))
        );
    }

    #[test]
    fn namespace_rule() {
        for ok in ["ab", "acme", "a.b", "a-b_c.d", "x9"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in [
            "a",
            "",
            "Acme",
            "-ab",
            "ab-",
            "a..b",
            "a/b",
            &"a".repeat(256),
        ] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn repository_rule() {
        for ok in ["app", "team/app", "a/b/c/d", "a.b_c-d", "0"] {
            assert!(valid_repository_name(ok), "{ok}");
        }
        for bad in [
            "",
            "App",
            "/app",
            "app/",
            "a//b",
            "-app",
            "a/.b",
            &"a".repeat(256),
        ] {
            assert!(!valid_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags_and_references() {
        assert!(Tag::parse("latest").is_ok());
        assert!(Tag::parse("_v1.2-rc").is_ok());
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
        assert!(Tag::parse(".hidden").is_err());
        assert!(Tag::parse("").is_err());
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse("sha256:zz"),
            Err(NameError::Digest(_))
        ));
    }
}

//! The crate's error type, [`ConfigError`], and the [`Location`] it points at.
//!
//! Error policy: every message names what the operator has to fix. A problem with one key
//! becomes [`ConfigError::InvalidValue`] naming that key (Quay's upper-case spelling) and,
//! when the parser knows it, the line and column. Problems that belong to no single key
//! (broken YAML, a document that is not a mapping) become [`ConfigError::Yaml`].
//! Unknown keys are not errors at all; the loaders return them for the caller to log.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while loading a `config.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist.
    #[error("config file {} does not exist", path.display())]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The config file exists but could not be read (permissions, not UTF-8, ...).
    #[error("could not read config file {}: {source}", path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The text is not YAML, or not a YAML mapping of keys to values.
    #[error("config is not valid YAML{}: {message}", at(location))]
    Yaml {
        /// Where the parser stopped, when it knows.
        location: Option<Location>,
        /// The parser's explanation.
        message: String,
    },
    /// A known key has a value of the wrong type or an unusable value.
    #[error("invalid value for {key}{}: {reason}", at(location))]
    InvalidValue {
        /// The top-level key, spelled as in Quay's `config.yaml` (e.g. `MAXIMUM_LAYER_SIZE`).
        key: String,
        /// Where the bad value is, when the parser knows.
        location: Option<Location>,
        /// Why the value was rejected.
        reason: String,
    },
}

/// A 1-based position in the config text; ordered by line, then column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line number.
    pub line: u64,
    /// 1-based column number.
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Renders the optional " at line L, column C" part of a message.
fn at(location: &Option<Location>) -> String {
    location.map_or_else(String::new, |l| format!(" at {l}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_key_and_position() {
        let error = ConfigError::InvalidValue {
            key: "FEATURE_LIBRARY_SUPPORT".to_owned(),
            location: Some(Location {
                line: 3,
                column: 26,
            }),
            reason: "invalid boolean".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "invalid value for FEATURE_LIBRARY_SUPPORT at line 3, column 26: invalid boolean"
        );
        let error = ConfigError::Yaml {
            location: None,
            message: "expected a mapping".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "config is not valid YAML: expected a mapping"
        );
    }
}

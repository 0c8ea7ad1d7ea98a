//! [`Bundle`]: a `config.yaml` as an untyped value plus the certificate files beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The file names Quay's config tool treats as certificates or keys (`shared.LoadCerts`).
const CERT_SUFFIXES: &[&str] = &[".crt", ".cert", ".key", ".pem"];

/// How deep certificate directories are searched (`extra_ca_certs/` is one level).
const MAX_CERT_DEPTH: usize = 4;

/// Why a bundle could not be read. Problems *inside* a readable config are never errors:
/// they are validation messages.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The config directory has no `config.yaml`.
    #[error("config file {} does not exist", path.display())]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// A file of the bundle exists but could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `config.yaml` is not YAML.
    #[error("config.yaml is not valid YAML: {0}")]
    Yaml(String),
    /// `config.yaml` is YAML but not a mapping of keys to values.
    #[error("config.yaml must be a mapping of keys to values, found {0}")]
    NotAMapping(&'static str),
}

/// A config bundle: the keys of `config.yaml` and the certificates, by file name relative
/// to the config directory (`ssl.cert`, `extra_ca_certs/corp.crt`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bundle {
    /// The top-level keys of `config.yaml` and their values.
    pub config: Map<String, Value>,
    /// Certificate and key files: relative name → contents.
    pub certs: BTreeMap<String, Vec<u8>>,
    /// The text `config` was parsed from, when it came from a file: Wharf's typed loader
    /// then reports line and column positions against it.
    source: Option<String>,
}

impl Bundle {
    /// A bundle from values, e.g. the body of a config tool request.
    pub fn new(config: Map<String, Value>, certs: BTreeMap<String, Vec<u8>>) -> Bundle {
        Bundle {
            config,
            certs,
            source: None,
        }
    }

    /// A bundle from the text of a `config.yaml` and certificates.
    pub fn from_yaml(text: &str, certs: BTreeMap<String, Vec<u8>>) -> Result<Bundle, BundleError> {
        Ok(Bundle {
            config: parse_yaml(text)?,
            certs,
            source: Some(text.to_owned()),
        })
    }

    /// Reads `<dir>/config.yaml` and the certificates of `dir`.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join("config.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BundleError::NotFound { path: path.clone() }
            } else {
                BundleError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        Bundle::from_yaml(&text, load_certs(dir)?)
    }

    /// The `config.yaml` text, when the bundle was read from one.
    pub(crate) fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The certificates trusted for outgoing connections: `extra_ca_certs/*` (and Quay's
    /// older flat `extra_ca_cert_*` names), in name order.
    pub(crate) fn extra_ca_pems(&self) -> Vec<Vec<u8>> {
        self.certs
            .iter()
            .filter(|(name, _)| is_extra_ca(name))
            .map(|(_, pem)| pem.clone())
            .collect()
    }
}

/// Whether `name` is one of the extra CA certificates: `extra_ca_certs/*.crt` and `*.pem`
/// (the files `wharf serve` reads), or Quay's older flat `extra_ca_cert_*` files.
pub(crate) fn is_extra_ca(name: &str) -> bool {
    (name.starts_with("extra_ca_certs/") && (name.ends_with(".crt") || name.ends_with(".pem")))
        || name.starts_with("extra_ca_cert_")
}

/// Parses the text of a `config.yaml` into its top-level mapping; an empty document is an
/// empty mapping.
pub(crate) fn parse_yaml(text: &str) -> Result<Map<String, Value>, BundleError> {
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_saphyr::from_str(text).map_err(|e| BundleError::Yaml(e.to_string()))?
    };
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        Value::Bool(_) => Err(BundleError::NotAMapping("a boolean")),
        Value::Number(_) => Err(BundleError::NotAMapping("a number")),
        Value::String(_) => Err(BundleError::NotAMapping("a string")),
        Value::Array(_) => Err(BundleError::NotAMapping("a list")),
    }
}

/// The certificate and key files of a config directory, as Quay's config tool collects
/// them: every `*.crt`, `*.cert`, `*.key` and `*.pem` file, in subdirectories too, by path
/// relative to `dir` with `/` separators. Names starting with `..` are skipped: Kubernetes
/// mounts a secret as `..data/` and `..<timestamp>/` directories beside symbolic links to
/// their files, and each file must be read once. A missing directory has no certificates.
pub fn load_certs(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut certs = BTreeMap::new();
    collect_certs(dir, "", 0, &mut certs)?;
    Ok(certs)
}

fn collect_certs(
    dir: &Path,
    prefix: &str,
    depth: usize,
    certs: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let read_err = |source| BundleError::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with("..") {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        // Directories are entered only when they are real directories (as filepath.Walk
        // does); files are read through symbolic links.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            if depth < MAX_CERT_DEPTH {
                collect_certs(&path, &format!("{relative}/"), depth + 1, certs)?;
            }
            continue;
        }
        if !CERT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
            continue;
        }
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let contents = std::fs::read(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        certs.insert(relative, contents);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_documents_are_empty_configs() {
        for text in ["", "\n", "# only a comment\n", "---\n", "null\n"] {
            assert_eq!(parse_yaml(text).ok(), Some(Map::new()), "{text:?}");
        }
    }

    #[test]
    fn non_mappings_are_refused() {
        let error = parse_yaml("- a\n- b\n").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("config.yaml must be a mapping of keys to values, found a list")
        );
        assert!(matches!(parse_yaml("a: [b"), Err(BundleError::Yaml(_))));
    }

    #[test]
    fn yaml_values_keep_their_types() {
        let map = parse_yaml(
            "SERVER_HOSTNAME: quay.example.com\nFEATURE_X: true\nPORT: 6379\nLIST: [a, b]\n",
        )
        .unwrap_or_default();
        assert_eq!(map["SERVER_HOSTNAME"], "quay.example.com");
        assert_eq!(map["FEATURE_X"], true);
        assert_eq!(map["PORT"], 6379);
        assert_eq!(map["LIST"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn certificates_are_collected_like_quay() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("config.yaml"), "{}")?;
        std::fs::write(dir.path().join("ssl.cert"), "cert")?;
        std::fs::write(dir.path().join("ssl.key"), "key")?;
        std::fs::write(dir.path().join("notes.txt"), "not a cert")?;
        std::fs::create_dir(dir.path().join("extra_ca_certs"))?;
        std::fs::write(dir.path().join("extra_ca_certs/corp.crt"), "ca")?;
        std::fs::create_dir(dir.path().join("..data"))?;
        std::fs::write(dir.path().join("..data/ssl.cert"), "again")?;
        let certs = load_certs(dir.path())?;
        assert_eq!(
            certs.keys().collect::<Vec<_>>(),
            ["extra_ca_certs/corp.crt", "ssl.cert", "ssl.key"]
        );
        let bundle = Bundle::load(dir.path())?;
        assert_eq!(bundle.extra_ca_pems(), [b"ca".to_vec()]);
        assert!(matches!(
            Bundle::load(&dir.path().join("missing")),
            Err(BundleError::NotFound { .. })
        ));
        Ok(())
    }
}

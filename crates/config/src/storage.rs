//! The `DISTRIBUTED_STORAGE_CONFIG` model: storage locations and their driver settings.
//!
//! Quay writes each location as `id: [DriverClassName, {driver parameters}]`. This module
//! turns that pair into a [`StorageDriverConfig`]. Only `LocalStorage` has a typed variant
//! today; every other driver (S3Storage, GoogleCloudStorage, ...) is kept as its name and
//! raw parameters, so a config written for a Quay cluster still loads and the storage
//! crate can say "driver not supported" when (and only if) that location is used.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Quay's class name for the filesystem driver.
pub const LOCAL_STORAGE_DRIVER: &str = "LocalStorage";

/// How one storage location stores its blobs.
#[derive(Clone, PartialEq)]
pub enum StorageDriverConfig {
    /// `[LocalStorage, {storage_path: /datastorage/registry}]`: blobs under a local directory.
    Local {
        /// Root directory of the location; Quay's container uses `/datastorage/registry`.
        storage_path: PathBuf,
    },
    /// Any other driver, kept verbatim until Wharf implements it.
    Other {
        /// Quay's driver class name, e.g. `S3Storage`.
        driver: String,
        /// The driver's keyword arguments as written in the config.
        params: BTreeMap<String, serde_json::Value>,
    },
}

impl StorageDriverConfig {
    /// Quay's class name for this driver, e.g. `LocalStorage` or `S3Storage`.
    pub fn driver_name(&self) -> &str {
        match self {
            Self::Local { .. } => LOCAL_STORAGE_DRIVER,
            Self::Other { driver, .. } => driver,
        }
    }

    /// Builds the typed driver from Quay's `[driver, params]` pair.
    ///
    /// The error is a sentence fragment explaining what is wrong with the parameters.
    fn from_parts(
        driver: String,
        mut params: BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, String> {
        if driver != LOCAL_STORAGE_DRIVER {
            return Ok(Self::Other { driver, params });
        }
        let storage_path = match params.remove("storage_path") {
            Some(serde_json::Value::String(path)) if !path.is_empty() => PathBuf::from(path),
            Some(other) => {
                return Err(format!(
                    "{LOCAL_STORAGE_DRIVER} storage_path must be a non-empty string, found {other}"
                ));
            }
            None => {
                return Err(format!(
                    "{LOCAL_STORAGE_DRIVER} needs a storage_path parameter"
                ));
            }
        };
        // Quay passes the parameters as keyword arguments to the driver class, so an extra
        // one makes Quay fail at start-up; rejecting it here keeps the two in agreement and
        // catches misspellings such as `storage_pth`.
        if !params.is_empty() {
            let extra: Vec<&str> = params.keys().map(String::as_str).collect();
            return Err(format!(
                "{LOCAL_STORAGE_DRIVER} accepts only storage_path, found {}",
                extra.join(", ")
            ));
        }
        Ok(Self::Local { storage_path })
    }
}

impl fmt::Debug for StorageDriverConfig {
    /// Shows parameter names but not their values: other drivers' parameters hold
    /// credentials (`s3_secret_key`, `secret_key`, ...) that must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { storage_path } => f
                .debug_struct("Local")
                .field("storage_path", storage_path)
                .finish(),
            Self::Other { driver, params } => f
                .debug_struct("Other")
                .field("driver", driver)
                .field("params", &params.keys().collect::<Vec<_>>())
                .finish_non_exhaustive(),
        }
    }
}

/// One entry of `DISTRIBUTED_STORAGE_CONFIG`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageLocation {
    /// The location id (the map key), also the name of its `ImageStorageLocation` row.
    pub id: String,
    /// How the location stores blobs.
    pub driver: StorageDriverConfig,
}

/// The `DISTRIBUTED_STORAGE_CONFIG` map, in the order the config lists it.
///
/// Order matters: when `DISTRIBUTED_STORAGE_PREFERENCE` is empty, Quay prefers the
/// locations in config order, so this is a list with map-like lookups rather than a
/// sorted map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageLocations(Vec<StorageLocation>);

impl StorageLocations {
    /// An empty set of locations.
    pub fn new() -> Self {
        Self::default()
    }

    /// The driver of location `id`, if configured.
    pub fn get(&self, id: &str) -> Option<&StorageDriverConfig> {
        self.0.iter().find(|l| l.id == id).map(|l| &l.driver)
    }

    /// Adds location `id`, or replaces its driver if it exists (keeping its position).
    /// Returns the replaced driver.
    pub fn insert(
        &mut self,
        id: impl Into<String>,
        driver: StorageDriverConfig,
    ) -> Option<StorageDriverConfig> {
        let id = id.into();
        match self.0.iter_mut().find(|l| l.id == id) {
            Some(existing) => Some(std::mem::replace(&mut existing.driver, driver)),
            None => {
                self.0.push(StorageLocation { id, driver });
                None
            }
        }
    }

    /// The locations in config order.
    pub fn iter(&self) -> std::slice::Iter<'_, StorageLocation> {
        self.0.iter()
    }

    /// The location ids in config order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|l| l.id.as_str())
    }

    /// Number of locations.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no location is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a StorageLocations {
    type Item = &'a StorageLocation;
    type IntoIter = std::slice::Iter<'a, StorageLocation>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'de> Deserialize<'de> for StorageLocations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` rather than `deserialize_map`, so that a value of the wrong shape
        // is reported with this visitor's `expecting` text instead of a bare parser event.
        deserializer.deserialize_any(LocationsVisitor)
    }
}

struct LocationsVisitor;

impl<'de> Visitor<'de> for LocationsVisitor {
    type Value = StorageLocations;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of location id to [DriverName, {parameters}]")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut locations = StorageLocations::new();
        while let Some(id) = map.next_key::<String>()? {
            let DriverPair { driver, params } = map.next_value()?;
            let driver = StorageDriverConfig::from_parts(driver, params)
                .map_err(|reason| A::Error::custom(format!("location {id}: {reason}")))?;
            // Duplicate ids cannot reach this point: the YAML parser rejects duplicate keys.
            locations.insert(id, driver);
        }
        Ok(locations)
    }
}

/// The raw `[DriverName, {parameters}]` pair of one location.
struct DriverPair {
    driver: String,
    params: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for DriverPair {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` for the same reason as in `StorageLocations`.
        deserializer.deserialize_any(DriverPairVisitor)
    }
}

struct DriverPairVisitor;

impl<'de> Visitor<'de> for DriverPairVisitor {
    type Value = DriverPair;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [DriverName, {parameters}] pair")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let driver: String = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        // A null parameter map (`[Driver, null]`) means "no parameters", like an empty one.
        let params: Option<BTreeMap<String, serde_json::Value>> = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::invalid_length(3, &self));
        }
        Ok(DriverPair {
            driver,
            params: params.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<StorageLocations, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn local_and_other_drivers_keep_config_order() -> Result<(), String> {
        let locations = parse(
            "zz_local: [LocalStorage, {storage_path: /datastorage/registry}]\n\
             aa_s3: [S3Storage, {s3_bucket: quay, port: 443, is_secure: yes}]\n",
        )?;
        assert_eq!(locations.ids().collect::<Vec<_>>(), ["zz_local", "aa_s3"]);
        assert_eq!(
            locations.get("zz_local"),
            Some(&StorageDriverConfig::Local {
                storage_path: PathBuf::from("/datastorage/registry")
            })
        );
        let Some(StorageDriverConfig::Other { driver, params }) = locations.get("aa_s3") else {
            return Err(format!("aa_s3 is not Other: {locations:?}"));
        };
        assert_eq!(driver, "S3Storage");
        assert_eq!(params["s3_bucket"], "quay");
        assert_eq!(params["port"], 443);
        // Driver parameters follow YAML 1.1 like PyYAML does: `yes` is a boolean.
        assert_eq!(params["is_secure"], true);
        Ok(())
    }

    #[test]
    fn null_parameters_mean_none() -> Result<(), String> {
        let locations = parse("x: [SomeDriver, null]\n")?;
        assert_eq!(
            locations.get("x"),
            Some(&StorageDriverConfig::Other {
                driver: "SomeDriver".to_owned(),
                params: BTreeMap::new()
            })
        );
        Ok(())
    }

    #[test]
    fn local_storage_parameters_are_checked() {
        let cases = [
            (
                "d: [LocalStorage, {}]",
                "location d: LocalStorage needs a storage_path parameter",
            ),
            (
                "d: [LocalStorage, {storage_path: 3}]",
                "location d: LocalStorage storage_path must be a non-empty string, found 3",
            ),
            (
                "d: [LocalStorage, {storage_path: /x, storage_pth: /y}]",
                "location d: LocalStorage accepts only storage_path, found storage_pth",
            ),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml).err().unwrap_or_default();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn entries_must_be_pairs() {
        for yaml in [
            "d: [LocalStorage]",
            "d: []",
            "d: [LocalStorage, {storage_path: /x}, extra]",
            "d: LocalStorage",
        ] {
            let error = parse(yaml).err().unwrap_or_default();
            assert!(
                error.contains("[DriverName, {parameters}]"),
                "{yaml}: {error}"
            );
        }
    }

    #[test]
    fn debug_hides_parameter_values() {
        let mut params = BTreeMap::new();
        params.insert("s3_secret_key".to_owned(), "hunter2".into());
        let driver = StorageDriverConfig::Other {
            driver: "S3Storage".to_owned(),
            params,
        };
        let shown = format!("{driver:?}");
        assert!(shown.contains("s3_secret_key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn insert_replaces_in_place() {
        let local = |p: &str| StorageDriverConfig::Local {
            storage_path: PathBuf::from(p),
        };
        let mut locations = StorageLocations::new();
        assert_eq!(locations.insert("a", local("/a")), None);
        assert_eq!(locations.insert("b", local("/b")), None);
        assert_eq!(locations.insert("a", local("/a2")), Some(local("/a")));
        assert_eq!(locations.ids().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(locations.len(), 2);
    }
}

//! The `DISTRIBUTED_STORAGE_CONFIG` model: storage locations and their driver settings.
//!
//! Quay writes each location as `id: [DriverClassName, {driver parameters}]`. This module
//! turns that pair into a [`StorageDriverConfig`] with Quay's parameter names: typed
//! variants for the drivers Wharf implements (`LocalStorage`, `S3Storage`, the
//! S3-compatible `RadosGWStorage`/`RHOCSStorage`/`IBMCloudStorage`, `GoogleCloudStorage`
//! through its S3-compatible XML API, and `AzureStorage`). Every other driver (SwiftStorage,
//! CloudFrontedS3Storage, STSS3Storage, ...) is kept as its name and raw parameters, so a
//! config written for a Quay cluster still loads and the storage crate can say "driver not
//! supported" when (and only if) that location is used.
//!
//! A missing required parameter is an error naming the location and the parameter, with
//! the config-tool's message (`DISTRIBUTED_STORAGE_CONFIG.<id>.<param> is required`).
//! Credentials are [`Secret`](params::Secret)s, which `Debug` never prints.

mod driver;
mod params;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

pub use driver::{
    GOOGLE_CLOUD_STORAGE_ENDPOINT, LOCAL_STORAGE_DRIVER, RadosGwFlavor, StorageDriverConfig,
};
pub use params::Secret;

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
            let driver = StorageDriverConfig::from_quay(&id, driver, params)
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
    use std::path::PathBuf;

    use super::*;

    fn parse(yaml: &str) -> Result<StorageLocations, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn local_and_other_drivers_keep_config_order() -> Result<(), String> {
        let locations = parse(
            "zz_local: [LocalStorage, {storage_path: /datastorage/registry}]\n\
             aa_swift: [SwiftStorage, {swift_container: quay, port: 443, is_secure: yes}]\n",
        )?;
        assert_eq!(
            locations.ids().collect::<Vec<_>>(),
            ["zz_local", "aa_swift"]
        );
        assert_eq!(
            locations.get("zz_local"),
            Some(&StorageDriverConfig::Local {
                storage_path: PathBuf::from("/datastorage/registry")
            })
        );
        let Some(StorageDriverConfig::Other { driver, params }) = locations.get("aa_swift") else {
            return Err(format!("aa_swift is not Other: {locations:?}"));
        };
        assert_eq!(driver, "SwiftStorage");
        assert_eq!(params["swift_container"], "quay");
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

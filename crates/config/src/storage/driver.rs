//! [`StorageDriverConfig`]: one location's driver with Quay's parameter names, built from
//! Quay's `[DriverClassName, {parameters}]` pair by [`StorageDriverConfig::from_quay`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::params::{Params, Secret, build_endpoint_url};

/// Quay's class name for the filesystem driver.
pub const LOCAL_STORAGE_DRIVER: &str = "LocalStorage";

/// The endpoint Quay's `GoogleCloudStorage` talks to (GCS's S3-compatible XML API).
pub const GOOGLE_CLOUD_STORAGE_ENDPOINT: &str = "https://storage.googleapis.com";

/// Which of Quay's drivers for S3-compatible services with an explicit host a
/// [`StorageDriverConfig::RadosGw`] location names. They take the same parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RadosGwFlavor {
    /// `RadosGWStorage`: Ceph's object gateway, and most other S3-compatible stores
    /// (MinIO, NetApp ONTAP S3, Nutanix, HCP...) that Quay's docs point at it.
    RadosGw,
    /// `RHOCSStorage`: Red Hat OpenShift Data Foundation (NooBaa).
    Rhocs,
    /// `IBMCloudStorage`: IBM Cloud Object Storage.
    IbmCloud,
}

impl RadosGwFlavor {
    /// Quay's class name.
    pub fn driver_name(self) -> &'static str {
        match self {
            Self::RadosGw => "RadosGWStorage",
            Self::Rhocs => "RHOCSStorage",
            Self::IbmCloud => "IBMCloudStorage",
        }
    }
}

/// How one storage location stores its blobs.
///
/// `storage_path` of the cloud drivers is the key prefix inside the bucket or container; a
/// leading `/` is dropped as Quay does, and an absent one means the bucket's root.
#[derive(Clone, PartialEq)]
pub enum StorageDriverConfig {
    /// `[LocalStorage, {storage_path: /datastorage/registry}]`: blobs under a local directory.
    Local {
        /// Root directory of the location; Quay's container uses `/datastorage/registry`.
        storage_path: PathBuf,
    },
    /// `S3Storage`: Amazon S3, or any S3 endpoint named by `host` or `endpoint_url`.
    S3 {
        /// Key prefix inside the bucket.
        storage_path: String,
        /// The bucket (required).
        s3_bucket: String,
        /// Access key id; without keys the driver uses the instance's credentials.
        s3_access_key: Option<String>,
        /// Secret access key.
        s3_secret_key: Option<Secret>,
        /// Host name, as boto2 took it (no scheme; always HTTPS in Quay).
        host: Option<String>,
        /// Port for `host`.
        port: Option<u16>,
        /// Full endpoint URL (scheme, host, optional port); wins over `host`.
        endpoint_url: Option<String>,
        /// The bucket's region, used for request signing.
        s3_region: Option<String>,
    },
    /// `RadosGWStorage`, `RHOCSStorage` or `IBMCloudStorage`: an S3-compatible service at
    /// `hostname`, with path-style requests.
    RadosGw {
        /// Which of the three class names the config used.
        flavor: RadosGwFlavor,
        /// Host name, optionally with `http://`/`https://` and a port (required).
        hostname: String,
        /// HTTPS (true, the default) or plain HTTP, unless `hostname` names a scheme.
        is_secure: bool,
        /// Port, unless `hostname` ends with one.
        port: Option<u16>,
        /// Key prefix inside the bucket.
        storage_path: String,
        /// Access key id (required).
        access_key: String,
        /// Secret access key (required).
        secret_key: Secret,
        /// The bucket (required).
        bucket_name: String,
    },
    /// `GoogleCloudStorage`: a GCS bucket through the S3-compatible XML API
    /// ([`GOOGLE_CLOUD_STORAGE_ENDPOINT`]) with HMAC keys.
    GoogleCloud {
        /// Key prefix inside the bucket.
        storage_path: String,
        /// HMAC access id (required).
        access_key: String,
        /// HMAC secret (required).
        secret_key: Secret,
        /// The bucket (required).
        bucket_name: String,
    },
    /// `AzureStorage`: an Azure Blob Storage container.
    Azure {
        /// Key prefix inside the container.
        storage_path: String,
        /// The container (required).
        azure_container: String,
        /// The storage account (required).
        azure_account_name: String,
        /// The account's shared key; needed for direct-download URLs.
        azure_account_key: Option<Secret>,
        /// A shared access signature (query string) used instead of the account key.
        sas_token: Option<Secret>,
        /// Blob service URL; defaults to `https://<account>.blob.core.windows.net`.
        endpoint_url: Option<String>,
    },
    /// Any other driver, kept verbatim until Wharf implements it.
    Other {
        /// Quay's driver class name, e.g. `SwiftStorage`.
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
            Self::S3 { .. } => "S3Storage",
            Self::RadosGw { flavor, .. } => flavor.driver_name(),
            Self::GoogleCloud { .. } => "GoogleCloudStorage",
            Self::Azure { .. } => "AzureStorage",
            Self::Other { driver, .. } => driver,
        }
    }

    /// The service URL an S3-family driver talks to, computed as Quay does; None for
    /// `S3Storage` without `host`/`endpoint_url` (Amazon's regional endpoint) and for
    /// drivers that are not S3.
    pub fn s3_endpoint(&self) -> Option<String> {
        match self {
            // S3Storage builds `https://host[:port]` (boto2 compatibility) unless a full
            // endpoint_url is given.
            Self::S3 {
                endpoint_url: Some(url),
                ..
            } => Some(url.clone()),
            Self::S3 {
                host: Some(host),
                port,
                ..
            } => Some(build_endpoint_url(host, *port, true)),
            Self::RadosGw {
                hostname,
                is_secure,
                port,
                ..
            } => Some(build_endpoint_url(hostname, *port, *is_secure)),
            Self::GoogleCloud { .. } => Some(GOOGLE_CLOUD_STORAGE_ENDPOINT.to_owned()),
            _ => None,
        }
    }

    /// Builds a driver from Quay's class name and keyword arguments, with the checks and
    /// messages of a config file entry for location `location` (only used in messages).
    ///
    /// The error is a sentence fragment explaining what is wrong with the parameters.
    pub fn from_quay(
        location: &str,
        driver: impl Into<String>,
        params: BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, String> {
        let driver = driver.into();
        match driver.as_str() {
            LOCAL_STORAGE_DRIVER => local(params),
            "S3Storage" => {
                let mut p = Params::new(location, &driver, params);
                let config = Self::S3 {
                    s3_bucket: p.required("s3_bucket")?,
                    storage_path: p.optional("storage_path")?.unwrap_or_default(),
                    s3_access_key: p.optional("s3_access_key")?,
                    s3_secret_key: p.optional_secret("s3_secret_key")?,
                    host: p.optional("host")?,
                    port: p.port("port")?,
                    endpoint_url: p.optional("endpoint_url")?,
                    s3_region: p.optional("s3_region")?,
                };
                p.finish(&[
                    "s3_bucket",
                    "storage_path",
                    "s3_access_key",
                    "s3_secret_key",
                    "host",
                    "port",
                    "endpoint_url",
                    "s3_region",
                ])?;
                Ok(config)
            }
            "RadosGWStorage" | "RHOCSStorage" | "IBMCloudStorage" => {
                let flavor = match driver.as_str() {
                    "RHOCSStorage" => RadosGwFlavor::Rhocs,
                    "IBMCloudStorage" => RadosGwFlavor::IbmCloud,
                    _ => RadosGwFlavor::RadosGw,
                };
                let mut p = Params::new(location, &driver, params);
                let config = Self::RadosGw {
                    flavor,
                    access_key: p.required("access_key")?,
                    secret_key: p.required_secret("secret_key")?,
                    hostname: p.required("hostname")?,
                    bucket_name: p.required("bucket_name")?,
                    is_secure: p.flag("is_secure", true)?,
                    port: p.port("port")?,
                    storage_path: p.optional("storage_path")?.unwrap_or_default(),
                };
                p.finish(&[
                    "hostname",
                    "is_secure",
                    "port",
                    "storage_path",
                    "access_key",
                    "secret_key",
                    "bucket_name",
                ])?;
                Ok(config)
            }
            "GoogleCloudStorage" => {
                let mut p = Params::new(location, &driver, params);
                let config = Self::GoogleCloud {
                    access_key: p.required("access_key")?,
                    secret_key: p.required_secret("secret_key")?,
                    bucket_name: p.required("bucket_name")?,
                    storage_path: p.optional("storage_path")?.unwrap_or_default(),
                };
                p.finish(&["access_key", "secret_key", "bucket_name", "storage_path"])?;
                Ok(config)
            }
            "AzureStorage" => {
                let mut p = Params::new(location, &driver, params);
                let config = Self::Azure {
                    azure_container: p.required("azure_container")?,
                    azure_account_name: p.required("azure_account_name")?,
                    azure_account_key: p.optional_secret("azure_account_key")?,
                    sas_token: p.optional_secret("sas_token")?,
                    endpoint_url: p.optional("endpoint_url")?,
                    storage_path: p.optional("storage_path")?.unwrap_or_default(),
                };
                p.finish(&[
                    "azure_container",
                    "azure_account_name",
                    "azure_account_key",
                    "sas_token",
                    "endpoint_url",
                    "storage_path",
                ])?;
                Ok(config)
            }
            _ => Ok(Self::Other { driver, params }),
        }
    }
}

/// `LocalStorage`'s one parameter.
fn local(mut params: BTreeMap<String, serde_json::Value>) -> Result<StorageDriverConfig, String> {
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
    Ok(StorageDriverConfig::Local { storage_path })
}

impl fmt::Debug for StorageDriverConfig {
    /// Typed drivers print their fields with credentials as `***` ([`Secret`]); `Other`
    /// drivers print parameter names but not their values, which may hold credentials
    /// (`swift_password`, ...) that must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { storage_path } => f
                .debug_struct("Local")
                .field("storage_path", storage_path)
                .finish(),
            Self::S3 {
                storage_path,
                s3_bucket,
                s3_access_key,
                s3_secret_key,
                host,
                port,
                endpoint_url,
                s3_region,
            } => f
                .debug_struct("S3")
                .field("storage_path", storage_path)
                .field("s3_bucket", s3_bucket)
                .field("s3_access_key", s3_access_key)
                .field("s3_secret_key", s3_secret_key)
                .field("host", host)
                .field("port", port)
                .field("endpoint_url", endpoint_url)
                .field("s3_region", s3_region)
                .finish(),
            Self::RadosGw {
                flavor,
                hostname,
                is_secure,
                port,
                storage_path,
                access_key,
                secret_key,
                bucket_name,
            } => f
                .debug_struct("RadosGw")
                .field("flavor", flavor)
                .field("hostname", hostname)
                .field("is_secure", is_secure)
                .field("port", port)
                .field("storage_path", storage_path)
                .field("access_key", access_key)
                .field("secret_key", secret_key)
                .field("bucket_name", bucket_name)
                .finish(),
            Self::GoogleCloud {
                storage_path,
                access_key,
                secret_key,
                bucket_name,
            } => f
                .debug_struct("GoogleCloud")
                .field("storage_path", storage_path)
                .field("access_key", access_key)
                .field("secret_key", secret_key)
                .field("bucket_name", bucket_name)
                .finish(),
            Self::Azure {
                storage_path,
                azure_container,
                azure_account_name,
                azure_account_key,
                sas_token,
                endpoint_url,
            } => f
                .debug_struct("Azure")
                .field("storage_path", storage_path)
                .field("azure_container", azure_container)
                .field("azure_account_name", azure_account_name)
                .field("azure_account_key", azure_account_key)
                .field("sas_token", sas_token)
                .field("endpoint_url", endpoint_url)
                .finish(),
            Self::Other { driver, params } => f
                .debug_struct("Other")
                .field("driver", driver)
                .field("params", &params.keys().collect::<Vec<_>>())
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageLocations;

    fn parse(yaml: &str) -> Result<StorageLocations, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    fn one(yaml: &str) -> Result<StorageDriverConfig, String> {
        let locations = parse(yaml)?;
        let first = locations.iter().next().ok_or("no location")?;
        Ok(first.driver.clone())
    }

    #[test]
    fn s3_storage_takes_quays_parameters() -> Result<(), String> {
        let driver = one(
            "us: [S3Storage, {s3_bucket: quay-blobs, storage_path: /registry, \
             s3_access_key: AKIAEXAMPLE, s3_secret_key: hunter2, host: s3.us-east-2.amazonaws.com, \
             port: 443, s3_region: us-east-2}]",
        )?;
        let StorageDriverConfig::S3 {
            storage_path,
            s3_bucket,
            s3_access_key,
            s3_secret_key,
            host,
            port,
            endpoint_url,
            s3_region,
        } = &driver
        else {
            return Err(format!("not S3: {driver:?}"));
        };
        assert_eq!(storage_path, "/registry");
        assert_eq!(s3_bucket, "quay-blobs");
        assert_eq!(s3_access_key.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(s3_secret_key.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(host.as_deref(), Some("s3.us-east-2.amazonaws.com"));
        assert_eq!(*port, Some(443));
        assert_eq!(*endpoint_url, None);
        assert_eq!(s3_region.as_deref(), Some("us-east-2"));
        assert_eq!(driver.driver_name(), "S3Storage");
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some("https://s3.us-east-2.amazonaws.com:443")
        );
        let shown = format!("{driver:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("quay-blobs"), "{shown}");

        // endpoint_url wins over host; without either the driver talks to Amazon.
        let driver = one(
            "m: [S3Storage, {s3_bucket: b, host: ignored, endpoint_url: 'http://127.0.0.1:9000'}]",
        )?;
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(one("a: [S3Storage, {s3_bucket: b}]")?.s3_endpoint(), None);
        Ok(())
    }

    #[test]
    fn radosgw_family_parses_quays_loose_types() -> Result<(), String> {
        // As Quay's docs write IBMCloudStorage: strings for the flag and the port.
        let driver = one(
            "d: [IBMCloudStorage, {access_key: ak, secret_key: sk, bucket_name: b, \
             hostname: s3.us.cloud-object-storage.appdomain.cloud, is_secure: 'true', port: '443', \
             storage_path: /datastorage/registry, maximum_chunk_size_mb: 100}]",
        )?;
        let StorageDriverConfig::RadosGw {
            flavor,
            is_secure,
            port,
            secret_key,
            ..
        } = &driver
        else {
            return Err(format!("not RadosGw: {driver:?}"));
        };
        assert_eq!(*flavor, RadosGwFlavor::IbmCloud);
        assert!(*is_secure);
        assert_eq!(*port, Some(443));
        assert_eq!(secret_key.expose(), "sk");
        assert_eq!(driver.driver_name(), "IBMCloudStorage");
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some("https://s3.us.cloud-object-storage.appdomain.cloud:443")
        );

        let driver = one(
            "c: [RadosGWStorage, {access_key: ak, secret_key: sk, bucket_name: b, \
             hostname: ceph.local, is_secure: false, port: 7480}]",
        )?;
        assert_eq!(driver.driver_name(), "RadosGWStorage");
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some("http://ceph.local:7480")
        );
        let driver = one(
            "r: [RHOCSStorage, {access_key: ak, secret_key: sk, bucket_name: b, \
             hostname: 's3.openshift-storage.svc', is_secure: 'false'}]",
        )?;
        assert_eq!(driver.driver_name(), "RHOCSStorage");
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some("http://s3.openshift-storage.svc")
        );
        Ok(())
    }

    #[test]
    fn google_and_azure_parse() -> Result<(), String> {
        let driver = one(
            "eu: [GoogleCloudStorage, {access_key: GOOG1E, secret_key: s, bucket_name: b2, \
             storage_path: /images}]",
        )?;
        assert!(
            matches!(&driver, StorageDriverConfig::GoogleCloud { bucket_name, .. } if bucket_name == "b2")
        );
        assert_eq!(
            driver.s3_endpoint().as_deref(),
            Some(GOOGLE_CLOUD_STORAGE_ENDPOINT)
        );
        let driver = one(
            "az: [AzureStorage, {azure_container: c, azure_account_name: acct, \
             azure_account_key: 'a2V5', sas_token: '', storage_path: /reg}]",
        )?;
        let StorageDriverConfig::Azure {
            azure_account_key,
            sas_token,
            endpoint_url,
            ..
        } = &driver
        else {
            return Err(format!("not Azure: {driver:?}"));
        };
        assert_eq!(azure_account_key.as_ref().map(Secret::expose), Some("a2V5"));
        // Empty means absent, as in Quay (`value or None`).
        assert_eq!(*sas_token, None);
        assert_eq!(*endpoint_url, None);
        assert!(!format!("{driver:?}").contains("a2V5"));
        Ok(())
    }

    #[test]
    fn cloud_driver_mistakes_name_location_and_parameter() {
        let cases = [
            (
                "us: [S3Storage, {storage_path: /x}]",
                "location us: S3Storage needs an s3_bucket parameter \
                 (DISTRIBUTED_STORAGE_CONFIG.us.s3_bucket is required)",
            ),
            (
                "g: [GoogleCloudStorage, {access_key: a, secret_key: s}]",
                "location g: GoogleCloudStorage needs a bucket_name parameter \
                 (DISTRIBUTED_STORAGE_CONFIG.g.bucket_name is required)",
            ),
            (
                "c: [RadosGWStorage, {access_key: a, secret_key: s, bucket_name: b}]",
                "DISTRIBUTED_STORAGE_CONFIG.c.hostname is required",
            ),
            (
                "c: [RHOCSStorage, {access_key: a, hostname: h, bucket_name: b}]",
                "DISTRIBUTED_STORAGE_CONFIG.c.secret_key is required",
            ),
            (
                "a: [AzureStorage, {azure_container: c}]",
                "DISTRIBUTED_STORAGE_CONFIG.a.azure_account_name is required",
            ),
            (
                "us: [S3Storage, {s3_bucket: b, s3_buckt: c}]",
                "location us: S3Storage does not accept s3_buckt",
            ),
            (
                "us: [S3Storage, {s3_bucket: b, port: 70000}]",
                "S3Storage port must be a port number (1-65535), found 70000",
            ),
            (
                "c: [RadosGWStorage, {access_key: a, secret_key: s, bucket_name: b, hostname: h, \
                 is_secure: maybe}]",
                "RadosGWStorage is_secure must be true or false, found \"maybe\"",
            ),
            (
                "us: [S3Storage, {s3_bucket: [a, b]}]",
                "S3Storage s3_bucket must be a string",
            ),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml).err().unwrap_or_default();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn unimplemented_drivers_stay_other_and_load() -> Result<(), String> {
        let driver = one(
            "sw: [SwiftStorage, {auth_version: 3, auth_url: 'https://k', swift_container: c, \
             swift_user: u, swift_password: p}]",
        )?;
        assert_eq!(driver.driver_name(), "SwiftStorage");
        assert!(matches!(driver, StorageDriverConfig::Other { .. }));
        assert!(!format!("{driver:?}").contains("swift_password: p"));
        Ok(())
    }
}

//! [`open`]: the driver a storage location's configuration names.

use std::sync::Arc;

use config::StorageDriverConfig;

use crate::object::{AzureSettings, ObjectBlobStore, S3Settings};
use crate::{BlobStore, LocalStore, Result, StorageError};

/// What [`open`] needs besides the driver's parameters.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The location id (the `DISTRIBUTED_STORAGE_CONFIG` key), named in errors.
    pub location: String,
    /// Extra CA certificates to trust, PEM (Quay's `extra_ca_certs/*.crt` from the config
    /// directory), for object stores behind a private CA.
    pub extra_ca_pems: Vec<Vec<u8>>,
}

/// Builds the driver of one storage location. Object-store drivers make no request here: a
/// wrong bucket or credential shows at the first use.
///
/// Drivers Wharf does not implement (SwiftStorage, CloudFrontedS3Storage, ...) are
/// refused with [`StorageError::UnsupportedDriver`].
pub fn open(driver: &StorageDriverConfig, options: &OpenOptions) -> Result<Arc<dyn BlobStore>> {
    let location = options.location.clone();
    let extra_ca_pems = options.extra_ca_pems.clone();
    let store: Arc<dyn BlobStore> = match driver {
        StorageDriverConfig::Local { storage_path } => Arc::new(LocalStore::open(storage_path)?),
        StorageDriverConfig::S3 {
            storage_path,
            s3_bucket,
            s3_access_key,
            s3_secret_key,
            host,
            s3_region,
            ..
        } => {
            let region = s3_region
                .clone()
                .or_else(|| host.as_deref().and_then(aws_region_of_host));
            Arc::new(ObjectBlobStore::s3(&S3Settings {
                location,
                bucket: s3_bucket.clone(),
                storage_path: storage_path.clone(),
                endpoint: driver.s3_endpoint(),
                region,
                access_key: s3_access_key.clone(),
                secret_key: s3_secret_key.as_ref().map(|s| s.expose().to_owned()),
                extra_ca_pems,
            })?)
        }
        StorageDriverConfig::RadosGw {
            storage_path,
            access_key,
            secret_key,
            bucket_name,
            ..
        } => Arc::new(ObjectBlobStore::s3(&S3Settings {
            location,
            bucket: bucket_name.clone(),
            storage_path: storage_path.clone(),
            endpoint: driver.s3_endpoint(),
            region: None,
            access_key: Some(access_key.clone()),
            secret_key: Some(secret_key.expose().to_owned()),
            extra_ca_pems,
        })?),
        StorageDriverConfig::GoogleCloud {
            storage_path,
            access_key,
            secret_key,
            bucket_name,
        } => Arc::new(ObjectBlobStore::s3(&S3Settings {
            location,
            bucket: bucket_name.clone(),
            storage_path: storage_path.clone(),
            endpoint: driver.s3_endpoint(),
            // GCS ignores the region of HMAC-signed requests; boto3 (Quay) signs with this.
            region: None,
            access_key: Some(access_key.clone()),
            secret_key: Some(secret_key.expose().to_owned()),
            extra_ca_pems,
        })?),
        StorageDriverConfig::Azure {
            storage_path,
            azure_container,
            azure_account_name,
            azure_account_key,
            sas_token,
            endpoint_url,
        } => Arc::new(ObjectBlobStore::azure(&AzureSettings {
            location,
            account: azure_account_name.clone(),
            container: azure_container.clone(),
            storage_path: storage_path.clone(),
            account_key: azure_account_key.as_ref().map(|s| s.expose().to_owned()),
            sas_token: sas_token.as_ref().map(|s| s.expose().to_owned()),
            endpoint: endpoint_url.clone(),
            extra_ca_pems,
        })?),
        StorageDriverConfig::Other { driver, .. } => {
            return Err(StorageError::UnsupportedDriver(location, driver.clone()));
        }
    };
    Ok(store)
}

/// The region in an Amazon S3 host name (`s3.us-east-2.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.ap-south-1.amazonaws.com`). SigV4 needs the
/// bucket's region, which Quay configs often give only through `host`.
fn aws_region_of_host(host: &str) -> Option<String> {
    let host = host
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split([':', '/']).next()?;
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    rest.split('.')
        .map(|segment| segment.strip_prefix("s3-").unwrap_or(segment))
        .find(|segment| {
            let words: Vec<&str> = segment.split('-').collect();
            let Some((number, names)) = words.split_last() else {
                return false;
            };
            names.len() >= 2
                && names
                    .iter()
                    .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_amazon_host_names() {
        let cases = [
            ("s3.us-east-2.amazonaws.com", Some("us-east-2")),
            ("s3-eu-west-1.amazonaws.com", Some("eu-west-1")),
            (
                "https://s3.dualstack.ap-south-1.amazonaws.com:443",
                Some("ap-south-1"),
            ),
            ("s3.cn-north-1.amazonaws.com.cn", Some("cn-north-1")),
            ("s3.us-gov-west-1.amazonaws.com", Some("us-gov-west-1")),
            ("s3-fips.us-east-1.amazonaws.com", Some("us-east-1")),
            ("s3.amazonaws.com", None),
            ("minio.local:9000", None),
        ];
        for (host, region) in cases {
            assert_eq!(aws_region_of_host(host).as_deref(), region, "{host}");
        }
    }

    #[test]
    fn unknown_drivers_are_refused_when_used() {
        let driver = StorageDriverConfig::Other {
            driver: "SwiftStorage".into(),
            params: Default::default(),
        };
        let options = OpenOptions {
            location: "swift".into(),
            ..OpenOptions::default()
        };
        let Err(StorageError::UnsupportedDriver(location, name)) = open(&driver, &options) else {
            panic!("SwiftStorage should be unsupported");
        };
        assert_eq!(
            (location.as_str(), name.as_str()),
            ("swift", "SwiftStorage")
        );
    }
}

//! Building an [`ObjectBlobStore`]: the settings of each service, the HTTP client's
//! timeouts and extra CAs, and the retry policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{BackoffConfig, Certificate, ClientOptions, ObjectStore, RetryConfig};

use super::upload::MIN_PART;
use super::{Backend, ObjectBlobStore};
use crate::{Result, StorageError};

/// Default bytes per part. Parts of 8 MiB keep the memory of one upload at about 16 MiB (one
/// part filling, one in flight) and need few requests.
const DEFAULT_PART_SIZE: usize = 8 << 20;

/// How to reach an S3 or S3-compatible bucket.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The location id, for error messages.
    pub location: String,
    pub bucket: String,
    /// Key prefix inside the bucket (Quay's `storage_path`); leading and trailing `/` are
    /// ignored.
    pub storage_path: String,
    /// Service URL with scheme (`http://127.0.0.1:9000`); None for Amazon S3 itself.
    /// Requests to an endpoint are path-style (`<endpoint>/<bucket>/<key>`), which every
    /// S3-compatible service supports; Amazon is addressed virtual-host style.
    pub endpoint: Option<String>,
    /// Signing region; `us-east-1` when None.
    pub region: Option<String>,
    /// Static credentials; without them `object_store` asks the instance metadata service.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Extra trusted CA certificates (PEM, one or more per entry).
    pub extra_ca_pems: Vec<Vec<u8>>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("location", &self.location)
            .field("bucket", &self.bucket)
            .field("storage_path", &self.storage_path)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("extra_ca_pems", &self.extra_ca_pems.len())
            .finish()
    }
}

/// How to reach an Azure Blob Storage container.
#[derive(Clone, Default)]
pub struct AzureSettings {
    /// The location id, for error messages.
    pub location: String,
    pub account: String,
    pub container: String,
    /// Key prefix inside the container.
    pub storage_path: String,
    /// The account's shared key (base64); needed to sign direct-download URLs.
    pub account_key: Option<String>,
    /// A shared access signature used instead of the key.
    pub sas_token: Option<String>,
    /// Blob service URL; `https://<account>.blob.core.windows.net` when None.
    pub endpoint: Option<String>,
    /// Extra trusted CA certificates (PEM).
    pub extra_ca_pems: Vec<Vec<u8>>,
}

impl fmt::Debug for AzureSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureSettings")
            .field("location", &self.location)
            .field("account", &self.account)
            .field("container", &self.container)
            .field("storage_path", &self.storage_path)
            .field("account_key", &self.account_key.as_ref().map(|_| "***"))
            .field("sas_token", &self.sas_token.as_ref().map(|_| "***"))
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl ObjectBlobStore {
    /// A driver for an S3 or S3-compatible bucket. Makes no request.
    pub fn s3(settings: &S3Settings) -> Result<Self> {
        let location = &settings.location;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_retry(retry_config());
        let mut allow_http = false;
        match &settings.endpoint {
            Some(endpoint) => {
                allow_http = endpoint.starts_with("http://");
                builder = builder
                    .with_endpoint(endpoint.trim_end_matches('/'))
                    .with_virtual_hosted_style_request(false);
            }
            // Bucket names with dots do not match the wildcard certificate of
            // `*.s3.<region>.amazonaws.com`, so they stay path-style.
            None => {
                builder = builder.with_virtual_hosted_style_request(!settings.bucket.contains('.'))
            }
        }
        if let Some(key) = &settings.access_key {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_key {
            builder = builder.with_secret_access_key(secret);
        }
        let options = client_options(location, &settings.extra_ca_pems, allow_http)?;
        let store = builder
            .with_client_options(options)
            .build()
            .map_err(|e| config_error(location, e))?;
        let store = Arc::new(store);
        Ok(Self::from_parts(
            location,
            &settings.storage_path,
            store.clone(),
            store.clone(),
            Some(store),
        ))
    }

    /// A driver for an Azure Blob Storage container. Makes no request.
    pub fn azure(settings: &AzureSettings) -> Result<Self> {
        let location = &settings.location;
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&settings.account)
            .with_container_name(&settings.container)
            .with_retry(retry_config());
        if let Some(key) = &settings.account_key {
            builder = builder.with_access_key(key);
        }
        if let Some(sas) = &settings.sas_token {
            builder = builder.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?'));
        }
        let mut allow_http = false;
        if let Some(endpoint) = &settings.endpoint {
            allow_http = endpoint.starts_with("http://");
            builder = builder
                .with_endpoint(endpoint.trim_end_matches('/').to_owned())
                .with_allow_http(allow_http);
        }
        let options = client_options(location, &settings.extra_ca_pems, allow_http)?;
        let store = builder
            .with_client_options(options)
            .build()
            .map_err(|e| config_error(location, e))?;
        let store = Arc::new(store);
        // Azure signs URLs with the account key (a SAS cannot mint another SAS).
        let signer: Option<Arc<dyn Signer>> = match settings.account_key {
            Some(_) => Some(store.clone()),
            None => None,
        };
        Ok(Self::from_parts(
            location,
            &settings.storage_path,
            store.clone(),
            store,
            signer,
        ))
    }

    /// A driver over any `object_store` implementation with multipart uploads (tests use
    /// `InMemory`). `signer` makes direct-download URLs, when there is one.
    pub fn from_parts(
        location: &str,
        storage_path: &str,
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        signer: Option<Arc<dyn Signer>>,
    ) -> Self {
        ObjectBlobStore {
            backend: Arc::new(Backend {
                location: location.to_owned(),
                root: storage_path.trim_matches('/').to_owned(),
                store,
                multipart,
                signer,
                part_size: DEFAULT_PART_SIZE,
            }),
        }
    }

    /// Sets the bytes per part (at least 5 MiB, the object stores' minimum). One upload
    /// holds up to two parts in memory.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.backend).part_size = bytes.max(MIN_PART);
        self
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(3 * 60),
    }
}

fn client_options(
    location: &str,
    extra_ca_pems: &[Vec<u8>],
    allow_http: bool,
) -> Result<ClientOptions> {
    let mut options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout_disabled()
        .with_connect_timeout(Duration::from_secs(10))
        .with_read_timeout(Duration::from_secs(5 * 60));
    for (i, pem) in extra_ca_pems.iter().enumerate() {
        let certificates =
            Certificate::from_pem_bundle(pem).map_err(|e| config_error(location, e))?;
        if certificates.is_empty() {
            return Err(config_error(
                location,
                format!("extra CA file {} holds no PEM certificate", i + 1),
            ));
        }
        for certificate in certificates {
            options = options.with_root_certificate(certificate);
        }
    }
    Ok(options)
}

fn config_error(location: &str, e: impl fmt::Display) -> StorageError {
    StorageError::Config {
        location: location.to_owned(),
        reason: e.to_string(),
    }
}

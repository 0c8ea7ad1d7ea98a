//! The driver conformance suite: every scenario in `scenarios` runs against each driver —
//! `LocalStore` on a temporary directory, the object-store driver on a `moto_server` (S3) and
//! on Azurite (Azure Blob Storage) of its own — each built through `storage::open` from a
//! Quay `DISTRIBUTED_STORAGE_CONFIG` entry, as the server does.
//!
//! The S3 and Azure tests need moto and Azurite (`scripts/e2e-setup.sh` installs them);
//! without them they fail. The servers come from `storage::testing`, which other crates'
//! tests use too.
#![allow(clippy::unwrap_used)]

mod scenarios;

use std::collections::BTreeMap;
use std::sync::Arc;

use config::StorageDriverConfig;
use storage::testing::{self as servers, TestServer};
use storage::{BlobStore, OpenOptions};

/// A driver under test and what keeps its backing store alive.
pub struct Fixture {
    pub store: Arc<dyn BlobStore>,
    pub kind: Kind,
    _guard: Guard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Azure,
}

enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Server(#[allow(dead_code)] TestServer),
}

impl Fixture {
    pub async fn local() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let driver = StorageDriverConfig::Local {
            storage_path: dir.path().join("registry"),
        };
        let store = storage::open(&driver, &OpenOptions::default()).unwrap();
        Fixture {
            store,
            kind: Kind::Local,
            _guard: Guard::Dir(dir),
        }
    }

    pub async fn s3() -> Fixture {
        let server = TestServer::moto();
        let driver = server.s3_location("wharf-test").await;
        assert_eq!(
            driver,
            moto_driver(&server.endpoint),
            "testing's location is Quay's"
        );
        let store = storage::open(&driver, &options()).unwrap();
        Fixture {
            store,
            kind: Kind::S3,
            _guard: Guard::Server(server),
        }
    }

    pub async fn azure() -> Fixture {
        let server = TestServer::azurite();
        server.create_container("wharf-test").await;
        let driver = quay_driver(
            "AzureStorage",
            serde_json::json!({
                "azure_container": "wharf-test",
                "azure_account_name": servers::AZURITE_ACCOUNT,
                "azure_account_key": servers::AZURITE_KEY,
                "endpoint_url": format!("{}/{}", server.endpoint, servers::AZURITE_ACCOUNT),
                "storage_path": "/datastorage/registry",
            }),
        );
        let store = storage::open(&driver, &options()).unwrap();
        Fixture {
            store,
            kind: Kind::Azure,
            _guard: Guard::Server(server),
        }
    }
}

fn options() -> OpenOptions {
    OpenOptions {
        location: "test".into(),
        ..OpenOptions::default()
    }
}

fn quay_driver(driver: &str, params: serde_json::Value) -> StorageDriverConfig {
    let params: BTreeMap<String, serde_json::Value> = serde_json::from_value(params).unwrap();
    StorageDriverConfig::from_quay("test", driver, params).unwrap()
}

/// Quay's `S3Storage` entry for a moto server: any keys, a path prefix like Quay's.
pub fn moto_driver(endpoint: &str) -> StorageDriverConfig {
    quay_driver(
        "S3Storage",
        serde_json::json!({
            "s3_bucket": "wharf-test",
            "storage_path": "/datastorage/registry",
            "s3_access_key": "testing",
            "s3_secret_key": "testing",
            "endpoint_url": endpoint,
            "s3_region": "us-east-1",
        }),
    )
}

/// One test per driver for each scenario.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::scenarios::$name(crate::Fixture::local().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::scenarios::$name(crate::Fixture::s3().await).await;
                }
            )*
        }
        mod azure {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::scenarios::$name(crate::Fixture::azure().await).await;
                }
            )*
        }
    };
}

conformance!(
    put_get_ranges_stat_list_delete,
    large_put_round_trips,
    chunked_upload_across_requests,
    resuming_discards_unpersisted_bytes,
    resuming_at_an_older_offset_cuts_the_upload,
    boundary_sizes,
    abort_discards_the_upload,
    completing_twice_returns_the_same_object,
    download_urls,
    missing_objects,
);

/// What only object stores do: LocalStore can cut an upload at any offset, object stores
/// only after their last finished part.
mod object_stores {
    use crate::Fixture;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_offsets_outside_the_stored_bytes_are_refused() {
        crate::scenarios::offsets_outside_the_stored_bytes_are_refused(Fixture::s3().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn azure_offsets_outside_the_stored_bytes_are_refused() {
        crate::scenarios::offsets_outside_the_stored_bytes_are_refused(Fixture::azure().await)
            .await;
    }

    /// Measurements, not checks: `cargo test -p storage --test it -- --ignored --nocapture
    /// measure_100_mib`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "measurement; run explicitly"]
    async fn s3_measure_100_mib() {
        crate::scenarios::measure_100_mib(Fixture::s3().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "measurement; run explicitly"]
    async fn azure_measure_100_mib() {
        crate::scenarios::measure_100_mib(Fixture::azure().await).await;
    }

    /// The driver trusts a private CA given as PEM (Quay's `extra_ca_certs/*.crt`). The
    /// fixtures in `tests/it/tls` are test-only and valid until 2126: a P-256 CA made with
    /// `openssl req -x509 -newkey ec -days 36500 -subj "/CN=Wharf storage tests CA"` and a
    /// server certificate for IP 127.0.0.1 it signed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_over_tls_with_an_extra_ca() {
        let server = storage::testing::TestServer::moto_tls();
        assert!(
            server.endpoint.starts_with("https://"),
            "{}",
            server.endpoint
        );
        server.create_bucket("wharf-test").await;
        let options = storage::OpenOptions {
            location: "tls".into(),
            extra_ca_pems: vec![storage::testing::TEST_CA_PEM.to_vec()],
        };
        let store = storage::open(&crate::moto_driver(&server.endpoint), &options).unwrap();
        crate::scenarios::put_get_ranges_stat_list_delete(Fixture {
            store,
            kind: crate::Kind::S3,
            _guard: crate::Guard::Server(server),
        })
        .await;
    }

    #[test]
    fn extra_ca_pems_must_hold_certificates() {
        let options = storage::OpenOptions {
            location: "tls".into(),
            extra_ca_pems: vec![b"not a certificate".to_vec()],
        };
        let Err(e) = storage::open(&crate::moto_driver("https://127.0.0.1:1"), &options) else {
            panic!("a PEM without certificates was accepted");
        };
        assert!(
            matches!(&e, storage::StorageError::Config { location, .. } if location == "tls"),
            "{e}"
        );
    }
}

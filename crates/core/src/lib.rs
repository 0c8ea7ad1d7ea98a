//! Domain services of the registry: uploads, blobs, manifests, tags, referrers and listings.
//! Nothing here knows HTTP: the `registry` crate parses requests into calls on [`Registry`] and
//! renders its results and [`RegistryError`]s as the OCI protocol demands.

mod error;
mod gc;
mod listing;
mod locations;
mod manifests;
mod tags;
mod traffic;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use db::{Db, ManifestRow, RepositoryRow};
use storage::BlobStore;
use types::RepositoryPath;

pub use error::RegistryError;
pub use gc::{GcCursor, GcReport, GcStats, PurgeProgress};
pub use listing::Page;
pub use locations::{Location, Replication};
pub use manifests::{PushedManifest, referrers_index};
pub use traffic::{PullRef, TrafficStats};
pub use uploads::{BodyStream, UploadProgress};

/// Tunables of the registry's behaviour, taken from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace for single-component repository names (Quay's `LIBRARY_NAMESPACE` when
    /// `FEATURE_LIBRARY_SUPPORT`); None refuses such names.
    pub library_namespace: Option<String>,
    /// How long a manifest pushed by digest stays alive without a tag.
    pub temp_tag_expiration: Duration,
    /// How long a pushed blob is protected from garbage collection before a manifest uses it.
    pub uploaded_blob_expiration: Duration,
    /// Largest blob accepted, in bytes (`MAXIMUM_LAYER_SIZE`).
    pub max_blob_size: u64,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_size: usize,
    /// Locations every blob must be copied to (`DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS`), when
    /// `FEATURE_STORAGE_REPLICATION` is on; None when replication is off.
    pub replicate_to: Option<Vec<String>>,
    /// Answer blob downloads with a redirect to the object store's signed URL when the driver
    /// can make one (Quay's direct download); off with `FEATURE_PROXY_STORAGE`, which streams
    /// blobs through the registry.
    pub direct_download: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            library_namespace: Some("library".to_string()),
            temp_tag_expiration: Duration::from_secs(3600),
            uploaded_blob_expiration: Duration::from_secs(3600),
            max_blob_size: 20_000_000_000,
            max_manifest_size: 4 << 20,
            replicate_to: None,
            direct_download: true,
        }
    }
}

/// How long cached lookups may be served without asking the database. Writes in this process
/// invalidate at once; the TTL bounds staleness for writes made by other processes.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// The registry's domain services over one database and one storage location.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    locations: locations::Locations,
    settings: Settings,
    repositories: moka::sync::Cache<String, Arc<RepositoryRow>>,
    tags: moka::sync::Cache<(i64, String), Arc<ManifestRow>>,
    /// Every visible tag name of a repository, sorted, for repositories of modest size.
    tag_lists: moka::sync::Cache<i64, Arc<Vec<String>>>,
    /// Upload sessions a request of this process is writing to right now.
    writing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The garbage collector's counters.
    gc: gc::GcCounters,
    /// Pulls, pushes and uploads, for metrics.
    traffic: traffic::TrafficCounters,
}

impl Registry {
    /// Builds the services over one storage location named `location`.
    pub async fn new(
        db: Db,
        store: Arc<dyn BlobStore>,
        location: &str,
        settings: Settings,
    ) -> Result<Registry, RegistryError> {
        Self::with_locations(db, vec![(location.to_string(), store)], settings).await
    }

    /// Builds the services over several storage locations, given in this node's preference
    /// order: uploads go to the first.
    pub async fn with_locations(
        db: Db,
        locations: Vec<(String, Arc<dyn BlobStore>)>,
        settings: Settings,
    ) -> Result<Registry, RegistryError> {
        let mut ordered = Vec::with_capacity(locations.len());
        for (name, store) in locations {
            let id = db.ensure_location(&name).await?;
            ordered.push(locations::Location { id, name, store });
        }
        if let Some(required) = &settings.replicate_to
            && let Some(unknown) = required
                .iter()
                .find(|name| !ordered.iter().any(|l| &l.name == *name))
        {
            return Err(RegistryError::Internal(format!(
                "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS names {unknown:?}, which \
                 DISTRIBUTED_STORAGE_CONFIG lacks"
            )));
        }
        Ok(Registry {
            inner: Arc::new(Inner {
                db,
                locations: locations::Locations::new(ordered)?,
                settings,
                repositories: cache(10_000),
                tags: cache(100_000),
                tag_lists: cache(10_000),
                writing: Default::default(),
                gc: Default::default(),
                traffic: Default::default(),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Parses a repository path from a URL.
    pub fn parse_path(&self, path: &str) -> Result<RepositoryPath, RegistryError> {
        RepositoryPath::parse(path, self.inner.settings.library_namespace.as_deref())
            .map_err(|e| RegistryError::NameInvalid(e.to_string()))
    }

    /// The existing repository at `path`.
    pub async fn repository(
        &self,
        path: &RepositoryPath,
    ) -> Result<Arc<RepositoryRow>, RegistryError> {
        let key = path.to_string();
        if let Some(hit) = self.inner.repositories.get(&key) {
            return Ok(hit);
        }
        let row = self
            .inner
            .db
            .find_repository(path.namespace(), path.name())
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(key.clone()))?;
        let row = Arc::new(row);
        self.inner.repositories.insert(key, row.clone());
        Ok(row)
    }

    /// The repository at `path` for a write. It must exist: repositories are created when a
    /// token for a push is issued, or through the API.
    pub async fn repository_for_push(
        &self,
        path: &RepositoryPath,
    ) -> Result<Arc<RepositoryRow>, RegistryError> {
        self.repository(path).await.and_then(writable)
    }
}

/// Repository states that refuse writes (Quay's READ_ONLY, MIRROR and MARKED_FOR_DELETION).
fn writable(row: Arc<RepositoryRow>) -> Result<Arc<RepositoryRow>, RegistryError> {
    match row.state {
        0 => Ok(row),
        1 => Err(RegistryError::Denied("repository is read-only".into())),
        2 => Err(RegistryError::Denied(
            "repository is a mirror and only its mirror may push".into(),
        )),
        _ => Err(RegistryError::NameUnknown(format!(
            "{}/{}",
            row.namespace, row.name
        ))),
    }
}

fn cache<K, V>(capacity: u64) -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .time_to_live(CACHE_TTL)
        .build()
}

fn now_ms() -> i64 {
    db::now_ms()
}

//! Wharf's configuration: a typed reading of Quay's `config.yaml`.
//!
//! Wharf is configured with the same file as Quay, so an existing Quay deployment can point
//! Wharf at its config unchanged. This crate owns the model ([`Config`]) with Quay's
//! defaults, the loader ([`Config::load`], [`Config::from_yaml_str`]), and the parsers for
//! Quay's duration and size strings. It does not check cross-key rules (a preferred
//! location that is not configured, a hostname without a dot, ...); that is the job of
//! `wharf validate-config`, which reports in Quay's FieldGroup format.
//!
//! Modules:
//! - `model`: the [`Config`] struct, its defaults and derived values;
//! - `load`: YAML parsing, unknown-key collection and error positions;
//! - `storage`: `DISTRIBUTED_STORAGE_CONFIG` entries and their drivers;
//! - `units`: `2w`-style durations and `20G`-style sizes;
//! - `error`: [`ConfigError`].
//!
//! Invariants: loading never panics; unknown keys are returned, never rejected; a value
//! that cannot be used is an error naming its key, never silently replaced by a default.

mod error;
mod load;
mod model;
mod storage;
mod units;

pub use error::{ConfigError, Location};
pub use model::{Config, redact_url_password};
pub use storage::{
    GOOGLE_CLOUD_STORAGE_ENDPOINT, LOCAL_STORAGE_DRIVER, RadosGwFlavor, Secret,
    StorageDriverConfig, StorageLocation, StorageLocations,
};
pub use units::{ByteSize, QuayDuration, UnitError, parse_duration, parse_size};

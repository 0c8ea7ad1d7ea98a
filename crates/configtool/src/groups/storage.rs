//! DistributedStorage: `DISTRIBUTED_STORAGE_CONFIG` and the keys that name its locations.
//!
//! Each location is Quay's `id: [DriverName, {parameters}]`. The required parameters of
//! every driver Quay knows are checked with the config tool's message
//! (`DISTRIBUTED_STORAGE_CONFIG.<id>.<param> is required`); a location whose driver Wharf
//! implements is then built with [`StorageDriverConfig::from_quay`], the parser `wharf serve`
//! uses, so a wrong type or an unknown parameter is reported here rather than at start-up.

use config::{LOCAL_STORAGE_DRIVER, StorageDriverConfig};
use serde_json::Value;

use crate::ValidationError;
use crate::check::{Group, Object, as_int};
use crate::groups::DISTRIBUTED_STORAGE;

const CONFIG_KEY: &str = "DISTRIBUTED_STORAGE_CONFIG";

/// Quay's drivers and their required parameters (the config tool's storage validators).
const DRIVERS: &[(&str, &[&str])] = &[
    (LOCAL_STORAGE_DRIVER, &["storage_path"]),
    ("S3Storage", &["s3_bucket"]),
    ("STSS3Storage", &["s3_bucket"]),
    (
        "RadosGWStorage",
        &["access_key", "secret_key", "hostname", "bucket_name"],
    ),
    (
        "RHOCSStorage",
        &["access_key", "secret_key", "hostname", "bucket_name"],
    ),
    (
        "IBMCloudStorage",
        &["access_key", "secret_key", "hostname", "bucket_name"],
    ),
    (
        "GoogleCloudStorage",
        &["access_key", "secret_key", "bucket_name"],
    ),
    ("AzureStorage", &["azure_container", "azure_account_name"]),
    (
        "CloudFrontedS3Storage",
        &[
            "s3_bucket",
            "cloudfront_distribution_domain",
            "cloudfront_key_id",
        ],
    ),
    (
        "SwiftStorage",
        &[
            "auth_version",
            "auth_url",
            "swift_container",
            "swift_user",
            "swift_password",
        ],
    ),
    ("CloudFlareStorage", &["cloudflare_domain"]),
    (
        "MultiCDNStorage",
        &["providers", "default_provider", "storage_config"],
    ),
];

/// The drivers Wharf implements (`storage::open` builds them).
const IMPLEMENTED: &[&str] = &[
    LOCAL_STORAGE_DRIVER,
    "S3Storage",
    "RadosGWStorage",
    "RHOCSStorage",
    "IBMCloudStorage",
    "GoogleCloudStorage",
    "AzureStorage",
];

pub(super) fn check(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(DISTRIBUTED_STORAGE, config, out);
    let replication = g.flag("FEATURE_STORAGE_REPLICATION", false);
    g.flag("FEATURE_PROXY_STORAGE", false);
    let preference = g.strings("DISTRIBUTED_STORAGE_PREFERENCE");
    let defaults = g.strings("DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS");
    if g.value(CONFIG_KEY).is_none() {
        g.error_at(CONFIG_KEY, format!("{CONFIG_KEY} is required"));
        return;
    }
    let Some(locations) = g.object(CONFIG_KEY) else {
        return;
    };
    if locations.is_empty() {
        g.error_at(
            CONFIG_KEY,
            format!("{CONFIG_KEY} must contain at least one storage location."),
        );
        return;
    }
    for (id, value) in locations {
        check_location(&mut g, id, value, replication);
    }
    for (key, ids) in [
        ("DISTRIBUTED_STORAGE_PREFERENCE", preference),
        ("DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS", defaults),
    ] {
        for id in ids.unwrap_or_default() {
            if !locations.contains_key(id) {
                g.error(
                    &[key, CONFIG_KEY],
                    format!("{key} location {id} must be in {CONFIG_KEY}"),
                );
            }
        }
    }
}

fn check_location(g: &mut Group<'_, '_>, id: &str, value: &Value, replication: bool) {
    let tag = format!("{CONFIG_KEY}.{id}");
    let Some((driver, params)) = quay_driver_pair(value) else {
        g.error(
            &[&tag],
            format!("{tag} must be a [DriverName, {{parameters}}] pair"),
        );
        return;
    };
    let Some((_, required)) = DRIVERS.iter().find(|(name, _)| *name == driver) else {
        g.error(&[&tag], format!("{driver} is not a valid storage type."));
        return;
    };
    if driver == LOCAL_STORAGE_DRIVER && replication {
        g.error(
            &["FEATURE_STORAGE_REPLICATION", tag.as_str()],
            "FEATURE_STORAGE_REPLICATION is not supported by LocalStorage.",
        );
    }
    let empty = Object::new();
    let params = params.unwrap_or(&empty);
    let mut complete = true;
    for param in *required {
        let given = params
            .get(*param)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        if !given {
            g.error(
                &[format!("{tag}.{param}")],
                format!("{tag}.{param} is required"),
            );
            complete = false;
        }
    }
    if driver == "SwiftStorage"
        && let Some(version) = params.get("auth_version").filter(|v| !v.is_null())
        && !matches!(as_int(version), Some(1..=3))
    {
        g.error(
            &[format!("{tag}.auth_version")],
            format!("{tag}.auth_version must be one of 1, 2, 3."),
        );
        complete = false;
    }
    if !complete {
        return;
    }
    if !IMPLEMENTED.contains(&driver) {
        g.error(
            &[&tag],
            format!("{tag}: Wharf does not support {driver} storage yet"),
        );
        return;
    }
    if let Err(reason) =
        StorageDriverConfig::from_quay(id, driver, params.clone().into_iter().collect())
    {
        g.error(&[&tag], format!("{tag}: {reason}"));
    }
}

/// The driver name and parameters of a location value `[DriverName, {parameters}]`; the
/// parameters may be `null`.
fn quay_driver_pair(value: &Value) -> Option<(&str, Option<&Object>)> {
    match value.as_array()?.as_slice() {
        [Value::String(driver), Value::Object(params)] => Some((driver, Some(params))),
        [Value::String(driver), Value::Null] => Some((driver, None)),
        _ => None,
    }
}

/// The driver of a location, as `wharf serve` builds it; None when it cannot be built.
pub(crate) fn location_driver(id: &str, value: &Value) -> Option<StorageDriverConfig> {
    let (driver, params) = quay_driver_pair(value)?;
    let params = params.cloned().unwrap_or_default().into_iter().collect();
    StorageDriverConfig::from_quay(id, driver, params).ok()
}

//! Quay's config tool for Wharf: validation of a config bundle and the config tool's HTTP API.
//!
//! A *config bundle* is what Quay's config directory holds: `config.yaml` plus certificate
//! files (`ssl.cert`, `ssl.key`, `extra_ca_certs/*`, `ldap.crt`, `database.pem`, ...). This
//! crate checks a bundle the way Quay's `config-tool validate` does, field group by field
//! group, and answers with Quay's array of `{"FieldGroup", "Tags", "Message"}` objects; an
//! empty array means valid. The config is read as an untyped value ([`Bundle::config`]), not
//! as [`config::Config`], because a value of the wrong type has to become a message rather
//! than a parse error that hides every other problem. After the field groups, the bundle is
//! also loaded with Wharf's own loader, so a config that validates is one `wharf serve` loads.
//!
//! Two modes, as in Quay: [`Mode::Offline`] checks the bundle alone; [`Mode::Online`] also
//! connects to what it names (the database, Redis, each storage location, LDAP, SMTP, the
//! security scanner), only for the parts that passed the offline checks.
//!
//! Modules:
//! - `bundle`: [`Bundle`], reading `config.yaml` and the certificates of a config directory;
//! - `check`: reading untyped values with Quay's loose typing, and recording messages;
//! - `groups`: the field groups' offline rules (one module per group or pair of groups);
//! - `certs`: PEM parsing, key/certificate matching and host-name coverage;
//! - `online`: the connection checks;
//! - `defaults`: the defaults `GET /api/v1/config` merges under the mounted config;
//! - `api`: the config tool's HTTP API (`/api/v1/config*`) behind `quayconfig` Basic auth.
//!
//! Invariants: validation never panics and never fails as a whole: every problem is a
//! message. Messages never contain a password (database URIs are shown redacted). Output is
//! sorted by field group, then message, then tags, so it is stable across runs (Quay's
//! follows Go map order).

mod api;
mod bundle;
mod certs;
mod check;
mod defaults;
mod groups;
mod online;

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use api::{ToolOptions, router, serve};
pub use bundle::{Bundle, BundleError, load_certs};
pub use defaults::default_config;

/// The user name of the config tool's Basic authentication, as in Quay.
pub const CONFIG_TOOL_USER: &str = "quayconfig";

/// One problem, in Quay's config-tool shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// The field group the problem belongs to, e.g. `HostSettings`.
    #[serde(rename = "FieldGroup")]
    pub field_group: String,
    /// The keys involved; nested keys are dotted (`DISTRIBUTED_STORAGE_CONFIG.s3.s3_bucket`),
    /// certificate problems carry `Certificates`.
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
    /// What is wrong, in Quay's wording where Quay has one.
    #[serde(rename = "Message")]
    pub message: String,
}

/// How far validation goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The bundle alone: no network, no file outside the bundle.
    #[default]
    Offline,
    /// Also connect to the database, Redis, storage, LDAP, SMTP and the scanner it names.
    Online,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "offline" => Ok(Mode::Offline),
            "online" => Ok(Mode::Online),
            other => Err(format!("mode must be online or offline, not {other:?}")),
        }
    }
}

/// Settings of a validation run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Offline or online.
    pub mode: Mode,
    /// The longest one online check may take (connecting and answering); a service that
    /// does not answer in time is reported as unreachable.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Offline,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Options {
    /// Options for `mode` with the default timeout.
    pub fn new(mode: Mode) -> Options {
        Options {
            mode,
            ..Options::default()
        }
    }
}

/// Checks `bundle` without touching the network: the offline mode.
pub fn validate_offline(bundle: &Bundle) -> Vec<ValidationError> {
    let mut problems = groups::offline(bundle);
    sort(&mut problems);
    problems
}

/// Checks `bundle` in `options.mode`; online checks run concurrently, each within
/// `options.timeout`.
pub async fn validate(bundle: &Bundle, options: &Options) -> Vec<ValidationError> {
    let mut problems = groups::offline(bundle);
    if options.mode == Mode::Online {
        let more = online::check(bundle, &problems, options.timeout).await;
        problems.extend(more);
    }
    sort(&mut problems);
    problems
}

/// The stable output order: field group, then message, then tags.
fn sort(problems: &mut Vec<ValidationError>) {
    problems.sort_by(|a, b| {
        (&a.field_group, &a.message, &a.tags).cmp(&(&b.field_group, &b.message, &b.tags))
    });
    problems.dedup();
}

//! The field groups' offline rules, in Quay's config-tool groups (`pkg/lib/fieldgroups/*`).
//!
//! Each module checks one group, or two that read the same keys, and records messages
//! through [`Group`](crate::check::Group). Where Quay's config tool has a message, it is
//! used word for word; where it has none, the message follows its style (`<KEY> is
//! required`, `<KEY> must be ...`). After the groups, [`wharf`] loads the bundle with Wharf's
//! own loader, so anything `wharf serve` would refuse is reported too.

mod access;
mod database;
mod host;
mod ldap;
mod logs;
mod misc;
mod redis;
mod storage;
mod timemachine;
mod wharf;

pub(crate) use database::connect_options;
pub(crate) use ldap::{DEFAULT_LDAP_URI, LDAP_CERT};
pub(crate) use misc::SCANNER_ENDPOINTS;
pub(crate) use redis::REDIS_KEYS;
pub(crate) use storage::location_driver;

use crate::{Bundle, ValidationError};

/// Field group names, as in Quay.
pub(crate) const HOST_SETTINGS: &str = "HostSettings";
pub(crate) const DATABASE: &str = "Database";
pub(crate) const DISTRIBUTED_STORAGE: &str = "DistributedStorage";
pub(crate) const REDIS: &str = "Redis";
pub(crate) const TIME_MACHINE: &str = "TimeMachine";
pub(crate) const ACCESS_SETTINGS: &str = "AccessSettings";
pub(crate) const APP_TOKEN_AUTHENTICATION: &str = "AppTokenAuthentication";
pub(crate) const USER_VISIBLE_SETTINGS: &str = "UserVisibleSettings";
pub(crate) const SECURITY_SCANNER: &str = "SecurityScanner";
pub(crate) const REPO_MIRROR: &str = "RepoMirror";
pub(crate) const LDAP: &str = "LDAP";
pub(crate) const EMAIL: &str = "Email";
pub(crate) const ACTION_LOG_ARCHIVING: &str = "ActionLogArchiving";
pub(crate) const ELASTICSEARCH: &str = "ElasticSearch";
pub(crate) const TEAM_SYNCING: &str = "TeamSyncing";
/// Wharf's own group: the extra CA certificates every outgoing connection trusts.
pub(crate) const EXTRA_CA_CERTIFICATES: &str = "ExtraCaCertificates";
/// Wharf's own group: keys Wharf reads that belong to no Quay field group.
pub(crate) const GENERAL: &str = "General";

/// Every offline rule, unsorted.
pub(crate) fn offline(bundle: &Bundle) -> Vec<ValidationError> {
    let mut out = Vec::new();
    host::check(bundle, &mut out);
    host::check_extra_ca_certs(bundle, &mut out);
    database::check(&bundle.config, &mut out);
    storage::check(&bundle.config, &mut out);
    redis::check(&bundle.config, &mut out);
    timemachine::check(&bundle.config, &mut out);
    access::check_access_settings(&bundle.config, &mut out);
    access::check_app_tokens(&bundle.config, &mut out);
    ldap::check(bundle, &mut out);
    logs::check_action_log_archiving(&bundle.config, &mut out);
    logs::check_elasticsearch(&bundle.config, &mut out);
    misc::check_user_visible_settings(&bundle.config, &mut out);
    misc::check_security_scanner(&bundle.config, &mut out);
    misc::check_repo_mirror(&bundle.config, &mut out);
    misc::check_email(&bundle.config, &mut out);
    misc::check_team_syncing(&bundle.config, &mut out);
    wharf::check(bundle, &mut out);
    out
}

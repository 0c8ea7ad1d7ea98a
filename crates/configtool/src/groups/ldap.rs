//! LDAP: the directory settings, checked when `AUTHENTICATION_TYPE` is `LDAP`.

use crate::check::{Group, text, url_host_port};
use crate::groups::LDAP;
use crate::{Bundle, ValidationError, certs};

/// The CA certificate of the directory, in the config directory.
pub(crate) const LDAP_CERT: &str = "ldap.crt";
/// Quay's default `LDAP_URI`.
pub(crate) const DEFAULT_LDAP_URI: &str = "ldap://localhost";

pub(super) fn check(bundle: &Bundle, out: &mut Vec<ValidationError>) {
    if text(&bundle.config, "AUTHENTICATION_TYPE") != Some("LDAP") {
        return;
    }
    let mut g = Group::new(LDAP, &bundle.config, out);
    g.required("LDAP_ADMIN_DN");
    g.required("LDAP_ADMIN_PASSWD");
    if let Some(uri) = match g.value("LDAP_URI") {
        None => Some(DEFAULT_LDAP_URI),
        Some(_) => g.string("LDAP_URI"),
    } {
        let scheme = uri.split_once("://").map_or("", |(scheme, _)| scheme);
        if g.one_of("LDAP_URI", scheme, &["ldap", "ldaps"]) && url_host_port(uri).is_none() {
            g.error_at("LDAP_URI", "LDAP_URI must be of type URL");
        }
    }
    for key in ["LDAP_BASE_DN", "LDAP_USER_RDN", "LDAP_SECONDARY_USER_RDNS"] {
        g.strings(key);
    }
    for key in [
        "LDAP_UID_ATTR",
        "LDAP_EMAIL_ATTR",
        "LDAP_MEMBEROF_ATTR",
        "LDAP_USER_FILTER",
        "LDAP_SUPERUSER_FILTER",
        "LDAP_GLOBAL_READONLY_SUPERUSER_FILTER",
        "LDAP_RESTRICTED_USER_FILTER",
    ] {
        g.string(key);
    }
    g.flags(&["LDAP_ALLOW_INSECURE_FALLBACK", "FEATURE_LDAP_CACHING"]);
    for key in ["LDAP_TIMEOUT", "LDAP_NETWORK_TIMEOUT", "LDAP_CACHE_TTL"] {
        g.integer(key);
    }
    if let Some(pem) = bundle.certs.get(LDAP_CERT)
        && certs::parse_certificates(pem).is_err()
    {
        g.error(
            &["LDAP"],
            format!("Could not successfully load {LDAP_CERT}"),
        );
    }
}

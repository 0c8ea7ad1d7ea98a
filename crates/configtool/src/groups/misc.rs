//! The smaller groups: UserVisibleSettings, SecurityScanner, RepoMirror, Email and
//! TeamSyncing.

use crate::ValidationError;
use crate::check::{Group, Object, is_url};
use crate::groups::{EMAIL, REPO_MIRROR, SECURITY_SCANNER, TEAM_SYNCING, USER_VISIBLE_SETTINGS};

/// Scanner endpoints, of which one must be set when scanning is on.
pub(crate) const SCANNER_ENDPOINTS: &[&str] =
    &["SECURITY_SCANNER_ENDPOINT", "SECURITY_SCANNER_V4_ENDPOINT"];

/// Titles, avatars, branding and search page sizes. Logos may be absolute URLs or paths on
/// the registry itself (Quay's defaults are `/static/img/...`).
pub(super) fn check_user_visible_settings(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(USER_VISIBLE_SETTINGS, config, out);
    g.string("REGISTRY_TITLE");
    g.string("REGISTRY_TITLE_SHORT");
    if let Some(kind) = g.string("AVATAR_KIND") {
        g.one_of("AVATAR_KIND", kind, &["local", "gravatar"]);
    }
    if let Some(logo) = g.text("ENTERPRISE_LOGO_URL") {
        url_or_path(&mut g, "ENTERPRISE_LOGO_URL", logo);
    }
    if let Some(branding) = g.object("BRANDING") {
        let mut b = g.nested("BRANDING", branding);
        for key in ["logo", "footer_img"] {
            if let Some(value) = b.text(key) {
                url_or_path(&mut b, key, value);
            }
        }
        if let Some(url) = b.text("footer_url") {
            b.url("footer_url", url);
        }
    }
    g.strings("CONTACT_INFO");
    for key in ["SEARCH_RESULTS_PER_PAGE", "SEARCH_MAX_RESULT_PAGE_COUNT"] {
        if g.integer(key).is_some_and(|n| n < 1) {
            g.error_at(key, format!("{key} must be at least 1"));
        }
    }
}

fn url_or_path(g: &mut Group<'_, '_>, key: &str, value: &str) {
    if !value.starts_with('/') && !is_url(value) {
        let name = g.key(key);
        g.error_at(key, format!("{name} must be of type URL"));
    }
}

/// With `FEATURE_SECURITY_SCANNER`, a scanner endpoint (Clair v4, or Quay's older v2) that
/// is a URL.
pub(super) fn check_security_scanner(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(SECURITY_SCANNER, config, out);
    let enabled = g.flag("FEATURE_SECURITY_SCANNER", false);
    g.flag("FEATURE_SECURITY_NOTIFICATIONS", false);
    g.integer("SECURITY_SCANNER_INDEXING_INTERVAL");
    g.string("SECURITY_SCANNER_V4_PSK");
    g.strings("SECURITY_SCANNER_V4_NAMESPACE_WHITELIST");
    if !enabled {
        return;
    }
    let endpoints: Vec<(&str, &str)> = SCANNER_ENDPOINTS
        .iter()
        .filter_map(|key| g.text(key).map(|url| (*key, url)))
        .collect();
    if endpoints.is_empty() {
        g.error(
            SCANNER_ENDPOINTS,
            format!(
                "At least one of {} must be present",
                SCANNER_ENDPOINTS.join(",")
            ),
        );
    }
    for (key, url) in endpoints {
        g.url(key, url);
    }
}

/// With `FEATURE_REPO_MIRROR`, the host name mirror workers use to reach the registry.
pub(super) fn check_repo_mirror(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(REPO_MIRROR, config, out);
    let enabled = g.flag("FEATURE_REPO_MIRROR", false);
    g.flags(&["REPO_MIRROR_TLS_VERIFY", "REPO_MIRROR_ROLLBACK"]);
    g.integer("REPO_MIRROR_INTERVAL");
    if enabled && let Some(hostname) = g.text("REPO_MIRROR_SERVER_HOSTNAME") {
        g.hostname("REPO_MIRROR_SERVER_HOSTNAME", hostname);
    }
}

/// With `FEATURE_MAILING`, the SMTP server (and credentials when `MAIL_USE_AUTH`).
pub(super) fn check_email(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(EMAIL, config, out);
    let enabled = g.flag("FEATURE_MAILING", false);
    g.flag("FEATURE_BLACKLISTED_EMAILS", false);
    g.strings("BLACKLISTED_EMAIL_DOMAINS");
    let use_auth = g.flag("MAIL_USE_AUTH", false);
    g.flag("MAIL_USE_TLS", true);
    g.port("MAIL_PORT");
    if let Some(sender) = g.text("MAIL_DEFAULT_SENDER")
        && !sender.contains('@')
    {
        g.error_at(
            "MAIL_DEFAULT_SENDER",
            "MAIL_DEFAULT_SENDER must be an e-mail address",
        );
    }
    if !enabled {
        return;
    }
    g.required("MAIL_SERVER");
    if use_auth {
        g.required("MAIL_USERNAME");
        g.required("MAIL_PASSWORD");
    }
}

/// Team synchronization from LDAP or Keystone groups.
pub(super) fn check_team_syncing(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(TEAM_SYNCING, config, out);
    g.flags(&[
        "FEATURE_TEAM_SYNCING",
        "FEATURE_NONSUPERUSER_TEAM_SYNCING_SETUP",
    ]);
    g.duration("TEAM_RESYNC_STALE_TIME");
}

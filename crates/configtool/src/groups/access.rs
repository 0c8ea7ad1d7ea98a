//! AccessSettings (authentication type, login methods, account features, session durations)
//! and AppTokenAuthentication.

use crate::ValidationError;
use crate::check::{Group, Object, text};
use crate::groups::{ACCESS_SETTINGS, APP_TOKEN_AUTHENTICATION};

/// Quay's authentication types.
const AUTHENTICATION_TYPES: &[&str] = &["Database", "LDAP", "JWT", "Keystone", "OIDC", "AppToken"];

/// The login methods of which one must be on (unless an OIDC provider is configured).
const LOGIN_FLAGS: &[(&str, bool)] = &[
    ("FEATURE_DIRECT_LOGIN", true),
    ("FEATURE_GITHUB_LOGIN", false),
    ("FEATURE_GOOGLE_LOGIN", false),
];

/// Boolean keys of the group that no rule combines with others.
const FLAGS: &[&str] = &[
    "FEATURE_ANONYMOUS_ACCESS",
    "FEATURE_USERNAME_CONFIRMATION",
    "FEATURE_PARTIAL_USER_AUTOCOMPLETE",
    "FEATURE_USER_LAST_ACCESSED",
    "FEATURE_USER_LOG_ACCESS",
    "FEATURE_USER_METADATA",
    "FEATURE_USER_RENAME",
    "FEATURE_EXTENDED_REPOSITORY_NAMES",
    "FEATURE_USER_INITIALIZE",
    "FEATURE_SUPER_USERS",
    "FEATURE_SUPERUSERS_FULL_ACCESS",
    "CREATE_PRIVATE_REPO_ON_PUSH",
    "CREATE_NAMESPACE_ON_PUSH",
];

pub(super) fn check_access_settings(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(ACCESS_SETTINGS, config, out);
    let auth_type = g.string("AUTHENTICATION_TYPE").unwrap_or("Database");
    g.one_of("AUTHENTICATION_TYPE", auth_type, AUTHENTICATION_TYPES);
    let mut any_login = false;
    for (key, default) in LOGIN_FLAGS {
        any_login |= g.flag(key, *default);
    }
    if !any_login && !has_oidc_provider(config) {
        let keys: Vec<&str> = LOGIN_FLAGS.iter().map(|(k, _)| *k).collect();
        g.error(
            &keys,
            format!("At least one of {} must be enabled", keys.join(",")),
        );
    }
    let user_creation = g.flag("FEATURE_USER_CREATION", true);
    let invite_only = g.flag("FEATURE_INVITE_ONLY_USER_CREATION", false);
    if invite_only && !user_creation {
        g.error(
            &["FEATURE_INVITE_ONLY_USER_CREATION", "FEATURE_USER_CREATION"],
            "FEATURE_INVITE_ONLY_USER_CREATION requires FEATURE_USER_CREATION to be enabled",
        );
    }
    g.flags(FLAGS);
    for key in [
        "FRESH_LOGIN_TIMEOUT",
        "USER_RECOVERY_TOKEN_LIFETIME",
        "SESSION_TIMEOUT",
    ] {
        g.duration(key);
    }
    for key in ["SUPER_USERS", "GLOBAL_READONLY_SUPER_USERS"] {
        g.strings(key);
    }
}

/// Whether an external OIDC login is configured: a `<NAME>_LOGIN_CONFIG` object other than
/// GitHub's and Google's (Quay's `HasOIDCProvider`).
fn has_oidc_provider(config: &Object) -> bool {
    config.iter().any(|(key, value)| {
        value.is_object()
            && key.ends_with("_LOGIN_CONFIG")
            && key != "GOOGLE_LOGIN_CONFIG"
            && key != "GITHUB_LOGIN_CONFIG"
    })
}

/// With `AUTHENTICATION_TYPE: AppToken`, app-specific tokens are the only way to log in to
/// the registry: they must be on and direct login off.
pub(super) fn check_app_tokens(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(APP_TOKEN_AUTHENTICATION, config, out);
    let app_tokens = g.flag("FEATURE_APP_SPECIFIC_TOKENS", true);
    if text(config, "AUTHENTICATION_TYPE") != Some("AppToken") {
        return;
    }
    if !app_tokens {
        g.error_at(
            "FEATURE_APP_SPECIFIC_TOKENS",
            "FEATURE_APP_SPECIFIC_TOKENS must be enabled if AUTHENTICATION_TYPE is AppToken",
        );
    }
    // Only the value: a wrong type is AccessSettings' to report.
    if crate::check::flag(config, "FEATURE_DIRECT_LOGIN", true) {
        g.error_at(
            "FEATURE_DIRECT_LOGIN",
            "FEATURE_DIRECT_LOGIN must be disabled if AUTHENTICATION_TYPE is AppToken",
        );
    }
}

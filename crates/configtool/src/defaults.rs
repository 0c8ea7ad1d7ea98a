//! The defaults `GET /api/v1/config` shows under the mounted `config.yaml`, as Quay's config
//! tool does: the field groups' defaults, so an editor starts from a complete picture.

use serde_json::{Map, Value, json};

/// Quay's defaults for the keys of the field groups this tool checks (values Quay uses
/// when the key is absent).
pub fn default_config() -> Map<String, Value> {
    let defaults: [(&str, Value); 53] = [
        ("AUTHENTICATION_TYPE", json!("Database")),
        ("AVATAR_KIND", json!("local")),
        (
            "DB_CONNECTION_ARGS",
            json!({"autorollback": true, "threadlocals": true}),
        ),
        ("DEFAULT_TAG_EXPIRATION", json!("2w")),
        ("DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS", json!([])),
        ("DISTRIBUTED_STORAGE_PREFERENCE", json!([])),
        ("EXTERNAL_TLS_TERMINATION", json!(false)),
        ("FEATURE_ACTION_LOG_ROTATION", json!(false)),
        ("FEATURE_ANONYMOUS_ACCESS", json!(true)),
        ("FEATURE_APP_SPECIFIC_TOKENS", json!(true)),
        ("FEATURE_BLACKLISTED_EMAILS", json!(false)),
        ("FEATURE_CHANGE_TAG_EXPIRATION", json!(true)),
        ("FEATURE_DIRECT_LOGIN", json!(true)),
        ("FEATURE_GITHUB_LOGIN", json!(false)),
        ("FEATURE_GOOGLE_LOGIN", json!(false)),
        ("FEATURE_INVITE_ONLY_USER_CREATION", json!(false)),
        ("FEATURE_MAILING", json!(false)),
        ("FEATURE_NONSUPERUSER_TEAM_SYNCING_SETUP", json!(false)),
        ("FEATURE_PARTIAL_USER_AUTOCOMPLETE", json!(true)),
        ("FEATURE_PROXY_STORAGE", json!(false)),
        ("FEATURE_REPO_MIRROR", json!(false)),
        ("FEATURE_SECURITY_NOTIFICATIONS", json!(false)),
        ("FEATURE_SECURITY_SCANNER", json!(false)),
        ("FEATURE_STORAGE_REPLICATION", json!(false)),
        ("FEATURE_TEAM_SYNCING", json!(false)),
        ("FEATURE_USER_CREATION", json!(true)),
        ("FEATURE_USER_LAST_ACCESSED", json!(true)),
        ("FEATURE_USER_LOG_ACCESS", json!(false)),
        ("FEATURE_USER_METADATA", json!(false)),
        ("FEATURE_USER_RENAME", json!(false)),
        ("FEATURE_USERNAME_CONFIRMATION", json!(true)),
        ("FRESH_LOGIN_TIMEOUT", json!("10m")),
        ("LDAP_ALLOW_INSECURE_FALLBACK", json!(false)),
        ("LDAP_EMAIL_ATTR", json!("mail")),
        ("LDAP_UID_ATTR", json!("uid")),
        ("LDAP_URI", json!("ldap://localhost")),
        ("LOGS_MODEL", json!("database")),
        ("LOGS_MODEL_CONFIG", json!({})),
        ("MAIL_DEFAULT_SENDER", json!("support@quay.io")),
        ("MAIL_PORT", json!(587)),
        ("MAIL_USE_AUTH", json!(false)),
        ("MAIL_USE_TLS", json!(true)),
        ("PREFERRED_URL_SCHEME", json!("http")),
        ("REGISTRY_TITLE", json!("Project Quay")),
        ("REGISTRY_TITLE_SHORT", json!("Project Quay")),
        ("REPO_MIRROR_INTERVAL", json!(30)),
        ("REPO_MIRROR_TLS_VERIFY", json!(true)),
        ("SEARCH_MAX_RESULT_PAGE_COUNT", json!(10)),
        ("SEARCH_RESULTS_PER_PAGE", json!(10)),
        ("SECURITY_SCANNER_INDEXING_INTERVAL", json!(30)),
        (
            "TAG_EXPIRATION_OPTIONS",
            json!(["0s", "1d", "1w", "2w", "4w"]),
        ),
        ("TEAM_RESYNC_STALE_TIME", json!("30m")),
        ("USER_RECOVERY_TOKEN_LIFETIME", json!("30m")),
    ];
    defaults
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// The mounted config over the defaults: a key of `config` replaces the default whole.
pub(crate) fn merged(config: Map<String, Value>) -> Map<String, Value> {
    let mut merged = default_config();
    merged.extend(config);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_groups() {
        // The defaults alone lack only what Quay requires the operator to give.
        let bundle = crate::Bundle::new(default_config(), Default::default());
        let tags: Vec<String> = crate::validate_offline(&bundle)
            .into_iter()
            .flat_map(|e| e.tags)
            .collect();
        for tag in &tags {
            assert!(
                [
                    "SERVER_HOSTNAME",
                    "DB_URI",
                    "DATABASE_SECRET_KEY",
                    "DISTRIBUTED_STORAGE_CONFIG",
                    "BUILDLOGS_REDIS",
                    "USER_EVENTS_REDIS"
                ]
                .contains(&tag.as_str()),
                "{tag}"
            );
        }
    }

    #[test]
    fn config_keys_win() {
        let mut config = Map::new();
        config.insert("AUTHENTICATION_TYPE".into(), "LDAP".into());
        let merged = merged(config);
        assert_eq!(merged["AUTHENTICATION_TYPE"], "LDAP");
        assert_eq!(merged["FEATURE_DIRECT_LOGIN"], true);
    }
}

//! Offline rules, field group by field group, with their exact messages.

use std::collections::BTreeMap;

use configtool::Bundle;
use serde_json::json;

use super::{bundle_with, offline, p, valid_config};

#[test]
fn a_valid_config_has_no_problems() {
    let bundle = Bundle::new(valid_config(), BTreeMap::new());
    assert_eq!(offline(&bundle), []);
}

#[test]
fn an_empty_config_reports_the_required_fields() {
    let bundle = Bundle::from_yaml("", BTreeMap::new()).unwrap();
    assert_eq!(
        offline(&bundle),
        [
            p(
                "Database",
                &["DATABASE_SECRET_KEY"],
                "DATABASE_SECRET_KEY is required"
            ),
            p("Database", &["DB_URI"], "DB_URI is required."),
            p(
                "DistributedStorage",
                &["DISTRIBUTED_STORAGE_CONFIG"],
                "DISTRIBUTED_STORAGE_CONFIG is required"
            ),
            p(
                "HostSettings",
                &["SERVER_HOSTNAME"],
                "SERVER_HOSTNAME is required"
            ),
            p(
                "HostSettings",
                &["SERVER_HOSTNAME"],
                "SERVER_HOSTNAME must be of type Hostname"
            ),
            p("Redis", &["BUILDLOGS_REDIS"], "BUILDLOGS_REDIS is required"),
            p(
                "Redis",
                &["USER_EVENTS_REDIS"],
                "USER_EVENTS_REDIS is required"
            ),
        ]
    );
}

#[test]
fn host_settings() {
    let cases = [
        (
            json!({"SERVER_HOSTNAME": "https://quay.example.com"}),
            vec![p(
                "HostSettings",
                &["SERVER_HOSTNAME"],
                "SERVER_HOSTNAME must be of type Hostname",
            )],
        ),
        (
            json!({"SERVER_HOSTNAME": "quay"}),
            vec![p(
                "HostSettings",
                &["SERVER_HOSTNAME"],
                "SERVER_HOSTNAME must be a fully qualified domain name (containing a dot) or \
                 localhost",
            )],
        ),
        (json!({"SERVER_HOSTNAME": "localhost:8080"}), vec![]),
        (json!({"SERVER_HOSTNAME": "quay.example.com:8443"}), vec![]),
        (
            json!({"SERVER_HOSTNAME": 42}),
            vec![p(
                "HostSettings",
                &["SERVER_HOSTNAME"],
                "SERVER_HOSTNAME must be of type string",
            )],
        ),
        (
            json!({"PREFERRED_URL_SCHEME": "ftp"}),
            vec![p(
                "HostSettings",
                &["PREFERRED_URL_SCHEME"],
                "PREFERRED_URL_SCHEME must be one of http, https.",
            )],
        ),
        (
            json!({"EXTERNAL_TLS_TERMINATION": "sometimes"}),
            vec![p(
                "HostSettings",
                &["EXTERNAL_TLS_TERMINATION"],
                "EXTERNAL_TLS_TERMINATION must be of type boolean",
            )],
        ),
        // TLS ends before Wharf: no certificates needed.
        (
            json!({"PREFERRED_URL_SCHEME": "https", "EXTERNAL_TLS_TERMINATION": true}),
            vec![],
        ),
        (
            json!({"PREFERRED_URL_SCHEME": "https"}),
            vec![p(
                "HostSettings",
                &["Certificates"],
                "Certificates are required for SSL but are not present",
            )],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn https_names_each_missing_file() {
    let mut bundle = bundle_with(json!({"PREFERRED_URL_SCHEME": "https"}));
    bundle
        .certs
        .insert("extra_ca_certs/corp.crt".into(), b"x".to_vec());
    let problems: Vec<String> = configtool::validate_offline(&bundle)
        .into_iter()
        .filter(|e| e.field_group == "HostSettings")
        .map(|e| e.message)
        .collect();
    assert_eq!(
        problems,
        [
            "Certificate ssl.cert is required for HostSettings.",
            "Certificate ssl.key is required for HostSettings."
        ]
    );
}

#[test]
fn database() {
    let cases = [
        (
            json!({"DB_URI": ""}),
            vec![p("Database", &["DB_URI"], "DB_URI is required.")],
        ),
        (
            json!({"DB_URI": "not a uri"}),
            vec![p(
                "Database",
                &["DB_URI"],
                "DB_URI has incorrect format. Must be URI.",
            )],
        ),
        (
            json!({"DB_URI": "mysql+pymysql://quay:pw@db/quay"}),
            vec![p(
                "Database",
                &["DB_URI"],
                "DB_URI scheme must be one of postgresql, postgres, sqlite; Wharf does not \
                 support mysql+pymysql.",
            )],
        ),
        (json!({"DB_URI": "sqlite:////data/wharf.db"}), vec![]),
        (
            json!({"DB_CONNECTION_ARGS": "sslmode=require"}),
            vec![p(
                "Database",
                &["DB_CONNECTION_ARGS"],
                "DB_CONNECTION_ARGS must be of type object",
            )],
        ),
        // Read as `wharf serve` reads them; peewee's own switches are accepted.
        (
            json!({"DB_CONNECTION_ARGS": {"max_connections": 0, "autorollback": true}}),
            vec![p(
                "Database",
                &["DB_CONNECTION_ARGS"],
                "DB_CONNECTION_ARGS.max_connections must be a number of connections from 1 up",
            )],
        ),
        (
            json!({"DB_CONNECTION_ARGS": {"sslmode": "require", "threadlocals": true}}),
            vec![],
        ),
        (
            json!({"DATABASE_SECRET_KEY": null}),
            vec![p(
                "Database",
                &["DATABASE_SECRET_KEY"],
                "DATABASE_SECRET_KEY is required",
            )],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn distributed_storage() {
    let ds = "DistributedStorage";
    let cases = [
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {}, "DISTRIBUTED_STORAGE_PREFERENCE": null}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG"],
                "DISTRIBUTED_STORAGE_CONFIG must contain at least one storage location.",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"s3": ["S3Storage", {"storage_path": "/r"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["s3"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.s3.s3_bucket"],
                "DISTRIBUTED_STORAGE_CONFIG.s3.s3_bucket is required",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"ceph": ["RadosGWStorage", {"hostname": "ceph"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["ceph"]}),
            vec![
                p(
                    ds,
                    &["DISTRIBUTED_STORAGE_CONFIG.ceph.access_key"],
                    "DISTRIBUTED_STORAGE_CONFIG.ceph.access_key is required",
                ),
                p(
                    ds,
                    &["DISTRIBUTED_STORAGE_CONFIG.ceph.bucket_name"],
                    "DISTRIBUTED_STORAGE_CONFIG.ceph.bucket_name is required",
                ),
                p(
                    ds,
                    &["DISTRIBUTED_STORAGE_CONFIG.ceph.secret_key"],
                    "DISTRIBUTED_STORAGE_CONFIG.ceph.secret_key is required",
                ),
            ],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"az": ["AzureStorage", {"azure_container": "c"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["az"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.az.azure_account_name"],
                "DISTRIBUTED_STORAGE_CONFIG.az.azure_account_name is required",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"gcs": ["GoogleCloudStorage",
                    {"access_key": "a", "secret_key": "s", "bucket_name": "b"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["gcs"]}),
            vec![],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"x": ["FloppyStorage", {}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["x"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.x"],
                "FloppyStorage is not a valid storage type.",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"x": "LocalStorage"},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["x"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.x"],
                "DISTRIBUTED_STORAGE_CONFIG.x must be a [DriverName, {parameters}] pair",
            )],
        ),
        (
            json!({"FEATURE_STORAGE_REPLICATION": true}),
            vec![p(
                ds,
                &[
                    "FEATURE_STORAGE_REPLICATION",
                    "DISTRIBUTED_STORAGE_CONFIG.default",
                ],
                "FEATURE_STORAGE_REPLICATION is not supported by LocalStorage.",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"swift": ["SwiftStorage", {
                    "auth_version": 4, "auth_url": "https://keystone", "swift_container": "c",
                    "swift_user": "u", "swift_password": "p"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["swift"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.swift.auth_version"],
                "DISTRIBUTED_STORAGE_CONFIG.swift.auth_version must be one of 1, 2, 3.",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"swift": ["SwiftStorage", {
                    "auth_version": 3, "auth_url": "https://keystone", "swift_container": "c",
                    "swift_user": "u", "swift_password": "p"}]},
                   "DISTRIBUTED_STORAGE_PREFERENCE": ["swift"]}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.swift"],
                "DISTRIBUTED_STORAGE_CONFIG.swift: Wharf does not support SwiftStorage storage yet",
            )],
        ),
        // Wharf's own parser: an unknown parameter stops `wharf serve`.
        (
            json!({"DISTRIBUTED_STORAGE_CONFIG": {"default": ["LocalStorage",
                    {"storage_path": "/d", "storage_pth": "/e"}]}}),
            vec![p(
                ds,
                &["DISTRIBUTED_STORAGE_CONFIG.default"],
                "DISTRIBUTED_STORAGE_CONFIG.default: LocalStorage accepts only storage_path, \
                 found storage_pth",
            )],
        ),
        (
            json!({"DISTRIBUTED_STORAGE_PREFERENCE": ["default", "eu"],
                   "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS": ["us"]}),
            vec![
                p(
                    ds,
                    &[
                        "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS",
                        "DISTRIBUTED_STORAGE_CONFIG",
                    ],
                    "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS location us must be in \
                     DISTRIBUTED_STORAGE_CONFIG",
                ),
                p(
                    ds,
                    &[
                        "DISTRIBUTED_STORAGE_PREFERENCE",
                        "DISTRIBUTED_STORAGE_CONFIG",
                    ],
                    "DISTRIBUTED_STORAGE_PREFERENCE location eu must be in \
                     DISTRIBUTED_STORAGE_CONFIG",
                ),
            ],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn redis() {
    let cases = [
        (
            json!({"BUILDLOGS_REDIS": {"port": 6379}}),
            vec![p(
                "Redis",
                &["BUILDLOGS_REDIS.host"],
                "BUILDLOGS_REDIS.host is required",
            )],
        ),
        (
            json!({"USER_EVENTS_REDIS": "redis://x"}),
            vec![p(
                "Redis",
                &["USER_EVENTS_REDIS"],
                "USER_EVENTS_REDIS must be of type object",
            )],
        ),
        (
            json!({"USER_EVENTS_REDIS": {"host": "r.example.com", "port": "six", "ssl": "maybe"}}),
            vec![
                p(
                    "Redis",
                    &["USER_EVENTS_REDIS.port"],
                    "USER_EVENTS_REDIS.port must be a port number (1-65535)",
                ),
                p(
                    "Redis",
                    &["USER_EVENTS_REDIS.ssl"],
                    "USER_EVENTS_REDIS.ssl must be of type boolean",
                ),
            ],
        ),
        (
            json!({"PULL_METRICS_REDIS": {"host": "r.example.com", "port": "6380", "db": 1,
                   "ssl": "yes", "password": "pw"}}),
            vec![],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn time_machine() {
    let tm = "TimeMachine";
    let cases = [
        (
            json!({"DEFAULT_TAG_EXPIRATION": "3d"}),
            vec![p(
                tm,
                &["DEFAULT_TAG_EXPIRATION", "TAG_EXPIRATION_OPTIONS"],
                "The default tag expiration period must be included in the allowed expiration \
                 periods.",
            )],
        ),
        (
            json!({"DEFAULT_TAG_EXPIRATION": "3d", "TAG_EXPIRATION_OPTIONS": ["1d", "3d"]}),
            vec![],
        ),
        (
            json!({"DEFAULT_TAG_EXPIRATION": "2 weeks"}),
            vec![p(
                tm,
                &["DEFAULT_TAG_EXPIRATION"],
                "DEFAULT_TAG_EXPIRATION must have the regex pattern ^[0-9]+(w|m|d|h|s)$",
            )],
        ),
        (
            json!({"TAG_EXPIRATION_OPTIONS": ["2w", "1y"]}),
            vec![p(
                tm,
                &["TAG_EXPIRATION_OPTIONS"],
                "TAG_EXPIRATION_OPTIONS entry \"1y\" must have the regex pattern \
                 ^[0-9]+(w|m|d|h|s)$",
            )],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn access_settings_and_app_tokens() {
    let cases = [
        (
            json!({"AUTHENTICATION_TYPE": "Kerberos"}),
            vec![p(
                "AccessSettings",
                &["AUTHENTICATION_TYPE"],
                "AUTHENTICATION_TYPE must be one of Database, LDAP, JWT, Keystone, OIDC, AppToken.",
            )],
        ),
        (
            json!({"FEATURE_DIRECT_LOGIN": false}),
            vec![p(
                "AccessSettings",
                &[
                    "FEATURE_DIRECT_LOGIN",
                    "FEATURE_GITHUB_LOGIN",
                    "FEATURE_GOOGLE_LOGIN",
                ],
                "At least one of FEATURE_DIRECT_LOGIN,FEATURE_GITHUB_LOGIN,FEATURE_GOOGLE_LOGIN \
                 must be enabled",
            )],
        ),
        // An OIDC provider is a login method too.
        (
            json!({"FEATURE_DIRECT_LOGIN": false, "CORP_LOGIN_CONFIG": {"CLIENT_ID": "x"}}),
            vec![],
        ),
        (
            json!({"FEATURE_USER_CREATION": false, "FEATURE_INVITE_ONLY_USER_CREATION": true}),
            vec![p(
                "AccessSettings",
                &["FEATURE_INVITE_ONLY_USER_CREATION", "FEATURE_USER_CREATION"],
                "FEATURE_INVITE_ONLY_USER_CREATION requires FEATURE_USER_CREATION to be enabled",
            )],
        ),
        (
            json!({"FRESH_LOGIN_TIMEOUT": "10 minutes"}),
            vec![p(
                "AccessSettings",
                &["FRESH_LOGIN_TIMEOUT"],
                "FRESH_LOGIN_TIMEOUT must have the regex pattern ^[0-9]+(w|m|d|h|s)$",
            )],
        ),
        (
            json!({"SUPER_USERS": "admin"}),
            vec![p(
                "AccessSettings",
                &["SUPER_USERS"],
                "SUPER_USERS must be a list of strings",
            )],
        ),
        (
            json!({"AUTHENTICATION_TYPE": "AppToken", "FEATURE_APP_SPECIFIC_TOKENS": false,
                   "FEATURE_GITHUB_LOGIN": true}),
            vec![
                p(
                    "AppTokenAuthentication",
                    &["FEATURE_APP_SPECIFIC_TOKENS"],
                    "FEATURE_APP_SPECIFIC_TOKENS must be enabled if AUTHENTICATION_TYPE is \
                     AppToken",
                ),
                p(
                    "AppTokenAuthentication",
                    &["FEATURE_DIRECT_LOGIN"],
                    "FEATURE_DIRECT_LOGIN must be disabled if AUTHENTICATION_TYPE is AppToken",
                ),
            ],
        ),
        (
            json!({"AUTHENTICATION_TYPE": "AppToken", "FEATURE_DIRECT_LOGIN": false,
                   "FEATURE_GITHUB_LOGIN": true}),
            vec![],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            offline(&bundle_with(changes.clone())),
            expected,
            "{changes}"
        );
    }
}

#[test]
fn ldap() {
    let ldap = json!({
        "AUTHENTICATION_TYPE": "LDAP",
        "LDAP_URI": "ldaps://ldap.example.com",
        "LDAP_ADMIN_DN": "cn=admin,dc=example,dc=com",
        "LDAP_ADMIN_PASSWD": "secret",
        "LDAP_BASE_DN": ["dc=example", "dc=com"],
        "LDAP_USER_RDN": ["ou=users"],
    });
    assert_eq!(offline(&bundle_with(ldap.clone())), []);
    let with = |changes: serde_json::Value| {
        let mut merged = ldap.as_object().cloned().unwrap();
        merged.extend(changes.as_object().cloned().unwrap());
        bundle_with(serde_json::Value::Object(merged))
    };
    assert_eq!(
        offline(&with(
            json!({"LDAP_ADMIN_DN": null, "LDAP_ADMIN_PASSWD": ""})
        )),
        [
            p("LDAP", &["LDAP_ADMIN_DN"], "LDAP_ADMIN_DN is required"),
            p(
                "LDAP",
                &["LDAP_ADMIN_PASSWD"],
                "LDAP_ADMIN_PASSWD is required"
            ),
        ]
    );
    assert_eq!(
        offline(&with(json!({"LDAP_URI": "http://ldap.example.com"}))),
        [p(
            "LDAP",
            &["LDAP_URI"],
            "LDAP_URI must be one of ldap, ldaps."
        )]
    );
    assert_eq!(
        offline(&with(json!({"LDAP_BASE_DN": "dc=example,dc=com"}))),
        [p(
            "LDAP",
            &["LDAP_BASE_DN"],
            "LDAP_BASE_DN must be a list of strings"
        )]
    );
    let mut bad_cert = with(json!({}));
    bad_cert
        .certs
        .insert("ldap.crt".into(), b"not a cert".to_vec());
    assert_eq!(
        offline(&bad_cert),
        [p("LDAP", &["LDAP"], "Could not successfully load ldap.crt")]
    );
    // Nothing is checked unless LDAP is the authentication type.
    assert_eq!(
        offline(&bundle_with(
            json!({"LDAP_URI": "http://x", "LDAP_BASE_DN": 3})
        )),
        []
    );
}

#[test]
fn email() {
    assert_eq!(
        offline(&bundle_with(
            json!({"FEATURE_MAILING": true, "MAIL_USE_AUTH": true})
        )),
        [
            p("Email", &["MAIL_PASSWORD"], "MAIL_PASSWORD is required"),
            p("Email", &["MAIL_SERVER"], "MAIL_SERVER is required"),
            p("Email", &["MAIL_USERNAME"], "MAIL_USERNAME is required"),
        ]
    );
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_MAILING": true,
            "MAIL_SERVER": "smtp.example.com", "MAIL_PORT": 70000,
            "MAIL_DEFAULT_SENDER": "quay"}))),
        [
            p(
                "Email",
                &["MAIL_DEFAULT_SENDER"],
                "MAIL_DEFAULT_SENDER must be an e-mail address"
            ),
            p(
                "Email",
                &["MAIL_PORT"],
                "MAIL_PORT must be a port number (1-65535)"
            ),
        ]
    );
}

#[test]
fn security_scanner_and_repo_mirror() {
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_SECURITY_SCANNER": true}))),
        [p(
            "SecurityScanner",
            &["SECURITY_SCANNER_ENDPOINT", "SECURITY_SCANNER_V4_ENDPOINT"],
            "At least one of SECURITY_SCANNER_ENDPOINT,SECURITY_SCANNER_V4_ENDPOINT must be \
             present"
        )]
    );
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_SECURITY_SCANNER": true,
            "SECURITY_SCANNER_V4_ENDPOINT": "clair:8080"}))),
        [p(
            "SecurityScanner",
            &["SECURITY_SCANNER_V4_ENDPOINT"],
            "SECURITY_SCANNER_V4_ENDPOINT must be of type URL"
        )]
    );
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_SECURITY_SCANNER": true,
            "SECURITY_SCANNER_V4_ENDPOINT": "http://clair:8080"}))),
        []
    );
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_REPO_MIRROR": true,
            "REPO_MIRROR_SERVER_HOSTNAME": "https://quay.example.com"}))),
        [p(
            "RepoMirror",
            &["REPO_MIRROR_SERVER_HOSTNAME"],
            "REPO_MIRROR_SERVER_HOSTNAME must be of type Hostname"
        )]
    );
}

#[test]
fn action_logs_and_elasticsearch() {
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_ACTION_LOG_ROTATION": true,
            "ACTION_LOG_ARCHIVE_PATH": "archives/", "ACTION_LOG_ARCHIVE_LOCATION": "eu"}))),
        [p(
            "ActionLogArchiving",
            &["ACTION_LOG_ARCHIVE_LOCATION", "DISTRIBUTED_STORAGE_CONFIG"],
            "ACTION_LOG_ARCHIVE_LOCATION must be in DISTRIBUTED_STORAGE_CONFIG"
        )]
    );
    assert_eq!(
        offline(&bundle_with(json!({"FEATURE_ACTION_LOG_ROTATION": true}))),
        [
            p(
                "ActionLogArchiving",
                &["ACTION_LOG_ARCHIVE_LOCATION"],
                "ACTION_LOG_ARCHIVE_LOCATION is required"
            ),
            p(
                "ActionLogArchiving",
                &["ACTION_LOG_ARCHIVE_PATH"],
                "ACTION_LOG_ARCHIVE_PATH is required"
            ),
        ]
    );
    let es = "ElasticSearch";
    assert_eq!(
        offline(&bundle_with(json!({"LOGS_MODEL": "elasticsearch"}))),
        [p(
            es,
            &["LOGS_MODEL_CONFIG"],
            "LOGS_MODEL_CONFIG is required for Elasticsearch"
        )]
    );
    assert_eq!(
        offline(&bundle_with(json!({"LOGS_MODEL": "elasticsearch",
            "LOGS_MODEL_CONFIG": {"producer": "kinesis_stream",
                "elasticsearch_config": {"host": "es.example.com", "port": 443}}}))),
        [
            p(
                es,
                &["LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG.ACCESS_KEY"],
                "LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG.ACCESS_KEY is required for Elasticsearch"
            ),
            p(
                es,
                &["LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG.SECRET_KEY"],
                "LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG.SECRET_KEY is required for Elasticsearch"
            ),
            p(
                es,
                &["LOGS_MODEL_CONFIG.KINESIS_STREAM_CONFIG"],
                "LOGS_MODEL_CONFIG.KINESIS_STREAM_CONFIG is required for kinesis_stream"
            ),
        ]
    );
    assert_eq!(offline(&bundle_with(json!({"LOGS_MODEL": "splunk"}))), []);
    assert_eq!(
        offline(&bundle_with(json!({"LOGS_MODEL": "syslog"}))),
        [p(
            es,
            &["LOGS_MODEL"],
            "LOGS_MODEL must be one of database, transition_reads_both_writes_es, \
             elasticsearch, splunk."
        )]
    );
}

#[test]
fn user_visible_settings_and_team_syncing() {
    assert_eq!(
        offline(&bundle_with(json!({
            "AVATAR_KIND": "robohash",
            "BRANDING": {"logo": "/static/logo.svg", "footer_url": "example.com"},
            "ENTERPRISE_LOGO_URL": "https://cdn.example.com/logo.svg",
            "SEARCH_RESULTS_PER_PAGE": 0,
        }))),
        [
            p(
                "UserVisibleSettings",
                &["AVATAR_KIND"],
                "AVATAR_KIND must be one of local, gravatar."
            ),
            p(
                "UserVisibleSettings",
                &["BRANDING.footer_url"],
                "BRANDING.footer_url must be of type URL"
            ),
            p(
                "UserVisibleSettings",
                &["SEARCH_RESULTS_PER_PAGE"],
                "SEARCH_RESULTS_PER_PAGE must be at least 1"
            ),
        ]
    );
    assert_eq!(
        offline(&bundle_with(
            json!({"TEAM_RESYNC_STALE_TIME": "half an hour"})
        )),
        [p(
            "TeamSyncing",
            &["TEAM_RESYNC_STALE_TIME"],
            "TEAM_RESYNC_STALE_TIME must have the regex pattern ^[0-9]+(w|m|d|h|s)$"
        )]
    );
}

#[test]
fn extra_ca_certificates_must_parse() {
    let mut bundle = bundle_with(json!({}));
    bundle
        .certs
        .insert("extra_ca_certs/broken.crt".into(), b"garbage".to_vec());
    assert_eq!(
        offline(&bundle),
        [p(
            "ExtraCaCertificates",
            &["extra_ca_certs/broken.crt"],
            "extra_ca_certs/broken.crt could not be loaded: no PEM certificate found"
        )]
    );
}

#[test]
fn what_wharf_refuses_is_reported_once() {
    // Not a field group key, but `wharf serve` reads it: its loader's message, with the
    // position in the file.
    let text = "SERVER_HOSTNAME: quay.example.com\nMAXIMUM_LAYER_SIZE: 20 gigs\n";
    let bundle = Bundle::from_yaml(text, BTreeMap::new()).unwrap();
    let general: Vec<_> = offline(&bundle)
        .into_iter()
        .filter(|(group, _, _)| group == "General")
        .collect();
    assert_eq!(general.len(), 1, "{general:?}");
    assert_eq!(general[0].1, ["MAXIMUM_LAYER_SIZE"]);
    assert!(
        general[0]
            .2
            .starts_with("invalid value for MAXIMUM_LAYER_SIZE at line 2"),
        "{general:?}"
    );
    // A key a field group already reported is not reported again.
    let bundle = bundle_with(json!({"PREFERRED_URL_SCHEME": "ftp"}));
    assert_eq!(offline(&bundle).len(), 1);
}

#[test]
fn yaml_1_1_booleans_are_booleans() {
    let text = "SERVER_HOSTNAME: quay.example.com\nFEATURE_ANONYMOUS_ACCESS: yes\n\
                EXTERNAL_TLS_TERMINATION: off\n";
    let bundle = Bundle::from_yaml(text, BTreeMap::new()).unwrap();
    let problems = offline(&bundle);
    assert!(
        problems.iter().all(|(_, tags, _)| !tags
            .iter()
            .any(|t| t == "FEATURE_ANONYMOUS_ACCESS" || t == "EXTERNAL_TLS_TERMINATION")),
        "{problems:?}"
    );
}

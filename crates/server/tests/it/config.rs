//! Starting from a Quay-style config.yaml: DB_URI on PostgreSQL, LocalStorage, unknown keys.

use db::testing::{Engine, TestDb};
use server::{App, Paths, resolve};

#[tokio::test]
async fn serves_from_a_quay_config_on_postgres() {
    let database = TestDb::empty(Engine::Postgres).await;
    let config_dir = tempfile::tempdir().unwrap();
    let storage_dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "DB_URI: {uri}\n\
         SERVER_HOSTNAME: registry.example.com\n\
         PREFERRED_URL_SCHEME: http\n\
         AUTHENTICATION_TYPE: Database\n\
         FEATURE_MAILING: false\n\
         DATABASE_SECRET_KEY: a-test-secret\n\
         DISTRIBUTED_STORAGE_CONFIG:\n  local_us:\n    - LocalStorage\n    - storage_path: {storage}\n\
         DISTRIBUTED_STORAGE_PREFERENCE: [local_us]\n\
         FEATURE_LIBRARY_SUPPORT: no\n",
        uri = database.uri,
        storage = storage_dir.path().display()
    );
    std::fs::write(config_dir.path().join("config.yaml"), yaml).unwrap();
    let paths = Paths {
        config_dir: Some(config_dir.path().to_path_buf()),
        data_dir: "unused".into(),
        storage_preference: None,
    };
    let resolved = resolve(&paths).unwrap();
    assert_eq!(resolved.db_uri, database.uri);
    assert_eq!(
        resolved.locations,
        vec![(
            "local_us".to_string(),
            config::StorageDriverConfig::Local {
                storage_path: storage_dir.path().to_path_buf()
            }
        )]
    );

    // `open` migrates the empty database and uses the configured storage.
    let app = App::open(&resolved).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, std::future::pending()));
    let digest = types::Digest::sha256_of(b"configured");
    let client = reqwest::Client::new();
    // Tokens name SERVER_HOSTNAME as their service and audience, whatever host was dialled.
    let r = client.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"http://registry.example.com/v2/auth\",service=\"registry.example.com\""
    );
    let db = db::Db::connect(&database.uri).await.unwrap();
    let owner = crate::harness::create_user(&db, "owner").await;
    db.create_organization("acme", None, owner.id)
        .await
        .unwrap();
    let r = client
        .get(format!(
            "{base}/v2/auth?service=registry.example.com&scope=repository:acme/app:pull,push"
        ))
        .basic_auth("owner", Some(crate::harness::TESTER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token: serde_json::Value = r.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let r = client
        .post(format!("{base}/v2/acme/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(&token)
        .body("configured")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        std::fs::read_dir(storage_dir.path().join("blobs"))
            .unwrap()
            .count(),
        1
    );
    // FEATURE_LIBRARY_SUPPORT: no refuses single-component names.
    let r = client
        .post(format!("{base}/v2/alpine/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn a_config_without_database_secret_key_is_refused() {
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("config.yaml"),
        "SERVER_HOSTNAME: r.example\n",
    )
    .unwrap();
    let paths = Paths {
        config_dir: Some(config_dir.path().to_path_buf()),
        data_dir: "unused".into(),
        storage_preference: None,
    };
    let err = resolve(&paths).err().unwrap().to_string();
    assert!(err.contains("DATABASE_SECRET_KEY"), "{err}");
}

#[test]
fn the_embedded_secret_key_is_made_once_and_kept() {
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        config_dir: None,
        data_dir: data.path().to_path_buf(),
        storage_preference: None,
    };
    let first = resolve(&paths).unwrap().database_secret_key;
    assert!(first.len() >= 32);
    assert_eq!(resolve(&paths).unwrap().database_secret_key, first);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("secret_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn unsupported_storage_is_a_clear_error() {
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("config.yaml"),
        format!(
            "DB_URI: sqlite:///{}\nDATABASE_SECRET_KEY: k\nDISTRIBUTED_STORAGE_CONFIG:\n  \
             swift:\n    - SwiftStorage\n    - swift_container: c\n",
            config_dir.path().join("wharf.db").display()
        ),
    )
    .unwrap();
    let paths = Paths {
        config_dir: Some(config_dir.path().to_path_buf()),
        data_dir: "d".into(),
        storage_preference: None,
    };
    // The config loads (a Quay config with any driver does); using the location fails.
    let resolved = resolve(&paths).unwrap();
    let err = App::open(&resolved).await.err().unwrap().to_string();
    assert!(
        err.contains("SwiftStorage") && err.contains("swift"),
        "{err}"
    );
    std::fs::write(
        config_dir.path().join("config.yaml"),
        "DB_URI: [not, a, string]\n",
    )
    .unwrap();
    assert!(resolve(&paths).is_err());
    let missing = Paths {
        config_dir: Some("/nonexistent-wharf".into()),
        data_dir: "d".into(),
        storage_preference: None,
    };
    assert!(
        resolve(&missing)
            .err()
            .unwrap()
            .to_string()
            .contains("config.yaml")
    );
}

#[test]
fn embedded_default_lives_in_the_data_dir() {
    let paths = Paths {
        config_dir: None,
        data_dir: "/srv/wharf".into(),
        storage_preference: None,
    };
    let resolved = resolve(&paths).unwrap();
    assert_eq!(resolved.db_uri, "sqlite:////srv/wharf/wharf.db");
    assert_eq!(
        resolved.locations,
        vec![(
            "default".to_string(),
            config::StorageDriverConfig::Local {
                storage_path: "/srv/wharf/storage".into()
            }
        )]
    );
}

/// Resolves a config.yaml body with an optional node preference.
fn resolve_yaml(
    yaml: &str,
    preference: Option<&[&str]>,
) -> Result<server::Resolved, server::ServerError> {
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("config.yaml"),
        format!("DATABASE_SECRET_KEY: k\n{yaml}"),
    )
    .unwrap();
    resolve(&Paths {
        config_dir: Some(config_dir.path().to_path_buf()),
        data_dir: "unused".into(),
        storage_preference: preference.map(|p| p.iter().map(|s| s.to_string()).collect()),
    })
}

const THREE_BUCKETS: &str = "DISTRIBUTED_STORAGE_CONFIG:
  us: [S3Storage, {s3_bucket: us, host: s3.example, s3_access_key: a, s3_secret_key: b}]
  eu: [S3Storage, {s3_bucket: eu, host: s3.example, s3_access_key: a, s3_secret_key: b}]
  ap: [S3Storage, {s3_bucket: ap, host: s3.example, s3_access_key: a, s3_secret_key: b}]
";

#[test]
fn locations_follow_the_nodes_preference_then_the_config() {
    let ids = |r: server::Resolved| {
        r.locations
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    let r = resolve_yaml(THREE_BUCKETS, None).unwrap();
    assert_eq!(
        ids(r),
        ["us", "eu", "ap"],
        "config order without a preference"
    );
    let yaml = format!("{THREE_BUCKETS}DISTRIBUTED_STORAGE_PREFERENCE: [eu]\n");
    let r = resolve_yaml(&yaml, None).unwrap();
    assert_eq!(
        ids(r),
        ["eu", "us", "ap"],
        "preferred first, the rest for reads"
    );
    // QUAY_DISTRIBUTED_STORAGE_PREFERENCE (per node) wins over the shared config.
    let r = resolve_yaml(&yaml, Some(&["ap", "us"])).unwrap();
    assert_eq!(ids(r), ["ap", "us", "eu"]);
    let err = resolve_yaml(&yaml, Some(&["mars"]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"mars\""), "{err}");
}

#[test]
fn replication_needs_object_storage_and_known_locations() {
    let local = "FEATURE_STORAGE_REPLICATION: true
DISTRIBUTED_STORAGE_CONFIG:
  here: [LocalStorage, {storage_path: /srv/a}]
  there: [S3Storage, {s3_bucket: b, host: s3.example, s3_access_key: a, s3_secret_key: b}]
";
    let err = resolve_yaml(local, None).err().unwrap().to_string();
    assert!(
        err.contains("\"here\" is LocalStorage") && err.contains("FEATURE_STORAGE_REPLICATION"),
        "{err}"
    );
    let unknown = format!(
        "{THREE_BUCKETS}FEATURE_STORAGE_REPLICATION: true\n\
         DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [us, moon]\n"
    );
    let err = resolve_yaml(&unknown, None).err().unwrap().to_string();
    assert!(err.contains("\"moon\""), "{err}");
    let fine = format!(
        "{THREE_BUCKETS}FEATURE_STORAGE_REPLICATION: true\n\
         DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [us, eu]\n"
    );
    assert!(resolve_yaml(&fine, None).is_ok());
}

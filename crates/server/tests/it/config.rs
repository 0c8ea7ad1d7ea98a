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
    };
    let resolved = resolve(&paths).unwrap();
    assert_eq!(resolved.db_uri, database.uri);
    assert_eq!(resolved.location, "local_us");
    assert_eq!(resolved.storage_path, storage_dir.path());

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

#[test]
fn unsupported_storage_is_a_clear_error() {
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("config.yaml"),
        "DISTRIBUTED_STORAGE_CONFIG:\n  s3:\n    - S3Storage\n    - s3_bucket: b\n",
    )
    .unwrap();
    let paths = Paths {
        config_dir: Some(config_dir.path().to_path_buf()),
        data_dir: "d".into(),
    };
    let err = resolve(&paths).err().unwrap().to_string();
    assert!(err.contains("S3Storage"), "{err}");
    std::fs::write(
        config_dir.path().join("config.yaml"),
        "DB_URI: [not, a, string]\n",
    )
    .unwrap();
    assert!(resolve(&paths).is_err());
    let missing = Paths {
        config_dir: Some("/nonexistent-wharf".into()),
        data_dir: "d".into(),
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
    };
    let resolved = resolve(&paths).unwrap();
    assert_eq!(resolved.db_uri, "sqlite:////srv/wharf/wharf.db");
    assert_eq!(
        resolved.storage_path,
        std::path::PathBuf::from("/srv/wharf/storage")
    );
}

//! The config tool's HTTP API on a real listener, driven with reqwest.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use configtool::ToolOptions;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cret-config";

/// A config tool serving `dir` on a loopback port, stopped when dropped.
struct Tool {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(dir: &Path) -> Tool {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ToolOptions {
        config_dir: dir.to_owned(),
        password: PASSWORD.to_owned(),
        online_timeout: Duration::from_secs(3),
    };
    tokio::spawn(configtool::serve(listener, options, async move {
        let _ = stopped.await;
    }));
    Tool {
        base,
        stop: Some(stop),
    }
}

/// Standard base64 with padding, as Go encodes `[]byte` in JSON.
fn base64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

#[tokio::test]
async fn requests_need_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let tool = start(dir.path()).await;
    let client = Client::new();
    let url = format!("{}/api/v1/config", tool.base);
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    for (user, password) in [("quayconfig", "wrong"), ("admin", PASSWORD), ("", "")] {
        let refused = client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "{user}:{password}"
        );
    }
    let refused = client
        .post(format!("{}/api/v1/config/validate", tool.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let accepted = client
        .get(&url)
        .basic_auth("quayconfig", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_mounted_config_is_served_over_the_defaults_with_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "SERVER_HOSTNAME: quay.example.com\nFEATURE_DIRECT_LOGIN: false\nCUSTOM_KEY: [1, 2]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ssl.cert"), "CERT").unwrap();
    std::fs::create_dir(dir.path().join("extra_ca_certs")).unwrap();
    std::fs::write(dir.path().join("extra_ca_certs/corp.crt"), "CA").unwrap();
    let tool = start(dir.path()).await;
    let body: Value = Client::new()
        .get(format!("{}/api/v1/config", tool.base))
        .basic_auth("quayconfig", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let config = &body["config.yaml"];
    assert_eq!(config["SERVER_HOSTNAME"], "quay.example.com");
    assert_eq!(config["FEATURE_DIRECT_LOGIN"], false, "the file wins");
    assert_eq!(config["CUSTOM_KEY"], json!([1, 2]), "unknown keys are kept");
    assert_eq!(config["AUTHENTICATION_TYPE"], "Database", "a default");
    assert_eq!(config["DEFAULT_TAG_EXPIRATION"], "2w", "a default");
    assert_eq!(
        body["certs"],
        json!({"extra_ca_certs/corp.crt": base64(b"CA"), "ssl.cert": base64(b"CERT")})
    );
}

#[tokio::test]
async fn without_a_config_file_the_defaults_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let tool = start(dir.path()).await;
    let body: Value = Client::new()
        .get(format!("{}/api/v1/config", tool.base))
        .basic_auth("quayconfig", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["config.yaml"],
        Value::Object(configtool::default_config())
    );
    assert_eq!(body["certs"], json!({}));
}

#[tokio::test]
async fn bundles_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let tool = start(dir.path()).await;
    let client = Client::new();
    let validate = |mode: &str, body: Value| {
        client
            .post(format!("{}/api/v1/config/validate?mode={mode}", tool.base))
            .basic_auth("quayconfig", Some(PASSWORD))
            .json(&body)
            .send()
    };
    // An empty config: the required fields, as for `wharf validate-config`.
    let response = validate("offline", json!({"config.yaml": {}, "certs": {}}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let found: Vec<configtool::ValidationError> = response.json().await.unwrap();
    let empty = configtool::Bundle::new(Default::default(), Default::default());
    assert_eq!(found, configtool::validate_offline(&empty));
    assert_eq!(found.len(), 7);

    // A valid config with its certificates, checked online against nothing unreachable.
    let mut config = super::valid_config();
    let db = format!("sqlite:///{}", dir.path().join("wharf.db").display());
    config.insert("DB_URI".into(), json!(db));
    config.insert(
        "DISTRIBUTED_STORAGE_CONFIG".into(),
        json!({"default": ["LocalStorage", {"storage_path": dir.path().join("s")}]}),
    );
    for key in ["BUILDLOGS_REDIS", "USER_EVENTS_REDIS"] {
        config.insert(key.into(), json!({"host": "127.0.0.1", "port": 6379}));
    }
    let response = validate("online", json!({"config.yaml": config, "certs": null}))
        .await
        .unwrap();
    let found: Vec<Value> = response.json().await.unwrap();
    assert_eq!(found, Vec::<Value>::new());

    // The certificates take part: https without them.
    config.insert("PREFERRED_URL_SCHEME".into(), json!("https"));
    let body = json!({"config.yaml": config, "certs": {"ssl.cert": base64(b"x")}});
    let found: Vec<configtool::ValidationError> = validate("offline", body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "Certificate ssl.key is required for HostSettings."
    );

    for (mode, body, why) in [
        (
            "sometimes",
            json!({"config.yaml": {}}),
            "mode must be online or offline",
        ),
        (
            "offline",
            json!({"config.yaml": [1]}),
            "config.yaml must be a JSON object",
        ),
        (
            "offline",
            json!({"config.yaml": {}, "certs": {"../x.crt": "eA=="}}),
            "must be a relative path",
        ),
        (
            "offline",
            json!({"config.yaml": {}, "certs": {"a.crt": "%%%"}}),
            "is not base64",
        ),
    ] {
        let response = validate(mode, body).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
        let text = response.text().await.unwrap();
        assert!(text.contains(why), "{text}");
    }
}

#[tokio::test]
async fn bundles_download_as_quay_config_tar_gz() {
    let dir = tempfile::tempdir().unwrap();
    let tool = start(dir.path()).await;
    let config = json!({
        "SERVER_HOSTNAME": "quay.example.com",
        "FEATURE_ANONYMOUS_ACCESS": false,
        "TAG_EXPIRATION_OPTIONS": ["1d", "2w"],
        "DISTRIBUTED_STORAGE_CONFIG": {"default": ["LocalStorage", {"storage_path": "/d"}]},
        "MAIL_PORT": 587,
    });
    let response = Client::new()
        .post(format!("{}/api/v1/config/download", tool.base))
        .basic_auth("quayconfig", Some(PASSWORD))
        .json(&json!({
            "config.yaml": config,
            "certs": {
                "ssl.cert": base64(b"CERT"),
                "ssl.key": base64(b"KEY"),
                "extra_ca_certs/corp.crt": base64(b"CA"),
            },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.contains("quay-config.tar.gz"), "{disposition}");
    let bytes = response.bytes().await.unwrap();

    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        entries.push((name, kind, mode, contents));
    }
    let names: Vec<&str> = entries.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "extra_ca_certs/",
            "config.yaml",
            "extra_ca_certs/corp.crt",
            "ssl.cert",
            "ssl.key"
        ]
    );
    assert!(entries[0].1.is_dir());
    let yaml = String::from_utf8(entries[1].3.clone()).unwrap();
    let parsed: Value = serde_saphyr_value(&yaml);
    assert_eq!(parsed, config, "{yaml}");
    assert_eq!(entries[2].3, b"CA");
    assert_eq!(entries[3].3, b"CERT");
    assert_eq!(
        (entries[4].2, entries[4].3.as_slice()),
        (0o600, &b"KEY"[..])
    );
    assert_eq!(entries[3].2, 0o644);

    // The archive is a config bundle `wharf validate-config` can read.
    let unpacked = tempfile::tempdir().unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]))
        .unpack(unpacked.path())
        .unwrap();
    let bundle = configtool::Bundle::load(unpacked.path()).unwrap();
    assert_eq!(Value::Object(bundle.config), config);
    assert_eq!(bundle.certs["ssl.key"], b"KEY");
}

/// Parses YAML the way the config tool reads `config.yaml`.
fn serde_saphyr_value(yaml: &str) -> Value {
    let bundle = configtool::Bundle::from_yaml(yaml, Default::default()).unwrap();
    Value::Object(bundle.config)
}

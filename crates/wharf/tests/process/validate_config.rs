//! `wharf validate-config`: the JSON it prints and its exit codes (0 valid, 1 problems,
//! 2 no readable config.yaml), offline and online.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn validate(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("validate-config")
        .args(["--config-dir", dir.to_str().unwrap()])
        .args(extra)
        .env("WHARF_LOG", "warn")
        .env_remove("WHARF_CONFIG_DIR")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A config that passes offline and online on this machine: SQLite and local storage in
/// `dir`, the local Redis.
fn valid_config(dir: &Path) -> String {
    format!(
        "SERVER_HOSTNAME: localhost:8080\n\
         DB_URI: sqlite:///{db}\n\
         DATABASE_SECRET_KEY: a-long-random-string\n\
         DISTRIBUTED_STORAGE_CONFIG:\n  default: [LocalStorage, {{storage_path: {storage}}}]\n\
         DISTRIBUTED_STORAGE_PREFERENCE: [default]\n\
         BUILDLOGS_REDIS: {{host: 127.0.0.1, port: 6379}}\n\
         USER_EVENTS_REDIS: {{host: 127.0.0.1, port: 6379}}\n\
         FEATURE_ANONYMOUS_ACCESS: yes\n",
        db = dir.join("wharf.db").display(),
        storage = dir.join("storage").display(),
    )
}

#[test]
fn a_missing_config_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml") && stderr.contains("does not exist"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("config.yaml"),
        "SERVER_HOSTNAME: [unclosed\n",
    )
    .unwrap();
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not valid YAML"), "{stderr}");
}

#[test]
fn an_empty_config_lists_the_required_fields_and_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "").unwrap();
    let out = validate(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let printed = stdout_json(&out);
    let empty = configtool::Bundle::new(Default::default(), Default::default());
    let expected = serde_json::to_value(configtool::validate_offline(&empty)).unwrap();
    assert_eq!(printed, expected);
    let first = &printed[0];
    assert_eq!(first["FieldGroup"], "Database");
    assert_eq!(first["Tags"], serde_json::json!(["DATABASE_SECRET_KEY"]));
    assert_eq!(first["Message"], "DATABASE_SECRET_KEY is required");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\n  {"),
        "pretty-printed"
    );
}

#[test]
fn a_valid_config_is_exit_0_offline_and_online() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), valid_config(dir.path())).unwrap();
    for mode in ["offline", "online"] {
        let out = validate(dir.path(), &["--mode", mode]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout_json(&out), serde_json::json!([]));
    }
    assert!(!dir.path().join("wharf.db").exists(), "nothing is created");
}

#[test]
fn online_mode_reports_what_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = valid_config(dir.path()).replace(
        &format!("sqlite:///{}", dir.path().join("wharf.db").display()),
        &format!("postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"),
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    // Offline, the URI is fine.
    assert_eq!(validate(dir.path(), &[]).status.code(), Some(0));
    let out = validate(dir.path(), &["--mode", "online"]);
    assert_eq!(out.status.code(), Some(1));
    let printed = stdout_json(&out);
    assert_eq!(printed.as_array().unwrap().len(), 1, "{printed}");
    assert_eq!(printed[0]["FieldGroup"], "Database");
    let message = printed[0]["Message"].as_str().unwrap();
    assert!(
        message.starts_with("Could not connect to database. Error: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

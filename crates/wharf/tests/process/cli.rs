//! The command line: `migrate`, and start-up failures that must be clear and non-zero.

use std::process::Command;

fn wharf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn migrate_applies_once_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let first = wharf(&["migrate", "--data-dir", data]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "applied 1 migration(s): [1]"
    );
    let again = wharf(&["migrate", "--data-dir", data]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "applied 0 migration(s): []"
    );
    assert!(dir.path().join("data/wharf.db").exists());
}

#[test]
fn bad_configuration_stops_start_up_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "FEATURE_LIBRARY_SUPPORT: [1, 2]\n",
    )
    .unwrap();
    let out = wharf(&[
        "serve",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FEATURE_LIBRARY_SUPPORT"), "{stderr}");

    std::fs::write(dir.path().join("config.yaml"), "DB_URI: mysql://db/quay\n").unwrap();
    let out = wharf(&[
        "serve",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported DB_URI"));
}

#[test]
fn a_taken_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = wharf(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

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
        "applied 2 migration(s): [1, 2]"
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

fn wharf_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn admin_create_user_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A server runs on the same database meanwhile.
    let server = super::Wharf::start(dir.path()).await;
    let upload = format!("{}/v2/acme/app/blobs/uploads/", server.base);
    let r = reqwest::Client::new().post(&upload).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let args = [
        "admin",
        "create-user",
        "alice",
        "--email",
        "alice@example.com",
        "--superuser",
        "--data-dir",
        data,
    ];
    let out = wharf_with_stdin(&args, "correct horse battery\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "created user alice (superuser)"
    );

    let db = db::Db::connect(&format!("sqlite:///{data}/wharf.db"))
        .await
        .unwrap();
    let alice = db.find_account("alice").await.unwrap().unwrap();
    assert!(alice.superuser);
    assert!(auth::password::verify("correct horse battery", &alice.password_hash.unwrap()).await);

    let again = wharf_with_stdin(&args, "another password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already taken"));
    let weak = wharf_with_stdin(
        &[
            "admin",
            "create-user",
            "bob",
            "--email",
            "bob@example.com",
            "--data-dir",
            data,
        ],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8 characters"));
    let r = reqwest::Client::new().post(&upload).send().await.unwrap();
    assert_eq!(r.status(), 202, "the server kept working");
}

#[test]
fn unknown_workers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = wharf(&[
        "worker",
        "nosuchworker",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown worker") && stderr.contains("blobuploadcleanupworker"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_worker_process_cleans_abandoned_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.yaml"),
        format!(
            "DB_URI: sqlite:///{db}\nBLOBUPLOAD_DELETION_DATE_THRESHOLD: 0\n\
             DISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {storage}\n",
            db = dir.path().join("wharf.db").display(),
            storage = dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let server = super::Wharf::start_with(&[
        "--config-dir".as_ref(),
        config.as_os_str(),
        "--no-workers".as_ref(),
    ])
    .await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v2/acme/app/blobs/uploads/", server.base))
        .send()
        .await
        .unwrap();
    let location = format!(
        "{}{}",
        server.base,
        r.headers()["location"].to_str().unwrap()
    );
    assert_eq!(client.get(&location).send().await.unwrap().status(), 204);

    let mut worker = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["worker", "blobuploadcleanupworker", "--config-dir"])
        .arg(&config)
        .env("WHARF_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut gone = false;
    while std::time::Instant::now() < deadline {
        if client.get(&location).send().await.unwrap().status() == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // SIGTERM: the worker process stops cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let status = worker.wait().unwrap();
    assert!(gone, "the worker process deleted the abandoned session");
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status}"
    );
}

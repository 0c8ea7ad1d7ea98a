//! The command line: `migrate`, `admin create-user`, `worker`, and start-up failures that must
//! be clear and non-zero.

use std::process::Command;

use super::{SECRET_KEY, User, client, create_user, token_response, with_query};

fn wharf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_LOG", "warn")
        .output()
        .unwrap()
}

/// The numbers of the migrations the db crate ships (`NNNN_name.sql`), in order.
fn shipped_migrations() -> Vec<u32> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../db/src/migrations");
    let mut numbers: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let (number, _) = name.strip_suffix(".sql")?.split_once('_')?;
            number.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

#[test]
fn migrate_applies_once_then_nothing() {
    let migrations = shipped_migrations();
    assert!(migrations.len() >= 3, "migrations found: {migrations:?}");
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
        format!("applied {} migration(s): {migrations:?}", migrations.len())
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

    std::fs::write(
        dir.path().join("config.yaml"),
        format!("DB_URI: mysql://db/quay\nDATABASE_SECRET_KEY: {SECRET_KEY}\n"),
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
    assert!(stderr.contains("unsupported DB_URI"), "{stderr}");

    // A Quay configuration must bring the key that encrypts stored secrets.
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "DB_URI: sqlite:///{}\n",
            dir.path().join("wharf.db").display()
        ),
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
    assert!(stderr.contains("DATABASE_SECRET_KEY"), "{stderr}");
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
    let alice = User {
        name: "alice".to_string(),
        password: "correct horse battery".to_string(),
    };
    let scope = [
        ("service".to_string(), server.host().to_string()),
        (
            "scope".to_string(),
            "repository:alice/app:pull,push".to_string(),
        ),
    ];
    let ask = |user: &User| {
        client()
            .get(with_query(&format!("{}/v2/auth", server.base), &scope))
            .basic_auth(&user.name, Some(&user.password))
            .send()
    };
    let r = ask(&alice).await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "no token for a user that does not exist yet"
    );

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
    let created = db.find_account("alice").await.unwrap().unwrap();
    assert!(created.superuser);
    assert!(auth::password::verify("correct horse battery", &created.password_hash.unwrap()).await);

    // The running server knows the new user at once: she signs in and pushes.
    let token = token_response(&server.base, Some(&alice), &scope).await;
    let upload = format!("{}/v2/alice/app/blobs/uploads/", server.base);
    let r = client()
        .post(&upload)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let wrong = User {
        name: "alice".to_string(),
        password: "not her password".to_string(),
    };
    assert_eq!(ask(&wrong).await.unwrap().status(), 401, "a wrong password");

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
    assert!(db.find_account("bob").await.unwrap().is_none());
    // The refused attempts changed nothing: alice's password still works.
    let token = token_response(&server.base, Some(&alice), &scope).await;
    let r = client()
        .post(&upload)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
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
             DATABASE_SECRET_KEY: {SECRET_KEY}\n\
             DISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {storage}\n",
            db = dir.path().join("wharf.db").display(),
            storage = dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let user = create_user(&["--config-dir".as_ref(), config.as_os_str()], "acme");
    let server = super::Wharf::start_with(&[
        "--config-dir".as_ref(),
        config.as_os_str(),
        "--no-workers".as_ref(),
    ])
    .await;
    let token = server.token(&user, &["app"]).await;
    let client = client();
    let r = client
        .post(format!("{}/v2/acme/app/blobs/uploads/", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = format!(
        "{}{}",
        server.base,
        r.headers()["location"].to_str().unwrap()
    );
    let status = |location: String| {
        let request = client.get(location).bearer_auth(&token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(location.clone()).await, 204);

    let mut worker = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["worker", "blobuploadcleanupworker", "--config-dir"])
        .arg(&config)
        .env("WHARF_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut gone = false;
    while std::time::Instant::now() < deadline {
        if status(location.clone()).await == 404 {
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

//! Object-store servers for tests (feature `testing`): `moto_server` (an in-memory S3) and
//! Azurite (an in-memory Azure Blob Storage), one launcher for every crate's tests. Each
//! server listens on a loopback port it picked itself (port 0, read back from its log, so no
//! other process can take the port in between) and is killed when dropped. A missing server
//! fails the test, never skips it.
//!
//! The TLS fixtures (a test CA and a certificate for 127.0.0.1 it signed) live in this crate's
//! `tests/it/tls`; [`TEST_CA_PEM`] and [`tls_fixture`] reach them from any crate.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::StorageDriverConfig;
use data_encoding::BASE64;

const SETUP_HINT: &str = "run scripts/e2e-setup.sh to install it";

/// Azurite's fixed development account and its well-known key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The test CA (PEM) that signed the certificate [`TestServer::moto_tls`] serves: give it to
/// a driver as an extra CA (`OpenOptions::extra_ca_pems`). Test-only, valid until 2126.
pub const TEST_CA_PEM: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls/ca.pem"));

/// A file of the TLS fixtures: `ca.pem`, `server.pem` (for IP 127.0.0.1) or `server.key`.
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/tls")
        .join(name)
}

/// The key prefix of the S3 locations made here, Quay's usual `storage_path`.
pub const S3_STORAGE_PATH: &str = "/datastorage/registry";

/// Quay's `S3Storage` location for `bucket` on the S3 server at `endpoint` (moto, which takes
/// any keys): static keys, region `us-east-1`, keys under [`S3_STORAGE_PATH`]. The same value
/// `StorageDriverConfig::from_quay` makes of the equivalent `config.yaml` entry.
pub fn s3_driver(endpoint: &str, bucket: &str) -> StorageDriverConfig {
    StorageDriverConfig::S3 {
        storage_path: S3_STORAGE_PATH.to_owned(),
        s3_bucket: bucket.to_owned(),
        s3_access_key: Some("testing".to_owned()),
        s3_secret_key: Some("testing".into()),
        host: None,
        port: None,
        endpoint_url: Some(endpoint.to_owned()),
        s3_region: Some("us-east-1".to_owned()),
    }
}

/// A running object-store server of the test's own, killed when dropped.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _slot: Slot,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Servers running at once in this test binary, at most. Each test has its own server; the
/// limit keeps a parallel run from starting dozens of Python and Node processes together.
const MAX_SERVERS: usize = 6;
static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// A place among the [`MAX_SERVERS`], given back on drop.
struct Slot;

impl Slot {
    fn take() -> Slot {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= MAX_SERVERS {
            running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        FREED.notify_one();
    }
}

impl TestServer {
    /// Starts `moto_server` from `$WHARF_MOTO_SERVER`, else `$WHARF_E2E_VENV/bin` (default
    /// venv `~/.cache/wharf/venv`), else `PATH`.
    pub fn moto() -> TestServer {
        start(
            moto_program(),
            &["-H", "127.0.0.1", "-p", "0"],
            "Running on ",
        )
    }

    /// `moto_server` over HTTPS with `tls/server.pem`, a certificate for 127.0.0.1 issued by
    /// the test CA [`TEST_CA_PEM`].
    pub fn moto_tls() -> TestServer {
        let cert = tls_fixture("server.pem");
        let key = tls_fixture("server.key");
        let args = [
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "-s",
            "-c",
            cert.to_str().expect("the fixture path is UTF-8"),
            "-k",
            key.to_str().expect("the fixture path is UTF-8"),
        ];
        start(moto_program(), &args, "Running on ")
    }

    /// Starts `azurite-blob` from `$WHARF_AZURITE`, else `~/.cache/wharf/azurite` (an npm
    /// prefix), else `PATH`.
    pub fn azurite() -> TestServer {
        let prefix = home().map(|h| h.join(".cache/wharf/azurite/node_modules/.bin"));
        let program = find("azurite-blob", "WHARF_AZURITE", prefix);
        let args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ];
        start(program, &args, "successfully listens on ")
    }

    /// Creates an S3 bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        // The test CA is for the driver to trust; this set-up request need not check it.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("an HTTP client");
        let response = client
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        assert!(
            response.status().is_success(),
            "bucket {bucket}: {}",
            response.status()
        );
    }

    /// Creates `bucket` on this moto server and returns its `S3Storage` location
    /// ([`s3_driver`]), ready for `storage::open`.
    pub async fn s3_location(&self, bucket: &str) -> StorageDriverConfig {
        self.create_bucket(bucket).await;
        s3_driver(&self.endpoint, bucket)
    }

    /// Creates an Azure container, signed with the account's shared key.
    pub async fn create_container(&self, container: &str) {
        let date = http_date(SystemTime::now());
        let version = "2021-08-06";
        // Verb, eleven empty standard headers, the x-ms headers, the resource.
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &BASE64
                .decode(AZURITE_KEY.as_bytes())
                .expect("the well-known key is base64"),
        );
        let signature = BASE64.encode(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let response = reqwest::Client::new()
            .put(format!(
                "{}/{AZURITE_ACCOUNT}/{container}?restype=container",
                self.endpoint
            ))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("content-length", "0")
            .header(
                "authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating container {container}: {e}"));
        let status = response.status();
        assert!(
            status.is_success(),
            "container {container}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
}

fn moto_program() -> PathBuf {
    let venv = std::env::var_os("WHARF_E2E_VENV")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".cache/wharf/venv")));
    find(
        "moto_server",
        "WHARF_MOTO_SERVER",
        venv.map(|v| v.join("bin")),
    )
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The program named by `env`, else `name` in `dir`, else `name` on `PATH`.
fn find(name: &str, env: &str, dir: Option<PathBuf>) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dir.into_iter()
        .chain(path_dirs)
        .map(|d| d.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found (${env}, the default location, PATH): {SETUP_HINT}")
        })
}

/// Starts `program` and waits until a line of its output contains `marker` followed by the
/// URL it listens on.
fn start(program: PathBuf, args: &[&str], marker: &'static str) -> TestServer {
    let slot = Slot::take();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e} ({SETUP_HINT})", program.display()));
    let (tx, rx) = mpsc::channel();
    // Servers log every request; the threads keep reading so they never block on a full pipe.
    let outputs: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout is piped")),
        Box::new(child.stderr.take().expect("stderr is piped")),
    ];
    for output in outputs {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                if let Some(at) = line.find(marker) {
                    let url: String = line[at + marker.len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    if url.starts_with("http") {
                        let _ = tx.send(url);
                    }
                }
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(endpoint) => TestServer {
            child,
            endpoint,
            _slot: slot,
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not say where it listens within 60 s",
                program.display()
            );
        }
    }
}

/// An RFC 1123 date (`Tue, 26 Nov 2026 23:24:26 GMT`), as Azure's `x-ms-date` wants.
fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        months[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_rfc_1123() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_735_466);
        assert_eq!(http_date(at), "Thu, 26 Nov 2026 23:24:26 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}

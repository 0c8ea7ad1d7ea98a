//! HTTPS end to end: Wharf started on a config directory holding `ssl.cert` and `ssl.key`
//! (made here with rcgen from a test CA) serves HTTPS next to HTTP; skopeo pushes and pulls
//! with `--dest-cert-dir`/`--src-cert-dir` and podman logs in with `--cert-dir`, each trusting
//! only the test CA (a directory holding `ca.crt`, as containers/image reads it). SIGHUP
//! reloads a replaced certificate, and TLS settings Wharf cannot honour stop it at start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::images::{self, OciLayout};
use crate::podman::podman_on;
use crate::processes::{Wharf, WharfOptions};
use crate::tools::{Stdin, Tool, bounded, path};

const SECRET_KEY: &str = "tls-e2e-test-secret-key-0123456789";

/// A test CA: its certificate in a containers/image certificate directory, and the means to
/// issue server certificates for 127.0.0.1.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// A directory holding `ca.crt`, for `--cert-dir` and friends.
    cert_dir: PathBuf,
}

impl TestCa {
    fn new(work: &Path) -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Wharf e2e CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let cert_dir = work.join("certs.d");
        std::fs::create_dir_all(&cert_dir)?;
        std::fs::write(cert_dir.join("ca.crt"), issuer.pem())?;
        Ok(TestCa { issuer, cert_dir })
    }

    /// Writes a certificate for 127.0.0.1 named `cn` and its key into `config`, replacing
    /// each file by a rename. Returns the certificate (DER).
    fn install(&self, config: &Path, cn: &str) -> anyhow::Result<Vec<u8>> {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        for (name, pem) in [("ssl.cert", cert.pem()), ("ssl.key", key.serialize_pem())] {
            let temp = config.join(format!("{name}.new"));
            std::fs::write(&temp, pem)?;
            std::fs::rename(&temp, config.join(name))?;
        }
        Ok(cert.der().to_vec())
    }
}

/// A config directory: SQLite and local storage under `work`, token realms in https.
fn config_dir(work: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    let dir = work.join("config");
    std::fs::create_dir_all(&dir)?;
    let yaml = format!(
        "DB_URI: sqlite:///{db}\nDATABASE_SECRET_KEY: {SECRET_KEY}\n\
         PREFERRED_URL_SCHEME: https\n\
         DISTRIBUTED_STORAGE_CONFIG:\n  local:\n    - LocalStorage\n    - storage_path: {storage}\n\
         DISTRIBUTED_STORAGE_PREFERENCE: [local]\n{extra}",
        db = work.join("wharf.db").display(),
        storage = work.join("storage").display(),
    );
    std::fs::write(dir.join("config.yaml"), yaml)?;
    Ok(dir)
}

async fn start_https(work: &Path, config: PathBuf) -> anyhow::Result<Wharf> {
    Wharf::start_with(
        work,
        WharfOptions {
            config_dir: Some(config),
            https: true,
            ..WharfOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn skopeo_pushes_and_pulls_over_https() -> anyhow::Result<()> {
    bounded(skopeo_over_https()).await
}

async fn skopeo_over_https() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let source = images::two_layer_image(work, "source", "v1").await?;
    let ca = TestCa::new(work)?;
    let config = config_dir(work, "")?;
    ca.install(&config, "wharf")?;
    let wharf = start_https(work, config).await?;
    let tls_host = wharf.tls_host.clone().context("no HTTPS listener")?;
    let alice = wharf.create_user("alice").await?;
    let creds = alice.creds();
    let certs = path(&ca.cert_dir);
    let image = format!("docker://{tls_host}/alice/img:v1");

    let src = source.manifest("v1")?;
    let digest_file = work.join("pushed.digest");
    skopeo
        .run([
            "copy",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            &creds,
            "--digestfile",
            path(&digest_file),
            &source.reference("v1"),
            &image,
        ])
        .await?;
    assert_eq!(std::fs::read_to_string(&digest_file)?.trim(), src.digest);

    let out = OciLayout {
        dir: work.join("pulled"),
    };
    skopeo
        .run([
            "copy",
            "--src-cert-dir",
            certs,
            "--src-creds",
            &creds,
            &image,
            &out.reference("v1"),
        ])
        .await?;
    let back = out.manifest("v1")?;
    assert_eq!(back.digest, src.digest, "manifest pulled over HTTPS");
    for digest in src.blob_digests() {
        assert_eq!(out.blob(&digest)?, source.blob(&digest)?, "blob {digest}");
    }

    // Without the CA, verification fails: the connection really is TLS with our certificate.
    let refused = skopeo
        .run_failing(["inspect", "--creds", &creds, &image], Stdin::Null)
        .await?;
    ensure!(
        refused.contains("certificate") || refused.contains("x509"),
        "skopeo without the CA said:\n{refused}"
    );
    wharf.assert_clean_log()
}

#[tokio::test]
async fn podman_logs_in_over_https() -> anyhow::Result<()> {
    bounded(podman_login()).await
}

async fn podman_login() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    let ca = TestCa::new(work)?;
    let config = config_dir(work, "")?;
    ca.install(&config, "wharf")?;
    let wharf = start_https(work, config).await?;
    let tls_host = wharf.tls_host.clone().context("no HTTPS listener")?;
    let alice = wharf.create_user("alice").await?;
    let podman = podman_on(&work.join("podman"))?;
    let out = podman
        .run_with_stdin(
            [
                "login",
                "--cert-dir",
                path(&ca.cert_dir),
                "--username",
                &alice.name,
                "--password-stdin",
                &tls_host,
            ],
            Stdin::Bytes(alice.password.as_bytes()),
        )
        .await?;
    ensure!(
        out.stdout.contains("Login Succeeded"),
        "podman login said:\n{}",
        out.stdout
    );
    // A wrong password is refused over the same TLS connection set-up.
    let refused = podman
        .run_failing(
            [
                "login",
                "--cert-dir",
                path(&ca.cert_dir),
                "--username",
                &alice.name,
                "--password-stdin",
                &tls_host,
            ],
            Stdin::Bytes(b"wrong-password"),
        )
        .await?;
    ensure!(
        !refused.contains("certificate") && !refused.contains("x509"),
        "podman failed on TLS rather than on the password:\n{refused}"
    );
    wharf.assert_clean_log()
}

/// The DER of the certificate a fresh HTTPS connection to `host` is given.
async fn served_certificate(ca: &TestCa, host: &str) -> anyhow::Result<Vec<u8>> {
    let root = reqwest::Certificate::from_pem(&std::fs::read(ca.cert_dir.join("ca.crt"))?)?;
    // HTTP/1: at the test's end Wharf's graceful shutdown closes an idle HTTP/1 connection at
    // once, while HTTP/2 waits for the client to answer its GOAWAY ping, and this client's
    // runtime is then blocked in the handle's drop.
    let client = reqwest::Client::builder()
        .tls_certs_only([root])
        .tls_info(true)
        .http1_only()
        .build()?;
    let r = client.get(format!("https://{host}/v2/")).send().await?;
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .context("no TLS info")?;
    Ok(info.peer_certificate().context("no certificate")?.to_vec())
}

#[tokio::test]
async fn sighup_reloads_a_replaced_certificate() -> anyhow::Result<()> {
    bounded(sighup_reload()).await
}

async fn sighup_reload() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    let ca = TestCa::new(work)?;
    let config = config_dir(work, "")?;
    let first = ca.install(&config, "first")?;
    let wharf = start_https(work, config.clone()).await?;
    let tls_host = wharf.tls_host.clone().context("no HTTPS listener")?;
    assert_eq!(served_certificate(&ca, &tls_host).await?, first);

    let second = ca.install(&config, "second")?;
    Tool::new("kill", "procps")?
        .run(["-HUP", &wharf.pid().to_string()])
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_certificate(&ca, &tls_host).await? != second {
        ensure!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = wharf.log();
    ensure!(
        log.lines()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("SIGHUP")),
        "no reload on SIGHUP in the log:\n{log}"
    );
    // The server kept running through the signal.
    assert_eq!(served_certificate(&ca, &tls_host).await?, second);
    wharf.assert_clean_log()
}

#[tokio::test]
async fn tls_settings_wharf_cannot_honour_stop_the_start() -> anyhow::Result<()> {
    bounded(refused_settings()).await
}

async fn refused_settings() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    let ca = TestCa::new(work)?;

    let config = config_dir(work, "SSL_PROTOCOLS: [TLSv1.1, TLSv1.2]\n")?;
    ca.install(&config, "wharf")?;
    let e = match start_https(work, config.clone()).await {
        Ok(_) => anyhow::bail!("wharf started with SSL_PROTOCOLS: [TLSv1.1]"),
        Err(e) => format!("{e:#}"),
    };
    ensure!(
        e.contains("SSL_PROTOCOLS names TLSv1.1, which Wharf (rustls) cannot offer"),
        "{e}"
    );

    // --listen-tls without a certificate.
    let bare = work.join("bare");
    std::fs::create_dir_all(&bare)?;
    let config = config_dir(&bare, "")?;
    let e = match start_https(&bare, config).await {
        Ok(_) => anyhow::bail!("wharf started with --listen-tls but no certificate"),
        Err(e) => format!("{e:#}"),
    };
    ensure!(e.contains("needs a certificate"), "{e}");
    Ok(())
}

//! HTTPS: a test CA and server certificates for 127.0.0.1 made with rcgen, a real server on
//! an ephemeral port, clients that trust only the test CA. TLS does not touch the database,
//! so these run on SQLite only.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::Config;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use reqwest::StatusCode;
use server::tls::{self, Tls};

use crate::harness::{TESTER_PASSWORD, TestApp};

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Wharf test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate (PEM), what clients trust.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost named `cn`, with its key (PEM).
    pub fn server_pair(&self, cn: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `ssl.cert` and `ssl.key` into `dir`, each through a temporary file and a rename, as
/// a careful operator (or a secret mount) replaces them.
pub fn install_pair(dir: &Path, (cert, key): &(String, String)) {
    for (name, pem) in [(tls::CERT_FILE, cert), (tls::KEY_FILE, key)] {
        let temp = dir.join(format!("{name}.new"));
        std::fs::write(&temp, pem).unwrap();
        std::fs::rename(&temp, dir.join(name)).unwrap();
    }
}

/// A client trusting only `ca`, reporting the TLS details of each response.
fn client(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .tls_info(true)
        .build()
        .unwrap()
}

/// An HTTPS server over `app`'s database, stopped when the sender drops.
async fn serve_https(app: &TestApp, tls: Tls) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = server::App::new(app.sibling().await, app.auth.clone(), Default::default());
    tokio::spawn(served.serve_tls(listener, tls, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn load(dir: &Path, config: &Config) -> Result<Tls, server::ServerError> {
    Tls::load(&dir.join(tls::CERT_FILE), &dir.join(tls::KEY_FILE), config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_v2_over_http2_to_clients_of_the_ca() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    install_pair(dir.path(), &ca.server_pair("wharf"));
    let (addr, _stop) = serve_https(&app, load(dir.path(), &Config::default()).unwrap()).await;
    let client = client(&ca);

    let r = client
        .get(format!("https://{addr}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a token is needed");
    let token: serde_json::Value = client
        .get(format!("https://{addr}/v2/auth?service={addr}"))
        .basic_auth("tester", Some(TESTER_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .get(format!("https://{addr}/v2/"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN chose HTTP/2");
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    assert_eq!(info.version(), Some(reqwest::tls::Version::TLS_1_3));

    // A client that does not trust the test CA gets no answer at all.
    let stranger = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(TestCa::new().pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("https://{addr}/v2/"))
            .send()
            .await
            .is_err()
    );
}

/// Handshakes with rustls offering everything it can, and reports what the server chose.
async fn negotiate(
    addr: SocketAddr,
    ca: &TestCa,
) -> (rustls::ProtocolVersion, rustls::CipherSuite) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(rustls::ALL_VERSIONS)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, conn) = tls.get_ref();
    (
        conn.protocol_version().unwrap(),
        conn.negotiated_cipher_suite().unwrap().suite(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_protocols_and_ciphers_decide_the_handshake() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    install_pair(dir.path(), &ca.server_pair("wharf"));

    let (addr, _stop) = serve_https(&app, load(dir.path(), &Config::default()).unwrap()).await;
    assert_eq!(
        negotiate(addr, &ca).await.0,
        rustls::ProtocolVersion::TLSv1_3
    );

    let config = Config {
        ssl_protocols: Some(vec!["TLSv1.2".into()]),
        ssl_ciphers: Some(vec![
            "ECDHE-ECDSA-AES128-GCM-SHA256".into(),
            "!aNULL".into(),
            "DHE-RSA-AES128-GCM-SHA256".into(),
        ]),
        ..Config::default()
    };
    let (addr, _stop12) = serve_https(&app, load(dir.path(), &config).unwrap()).await;
    assert_eq!(
        negotiate(addr, &ca).await,
        (
            rustls::ProtocolVersion::TLSv1_2,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        )
    );
    // reqwest (rustls too) sees the same.
    let r = client(&ca)
        .get(format!("https://{addr}/v2/"))
        .send()
        .await
        .unwrap();
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    assert_eq!(info.version(), Some(reqwest::tls::Version::TLS_1_2));

    // An RSA-only suite list cannot use the test certificate's ECDSA key: refused at start.
    let config = Config {
        ssl_protocols: Some(vec!["TLSv1.2".into()]),
        ssl_ciphers: Some(vec!["ECDHE-RSA-AES128-GCM-SHA256".into()]),
        ..Config::default()
    };
    let e = load(dir.path(), &config).unwrap_err().to_string();
    assert!(e.contains("ECDSA key"), "{e}");
}

#[tokio::test]
async fn a_protocol_rustls_cannot_offer_fails_the_start() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    install_pair(dir.path(), &ca.server_pair("wharf"));
    std::fs::write(
        dir.path().join("config.yaml"),
        "DATABASE_SECRET_KEY: k\nSSL_PROTOCOLS: [TLSv1.1, TLSv1.2]\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let resolved = server::resolve(&server::Paths {
        config_dir: Some(dir.path().to_path_buf()),
        data_dir: data.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let e = tls::plan(Some(dir.path()), &resolved.config, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SSL_PROTOCOLS names TLSv1.1, which Wharf (rustls) cannot offer"),
        "{e}"
    );

    let bad_cipher = Config {
        ssl_ciphers: Some(vec!["ECDHE-RSA-AES128-GCM-SHA255".into()]),
        ..Config::default()
    };
    let e = tls::plan(Some(dir.path()), &bad_cipher, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SSL_CIPHERS names \"ECDHE-RSA-AES128-GCM-SHA255\""),
        "{e}"
    );
}

#[tokio::test]
async fn when_https_is_served() {
    let ca = TestCa::new();
    let listen: SocketAddr = "127.0.0.1:18443".parse().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let config = Config::default();

    // No config directory or no certificates: HTTP only, and --listen-tls is a mistake.
    assert!(tls::plan(None, &config, None).unwrap().is_none());
    assert!(
        tls::plan(Some(empty.path()), &config, None)
            .unwrap()
            .is_none()
    );
    let e = tls::plan(Some(empty.path()), &config, Some(listen))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--listen-tls 127.0.0.1:18443 needs a certificate"),
        "{e}"
    );

    // Half a pair is a mistake.
    let half = tempfile::tempdir().unwrap();
    std::fs::write(half.path().join(tls::CERT_FILE), ca.pem()).unwrap();
    let e = tls::plan(Some(half.path()), &config, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ssl.key does not"), "{e}");

    // A pair: HTTPS on Quay's port (on loopback), or where asked.
    let full = tempfile::tempdir().unwrap();
    install_pair(full.path(), &ca.server_pair("wharf"));
    let (addr, _) = tls::plan(Some(full.path()), &config, None)
        .unwrap()
        .unwrap();
    assert_eq!(addr, tls::DEFAULT_LISTEN);
    assert_eq!(addr.port(), 8443);
    let (addr, _) = tls::plan(Some(full.path()), &config, Some(listen))
        .unwrap()
        .unwrap();
    assert_eq!(addr, listen);

    // TLS ending at a load balancer: no HTTPS even with certificates.
    let external = Config {
        external_tls_termination: true,
        preferred_url_scheme: "https".into(),
        ..Config::default()
    };
    assert!(
        tls::plan(Some(full.path()), &external, None)
            .unwrap()
            .is_none()
    );
    assert!(tls::plan(Some(full.path()), &external, Some(listen)).is_err());

    // A key that is not the certificate's.
    let mismatched = tempfile::tempdir().unwrap();
    let (cert, _) = ca.server_pair("one");
    let (_, key) = ca.server_pair("two");
    install_pair(mismatched.path(), &(cert, key));
    let e = tls::plan(Some(mismatched.path()), &config, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not make a usable pair"), "{e}");
}

/// The DER of the server certificate a fresh connection to `addr` is given.
async fn served_certificate(ca: &TestCa, addr: SocketAddr) -> Vec<u8> {
    let r = client(ca)
        .get(format!("https://{addr}/v2/"))
        .send()
        .await
        .unwrap();
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_without_restart() {
    let app = TestApp::new(db::testing::Engine::Sqlite).await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_pair("first");
    install_pair(dir.path(), &first);
    let tls = load(dir.path(), &Config::default())
        .unwrap()
        .with_reload_interval(Duration::from_millis(50));
    let (addr, _stop) = serve_https(&app, tls.clone()).await;
    assert_eq!(served_certificate(&ca, addr).await, der_of(&first.0));

    let second = ca.server_pair("second");
    install_pair(dir.path(), &second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&ca, addr).await != der_of(&second.0) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken pair is refused and the previous one stays in service.
    std::fs::write(dir.path().join(tls::KEY_FILE), "not a key").unwrap();
    let e = tls.reload().unwrap_err().to_string();
    assert!(e.contains("not a PEM private key"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await; // several looks by the watcher
    assert_eq!(served_certificate(&ca, addr).await, der_of(&second.0));
    assert_eq!(tls.current_chain()[0].to_vec(), der_of(&second.0));
}

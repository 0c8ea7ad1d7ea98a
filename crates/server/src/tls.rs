//! HTTPS next to HTTP, as Quay's nginx serves 8443 next to 8080: when the config directory
//! holds `ssl.cert` (PEM, the server certificate first, then its chain) and `ssl.key`, `wharf
//! serve` also listens for TLS, unless `EXTERNAL_TLS_TERMINATION: true` says that TLS ends at a
//! load balancer in front.
//!
//! rustls on aws-lc-rs does the TLS; `SSL_PROTOCOLS` and `SSL_CIPHERS` choose what it offers
//! (`ciphers`). ALPN offers HTTP/2 and HTTP/1.1. The certificate pair is reloaded without a
//! restart: a task looks at the files' modification times every few seconds and reloads once a
//! change has settled, and `SIGHUP` reloads at once. A pair that does not load (unreadable,
//! not PEM, key and certificate not matching, a key the configured suites cannot use) is
//! logged as an error and the previous pair stays in service.
//!
//! Handshakes run in their own tasks, so a slow client never holds up the accept loop; the
//! finished connections are handed to the same `axum::serve` as plain HTTP, with the same
//! graceful shutdown.

mod ciphers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use config::Config;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;

use crate::ServerError;

/// Quay's HTTPS port. Like `--listen`, the default address stays on loopback: exposing the
/// registry is the operator's explicit choice.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);
/// The certificate file in the config directory (Quay's name).
pub const CERT_FILE: &str = "ssl.cert";
/// The private key file in the config directory (Quay's name).
pub const KEY_FILE: &str = "ssl.key";

/// How often the certificate files are looked at.
const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the HTTP server to take them.
const ACCEPT_QUEUE: usize = 128;

/// What to serve over TLS: the rustls configuration and the reloadable certificate pair.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ServerConfig>,
    certs: Arc<CertStore>,
    reload_interval: Duration,
}

/// Decides whether `wharf serve` listens for HTTPS, and where: with `ssl.cert` and `ssl.key`
/// in `config_dir` on `listen` (default [`DEFAULT_LISTEN`]); not at all without them or with
/// `EXTERNAL_TLS_TERMINATION: true`, where asking for a TLS address is an error.
pub fn plan(
    config_dir: Option<&Path>,
    config: &Config,
    listen: Option<SocketAddr>,
) -> Result<Option<(SocketAddr, Tls)>, ServerError> {
    let pair = config_dir.map(|dir| (dir.join(CERT_FILE), dir.join(KEY_FILE)));
    let present = pair
        .as_ref()
        .map(|(cert, key)| (cert.exists(), key.exists()));
    if config.external_tls_termination {
        if let Some(addr) = listen {
            return Err(ServerError::Invalid(format!(
                "--listen-tls {addr}: config.yaml sets EXTERNAL_TLS_TERMINATION: true, so TLS \
                 ends at the load balancer and Wharf serves plain HTTP only"
            )));
        }
        if matches!(present, Some((true, _) | (_, true))) {
            tracing::info!(
                "EXTERNAL_TLS_TERMINATION is true: not serving HTTPS although {CERT_FILE}/{KEY_FILE} exist"
            );
        }
        return Ok(None);
    }
    match (pair, present) {
        (Some((cert, key)), Some((true, true))) => {
            let tls = Tls::load(&cert, &key, config)?;
            if config.preferred_url_scheme != "https" && config.server_hostname.is_none() {
                tracing::warn!(
                    "serving HTTPS with PREFERRED_URL_SCHEME {:?} and no SERVER_HOSTNAME: token \
                     realms will send clients to plain HTTP on the address they used; set \
                     PREFERRED_URL_SCHEME: https",
                    config.preferred_url_scheme
                );
            }
            Ok(Some((listen.unwrap_or(DEFAULT_LISTEN), tls)))
        }
        (Some((cert, key)), Some((cert_exists, key_exists))) if cert_exists || key_exists => {
            let (found, missing) = if cert_exists {
                (cert, key)
            } else {
                (key, cert)
            };
            Err(ServerError::Invalid(format!(
                "{} exists but {} does not: HTTPS needs both",
                found.display(),
                missing.display()
            )))
        }
        (dir, _) => match listen {
            Some(addr) => Err(ServerError::Invalid(format!(
                "--listen-tls {addr} needs a certificate: put {CERT_FILE} and {KEY_FILE} (PEM) \
                 into the config directory{}",
                dir.map(|(cert, _)| {
                    cert.parent()
                        .map(|d| format!(" ({})", d.display()))
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| " (--config-dir)".to_string())
            ))),
            None => Ok(None),
        },
    }
}

impl Tls {
    /// Loads `cert` and `key` and applies `SSL_PROTOCOLS` and `SSL_CIPHERS` from `config`.
    pub fn load(cert: &Path, key: &Path, config: &Config) -> Result<Tls, ServerError> {
        let versions =
            ciphers::protocols(config.ssl_protocols.as_deref()).map_err(ServerError::Invalid)?;
        let selection = ciphers::ciphers(config.ssl_ciphers.as_deref(), &versions)
            .map_err(ServerError::Invalid)?;
        if !selection.skipped.is_empty() {
            tracing::warn!(
                skipped = %selection.skipped.join(", "),
                "SSL_CIPHERS entries that rustls cannot offer are skipped"
            );
        }
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites = selection.suites.clone();
        let provider = Arc::new(provider);
        let offer = Offer {
            suites: selection.suites,
            versions: versions.clone(),
        };
        let initial = load_pair(cert, key, &provider, &offer).map_err(ServerError::Invalid)?;
        let certs = Arc::new(CertStore {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider: provider.clone(),
            offer,
            current: RwLock::new(Arc::new(initial)),
        });
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| ServerError::Invalid(format!("TLS settings: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(server),
            certs,
            reload_interval: RELOAD_INTERVAL,
        })
    }

    /// Looks at the certificate files this often instead of every five seconds.
    pub fn with_reload_interval(mut self, interval: Duration) -> Tls {
        self.reload_interval = interval;
        self
    }

    /// Reloads the certificate pair now. On error the previous pair stays in service.
    pub fn reload(&self) -> Result<(), ServerError> {
        self.certs.reload().map_err(ServerError::Invalid)
    }

    /// The certificate chain served now (DER), server certificate first.
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.certs.current().cert.clone()
    }

    /// Accepts TLS connections on `tcp` until the returned listener is dropped.
    pub(crate) fn listener(&self, tcp: TcpListener) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { rx, local })
    }

    /// Reloads the certificate pair when its files change or on SIGHUP, until `shutdown`.
    pub(crate) fn watch(&self, shutdown: watch::Receiver<bool>) {
        tokio::spawn(watch_files(
            self.certs.clone(),
            self.reload_interval,
            shutdown,
        ));
    }
}

/// The suites and protocol versions on offer, against which a key is checked.
#[derive(Debug)]
struct Offer {
    suites: Vec<SupportedCipherSuite>,
    versions: Vec<&'static SupportedProtocolVersion>,
}

/// The certificate pair in service, swapped whole on reload.
#[derive(Debug)]
struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    offer: Offer,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn reload(&self) -> Result<(), String> {
        let pair = load_pair(&self.cert_path, &self.key_path, &self.provider, &self.offer)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(pair);
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads a PEM certificate chain and key and checks that they belong together and that the
/// offered suites can use the key.
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    offer: &Offer,
) -> Result<CertifiedKey, String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!(
            "{} and {} do not make a usable pair: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    let algorithm = pair.key.algorithm();
    let usable = offer.versions.contains(&&rustls::version::TLS13)
        || offer
            .suites
            .iter()
            .any(|s| s.usable_for_signature_algorithm(algorithm));
    if !usable {
        return Err(format!(
            "{} holds a {algorithm:?} key, which none of the TLSv1.2 cipher suites that \
             SSL_CIPHERS selects can use (offer TLSv1.3 or an ECDHE-{algorithm:?} suite)",
            key_path.display()
        ));
    }
    Ok(pair)
}

/// What identifies a version of the two files: size, modification time, inode.
type Fingerprint = [Option<(u64, SystemTime, u64)>; 2];

fn fingerprint(store: &CertStore) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let of = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| {
            (
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.ino(),
            )
        })
    };
    [of(&store.cert_path), of(&store.key_path)]
}

fn reload_logged(store: &CertStore, why: &str) {
    match store.reload() {
        Ok(()) => {
            tracing::info!(cause = why, cert = %store.cert_path.display(), "TLS certificate reloaded")
        }
        Err(e) => tracing::error!(
            cause = why,
            error = %e,
            "cannot reload the TLS certificate; still serving the previous one"
        ),
    }
}

/// Reloads after the files changed and then stayed unchanged for one more look (so that a
/// certificate written a moment before its key is not tried alone), and on SIGHUP.
async fn watch_files(
    store: Arc<CertStore>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut loaded = fingerprint(&store);
    let mut seen = loaded;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                reload_logged(&store, "SIGHUP");
                loaded = fingerprint(&store);
                seen = loaded;
            }
            _ = ticks.tick() => {
                let now = fingerprint(&store);
                if now != loaded && now == seen {
                    reload_logged(&store, "files changed");
                    // A broken pair is not retried until the files change again.
                    loaded = now;
                }
                seen = now;
            }
        }
    }
}

/// TLS connections whose handshake finished, for `axum::serve`.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and runs each handshake in its own task, until the listener that
/// receives the finished connections is dropped (at shutdown).
async fn accept_loop(
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = tx.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::error!(error = %e, "TLS listener cannot accept");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

//! HostSettings (`SERVER_HOSTNAME`, `PREFERRED_URL_SCHEME`, `EXTERNAL_TLS_TERMINATION`, and
//! the TLS certificate pair), and the extra CA certificates.

use crate::bundle::is_extra_ca;
use crate::check::Group;
use crate::groups::{EXTRA_CA_CERTIFICATES, HOST_SETTINGS};
use crate::{Bundle, ValidationError, certs};

/// The certificate files HTTPS needs, in the config directory.
const SSL_CERT: &str = "ssl.cert";
const SSL_KEY: &str = "ssl.key";
/// The tag of certificate problems, as in Quay.
const CERTIFICATES: &str = "Certificates";

pub(super) fn check(bundle: &Bundle, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(HOST_SETTINGS, &bundle.config, out);
    // Quay reports both for a missing host name: it is required, and "" is no host name.
    let hostname = match g.value("SERVER_HOSTNAME") {
        Some(v) if !v.is_string() => g.string("SERVER_HOSTNAME"),
        _ => {
            let hostname = g.required("SERVER_HOSTNAME").unwrap_or("");
            if g.hostname("SERVER_HOSTNAME", hostname) && !is_fqdn_or_localhost(hostname) {
                g.error_at(
                    "SERVER_HOSTNAME",
                    "SERVER_HOSTNAME must be a fully qualified domain name (containing a dot) \
                     or localhost",
                );
            }
            Some(hostname).filter(|h| !h.is_empty())
        }
    };
    let scheme = g.string("PREFERRED_URL_SCHEME").unwrap_or("http");
    let scheme_ok = g.one_of("PREFERRED_URL_SCHEME", scheme, &["http", "https"]);
    let external_tls = g.flag("EXTERNAL_TLS_TERMINATION", false);
    if !(scheme_ok && scheme == "https" && !external_tls) {
        return;
    }
    // Wharf terminates TLS itself: it needs the pair, matching, for the host name.
    if bundle.certs.is_empty() {
        g.error(
            &[CERTIFICATES],
            "Certificates are required for SSL but are not present",
        );
        return;
    }
    let mut missing = false;
    for name in [SSL_CERT, SSL_KEY] {
        if !bundle.certs.contains_key(name) {
            g.error(
                &[CERTIFICATES],
                format!("Certificate {name} is required for {HOST_SETTINGS}."),
            );
            missing = true;
        }
    }
    let (Some(cert), Some(key), Some(hostname), false) = (
        bundle.certs.get(SSL_CERT),
        bundle.certs.get(SSL_KEY),
        hostname.filter(|h| crate::check::is_hostname(h)),
        missing,
    ) else {
        return;
    };
    if let Err(message) = certs::check_pair(SSL_CERT, cert, SSL_KEY, key, hostname) {
        g.error(&[CERTIFICATES], message);
    }
}

/// Whether a valid host name is fully qualified (has a dot, as an IP address does) or is
/// `localhost`, with or without a port. A bare name like `quay` resolves only inside one
/// network, and registry clients take a first path component without a dot for a Docker Hub
/// namespace.
fn is_fqdn_or_localhost(hostname: &str) -> bool {
    let host = hostname.trim().split(':').next().unwrap_or("");
    host.eq_ignore_ascii_case("localhost") || host.trim_matches('.').contains('.')
}

/// Every certificate in `extra_ca_certs/` must parse: Wharf trusts them for storage, LDAP
/// and other outgoing connections, and refuses to start with one it cannot read.
pub(super) fn check_extra_ca_certs(bundle: &Bundle, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(EXTRA_CA_CERTIFICATES, &bundle.config, out);
    for (name, pem) in bundle.certs.iter().filter(|(name, _)| is_extra_ca(name)) {
        if let Err(e) = certs::parse_certificates(pem) {
            g.error(&[name], format!("{name} could not be loaded: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fully_qualified_names() {
        for ok in [
            "quay.example.com",
            "localhost",
            "localhost:8080",
            "10.0.0.1:80",
        ] {
            assert!(is_fqdn_or_localhost(ok), "{ok}");
        }
        for bad in ["quay", "quay:8080", "quay."] {
            assert!(!is_fqdn_or_localhost(bad), "{bad}");
        }
    }
}

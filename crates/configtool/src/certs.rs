//! Certificates: PEM parsing, whether a key belongs to a certificate, and whether a
//! certificate covers a host name.
//!
//! Names are checked as TLS clients check them (rustls-webpki): against the subject
//! alternative names only, with wildcards, never against the common name, as Go's
//! `VerifyHostname`, which Quay's config tool uses, does too.

use rustls::crypto::aws_lc_rs;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The certificates of a PEM file, in file order; an error when it holds none.
pub(crate) fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".to_owned());
    }
    for cert in &certs {
        webpki::EndEntityCert::try_from(cert).map_err(|e| format!("invalid certificate: {e}"))?;
    }
    Ok(certs)
}

/// Checks a TLS certificate file and its key for serving `hostname` (optionally with a
/// `:port`). The error is the message to show.
pub(crate) fn check_pair(
    cert_name: &str,
    cert_pem: &[u8],
    key_name: &str,
    key_pem: &[u8],
    hostname: &str,
) -> Result<(), String> {
    let chain = parse_certificates(cert_pem)
        .map_err(|e| format!("{cert_name} could not be loaded: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{key_name} could not be loaded: {}", key_error(&e)))?;
    let signing_key = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{key_name} could not be loaded: {e}"))?;
    let leaf = chain[0].clone();
    match CertifiedKey::new(chain, signing_key).keys_match() {
        Ok(()) => {}
        // The key type cannot tell its public key: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(format!(
                "{key_name} does not match the certificate in {cert_name}"
            ));
        }
    }
    check_host(cert_name, &leaf, hostname)
}

/// Checks that `cert` is valid for `hostname` (a `:port` suffix is ignored).
fn check_host(cert_name: &str, cert: &CertificateDer<'_>, hostname: &str) -> Result<(), String> {
    let host = strip_port(hostname.trim());
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("{cert_name} could not be loaded: invalid certificate: {e}"))?;
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host} is not a valid host name for a certificate"))?;
    if parsed
        .verify_is_valid_for_subject_name(&server_name)
        .is_ok()
    {
        return Ok(());
    }
    let names: Vec<&str> = parsed.valid_dns_names().collect();
    Err(if names.is_empty() {
        format!("certificate {cert_name} is not valid for any names, but wanted to match {host}")
    } else {
        format!(
            "certificate {cert_name} is valid for {}, not {host}",
            names.join(", ")
        )
    })
}

/// `host:8443` → `host`; IPv6 literals in brackets lose their brackets.
fn strip_port(hostname: &str) -> &str {
    if let Some(v6) = hostname.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match hostname.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => hostname,
    }
}

fn key_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key found".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("quay.example.com:8443"), "quay.example.com");
        assert_eq!(strip_port("quay.example.com"), "quay.example.com");
        assert_eq!(strip_port("[::1]:8443"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(
            parse_certificates(b"hello").err().as_deref(),
            Some("no PEM certificate found")
        );
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_certificates(bad).is_err());
    }
}

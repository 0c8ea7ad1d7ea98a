//! HTTPS certificates, made by rcgen in each test: the pair must match and cover
//! `SERVER_HOSTNAME`.

use std::collections::BTreeMap;

use configtool::Bundle;
use serde_json::json;

use super::{config_with, offline, p};

/// A self-signed certificate for `names` and its key, as PEM.
fn certificate(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    (
        certified.cert.pem().into_bytes(),
        certified.signing_key.serialize_pem().into_bytes(),
    )
}

/// An https config for `hostname` with the given certificate files.
fn https(hostname: &str, files: &[(&str, &[u8])]) -> Bundle {
    let config = config_with(json!({
        "SERVER_HOSTNAME": hostname,
        "PREFERRED_URL_SCHEME": "https",
    }));
    let certs: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
        .collect();
    Bundle::new(config, certs)
}

#[test]
fn a_matching_certificate_is_accepted() {
    let (cert, key) = certificate(&["quay.example.com", "registry.example.com"]);
    let files: [(&str, &[u8]); 2] = [("ssl.cert", &cert), ("ssl.key", &key)];
    assert_eq!(offline(&https("quay.example.com", &files)), []);
    // The port is not part of the name; other names of the certificate work too.
    assert_eq!(offline(&https("registry.example.com:8443", &files)), []);
}

#[test]
fn wildcards_cover_one_label() {
    let (cert, key) = certificate(&["*.example.com"]);
    let files: [(&str, &[u8]); 2] = [("ssl.cert", &cert), ("ssl.key", &key)];
    assert_eq!(offline(&https("quay.example.com", &files)), []);
    assert_eq!(
        offline(&https("a.quay.example.com", &files)),
        [p(
            "HostSettings",
            &["Certificates"],
            "certificate ssl.cert is valid for *.example.com, not a.quay.example.com"
        )]
    );
}

#[test]
fn a_certificate_for_another_host_is_reported() {
    let (cert, key) = certificate(&["other.example.com"]);
    let files: [(&str, &[u8]); 2] = [("ssl.cert", &cert), ("ssl.key", &key)];
    assert_eq!(
        offline(&https("quay.example.com", &files)),
        [p(
            "HostSettings",
            &["Certificates"],
            "certificate ssl.cert is valid for other.example.com, not quay.example.com"
        )]
    );
}

#[test]
fn a_missing_key_is_reported() {
    let (cert, _) = certificate(&["quay.example.com"]);
    assert_eq!(
        offline(&https("quay.example.com", &[("ssl.cert", &cert)])),
        [p(
            "HostSettings",
            &["Certificates"],
            "Certificate ssl.key is required for HostSettings."
        )]
    );
}

#[test]
fn a_key_of_another_certificate_is_reported() {
    let (cert, _) = certificate(&["quay.example.com"]);
    let (_, other_key) = certificate(&["quay.example.com"]);
    let files: [(&str, &[u8]); 2] = [("ssl.cert", &cert), ("ssl.key", &other_key)];
    assert_eq!(
        offline(&https("quay.example.com", &files)),
        [p(
            "HostSettings",
            &["Certificates"],
            "ssl.key does not match the certificate in ssl.cert"
        )]
    );
}

#[test]
fn files_that_are_not_pem_are_reported() {
    let (cert, key) = certificate(&["quay.example.com"]);
    let files: [(&str, &[u8]); 2] = [("ssl.cert", b"not pem"), ("ssl.key", &key)];
    assert_eq!(
        offline(&https("quay.example.com", &files)),
        [p(
            "HostSettings",
            &["Certificates"],
            "ssl.cert could not be loaded: no PEM certificate found"
        )]
    );
    let files: [(&str, &[u8]); 2] = [("ssl.cert", &cert), ("ssl.key", b"not pem")];
    assert_eq!(
        offline(&https("quay.example.com", &files)),
        [p(
            "HostSettings",
            &["Certificates"],
            "ssl.key could not be loaded: no PEM private key found"
        )]
    );
}

#[test]
fn extra_ca_certificates_and_ldap_crt_parse() {
    let (ca, _) = certificate(&["ca.example.com"]);
    let mut bundle = Bundle::new(
        config_with(json!({
            "AUTHENTICATION_TYPE": "LDAP",
            "LDAP_ADMIN_DN": "cn=admin,dc=example,dc=com",
            "LDAP_ADMIN_PASSWD": "secret",
        })),
        BTreeMap::new(),
    );
    bundle
        .certs
        .insert("extra_ca_certs/corp.crt".into(), ca.clone());
    bundle.certs.insert("ldap.crt".into(), ca);
    assert_eq!(offline(&bundle), []);
}

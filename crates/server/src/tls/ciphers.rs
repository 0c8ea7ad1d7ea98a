//! Quay's `SSL_PROTOCOLS` and `SSL_CIPHERS` (nginx's `ssl_protocols` and OpenSSL's
//! `ssl_ciphers`) mapped onto what rustls offers.
//!
//! rustls speaks TLS 1.2 and 1.3 only, and in TLS 1.2 only ECDHE key exchange with AEAD
//! ciphers: six suites. `SSL_PROTOCOLS` naming an older protocol is therefore an error naming
//! it. `SSL_CIPHERS` entries are read as OpenSSL reads a cipher list, as far as it concerns
//! those six suites:
//!
//! - a suite's OpenSSL name (`ECDHE-RSA-AES128-GCM-SHA256`) or IANA name
//!   (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`) selects it;
//! - an alias expression (`HIGH`, `AESGCM`, `EECDH+AESGCM`, `kEDH+AESGCM`) selects the suites
//!   that carry every alias, possibly none;
//! - `!X` and `-X` remove what `X` selects; `+X` (reordering) and `@STRENGTH`-style directives
//!   change nothing here, because the client's preference decides among offered suites;
//! - real cipher names that rustls cannot offer (`DHE-RSA-AES128-GCM-SHA256`, CBC suites,
//!   `TLS_RSA_WITH_AES_128_CBC_SHA`) are skipped and reported, because Quay's own default list
//!   contains many of them; a name that is no cipher at all is an error.
//!
//! As in OpenSSL, the list governs TLS 1.2 only, unless it names TLS 1.3 suites
//! (`TLS_AES_128_GCM_SHA256`, ...): then TLS 1.3 offers exactly those. A protocol left with no
//! suite is an error.

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;
use rustls::crypto::aws_lc_rs::cipher_suite as cs;

/// A TLS 1.2 suite rustls offers, with its names and the OpenSSL aliases that select it.
struct Suite {
    suite: SupportedCipherSuite,
    openssl: &'static str,
    iana: &'static str,
    aliases: &'static [&'static str],
}

/// Aliases every rustls TLS 1.2 suite carries: ECDHE key exchange, AEAD, TLS 1.2, high strength.
const COMMON: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "TLSV1.2", "ECDHE", "EECDH", "KECDHE", "KEECDH", "ECDH", "AEAD",
    "FIPS",
];

fn tls12_suites() -> [Suite; 6] {
    [
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
            iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            aliases: &["ECDSA", "AECDSA", "AES", "AES256", "AESGCM", "SHA384"],
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
            iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            aliases: &["ECDSA", "AECDSA", "AES", "AES128", "AESGCM", "SHA256"],
        },
        Suite {
            suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
            iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            aliases: &["ECDSA", "AECDSA", "CHACHA20"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            openssl: "ECDHE-RSA-AES256-GCM-SHA384",
            iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            aliases: &["RSA", "ARSA", "AES", "AES256", "AESGCM", "SHA384"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            openssl: "ECDHE-RSA-AES128-GCM-SHA256",
            iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            aliases: &["RSA", "ARSA", "AES", "AES128", "AESGCM", "SHA256"],
        },
        Suite {
            suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            openssl: "ECDHE-RSA-CHACHA20-POLY1305",
            iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            aliases: &["RSA", "ARSA", "CHACHA20"],
        },
    ]
}

/// The TLS 1.3 suites with their names (OpenSSL uses the IANA names; rustls spells them
/// `TLS13_…`).
fn tls13_suites() -> [(SupportedCipherSuite, &'static str, &'static str); 3] {
    [
        (
            cs::TLS13_AES_256_GCM_SHA384,
            "TLS_AES_256_GCM_SHA384",
            "TLS13_AES_256_GCM_SHA384",
        ),
        (
            cs::TLS13_AES_128_GCM_SHA256,
            "TLS_AES_128_GCM_SHA256",
            "TLS13_AES_128_GCM_SHA256",
        ),
        (
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ),
    ]
}

/// OpenSSL alias words (upper-cased) that select only suites rustls does not offer.
const OTHER_ALIASES: &[&str] = &[
    "COMPLEMENTOFDEFAULT",
    "COMPLEMENTOFALL",
    "MEDIUM",
    "LOW",
    "EXPORT",
    "EXP",
    "NULL",
    "ENULL",
    "ANULL",
    "KRSA",
    "KEDH",
    "KDHE",
    "EDH",
    "DHE",
    "DH",
    "KDH",
    "KDHR",
    "KDHD",
    "ADH",
    "AECDH",
    "KECDH",
    "ADSS",
    "DSS",
    "PSK",
    "KPSK",
    "APSK",
    "KECDHEPSK",
    "KDHEPSK",
    "KRSAPSK",
    "SRP",
    "KSRP",
    "ASRP",
    "KRB5",
    "3DES",
    "DES",
    "RC4",
    "RC2",
    "IDEA",
    "SEED",
    "MD5",
    "SHA1",
    "SHA",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "ARIAGCM",
    "AESCCM",
    "AESCCM8",
    "CBC",
    "GOST94",
    "GOST89MAC",
    "SSLV3",
    "TLSV1",
    "TLSV1.0",
    "SUITEB128",
    "SUITEB128ONLY",
    "SUITEB192",
];

/// Words of OpenSSL cipher names (upper-cased), to tell a real cipher rustls lacks from a typo.
const NAME_WORDS: &[&str] = &[
    "ECDHE",
    "ECDH",
    "EDH",
    "DHE",
    "DH",
    "ADH",
    "AECDH",
    "RSA",
    "ECDSA",
    "DSS",
    "PSK",
    "SRP",
    "KRB5",
    "EXP",
    "EXP1024",
    "NULL",
    "AES",
    "AES128",
    "AES256",
    "GCM",
    "CCM",
    "CCM8",
    "CBC",
    "CBC3",
    "DES",
    "3DES",
    "RC4",
    "RC2",
    "IDEA",
    "SEED",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA128",
    "ARIA256",
    "CHACHA20",
    "POLY1305",
    "MD5",
    "SHA",
    "SHA256",
    "SHA384",
    "GOST2001",
    "GOST89",
    "GOST94",
];

/// The protocol versions `SSL_PROTOCOLS` asks for (default: TLS 1.2 and 1.3).
pub(super) fn protocols(
    names: Option<&[String]>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let Some(names) = names else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in names {
        let version = match name.trim().to_ascii_uppercase().as_str() {
            "TLSV1.2" => &rustls::version::TLS12,
            "TLSV1.3" => &rustls::version::TLS13,
            "SSLV2" | "SSLV3" | "TLSV1" | "TLSV1.0" | "TLSV1.1" => {
                return Err(format!(
                    "SSL_PROTOCOLS names {name}, which Wharf (rustls) cannot offer: it speaks \
                     TLSv1.2 and TLSv1.3 only; remove {name} from SSL_PROTOCOLS"
                ));
            }
            _ => {
                return Err(format!(
                    "SSL_PROTOCOLS names {name:?}, which is no TLS protocol version; \
                     use TLSv1.2 and/or TLSv1.3"
                ));
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err("SSL_PROTOCOLS is empty; use TLSv1.2 and/or TLSv1.3".to_string());
    }
    Ok(versions)
}

/// What `SSL_CIPHERS` selects.
#[derive(Debug)]
pub(super) struct Selection {
    /// The suites to offer, for every protocol version.
    pub suites: Vec<SupportedCipherSuite>,
    /// Entries naming ciphers that exist but rustls cannot offer (for one warning).
    pub skipped: Vec<String>,
}

/// The cipher suites `SSL_CIPHERS` selects for `versions` (default: all that rustls offers).
pub(super) fn ciphers(
    entries: Option<&[String]>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Selection, String> {
    let tls12 = tls12_suites();
    let tls13 = tls13_suites();
    let Some(entries) = entries else {
        let suites = tls13
            .iter()
            .map(|(s, _, _)| *s)
            .chain(tls12.iter().map(|s| s.suite))
            .filter(|s| versions.contains(&s.version()))
            .collect();
        return Ok(Selection {
            suites,
            skipped: Vec::new(),
        });
    };
    let mut chosen12: Vec<SupportedCipherSuite> = Vec::new();
    let mut removed12: Vec<SupportedCipherSuite> = Vec::new();
    let mut chosen13: Vec<SupportedCipherSuite> = Vec::new();
    let mut skipped = Vec::new();
    // OpenSSL accepts `:`-, `,`- and space-separated lists in one string; Quay joins its list
    // with `:`, so an entry may hold several.
    let terms = entries
        .iter()
        .flat_map(|e| e.split([':', ',', ' ']))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    for term in terms {
        let (op, body) = match term.as_bytes()[0] {
            b'!' | b'-' => ('-', &term[1..]),
            b'+' => ('+', &term[1..]),
            _ => (' ', term),
        };
        if body.starts_with('@') || op == '+' {
            continue;
        }
        let upper = body.to_ascii_uppercase();
        if let Some((suite, _, _)) = tls13
            .iter()
            .find(|(_, iana, rustls_name)| upper == *iana || upper == *rustls_name)
        {
            if op == '-' {
                chosen13.retain(|s| s != suite);
            } else if !chosen13.contains(suite) {
                chosen13.push(*suite);
            }
            continue;
        }
        let selected: Vec<SupportedCipherSuite> =
            if let Some(s) = tls12.iter().find(|s| upper == s.openssl || upper == s.iana) {
                vec![s.suite]
            } else if known_cipher_name(&upper) {
                if op != '-' {
                    skipped.push(term.to_string());
                }
                continue;
            } else if let Some(words) = alias_words(&upper) {
                let matching: Vec<SupportedCipherSuite> = tls12
                    .iter()
                    .filter(|s| {
                        words
                            .iter()
                            .all(|w| COMMON.contains(w) || s.aliases.contains(w))
                    })
                    .map(|s| s.suite)
                    .collect();
                if matching.is_empty() && op != '-' {
                    skipped.push(term.to_string());
                }
                matching
            } else {
                return Err(format!(
                    "SSL_CIPHERS names {term:?}, which is neither an OpenSSL or IANA cipher \
                     suite name nor an OpenSSL cipher alias; Wharf (rustls) offers {}",
                    supported_names()
                ));
            };
        if op == '-' {
            // OpenSSL's `!` removes for good: later entries cannot add the suite back.
            removed12.extend(selected);
        } else {
            for suite in selected {
                if !chosen12.contains(&suite) {
                    chosen12.push(suite);
                }
            }
        }
    }
    chosen12.retain(|s| !removed12.contains(s));
    if chosen13.is_empty() {
        chosen13 = tls13.iter().map(|(s, _, _)| *s).collect();
    }
    let offers_tls12 = versions.contains(&&rustls::version::TLS12);
    let offers_tls13 = versions.contains(&&rustls::version::TLS13);
    if offers_tls12 && chosen12.is_empty() {
        return Err(format!(
            "SSL_CIPHERS selects no TLSv1.2 cipher suite that Wharf (rustls) offers{}; it \
             offers {} (or remove TLSv1.2 from SSL_PROTOCOLS)",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", skipped.join(", "))
            },
            supported_names()
        ));
    }
    let mut suites = Vec::new();
    if offers_tls13 {
        suites.extend(chosen13);
    }
    if offers_tls12 {
        suites.extend(chosen12);
    }
    Ok(Selection { suites, skipped })
}

/// A real OpenSSL or IANA cipher suite name that rustls does not offer.
fn known_cipher_name(upper: &str) -> bool {
    if upper.starts_with("TLS_") || upper.starts_with("SSL_") {
        // IANA names: `TLS_<kx>_WITH_<cipher>_<mac>` for TLS 1.2 and older, `TLS_AES_128_CCM_…`.
        return upper.contains("_WITH_") || upper.starts_with("TLS_AES_");
    }
    let words: Vec<&str> = upper.split('-').collect();
    words.len() >= 2 && words.iter().all(|w| NAME_WORDS.contains(w))
}

/// The words of an alias expression (`EECDH+AESGCM`), if every one is an OpenSSL alias.
fn alias_words(upper: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = upper.split('+').collect();
    let known = |w: &&str| {
        COMMON.contains(w)
            || OTHER_ALIASES.contains(w)
            || tls12_suites().iter().any(|s| s.aliases.contains(w))
    };
    words.iter().all(known).then_some(words)
}

/// The OpenSSL names of the TLS 1.2 suites rustls offers, for error messages.
fn supported_names() -> String {
    tls12_suites()
        .iter()
        .map(|s| s.openssl)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn names(selection: &Selection) -> Vec<String> {
        selection
            .suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

    #[test]
    fn protocols_default_to_tls12_and_13() {
        assert_eq!(protocols(None).unwrap().len(), 2);
        let only12 = protocols(Some(&strings(&["TLSv1.2"]))).unwrap();
        assert_eq!(only12, [&rustls::version::TLS12]);
    }

    #[test]
    fn old_protocols_are_named_in_the_error() {
        for old in ["TLSv1", "TLSv1.1", "SSLv3"] {
            let e = protocols(Some(&strings(&["TLSv1.2", old]))).unwrap_err();
            assert!(e.contains(&format!("SSL_PROTOCOLS names {old},")), "{e}");
        }
        assert!(
            protocols(Some(&strings(&["TLSv9"])))
                .unwrap_err()
                .contains("TLSv9")
        );
        assert!(protocols(Some(&[])).unwrap_err().contains("empty"));
    }

    #[test]
    fn names_select_suites_by_openssl_and_iana_name() {
        let s = ciphers(
            Some(&strings(&[
                "ECDHE-RSA-AES128-GCM-SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ])),
            BOTH,
        )
        .unwrap();
        assert_eq!(
            names(&s),
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
        assert!(s.skipped.is_empty());
    }

    #[test]
    fn quays_default_list_yields_the_ecdhe_aes_gcm_suites() {
        let quay = strings(&[
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "DHE-RSA-AES128-GCM-SHA256",
            "DHE-DSS-AES128-GCM-SHA256",
            "kEDH+AESGCM",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-ECDSA-AES128-SHA",
            "DHE-RSA-AES256-SHA",
            "AES128-GCM-SHA256",
            "AES256-SHA",
            "AES",
            "CAMELLIA",
            "!3DES",
            "!aNULL",
            "!eNULL",
            "!EXPORT",
            "!DES",
            "!RC4",
            "!MD5",
            "!PSK",
            "!aECDH",
            "!EDH-DSS-DES-CBC3-SHA",
            "!EDH-RSA-DES-CBC3-SHA",
            "!KRB5-DES-CBC3-SHA",
        ]);
        let s = ciphers(Some(&quay), &[&rustls::version::TLS12]).unwrap();
        assert_eq!(
            names(&s),
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            ]
        );
        assert!(s.skipped.contains(&"DHE-RSA-AES128-GCM-SHA256".to_string()));
        assert!(s.skipped.contains(&"CAMELLIA".to_string()));
    }

    #[test]
    fn aliases_and_exclusions() {
        let s = ciphers(
            Some(&strings(&["EECDH+AESGCM:EECDH+CHACHA20", "!ECDSA"])),
            &[&rustls::version::TLS12],
        )
        .unwrap();
        assert_eq!(
            names(&s),
            [
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
    }

    #[test]
    fn tls13_names_restrict_tls13() {
        let s = ciphers(
            Some(&strings(&[
                "TLS_AES_128_GCM_SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
            ])),
            BOTH,
        )
        .unwrap();
        assert_eq!(
            names(&s),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
    }

    #[test]
    fn unknown_and_unusable_lists_are_errors() {
        let e = ciphers(Some(&strings(&["ECDHE-RSA-AES128-GCM-SHA255"])), BOTH).unwrap_err();
        assert!(e.contains("\"ECDHE-RSA-AES128-GCM-SHA255\""), "{e}");
        let e = ciphers(
            Some(&strings(&["DHE-RSA-AES128-GCM-SHA256", "AES256-SHA"])),
            &[&rustls::version::TLS12],
        )
        .unwrap_err();
        assert!(
            e.contains("skipped: DHE-RSA-AES128-GCM-SHA256, AES256-SHA"),
            "{e}"
        );
        assert!(e.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{e}");
    }
}

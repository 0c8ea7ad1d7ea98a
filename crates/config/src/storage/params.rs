//! Reading one driver's keyword arguments: required and optional values with Quay's loose
//! typing (`port: '443'`, `is_secure: 'true'`), and [`Secret`] for credentials.
//!
//! Errors are sentence fragments; the caller prefixes the location id.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A credential from the config (secret keys, account keys, SAS tokens).
///
/// `Debug` prints `***`, so a driver config can be logged whole; only [`Secret::expose`]
/// gives the value, at the one place that hands it to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Parameters that some Quay versions accept for tuning their own upload code (chunk sizes,
/// server-side assembly). Wharf's drivers choose these themselves, so the keys are accepted
/// (a Quay config must keep loading) and ignored.
const TUNING_ONLY: &[&str] = &[
    "maximum_chunk_size_mb",
    "minimum_chunk_size_mb",
    "server_side_assembly",
];

/// The keyword arguments of one `[Driver, {params}]` pair, consumed parameter by parameter.
pub(super) struct Params<'a> {
    location: &'a str,
    driver: &'a str,
    params: BTreeMap<String, Value>,
}

impl<'a> Params<'a> {
    pub(super) fn new(location: &'a str, driver: &'a str, params: BTreeMap<String, Value>) -> Self {
        Params {
            location,
            driver,
            params,
        }
    }

    /// A required non-empty string, or Quay's config-tool message naming the dotted key.
    pub(super) fn required(&mut self, name: &str) -> Result<String, String> {
        match self.optional(name)? {
            Some(value) => Ok(value),
            None => Err(format!(
                "{} needs {} {name} parameter (DISTRIBUTED_STORAGE_CONFIG.{}.{name} is required)",
                self.driver,
                article(name),
                self.location
            )),
        }
    }

    /// An optional string. Like Quay (`s3_access_key or None`), an empty string or null means
    /// absent; numbers are taken as their decimal text (a bucket named `2024`).
    pub(super) fn optional(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.params.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!(
                "{} {name} must be a string, found {other}",
                self.driver
            )),
        }
    }

    pub(super) fn required_secret(&mut self, name: &str) -> Result<Secret, String> {
        self.required(name).map(Secret)
    }

    pub(super) fn optional_secret(&mut self, name: &str) -> Result<Option<Secret>, String> {
        Ok(self.optional(name)?.map(Secret))
    }

    /// A TCP port, written as a number or as a string (`port: '443'` in Quay's docs).
    pub(super) fn port(&mut self, name: &str) -> Result<Option<u16>, String> {
        let bad = |shown: String| {
            format!(
                "{} {name} must be a port number (1-65535), found {shown}",
                self.driver
            )
        };
        match self.params.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => match s.trim().parse::<u16>() {
                Ok(port) if port > 0 => Ok(Some(port)),
                _ => Err(bad(format!("{s:?}"))),
            },
            Some(Value::Number(n)) => match n.as_u64().and_then(|p| u16::try_from(p).ok()) {
                Some(port) if port > 0 => Ok(Some(port)),
                _ => Err(bad(n.to_string())),
            },
            Some(other) => Err(bad(other.to_string())),
        }
    }

    /// A boolean, written as a YAML boolean or as a string (`is_secure: 'true'` in Quay's
    /// docs).
    ///
    /// Quay passes the value to Python unchanged, where any non-empty string (even
    /// `'false'`) counts as true; Wharf reads `'false'`, `'no'`, `'off'` and `'0'` as false,
    /// which is what a person writing them means.
    pub(super) fn flag(&mut self, name: &str, default: bool) -> Result<bool, String> {
        match self.params.remove(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" | "" => Ok(false),
                _ => Err(format!(
                    "{} {name} must be true or false, found {s:?}",
                    self.driver
                )),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(other) => Err(format!(
                "{} {name} must be true or false, found {other}",
                self.driver
            )),
        }
    }

    /// Ends the reading: tuning-only parameters are dropped, anything else left over is an
    /// error. Quay passes the parameters as keyword arguments to the driver class, so an
    /// unknown one stops Quay at start-up too; refusing it here catches misspellings such as
    /// `s3_buckt` before they turn into "bucket not found" at the first push.
    pub(super) fn finish(mut self, accepted: &[&str]) -> Result<(), String> {
        self.params
            .retain(|k, _| !TUNING_ONLY.contains(&k.as_str()));
        if self.params.is_empty() {
            return Ok(());
        }
        let extra: Vec<&str> = self.params.keys().map(String::as_str).collect();
        Err(format!(
            "{} does not accept {} (its parameters are {})",
            self.driver,
            extra.join(", "),
            accepted.join(", ")
        ))
    }
}

fn article(name: &str) -> &'static str {
    match name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        // "an s3_bucket": the letter is read "ess".
        Some('s') if name.starts_with("s3") => "an",
        _ => "a",
    }
}

/// Quay's `_build_endpoint_url`: a scheme from `is_secure` unless the host names one, and the
/// port appended unless the host already ends with one.
pub(super) fn build_endpoint_url(hostname: &str, port: Option<u16>, is_secure: bool) -> String {
    let mut url = if hostname.starts_with("http://") || hostname.starts_with("https://") {
        hostname.to_owned()
    } else if is_secure {
        format!("https://{hostname}")
    } else {
        format!("http://{hostname}")
    };
    if let Some(port) = port {
        let last = url
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .trim_matches([' ', '/']);
        let has_port = !last.is_empty() && last.chars().all(|c| c.is_ascii_digit());
        if !has_port {
            url = format!("{url}:{port}");
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_follow_quay() {
        let cases = [
            ("s3.example.com", None, true, "https://s3.example.com"),
            (
                "s3.example.com",
                Some(8080),
                false,
                "http://s3.example.com:8080",
            ),
            ("http://ceph:7480", Some(443), true, "http://ceph:7480"),
            ("https://ceph", Some(443), false, "https://ceph:443"),
            ("minio:9000", Some(9000), true, "https://minio:9000"),
        ];
        for (host, port, secure, expected) in cases {
            assert_eq!(build_endpoint_url(host, port, secure), expected, "{host}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }
}

//! Reading values out of the untyped config with Quay's loose typing, and recording messages.
//!
//! [`Group`] is the one way field groups read keys: each accessor returns the value when it
//! has the expected type and records Quay's message when it does not, so a group's rules
//! are written as plain reads. An absent key and a `null` value are the same (Quay drops
//! nulls before reading); the accessors then return `None` or the given default.
//!
//! Type messages follow the config tool's wording (`SERVER_HOSTNAME must be of type
//! string`). Quay itself refuses such a bundle with HTTP 400 before validating; here it is
//! one more message, so every other problem is still reported.

use serde_json::{Map, Value};

use crate::ValidationError;

pub(crate) type Object = Map<String, Value>;

/// Quay's duration pattern, as written in its messages.
pub(crate) const DURATION_PATTERN: &str = "^[0-9]+(w|m|d|h|s)$";

/// A boolean as Quay reads one: `true`/`false`, or the YAML 1.1 words PyYAML reads as
/// booleans (`yes`, `no`, `on`, `off`), which a YAML 1.2 parser leaves as text.
pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A whole number, written as a number (`6379`, `6379.0`) or as text (`'6379'`).
pub(crate) fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A TCP port (1-65535), written as a number or as text.
pub(crate) fn as_port(value: &Value) -> Option<u16> {
    as_int(value)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// A value that is present: neither absent nor `null`.
pub(crate) fn present<'m>(map: &'m Object, key: &str) -> Option<&'m Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A non-empty string value.
pub(crate) fn text<'m>(map: &'m Object, key: &str) -> Option<&'m str> {
    present(map, key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A boolean value, or `default` when absent or unreadable.
pub(crate) fn flag(map: &Object, key: &str, default: bool) -> bool {
    present(map, key).and_then(as_bool).unwrap_or(default)
}

/// Whether `s` matches Quay's duration pattern `^[0-9]+(w|m|d|h|s)$`.
pub(crate) fn is_duration(s: &str) -> bool {
    let Some(unit) = s.chars().last() else {
        return false;
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    "wmdhs".contains(unit) && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a host name as Quay's config tool accepts one:
/// `^[a-zA-Z-0-9\.]+(:[0-9]+)?$` after trimming spaces.
pub(crate) fn is_hostname(s: &str) -> bool {
    let s = s.trim_matches(' ');
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    match s.split_once(':') {
        Some((name, port)) => {
            name_ok(name) && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => name_ok(s),
    }
}

/// Whether `s` is an absolute URL with a scheme and a host, as Quay's `ValidateIsURL`
/// requires (`https://clair.example.com:8080/path`).
pub(crate) fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    scheme_ok && !host.is_empty() && !s.contains(char::is_whitespace)
}

/// The host and port of an absolute URL, the port defaulting by scheme (80, 443, 636, 389).
pub(crate) fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        "ldaps" => 636,
        "ldap" => 389,
        _ => return None,
    };
    // `[::1]:8080` or `host:8080` or `host`.
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None if authority.is_empty() => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

/// The keys of one field group (or of one object nested in it), and the messages found.
pub(crate) struct Group<'m, 'o> {
    name: &'static str,
    map: &'m Object,
    /// Prepended to key names in tags and messages: `BUILDLOGS_REDIS.` for the keys of the
    /// `BUILDLOGS_REDIS` object.
    prefix: String,
    out: &'o mut Vec<ValidationError>,
}

impl<'m, 'o> Group<'m, 'o> {
    /// The top-level keys of `map`, reported under field group `name`.
    pub(crate) fn new(
        name: &'static str,
        map: &'m Object,
        out: &'o mut Vec<ValidationError>,
    ) -> Group<'m, 'o> {
        Group {
            name,
            map,
            prefix: String::new(),
            out,
        }
    }

    /// The keys of `map`, the object found at `key` of this group (`BUILDLOGS_REDIS`).
    pub(crate) fn nested<'s>(&'s mut self, key: &str, map: &'m Object) -> Group<'m, 's> {
        Group {
            name: self.name,
            map,
            prefix: format!("{}{key}.", self.prefix),
            out: self.out,
        }
    }

    /// The full (dotted) name of `key`.
    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Records a message with the given tags (full names).
    pub(crate) fn error<T: AsRef<str>>(&mut self, tags: &[T], message: impl Into<String>) {
        self.out.push(ValidationError {
            field_group: self.name.to_owned(),
            tags: tags.iter().map(|t| t.as_ref().to_owned()).collect(),
            message: message.into(),
        });
    }

    /// Records a message tagged with `key` (relative to this group).
    pub(crate) fn error_at(&mut self, key: &str, message: impl Into<String>) {
        let tag = self.key(key);
        self.error(&[tag], message);
    }

    /// The value of `key` unless absent or `null`.
    pub(crate) fn value(&self, key: &str) -> Option<&'m Value> {
        present(self.map, key)
    }

    /// A string value; another type is reported. An empty string is returned as such.
    pub(crate) fn string(&mut self, key: &str) -> Option<&'m str> {
        let value = self.value(key)?;
        match value.as_str() {
            Some(s) => Some(s),
            None => {
                let name = self.key(key);
                self.error_at(key, format!("{name} must be of type string"));
                None
            }
        }
    }

    /// A non-empty string value; an empty string counts as absent.
    pub(crate) fn text(&mut self, key: &str) -> Option<&'m str> {
        self.string(key).filter(|s| !s.is_empty())
    }

    /// A required non-empty string: `<KEY> is required` when absent or empty.
    pub(crate) fn required(&mut self, key: &str) -> Option<&'m str> {
        if self.value(key).is_some_and(|v| !v.is_string()) {
            // Reported as a type error by `text`.
            return self.text(key);
        }
        let found = self.text(key);
        if found.is_none() {
            let name = self.key(key);
            self.error_at(key, format!("{name} is required"));
        }
        found
    }

    /// A boolean value, `default` when absent; another type is reported.
    pub(crate) fn flag(&mut self, key: &str, default: bool) -> bool {
        let Some(value) = self.value(key) else {
            return default;
        };
        match as_bool(value) {
            Some(b) => b,
            None => {
                let name = self.key(key);
                self.error_at(key, format!("{name} must be of type boolean"));
                default
            }
        }
    }

    /// Type-checks boolean keys whose values no rule reads.
    pub(crate) fn flags(&mut self, keys: &[&str]) {
        for key in keys {
            self.flag(key, false);
        }
    }

    /// A whole number; another type is reported.
    pub(crate) fn integer(&mut self, key: &str) -> Option<i64> {
        let value = self.value(key)?;
        match as_int(value) {
            Some(n) => Some(n),
            None => {
                let name = self.key(key);
                self.error_at(key, format!("{name} must be of type integer"));
                None
            }
        }
    }

    /// A TCP port; anything else is reported.
    pub(crate) fn port(&mut self, key: &str) -> Option<u16> {
        let value = self.value(key)?;
        match as_port(value) {
            Some(p) => Some(p),
            None => {
                let name = self.key(key);
                self.error_at(key, format!("{name} must be a port number (1-65535)"));
                None
            }
        }
    }

    /// An object (mapping); another type is reported.
    pub(crate) fn object(&mut self, key: &str) -> Option<&'m Object> {
        let value = self.value(key)?;
        match value.as_object() {
            Some(map) => Some(map),
            None => {
                let name = self.key(key);
                self.error_at(key, format!("{name} must be of type object"));
                None
            }
        }
    }

    /// A list of strings; anything else is reported.
    pub(crate) fn strings(&mut self, key: &str) -> Option<Vec<&'m str>> {
        let value = self.value(key)?;
        let list = value
            .as_array()
            .and_then(|items| items.iter().map(Value::as_str).collect::<Option<Vec<_>>>());
        if list.is_none() {
            let name = self.key(key);
            self.error_at(key, format!("{name} must be a list of strings"));
        }
        list
    }

    /// A duration string matching Quay's pattern; anything else is reported.
    pub(crate) fn duration(&mut self, key: &str) -> Option<&'m str> {
        let value = self.value(key)?;
        match value.as_str().filter(|s| is_duration(s)) {
            Some(s) => Some(s),
            None => {
                let name = self.key(key);
                self.error_at(
                    key,
                    format!("{name} must have the regex pattern {DURATION_PATTERN}"),
                );
                None
            }
        }
    }

    /// Reports `<KEY> must be one of a, b.` unless `value` is one of `options`.
    pub(crate) fn one_of(&mut self, key: &str, value: &str, options: &[&str]) -> bool {
        let ok = options.contains(&value);
        if !ok {
            let name = self.key(key);
            self.error_at(
                key,
                format!("{name} must be one of {}.", options.join(", ")),
            );
        }
        ok
    }

    /// Reports `<KEY> must be of type URL` unless `value` is an absolute URL.
    pub(crate) fn url(&mut self, key: &str, value: &str) -> bool {
        let ok = is_url(value);
        if !ok {
            let name = self.key(key);
            self.error_at(key, format!("{name} must be of type URL"));
        }
        ok
    }

    /// Reports `<KEY> must be of type Hostname` unless `value` is a host name.
    pub(crate) fn hostname(&mut self, key: &str, value: &str) -> bool {
        let ok = is_hostname(value);
        if !ok {
            let name = self.key(key);
            self.error_at(key, format!("{name} must be of type Hostname"));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_accept_yaml_1_1_words() {
        for (value, expected) in [
            (json!(true), Some(true)),
            (json!("yes"), Some(true)),
            (json!("On"), Some(true)),
            (json!("NO"), Some(false)),
            (json!("off"), Some(false)),
            (json!("maybe"), None),
            (json!(1), None),
        ] {
            assert_eq!(as_bool(&value), expected, "{value}");
        }
    }

    #[test]
    fn numbers_and_ports() {
        assert_eq!(as_int(&json!(6379)), Some(6379));
        assert_eq!(as_int(&json!(6379.0)), Some(6379));
        assert_eq!(as_int(&json!(" 42 ")), Some(42));
        assert_eq!(as_int(&json!(1.5)), None);
        assert_eq!(as_port(&json!("443")), Some(443));
        assert_eq!(as_port(&json!(0)), None);
        assert_eq!(as_port(&json!(70000)), None);
    }

    #[test]
    fn durations_follow_quays_pattern() {
        for ok in ["0s", "2w", "30m", "1d", "12h", "100s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "w", "2", "2y", "2W", "-1d", "2w ", "1.5h", "2ww"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn host_names_follow_quays_pattern() {
        for ok in [
            "quay.example.com",
            "localhost",
            "host:8443",
            "10.0.0.1",
            " a.b ",
        ] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            "https://quay.example.com",
            "quay.example.com/path",
            "host:",
            "host:port",
            "bad_name.com",
            "[::1]:80",
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn urls_need_scheme_and_host() {
        for ok in [
            "http://clair:8080",
            "https://clair.example.com/path?q=1",
            "ldaps://ldap.example.com",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "clair:8080",
            "http://",
            "/static/logo.svg",
            "://x",
            "http://a b",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
        assert_eq!(
            url_host_port("https://clair.example.com/x"),
            Some(("clair.example.com".to_owned(), 443))
        );
        assert_eq!(
            url_host_port("http://u:p@127.0.0.1:6060"),
            Some(("127.0.0.1".to_owned(), 6060))
        );
        assert_eq!(url_host_port("ldap://[::1]"), Some(("::1".to_owned(), 389)));
        assert_eq!(url_host_port("ftp://x"), None);
    }

    #[test]
    fn accessors_report_types_with_dotted_names() {
        let map = json!({
            "A": "text", "B": 3, "R": {"host": 5, "port": "x"}, "L": ["a", 1], "D": "2y"
        });
        let map = map.as_object().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut group = Group::new("G", &map, &mut out);
        assert_eq!(group.string("A"), Some("text"));
        assert_eq!(group.string("B"), None);
        assert_eq!(group.required("MISSING"), None);
        assert!(group.flag("A", true));
        assert_eq!(group.strings("L"), None);
        assert_eq!(group.duration("D"), None);
        let inner = group.object("R").cloned().unwrap_or_default();
        {
            let mut nested = group.nested("R", &inner);
            assert_eq!(nested.required("host"), None);
            assert_eq!(nested.port("port"), None);
        }
        let messages: Vec<(&str, &str)> = out
            .iter()
            .map(|e| (e.tags[0].as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                ("B", "B must be of type string"),
                ("MISSING", "MISSING is required"),
                ("A", "A must be of type boolean"),
                ("L", "L must be a list of strings"),
                ("D", "D must have the regex pattern ^[0-9]+(w|m|d|h|s)$"),
                ("R.host", "R.host must be of type string"),
                ("R.port", "R.port must be a port number (1-65535)"),
            ]
        );
    }
}

//! Database (`DB_URI`, `DB_CONNECTION_ARGS`, `DB_CONNECTION_POOLING`), plus
//! `DATABASE_SECRET_KEY`, which Wharf (like Quay at run time) needs to encrypt the secrets
//! it stores in the database.

use crate::ValidationError;
use std::collections::BTreeMap;

use crate::check::{Group, Object};
use crate::groups::DATABASE;

/// The `DB_URI` schemes Wharf connects to (Quay also takes `mysql+pymysql`).
const SCHEMES: &[&str] = &["postgresql", "postgres", "sqlite"];

pub(super) fn check(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(DATABASE, config, out);
    match g.value("DB_URI") {
        Some(v) if !v.is_string() => {
            g.string("DB_URI");
        }
        _ => match g.text("DB_URI") {
            // Quay's one message with a full stop.
            None => g.error_at("DB_URI", "DB_URI is required."),
            Some(uri) => match scheme(uri) {
                None => g.error_at("DB_URI", "DB_URI has incorrect format. Must be URI."),
                Some(scheme) if !SCHEMES.contains(&scheme) => g.error_at(
                    "DB_URI",
                    format!(
                        "DB_URI scheme must be one of {}; Wharf does not support {scheme}.",
                        SCHEMES.join(", ")
                    ),
                ),
                Some(_) => {}
            },
        },
    }
    let pooling = g.flag("DB_CONNECTION_POOLING", true);
    if let Some(args) = g.object("DB_CONNECTION_ARGS")
        && let Err(e) = db::ConnectOptions::from_quay(pooling, &to_btree(args))
    {
        let message = match e {
            db::DbError::Connect(message) => message,
            other => other.to_string(),
        };
        g.error_at("DB_CONNECTION_ARGS", message);
    }
    if g.value("DATABASE_SECRET_KEY")
        .is_some_and(|v| v.is_number())
    {
        // A number is a usable secret (PyYAML reads an unquoted digit string as one).
        return;
    }
    g.required("DATABASE_SECRET_KEY");
}

/// The pool and TLS settings `wharf serve` derives from `DB_CONNECTION_POOLING` and
/// `DB_CONNECTION_ARGS` (the defaults when they are unusable, which is reported offline).
pub(crate) fn connect_options(config: &Object) -> db::ConnectOptions {
    let pooling = crate::check::flag(config, "DB_CONNECTION_POOLING", true);
    let args = crate::check::present(config, "DB_CONNECTION_ARGS")
        .and_then(serde_json::Value::as_object)
        .map(to_btree)
        .unwrap_or_default();
    db::ConnectOptions::from_quay(pooling, &args)
        .map(|(options, _ignored)| options)
        .unwrap_or_default()
}

fn to_btree(map: &Object) -> BTreeMap<String, serde_json::Value> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The scheme of a database URI: `postgresql` of `postgresql://…`, `sqlite` of
/// `sqlite:///…`; None when the text is not a URI.
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (valid && (rest.starts_with("//") || scheme == "sqlite")).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme("postgresql://u:p@h:5432/quay"), Some("postgresql"));
        assert_eq!(scheme("sqlite:///wharf.db"), Some("sqlite"));
        assert_eq!(scheme("mysql+pymysql://u@h/quay"), Some("mysql+pymysql"));
        assert_eq!(scheme("just text"), None);
        assert_eq!(scheme("host:5432"), None);
    }
}

//! Redis: `BUILDLOGS_REDIS` and `USER_EVENTS_REDIS` (both required by Quay), and the optional
//! `PULL_METRICS_REDIS`, each `{host, port, password, ssl, db}`.

use crate::ValidationError;
use crate::check::{Group, Object};
use crate::groups::REDIS;

/// The Redis keys checked, and whether Quay requires them.
pub(crate) const REDIS_KEYS: &[(&str, bool)] = &[
    ("BUILDLOGS_REDIS", true),
    ("USER_EVENTS_REDIS", true),
    ("PULL_METRICS_REDIS", false),
];

pub(super) fn check(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(REDIS, config, out);
    for (key, required) in REDIS_KEYS {
        if g.value(key).is_none() {
            if *required {
                g.error_at(key, format!("{key} is required"));
            }
            continue;
        }
        let Some(settings) = g.object(key) else {
            continue;
        };
        let mut r = g.nested(key, settings);
        r.required("host");
        r.port("port");
        r.string("password");
        r.string("username");
        r.flag("ssl", false);
        r.integer("db");
    }
}

//! TimeMachine: `DEFAULT_TAG_EXPIRATION`, `TAG_EXPIRATION_OPTIONS` and
//! `FEATURE_CHANGE_TAG_EXPIRATION`.

use crate::ValidationError;
use crate::check::{DURATION_PATTERN, Group, Object, is_duration};
use crate::groups::TIME_MACHINE;

const DEFAULT_OPTIONS: &[&str] = &["0s", "1d", "1w", "2w", "4w"];

pub(super) fn check(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(TIME_MACHINE, config, out);
    g.flag("FEATURE_CHANGE_TAG_EXPIRATION", true);
    let default = match g.value("DEFAULT_TAG_EXPIRATION") {
        None => Some("2w"),
        Some(_) => g.duration("DEFAULT_TAG_EXPIRATION"),
    };
    let options = match g.value("TAG_EXPIRATION_OPTIONS") {
        None => Some(DEFAULT_OPTIONS.to_vec()),
        Some(_) => g.strings("TAG_EXPIRATION_OPTIONS"),
    };
    let Some(options) = options else {
        return;
    };
    let mut valid = true;
    for option in &options {
        if !is_duration(option) {
            g.error_at(
                "TAG_EXPIRATION_OPTIONS",
                format!(
                    "TAG_EXPIRATION_OPTIONS entry {option:?} must have the regex pattern \
                     {DURATION_PATTERN}"
                ),
            );
            valid = false;
        }
    }
    if let Some(default) = default
        && valid
        && !options.contains(&default)
    {
        g.error(
            &["DEFAULT_TAG_EXPIRATION", "TAG_EXPIRATION_OPTIONS"],
            "The default tag expiration period must be included in the allowed expiration \
             periods.",
        );
    }
}

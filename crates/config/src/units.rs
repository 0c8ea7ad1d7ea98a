//! Quay's textual units: durations such as `2w` and sizes such as `20G`.
//!
//! This module owns the two pure parsers ([`parse_duration`], [`parse_size`]) and the typed
//! config values built on them ([`QuayDuration`], [`ByteSize`]). The typed values keep the
//! original spelling next to the parsed number so that a config can be shown back to an
//! operator exactly as they wrote it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

/// Why a duration or size string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text does not match Quay's duration pattern `^[0-9]+(w|m|d|h|s)$`.
    #[error(
        "{input:?} is not a duration: expected a whole number followed by s, m, h, d or w \
         (for example 30s, 5m, 2h, 1d, 2w)"
    )]
    InvalidDuration {
        /// The rejected text.
        input: String,
    },
    /// The text is not a number of bytes with an optional unit.
    #[error(
        "{input:?} is not a size: expected a number optionally followed by K, M, G, T or P \
         (powers of 1000) or Ki, Mi, Gi, Ti or Pi (powers of 1024), for example 20G"
    )]
    InvalidSize {
        /// The rejected text.
        input: String,
    },
    /// The value is well-formed but does not fit in 64 bits.
    #[error("{input:?} is too large")]
    Overflow {
        /// The rejected text.
        input: String,
    },
}

/// Parses a Quay duration string (`30s`, `5m`, `2h`, `1d`, `2w`).
///
/// The grammar is exactly the one Quay's config schema enforces, `^[0-9]+(w|m|d|h|s)$`: no
/// whitespace, no fractions and no combined units, so that every string accepted here is
/// also accepted by Quay and the other way round.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let invalid = || UnitError::InvalidDuration {
        input: input.to_owned(),
    };
    let Some(unit) = input.chars().last() else {
        return Err(invalid());
    };
    let seconds_per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 60 * 60,
        'd' => 24 * 60 * 60,
        'w' => 7 * 24 * 60 * 60,
        _ => return Err(invalid()),
    };
    let digits = &input[..input.len() - unit.len_utf8()];
    // `u64::from_str` alone would also accept a leading `+`, which Quay's pattern rejects.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let overflow = || UnitError::Overflow {
        input: input.to_owned(),
    };
    let count: u64 = digits.parse().map_err(|_| overflow())?;
    let seconds = count.checked_mul(seconds_per_unit).ok_or_else(overflow)?;
    Ok(Duration::from_secs(seconds))
}

/// Parses a Quay size string (`20G`, `500M`, `1024K`, `1.5Gi`, `1048576`) into bytes.
///
/// Quay checks `MAXIMUM_LAYER_SIZE` with Python's `bitmath.parse_string_unsafe`, which reads
/// a bare prefix letter as a decimal (SI) unit, so `20G` is 20 000 000 000 bytes and
/// not 20 GiB. We follow the same reading so a layer Quay rejects is rejected here too.
/// Binary units are available with an `i` (`20Gi`, `20GiB`). Prefix letters are
/// case-insensitive, a trailing `B` is optional, a space may separate number and unit, and
/// a fractional part is rounded down to whole bytes.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let invalid = || UnitError::InvalidSize {
        input: input.to_owned(),
    };
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(number_end);
    // One space may separate the number from a unit, but a trailing space is a typo.
    let unit = match unit.strip_prefix(' ') {
        Some("") => return Err(invalid()),
        Some(unit) => unit,
        None => unit,
    };
    let multiplier = size_multiplier(unit).ok_or_else(invalid)?;

    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // A lone "." or an empty number has no digits at all; "1." and ".5" are fine, as in Python.
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(invalid());
    }
    let overflow = || UnitError::Overflow {
        input: input.to_owned(),
    };
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    // Digits beyond the 18th cannot change the result by a whole byte for any unit up to
    // pebibytes, and dropping them keeps 10^digits inside u128.
    let fraction = &fraction[..fraction.len().min(18)];
    let fraction_bytes = if fraction.is_empty() {
        0
    } else {
        let numerator: u128 = fraction.parse().map_err(|_| invalid())?;
        let denominator = 10u128.pow(fraction.len() as u32);
        numerator * multiplier / denominator
    };
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|b| b.checked_add(fraction_bytes))
        .ok_or_else(overflow)?;
    u64::try_from(bytes).map_err(|_| overflow())
}

/// Maps a unit suffix (already stripped of the number) to its byte multiplier.
fn size_multiplier(unit: &str) -> Option<u128> {
    let unit = unit.strip_suffix(['B', 'b']).unwrap_or(unit);
    if unit.is_empty() {
        return Some(1);
    }
    let mut chars = unit.chars();
    let exponent = match chars.next()?.to_ascii_uppercase() {
        'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let base: u128 = match chars.as_str() {
        "" => 1000,
        "i" | "I" => 1024,
        _ => return None,
    };
    Some(base.pow(exponent))
}

/// A duration written in Quay's notation, e.g. `DEFAULT_TAG_EXPIRATION: 2w`.
#[derive(Clone, PartialEq, Eq)]
pub struct QuayDuration {
    text: String,
    duration: Duration,
}

impl QuayDuration {
    /// Pairs a spelling with its already-known value, for hard-coded defaults.
    pub(crate) fn from_parts(text: &str, duration: Duration) -> Self {
        Self {
            text: text.to_owned(),
            duration,
        }
    }

    /// The parsed length.
    pub fn as_duration(&self) -> Duration {
        self.duration
    }

    /// The parsed length in whole seconds.
    pub fn as_secs(&self) -> u64 {
        self.duration.as_secs()
    }

    /// The text as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for QuayDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            duration: parse_duration(text)?,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for QuayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for QuayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({}s)", self.text, self.as_secs())
    }
}

impl<'de> Deserialize<'de> for QuayDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A size written in Quay's notation, e.g. `MAXIMUM_LAYER_SIZE: 20G`.
#[derive(Clone, PartialEq, Eq)]
pub struct ByteSize {
    text: String,
    bytes: u64,
}

impl ByteSize {
    /// Pairs a spelling with its already-known value, for hard-coded defaults.
    pub(crate) fn from_parts(text: &str, bytes: u64) -> Self {
        Self {
            text: text.to_owned(),
            bytes,
        }
    }

    /// The parsed size in bytes.
    pub fn as_bytes(&self) -> u64 {
        self.bytes
    }

    /// The text as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            bytes: parse_size(text)?,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({} bytes)", self.text, self.bytes)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde-saphyr hands a plain integer scalar to a `String` target as its text, so
        // `MAXIMUM_LAYER_SIZE: 1048576` arrives here as "1048576" and parses as bytes.
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let cases = [
            ("0s", 0),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7_200),
            ("1d", 86_400),
            ("2w", 1_209_600),
            ("0042s", 42),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_outside_quay_pattern_are_rejected() {
        for text in [
            "", "s", "10", "10 s", " 10s", "10s ", "+10s", "-1s", "1.5h", "10ms", "1y", "2W",
            "1h30m", "é", "1é",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(UnitError::InvalidDuration {
                    input: text.to_owned()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn huge_durations_overflow_instead_of_wrapping() {
        let text = format!("{}w", u64::MAX / 2);
        assert_eq!(
            parse_duration(&text),
            Err(UnitError::Overflow {
                input: text.clone()
            })
        );
        let text = "99999999999999999999999s";
        assert!(matches!(
            parse_duration(text),
            Err(UnitError::Overflow { .. })
        ));
    }

    #[test]
    fn sizes_use_decimal_prefixes_like_quay() {
        let cases = [
            ("0", 0),
            ("1048576", 1_048_576),
            ("512B", 512),
            ("1024K", 1_024_000),
            ("1024k", 1_024_000),
            ("500M", 500_000_000),
            ("20G", 20_000_000_000),
            ("20GB", 20_000_000_000),
            ("20 G", 20_000_000_000),
            ("2T", 2_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1.5G", 1_500_000_000),
            (".5K", 500),
            ("1.", 1),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn sizes_use_binary_prefixes_with_i() {
        let cases = [
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("20Gi", 20 * 1024 * 1024 * 1024),
            ("20GiB", 20 * 1024 * 1024 * 1024),
            ("1.5Mi", 1_572_864),
            ("1Pi", 1 << 50),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn malformed_sizes_are_rejected() {
        for text in [
            "", "G", ".", "1..2G", "1.2.3", "20X", "20GG", "20Gx", "-1G", "+1G", "20G ", "1e3",
            "20 ", "ten",
        ] {
            assert_eq!(
                parse_size(text),
                Err(UnitError::InvalidSize {
                    input: text.to_owned()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn huge_sizes_overflow() {
        for text in [
            "18446744073709551616",
            "20000000P",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(
                matches!(parse_size(text), Err(UnitError::Overflow { .. })),
                "{text}"
            );
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn typed_values_keep_their_spelling() -> Result<(), UnitError> {
        let size: ByteSize = "20G".parse()?;
        assert_eq!((size.as_str(), size.as_bytes()), ("20G", 20_000_000_000));
        assert_eq!(size.to_string(), "20G");
        let duration: QuayDuration = "2w".parse()?;
        assert_eq!((duration.as_str(), duration.as_secs()), ("2w", 1_209_600));
        assert_eq!(format!("{duration:?}"), "\"2w\" (1209600s)");
        Ok(())
    }

    #[test]
    fn error_messages_show_the_input_and_an_example() {
        let message = parse_duration("2 weeks").map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(
                "\"2 weeks\" is not a duration: expected a whole number followed by s, m, h, d \
                 or w (for example 30s, 5m, 2h, 1d, 2w)"
                    .to_owned()
            )
        );
    }
}

//! Pieces of Quay's JSON views shared by several endpoints: avatars and dates.

use serde_json::{Value, json};

/// Quay's 32 avatar colours, indexed by the first byte of the MD5 of the e-mail or name.
const AVATAR_COLORS: [&str; 32] = [
    "#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#1f77b4", "#17becf", "#9edae5", "#393b79", "#5254a3", "#6b6ecf", "#9c9ede",
    "#9ecae1", "#31a354", "#b5cf6b", "#a1d99b", "#e6550d", "#fd8d3c", "#fdae6b", "#fdd0a2",
];

/// `{"name","hash","color","kind"}`. Quay hashes with MD5; a SHA-256 prefix serves the same
/// purpose (a stable colour and identicon seed) without another hash implementation.
pub fn avatar(name: &str, email: Option<&str>, kind: &str) -> Value {
    let seed = email.unwrap_or(name).trim().to_lowercase();
    let digest = types::Digest::sha256_of(seed.as_bytes());
    let hash = &digest.hex()[..32];
    let first = u8::from_str_radix(&hash[..2], 16).unwrap_or(0);
    let color = AVATAR_COLORS[usize::from(first) % AVATAR_COLORS.len()];
    json!({ "name": name, "hash": hash, "color": color, "kind": kind })
}

/// Quay's date format (RFC 2822 in GMT, `-0000`): `Wed, 12 Jul 2023 10:25:41 -0000`.
pub fn format_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} -0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_look_like_quays() {
        assert_eq!(super::format_date(0), "Thu, 01 Jan 1970 00:00:00 -0000");
        assert_eq!(
            super::format_date(1_689_157_541_000),
            "Wed, 12 Jul 2023 10:25:41 -0000"
        );
        assert_eq!(
            super::format_date(951_782_400_000),
            "Tue, 29 Feb 2000 00:00:00 -0000"
        );
    }

    #[test]
    fn avatars_are_stable() {
        let a = super::avatar("alice", Some("Alice@Example.com "), "user");
        let b = super::avatar("alice", Some("alice@example.com"), "user");
        assert_eq!(a, b);
        assert_eq!(a["hash"].as_str().unwrap().len(), 32);
    }
}

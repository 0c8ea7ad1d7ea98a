//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and the streaming hasher that produces them.
//!
//! The hasher's state can be serialized so a chunked upload can continue on another process: the
//! bytes are what `sha2`'s hazmat `SerializableState` gives, prefixed by one algorithm byte.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm the registry accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must have the form algorithm:hex")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("digest hex part must be {expected} lowercase hex characters")]
    BadHex { expected: usize },
}

/// A validated content digest. Only lowercase hex is accepted, so the string form is canonical and
/// can be compared and indexed as text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut h = DigestHasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// The digest of `bytes` with this digest's algorithm; used to verify a received manifest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut h = DigestHasher::new(self.algorithm);
        h.update(bytes);
        h.finish() == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(DigestError::Malformed),
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let expected = algorithm.hex_len();
        if hex.len() != expected || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadHex { expected });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher for one of the supported algorithms whose state can be saved and restored.
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// The saved state could not be restored (wrong length or unknown algorithm tag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored hash state is corrupt")]
pub struct HashStateError;

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            DigestHasher::Sha256(_) => Algorithm::Sha256,
            DigestHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(data),
            DigestHasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        let bytes = match self {
            DigestHasher::Sha256(h) => h.finalize().to_vec(),
            DigestHasher::Sha512(h) => h.finalize().to_vec(),
        };
        Digest {
            algorithm,
            hex: data_encoding::HEXLOWER.encode(&bytes),
        }
    }

    /// The running state as bytes: one algorithm tag byte followed by the hasher's own encoding.
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(220);
        match self {
            DigestHasher::Sha256(h) => {
                out.push(1);
                out.extend_from_slice(&h.serialize());
            }
            DigestHasher::Sha512(h) => {
                out.push(2);
                out.extend_from_slice(&h.serialize());
            }
        }
        out
    }

    /// Restores a hasher saved with [`DigestHasher::save`].
    pub fn restore(state: &[u8]) -> Result<Self, HashStateError> {
        let (tag, rest) = state.split_first().ok_or(HashStateError)?;
        match tag {
            1 => {
                let s = SerializedState::<Sha256>::try_from(rest).map_err(|_| HashStateError)?;
                Sha256::deserialize(&s)
                    .map(DigestHasher::Sha256)
                    .map_err(|_| HashStateError)
            }
            2 => {
                let s = SerializedState::<Sha512>::try_from(rest).map_err(|_| HashStateError)?;
                Sha512::deserialize(&s)
                    .map(DigestHasher::Sha512)
                    .map_err(|_| HashStateError)
            }
            _ => Err(HashStateError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_canonical_digests() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(Digest::sha256_of(b""), d);
    }

    #[test]
    fn refuses_bad_digests() {
        assert_eq!("sha256".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!(":abc".parse::<Digest>(), Err(DigestError::Malformed));
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        let upper = EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(
            upper.parse::<Digest>(),
            Err(DigestError::BadHex { expected: 64 })
        );
        assert_eq!(
            "sha256:abcd".parse::<Digest>(),
            Err(DigestError::BadHex { expected: 64 })
        );
    }

    #[test]
    fn saved_state_resumes_to_the_same_digest() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            let mut whole = DigestHasher::new(alg);
            whole.update(&data);
            let expected = whole.finish();

            let mut first = DigestHasher::new(alg);
            first.update(&data[..3_333]);
            let saved = first.save();
            let mut resumed = DigestHasher::restore(&saved).unwrap();
            resumed.update(&data[3_333..]);
            assert_eq!(resumed.finish(), expected);
        }
    }

    #[test]
    fn corrupt_state_is_an_error() {
        assert!(DigestHasher::restore(&[]).is_err());
        assert!(DigestHasher::restore(&[1, 2, 3]).is_err());
        assert!(DigestHasher::restore(&[9; 105]).is_err());
    }
}

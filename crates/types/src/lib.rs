//! Names, references, digests, media types and manifest parsing for Wharf. No IO lives here: every
//! function is a pure transformation of bytes and strings, so the rest of the registry can rely on
//! these rules without a database or a network.

pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use name::{NameError, Reference, RepositoryPath, Tag};

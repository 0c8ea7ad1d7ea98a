//! Identities and access: who a caller is and what it may do.
//!
//! - [`password`], [`crypto`]: Quay-compatible bcrypt hashes; field encryption with the
//!   `DATABASE_SECRET_KEY`-derived key; bearer secrets as lookup part + hash.
//! - [`jwt`], `keys`: registry tokens (RS256 with a `kid`) and the instance keys in the
//!   database that sign them.
//! - [`scope`], [`permissions`]: OAuth and registry scopes, and the one module that decides
//!   who may do what (pure functions over facts).
//! - [`Auth`] (`service`, `registry`): checks credentials, gathers facts from the database,
//!   issues and verifies registry tokens.

pub mod crypto;
pub mod jwt;
mod keys;
pub mod password;
pub mod permissions;
mod registry;
pub mod scope;
mod service;
mod users;

pub use registry::{Grants, TokenRequestError};
pub use service::{
    AttemptCounters, AttemptKind, Auth, AuthError, AuthSettings, Facts, Identity,
    InvalidCredentials,
};
pub use users::{UserError, create_user};

//! Identities: who a caller is. For now: password hashing compatible with Quay's stored hashes
//! and the rules for creating user accounts. Registry tokens, robots, OAuth and permission
//! resolution grow here.

pub mod password;
mod users;

pub use users::{UserError, create_user};

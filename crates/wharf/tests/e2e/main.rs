//! End-to-end tests: the real `wharf` binary driven by the real clients people use against a
//! registry (skopeo, podman with buildah, the oras Python SDK, docker with its own daemon) and
//! mirrored to and from a real CNCF Distribution 2.8. Every test checks that what comes out
//! has the same digests as what went in.
//!
//! Wharf wants a registry token on every request: each test creates users with
//! `wharf admin create-user` and gives the clients their credentials (`--creds`, `docker login`,
//! `podman login`, oras' basic auth); pushes go into the user's own namespace, where a push
//! creates the repository. `access` checks what others are refused.
//!
//! The tools are required, not optional: a missing one fails its test with the Debian package
//! to install, because a skipped end-to-end test looks exactly like a passing one in CI.
//! `scripts/e2e-setup.sh` installs all of them and the oras virtualenv.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod access;
mod digest;
mod docker;
mod georeplication;
mod images;
mod oras;
mod podman;
mod processes;
mod registry;
mod robots;
mod skopeo;
mod sync;
mod tls;
mod tools;

//! sea-orm entities, one module per table. Table and column names follow Quay's model where Wharf
//! has the same concept; times are integer milliseconds since the Unix epoch (UTC).

pub mod account;
pub mod app_specific_token;
pub mod blob;
pub mod blob_placement;
pub mod blob_upload;
pub mod manifest;
pub mod manifest_blob;
pub mod manifest_child;
pub mod oauth_access_token;
pub mod oauth_application;
pub mod permission_prototype;
pub mod queue_item;
pub mod repository;
pub mod repository_permission;
pub mod robot;
pub mod service_key;
pub mod storage_location;
pub mod tag;
pub mod team;
pub mod team_member;
pub mod uploaded_blob;
pub mod user_prompt;

//! `/api/v1/repository/<repo>/tag/…` and `…/manifest/<digest>`: the tag history, moving,
//! deleting and restoring tags, and the manifest view (Quay's `endpoints/api/tag.py` and
//! `manifest.py`). Tag changes go through [`wharf_core::Registry`] so its caches learn of them.

use std::time::Duration;

use auth::permissions::Role;
use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use types::{Digest, ManifestKind, ParsedManifest, Reference, Tag};
use wharf_core::RegistryError;

use crate::error::{ApiError, ApiResult};
use crate::repo_request::{Call, require_normal, string_field, truthy};
use crate::views::format_date;

/// Quay's `TAG_ERROR`, the 400 `{"message"}` for a tag name that breaks the rule.
const TAG_ERROR: &str = "Invalid tag: must match [A-Za-z0-9_.-], NOT start with \".\" or \"-\", \
                         and can contain 1-128 characters";

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Db(e) => e.into(),
        RegistryError::ManifestUnknown(_)
        | RegistryError::NameUnknown(_)
        | RegistryError::ReferenceInvalid(_) => ApiError::NotFound,
        other => ApiError::Internal(other.to_string()),
    }
}

fn parse_tag(name: &str) -> Result<Tag, ApiError> {
    Tag::parse(name).map_err(|_| ApiError::Message(StatusCode::BAD_REQUEST, TAG_ERROR.into()))
}

/// A query parameter that must be an integer when given.
fn int_param(call: &Call<'_>, key: &str, default: i64) -> Result<i64, ApiError> {
    match call.param(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            ApiError::invalid(format!(
                "{key}: invalid literal for int() with base 10: '{v}'"
            ))
        }),
    }
}

fn history_view(row: &db::TagHistoryRow) -> Value {
    let is_list = types::media_type::is_index(&row.manifest_media_type);
    let start_s = row.lifetime_start_ms.div_euclid(1000);
    let end_s = row.lifetime_end_ms.map(|ms| ms.div_euclid(1000));
    let mut view = json!({
        "name": row.name,
        "reversion": row.reversion,
        "manifest_digest": row.manifest_digest,
        "is_manifest_list": is_list,
        "size": (!is_list).then_some(row.layers_size),
    });
    if start_s > 0 {
        view["start_ts"] = json!(start_s);
        view["last_modified"] = json!(format_date(start_s * 1000));
    }
    if let Some(end_s) = end_s {
        if end_s > 0 {
            view["end_ts"] = json!(end_s);
        }
        view["expiration"] = json!(format_date(end_s * 1000));
    }
    view
}

/// `GET …/tag/?limit=&page=&onlyActiveTags=&specificTag=`: the tag history, newest first,
/// deleted and moved tags included unless `onlyActiveTags`.
pub async fn list(call: &Call<'_>) -> ApiResult {
    let access = call.access(Role::Read).await?;
    let limit = int_param(call, "limit", 50)?.clamp(1, 100) as u64;
    let page = int_param(call, "page", 1)?.max(1) as u64;
    let query = db::TagHistoryQuery {
        specific_tag: call.param("specificTag").filter(|t| !t.is_empty()),
        only_active: truthy(call.param("onlyActiveTags"), false),
        offset: limit.saturating_mul(page - 1),
        limit,
    };
    let history = call.db().tag_history(access.repo.id, query).await?;
    let tags: Vec<Value> = history.rows.iter().map(history_view).collect();
    Ok(Json(json!({
        "tags": tags,
        "page": page,
        "has_additional": history.has_more,
    }))
    .into_response())
}

/// `PUT …/tag/<tag>` `{manifest_digest}`: creates the tag or moves it to a manifest the
/// repository holds → 201 `"Updated"`.
pub async fn put(call: &Call<'_>, name: &str) -> ApiResult {
    let access = call.access(Role::Write).await?;
    require_normal(&access.repo)?;
    let body = call.json()?;
    let digest = string_field(&body, "manifest_digest", true)?;
    let image = string_field(&body, "image", true)?;
    let expiration = match body.get("expiration") {
        None => None,
        Some(v @ (Value::Null | Value::Number(_))) => Some(v),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{other} is not of type 'number', 'null'"
            )));
        }
    };
    let tag = parse_tag(name)?;
    let registry = &call.state.registry;
    if let Some(expiration) = expiration {
        // Unix seconds in the future, or null for "never".
        let end_ms = match expiration.as_f64() {
            None => None,
            Some(secs) if secs * 1000.0 > db::now_ms() as f64 => Some((secs * 1000.0) as i64),
            Some(_) => {
                return Err(ApiError::invalid(
                    "Could not update tag expiration; the expiration date must be in the future",
                ));
            }
        };
        if !registry
            .set_tag_expiration(&access.repo, &tag, end_ms)
            .await
            .map_err(registry_error)?
        {
            return Err(ApiError::NotFound);
        }
    }
    if let Some(digest) = digest {
        let digest: Digest = digest.parse().map_err(|_| ApiError::NotFound)?;
        registry
            .retarget_tag(&access.repo, &tag, &digest)
            .await
            .map_err(registry_error)?
            .ok_or(ApiError::NotFound)?;
    } else if image.is_some() {
        // Quay's legacy image ids: Wharf stores none.
        return Err(ApiError::NotFound);
    }
    Ok((StatusCode::CREATED, Json(json!("Updated"))).into_response())
}

/// `DELETE …/tag/<tag>` → 204, whether or not the tag existed (Quay 3.6). The tag's lifetime
/// ends; it stays in the history and can be restored within the time-machine window.
pub async fn delete(call: &Call<'_>, name: &str) -> ApiResult {
    let access = call.access(Role::Write).await?;
    require_normal(&access.repo)?;
    if let Ok(tag) = Tag::parse(name) {
        let deleted = call
            .state
            .registry
            .delete_manifest(&access.repo, &Reference::Tag(tag))
            .await;
        match deleted {
            Ok(()) | Err(RegistryError::ManifestUnknown(_)) => {}
            Err(e) => return Err(registry_error(e)),
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST …/tag/<tag>/restore` `{manifest_digest}` → `{}`: points the tag at the manifest again,
/// which may have lost its tags within the namespace's time-machine window.
pub async fn restore(call: &Call<'_>, name: &str) -> ApiResult {
    let access = call.access(Role::Write).await?;
    require_normal(&access.repo)?;
    let body = call.json()?;
    let digest = string_field(&body, "manifest_digest", true)?;
    let image = string_field(&body, "image", true)?;
    let Some(digest) = digest else {
        if image.is_some() {
            // A legacy image id: Wharf stores none.
            return Err(ApiError::NotFound);
        }
        return Err(ApiError::invalid("Missing manifest_digest"));
    };
    let tag = parse_tag(name)?;
    let digest: Digest = digest.parse().map_err(|_| ApiError::NotFound)?;
    let window_s = access.facts.namespace_row.removed_tag_expiration_s.max(0);
    let restored = call
        .state
        .registry
        .restore_tag(
            &access.repo,
            &tag,
            &digest,
            Duration::from_secs(window_s as u64),
        )
        .await
        .map_err(registry_error)?;
    if !restored {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({})).into_response())
}

/// `POST …/tag/<tag>/expire` `{manifest_digest, is_alive, include_submanifests}` → `{}`
/// (`PERMANENTLY_DELETE_TAGS`): takes the tag's lifetime that pointed at the manifest out of the
/// time machine, so that it cannot be restored and garbage collection frees what only it kept.
/// `is_alive` names the current lifetime (the tag is deleted and expired at once), otherwise a
/// lifetime that already ended. Manifest-list children need nothing extra: once the list is
/// collected, children no tag keeps go with it.
pub async fn expire(call: &Call<'_>, name: &str) -> ApiResult {
    if !call.state.features.permanently_delete_tags {
        return Err(ApiError::NotFound);
    }
    let access = call.access(Role::Write).await?;
    require_normal(&access.repo)?;
    let body = call.json()?;
    let Some(digest) = string_field(&body, "manifest_digest", true)? else {
        return Err(ApiError::invalid("Missing manifest_digest"));
    };
    let is_alive = body
        .get("is_alive")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let tag = parse_tag(name)?;
    let digest: Digest = digest.parse().map_err(|_| ApiError::NotFound)?;
    let window_s = access.facts.namespace_row.removed_tag_expiration_s.max(0);
    let expired = call
        .state
        .registry
        .expire_tag_now(
            &access.repo,
            &tag,
            &digest,
            is_alive,
            Duration::from_secs(window_s as u64),
        )
        .await
        .map_err(registry_error)?;
    if !expired {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({})).into_response())
}

/// `GET …/manifest/<digest>`: the stored manifest and its layers.
pub async fn manifest(call: &Call<'_>, digest: &str) -> ApiResult {
    let access = call.access(Role::Read).await?;
    let digest: Digest = digest.parse().map_err(|_| ApiError::NotFound)?;
    let row = call
        .state
        .registry
        .manifest(&access.repo, &Reference::Digest(digest))
        .await
        .map_err(registry_error)?;
    let not_loadable = || {
        ApiError::Message(
            StatusCode::NOT_FOUND,
            "The requested URL was not found on the server.".into(),
        )
    };
    let parsed =
        ParsedManifest::parse(Some(&row.media_type), &row.bytes).map_err(|_| not_loadable())?;
    // `urls` (foreign layers) are not part of the parsed descriptors.
    let raw: Value = serde_json::from_slice(&row.bytes).map_err(|_| not_loadable())?;
    let is_list = matches!(parsed.kind, ManifestKind::Index { .. });
    let layers: Option<Vec<Value>> = match &parsed.kind {
        ManifestKind::Image { layers, .. } if !layers.is_empty() => Some(
            layers
                .iter()
                .enumerate()
                .map(|(index, layer)| {
                    let urls = raw["layers"][index]["urls"].clone();
                    let is_remote = urls.as_array().is_some_and(|u| !u.is_empty());
                    json!({
                        "index": index,
                        "compressed_size": layer.size,
                        "is_remote": is_remote,
                        "urls": if urls.is_array() { urls } else { Value::Null },
                        "command": null,
                        "comment": null,
                        "author": null,
                        "blob_digest": layer.digest.to_string(),
                        "created_datetime": null,
                    })
                })
                .collect(),
        ),
        _ => None,
    };
    Ok(Json(json!({
        "digest": row.digest,
        "is_manifest_list": is_list,
        "manifest_data": String::from_utf8_lossy(&row.bytes),
        "config_media_type": parsed.config_media_type(),
        "layers": layers,
    }))
    .into_response())
}

//! Tag changes that do not come with a manifest push (Quay's API moves and restores tags), and
//! forgetting cached repository rows after the API changed or deleted a repository.

use std::time::Duration;

use db::{RepositoryRow, RetargetOutcome};
use types::{Digest, Tag};

use crate::{Registry, RegistryError, now_ms};

impl Registry {
    /// Points `tag` at the alive manifest `digest` of the repository. None when the
    /// repository holds no such manifest; otherwise whether the tag existed before.
    pub async fn retarget_tag(
        &self,
        repo: &RepositoryRow,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<Option<bool>, RegistryError> {
        let outcome = self
            .inner
            .db
            .retarget_tag(repo.id, tag.as_str(), &digest.to_string(), None)
            .await?;
        self.tags_changed(repo.id, Some(tag.as_str()));
        Ok(match outcome {
            RetargetOutcome::Retargeted { existed } => Some(existed),
            RetargetOutcome::ManifestUnknown => None,
        })
    }

    /// Points `tag` at the manifest `digest` again, which may have lost its last tag up to
    /// `window` ago (the namespace's time machine). False when no such manifest is restorable.
    pub async fn restore_tag(
        &self,
        repo: &RepositoryRow,
        tag: &Tag,
        digest: &Digest,
        window: Duration,
    ) -> Result<bool, RegistryError> {
        let since = now_ms().saturating_sub(window.as_millis() as i64);
        let outcome = self
            .inner
            .db
            .retarget_tag(repo.id, tag.as_str(), &digest.to_string(), Some(since))
            .await?;
        self.tags_changed(repo.id, Some(tag.as_str()));
        Ok(matches!(outcome, RetargetOutcome::Retargeted { .. }))
    }

    /// Makes the visible tag `tag` end at `end_ms` (None: never). False when no such tag is
    /// alive.
    pub async fn set_tag_expiration(
        &self,
        repo: &RepositoryRow,
        tag: &Tag,
        end_ms: Option<i64>,
    ) -> Result<bool, RegistryError> {
        let changed = self
            .inner
            .db
            .set_tag_expiration(repo.id, tag.as_str(), end_ms)
            .await?;
        self.tags_changed(repo.id, Some(tag.as_str()));
        Ok(changed)
    }

    /// Takes a lifetime of `tag` that pointed at `digest` out of the time machine: the alive one
    /// (`is_alive`, which also deletes the tag) or one that ended within `window`. False when
    /// there is no such lifetime.
    pub async fn expire_tag_now(
        &self,
        repo: &RepositoryRow,
        tag: &Tag,
        digest: &Digest,
        is_alive: bool,
        window: Duration,
    ) -> Result<bool, RegistryError> {
        let expired = self
            .inner
            .db
            .expire_tag_lifetime(
                repo.id,
                tag.as_str(),
                &digest.to_string(),
                is_alive,
                window.as_millis() as i64,
            )
            .await?;
        self.tags_changed(repo.id, Some(tag.as_str()));
        Ok(expired)
    }

    /// Drops the cached row of the repository `namespace/name` after its settings changed or it
    /// was deleted, so the next request reads it again (and a recreated repository of that
    /// name is not confused with the deleted one).
    pub fn forget_repository(&self, namespace: &str, name: &str) {
        self.inner
            .repositories
            .invalidate(&format!("{namespace}/{name}"));
    }
}

//! Tag lists and the catalog, paginated by the last name seen (keyset pagination): a page costs
//! the same however far into the list it is.

use std::sync::Arc;

use db::RepositoryRow;

use crate::{Registry, RegistryError};

/// Largest page served, whatever the client asks for.
const MAX_PAGE: u64 = 10_000;
/// Page size when the client does not say: whole lists up to the cap in one response, as
/// clients that ignore `Link` expect.
const DEFAULT_PAGE: u64 = MAX_PAGE;
/// Repositories with at most this many tags keep their sorted tag list in memory: listing it
/// from the database costs far more per row than paging through a vector.
const CACHED_TAG_LIST: u64 = 50_000;

/// One page of names; `more` says whether a next page exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    pub more: bool,
}

fn page_size(n: Option<u64>) -> u64 {
    n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
}

impl Registry {
    /// Visible tags of the repository in lexical order after `last`.
    pub async fn list_tags(
        &self,
        repo: &RepositoryRow,
        n: Option<u64>,
        last: Option<&str>,
    ) -> Result<Page, RegistryError> {
        let size = page_size(n);
        if size == 0 {
            return Ok(Page {
                names: vec![],
                more: false,
            });
        }
        let all = match self.inner.tag_lists.get(&repo.id) {
            Some(all) => all,
            None => {
                let all = self
                    .inner
                    .db
                    .list_tags(repo.id, None, CACHED_TAG_LIST + 1)
                    .await?;
                if all.len() as u64 > CACHED_TAG_LIST {
                    // Too many to keep: page straight from the database.
                    let mut names = self.inner.db.list_tags(repo.id, last, size + 1).await?;
                    let more = names.len() as u64 > size;
                    names.truncate(size as usize);
                    return Ok(Page { names, more });
                }
                let all = Arc::new(all);
                self.inner.tag_lists.insert(repo.id, all.clone());
                all
            }
        };
        let start = last.map_or(0, |last| all.partition_point(|name| name.as_str() <= last));
        let end = start.saturating_add(size as usize).min(all.len());
        Ok(Page {
            names: all[start..end].to_vec(),
            more: end < all.len(),
        })
    }

    /// Repository names in lexical order after `last`.
    pub async fn catalog(
        &self,
        viewer: db::Viewer,
        n: Option<u64>,
        last: Option<&str>,
    ) -> Result<Page, RegistryError> {
        let size = page_size(n);
        if size == 0 {
            return Ok(Page {
                names: vec![],
                more: false,
            });
        }
        let after = last.and_then(|l| l.split_once('/'));
        let mut names = self
            .inner
            .db
            .list_repositories(viewer, after, size + 1)
            .await?;
        let more = names.len() as u64 > size;
        names.truncate(size as usize);
        Ok(Page { names, more })
    }
}

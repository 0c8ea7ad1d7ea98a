//! Data the client holds (one image per blob size) and what each registry must contain before
//! a scenario runs: images to pull, a manifest to read (privately and publicly), a repository
//! with many tags, many repositories. Set-up is done once per registry and is not timed; it
//! also fetches the tokens the timed reads reuse.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context as _, ensure};
use futures::{StreamExt, TryStreamExt};

use crate::client::Registry;
use crate::payload::{Image, Size, sha256_digest};
use crate::runner::Context;
use crate::scenario::Work;

/// Concurrency of fixture creation.
const SETUP_CONCURRENCY: usize = 16;

/// The images of every size the selected scenarios use, generated once.
pub struct Data {
    images: BTreeMap<Size, Image>,
}

impl Data {
    pub fn generate(sizes: impl IntoIterator<Item = Size>) -> Self {
        let mut images = BTreeMap::new();
        for size in sizes.into_iter().chain([Size::Tiny]) {
            images.entry(size).or_insert_with(|| Image::generate(size));
        }
        Data { images }
    }

    pub fn image(&self, size: Size) -> anyhow::Result<&Image> {
        self.images
            .get(&size)
            .with_context(|| format!("no {} payload was generated", size.label()))
    }

    pub fn total_bytes(&self) -> u64 {
        self.images.values().map(|i| i.layer.len()).sum()
    }
}

/// The fixtures already present in one registry.
#[derive(Default)]
pub struct Prepared {
    pulls: BTreeSet<Size>,
    manifest: bool,
    public: bool,
    tags: bool,
    catalog: bool,
}

/// Makes sure the registry holds what `work` reads. Returns a description of what was
/// created, for the log, or `None` when nothing had to be done.
pub async fn prepare(
    ctx: &Context,
    prepared: &mut Prepared,
    work: Work,
) -> anyhow::Result<Option<String>> {
    let (registry, data, names) = (&*ctx.registry, &*ctx.data, &*ctx.names);
    let list_size = ctx.list_size;
    let start = Instant::now();
    let mut done = Vec::new();
    for size in work.pull_sizes() {
        if prepared.pulls.insert(size) {
            push_and_verify(registry, &names.pull(size), data.image(size)?).await?;
            done.push(format!("{} image to pull", size.label()));
        }
    }
    match work {
        Work::ManifestHead | Work::ManifestGet | Work::Token if !prepared.manifest => {
            push_and_verify(registry, &names.manifest(), data.image(Size::Tiny)?).await?;
            prepared.manifest = true;
            done.push("manifest to read".into());
        }
        Work::ManifestHeadPublic if !prepared.public => {
            let repo = names.public();
            push_and_verify(registry, &repo, data.image(Size::Tiny)?).await?;
            // The client without credentials reads it once: on a token registry this fetches
            // the anonymous token the timed runs reuse, and fails if the repository is not
            // public.
            ctx.anonymous
                .head_manifest(&repo, "latest")
                .await
                .with_context(|| {
                    format!(
                        "a client without credentials cannot read {repo}: it must be public \
                         (scripts/bench makes it public on Wharf)"
                    )
                })?;
            prepared.public = true;
            done.push(format!("public manifest to read anonymously ({repo})"));
        }
        Work::TagList if !prepared.tags => {
            let image = data.image(Size::Tiny)?;
            let repo = names.tags();
            let repo = repo.as_str();
            registry.push_image(repo, "t00000", image).await?;
            futures::stream::iter(1..list_size)
                .map(|i| async move {
                    registry
                        .put_manifest(repo, &tag_name(i), &image.manifest)
                        .await
                })
                .buffer_unordered(SETUP_CONCURRENCY)
                .try_collect::<()>()
                .await?;
            prepared.tags = true;
            done.push(format!("{list_size} tags in {repo}"));
        }
        Work::Catalog if !prepared.catalog => {
            // One tiny blob per repository (no manifest): two requests per repository.
            let layer = &data.image(Size::Tiny)?.layer;
            futures::stream::iter(0..list_size)
                .map(|i| async move { registry.push_monolithic(&names.catalog(i), layer).await })
                .buffer_unordered(SETUP_CONCURRENCY)
                .try_collect::<()>()
                .await?;
            prepared.catalog = true;
            done.push(format!("{list_size} repositories with one blob each"));
        }
        _ => {}
    }
    Ok((!done.is_empty()).then(|| {
        format!(
            "{} in {:.1} s",
            done.join(", "),
            start.elapsed().as_secs_f64()
        )
    }))
}

fn tag_name(i: usize) -> String {
    format!("t{i:05}")
}

/// Pushes `image` as `repo:latest` and reads it back once, checking the layer's content, so a
/// registry that serves wrong bytes cannot post good pull numbers.
async fn push_and_verify(registry: &Registry, repo: &str, image: &Image) -> anyhow::Result<()> {
    registry.push_image(repo, "latest", image).await?;
    let manifest = registry.get_manifest(repo, "latest").await?;
    ensure!(
        sha256_digest(&manifest) == image.manifest.digest,
        "{repo}:latest: the manifest read back differs from the one pushed"
    );
    let layer = registry.get_blob_bytes(repo, &image.layer.digest).await?;
    ensure!(
        sha256_digest(&layer) == image.layer.digest,
        "{repo}: the layer read back ({} bytes) differs from the one pushed",
        layer.len()
    );
    Ok(())
}

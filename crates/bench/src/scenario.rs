//! The scenario list. Names follow zot's `zb` so numbers compare across registries; one
//! operation is one complete client action (a whole push or pull), not one HTTP call.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::Access;
use crate::client::Registry;
use crate::fixtures::Data;
use crate::payload::Size;
use crate::runner::Context;

/// Which blob size the i-th operation of a scenario uses. The mixes are fixed sequences, so
/// every registry gets exactly the same operations in the same order.
#[derive(Clone, Copy, Debug)]
pub enum Mix {
    One(Size),
    /// zb's pull and monolithic-push mix: 20 % 1 MB, 70 % 10 MB, 10 % 100 MB.
    Mixed20_70_10,
    /// zb's chunked-push mix: a third of each size.
    Thirds,
}

impl Mix {
    pub fn size(self, index: usize) -> Size {
        const MIXED: [Size; 10] = [
            Size::M10,
            Size::M1,
            Size::M10,
            Size::M10,
            Size::M100,
            Size::M10,
            Size::M10,
            Size::M1,
            Size::M10,
            Size::M10,
        ];
        match self {
            Mix::One(size) => size,
            Mix::Mixed20_70_10 => MIXED[index % MIXED.len()],
            Mix::Thirds => [Size::M1, Size::M10, Size::M100][index % 3],
        }
    }

    pub fn sizes(self) -> Vec<Size> {
        match self {
            Mix::One(size) => vec![size],
            Mix::Mixed20_70_10 | Mix::Thirds => vec![Size::M1, Size::M10, Size::M100],
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// POST + PUT of the layer, POST + PUT of the config, PUT of the manifest, in a fresh repo.
    PushMonolith(Mix),
    /// POST, one streamed PATCH, PUT ?digest=, in a fresh repo.
    PushStreamed(Mix),
    /// HEAD + GET of the manifest by tag, GET of the config and the layer.
    Pull(Mix),
    /// Three pulls for every push (a monolithic push), one size.
    PullPush(Size),
    ManifestHead,
    /// Manifest HEAD on a public repository by a client without credentials: on a registry
    /// with token auth, the anonymous token path (compare with [`Work::ManifestHead`]).
    ManifestHeadPublic,
    ManifestGet,
    /// `GET <realm>?service=…&scope=repository:<manifest repo>:pull` with the credentials:
    /// only on registries that asked for tokens.
    Token,
    /// The whole tag list of a repository with `list_size` tags, following `Link`.
    TagList,
    /// The whole catalog of at least `list_size` repositories, following `Link`.
    Catalog,
}

impl Work {
    /// Whether the headline figure is MB/s (blob traffic) rather than operations per second.
    pub fn moves_data(self) -> bool {
        matches!(
            self,
            Work::PushMonolith(_) | Work::PushStreamed(_) | Work::Pull(_) | Work::PullPush(_)
        )
    }

    /// Blob sizes whose payload the client must hold.
    pub fn payload_sizes(self) -> Vec<Size> {
        match self {
            Work::PushMonolith(mix) | Work::PushStreamed(mix) | Work::Pull(mix) => mix.sizes(),
            Work::PullPush(size) => vec![size],
            Work::ManifestHead
            | Work::ManifestHeadPublic
            | Work::ManifestGet
            | Work::Token
            | Work::TagList
            | Work::Catalog => vec![],
        }
    }

    /// Whether the scenario only makes sense on a registry that hands out tokens.
    pub fn needs_token_realm(self) -> bool {
        matches!(self, Work::Token)
    }

    /// Images that must already be in the registry, pushed once before the first run.
    pub fn pull_sizes(self) -> Vec<Size> {
        match self {
            Work::Pull(mix) => mix.sizes(),
            Work::PullPush(size) => vec![size],
            _ => vec![],
        }
    }
}

pub struct Scenario {
    pub name: String,
    pub work: Work,
    pub count: usize,
    pub concurrency: usize,
}

/// Knobs that shape the list.
pub struct Plan {
    pub quick: bool,
    /// Concurrency of the blob scenarios.
    pub concurrency: usize,
    /// Number of tags in the tag-list repository and of repositories in the catalog.
    pub list_size: usize,
}

impl Plan {
    fn blob_count(&self, size: Size) -> usize {
        match (self.quick, size) {
            (false, Size::Tiny | Size::M1) => 200,
            (false, Size::M10) => 60,
            (false, Size::M100) => 12,
            (false, Size::G1) => 3,
            (true, Size::Tiny | Size::M1) => 30,
            (true, Size::M10) => 10,
            (true, Size::M100) => 4,
            (true, Size::G1) => 1,
        }
    }

    fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

fn list_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Every scenario, in run order. Metadata scenarios come first so the catalog holds the
/// catalog fixture and little else; the push scenarios create a repository per operation.
pub fn all(plan: &Plan) -> Vec<Scenario> {
    let c = plan.concurrency;
    let sizes = [Size::M1, Size::M10, Size::M100];
    let lists = list_label(plan.list_size);
    let mut out = vec![
        Scenario {
            name: format!("Get Catalog {lists}"),
            work: Work::Catalog,
            count: plan.pick(10, 3),
            concurrency: 2,
        },
        Scenario {
            name: format!("Tag List {lists}"),
            work: Work::TagList,
            count: plan.pick(40, 10),
            concurrency: 4,
        },
    ];
    for (work, verb) in [
        (Work::ManifestHead, "HEAD"),
        (Work::ManifestHeadPublic, "HEAD"),
        (Work::ManifestGet, "GET"),
    ] {
        let public = if matches!(work, Work::ManifestHeadPublic) {
            " public anonymous"
        } else {
            ""
        };
        for (concurrency, full, quick) in
            [(1, 2_000, 300), (16, 10_000, 1_500), (64, 20_000, 3_000)]
        {
            out.push(Scenario {
                name: format!("Manifest {verb} by tag{public} c{concurrency}"),
                work,
                count: plan.pick(full, quick),
                concurrency,
            });
        }
    }
    for (concurrency, full, quick) in [(1, 1_000, 150), (16, 4_000, 600)] {
        out.push(Scenario {
            name: format!("Token c{concurrency}"),
            work: Work::Token,
            count: plan.pick(full, quick),
            concurrency,
        });
    }
    for size in sizes {
        out.push(Scenario {
            name: format!("Pull {}", size.label()),
            work: Work::Pull(Mix::One(size)),
            count: plan.blob_count(size),
            concurrency: c,
        });
    }
    out.push(Scenario {
        name: "Pull Mixed 20/70/10".into(),
        work: Work::Pull(Mix::Mixed20_70_10),
        count: plan.pick(100, 20),
        concurrency: c,
    });
    for size in sizes {
        out.push(Scenario {
            name: format!("Push Monolith {}", size.label()),
            work: Work::PushMonolith(Mix::One(size)),
            count: plan.blob_count(size),
            concurrency: c,
        });
    }
    out.push(Scenario {
        name: "Push Monolith Mixed 20/70/10".into(),
        work: Work::PushMonolith(Mix::Mixed20_70_10),
        count: plan.pick(100, 20),
        concurrency: c,
    });
    for size in sizes {
        out.push(Scenario {
            name: format!("Push Chunk Streamed {}", size.label()),
            work: Work::PushStreamed(Mix::One(size)),
            count: plan.blob_count(size),
            concurrency: c,
        });
    }
    out.push(Scenario {
        name: "Push Chunk Mixed 33/33/33".into(),
        work: Work::PushStreamed(Mix::Thirds),
        count: plan.pick(60, 12),
        concurrency: c,
    });
    for size in sizes {
        out.push(Scenario {
            name: format!("Pull 75% Push 25% {}", size.label()),
            work: Work::PullPush(size),
            count: plan.blob_count(size),
            concurrency: c,
        });
    }
    out.push(Scenario {
        name: "Push Chunk Streamed 1GB".into(),
        work: Work::PushStreamed(Mix::One(Size::G1)),
        count: plan.blob_count(Size::G1),
        concurrency: 1,
    });
    out
}

/// What one operation did, for throughput figures.
#[derive(Default, Clone, Copy)]
pub struct Outcome {
    /// Blob bytes sent or received.
    pub bytes: u64,
    /// Entries of a list operation.
    pub entries: u64,
    /// Pages of a list operation.
    pub pages: u32,
}

/// Repository names, all under one namespace (`--namespace`): the fixtures' fixed names and
/// the fresh repositories push operations create. The fresh-name prefix differs per process so
/// a rerun against the same data directory still pushes into new repositories.
pub struct Names {
    namespace: String,
    prefix: String,
    next: AtomicU64,
}

impl Names {
    pub fn new(namespace: &str) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Names {
            namespace: namespace.to_string(),
            prefix: format!("{namespace}/push-{millis:x}"),
            next: AtomicU64::new(0),
        }
    }

    pub fn fresh(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }

    /// The repository the manifest HEAD/GET and token scenarios read (`:latest`).
    pub fn manifest(&self) -> String {
        format!("{}/manifest", self.namespace)
    }

    /// The public repository anonymous clients read (`:latest`).
    pub fn public(&self) -> String {
        format!("{}/public", self.namespace)
    }

    /// The repository holding the tag-list fixture.
    pub fn tags(&self) -> String {
        format!("{}/tags", self.namespace)
    }

    pub fn pull(&self, size: Size) -> String {
        format!("{}/pull-{}", self.namespace, size.slug())
    }

    pub fn catalog(&self, i: usize) -> String {
        format!("{}/catalog-{i:05}", self.namespace)
    }
}

/// Runs operation number `index` of `work`.
pub async fn run_op(ctx: &Context, work: Work, index: usize) -> anyhow::Result<Outcome> {
    let (registry, data, names) = (&*ctx.registry, &*ctx.data, &*ctx.names);
    match work {
        Work::PushMonolith(mix) => push_monolith(registry, data, names, mix.size(index)).await,
        Work::PushStreamed(mix) => {
            let blob = &data.image(mix.size(index))?.layer;
            registry.push_streamed(&names.fresh(), blob).await?;
            Ok(Outcome {
                bytes: blob.len(),
                ..Outcome::default()
            })
        }
        Work::Pull(mix) => pull(registry, names, mix.size(index)).await,
        Work::PullPush(size) if index % 4 == 3 => push_monolith(registry, data, names, size).await,
        Work::PullPush(size) => pull(registry, names, size).await,
        Work::ManifestHead => {
            registry.head_manifest(&names.manifest(), "latest").await?;
            Ok(Outcome::default())
        }
        Work::ManifestHeadPublic => {
            ctx.anonymous
                .head_manifest(&names.public(), "latest")
                .await?;
            Ok(Outcome::default())
        }
        Work::ManifestGet => {
            let body = registry.get_manifest(&names.manifest(), "latest").await?;
            Ok(Outcome {
                bytes: body.len() as u64,
                ..Outcome::default()
            })
        }
        Work::Token => {
            let scope = Access::Pull(&names.manifest()).scope();
            registry.request_token(&scope).await?;
            Ok(Outcome::default())
        }
        Work::TagList => {
            let repo = names.tags();
            let path = format!("/v2/{repo}/tags/list");
            let (entries, pages) = registry
                .list_all(&path, Access::Pull(&repo), "tags")
                .await?;
            anyhow::ensure!(
                entries as usize == ctx.list_size,
                "tag list has {entries} tags, expected {}",
                ctx.list_size
            );
            Ok(Outcome {
                entries,
                pages,
                ..Outcome::default()
            })
        }
        Work::Catalog => {
            let (entries, pages) = registry
                .list_all("/v2/_catalog", Access::Registry, "repositories")
                .await?;
            anyhow::ensure!(
                entries as usize >= ctx.list_size,
                "catalog lists {entries} repositories, expected at least {}",
                ctx.list_size
            );
            Ok(Outcome {
                entries,
                pages,
                ..Outcome::default()
            })
        }
    }
}

async fn push_monolith(
    registry: &Registry,
    data: &Data,
    names: &Names,
    size: Size,
) -> anyhow::Result<Outcome> {
    let image = data.image(size)?;
    registry.push_image(&names.fresh(), "latest", image).await?;
    Ok(Outcome {
        bytes: image.layer.len(),
        ..Outcome::default()
    })
}

async fn pull(registry: &Registry, names: &Names, size: Size) -> anyhow::Result<Outcome> {
    let bytes = registry.pull_image(&names.pull(size), "latest").await?;
    Ok(Outcome {
        bytes,
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_have_the_zb_proportions() {
        let count = |mix: Mix, size| (0..100).filter(|&i| mix.size(i) == size).count();
        assert_eq!(count(Mix::Mixed20_70_10, Size::M1), 20);
        assert_eq!(count(Mix::Mixed20_70_10, Size::M10), 70);
        assert_eq!(count(Mix::Mixed20_70_10, Size::M100), 10);
        assert_eq!(count(Mix::Thirds, Size::M100), 33);
    }

    #[test]
    fn scenario_names_are_unique() {
        let plan = Plan {
            quick: false,
            concurrency: 4,
            list_size: 10_000,
        };
        let scenarios = all(&plan);
        let mut names: Vec<_> = scenarios.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        assert!(names.contains(&"Get Catalog 10k"));
        assert!(names.contains(&"Manifest HEAD by tag public anonymous c64"));
        assert!(names.contains(&"Token c16"));
    }

    #[test]
    fn repository_names_live_in_the_namespace() {
        let names = Names::new("bench");
        assert_eq!(names.manifest(), "bench/manifest");
        assert_eq!(names.pull(Size::M10), "bench/pull-10mb");
        assert_eq!(names.catalog(7), "bench/catalog-00007");
        let fresh = names.fresh();
        assert!(fresh.starts_with("bench/push-") && fresh.ends_with("-0"));
        assert_eq!(Names::new("org/team").tags(), "org/team/tags");
    }
}

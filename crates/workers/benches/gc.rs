//! Garbage-collection throughput: how fast `gcworker` frees 10,000 garbage blobs, with the
//! offline `garbage-collect` of CNCF Distribution 2.8 (Debian's `docker-registry`) on the
//! same garbage as the baseline measured in the same run.
//!
//! ```sh
//! cargo bench -p workers --bench gc [-- --blobs 10000 --engine sqlite|postgres --reps 3]
//! ```
//!
//! Each repetition starts from nothing: a fresh database (a SQLite file, and a PostgreSQL
//! database through `db::testing`, found by `WHARF_TEST_PG`) and a fresh `LocalStore`
//! directory. The garbage is made the way clients make it, through `wharf_core::Registry`:
//! images of one config and a few layers (small blobs) are pushed (`start_upload`, then
//! `finish_upload` with the bytes, as a monolithic `POST` + `PUT ?digest=` does) and tagged,
//! the namespace's time-machine window is set to 0 seconds, blobs are unprotected as soon as
//! they are pushed (`uploaded_blob_expiration` 0) and every tag is deleted. Rows and files are
//! counted before the clock starts. Only the collection is timed: `GcWorker::work()` units
//! until one answers Idle with no blob row left. Afterwards every blob row, manifest, tag, push
//! protection and object file must be gone, or the benchmark fails rather than report a number
//! that measured nothing.
//!
//! The baseline pushes the same images over HTTP to `docker-registry serve` (filesystem root
//! in a temporary directory, deletes enabled), deletes every manifest by digest, stops the
//! server and times `docker-registry garbage-collect --delete-untagged`, which must remove every
//! blob data file (Distribution keeps manifests as blobs too, so it deletes N + manifests
//! objects where Wharf deletes N objects and the manifests' rows). Distribution's collector runs
//! offline, with the registry stopped; Wharf's runs beside live pushes, in short transactions
//! that a concurrent push cannot lose data to.
//!
//! Options (after `--`): `--blobs N` (10000), `--engine sqlite|postgres|all` (all), `--reps N`
//! (3), `--blobs-per-image N` (5: a config and 4 layers), `--repos N` (100), `--blob-size BYTES`
//! (256), `--concurrency N` (8, for the untimed set-up), `--no-distribution`. Run without
//! `--bench` (as `cargo test --benches` does) it makes a quick check instead: 100 blobs,
//! SQLite, one repetition, no baseline.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use db::testing::{Engine, TestDb};
use futures::TryStreamExt as _;
use types::Digest;
use wharf_core::{BodyStream, Registry, Settings};
use workers::{GcWorker, Work, Worker as _};

// Not `benches/distribution.rs`: Cargo would take that for a benchmark of its own.
#[path = "gc/distribution.rs"]
mod distribution;

const NAMESPACE: &str = "gcbench";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Units after which a collector that keeps finding garbage counts as stuck.
const MAX_UNITS: u64 = 100_000;

struct Args {
    blobs: usize,
    engines: Vec<Engine>,
    reps: usize,
    blobs_per_image: usize,
    repos: usize,
    blob_size: usize,
    concurrency: usize,
    distribution: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        // Cargo passes `--bench` to a benchmark run; without it this is a test run.
        let bench = raw.iter().any(|a| a == "--bench");
        let mut args = Args {
            blobs: if bench { 10_000 } else { 100 },
            engines: if bench {
                vec![Engine::Sqlite, Engine::Postgres]
            } else {
                vec![Engine::Sqlite]
            },
            reps: if bench { 3 } else { 1 },
            blobs_per_image: 5,
            repos: if bench { 100 } else { 4 },
            blob_size: 256,
            concurrency: 8,
            distribution: bench,
        };
        let mut it = raw.into_iter().filter(|a| a != "--bench");
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            let mut number = |name: &str| -> anyhow::Result<usize> {
                let v = value(name)?;
                let n: usize = v
                    .parse()
                    .with_context(|| format!("{name} needs a number, not {v:?}"))?;
                ensure!(n > 0, "{name} must be at least 1");
                Ok(n)
            };
            match arg.as_str() {
                "--blobs" => args.blobs = number("--blobs")?,
                "--reps" => args.reps = number("--reps")?,
                "--blobs-per-image" => args.blobs_per_image = number("--blobs-per-image")?,
                "--repos" => args.repos = number("--repos")?,
                "--blob-size" => args.blob_size = number("--blob-size")?,
                "--concurrency" => args.concurrency = number("--concurrency")?,
                "--engine" => {
                    args.engines = match value("--engine")?.as_str() {
                        "sqlite" => vec![Engine::Sqlite],
                        "postgres" => vec![Engine::Postgres],
                        "all" => vec![Engine::Sqlite, Engine::Postgres],
                        other => bail!("--engine takes sqlite, postgres or all, not {other:?}"),
                    }
                }
                "--no-distribution" => args.distribution = false,
                "-h" | "--help" => {
                    println!(
                        "cargo bench -p workers --bench gc -- [--blobs N] [--engine \
                         sqlite|postgres|all] [--reps N] [--blobs-per-image N] [--repos N] \
                         [--blob-size BYTES] [--concurrency N] [--no-distribution]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown option {other:?} (see --help)"),
            }
        }
        ensure!(
            args.blobs_per_image >= 2,
            "--blobs-per-image must be at least 2 (a config and a layer)"
        );
        ensure!(
            args.blobs.is_multiple_of(args.blobs_per_image),
            "--blobs ({}) must be a multiple of --blobs-per-image ({})",
            args.blobs,
            args.blobs_per_image
        );
        ensure!(args.blob_size >= 16, "--blob-size must be at least 16");
        Ok(args)
    }
}

/// A blob the client holds.
#[derive(Clone)]
struct Blob {
    digest: Digest,
    data: Bytes,
}

/// An image: a config and layers, its manifest, and where it is pushed.
struct Image {
    repo: String,
    tag: String,
    blobs: Vec<Blob>,
    manifest: Blob,
}

/// The images that make `args.blobs` distinct blobs, spread round robin over the repositories.
fn images(args: &Args) -> Vec<Image> {
    let count = args.blobs / args.blobs_per_image;
    (0..count)
        .map(|i| {
            let blobs: Vec<Blob> = (0..args.blobs_per_image)
                .map(|j| {
                    let n = (i * args.blobs_per_image + j) as u64;
                    let data = if j == 0 {
                        let mut config = format!(
                            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"gc-bench":"{n}"}}}}}}"#
                        )
                        .into_bytes();
                        config.resize(config.len().max(args.blob_size), b' ');
                        config
                    } else {
                        n.to_le_bytes()
                            .iter()
                            .copied()
                            .cycle()
                            .take(args.blob_size)
                            .enumerate()
                            .map(|(k, b)| b ^ (k as u8))
                            .collect()
                    };
                    blob(data)
                })
                .collect();
            let descriptor = |b: &Blob, media_type: &str| {
                serde_json::json!({
                    "mediaType": media_type,
                    "digest": b.digest.to_string(),
                    "size": b.data.len(),
                })
            };
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": descriptor(&blobs[0], "application/vnd.oci.image.config.v1+json"),
                "layers": blobs[1..]
                    .iter()
                    .map(|b| descriptor(b, "application/vnd.oci.image.layer.v1.tar"))
                    .collect::<Vec<_>>(),
            });
            Image {
                repo: format!("{NAMESPACE}/app-{}", i % args.repos),
                tag: format!("v{i}"),
                blobs,
                manifest: blob(manifest.to_string().into_bytes()),
            }
        })
        .collect()
}

fn blob(data: Vec<u8>) -> Blob {
    Blob {
        digest: Digest::sha256_of(&data),
        data: Bytes::from(data),
    }
}

fn body(data: Bytes) -> BodyStream {
    Box::pin(futures::stream::iter([Ok(data)]))
}

/// Regular files under `dir` (0 when it does not exist), and how many of them are named `name`.
fn count_files(dir: &Path, name: Option<&str>) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && name.is_none_or(|n| entry.file_name() == n) {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Flushes dirty pages, so the write-back of the set-up does not land in the timed part.
fn sync() {
    let _ = std::process::Command::new("sync").status();
}

/// One timed collection.
#[derive(Clone, Copy, Debug)]
struct Sample {
    seconds: f64,
    blobs: u64,
    manifests: u64,
    objects: u64,
    setup_seconds: f64,
}

impl Sample {
    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.seconds
    }
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

/// Pushes and tags the images into a fresh Wharf, deletes every tag, checks what is there, then
/// times `gcworker` until everything is gone, and checks that it is.
async fn wharf_run(engine: Engine, images: &[Image], args: &Args) -> anyhow::Result<Sample> {
    let setup = Instant::now();
    let t = TestDb::new(engine).await;
    let dir = tempfile::tempdir().context("storage directory")?;
    let store = Arc::new(storage::LocalStore::open(dir.path()).context("LocalStore")?);
    let settings = Settings {
        uploaded_blob_expiration: Duration::ZERO,
        ..Settings::default()
    };
    let registry = Registry::new(t.db.clone(), store, "default", settings).await?;
    let db = &t.db;

    // Repositories are made as a push token makes them; the namespace's time machine is 0 s.
    let mut repos = Vec::new();
    let mut by_name = HashMap::new();
    for r in 0..args.repos {
        let name = format!("{NAMESPACE}/app-{r}");
        let row = db
            .ensure_repository(NAMESPACE, &format!("app-{r}"), "private")
            .await?;
        repos.push(row);
        let path = registry.parse_path(&name)?;
        by_name.insert(name, registry.repository_for_push(&path).await?);
    }
    ensure!(
        db.set_tag_expiration_s(repos[0].namespace_id, 0).await?,
        "the time-machine window was set"
    );
    let repo_of = |name: &str| {
        by_name
            .get(name)
            .cloned()
            .with_context(|| format!("no repository {name}"))
    };

    futures::stream::iter(images.iter().map(Ok))
        .try_for_each_concurrent(args.concurrency, |image| {
            let registry = &registry;
            async move {
                let repo = repo_of(&image.repo)?;
                for b in &image.blobs {
                    let upload = registry.start_upload(&repo).await?;
                    let row = registry
                        .finish_upload(&repo, &upload.uuid, &b.digest, body(b.data.clone()))
                        .await?;
                    ensure!(row.digest == b.digest.to_string(), "the blob row's digest");
                }
                let reference = registry.parse_reference(&image.tag)?;
                let pushed = registry
                    .put_manifest(
                        &repo,
                        &reference,
                        Some(MANIFEST_TYPE),
                        image.manifest.data.to_vec(),
                    )
                    .await?;
                ensure!(
                    pushed.digest == image.manifest.digest,
                    "the manifest's digest"
                );
                anyhow::Ok(())
            }
        })
        .await
        .context("pushing the images")?;

    let n = args.blobs as u64;
    let m = images.len() as u64;
    ensure!(
        db.count_blobs().await? == n,
        "{n} blob rows after the pushes"
    );
    let objects = count_files(&dir.path().join("blobs"), None)? as u64;
    ensure!(
        objects == n,
        "{n} object files after the pushes, found {objects}"
    );
    ensure!(
        count_files(&dir.path().join("uploads"), None)? == 0,
        "no upload left in progress"
    );
    let counts = repository_totals(db, &repos).await?;
    ensure!(
        (counts.tags, counts.manifests, counts.uploaded_blobs) == (m, m, n),
        "{m} tags, {m} manifests and {n} push protections after the pushes, found {counts:?}"
    );

    // Every tag goes; with a 0 s time machine everything is garbage at once.
    futures::stream::iter(images.iter().map(Ok))
        .try_for_each_concurrent(args.concurrency, |image| {
            let registry = &registry;
            async move {
                let repo = repo_of(&image.repo)?;
                let reference = registry.parse_reference(&image.tag)?;
                registry.delete_manifest(&repo, &reference).await?;
                anyhow::Ok(())
            }
        })
        .await
        .context("deleting the tags")?;
    for repo in by_name.values() {
        let alive = registry.list_tags(repo, None, None).await?;
        ensure!(alive.names.is_empty(), "no alive tag in {}", repo.name);
    }
    let setup_seconds = setup.elapsed().as_secs_f64();

    sync();
    let mut worker = GcWorker::new(registry.clone(), Duration::from_secs(30));
    let start = Instant::now();
    let mut units = 0u64;
    loop {
        units += 1;
        ensure!(
            units <= MAX_UNITS,
            "gcworker still busy after {MAX_UNITS} units"
        );
        let work = worker
            .work()
            .await
            .map_err(|e| anyhow::anyhow!("gcworker failed: {e}"))?;
        if work == Work::Idle {
            let left = db.count_blobs().await?;
            ensure!(left == 0, "gcworker went idle with {left} blob rows left");
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let stats = registry.gc_stats();
    ensure!(
        (
            stats.blobs_deleted,
            stats.manifests_deleted,
            stats.tags_deleted
        ) == (n, m, m),
        "gcworker was to delete {n} blobs, {m} manifests and {m} tags: {stats:?}"
    );
    let counts = repository_totals(db, &repos).await?;
    ensure!(
        counts == db::RepositoryCounts::default(),
        "nothing is left in the repositories: {counts:?}"
    );
    let files = count_files(&dir.path().join("blobs"), None)? as u64;
    ensure!(files == 0, "every object file is gone, {files} are left");
    eprintln!(
        "  wharf {:<8} {:>8.3} s  ({units} units, set-up {setup_seconds:.1} s)",
        engine_name(engine),
        seconds
    );
    drop(registry);
    Ok(Sample {
        seconds,
        blobs: stats.blobs_deleted,
        manifests: stats.manifests_deleted,
        objects: objects - files,
        setup_seconds,
    })
}

/// The sum of every repository's counts.
async fn repository_totals(
    db: &db::Db,
    repos: &[db::RepositoryRow],
) -> anyhow::Result<db::RepositoryCounts> {
    let mut total = db::RepositoryCounts::default();
    for repo in repos {
        let c = db.repository_counts(repo.id).await?;
        total.tags += c.tags;
        total.manifests += c.manifests;
        total.uploaded_blobs += c.uploaded_blobs;
        total.uploads += c.uploads;
        total.permissions += c.permissions;
    }
    Ok(total)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Medians over the repetitions: seconds, blobs/s, manifests/s, objects/s, set-up seconds.
fn medians(samples: &[Sample]) -> [f64; 5] {
    let of = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    [
        of(&|s| s.seconds),
        of(&|s| s.per_second(s.blobs)),
        of(&|s| s.per_second(s.manifests)),
        of(&|s| s.per_second(s.objects)),
        of(&|s| s.setup_seconds),
    ]
}

async fn run(args: Args) -> anyhow::Result<()> {
    let images = images(&args);
    eprintln!(
        "GC throughput: {} garbage blobs ({} images of {} blobs of ~{} B in {} repositories), \
         {} repetition(s)",
        args.blobs,
        images.len(),
        args.blobs_per_image,
        args.blob_size,
        args.repos,
        args.reps
    );
    let mut wharf: Vec<(Engine, Vec<Sample>)> =
        args.engines.iter().map(|e| (*e, Vec::new())).collect();
    let mut distribution = Vec::new();
    for rep in 1..=args.reps {
        eprintln!("repetition {rep}/{}", args.reps);
        for (engine, samples) in &mut wharf {
            samples.push(
                wharf_run(*engine, &images, &args)
                    .await
                    .with_context(|| format!("Wharf on {}", engine_name(*engine)))?,
            );
        }
        if args.distribution {
            distribution.push(
                distribution::run(&images, &args)
                    .await
                    .context("Distribution 2.8 (set --no-distribution to skip it)")?,
            );
        }
    }

    println!(
        "\nGC of {} garbage blobs ({} manifests, {} repositories), median of {} rep(s):",
        args.blobs,
        images.len(),
        args.repos,
        args.reps
    );
    println!(
        "{:<34} {:>9} {:>10} {:>12} {:>10} {:>9}",
        "collector", "seconds", "blobs/s", "manifests/s", "objects/s", "set-up s"
    );
    let mut rows: Vec<(String, [f64; 5])> = wharf
        .iter()
        .map(|(engine, samples)| {
            (
                format!("wharf gcworker, {}", engine_name(*engine)),
                medians(samples),
            )
        })
        .collect();
    if !distribution.is_empty() {
        rows.push((
            "distribution 2.8 garbage-collect".to_string(),
            medians(&distribution),
        ));
    }
    for (name, [seconds, blobs, manifests, objects, setup]) in &rows {
        println!(
            "{name:<34} {seconds:>9.3} {blobs:>10.0} {manifests:>12.0} {objects:>10.0} {setup:>9.1}"
        );
    }
    if !distribution.is_empty() {
        let baseline = medians(&distribution)[0];
        for (engine, samples) in &wharf {
            let seconds = medians(samples)[0];
            println!(
                "wharf {} / distribution, time: {:.2}x ({:.2}x the blobs/s)",
                engine_name(*engine),
                seconds / baseline,
                baseline / seconds
            );
        }
        println!(
            "(Distribution's objects include its {} manifest blobs; it collects offline, with the \
             registry stopped.)",
            images.len()
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(args))
}

//! Geo-replication end to end: two regions as two buckets of a real S3-compatible server
//! (moto), two `wharf serve` nodes on one PostgreSQL that prefer different regions, and
//! `wharf worker storagereplication` copying blobs between them. A pull on the far node works
//! before replication (it reads from the region that has the bytes) and after it (from its
//! own region); a region added later is filled by `wharf storage backfill-replication`.
//!
//! Which region served a blob is visible without looking inside the store: with direct
//! download on (Quay's default for object storage), a blob GET answers with a redirect to a
//! URL signed for the bucket that holds it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use db::testing::{Engine, TestDb};
use storage::testing::TestServer;

use crate::images;
use crate::processes::{Wharf, WharfOptions};
use crate::tools::{Tool, bounded, path};

const SECRET_KEY: &str = "georeplication-test-secret-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_reach_every_region_and_pulls_use_the_nearest() -> anyhow::Result<()> {
    bounded(georeplication()).await
}

/// A config with one S3 location per bucket in `regions` and every one of them required.
fn write_config(
    dir: &Path,
    db_uri: &str,
    moto: &TestServer,
    regions: &[&str],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut yaml = format!(
        "DB_URI: {db_uri}\nDATABASE_SECRET_KEY: {SECRET_KEY}\nFEATURE_STORAGE_REPLICATION: true\n\
         DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [{}]\nDISTRIBUTED_STORAGE_CONFIG:\n",
        regions.join(", ")
    );
    for region in regions {
        yaml.push_str(&format!(
            "  {region}:\n    - S3Storage\n    - endpoint_url: {endpoint}\n      \
             s3_bucket: {bucket}\n      storage_path: /registry\n      \
             s3_access_key: test\n      s3_secret_key: test\n      s3_region: us-east-1\n",
            endpoint = moto.endpoint,
            bucket = bucket(region),
        ));
    }
    std::fs::write(dir.join("config.yaml"), yaml)?;
    Ok(())
}

/// The bucket of a region (S3 bucket names have at least three characters).
fn bucket(region: &str) -> String {
    format!("wharf-{region}")
}

/// The region whose bucket a node's blob download redirects to.
async fn serving_bucket(
    wharf: &Wharf,
    user: &crate::processes::User,
    digest: &str,
) -> anyhow::Result<String> {
    let location = wharf
        .registry(user)
        .redirect(&format!("geo/app/blobs/{digest}"))
        .await?
        .with_context(|| format!("{} served {digest} without a redirect", wharf.host))?;
    let url = reqwest::Url::parse(&location)?;
    let bucket = url
        .path_segments()
        .and_then(|mut s| s.next())
        .unwrap_or_default();
    Ok(bucket.strip_prefix("wharf-").unwrap_or(bucket).to_string())
}

/// Waits until `wharf` redirects every blob to the bucket of `region`.
async fn wait_for_bucket(
    wharf: &Wharf,
    user: &crate::processes::User,
    digests: &[String],
    region: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut served = Vec::new();
        for digest in digests {
            served.push(serving_bucket(wharf, user, digest).await?);
        }
        if served.iter().all(|b| b == region) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "blobs still served from {served:?}, not all from {region}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn georeplication() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let moto = TestServer::moto();
    for region in ["us", "eu", "ap"] {
        moto.create_bucket(&bucket(region)).await;
    }
    let database = TestDb::new(Engine::Postgres).await;
    let two_regions = work.join("config-two");
    write_config(&two_regions, &database.uri, &moto, &["us", "eu"])?;
    let node = |name: &str, region: &str, config: &Path| WharfOptions {
        config_dir: Some(config.to_path_buf()),
        env: vec![(
            "QUAY_DISTRIBUTED_STORAGE_PREFERENCE".to_string(),
            region.to_string(),
        )],
        args: vec!["--no-workers".to_string()],
        name: format!("-{name}"),
        ..WharfOptions::default()
    };
    let us = Wharf::start_with(work, node("us", "us", &two_regions)).await?;
    let eu = Wharf::start_with(work, node("eu", "eu", &two_regions)).await?;
    let user = us.create_user("geo").await?;

    let source = images::two_layer_image(work, "source", "v1").await?;
    let manifest = source.manifest("v1")?;
    let digests = manifest.blob_digests();
    skopeo
        .run([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &user.creds(),
            &source.reference("v1"),
            &format!("docker://{}/geo/app:v1", us.host),
        ])
        .await?;

    // Before replication: the eu node reads every blob from us, the only region holding it.
    for digest in &digests {
        ensure!(
            serving_bucket(&eu, &user, digest).await? == "us",
            "{digest} before replication"
        );
    }
    let out = work.join("pulled-before");
    skopeo
        .run([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &user.creds(),
            &format!("docker://{}/geo/app:v1", eu.host),
            &format!("oci:{}:v1", path(&out)),
        ])
        .await?;
    let pulled = images::OciLayout { dir: out };
    for digest in &digests {
        ensure!(
            pulled.blob(digest)? == source.blob(digest)?,
            "{digest} pulled from eu"
        );
    }

    // The eu region's worker copies the blobs; then the eu node serves them from eu.
    let worker = eu.worker(
        work,
        &["storagereplication"],
        &[("QUAY_DISTRIBUTED_STORAGE_PREFERENCE", "eu")],
    )?;
    wait_for_bucket(&eu, &user, &digests, "eu").await?;
    for digest in &digests {
        ensure!(
            serving_bucket(&us, &user, digest).await? == "us",
            "us keeps its own"
        );
        ensure!(
            eu.registry(&user).blob("geo/app", digest).await? == source.blob(digest)?,
            "{digest} read back from eu"
        );
    }
    drop(worker);

    // A third region: the backfill queues every blob it lacks, a worker fills it.
    let three_regions = work.join("config-three");
    write_config(&three_regions, &database.uri, &moto, &["us", "eu", "ap"])?;
    let ap = Wharf::start_with(work, node("ap", "ap", &three_regions)).await?;
    for digest in &digests {
        ensure!(
            serving_bucket(&ap, &user, digest).await? != "ap",
            "ap is empty so far"
        );
    }
    let printed = ap.run(&["storage", "backfill-replication"]).await?;
    ensure!(
        printed.trim()
            == format!(
                "{n} blobs scanned, {n} queued for replication",
                n = digests.len()
            ),
        "backfill printed {printed:?}"
    );
    let _worker = ap.worker(
        work,
        &["storagereplication"],
        &[("QUAY_DISTRIBUTED_STORAGE_PREFERENCE", "ap")],
    )?;
    wait_for_bucket(&ap, &user, &digests, "ap").await?;
    let again = ap.run(&["storage", "backfill-replication"]).await?;
    ensure!(
        again.trim() == format!("{} blobs scanned, 0 queued for replication", digests.len()),
        "a second backfill finds nothing missing: {again:?}"
    );
    us.assert_clean_log()?;
    eu.assert_clean_log()?;
    Ok(())
}

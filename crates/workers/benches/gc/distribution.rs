//! The baseline: CNCF Distribution 2.8 (`docker-registry`) given the same images over HTTP,
//! their manifests deleted by digest, then its offline `garbage-collect` timed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::TryStreamExt as _;

use super::{Args, Blob, Image, MANIFEST_TYPE, Sample, count_files, sync};

/// A `docker-registry serve` on a port of its own, stopped when dropped.
struct Distribution {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Distribution {
    async fn start(dir: &Path, root: &Path) -> anyhow::Result<Distribution> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  \
                 filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 redirect:\n    disable: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  \
                 addr: 127.0.0.1:{port}\n",
                root.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = tokio::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut d = Distribution {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client,
        };
        for _ in 0..200 {
            if let Some(status) = d.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
                bail!("docker-registry serve exited ({status}): {log}");
            }
            if let Ok(r) = d.client.get(format!("{}/v2/", d.base)).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("docker-registry serve did not answer on {} in 10 s", d.base)
    }

    async fn expect(
        request: reqwest::RequestBuilder,
        status: reqwest::StatusCode,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let r = request.send().await.with_context(|| what.to_string())?;
        if r.status() != status {
            let got = r.status();
            let text = r.text().await.unwrap_or_default();
            bail!("{what}: expected {status}, got {got}: {text}");
        }
        Ok(r)
    }

    /// `POST /v2/<repo>/blobs/uploads/`, then `PUT ?digest=` with the whole blob.
    async fn push_blob(&self, repo: &str, blob: &Blob) -> anyhow::Result<()> {
        let r = Self::expect(
            self.client
                .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
                .header(reqwest::header::CONTENT_LENGTH, "0"),
            reqwest::StatusCode::ACCEPTED,
            "POST blobs/uploads/",
        )
        .await?;
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("the upload's Location")?;
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        Self::expect(
            self.client
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(blob.data.clone()),
            reqwest::StatusCode::CREATED,
            "PUT ?digest=",
        )
        .await?;
        Ok(())
    }

    async fn push_image(&self, image: &Image) -> anyhow::Result<()> {
        for b in &image.blobs {
            self.push_blob(&image.repo, b).await?;
        }
        Self::expect(
            self.client
                .put(format!(
                    "{}/v2/{}/manifests/{}",
                    self.base, image.repo, image.tag
                ))
                .header(reqwest::header::CONTENT_TYPE, MANIFEST_TYPE)
                .body(image.manifest.data.clone()),
            reqwest::StatusCode::CREATED,
            "PUT manifest",
        )
        .await?;
        Ok(())
    }

    async fn delete_manifest(&self, image: &Image) -> anyhow::Result<()> {
        Self::expect(
            self.client.delete(format!(
                "{}/v2/{}/manifests/{}",
                self.base, image.repo, image.manifest.digest
            )),
            reqwest::StatusCode::ACCEPTED,
            "DELETE manifest by digest",
        )
        .await?;
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// The same images pushed to Distribution and their manifests deleted; times its offline
/// `garbage-collect --delete-untagged` and checks that no blob data file is left.
pub(crate) async fn run(images: &[Image], args: &Args) -> anyhow::Result<Sample> {
    let setup = Instant::now();
    let dir = tempfile::tempdir().context("Distribution's directory")?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    let server = Distribution::start(dir.path(), &root).await?;
    futures::stream::iter(images.iter().map(Ok))
        .try_for_each_concurrent(args.concurrency, |image| server.push_image(image))
        .await
        .context("pushing the images to Distribution")?;
    let blobs_dir: PathBuf = root.join("docker/registry/v2/blobs");
    let n = args.blobs as u64;
    let m = images.len() as u64;
    let before = count_files(&blobs_dir, Some("data"))? as u64;
    ensure!(
        before == n + m,
        "Distribution holds {n} blobs and {m} manifests after the pushes, found {before} data files"
    );
    futures::stream::iter(images.iter().map(Ok))
        .try_for_each_concurrent(args.concurrency, |image| server.delete_manifest(image))
        .await
        .context("deleting the manifests from Distribution")?;
    // Every manifest is gone from the repositories: a GET by tag answers 404.
    let probe = &images[0];
    Distribution::expect(
        server
            .client
            .get(format!(
                "{}/v2/{}/manifests/{}",
                server.base, probe.repo, probe.tag
            ))
            .header(reqwest::header::ACCEPT, MANIFEST_TYPE),
        reqwest::StatusCode::NOT_FOUND,
        "GET a deleted manifest's tag",
    )
    .await?;
    server.stop().await?;
    let setup_seconds = setup.elapsed().as_secs_f64();

    sync();
    let start = Instant::now();
    let output = tokio::process::Command::new("docker-registry")
        .arg("garbage-collect")
        .arg("--delete-untagged")
        .arg(dir.path().join("config.yml"))
        .env_remove("AWS_CA_BUNDLE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("running docker-registry garbage-collect")?;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "docker-registry garbage-collect failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let left = count_files(&blobs_dir, Some("data"))? as u64;
    ensure!(left == 0, "Distribution's GC left {left} blob data files");
    eprintln!("  distribution    {seconds:>8.3} s  (set-up {setup_seconds:.1} s)");
    Ok(Sample {
        seconds,
        blobs: n,
        manifests: m,
        objects: before - left,
        setup_seconds,
    })
}

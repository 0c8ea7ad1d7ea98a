//! docker with a real dockerd: push, push again to a second repository (cross-repository blob
//! mount), remove everything locally and pull it back.

use anyhow::{Context, ensure};

use crate::images;
use crate::processes::{Dockerd, Wharf};
use crate::registry::DOCKER_MANIFEST;
use crate::tools::{Tool, bounded, path};

#[tokio::test]
async fn docker_pushes_mounts_and_pulls() -> anyhow::Result<()> {
    bounded(push_mount_pull()).await
}

async fn push_mount_pull() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let dockerd = Dockerd::start(work).await?;
    let docker = &dockerd.docker;
    let wharf = Wharf::start(work).await?;
    let registry = wharf.registry();

    // A two-layer image, handed to docker as a docker-archive. Docker's image ID is the config
    // digest, which survives every step below unchanged.
    let source = images::two_layer_image(work, "source", "v1").await?;
    let config = source.manifest("v1")?.blob_digests()[0].clone();
    let archive = work.join("image.tar");
    skopeo
        .run([
            "copy",
            &source.reference("v1"),
            &format!("docker-archive:{}:local/e2e:1", path(&archive)),
        ])
        .await?;
    docker.run(["load", "--input", path(&archive)]).await?;
    assert_eq!(
        image_id(docker, "local/e2e:1").await?,
        config,
        "ID after docker load"
    );

    let a = format!("{}/ns/a:1", wharf.host);
    let b = format!("{}/ns/b:1", wharf.host);
    docker.run(["tag", "local/e2e:1", &a]).await?;
    let pushed_a = docker.run(["push", &a]).await?.stdout;
    let digest = pushed_digest(&pushed_a)?;
    let served = registry.manifest("ns/a", "1").await?;
    assert_eq!(served.digest, digest, "digest docker pushed vs. served");
    assert_eq!(served.media_type, DOCKER_MANIFEST);
    let blobs = served.blob_digests();
    assert_eq!(blobs[0], config, "config digest in the pushed manifest");
    ensure!(
        blobs.len() == 3,
        "docker pushed {blobs:?}, not config + 2 layers"
    );

    // The same layers into ns/b: docker asks to mount them from ns/a (POST ...?mount=&from=ns/a)
    // and reports "Mounted from ns/a" only when the registry answers 201 Created.
    docker.run(["tag", "local/e2e:1", &b]).await?;
    let pushed_b = docker.run(["push", &b]).await?.stdout;
    let mounted = pushed_b
        .lines()
        .filter(|l| l.contains("Mounted from ns/a"))
        .count();
    assert_eq!(
        mounted, 2,
        "both layers mounted into ns/b, docker said:\n{pushed_b}"
    );
    assert_eq!(pushed_digest(&pushed_b)?, digest);
    let served_b = registry.manifest("ns/b", "1").await?;
    assert_eq!(served_b.digest, digest);
    for blob in &blobs {
        registry.blob("ns/b", blob).await?;
    }

    // Forget the image locally, then pull it from ns/b.
    docker.run(["rmi", "local/e2e:1", &a, &b]).await?;
    let left = docker.run(["images", "--quiet"]).await?.stdout;
    ensure!(left.trim().is_empty(), "images left after rmi: {left}");
    let pulled = docker.run(["pull", &b]).await?.stdout;
    ensure!(
        pulled.contains(&format!("Digest: {digest}")),
        "docker pull reported another digest:\n{pulled}"
    );
    assert_eq!(image_id(docker, &b).await?, config, "ID after docker pull");
    let repo_digests = docker
        .run(["image", "inspect", "--format", "{{json .RepoDigests}}", &b])
        .await?
        .stdout;
    let repo_digests: Vec<String> = serde_json::from_str(repo_digests.trim())?;
    assert_eq!(repo_digests, [format!("{}/ns/b@{digest}", wharf.host)]);
    wharf.assert_clean_log()
}

async fn image_id(docker: &Tool, image: &str) -> anyhow::Result<String> {
    Ok(docker
        .run(["image", "inspect", "--format", "{{.Id}}", image])
        .await?
        .stdout
        .trim()
        .to_string())
}

/// The digest in docker push's closing line, `<tag>: digest: sha256:... size: N`.
fn pushed_digest(output: &str) -> anyhow::Result<String> {
    output
        .lines()
        .find_map(|l| l.split_once(" digest: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string)
        .with_context(|| format!("no digest in docker push's output:\n{output}"))
}

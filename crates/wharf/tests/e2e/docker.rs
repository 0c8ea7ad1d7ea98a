//! docker with a real dockerd: `docker login` as a user, push into the user's namespace, push
//! again to a second repository (cross-repository blob mount), remove everything locally and
//! pull it back; and a login with a wrong password, which must fail.

use anyhow::{Context, ensure};

use crate::images;
use crate::processes::{Dockerd, User, Wharf};
use crate::registry::DOCKER_MANIFEST;
use crate::tools::{Stdin, Tool, bounded, path};

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
    let alice = wharf.create_user("alice").await?;
    let registry = wharf.registry(&alice);

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

    let login = login(docker, &wharf.host, &alice).await?;
    ensure!(
        login.contains("Login Succeeded"),
        "docker login said:\n{login}"
    );
    let a = format!("{}/alice/a:1", wharf.host);
    let b = format!("{}/alice/b:1", wharf.host);
    docker.run(["tag", "local/e2e:1", &a]).await?;
    let pushed_a = docker.run(["push", &a]).await?.stdout;
    let digest = pushed_digest(&pushed_a)?;
    let served = registry.manifest("alice/a", "1").await?;
    assert_eq!(served.digest, digest, "digest docker pushed vs. served");
    assert_eq!(served.media_type, DOCKER_MANIFEST);
    let blobs = served.blob_digests();
    assert_eq!(blobs[0], config, "config digest in the pushed manifest");
    ensure!(
        blobs.len() == 3,
        "docker pushed {blobs:?}, not config + 2 layers"
    );

    // The same layers into alice/b: docker asks for a token that may pull alice/a too, asks to
    // mount them from there (POST ...?mount=&from=alice/a) and reports "Mounted from alice/a"
    // only when the registry answers 201 Created.
    docker.run(["tag", "local/e2e:1", &b]).await?;
    let pushed_b = docker.run(["push", &b]).await?.stdout;
    let mounted = pushed_b
        .lines()
        .filter(|l| l.contains("Mounted from alice/a"))
        .count();
    assert_eq!(
        mounted, 2,
        "both layers mounted into alice/b, docker said:\n{pushed_b}"
    );
    assert_eq!(pushed_digest(&pushed_b)?, digest);
    let served_b = registry.manifest("alice/b", "1").await?;
    assert_eq!(served_b.digest, digest);
    for blob in &blobs {
        registry.blob("alice/b", blob).await?;
    }

    // Forget the image locally, then pull it from alice/b.
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
    assert_eq!(repo_digests, [format!("{}/alice/b@{digest}", wharf.host)]);
    wharf.assert_clean_log()
}

#[tokio::test]
async fn docker_login_refuses_a_wrong_password() -> anyhow::Result<()> {
    bounded(wrong_password()).await
}

async fn wrong_password() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    let dockerd = Dockerd::start(work).await?;
    let docker = &dockerd.docker;
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let config = work.join("dk/client/config.json");

    for (who, password) in [("alice", "not-alices-password"), ("nobody", "any-password")] {
        let impostor = User {
            name: who.to_string(),
            password: password.to_string(),
        };
        let said = docker
            .run_failing(
                login_args(&wharf.host, &impostor),
                Stdin::Bytes(password.as_bytes()),
            )
            .await?;
        ensure!(
            said.contains("unauthorized") || said.contains("Invalid Username or Password"),
            "docker login as {who} failed for another reason:\n{said}"
        );
        ensure!(
            !std::fs::read_to_string(&config)
                .unwrap_or_default()
                .contains(&wharf.host),
            "a failed login left credentials for {} in {}",
            wharf.host,
            config.display()
        );
    }

    // The right password still works afterwards: the failures locked nothing.
    let said = login(docker, &wharf.host, &alice).await?;
    ensure!(
        said.contains("Login Succeeded"),
        "docker login said:\n{said}"
    );
    wharf.assert_clean_log()
}

fn login_args<'a>(host: &'a str, user: &'a User) -> [&'a str; 5] {
    ["login", "--username", &user.name, "--password-stdin", host]
}

/// `docker login` as `user`, the password on stdin; returns what docker printed.
async fn login(docker: &Tool, host: &str, user: &User) -> anyhow::Result<String> {
    Ok(docker
        .run_with_stdin(
            login_args(host, user),
            Stdin::Bytes(user.password.as_bytes()),
        )
        .await?
        .stdout)
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

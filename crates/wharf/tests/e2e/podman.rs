//! podman: `podman login` as a user, then a two-architecture manifest list built with buildah
//! and pushed with `podman manifest push --all` into the user's namespace, once as an OCI index
//! and once as a Docker manifest list, then read back over HTTP child by child and pulled for
//! one architecture.

use std::path::Path;

use anyhow::{Context, ensure};

use crate::processes::Wharf;
use crate::registry::{DOCKER_LIST, DOCKER_MANIFEST, Manifest, OCI_INDEX, OCI_MANIFEST, Registry};
use crate::tools::{Stdin, Tool, bounded, path};

const ARCHES: [&str; 2] = ["amd64", "arm64"];

#[tokio::test]
async fn podman_pushes_multi_arch_lists() -> anyhow::Result<()> {
    bounded(multi_arch()).await
}

/// podman and buildah on their own vfs storage under `dir`, so the test neither needs overlay
/// nor touches the machine's images.
fn storage_args(dir: &Path) -> Vec<String> {
    vec![
        "--storage-driver".into(),
        "vfs".into(),
        "--root".into(),
        path(&dir.join("root")).into(),
        "--runroot".into(),
        path(&dir.join("runroot")).into(),
    ]
}

/// podman on the storage under `dir`, with libpod's state and network configuration there too
/// rather than in /run, which other podman users on the machine share. Its credentials live in
/// `dir/auth.json` (`podman login` writes there, push and pull read it) rather than in
/// /run/containers, so every test logs in for itself.
pub fn podman_on(dir: &Path) -> anyhow::Result<Tool> {
    // podman refuses to start when REGISTRY_AUTH_FILE names a missing file.
    let auth = dir.join("auth.json");
    std::fs::create_dir_all(dir)?;
    if !auth.exists() {
        std::fs::write(&auth, "{}")?;
    }
    Ok(Tool::new("podman", "podman")?
        .with_env("REGISTRY_AUTH_FILE", &auth)
        .with_args(storage_args(dir))
        .with_args([
            "--tmpdir",
            path(&dir.join("tmp")),
            "--network-config-dir",
            path(&dir.join("networks")),
        ]))
}

/// `podman login` to `host` as `user`, the password on stdin.
async fn login(podman: &Tool, host: &str, user: &crate::processes::User) -> anyhow::Result<()> {
    let out = podman
        .run_with_stdin(
            [
                "login",
                "--tls-verify=false",
                "--username",
                &user.name,
                "--password-stdin",
                host,
            ],
            Stdin::Bytes(user.password.as_bytes()),
        )
        .await?;
    ensure!(
        out.stdout.contains("Login Succeeded"),
        "podman login said:\n{}",
        out.stdout
    );
    Ok(())
}

async fn multi_arch() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    let storage = storage_args(&work.join("build"));
    let buildah = Tool::new("buildah", "buildah")?.with_args(&storage);
    let podman = podman_on(&work.join("build"))?;
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let registry = wharf.registry(&alice);

    let list = "localhost/e2e-multi:1";
    podman.run(["manifest", "create", list]).await?;
    for arch in ARCHES {
        let file = work.join(format!("arch-{arch}.txt"));
        std::fs::write(&file, format!("built for {arch}\n"))?;
        let container = buildah.run(["from", "scratch"]).await?.stdout;
        let container = container.trim();
        buildah
            .run(["copy", container, path(&file), "/arch.txt"])
            .await?;
        buildah
            .run(["config", "--os", "linux", "--arch", arch, container])
            .await?;
        let image = format!("localhost/e2e-{arch}:1");
        buildah.run(["commit", container, &image]).await?;
        podman
            .run([
                "manifest",
                "add",
                list,
                &format!("containers-storage:{image}"),
            ])
            .await?;
    }

    login(&podman, &wharf.host, &alice).await?;
    for (tag, format, list_type, child_type) in [
        ("1", "oci", OCI_INDEX, OCI_MANIFEST),
        ("1-docker", "v2s2", DOCKER_LIST, DOCKER_MANIFEST),
    ] {
        let digest_file = work.join(format!("{tag}.digest"));
        podman
            .run([
                "manifest",
                "push",
                "--all",
                "--tls-verify=false",
                "--format",
                format,
                "--digestfile",
                path(&digest_file),
                list,
                &format!("docker://{}/alice/multi:{tag}", wharf.host),
            ])
            .await?;
        let pushed = std::fs::read_to_string(&digest_file)?.trim().to_string();
        let served = registry.manifest("alice/multi", tag).await?;
        assert_eq!(
            served.digest, pushed,
            "{format} list: digest pushed vs. served"
        );
        assert_eq!(served.media_type, list_type, "{format} list media type");
        check_children(&registry, &served, child_type)
            .await
            .with_context(|| format!("children of the {format} list"))?;
    }

    // Pull one architecture into fresh storage, logged in afresh: the image ID podman reports is
    // the config digest, which must be the one the arm64 child names.
    let oci_list = registry.manifest("alice/multi", "1").await?;
    let arm64 = child_for(&oci_list, "arm64")?;
    let arm64 = registry.manifest("alice/multi", &arm64).await?;
    let config = arm64.json["config"]["digest"]
        .as_str()
        .context("arm64 child without config")?;
    let puller = podman_on(&work.join("pull"))?;
    login(&puller, &wharf.host, &alice).await?;
    let reference = format!("{}/alice/multi:1", wharf.host);
    puller
        .run(["pull", "--tls-verify=false", "--arch", "arm64", &reference])
        .await?;
    let id = puller
        .run(["image", "inspect", "--format", "{{.Id}}", &reference])
        .await?
        .stdout;
    assert_eq!(
        format!("sha256:{}", id.trim()),
        config,
        "pulled arm64 image ID"
    );
    wharf.assert_clean_log()
}

/// Both architectures are listed, and each child, its config and its layers are served by
/// digest with bytes that hash to it.
async fn check_children(
    registry: &Registry,
    list: &Manifest,
    child_type: &str,
) -> anyhow::Result<()> {
    let children = list.json["manifests"]
        .as_array()
        .context("a list without manifests")?;
    let mut arches: Vec<&str> = children
        .iter()
        .filter_map(|c| c["platform"]["architecture"].as_str())
        .collect();
    arches.sort_unstable();
    assert_eq!(arches, ARCHES, "platforms in {}", list.digest);
    for child in children {
        let digest = child["digest"].as_str().context("child without digest")?;
        let arch = child["platform"]["architecture"].as_str().unwrap_or("?");
        let manifest = registry.manifest("alice/multi", digest).await?;
        assert_eq!(manifest.media_type, child_type, "{arch} child media type");
        assert_eq!(
            child["mediaType"].as_str(),
            Some(child_type),
            "{arch} descriptor media type"
        );
        assert_eq!(
            child["size"].as_u64(),
            Some(manifest.bytes.len() as u64),
            "{arch} descriptor size"
        );
        let blobs = manifest.blob_digests();
        ensure!(
            blobs.len() == 2,
            "{arch} child has {blobs:?}, not config + 1 layer"
        );
        for blob in &blobs {
            registry.blob("alice/multi", blob).await?;
        }
        let config: serde_json::Value =
            serde_json::from_slice(&registry.blob("alice/multi", &blobs[0]).await?)?;
        assert_eq!(
            config["architecture"].as_str(),
            Some(arch),
            "config of the {arch} child"
        );
    }
    Ok(())
}

fn child_for(list: &Manifest, arch: &str) -> anyhow::Result<String> {
    list.json["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["platform"]["architecture"] == arch)
        .and_then(|c| c["digest"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no {arch} child in {}", list.digest))
}

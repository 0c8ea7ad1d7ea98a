//! skopeo: a two-layer umoci image pushed as OCI and as Docker schema 2 into a user's own
//! namespace, inspected, listed and copied back out byte for byte, with the user's credentials
//! (`--dest-creds`, `--src-creds`, `--creds`); skopeo does the token dance itself.

use anyhow::{Context, ensure};

use crate::digest::{hex, sha256};
use crate::images::{self, OciLayout};
use crate::processes::Wharf;
use crate::registry::{DOCKER_MANIFEST, OCI_MANIFEST};
use crate::tools::{Tool, bounded, path};

#[tokio::test]
async fn skopeo_round_trips_oci_and_docker_schema_2() -> anyhow::Result<()> {
    bounded(round_trip()).await
}

async fn round_trip() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let source = images::two_layer_image(work, "source", "v1").await?;
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let creds = alice.creds();
    let registry = wharf.registry(&alice);

    let src = source.manifest("v1")?;
    let src_blobs = src.blob_digests();
    ensure!(
        src_blobs.len() == 3,
        "umoci made {src_blobs:?}, not config + 2 layers"
    );

    // OCI in: the manifest must arrive unchanged.
    let oci_ref = format!("docker://{}/alice/img:v1", wharf.host);
    let digest_file = work.join("oci.digest");
    skopeo
        .run([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            "--digestfile",
            path(&digest_file),
            &source.reference("v1"),
            &oci_ref,
        ])
        .await?;
    assert_eq!(std::fs::read_to_string(&digest_file)?.trim(), src.digest);
    let raw = skopeo
        .run([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &oci_ref,
        ])
        .await?
        .stdout;
    assert_eq!(sha256(raw.as_bytes()), src.digest, "skopeo inspect --raw");
    assert_eq!(raw.as_bytes(), source.blob(&src.digest)?, "manifest bytes");

    let served = registry.manifest("alice/img", "v1").await?;
    assert_eq!(served.digest, src.digest);
    assert_eq!(served.media_type, OCI_MANIFEST);
    for digest in &src_blobs {
        assert_eq!(
            registry.blob("alice/img", digest).await?,
            source.blob(digest)?,
            "blob {digest} as served"
        );
    }

    // OCI out, into a fresh layout.
    let out = OciLayout {
        dir: work.join("out-oci"),
    };
    skopeo
        .run([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &oci_ref,
            &out.reference("v1"),
        ])
        .await?;
    let back = out.manifest("v1")?;
    assert_eq!(back.digest, src.digest, "manifest copied back out");
    assert_eq!(back.blob_digests(), src_blobs);
    for digest in &src_blobs {
        assert_eq!(
            out.blob(digest)?,
            source.blob(digest)?,
            "blob {digest} copied out"
        );
    }

    // Docker schema 2 in: skopeo converts the manifest but keeps config and layers as they are.
    let docker_ref = format!("docker://{}/alice/img-docker:v1", wharf.host);
    let digest_file = work.join("v2s2.digest");
    skopeo
        .run([
            "copy",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            "--digestfile",
            path(&digest_file),
            &source.reference("v1"),
            &docker_ref,
        ])
        .await?;
    let pushed = std::fs::read_to_string(&digest_file)?.trim().to_string();
    let served = registry.manifest("alice/img-docker", "v1").await?;
    assert_eq!(served.media_type, DOCKER_MANIFEST);
    assert_eq!(
        served.digest, pushed,
        "digest skopeo pushed vs. digest served"
    );
    assert_ne!(
        served.digest, src.digest,
        "a converted manifest cannot keep its digest"
    );
    assert_eq!(served.blob_digests(), src_blobs);
    let raw = skopeo
        .run([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &docker_ref,
        ])
        .await?
        .stdout;
    assert_eq!(raw.as_bytes(), served.bytes, "skopeo inspect --raw");

    // Docker schema 2 out, into skopeo's dir: transport (manifest.json + blobs named by hex),
    // which keeps the manifest as served; an oci: layout would convert it back to OCI.
    let out_dir = work.join("out-docker");
    skopeo
        .run([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &docker_ref,
            &format!("dir:{}", out_dir.display()),
        ])
        .await?;
    let manifest = std::fs::read(out_dir.join("manifest.json"))?;
    assert_eq!(sha256(&manifest), pushed, "manifest.json copied out");
    for digest in &src_blobs {
        let file = out_dir.join(hex(digest));
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        assert_eq!(sha256(&bytes), *digest, "blob {digest} copied out");
    }

    // A second tag, copied registry to registry, and the tag list.
    let latest = format!("docker://{}/alice/img:latest", wharf.host);
    skopeo
        .run([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &oci_ref,
            &latest,
        ])
        .await?;
    assert_eq!(
        registry.manifest("alice/img", "latest").await?.digest,
        src.digest
    );
    let listed = skopeo
        .run([
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}/alice/img", wharf.host),
        ])
        .await?
        .stdout;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    let mut tags: Vec<&str> = listed["Tags"]
        .as_array()
        .context("list-tags printed no Tags")?
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["latest", "v1"]);
    wharf.assert_clean_log()
}

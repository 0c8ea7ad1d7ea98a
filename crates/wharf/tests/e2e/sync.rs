//! skopeo sync between Wharf and CNCF Distribution 2.8: every tag of a repository mirrored from
//! Distribution into Wharf and from Wharf back into Distribution, digests equal in all three.
//! Distribution is anonymous; on Wharf the mirror lands in a user's namespace, written and read
//! with the user's credentials.

use anyhow::Context;

use crate::images::{self, File};
use crate::processes::{Distribution, Wharf};
use crate::registry::{DOCKER_MANIFEST, OCI_MANIFEST, Registry};
use crate::tools::{Tool, bounded};

#[tokio::test]
async fn skopeo_sync_mirrors_to_and_from_distribution() -> anyhow::Result<()> {
    bounded(mirror()).await
}

async fn mirror() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let distribution = Distribution::start(work).await?;
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let creds = alice.creds();
    let d = &distribution.host;
    let w = &wharf.host;

    // Two different images in Distribution: one OCI (tagged twice), one Docker schema 2.
    let big = images::two_layer_image(work, "big", "v1").await?;
    let small = images::build(
        work,
        "small",
        "v2",
        vec![vec![File::text("etc/small", "the small image\n")]],
    )
    .await?;
    for (layout, tag, dest_tag, format) in [
        (&big, "v1", "v1", "oci"),
        (&big, "v1", "latest", "oci"),
        (&small, "v2", "v2", "v2s2"),
    ] {
        skopeo
            .run([
                "copy",
                "--dest-tls-verify=false",
                "--format",
                format,
                &layout.reference(tag),
                &format!("docker://{d}/repo:{dest_tag}"),
            ])
            .await?;
    }

    // Distribution → Wharf (lands in alice/mirror/repo), then Wharf → Distribution (back/repo).
    for (from, to, creds) in [
        (
            format!("{d}/repo"),
            format!("{w}/alice/mirror"),
            ["--dest-creds", &creds],
        ),
        (
            format!("{w}/alice/mirror/repo"),
            format!("{d}/back"),
            ["--src-creds", &creds],
        ),
    ] {
        skopeo
            .run([
                "sync",
                "--src",
                "docker",
                "--dest",
                "docker",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                creds[0],
                creds[1],
                &from,
                &to,
            ])
            .await?;
    }

    let places = [
        (d, "repo", "Distribution, the original"),
        (w, "alice/mirror/repo", "Wharf, the mirror"),
        (d, "back/repo", "Distribution, synced back"),
    ];
    for (host, name, label) in places {
        let creds = (host == w).then_some(creds.as_str());
        let tags = list_tags(&skopeo, &format!("{host}/{name}"), creds).await?;
        assert_eq!(tags, ["latest", "v1", "v2"], "tags in {label}");
    }

    for tag in ["latest", "v1", "v2"] {
        let original = Registry::new(d).manifest("repo", tag).await?;
        let expected_type = if tag == "v2" {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        assert_eq!(original.media_type, expected_type, "{tag} in Distribution");
        for (host, name, label) in &places[1..] {
            let registry = if *host == w {
                wharf.registry(&alice)
            } else {
                Registry::new(host)
            };
            let copy = registry.manifest(name, tag).await?;
            assert_eq!(copy.digest, original.digest, "{tag} in {label}");
            assert_eq!(copy.bytes, original.bytes, "{tag} bytes in {label}");
            assert_eq!(
                copy.media_type, original.media_type,
                "{tag} type in {label}"
            );
            for blob in original.blob_digests() {
                registry
                    .blob(name, &blob)
                    .await
                    .with_context(|| format!("{tag} in {label}"))?;
            }
        }
    }
    assert_eq!(
        Registry::new(d).manifest("repo", "v1").await?.digest,
        big.manifest("v1")?.digest,
        "the OCI image kept umoci's digest all the way"
    );
    wharf.assert_clean_log()
}

/// The sorted tags of `repo` (`host/name`), listed with `creds` (`user:password`) if given.
async fn list_tags(skopeo: &Tool, repo: &str, creds: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut args = vec!["list-tags", "--tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--creds", creds]);
    }
    let reference = format!("docker://{repo}");
    args.push(&reference);
    let out = skopeo.run(args).await?.stdout;
    let listed: serde_json::Value = serde_json::from_str(&out)?;
    let mut tags: Vec<String> = listed["Tags"]
        .as_array()
        .with_context(|| format!("list-tags {repo} printed {out}"))?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tags.sort_unstable();
    Ok(tags)
}

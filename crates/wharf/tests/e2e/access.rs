//! Who may pull and push what. A repository a push creates is private: pulling it without
//! credentials (skopeo and podman, and plain HTTP) fails, and so does pulling it as another
//! user; nobody but its owner may push into a user's namespace, and a refused push creates
//! nothing there. The owner is refused nothing throughout, so every failure is a refusal, not a
//! broken set-up.

use anyhow::{Context, ensure};
use reqwest::StatusCode;

use crate::digest::sha256;
use crate::images::{self, File};
use crate::podman::podman_on;
use crate::processes::Wharf;
use crate::registry::{ACCEPT_ALL, Registry};
use crate::tools::{Stdin, Tool, bounded};

#[tokio::test]
async fn private_repositories_refuse_anonymous_callers_and_other_users() -> anyhow::Result<()> {
    bounded(refusals()).await
}

async fn refusals() -> anyhow::Result<()> {
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let bob = wharf.create_user("bob").await?;

    // alice pushes an image into her namespace, which creates alice/private.
    let image = images::build(
        work,
        "private",
        "v1",
        vec![vec![File::text("etc/secret", "alice's eyes only\n")]],
    )
    .await?;
    let source = image.manifest("v1")?;
    let reference = format!("{}/alice/private:v1", wharf.host);
    let docker_ref = format!("docker://{reference}");
    skopeo
        .run([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &alice.creds(),
            &image.reference("v1"),
            &docker_ref,
        ])
        .await?;
    let raw = skopeo
        .run([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &alice.creds(),
            &docker_ref,
        ])
        .await?
        .stdout;
    assert_eq!(
        sha256(raw.as_bytes()),
        source.digest,
        "alice reads her image"
    );

    // skopeo, without credentials and as bob.
    let bob_creds = bob.creds();
    for (who, creds) in [("anonymous", None), ("bob", Some(bob_creds.as_str()))] {
        let mut inspect = vec!["inspect", "--raw", "--tls-verify=false"];
        let mut copy = vec!["copy", "--src-tls-verify=false"];
        if let Some(creds) = creds {
            inspect.extend(["--creds", creds]);
            copy.extend(["--src-creds", creds]);
        }
        inspect.push(&docker_ref);
        let said = skopeo.run_failing(&inspect, Stdin::Null).await?;
        refused(&said).with_context(|| format!("skopeo inspect as {who}"))?;
        let out = format!("oci:{}:v1", work.join(format!("out-{who}")).display());
        copy.extend([docker_ref.as_str(), out.as_str()]);
        let said = skopeo.run_failing(&copy, Stdin::Null).await?;
        refused(&said).with_context(|| format!("skopeo copy as {who}"))?;
    }

    // podman: no login (its own, empty credentials file), then bob's credentials; alice's work.
    let podman = podman_on(&work.join("podman"))?;
    let said = podman
        .run_failing(["pull", "--tls-verify=false", &reference], Stdin::Null)
        .await?;
    refused(&said).context("podman pull without credentials")?;
    let said = podman
        .run_failing(
            [
                "pull",
                "--tls-verify=false",
                "--creds",
                &bob_creds,
                &reference,
            ],
            Stdin::Null,
        )
        .await?;
    refused(&said).context("podman pull as bob")?;
    podman
        .run([
            "pull",
            "--tls-verify=false",
            "--creds",
            &alice.creds(),
            &reference,
        ])
        .await?;

    // Over HTTP: the manifest, a blob and the tag list are refused with a challenge, exactly as
    // for a repository that does not exist, so a refusal tells nothing about existence.
    let layer = source.blob_digests()[1].clone();
    let paths = [
        "alice/private/manifests/v1".to_string(),
        format!("alice/private/blobs/{layer}"),
        "alice/private/tags/list".to_string(),
        "alice/nothing/manifests/v1".to_string(),
    ];
    for (who, registry) in [
        ("anonymous", wharf.anonymous()),
        ("bob", wharf.registry(&bob)),
    ] {
        for path in &paths {
            let (status, headers, _) = registry.get(path, ACCEPT_ALL).await?;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "GET {path} as {who}");
            ensure!(
                headers.contains_key("www-authenticate"),
                "GET {path} as {who}: 401 without a challenge"
            );
        }
    }
    let owner = wharf.registry(&alice);
    assert_eq!(
        owner.manifest("alice/private", "v1").await?.digest,
        source.digest
    );
    owner.blob("alice/private", &layer).await?;

    // Pushing into alice's namespace: refused to bob and to anonymous callers.
    let intruder = format!("docker://{}/alice/intruder:v1", wharf.host);
    let mut push = vec![
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        bob_creds.as_str(),
    ];
    let source_ref = image.reference("v1");
    push.extend([source_ref.as_str(), intruder.as_str()]);
    let said = skopeo.run_failing(&push, Stdin::Null).await?;
    refused(&said).context("skopeo copy into alice's namespace as bob")?;
    let said = skopeo
        .run_failing(
            ["copy", "--dest-tls-verify=false", &source_ref, &intruder],
            Stdin::Null,
        )
        .await?;
    refused(&said).context("skopeo copy into alice's namespace without credentials")?;

    // Nothing was created: alice's catalog holds her repository alone, bob's nothing.
    assert_eq!(catalog(&owner).await?, ["alice/private"], "alice's catalog");
    assert_eq!(
        catalog(&wharf.registry(&bob)).await?,
        Vec::<String>::new(),
        "bob's catalog"
    );
    wharf.assert_clean_log()
}

/// Whether a client's error output is a registry refusal rather than some other failure.
fn refused(said: &str) -> anyhow::Result<()> {
    let lower = said.to_lowercase();
    ensure!(
        ["unauthorized", "authentication required", "denied"]
            .iter()
            .any(|word| lower.contains(word)),
        "the client failed, but not with a refusal:\n{said}"
    );
    Ok(())
}

async fn catalog(registry: &Registry) -> anyhow::Result<Vec<String>> {
    let (status, _, body) = registry.get("_catalog", "application/json").await?;
    ensure!(status == StatusCode::OK, "GET /v2/_catalog: {status}");
    let body: serde_json::Value = serde_json::from_slice(&body)?;
    let mut names: Vec<String> = body["repositories"]
        .as_array()
        .with_context(|| format!("a catalog without repositories: {body}"))?
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    names.sort_unstable();
    Ok(names)
}

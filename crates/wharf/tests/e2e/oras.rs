//! oras (the Python SDK): artifacts whose `subject` is an image pushed earlier, found through the
//! referrers API with and without an `artifactType` filter, and pulled back unchanged. oras
//! gets a user's name and password and fetches its registry tokens itself.

use anyhow::{Context, ensure};
use reqwest::StatusCode;

use crate::digest::sha256;
use crate::images;
use crate::processes::Wharf;
use crate::registry::{ACCEPT_ALL, OCI_INDEX, OCI_MANIFEST, header};
use crate::tools::{Tool, bounded, oras_python, path};

const SBOM_TYPE: &str = "application/vnd.example.sbom.v1+json";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1+json";

/// Python that makes an `OrasClient` for `host` signing in as `user` with `password`.
///
/// oras-py (0.2.x) keeps a single registry token and, when a request is refused with 401,
/// sends that same token again unless the refusal was a 403. A push first HEADs the blob
/// (challenge: `pull`) and then POSTs an upload (challenge: `pull,push`); a registry that
/// answers an insufficient scope with 401, as Quay and Distribution do, would see the pull-only
/// token twice and the push fail. So the client asks for a new token on every challenge, as
/// docker and containers/image (skopeo, podman) do. The token requests are still oras-py's own,
/// with Basic credentials.
const CLIENT: &str = r#"
import oras.client

def client_for(host, user, password):
    client = oras.client.OrasClient(hostname=host, insecure=True)
    # Basic credentials for the token requests (login() would also write a docker config file).
    client.auth.set_basic_auth(user, password)
    authenticate = client.auth.authenticate_request
    client.auth.authenticate_request = (
        lambda original, headers, refresh=False: authenticate(original, headers, refresh=True)
    )
    return client
"#;

/// Pushes one artifact with the oras SDK's own `push(subject=...)`, which writes the subject
/// into the manifest, and prints the manifest PUT's status and headers as JSON.
const PUSH: &str = r#"
import json, os, sys
import oras.oci
from client import client_for

(host, user, password, repo, tag, artifact_type, subject_type, subject_digest, subject_size,
 workdir) = sys.argv[1:]
# oras checks that files lie under the working directory.
os.chdir(workdir)
with open("payload.json", "w") as f:
    f.write(json.dumps({"kind": tag, "for": subject_digest}))
with open("config.json", "w") as f:
    f.write("{}")
client = client_for(host, user, password)
# The SDK has no artifactType parameter; the config media type is what the referrers API
# reports as artifactType when the manifest has none.
response = client.push(
    target=f"{host}/{repo}:{tag}",
    files=["payload.json:application/json"],
    manifest_config=f"config.json:{artifact_type}",
    manifest_annotations={"org.example.kind": tag},
    subject=oras.oci.Subject(mediaType=subject_type, digest=subject_digest, size=int(subject_size)),
    quiet=True,
)
headers = {k.lower(): v for k, v in response.headers.items()}
print(json.dumps({"status": response.status_code, "headers": headers}))
"#;

/// Pulls an artifact into a directory and prints the files it wrote as a JSON list.
const PULL: &str = r#"
import json, sys
from client import client_for

host, user, password, target, outdir = sys.argv[1:]
client = client_for(host, user, password)
print(json.dumps(client.pull(target=target, outdir=outdir)))
"#;

#[tokio::test]
async fn oras_artifacts_are_found_as_referrers() -> anyhow::Result<()> {
    bounded(push_and_find()).await
}

async fn push_and_find() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    // An empty docker configuration: oras reads credentials from one, and the machine's own
    // must not lend the test any.
    let docker_config = work.join("docker-config");
    std::fs::create_dir_all(&docker_config)?;
    let python = oras_python()
        .await?
        .with_env("DOCKER_CONFIG", &docker_config);
    let skopeo = Tool::new("skopeo", "skopeo")?;
    let wharf = Wharf::start(work).await?;
    let alice = wharf.create_user("alice").await?;
    let registry = wharf.registry(&alice);
    let scripts = work.join("py");
    std::fs::create_dir_all(&scripts)?;
    std::fs::write(scripts.join("push.py"), PUSH)?;
    std::fs::write(scripts.join("pull.py"), PULL)?;
    std::fs::write(scripts.join("client.py"), CLIENT)?;

    // The subject: a real image, pushed with skopeo.
    let image = images::build(
        work,
        "subject",
        "v1",
        vec![vec![images::File::text(
            "etc/hello",
            "subject of referrers\n",
        )]],
    )
    .await?;
    let source = image.manifest("v1")?;
    skopeo
        .run([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &alice.creds(),
            &image.reference("v1"),
            &format!("docker://{}/alice/app:v1", wharf.host),
        ])
        .await?;
    let subject = registry.manifest("alice/app", "v1").await?;
    assert_eq!(subject.digest, source.digest);
    let size = subject.bytes.len().to_string();

    // Two artifacts of different types refer to it.
    let mut artifacts = Vec::new();
    for (tag, artifact_type) in [("sbom", SBOM_TYPE), ("signature", SIGNATURE_TYPE)] {
        let dir = work.join(tag);
        std::fs::create_dir_all(&dir)?;
        let out = python
            .run([
                path(&scripts.join("push.py")),
                &wharf.host,
                &alice.name,
                &alice.password,
                "alice/app",
                tag,
                artifact_type,
                OCI_MANIFEST,
                &subject.digest,
                &size,
                path(&dir),
            ])
            .await?
            .stdout;
        let put: serde_json::Value =
            serde_json::from_str(out.trim()).with_context(|| format!("push.py printed {out:?}"))?;
        assert_eq!(put["status"], 201, "manifest PUT of {tag}: {put}");
        assert_eq!(
            put["headers"]["oci-subject"].as_str(),
            Some(subject.digest.as_str()),
            "OCI-Subject header on the manifest PUT of {tag}"
        );
        let manifest = registry.manifest("alice/app", tag).await?;
        assert_eq!(
            put["headers"]["docker-content-digest"].as_str(),
            Some(manifest.digest.as_str())
        );
        assert_eq!(
            manifest.json["subject"]["digest"].as_str(),
            Some(subject.digest.as_str())
        );
        artifacts.push((tag, artifact_type, manifest));
    }

    // Unfiltered: both, with artifactType, size and annotations taken from each manifest.
    let referrers = format!("alice/app/referrers/{}", subject.digest);
    let (status, headers, body) = registry.get(&referrers, ACCEPT_ALL).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type").as_deref(), Some(OCI_INDEX));
    assert_eq!(header(&headers, "oci-filters-applied"), None);
    let index: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(index["mediaType"], OCI_INDEX);
    let listed = index["manifests"].as_array().context("no manifests")?;
    assert_eq!(listed.len(), 2, "referrers: {index}");
    for (tag, artifact_type, manifest) in &artifacts {
        let entry = listed
            .iter()
            .find(|d| d["digest"].as_str() == Some(manifest.digest.as_str()))
            .with_context(|| format!("{tag} is not among the referrers: {index}"))?;
        assert_eq!(entry["artifactType"].as_str(), Some(*artifact_type));
        assert_eq!(entry["mediaType"].as_str(), Some(OCI_MANIFEST));
        assert_eq!(entry["size"].as_u64(), Some(manifest.bytes.len() as u64));
        assert_eq!(
            entry["annotations"]["org.example.kind"].as_str(),
            Some(*tag)
        );
    }

    // Filtered by artifactType: only the signature, and the filter is announced. The `+` is
    // escaped as clients escape it (Go's url.Values): a bare `+` in a query means a space.
    let filter = SIGNATURE_TYPE.replace('+', "%2B");
    let (status, headers, body) = registry
        .get(&format!("{referrers}?artifactType={filter}"), ACCEPT_ALL)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    let index: serde_json::Value = serde_json::from_slice(&body)?;
    let listed = index["manifests"].as_array().context("no manifests")?;
    assert_eq!(listed.len(), 1, "filtered referrers: {index}");
    assert_eq!(
        listed[0]["digest"].as_str(),
        Some(artifacts[1].2.digest.as_str())
    );

    // A subject nobody refers to has an empty list, not a 404.
    let (status, _, body) = registry
        .get(
            &format!("alice/app/referrers/{}", sha256(b"nothing")),
            ACCEPT_ALL,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let index: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(index["manifests"], serde_json::json!([]));

    // Pull the sbom back with oras: the payload comes out as it went in.
    let pulled = work.join("pulled");
    let out = python
        .run([
            path(&scripts.join("pull.py")),
            &wharf.host,
            &alice.name,
            &alice.password,
            &format!("{}/alice/app:sbom", wharf.host),
            path(&pulled),
        ])
        .await?
        .stdout;
    let files: Vec<String> =
        serde_json::from_str(out.trim()).with_context(|| format!("pull.py printed {out:?}"))?;
    ensure!(files.len() == 1, "oras pulled {files:?}");
    let pulled = std::fs::read(pulled.join("payload.json"))?;
    let pushed = std::fs::read(work.join("sbom/payload.json"))?;
    assert_eq!(sha256(&pulled), sha256(&pushed), "payload pulled back");
    let layer = artifacts[0].2.json["layers"][0]["digest"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(sha256(&pulled), layer, "payload digest in the manifest");
    wharf.assert_clean_log()
}

//! Real images made without a network: umoci builds OCI image layouts from files the test
//! writes, and the same layout type reads back what skopeo copies out of a registry.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

use crate::digest::{hex, sha256};
use crate::tools::Tool;

/// The random payload of the big layer: big enough that clients upload it in more than one
/// request or stream, small enough to keep the tests quick.
const BIG_FILE_BYTES: u64 = 3 * 1024 * 1024;

/// An OCI image layout directory (`index.json` + `blobs/sha256/`).
pub struct OciLayout {
    pub dir: PathBuf,
}

/// One image manifest read from a layout, checked against its digest.
pub struct LayoutManifest {
    pub digest: String,
    pub json: serde_json::Value,
}

impl LayoutManifest {
    /// Config and layer digests.
    pub fn blob_digests(&self) -> Vec<String> {
        crate::digest::image_blob_digests(&self.json)
    }
}

impl OciLayout {
    /// `oci:<dir>:<tag>`, the reference skopeo takes.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// A blob's bytes, checked to hash to `digest`.
    pub fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.join("blobs/sha256").join(hex(digest));
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let actual = sha256(&bytes);
        ensure!(
            actual == digest,
            "{} hashes to {actual}, not to its name",
            path.display()
        );
        Ok(bytes)
    }

    /// The manifest `index.json` names `tag`.
    pub fn manifest(&self, tag: &str) -> anyhow::Result<LayoutManifest> {
        let index_path = self.dir.join("index.json");
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&index_path)
                .with_context(|| format!("cannot read {}", index_path.display()))?,
        )?;
        let digest = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .and_then(|m| m["digest"].as_str())
            .with_context(|| format!("{} has no tag {tag}: {index}", index_path.display()))?
            .to_string();
        let json = serde_json::from_slice(&self.blob(&digest)?)?;
        Ok(LayoutManifest { digest, json })
    }
}

/// A file to put in a layer: path inside the image and content.
pub struct File {
    pub path: &'static str,
    pub content: Vec<u8>,
}

impl File {
    pub fn text(path: &'static str, text: &str) -> File {
        File {
            path,
            content: text.as_bytes().to_vec(),
        }
    }

    /// `BIG_FILE_BYTES` of random data, so the layer does not compress away.
    pub fn random(path: &'static str) -> anyhow::Result<File> {
        let mut content = Vec::new();
        std::fs::File::open("/dev/urandom")?
            .take(BIG_FILE_BYTES)
            .read_to_end(&mut content)?;
        Ok(File { path, content })
    }
}

/// Builds image `tag` in a new layout at `work/<name>`, one `umoci insert` (one layer) per
/// element of `layers`.
pub async fn build(
    work: &Path,
    name: &str,
    tag: &str,
    layers: Vec<Vec<File>>,
) -> anyhow::Result<OciLayout> {
    let umoci = Tool::new("umoci", "umoci")?;
    let dir = work.join(name);
    let image = format!("{}:{tag}", dir.display());
    umoci
        .run([OsStr::new("init"), OsStr::new("--layout"), dir.as_os_str()])
        .await?;
    umoci.run(["new", "--image", &image]).await?;
    for (i, files) in layers.into_iter().enumerate() {
        let root = work.join(format!("{name}-layer{i}"));
        for file in files {
            let path = root.join(file.path);
            std::fs::create_dir_all(path.parent().context("file without a parent")?)?;
            std::fs::write(&path, &file.content)?;
        }
        // --rootless keeps the tests independent of running as root; "/" is where the files
        // land inside the image.
        umoci
            .run([
                OsStr::new("insert"),
                OsStr::new("--rootless"),
                OsStr::new("--image"),
                OsStr::new(&image),
                root.as_os_str(),
                OsStr::new("/"),
            ])
            .await?;
    }
    Ok(OciLayout { dir })
}

/// The image most tests push: a layer of small text files and a layer with a 3 MiB random file.
pub async fn two_layer_image(work: &Path, name: &str, tag: &str) -> anyhow::Result<OciLayout> {
    build(
        work,
        name,
        tag,
        vec![
            vec![
                File::text("etc/hello", "hello from wharf's end-to-end tests\n"),
                File::text("etc/os-release", "ID=wharf-e2e\n"),
                File::text("usr/bin/greet", "#!/bin/sh\ncat /etc/hello\n"),
            ],
            vec![File::random("data/random.bin")?],
        ],
    )
    .await
}

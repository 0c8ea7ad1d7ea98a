//! The pure parser from a `/v2/` URL path to the endpoint it names. Repository names contain
//! `/`, so the router hands the whole tail here and the path is read from its end.

/// An OCI Distribution endpoint (the repository name is still unvalidated text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<uuid>`
    Upload { name: String, uuid: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
}

impl Endpoint {
    /// Parses the part of the path after `/v2/`. None means no endpoint has that shape.
    pub fn parse(rest: &str) -> Option<Endpoint> {
        if rest.is_empty() {
            return Some(Endpoint::Base);
        }
        if rest == "_catalog" {
            return Some(Endpoint::Catalog);
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let n = parts.len();
        let name = |upto: usize| -> Option<String> {
            (upto > 0)
                .then(|| parts[..upto].join("/"))
                .filter(|s| !s.is_empty())
        };
        if n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list" {
            return Some(Endpoint::Tags { name: name(n - 2)? });
        }
        if n >= 3 && parts[n - 3] == "blobs" && parts[n - 2] == "uploads" {
            let name = name(n - 3)?;
            return Some(if parts[n - 1].is_empty() {
                Endpoint::UploadStart { name }
            } else {
                Endpoint::Upload {
                    name,
                    uuid: parts[n - 1].to_string(),
                }
            });
        }
        if n >= 3 && parts[n - 2] == "blobs" && parts[n - 1] == "uploads" {
            return Some(Endpoint::UploadStart { name: name(n - 2)? });
        }
        if n >= 3 && !parts[n - 1].is_empty() {
            let last = parts[n - 1].to_string();
            match parts[n - 2] {
                "manifests" => {
                    return Some(Endpoint::Manifest {
                        name: name(n - 2)?,
                        reference: last,
                    });
                }
                "blobs" => {
                    return Some(Endpoint::Blob {
                        name: name(n - 2)?,
                        digest: last,
                    });
                }
                "referrers" => {
                    return Some(Endpoint::Referrers {
                        name: name(n - 2)?,
                        digest: last,
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// A short label for spans and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags { .. } => "tags",
            Endpoint::Manifest { .. } => "manifest",
            Endpoint::Blob { .. } => "blob",
            Endpoint::UploadStart { .. } => "upload_start",
            Endpoint::Upload { .. } => "upload",
            Endpoint::Referrers { .. } => "referrers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint::{self, *};

    fn p(s: &str) -> Option<Endpoint> {
        Endpoint::parse(s)
    }

    #[test]
    fn parses_every_endpoint() {
        assert_eq!(p(""), Some(Base));
        assert_eq!(p("_catalog"), Some(Catalog));
        assert_eq!(p("a/b/tags/list"), Some(Tags { name: "a/b".into() }));
        assert_eq!(
            p("a/b/c/manifests/latest"),
            Some(Manifest {
                name: "a/b/c".into(),
                reference: "latest".into()
            })
        );
        assert_eq!(
            p("a/b/blobs/sha256:00"),
            Some(Blob {
                name: "a/b".into(),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            p("a/b/blobs/uploads/"),
            Some(UploadStart { name: "a/b".into() })
        );
        assert_eq!(
            p("a/b/blobs/uploads"),
            Some(UploadStart { name: "a/b".into() })
        );
        assert_eq!(
            p("a/b/blobs/uploads/u-1"),
            Some(Upload {
                name: "a/b".into(),
                uuid: "u-1".into()
            })
        );
        assert_eq!(
            p("a/b/referrers/sha256:00"),
            Some(Referrers {
                name: "a/b".into(),
                digest: "sha256:00".into()
            })
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            p("ns/blobs/blobs/sha256:00"),
            Some(Blob {
                name: "ns/blobs".into(),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            p("ns/manifests/manifests/v1"),
            Some(Manifest {
                name: "ns/manifests".into(),
                reference: "v1".into()
            })
        );
        assert_eq!(
            p("ns/tags/list/tags/list"),
            Some(Tags {
                name: "ns/tags/list".into()
            })
        );
    }

    #[test]
    fn refuses_shapes_that_name_nothing() {
        for bad in [
            "a",
            "a/b",
            "a/b/manifests/",
            "/manifests/x",
            "tags/list",
            "a/b/unknown/x",
            "blobs/uploads/",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}

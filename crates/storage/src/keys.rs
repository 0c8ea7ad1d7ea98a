//! Object keys every driver shares: where an upload's object lives, and what may appear in
//! a key built from an upload id.

/// The upload id with everything but ASCII letters, digits and `-` removed, so an id taken
/// from a request or a database row can never name another directory.
pub(crate) fn safe_name(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// The key of the object an upload becomes: `blobs/<first two chars>/<id>`, fixed when the
/// upload begins.
pub(crate) fn blob_key(upload_id: &str) -> String {
    let id = safe_name(upload_id);
    let shard: String = id.chars().take(2).collect();
    format!("blobs/{shard}/{id}")
}

/// The folder of an upload's temporary objects (object stores keep the upload's unfinished
/// tail there).
pub(crate) fn upload_dir(upload_id: &str) -> String {
    format!("uploads/{}", safe_name(upload_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_of_safe_characters() {
        assert_eq!(blob_key("ab12-cd"), "blobs/ab/ab12-cd");
        assert_eq!(blob_key("../x/y"), "blobs/xy/xy");
        assert_eq!(upload_dir("a/../b"), "uploads/ab");
    }
}

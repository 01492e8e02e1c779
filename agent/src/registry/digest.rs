//! Tag → manifest digest, so every Job runs `repository@sha256:…` and a tag re-pushed
//! mid-flight cannot change what runs.
//!
//! `HEAD /v2/<name>/manifests/<tag>` accepting image indexes as well as manifests, so a
//! multi-platform image resolves to its index (what `docker pull` and the kubelet resolve).
//! Without a `Docker-Content-Digest` header the manifest is fetched and hashed instead.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::client::Session;
use super::error::{Activity, ScanError};

/// Manifest kinds accepted, indexes first.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

const DIGEST_HEADER: &str = "docker-content-digest";

pub(crate) async fn resolve(session: &mut Session<'_>, tag: &str) -> Result<String, ScanError> {
    let url = session.url(&format!("manifests/{tag}"));
    let activity = || Activity::Digest { tag: tag.to_owned() };
    let head = session.send_within(Method::HEAD, &url, MANIFEST_TYPES, activity).await?;
    check_found(session, head.status, tag)?;
    if let Some(digest) = header_digest(&head.headers) {
        return valid(session, digest);
    }
    let get = session.send_within(Method::GET, &url, MANIFEST_TYPES, activity).await?;
    check_found(session, get.status, tag)?;
    match header_digest(&get.headers) {
        Some(digest) => valid(session, digest),
        None => Ok(sha256(&get.body)),
    }
}

fn check_found(session: &Session<'_>, status: StatusCode, tag: &str) -> Result<(), ScanError> {
    match status {
        StatusCode::OK => Ok(()),
        // The tag was listed a moment ago: it was deleted (or the repository) since.
        StatusCode::NOT_FOUND => Err(ScanError::TagNotFound {
            registry: session.image.registry().to_owned(),
            repository: session.image.repository().to_owned(),
            tag: tag.to_owned(),
        }),
        other => Err(session.protocol(format!("manifest request for tag {tag} answered HTTP {other}"))),
    }
}

fn header_digest(headers: &HeaderMap) -> Option<&str> {
    headers.get(DIGEST_HEADER).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn valid(session: &Session<'_>, digest: &str) -> Result<String, ScanError> {
    if is_valid_digest(digest) {
        Ok(digest.to_owned())
    } else {
        Err(session.protocol(format!("invalid manifest digest {digest:?}")))
    }
}

/// `sha256:` + 64 or `sha512:` + 128 lowercase hex digits: the digests image references use.
pub fn is_valid_digest(digest: &str) -> bool {
    let hex_len = match digest.split_once(':') {
        Some(("sha256", hex)) => (hex, 64),
        Some(("sha512", hex)) => (hex, 128),
        _ => return false,
    };
    hex_len.0.len() == hex_len.1 && hex_len.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn sha256(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hash {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert!(is_valid_digest(&format!("sha256:{}", "0a".repeat(32))));
        assert!(is_valid_digest(&format!("sha512:{}", "f".repeat(128))));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_valid_digest(&format!("sha256:{}", "a".repeat(63))));
        assert!(!is_valid_digest("md5:abc"));
        assert!(!is_valid_digest("sha256"));
    }

    #[test]
    fn body_hash() {
        assert_eq!(sha256(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}

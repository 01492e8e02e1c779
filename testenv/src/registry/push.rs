//! Pushing built images with `oci-client`: blobs once, then the manifest under every tag.

use std::path::{Path, PathBuf};

use futures::{StreamExt as _, TryStreamExt as _};
use http::HeaderValue;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::image::{self, BuiltImage, ImageConfig, MANIFEST_MEDIA_TYPE};
use super::{Credentials, RegistryError};

/// Manifest PUTs in flight at once when tagging: enough to tag thousands of tags in about a
/// second on loopback without flooding the registry.
const TAG_CONCURRENCY: usize = 16;

/// Where to push.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `host:port` of the registry.
    pub registry: String,
    pub credentials: Option<Credentials>,
    /// Plain HTTP instead of HTTPS (the default for loopback addresses).
    pub plain_http: bool,
}

impl PushTarget {
    /// A target using plain HTTP exactly when `registry` is a loopback address.
    pub fn new(registry: impl Into<String>, credentials: Option<Credentials>) -> Self {
        let registry = registry.into();
        let plain_http = is_loopback(&registry);
        Self { registry, credentials, plain_http }
    }
}

/// What `alustan-testenv push` needs, free of argument parsing.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub target: PushTarget,
    pub repo: String,
    pub tags: Vec<String>,
    pub dir: PathBuf,
    pub config: ImageConfig,
}

/// The logic of `alustan-testenv push`: builds one image from `dir` and pushes it under every
/// tag. Returns the manifest digest.
pub async fn push_command(request: &PushRequest) -> Result<String, RegistryError> {
    let tags: Vec<&str> = request.tags.iter().map(String::as_str).collect();
    push_dir(&request.target, &request.repo, &tags, &request.dir, &request.config).await
}

/// Builds one image from `dir` and pushes it under every tag; returns its manifest digest.
pub async fn push_dir(
    target: &PushTarget,
    repo: &str,
    tags: &[&str],
    dir: &Path,
    config: &ImageConfig,
) -> Result<String, RegistryError> {
    check_tags(repo, tags)?;
    let image = build_images(dir, config, None).await?.remove(0);
    let pusher = Pusher::new(target, repo).await?;
    pusher.push_blobs(&image).await?;
    pusher.tag_all(&image, tags).await?;
    Ok(image.manifest_digest)
}

/// Pushes one distinct image per tag: `dir` plus a file [`image::TAG_FILE`] holding the tag.
/// Returns `(tag, manifest digest)` in the order of `tags`.
pub async fn push_distinct(
    target: &PushTarget,
    repo: &str,
    tags: &[&str],
    dir: &Path,
    config: &ImageConfig,
) -> Result<Vec<(String, String)>, RegistryError> {
    check_tags(repo, tags)?;
    let owned: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    let images = build_images(dir, config, Some(owned)).await?;
    let pusher = Pusher::new(target, repo).await?;
    futures::stream::iter(tags.iter().zip(&images))
        .map(|(tag, image)| {
            let pusher = &pusher;
            async move {
                pusher.push_blobs(image).await?;
                pusher.put_manifest(image, tag).await?;
                Ok::<_, RegistryError>(((*tag).to_owned(), image.manifest_digest.clone()))
            }
        })
        .buffered(TAG_CONCURRENCY)
        .try_collect()
        .await
}

/// Whether `tag` matches the distribution spec's tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    tag.len() <= 128
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_tags(repo: &str, tags: &[&str]) -> Result<(), RegistryError> {
    if tags.is_empty() {
        return Err(RegistryError::NoTags { repo: repo.into() });
    }
    match tags.iter().find(|tag| !is_valid_tag(tag)) {
        Some(tag) => Err(RegistryError::InvalidTag { tag: (*tag).to_owned() }),
        None => Ok(()),
    }
}

/// Reads `dir` once and builds one image, or one per tag when `distinct_tags` is given. File
/// I/O and gzip are blocking work, so they run off the async threads.
async fn build_images(
    dir: &Path,
    config: &ImageConfig,
    distinct_tags: Option<Vec<String>>,
) -> Result<Vec<BuiltImage>, RegistryError> {
    let dir = dir.to_owned();
    let config = config.clone();
    let task = tokio::task::spawn_blocking(move || {
        let entries = image::read_dir_entries(&dir)?;
        match distinct_tags {
            None => Ok(vec![image::build(&dir, &entries, None, &config)?]),
            Some(tags) => tags
                .iter()
                .map(|tag| {
                    let extra = (image::TAG_FILE, tag.as_bytes());
                    image::build(&dir, &entries, Some(extra), &config)
                })
                .collect(),
        }
    });
    task.await.map_err(|err| RegistryError::io("building image layers", std::io::Error::other(err)))?
}

/// Installs ring as the process's rustls crypto provider (idempotent: a second install fails
/// harmlessly). reqwest, under oci-client, needs one before any client is built.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .map_or(registry, |(host, port)| if port.bytes().all(|b| b.is_ascii_digit()) { host } else { registry })
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An `oci-client` bound to one repository of one registry.
struct Pusher {
    client: Client,
    registry: String,
    repo: String,
}

impl Pusher {
    async fn new(target: &PushTarget, repo: &str) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let protocol = if target.plain_http {
            ClientProtocol::HttpsExcept(vec![target.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig { protocol, ..ClientConfig::default() });
        let pusher = Self { client, registry: target.registry.clone(), repo: repo.to_owned() };
        // Authenticate once up front: concurrent requests then reuse the cached token instead
        // of each probing `/v2/` for the challenge. Anonymous auth is deliberately not stored:
        // oci-client caches no token for it and would probe `/v2/` before every request.
        if let Some(c) = &target.credentials {
            let auth = RegistryAuth::Basic(c.username.clone(), c.password.clone());
            for op in [RegistryOperation::Pull, RegistryOperation::Push] {
                pusher
                    .client
                    .auth(&pusher.reference("latest"), &auth, op)
                    .await
                    .map_err(|err| pusher.error("credentials", err))?;
            }
        }
        Ok(pusher)
    }

    fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repo.clone(), tag.to_owned())
    }

    fn error(&self, what: &str, source: oci_client::errors::OciDistributionError) -> RegistryError {
        RegistryError::Push {
            registry: self.registry.clone(),
            repo: self.repo.clone(),
            what: what.to_owned(),
            source: Box::new(source),
        }
    }

    /// Uploads the layer and the config unless the registry already has them.
    async fn push_blobs(&self, image: &BuiltImage) -> Result<(), RegistryError> {
        let reference = self.reference("latest");
        for (what, data, digest) in
            [("layer", &image.layer, &image.layer_digest), ("config", &image.config, &image.config_digest)]
        {
            let what = format!("{what} blob {digest}");
            let exists = self.client.blob_exists(&reference, digest).await.map_err(|err| self.error(&what, err))?;
            if !exists {
                self.client.push_blob(&reference, data.clone(), digest).await.map_err(|err| self.error(&what, err))?;
            }
        }
        Ok(())
    }

    /// PUTs the same manifest bytes under each tag, a bounded number at a time.
    async fn tag_all(&self, image: &BuiltImage, tags: &[&str]) -> Result<(), RegistryError> {
        futures::stream::iter(tags)
            .map(|tag| self.put_manifest(image, tag))
            .buffer_unordered(TAG_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn put_manifest(&self, image: &BuiltImage, tag: &str) -> Result<(), RegistryError> {
        self.client
            .push_manifest_raw(
                &self.reference(tag),
                image.manifest.clone(),
                HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|err| self.error(&format!("manifest for tag {tag}"), err))?;
        Ok(())
    }
}

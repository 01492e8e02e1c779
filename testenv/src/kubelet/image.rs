//! Image pulls for the process kubelet: resolve the reference to a manifest digest, pull and
//! unpack the layers once per digest (a cache, as a node's image store), and read the image
//! config's Entrypoint/Cmd/Env/WorkingDir.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_LAYER_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

use super::KubeletError;

/// The parts of an image config (`config` of the OCI image configuration) a runtime uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfigFile {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
}

/// A pulled, unpacked image.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// `sha256:…` of the manifest (what `imageID` reports).
    pub digest: String,
    /// The unpacked root filesystem (read-only by convention: Pods get a copy).
    pub rootfs: PathBuf,
    pub config: ImageConfigFile,
}

/// The node's image store: one pull and unpack per manifest digest.
pub struct ImageStore {
    dir: PathBuf,
    client: Client,
    by_digest: Mutex<HashMap<String, Arc<OnceCell<PulledImage>>>>,
    pulls: AtomicUsize,
}

impl ImageStore {
    pub fn new(dir: PathBuf, insecure_registries: Vec<String>) -> Self {
        let protocol = if insecure_registries.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(insecure_registries)
        };
        Self {
            dir,
            client: Client::new(ClientConfig { protocol, ..ClientConfig::default() }),
            by_digest: Mutex::default(),
            pulls: AtomicUsize::new(0),
        }
    }

    /// How many images were actually pulled and unpacked.
    pub fn pulls(&self) -> usize {
        self.pulls.load(Ordering::Relaxed)
    }

    /// Pulls `image` (by tag or digest) with `auth`, unpacking it unless that digest is cached.
    pub async fn pull(&self, image: &str, auth: &RegistryAuth) -> Result<PulledImage, KubeletError> {
        let pull_error = |message: String| KubeletError::Pull { image: image.to_owned(), message };
        let reference: Reference = image.parse().map_err(|e| pull_error(format!("invalid image reference: {e}")))?;
        let digest = match reference.digest() {
            Some(digest) => digest.to_owned(),
            None => self.client.fetch_manifest_digest(&reference, auth).await.map_err(|e| pull_error(e.to_string()))?,
        };
        let cell = Arc::clone(self.by_digest.lock().await.entry(digest.clone()).or_default());
        let pulled = cell
            .get_or_try_init(|| async {
                let pinned = reference.clone_with_digest(digest.clone());
                let accepted = vec![
                    IMAGE_LAYER_GZIP_MEDIA_TYPE,
                    IMAGE_LAYER_MEDIA_TYPE,
                    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                    IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
                ];
                let data = self.client.pull(&pinned, auth, accepted).await.map_err(|e| pull_error(e.to_string()))?;
                let config = parse_config(&data.config.data).map_err(pull_error)?;
                let rootfs = self.dir.join(digest.replace(':', "-")).join("rootfs");
                let layers: Vec<(Vec<u8>, bool)> =
                    data.layers.iter().map(|l| (l.data.to_vec(), l.media_type.ends_with("gzip"))).collect();
                let target = rootfs.clone();
                tokio::task::spawn_blocking(move || unpack_layers(&target, &layers))
                    .await
                    .map_err(|e| pull_error(format!("unpack task failed: {e}")))?
                    .map_err(|source| KubeletError::Unpack { image: image.to_owned(), source })?;
                self.pulls.fetch_add(1, Ordering::Relaxed);
                Ok::<_, KubeletError>(PulledImage { digest: digest.clone(), rootfs, config })
            })
            .await?;
        Ok(pulled.clone())
    }
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfigFile, String> {
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        config: Option<ImageConfigFile>,
    }
    let outer: Outer = serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))?;
    Ok(outer.config.unwrap_or_default())
}

/// Applies layers in order, honouring OCI whiteouts (`.wh.NAME` deletes NAME, `.wh..wh..opq`
/// empties the directory). Entries escaping the root are refused by `unpack_in`.
fn unpack_layers(root: &Path, layers: &[(Vec<u8>, bool)]) -> std::io::Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    std::fs::create_dir_all(root)?;
    for (bytes, gzipped) in layers {
        let reader: Box<dyn std::io::Read> =
            if *gzipped { Box::new(flate2::read::GzDecoder::new(&bytes[..])) } else { Box::new(&bytes[..]) };
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let parent = root.join(path.parent().unwrap_or_else(|| Path::new("")));
            if name == ".wh..wh..opq" {
                if parent.is_dir() {
                    for child in std::fs::read_dir(&parent)? {
                        remove_any(&child?.path())?;
                    }
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                remove_any(&parent.join(hidden))?;
                continue;
            }
            entry.unpack_in(root)?;
            // Drain what unpack_in may not have read (e.g. for skipped entries).
            std::io::copy(&mut entry.by_ref().take(u64::MAX), &mut std::io::sink())?;
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

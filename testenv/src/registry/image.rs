//! Builds a one-layer OCI image from a directory, deterministically: identical directories give
//! byte-identical layers, configs and manifests, hence identical digests.
//!
//! Formats: OCI image spec (`image-layout`, `config.md`, `manifest.md`).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::RegistryError;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// File added by [`super::Registry::push_distinct`] so each tag gets its own digest.
pub const TAG_FILE: &str = ".alustan-tag";

/// The runtime part of the image config: what a container runtime runs by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// A fully built image: the bytes to upload and their digests.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub layer: Bytes,
    pub layer_digest: String,
    pub config: Bytes,
    pub config_digest: String,
    pub manifest: Bytes,
    pub manifest_digest: String,
}

/// One file-system entry read from the source directory (kept in memory so several images can
/// be built from one walk).
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    path: String,
    mode: u32,
    kind: EntryKind,
}

#[derive(Debug, Clone)]
enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in &hash {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// Reads `dir` recursively, entries sorted by name so the layer does not depend on `readdir`
/// order.
pub(crate) fn read_dir_entries(dir: &Path) -> Result<Vec<DirEntry>, RegistryError> {
    let layer_error = |source| RegistryError::Layer { dir: dir.to_owned(), source };
    let mut entries = Vec::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let mut children =
            std::fs::read_dir(&abs).map_err(layer_error)?.collect::<Result<Vec<_>, _>>().map_err(layer_error)?;
        children.sort_by_key(std::fs::DirEntry::file_name);
        let mut subdirs = Vec::new();
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let meta = std::fs::symlink_metadata(child.path()).map_err(layer_error)?;
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if meta.is_dir() {
                subdirs.push((child.path(), path.clone()));
                EntryKind::Dir
            } else if meta.is_file() {
                EntryKind::File(std::fs::read(child.path()).map_err(layer_error)?)
            } else if meta.file_type().is_symlink() {
                EntryKind::Symlink(std::fs::read_link(child.path()).map_err(layer_error)?)
            } else {
                return Err(RegistryError::UnsupportedFile { path: child.path() });
            };
            entries.push(DirEntry { path, mode, kind });
        }
        // Depth-first in name order: push in reverse so the smallest name is visited first.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(entries)
}

/// Builds the image from entries read by [`read_dir_entries`], plus an optional extra file.
pub(crate) fn build(
    dir: &Path,
    entries: &[DirEntry],
    extra_file: Option<(&str, &[u8])>,
    config: &ImageConfig,
) -> Result<BuiltImage, RegistryError> {
    let layer_error = |source| RegistryError::Layer { dir: dir.to_owned(), source };
    let tar = build_tar(entries, extra_file).map_err(layer_error)?;
    let diff_id = sha256_digest(&tar);
    // `GzEncoder::new` writes mtime 0 and no file name: the gzip header is deterministic too.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).map_err(layer_error)?;
    let layer = Bytes::from(gz.finish().map_err(layer_error)?);
    let layer_digest = sha256_digest(&layer);

    let config_bytes = Bytes::from(to_json(&ConfigFile::new(config, diff_id))?);
    let config_digest = sha256_digest(&config_bytes);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: Descriptor { media_type: CONFIG_MEDIA_TYPE, digest: config_digest.clone(), size: config_bytes.len() },
        layers: vec![Descriptor { media_type: LAYER_MEDIA_TYPE, digest: layer_digest.clone(), size: layer.len() }],
    };
    let manifest = Bytes::from(to_json(&manifest)?);
    Ok(BuiltImage {
        manifest_digest: sha256_digest(&manifest),
        layer,
        layer_digest,
        config: config_bytes,
        config_digest,
        manifest,
    })
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(value)
        .map_err(|source| RegistryError::Json { what: "an image document being built".into(), source })
}

/// Tar with zero mtime/uid/gid and no user names: only paths, modes and contents matter.
fn build_tar(entries: &[DirEntry], extra_file: Option<(&str, &[u8])>) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    };
    for entry in entries {
        match &entry.kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, entry.mode, 0);
                tar.append_data(&mut h, &entry.path, std::io::empty())?;
            }
            EntryKind::File(data) => {
                let mut h = header(tar::EntryType::Regular, entry.mode, data.len() as u64);
                tar.append_data(&mut h, &entry.path, data.as_slice())?;
            }
            EntryKind::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, entry.mode, 0);
                tar.append_link(&mut h, &entry.path, target)?;
            }
        }
    }
    if let Some((path, data)) = extra_file {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, path, data)?;
    }
    tar.into_inner()
}

/// Go's `GOARCH` name of the host, as image configs use it.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    architecture: &'static str,
    os: &'static str,
    config: RuntimeConfig<'a>,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfig<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

impl<'a> ConfigFile<'a> {
    fn new(config: &'a ImageConfig, diff_id: String) -> Self {
        Self {
            architecture: goarch(),
            os: "linux",
            config: RuntimeConfig {
                entrypoint: &config.entrypoint,
                cmd: &config.cmd,
                env: &config.env,
                working_dir: config.working_dir.as_deref(),
            },
            rootfs: RootFs { kind: "layers", diff_ids: vec![diff_id] },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
}

//! A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a random
//! loopback port, storage in a temp dir, anonymous or htpasswd (bcrypt) auth, plus helpers to
//! push images built from a directory, delete manifests, and page tag lists through a proxy.
//!
//! Quirks of distribution 2.8 that clients must survive (each shown in `tests/registry.rs`):
//! - `tags/list` ignores `n`/`last` and returns every tag, in storage order (not sorted);
//! - once every tag of a repository is deleted, `tags/list` answers `{"tags": null}`;
//! - a tag outside the grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` (e.g. `1.2.3+build`)
//!   matches no route: a plain-text `404 page not found`, not a JSON `TAG_INVALID` error;
//! - an OCI manifest is only served to clients whose `Accept` lists its media type; others
//!   get 404 `MANIFEST_UNKNOWN` ("OCI manifest found, but accept header does not support OCI
//!   manifests").

mod config;
mod error;
mod image;
mod paging;
mod push;
mod raw;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

pub use self::error::RegistryError;
pub use self::image::{ImageConfig, MANIFEST_MEDIA_TYPE, TAG_FILE};
pub use self::paging::PagingProxy;
pub use self::push::{PushRequest, PushTarget, is_valid_tag, push_command};
pub use self::raw::{RawClient, RawResponse};

/// HTTP basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into() }
    }
}

impl std::fmt::Debug for Credentials {
    // Never print the password, even in test failures.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// How to start a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `None`: anonymous pull and push. `Some`: htpasswd auth with this single user.
    pub credentials: Option<Credentials>,
    /// The registry binary; found on `PATH` by default.
    pub binary: PathBuf,
    /// Where the instance's temp dir (config, logs, storage) goes. Default: `/dev/shm` when
    /// usable, else the system temp dir. Why: on these machines' ext4 disks, deleting the
    /// ~7,000 small files of a 1,000-tag repository takes ~20 s; on tmpfs it takes 0.2 s.
    pub temp_root: Option<PathBuf>,
    /// Listen on this loopback port instead of a free random one (e.g. a demo's pinned port).
    pub port: Option<u16>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self { credentials: None, binary: PathBuf::from("docker-registry"), temp_root: None, port: None }
    }
}

impl RegistryOptions {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn htpasswd(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { credentials: Some(Credentials::new(username, password)), ..Self::default() }
    }
}

/// A running registry; the process is killed and its storage removed on drop.
pub struct Registry {
    // Field order matters: proxies and process stop before the temp dir is removed.
    proxies: Mutex<Vec<PagingProxy>>,
    process: server::Process,
    credentials: Option<Credentials>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry and waits until `GET /v2/` answers.
    pub async fn start(options: RegistryOptions) -> Result<Self, RegistryError> {
        let dir = temp_dir(options.temp_root.as_deref())?;
        let htpasswd = match &options.credentials {
            Some(c) => Some(config::write_htpasswd(dir.path(), &c.username, &c.password)?),
            None => None,
        };
        let process = server::start(&options.binary, dir.path(), htpasswd.as_deref(), options.port).await?;
        Ok(Self { proxies: Mutex::new(Vec::new()), process, credentials: options.credentials, dir })
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> &str {
        &self.process.host_port
    }

    /// The htpasswd user, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The registry's own log (warnings and errors), for debugging a failing test.
    pub fn log(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        logs.sort();
        logs.last().map_or_else(String::new, |path| server::read_log(path))
    }

    /// Where [`push_command`] and friends push to, with this registry's credentials.
    pub fn target(&self) -> PushTarget {
        PushTarget::new(self.host_port(), self.credentials.clone())
    }

    /// A raw HTTP client sending this registry's credentials.
    pub fn client(&self) -> RawClient {
        RawClient::new(self.host_port()).with_credentials(self.credentials())
    }

    /// A raw HTTP client without credentials.
    pub fn anonymous_client(&self) -> RawClient {
        RawClient::new(self.host_port())
    }

    /// Builds one image from `dir` and pushes it under every tag; returns its manifest digest.
    pub async fn push_dir(
        &self,
        repo: &str,
        tags: &[&str],
        dir: &Path,
        config: &ImageConfig,
    ) -> Result<String, RegistryError> {
        push::push_dir(&self.target(), repo, tags, dir, config).await
    }

    /// Pushes a distinct image per tag (`dir` plus a [`TAG_FILE`] naming the tag); returns
    /// `(tag, manifest digest)` pairs in the order of `tags`.
    pub async fn push_distinct(
        &self,
        repo: &str,
        tags: &[&str],
        dir: &Path,
        config: &ImageConfig,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        push::push_distinct(&self.target(), repo, tags, dir, config).await
    }

    /// The digest a tag points at (from `Docker-Content-Digest`).
    pub async fn resolve(&self, repo: &str, tag: &str) -> Result<String, RegistryError> {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_MEDIA_TYPE));
        let response = self.client().request(Method::HEAD, &path, headers, Bytes::new()).await?;
        match response.header("Docker-Content-Digest") {
            Some(digest) if response.status == StatusCode::OK => Ok(digest.to_owned()),
            _ => Err(self.status_error(Method::HEAD, path, &response)),
        }
    }

    /// The manifest bytes of `reference` (tag or digest). Sends `Accept`: without it,
    /// distribution 2.8 answers 404 `MANIFEST_UNKNOWN` for an OCI manifest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<Bytes, RegistryError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_MEDIA_TYPE));
        let response = self.client().request(Method::GET, &path, headers, Bytes::new()).await?;
        if response.status == StatusCode::OK {
            Ok(response.body)
        } else {
            Err(self.status_error(Method::GET, path, &response))
        }
    }

    /// Deletes the manifest `tag` points at. Distribution 2.8 deletes manifests by digest only,
    /// so this removes every tag sharing that manifest. Returns the deleted digest.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<String, RegistryError> {
        let digest = self.resolve(repo, tag).await?;
        self.delete_manifest(repo, &digest).await?;
        Ok(digest)
    }

    /// `DELETE /v2/<repo>/manifests/<digest>` (202 Accepted on success).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), RegistryError> {
        let path = format!("/v2/{repo}/manifests/{digest}");
        let response = self.client().request(Method::DELETE, &path, HeaderMap::new(), Bytes::new()).await?;
        if response.status == StatusCode::ACCEPTED {
            Ok(())
        } else {
            Err(self.status_error(Method::DELETE, path, &response))
        }
    }

    /// Starts a [`PagingProxy`] in front of this registry (stopped with it); returns its
    /// `host:port`.
    pub async fn paging_proxy(&self, page_size: usize) -> Result<String, RegistryError> {
        let proxy = PagingProxy::start(self.host_port(), page_size).await?;
        let host_port = proxy.host_port();
        self.proxies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(proxy);
        Ok(host_port)
    }

    fn status_error(&self, method: Method, path: String, response: &RawResponse) -> RegistryError {
        RegistryError::Status {
            method,
            host_port: self.host_port().to_owned(),
            path,
            status: response.status,
            body: response.text(),
        }
    }
}

fn temp_dir(root: Option<&Path>) -> Result<tempfile::TempDir, RegistryError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("alustan-registry-");
    let shm = Path::new("/dev/shm");
    match root {
        Some(root) => builder.tempdir_in(root),
        None if shm.is_dir() => builder.tempdir_in(shm).or_else(|_| builder.tempdir()),
        None => builder.tempdir(),
    }
    .map_err(|err| RegistryError::io("creating the registry temp dir", err))
}

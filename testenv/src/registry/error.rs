//! Errors of the registry fixture. Each names the registry, repository or path involved so a
//! failing test says what went wrong without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{binary}` was not found: install the Debian package `{package}` (apt-get install {package})")]
    ToolMissing { binary: String, package: &'static str },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`htpasswd` failed for user {user:?}: {message}")]
    Htpasswd { user: String, message: String },

    #[error("registry on {host_port} exited before it was ready ({status}); log:\n{log}")]
    Exited { host_port: String, status: std::process::ExitStatus, log: String },

    #[error("registry on {host_port} was not ready after {waited:?}; log:\n{log}")]
    NotReady { host_port: String, waited: std::time::Duration, log: String },

    #[error("could not start a registry after {attempts} attempts (ports kept colliding)")]
    PortCollisions { attempts: u32 },

    #[error("building an image from {}: {source}", dir.display())]
    Layer {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot put {} in an image layer: only files, directories and symlinks", path.display())]
    UnsupportedFile { path: PathBuf },

    #[error(
        "invalid tag {tag:?}: OCI tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}} \
         (no `+`: semver build metadata cannot be a tag)"
    )]
    InvalidTag { tag: String },

    #[error("no tag given for {repo}: an image needs at least one tag")]
    NoTags { repo: String },

    #[error("pushing {what} to {registry}/{repo}: {source}")]
    Push {
        registry: String,
        repo: String,
        what: String,
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },

    #[error("{method} http://{host_port}{path}: {source}")]
    Http {
        method: http::Method,
        host_port: String,
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{method} http://{host_port}{path} answered {status}: {body}")]
    Status { method: http::Method, host_port: String, path: String, status: http::StatusCode, body: String },

    #[error("invalid JSON from {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl RegistryError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}

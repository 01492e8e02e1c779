//! `containerRegistry.imageName` (+ optional `provider`) → which registry to ask, for which
//! repository.
//!
//! Rules (the same as Docker's): the first path segment names a registry host when it contains
//! a `.` or a `:` or is `localhost`; otherwise the image lives on Docker Hub, where a single
//! name means an official image (`nginx` → `library/nginx`). Tags and digests are refused: the
//! constraint picks the tag, and the digest is resolved from it.

use std::fmt;

use alustan_shared::RegistryProvider;

use super::error::ScanError;

/// The host Docker Hub's registry API answers on.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// The name images on Docker Hub are pulled by (what `docker pull` and Kubernetes show).
pub const DOCKER_HUB_NAME: &str = "docker.io";
/// GitHub Container Registry.
pub const GHCR_REGISTRY: &str = "ghcr.io";

/// Hostnames that all mean Docker Hub in an image name.
const DOCKER_HUB_ALIASES: [&str; 3] = [DOCKER_HUB_NAME, "index.docker.io", DOCKER_HUB_REGISTRY];

/// A repository on a registry: what gets scanned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    provider: RegistryProvider,
    /// The API host (`registry-1.docker.io`, `ghcr.io`, `registry.example.com:5000`).
    registry: String,
    /// The repository path on that host (`library/nginx`, `org/infra`).
    repository: String,
}

impl ImageRef {
    /// Parses `imageName`, honouring an explicit `provider`; contradictions are errors.
    pub fn parse(image_name: &str, provider: Option<RegistryProvider>) -> Result<Self, ScanError> {
        let invalid = |reason: String| ScanError::InvalidImageName { image: image_name.to_owned(), reason };
        let name = image_name.trim();
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name != image_name || name.chars().any(char::is_whitespace) {
            return Err(invalid("it contains whitespace".into()));
        }
        if name.contains("://") {
            return Err(invalid("write it without a URL scheme, e.g. `ghcr.io/org/infra`".into()));
        }
        if let Some((_, digest)) = name.split_once('@') {
            return Err(invalid(format!(
                "it carries a digest (@{digest}); name the repository only, the agent resolves digests itself"
            )));
        }
        let (host, path) = split_host(name);
        if let Some((_, tag)) = path.rsplit_once('/').map_or(path, |(_, last)| last).split_once(':') {
            return Err(invalid(format!(
                "it carries a tag (:{tag}); name the repository only and choose versions with semanticVersion"
            )));
        }
        check_repository_path(path).map_err(invalid)?;

        let inferred = match host {
            None => RegistryProvider::Docker,
            Some(h) if is_docker_hub(h) => RegistryProvider::Docker,
            Some(GHCR_REGISTRY) => RegistryProvider::Ghcr,
            Some(_) => RegistryProvider::Oci,
        };
        let provider = provider.unwrap_or(inferred);
        let registry = match (provider, host) {
            (RegistryProvider::Docker, None) => DOCKER_HUB_REGISTRY.to_owned(),
            (RegistryProvider::Docker, Some(h)) if is_docker_hub(h) => DOCKER_HUB_REGISTRY.to_owned(),
            (RegistryProvider::Ghcr, None | Some(GHCR_REGISTRY)) => GHCR_REGISTRY.to_owned(),
            // `oci` is any distribution registry, Docker Hub and GHCR included.
            (RegistryProvider::Oci, Some(h)) if is_docker_hub(h) => DOCKER_HUB_REGISTRY.to_owned(),
            (RegistryProvider::Oci, Some(h)) => h.to_owned(),
            (RegistryProvider::Oci, None) => {
                return Err(invalid(format!(
                    "provider is oci but the name has no registry host; write it as `registry.example.com/{path}`"
                )));
            }
            (RegistryProvider::Docker | RegistryProvider::Ghcr, Some(h)) => {
                return Err(invalid(format!(
                    "provider is {} but the name points at registry {h}; drop `provider` (it is inferred) \
                     or set it to oci",
                    provider_name(provider)
                )));
            }
        };
        let repository = if registry == DOCKER_HUB_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self { provider, registry, repository })
    }

    /// The registry kind, explicit or inferred.
    pub fn provider(&self) -> RegistryProvider {
        self.provider
    }

    /// The API host, e.g. `registry-1.docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The image as Kubernetes pulls it, without tag: `docker.io/library/nginx`,
    /// `ghcr.io/org/infra`.
    pub fn canonical(&self) -> String {
        let host = if self.registry == DOCKER_HUB_REGISTRY { DOCKER_HUB_NAME } else { &self.registry };
        format!("{host}/{}", self.repository)
    }

    /// The pinned reference a Job runs: `docker.io/library/nginx@sha256:…`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.canonical())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

fn provider_name(provider: RegistryProvider) -> &'static str {
    match provider {
        RegistryProvider::Docker => "docker",
        RegistryProvider::Ghcr => "ghcr",
        RegistryProvider::Oci => "oci",
    }
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES.contains(&host)
}

/// `(Some(host), rest)` when the first segment names a registry host.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
        _ => (None, name),
    }
}

/// The distribution spec's repository grammar: `/`-separated components of lowercase letters
/// and digits, joined inside a component by `.`, `_`, `__` or dashes.
fn check_repository_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository path is empty".into());
    }
    for component in path.split('/') {
        let bytes = component.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err("it has an empty path component (`//` or a trailing `/`)".into());
        };
        if let Some(bad) = component.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) {
            let why = if bad.is_ascii_uppercase() { "uppercase letters are not allowed" } else { "not allowed" };
            return Err(format!("character {bad:?} in {component:?}: {why} in a repository name"));
        }
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(format!("component {component:?} must start and end with a letter or digit"));
        }
        if component.contains("..") || component.contains("___") || component.contains("._") {
            return Err(format!("component {component:?} has consecutive separators"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegistryProvider::{Docker, Ghcr, Oci};

    fn parts(name: &str, provider: Option<RegistryProvider>) -> (RegistryProvider, String, String) {
        let r = ImageRef::parse(name, provider).unwrap();
        (r.provider(), r.registry().to_owned(), r.repository().to_owned())
    }

    fn error(name: &str, provider: Option<RegistryProvider>) -> String {
        ImageRef::parse(name, provider).unwrap_err().to_string()
    }

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(parts("nginx", None), (Docker, DOCKER_HUB_REGISTRY.into(), "library/nginx".into()));
        assert_eq!(
            parts("alustan/infrastructure", None),
            (Docker, DOCKER_HUB_REGISTRY.into(), "alustan/infrastructure".into())
        );
        assert_eq!(parts("docker.io/nginx", None).2, "library/nginx");
        assert_eq!(parts("index.docker.io/a/b", None).1, DOCKER_HUB_REGISTRY);
        assert_eq!(parts("alustan/infrastructure", Some(Docker)).0, Docker);
        let hub = ImageRef::parse("nginx", None).unwrap();
        assert_eq!(hub.canonical(), "docker.io/library/nginx");
        assert_eq!(hub.pinned("sha256:ab"), "docker.io/library/nginx@sha256:ab");
    }

    #[test]
    fn ghcr_and_other_hosts() {
        assert_eq!(parts("ghcr.io/org/infra", None), (Ghcr, "ghcr.io".into(), "org/infra".into()));
        assert_eq!(parts("org/infra", Some(Ghcr)), (Ghcr, "ghcr.io".into(), "org/infra".into()));
        assert_eq!(parts("ghcr.io/org/infra", Some(Oci)).0, Oci);
        assert_eq!(
            parts("registry.example.com:5000/team/infra", None),
            (Oci, "registry.example.com:5000".into(), "team/infra".into())
        );
        assert_eq!(parts("127.0.0.1:5000/infra", None), (Oci, "127.0.0.1:5000".into(), "infra".into()));
        assert_eq!(parts("localhost/team/infra", None), (Oci, "localhost".into(), "team/infra".into()));
        assert_eq!(parts("localhost:5000/a", None).1, "localhost:5000");
        assert_eq!(ImageRef::parse("ghcr.io/org/infra", None).unwrap().canonical(), "ghcr.io/org/infra");
        // A first segment without `.`/`:` is a Docker Hub namespace, not a host.
        assert_eq!(parts("myhost/team/infra", None), (Docker, DOCKER_HUB_REGISTRY.into(), "myhost/team/infra".into()));
    }

    #[test]
    fn tags_and_digests_are_refused() {
        assert!(error("alustan/infra:1.0.0", None).contains("carries a tag (:1.0.0)"));
        assert!(error("localhost:5000/infra:v1", None).contains("carries a tag (:v1)"));
        let digest = format!("alustan/infra@sha256:{}", "a".repeat(64));
        assert!(error(&digest, None).contains("carries a digest"));
        assert!(error("ghcr.io/org/infra:1@sha256:aa", None).contains("digest"));
    }

    #[test]
    fn contradictions_and_bad_names() {
        let e = error("ghcr.io/org/infra", Some(Docker));
        assert!(e.contains("provider is docker but the name points at registry ghcr.io"), "{e}");
        assert!(error("quay.io/org/infra", Some(Ghcr)).contains("provider is ghcr"));
        assert!(error("team/infra", Some(Oci)).contains("has no registry host"));
        assert!(error("", None).contains("empty"));
        assert!(error(" nginx", None).contains("whitespace"));
        assert!(error("https://ghcr.io/org/infra", None).contains("URL scheme"));
        assert!(error("Alustan/infra", None).contains("uppercase"));
        assert!(error("alustan//infra", None).contains("empty path component"));
        assert!(error("alustan/infra/", None).contains("empty path component"));
        assert!(error("alustan/-infra", None).contains("start and end"));
        assert!(error("ghcr.io/", None).contains("empty"));
    }
}

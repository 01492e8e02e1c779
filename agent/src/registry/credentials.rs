//! Registry credentials from docker `config.json` bytes: the agent-wide one (Helm value
//! `containerRegistrySecret`, mounted from a Secret) or a resource's own
//! `kubernetes.io/dockerconfigjson` Secret (`.dockerconfigjson`).
//!
//! Secret values never reach logs, errors or `Debug` output: they live in [`Secret`], whose
//! `Debug` is redacted, and errors name the Secret (and the registry key), never its content.
//! Credential helpers (`credsStore`, `credHelpers`) are ignored: the agent never runs programs
//! named by a Secret.

use std::fmt;

use oci_client::secrets::RegistryAuth;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::error::ScanError;

/// A value that must not be printed. `Debug` shows `<redacted>`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that sends it to the registry.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where credentials came from, as errors and status messages name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSource {
    /// The agent-wide docker config (Helm value `containerRegistrySecret`); `name` says where
    /// it is mounted from, e.g. `alustan-system/alustan-registry`.
    AgentWide { name: String },
    /// A resource's `spec.containerRegistry.secretRef`.
    SecretRef { namespace: String, name: String },
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AgentWide { name } => {
                write!(f, "the agent-wide registry secret {name} (Helm value containerRegistrySecret)")
            }
            Self::SecretRef { namespace, name } => write!(f, "Secret {namespace}/{name} (key .dockerconfigjson)"),
        }
    }
}

/// What to authenticate with against one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    login: Login,
    /// The docker config consulted, even when it had no entry for the registry (so an
    /// "unauthorized" error can say where an entry is missing).
    source: Option<SecretSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    Anonymous,
    Basic { username: String, password: Secret<String> },
}

impl Credentials {
    /// No credentials, and no docker config consulted.
    pub fn anonymous() -> Self {
        Self { login: Login::Anonymous, source: None }
    }

    /// A username and password (or token used as a password).
    pub fn basic(username: impl Into<String>, password: impl Into<String>, source: Option<SecretSource>) -> Self {
        Self { login: Login::Basic { username: username.into(), password: Secret::new(password.into()) }, source }
    }

    pub fn is_anonymous(&self) -> bool {
        self.login == Login::Anonymous
    }

    pub fn source(&self) -> Option<&SecretSource> {
        self.source.as_ref()
    }

    /// The username, if any (not a secret; shown in logs to help debugging).
    pub fn username(&self) -> Option<&str> {
        match &self.login {
            Login::Anonymous => None,
            Login::Basic { username, .. } => Some(username),
        }
    }

    pub(crate) fn registry_auth(&self) -> RegistryAuth {
        match &self.login {
            Login::Anonymous => RegistryAuth::Anonymous,
            Login::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.expose().clone()),
        }
    }

    /// A salted hash telling credentials apart in the scan cache without keeping them as keys.
    pub(crate) fn identity(&self, salt: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(salt);
        match &self.login {
            Login::Anonymous => hasher.update(b"anonymous"),
            Login::Basic { username, password } => {
                hasher.update(b"basic");
                // Length-prefixed so `ab`+`c` and `a`+`bc` differ.
                hasher.update(username.len().to_le_bytes());
                hasher.update(username.as_bytes());
                hasher.update(password.expose().as_bytes());
            }
        }
        hasher.finalize().into()
    }

    /// What an "unauthorized" error should tell the operator to check.
    pub(crate) fn unauthorized_hint(&self, registry: &str) -> String {
        match (&self.login, &self.source) {
            (Login::Basic { username, .. }, Some(source)) => {
                format!("check the credentials of user {username:?} for {registry} in {source}")
            }
            (Login::Basic { username, .. }, None) => format!("check the credentials of user {username:?}"),
            (Login::Anonymous, Some(source)) => format!(
                "{source} has no entry for {registry}; add one (registries such as Docker Hub also answer \
                 this way for repositories that do not exist)"
            ),
            (Login::Anonymous, None) => format!(
                "no registry credentials are configured; set spec.containerRegistry.secretRef to a \
                 kubernetes.io/dockerconfigjson Secret with an entry for {registry}, or the agent's \
                 containerRegistrySecret (registries such as Docker Hub also answer this way for \
                 repositories that do not exist)"
            ),
        }
    }
}

/// A parsed docker `config.json`.
#[derive(Clone)]
pub struct DockerConfig {
    source: SecretSource,
    /// The document with credential helpers removed, ready for `docker_credential`.
    json: Secret<Vec<u8>>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig").field("source", &self.source).finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// Checks the whole document up front, so a broken entry is reported even when another
    /// registry is being scanned. Errors name the Secret and the `auths` key, never a value.
    pub fn parse(source: SecretSource, bytes: &[u8]) -> Result<Self, ScanError> {
        let malformed = |reason: String| ScanError::MalformedSecret { secret: source.clone(), reason };
        // serde's messages can quote input ("invalid type: string \"…\""): keep only the position.
        let value: Value = serde_json::from_slice(bytes).map_err(|err| {
            malformed(format!(
                "not valid JSON ({:?} error at line {}, column {})",
                err.classify(),
                err.line(),
                err.column()
            ))
        })?;
        let Value::Object(mut document) = value else {
            return Err(malformed("the document is not a JSON object".into()));
        };
        let helpers: Vec<&str> =
            ["credsStore", "credHelpers"].into_iter().filter(|k| document.contains_key(*k)).collect();
        if !helpers.is_empty() {
            tracing::warn!(source = %source, fields = ?helpers, "ignoring credential helpers: the agent never runs helper programs");
            for key in ["credsStore", "credHelpers"] {
                document.remove(key);
            }
        }
        match document.get("auths") {
            None | Some(Value::Null) => {}
            Some(Value::Object(auths)) => check_auths(auths).map_err(malformed)?,
            Some(_) => return Err(malformed("`auths` is not an object".into())),
        }
        let json =
            serde_json::to_vec(&Value::Object(document)).map_err(|_| malformed("it could not be re-encoded".into()))?;
        Ok(Self { source, json: Secret::new(json) })
    }

    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// The credentials for `registry` (an API host such as `registry-1.docker.io`; Docker
    /// Hub's `https://index.docker.io/v1/` key matches it). No entry → anonymous, remembering
    /// this config was consulted.
    pub fn credentials_for(&self, registry: &str) -> Result<Credentials, ScanError> {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        let source = Some(self.source.clone());
        let malformed = |reason: String| ScanError::MalformedSecret { secret: self.source.clone(), reason };
        match docker_credential::get_credential_from_reader(self.json.expose().as_slice(), registry) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::basic(username, password, source))
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                Err(ScanError::UnsupportedCredential { secret: self.source.clone(), registry: registry.to_owned() })
            }
            Err(E::NoCredentialConfigured) => Ok(Credentials { login: Login::Anonymous, source }),
            Err(E::CredentialMismatchError) => {
                Err(malformed(format!("the entry for {registry}: `auth` and `username`/`password` disagree")))
            }
            Err(E::CredentialDecodingError) => {
                Err(malformed(format!("the entry for {registry}: `auth` is not base64 of `username:password`")))
            }
            // Helpers were removed, so only a read error is left; its message has no content.
            Err(other) => Err(malformed(format!("the entry for {registry}: {other}"))),
        }
    }
}

/// The per-resource Secret wins over the agent-wide one entirely: a resource that names its own
/// Secret never silently borrows the agent's credentials.
pub fn credentials_for(
    resource_secret: Option<&DockerConfig>,
    agent_wide: Option<&DockerConfig>,
    registry: &str,
) -> Result<Credentials, ScanError> {
    match resource_secret.or(agent_wide) {
        Some(config) => config.credentials_for(registry),
        None => Ok(Credentials::anonymous()),
    }
}

/// Shape checks of `auths.*`, naming keys (registry hosts) but never values.
fn check_auths(auths: &Map<String, Value>) -> Result<(), String> {
    for (key, entry) in auths {
        let Value::Object(fields) = entry else {
            return Err(format!("auths.{key:?} is not an object"));
        };
        for field in ["auth", "username", "password", "identitytoken"] {
            if !matches!(fields.get(field), None | Some(Value::String(_) | Value::Null)) {
                return Err(format!("auths.{key:?}.{field} is not a string"));
            }
        }
        if let Some(Value::String(auth)) = fields.get("auth")
            && !auth.is_empty()
            && !is_basic_pair(auth)
        {
            return Err(format!("auths.{key:?}.auth is not base64 of `username:password`"));
        }
    }
    Ok(())
}

/// Whether `encoded` is (padded or unpadded) base64 of UTF-8 text containing a `:`, decoded
/// the way `docker_credential` decodes it.
fn is_basic_pair(encoded: &str) -> bool {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    base64::Engine::decode(&engine, encoded.trim())
        .is_ok_and(|bytes| std::str::from_utf8(&bytes).is_ok_and(|s| s.contains(':')))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const PASSWORD: &str = "s3cr3t-P@ss";

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn source() -> SecretSource {
        SecretSource::SecretRef { namespace: "team".into(), name: "regcred".into() }
    }

    fn config(json: &str) -> Result<DockerConfig, ScanError> {
        DockerConfig::parse(source(), json.as_bytes())
    }

    #[test]
    fn auth_field_username_password_and_docker_hub_key() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "ghcr.io": {{"username": "octo", "password": "{PASSWORD}"}},
                "127.0.0.1:5000": {{"auth": "{}"}}
            }}}}"#,
            b64(&format!("hubuser:{PASSWORD}")),
            b64(&format!("local:{PASSWORD}")).trim_end_matches('='),
        );
        let config = config(&json).unwrap();
        let hub = config.credentials_for("registry-1.docker.io").unwrap();
        assert_eq!(hub.username(), Some("hubuser"));
        assert_eq!(hub.registry_auth(), RegistryAuth::Basic("hubuser".into(), PASSWORD.into()));
        assert_eq!(config.credentials_for("ghcr.io").unwrap().username(), Some("octo"));
        assert_eq!(config.credentials_for("127.0.0.1:5000").unwrap().username(), Some("local"));
        let none = config.credentials_for("quay.io").unwrap();
        assert!(none.is_anonymous());
        assert_eq!(none.source(), Some(&source()));
        assert!(
            none.unauthorized_hint("quay.io")
                .contains("Secret team/regcred (key .dockerconfigjson) has no entry for quay.io")
        );
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let json = format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#, b64(&format!("octo:{PASSWORD}")));
        let config = config(&json).unwrap();
        let creds = config.credentials_for("ghcr.io").unwrap();
        for text in [format!("{config:?}"), format!("{creds:?}"), creds.unauthorized_hint("ghcr.io")] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!text.contains(&b64(&format!("octo:{PASSWORD}"))), "{text}");
        }
        // A value of the wrong type would be quoted by serde's message: we never show it.
        let err = DockerConfig::parse(source(), format!(r#"{{"auths": "{PASSWORD}"}}"#).as_bytes()).unwrap_err();
        assert!(!err.to_string().contains(PASSWORD), "{err}");
        let err = DockerConfig::parse(
            source(),
            format!(r#"{{"auths": {{"x": {{"password": ["{PASSWORD}"]}}}}}}"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed registry credentials in Secret team/regcred (key .dockerconfigjson): auths.\"x\".password is not a string"
        );
    }

    #[test]
    fn malformed_documents_name_the_secret() {
        let err = config(&format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{PASSWORD}\"")).unwrap_err();
        assert!(err.to_string().starts_with("malformed registry credentials in Secret team/regcred"), "{err}");
        assert!(err.to_string().contains("not valid JSON (Eof error at line 1"), "{err}");
        assert!(!err.to_string().contains(PASSWORD));
        let err = config(r#"{"auths": {"ghcr.io": {"auth": "!!!not base64"}}}"#).unwrap_err();
        assert!(err.to_string().contains("auths.\"ghcr.io\".auth is not base64"), "{err}");
        let err = config(&format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#, b64("no-colon"))).unwrap_err();
        assert!(err.to_string().contains("auth is not base64 of `username:password`"), "{err}");
        assert!(config("[]").unwrap_err().to_string().contains("not a JSON object"));
        assert_eq!(config("[]").unwrap_err().metric_label(), "malformed_secret");
        let agent = DockerConfig::parse(SecretSource::AgentWide { name: "alustan/registry".into() }, b"{").unwrap_err();
        assert!(
            agent
                .to_string()
                .contains("the agent-wide registry secret alustan/registry (Helm value containerRegistrySecret)")
        );
    }

    #[test]
    fn helpers_are_ignored_and_identity_tokens_refused() {
        let config = config(r#"{"credsStore": "desktop", "credHelpers": {"ghcr.io": "gh"}}"#).unwrap();
        assert!(config.credentials_for("ghcr.io").unwrap().is_anonymous(), "no helper program is run");
        let config = self::config(r#"{"auths": {"ghcr.io": {"identitytoken": "tok"}}}"#).unwrap();
        assert_eq!(config.credentials_for("ghcr.io").unwrap_err().metric_label(), "unsupported_credential");
        assert!(self::config("{}").unwrap().credentials_for("ghcr.io").unwrap().is_anonymous());
    }

    #[test]
    fn resource_secret_overrides_agent_wide() {
        let agent = DockerConfig::parse(
            SecretSource::AgentWide { name: "a/b".into() },
            format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#, b64("agent:pw")).as_bytes(),
        )
        .unwrap();
        let own = config("{}").unwrap();
        assert_eq!(credentials_for(None, Some(&agent), "ghcr.io").unwrap().username(), Some("agent"));
        assert!(credentials_for(Some(&own), Some(&agent), "ghcr.io").unwrap().is_anonymous());
        assert!(credentials_for(None, None, "ghcr.io").unwrap().source().is_none());
    }

    #[test]
    fn identity_is_a_salted_hash() {
        let a = Credentials::basic("u", "p1", None);
        let b = Credentials::basic("u", "p2", None);
        assert_ne!(a.identity(b"salt"), b.identity(b"salt"));
        assert_eq!(a.identity(b"salt"), a.clone().identity(b"salt"));
        assert_ne!(a.identity(b"salt"), a.identity(b"pepper"));
        assert_ne!(
            Credentials::basic("ab", "c", None).identity(b""),
            Credentials::basic("a", "bc", None).identity(b"")
        );
    }
}

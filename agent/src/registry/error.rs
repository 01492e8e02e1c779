//! What can go wrong while scanning a registry, with enough context (registry, repository,
//! which Secret) that a status message alone tells an operator what to fix.
//!
//! Errors are `Clone` because one scan's outcome is shared by every resource waiting on it.
//! No variant ever holds a secret value: credentials appear only as the name of the Secret
//! they came from ([`SecretSource`]).

use std::time::Duration;

use super::credentials::SecretSource;

/// Why a scan failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("invalid imageName {image:?}: {reason}")]
    InvalidImageName { image: String, reason: String },

    #[error("invalid semanticVersion {constraint:?}: {message}")]
    InvalidConstraint { constraint: String, message: String },

    #[error("malformed registry credentials in {secret}: {reason}")]
    MalformedSecret { secret: SecretSource, reason: String },

    #[error(
        "{secret} holds an identity token for {registry}; alustan needs a username and password \
         (for a token, use it as the password with any username)"
    )]
    UnsupportedCredential { secret: SecretSource, registry: String },

    #[error("registry {registry} refused access to {repository} (HTTP {status}): {hint}")]
    Unauthorized {
        registry: String,
        repository: String,
        status: u16,
        /// What to check: which Secret, or that none is configured.
        hint: String,
    },

    #[error("repository {repository} does not exist on {registry} (NAME_UNKNOWN)")]
    UnknownRepository { registry: String, repository: String },

    #[error(
        "registry {registry} lists tag {tag} of {repository} but answers HTTP 404 for its manifest \
         (the image was deleted since, or the registry is inconsistent)"
    )]
    TagNotFound { registry: String, repository: String, tag: String },

    #[error("no tag of {image} satisfies {constraint:?} ({tag_count} tags seen; newest: {})", newest_list(newest))]
    NoMatchingTag {
        image: String,
        constraint: String,
        tag_count: usize,
        /// The newest tags seen (semantic versions first), at most five.
        newest: Vec<String>,
    },

    #[error(
        "registry {registry} is rate limiting requests for {repository} after {attempts} attempt(s){}",
        retry_after.map(|d| format!("; it asks to retry after {}s", d.as_secs())).unwrap_or_default()
    )]
    RateLimited { registry: String, repository: String, attempts: u32, retry_after: Option<Duration> },

    #[error("registry {registry} answered HTTP {status} for {repository} after {attempts} attempt(s): {body}")]
    RegistryStatus {
        registry: String,
        repository: String,
        status: u16,
        attempts: u32,
        /// The start of the response body.
        body: String,
    },

    #[error("cannot reach registry {registry} for {repository} after {attempts} attempt(s): {message}")]
    Transport { registry: String, repository: String, attempts: u32, message: String },

    #[error("registry {registry} sent an invalid response for {repository}: {message}")]
    Protocol { registry: String, repository: String, message: String },
}

fn newest_list(newest: &[String]) -> String {
    if newest.is_empty() { "none".to_owned() } else { newest.join(", ") }
}

impl ScanError {
    /// A short, stable label for metrics (`scan_errors_total{reason=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidImageName { .. } => "invalid_image_name",
            Self::InvalidConstraint { .. } => "invalid_constraint",
            Self::MalformedSecret { .. } => "malformed_secret",
            Self::UnsupportedCredential { .. } => "unsupported_credential",
            Self::Unauthorized { .. } => "unauthorized",
            Self::UnknownRepository { .. } => "unknown_repository",
            Self::TagNotFound { .. } => "tag_not_found",
            Self::NoMatchingTag { .. } => "no_matching_tag",
            Self::RateLimited { .. } => "rate_limited",
            Self::RegistryStatus { .. } => "registry_error",
            Self::Transport { .. } => "transport",
            Self::Protocol { .. } => "protocol",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything. (The agent
    /// retries every scan failure but an unparsable spec with backoff, these and the ones a
    /// Secret or registry fix heals alike: see `crate::reconcile::backoff`.)
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::RegistryStatus { .. } | Self::Transport { .. } | Self::TagNotFound { .. }
        )
    }
}

/// At most `max` characters of a response body, on one line: enough to show a registry's
/// error message without flooding a status field.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_match_lists_the_newest_tags() {
        let err = ScanError::NoMatchingTag {
            image: "docker.io/alustan/infra".into(),
            constraint: "~3.0".into(),
            tag_count: 12,
            newest: vec!["v2.1.0".into(), "2.0.9".into()],
        };
        assert_eq!(
            err.to_string(),
            "no tag of docker.io/alustan/infra satisfies \"~3.0\" (12 tags seen; newest: v2.1.0, 2.0.9)"
        );
        assert_eq!(err.metric_label(), "no_matching_tag");
        assert!(!err.is_transient());
    }

    #[test]
    fn excerpt_is_bounded_and_single_line() {
        assert_eq!(excerpt(b"line1\nline2", 100), "line1 line2");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
    }
}

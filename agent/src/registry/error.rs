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

    /// `policy`, `order` or `filterTags` cannot be used; `field` names the one to fix.
    #[error("invalid {field} {value:?}: {message}")]
    InvalidTagPolicy { field: &'static str, value: String, message: String },

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

    /// Tag pages that link back to a page already fetched, or that do not end.
    #[error("{}", pagination_message(registry, repository, *pages, next, *looped_to))]
    Pagination {
        registry: String,
        repository: String,
        /// Pages fetched before stopping.
        pages: u32,
        /// The next page the registry linked to (not fetched).
        next: String,
        /// The page `next` was already fetched as: a loop. `None`: the page limit was reached.
        looped_to: Option<u32>,
    },

    /// The scan spent its whole time budget talking to the registry (retries included).
    #[error("{}", deadline_message(registry, repository, *deadline, activity))]
    Deadline {
        registry: String,
        repository: String,
        /// The scan deadline (`ScanSettings::deadline`).
        deadline: Duration,
        /// What the scan was doing when the deadline passed.
        activity: Activity,
    },

    /// Scans of this registry host fail fast for a while after a transport failure or deadline
    /// (see `ScanSettings::host_backoff_initial`), instead of every resource waiting on a
    /// registry that does not answer.
    #[error(
        "registry {registry} failed {failures} time(s) in a row, so scans of it are paused until {next_try} \
         (last failure: {cause})"
    )]
    HostBackoff {
        registry: String,
        /// Transport failures or deadlines in a row.
        failures: u32,
        /// When a scan may talk to the registry again.
        next_try: jiff::Timestamp,
        cause: Box<ScanError>,
    },
}

/// What a scan was doing when its deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// Fetching tag page `page` (1-based) at `url`.
    Listing { page: u32, url: String },
    /// Resolving the manifest digest of `tag`.
    Digest { tag: String },
}

fn pagination_message(registry: &str, repository: &str, pages: u32, next: &str, looped_to: Option<u32>) -> String {
    match looped_to {
        Some(first) => format!(
            "registry {registry} sent tag pages for {repository} that loop: page {pages} links to {next}, \
             already fetched as page {first}; listing stopped"
        ),
        None => format!(
            "registry {registry} sent tag pages for {repository} that do not end: stopped after {pages} pages \
             (the limit); the next would be {next}"
        ),
    }
}

fn deadline_message(registry: &str, repository: &str, deadline: Duration, activity: &Activity) -> String {
    let within = human(deadline);
    match activity {
        Activity::Listing { page, url } => format!(
            "registry {registry} did not finish listing {repository} within {within} (the scan deadline; \
             waiting for tag page {page}: {url})"
        ),
        Activity::Digest { tag } => format!(
            "registry {registry} did not finish resolving the digest of {repository}:{tag} within {within} \
             (the scan deadline)"
        ),
    }
}

pub(crate) use alustan_shared::duration::human;

fn newest_list(newest: &[String]) -> String {
    if newest.is_empty() { "none".to_owned() } else { newest.join(", ") }
}

impl ScanError {
    /// A short, stable label for metrics (`scan_errors_total{reason=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidImageName { .. } => "invalid_image_name",
            Self::InvalidConstraint { .. } => "invalid_constraint",
            Self::InvalidTagPolicy { .. } => "invalid_tag_policy",
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
            Self::Pagination { .. } => "pagination",
            Self::Deadline { .. } => "deadline",
            Self::HostBackoff { .. } => "host_backoff",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything. (The agent
    /// retries every scan failure but an unparsable spec with backoff, these and the ones a
    /// Secret or registry fix heals alike: see `crate::reconcile::backoff`.)
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::RegistryStatus { .. }
                | Self::Transport { .. }
                | Self::TagNotFound { .. }
                | Self::Deadline { .. }
                | Self::HostBackoff { .. }
        )
    }

    /// Failures that say the registry host is not answering (unreachable, timing out, or too
    /// slow to finish within the scan deadline): what starts or extends a host's backoff.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::Deadline { .. })
    }

    /// When trying again can first help: the end of a registry host's backoff.
    pub fn retry_at(&self) -> Option<jiff::Timestamp> {
        match self {
            Self::HostBackoff { next_try, .. } => Some(*next_try),
            _ => None,
        }
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

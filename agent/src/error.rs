//! Why a reconcile failed, and why the agent could not start. Every reconcile error has one
//! category that gives its metric label, its status reason and whether only a change can fix
//! it: status, the Warning Event and the metric are all derived here (see
//! [`crate::reconcile::report`]), never chosen branch by branch.

use alustan_shared::conditions::reason;

use crate::registry::ScanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", api_message(.0))]
    Kube(#[from] kube::Error),

    /// The API server refused to create an object of a run: a terminating namespace, an invalid
    /// name, a quota, RBAC.
    #[error("cannot create {object}: {message}")]
    Rejected { object: String, message: String },

    #[error("{0}")]
    Scan(#[from] ScanError),

    /// The spec cannot be acted on; `field` says what to fix.
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },

    /// `spec.variablesFrom` cannot be read (names only, never values).
    #[error("{0}")]
    VariablesFrom(String),

    #[error("finalizer: {0}")]
    Finalizer(String),

    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),

    /// Deletion goes on: a run to wait for, or a destroy retry due after `retry_in` (`None`:
    /// only a change, watched, releases it). Not a failure; the finalizer helper needs an
    /// error to keep the finalizer.
    #[error("deletion in progress")]
    DeletionPending { retry_in: Option<std::time::Duration> },

    #[error("{0}")]
    Seal(#[from] crate::runs::seal::SealError),

    #[error("the resource has no {0}")]
    MissingField(&'static str),

    /// An approved plan cannot be applied as approved (its plan file is gone or changed).
    #[error("{0}")]
    PlanFile(String),

    /// The pad slots were closed: only when the agent stops.
    #[error("the agent is shutting down")]
    ShuttingDown,
}

impl Error {
    pub fn invalid_spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSpec { field: field.into(), message: message.into() }
    }

    /// A failed create (or apply) of `object`: a 4xx answer other than a conflict or throttling
    /// is the API server's final word (reported as [`Error::Rejected`]); anything else is
    /// retried as an API error.
    pub fn creating(object: String, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if (400..500).contains(&status.code) && !matches!(status.code, 409 | 429) => {
                Self::Rejected { object, message: status.message }
            }
            other => Self::Kube(other),
        }
    }

    /// A short, stable label for metrics (`reconcile_errors_total{reason=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Rejected { .. } => "rejected",
            Self::Scan(err) => err.metric_label(),
            Self::InvalidSpec { .. } => "invalid_spec",
            Self::VariablesFrom(_) => "variables_from",
            Self::Finalizer(_) => "finalizer",
            Self::Serialize(_) => "serialize",
            Self::MissingField(_) => "missing_field",
            Self::Seal(_) => "seal",
            Self::PlanFile(_) => "plan_file",
            Self::DeletionPending { .. } => "deletion_pending",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// The status and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => reason::REJECTED,
            Self::Scan(_) => reason::REGISTRY_ERROR,
            Self::InvalidSpec { .. } | Self::MissingField(_) => reason::INVALID_SPEC,
            Self::Seal(_) => reason::SEAL_CONFLICT,
            Self::VariablesFrom(_) => reason::VARIABLES_FROM_ERROR,
            Self::PlanFile(_) => reason::PLAN_ERROR,
            Self::Kube(_)
            | Self::Finalizer(_)
            | Self::Serialize(_)
            | Self::DeletionPending { .. }
            | Self::ShuttingDown => reason::RECONCILE_ERROR,
        }
    }

    /// Only a change of the resource can fix it (retrying the same input fails the same way):
    /// reported `Stalled`, not retried on a timer.
    pub fn needs_change(&self) -> bool {
        matches!(self, Self::InvalidSpec { .. } | Self::MissingField(_) | Self::PlanFile(_))
    }

    /// Whether the user should hear of it (status and a Warning Event): everything but the
    /// agent's own bookkeeping.
    pub fn reported(&self) -> bool {
        !matches!(self, Self::DeletionPending { .. } | Self::ShuttingDown)
    }

    /// The API refused an object because its namespace is being deleted.
    pub fn namespace_terminating(&self) -> bool {
        matches!(self, Self::Rejected { message, .. } if message.contains("is being terminated"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the API server said, without kube's debug dump of the whole Status.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({}, {})", status.message, status.reason, status.code),
        other => other.to_string(),
    }
}

/// Why the agent could not start (exit code 1, before any reconcile).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A flag or file of the agent's own configuration.
    #[error("{0}")]
    Config(String),

    #[error("{0}")]
    Scan(#[from] ScanError),

    #[error("{0}")]
    CredentialSources(#[from] crate::runs::gather::SourcesError),

    #[error("{0}")]
    Leader(#[from] crate::leader::LeaderError),
}

impl StartupError {
    /// A short, stable label for the exit log line.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Config(_) | Self::Scan(_) | Self::CredentialSources(_) => "config",
            Self::Leader(_) => "leader",
        }
    }
}

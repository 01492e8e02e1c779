//! Why a reconcile failed; every variant has a stable metric label.

use crate::registry::ScanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("{0}")]
    Scan(#[from] ScanError),

    #[error("{0}")]
    InvalidSpec(String),

    #[error("finalizer: {0}")]
    Finalizer(String),

    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),

    #[error("waiting for the destroy Job")]
    DestroyPending,

    /// `retry_in`: when the next destroy attempt is due; `None` when attempts are used up.
    #[error("{message}")]
    DestroyFailed { message: String, retry_in: Option<std::time::Duration> },

    #[error("{0}")]
    Seal(#[from] crate::runs::seal::SealError),

    #[error("the resource has no {0}")]
    MissingField(&'static str),

    #[error("{0}")]
    CredentialSources(#[from] crate::runs::gather::SourcesError),

    #[error("{0}")]
    Leader(#[from] crate::leader::LeaderError),

    /// The pad slots were closed: only when the agent stops.
    #[error("the agent is shutting down")]
    ShuttingDown,
}

impl Error {
    /// A short, stable label for metrics (`reconcile_errors_total{reason=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Scan(err) => err.metric_label(),
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Finalizer(_) => "finalizer",
            Self::Serialize(_) => "serialize",
            Self::MissingField(_) => "missing_field",
            Self::Seal(_) => "seal",
            Self::DestroyPending => "destroy_pending",
            Self::DestroyFailed { .. } => "destroy_failed",
            Self::CredentialSources(_) => "config",
            Self::Leader(_) => "leader",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

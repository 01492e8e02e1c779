//! A log of every request the server answered, for tests and benches that count API calls.

use std::sync::{Arc, Mutex, PoisonError};

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or the lowercase HTTP method for non-resource paths.
    pub verb: String,
    /// API group ("" for core), resource, subresource, namespace and name; empty when n/a.
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub user_agent: String,
    /// The authenticated user name (`system:anonymous` when none).
    pub user: String,
    pub status: u16,
}

/// The shared, append-only request log.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    pub(crate) fn push(&self, r: RequestRecord) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).push(r);
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many records match.
    pub fn count(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).iter().filter(|r| pred(r)).count()
    }

    /// How many requests had this verb on this resource (any namespace, name, subresource).
    pub fn count_verb(&self, verb: &str, resource: &str) -> usize {
        self.count(|r| r.verb == verb && r.resource == resource)
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

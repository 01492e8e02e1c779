//! Fault injection for reliability tests: fail or delay requests matching a rule.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::requestlog::RequestRecord;

/// Which requests a fault applies to; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// HTTP method (`PATCH`) or Kubernetes verb (`patch`, `list`, `watch`).
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl Match {
    /// Matches any request with this verb (or HTTP method) on this resource.
    pub fn verb_resource(verb: &str, resource: &str) -> Self {
        Self { verb: Some(verb.to_owned()), resource: Some(resource.to_owned()), ..Self::default() }
    }

    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    #[must_use]
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_owned());
        self
    }

    pub(crate) fn matches(&self, r: &RequestRecord) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_ref().is_none_or(|w| w == got);
        self.verb.as_ref().is_none_or(|v| v.eq_ignore_ascii_case(&r.method) || *v == r.verb)
            && eq(&self.resource, &r.resource)
            && eq(&self.subresource, &r.subresource)
            && eq(&self.name, &r.name)
            && eq(&self.namespace, &r.namespace)
    }
}

#[derive(Debug, Clone)]
enum Action {
    Fail { status: u16, retry_after: Option<u64>, remaining: usize },
    Delay { by: Duration },
}

#[derive(Debug, Clone)]
struct Rule {
    when: Match,
    action: Action,
}

/// What to do with one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict {
    pub fail: Option<(u16, Option<u64>)>,
    pub delay: Duration,
}

/// The server's fault rules (shared by all clones).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl Faults {
    /// Fails the next `count` matching requests with `status` (e.g. 409, 500, 503).
    pub fn fail_next(&self, count: usize, when: Match, status: u16) {
        self.push(Rule { when, action: Action::Fail { status, retry_after: None, remaining: count } });
    }

    /// Fails the next `count` matching requests with 429 and `Retry-After: secs`.
    pub fn throttle_next(&self, count: usize, when: Match, retry_after_secs: u64) {
        self.push(Rule {
            when,
            action: Action::Fail { status: 429, retry_after: Some(retry_after_secs), remaining: count },
        });
    }

    /// Delays every matching response by `by` until [`Faults::clear`].
    pub fn delay(&self, when: Match, by: Duration) {
        self.push(Rule { when, action: Action::Delay { by } });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn push(&self, r: Rule) {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner).push(r);
    }

    /// Consumes the first matching failure rule and sums matching delays.
    pub(crate) fn check(&self, r: &RequestRecord) -> Verdict {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v = Verdict::default();
        for rule in rules.iter_mut().filter(|x| x.when.matches(r)) {
            match &mut rule.action {
                Action::Delay { by } => v.delay += *by,
                Action::Fail { status, retry_after, remaining } if v.fail.is_none() && *remaining > 0 => {
                    *remaining -= 1;
                    v.fail = Some((*status, *retry_after));
                }
                Action::Fail { .. } => {}
            }
        }
        rules.retain(|x| !matches!(x.action, Action::Fail { remaining: 0, .. }));
        v
    }
}

//! How each of the agent's Jobs stands, as the Jobs' watch last said: all a pass reads of a
//! run's Job ([`crate::runs::observe::outcome`]), kept per Job instead of the Job itself. A
//! finished Job stays until its TTL deletes it (a day by default), so with thousands of
//! resources the cache holds two Jobs each: an outcome is a tenth of even a stripped Job.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt as _;
use kube::runtime::watcher;

use super::observe::{Outcome, outcome};

/// Outcomes by `(namespace, name)`. A re-list's are applied at once (the reconcile each one
/// wakes must read it, not the view from before the watch broke) and the Jobs it did not list
/// are dropped when it ends (deleted meanwhile).
#[derive(Debug, Default)]
pub struct JobOutcomes {
    known: Mutex<HashMap<(String, String), Outcome>>,
    relisted: Mutex<Option<HashSet<(String, String)>>>,
}

impl JobOutcomes {
    /// Forgets everything (a new controller, e.g. after winning an election again, lists anew).
    pub fn clear(&self) {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).clear();
        *self.relisted.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Job `name` of `namespace` as last seen (`None`: not seen yet, or gone).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Outcome> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Folds one event of the Jobs' watch in.
    pub fn apply(&self, event: &watcher::Event<Job>) {
        let key = |job: &Job| (job.namespace().unwrap_or_default(), job.name_any());
        match event {
            watcher::Event::Apply(job) => {
                self.known.lock().unwrap_or_else(PoisonError::into_inner).insert(key(job), outcome(job));
            }
            watcher::Event::Delete(job) => {
                self.known.lock().unwrap_or_else(PoisonError::into_inner).remove(&key(job));
            }
            watcher::Event::Init => {
                *self.relisted.lock().unwrap_or_else(PoisonError::into_inner) = Some(HashSet::new());
            }
            watcher::Event::InitApply(job) => {
                self.known.lock().unwrap_or_else(PoisonError::into_inner).insert(key(job), outcome(job));
                self.relisted.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_default().insert(key(job));
            }
            watcher::Event::InitDone => {
                let listed = self.relisted.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default();
                self.known.lock().unwrap_or_else(PoisonError::into_inner).retain(|key, _| listed.contains(key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, complete: bool) -> Job {
        let conditions = if complete {
            serde_json::json!([{"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-03T10:00:00Z"}])
        } else {
            serde_json::json!([])
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_follow_the_watch_and_a_relist_updates_at_once_and_drops_jobs_deleted_meanwhile() {
        let outcomes = JobOutcomes::default();
        outcomes.apply(&watcher::Event::Apply(job("a", false)));
        outcomes.apply(&watcher::Event::Apply(job("b", false)));
        assert_eq!(outcomes.get("ns", "a"), Some(Outcome::Running));
        outcomes.apply(&watcher::Event::Apply(job("a", true)));
        assert!(matches!(outcomes.get("ns", "a"), Some(Outcome::Succeeded { at: Some(_) })));
        assert_eq!(outcomes.get("other", "a"), None);
        outcomes.apply(&watcher::Event::Delete(job("a", true)));
        assert_eq!(outcomes.get("ns", "a"), None);
        // A re-list: each listed Job's outcome at once (its reconcile reads it); the Jobs it
        // did not list drop out when it ends.
        outcomes.apply(&watcher::Event::Apply(job("d", false)));
        outcomes.apply(&watcher::Event::Init);
        outcomes.apply(&watcher::Event::InitApply(job("c", true)));
        outcomes.apply(&watcher::Event::InitApply(job("d", true)));
        assert!(matches!(outcomes.get("ns", "d"), Some(Outcome::Succeeded { .. })), "finished while disconnected");
        assert_eq!(outcomes.get("ns", "b"), Some(Outcome::Running));
        outcomes.apply(&watcher::Event::InitDone);
        assert_eq!(outcomes.get("ns", "b"), None);
        assert!(matches!(outcomes.get("ns", "c"), Some(Outcome::Succeeded { .. })));
        outcomes.clear();
        assert_eq!(outcomes.get("ns", "c"), None);
    }
}

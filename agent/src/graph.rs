//! Which `Terraform` needs which: `spec.dependsOn` and the `Terraform`s `spec.variablesFrom`
//! reads outputs of, indexed from the controller's own watch of every resource (no second
//! watch, no polling).
//!
//! The index answers three questions: whom to wake when a resource changes (its dependants, and
//! on deletion its dependencies, which may be waiting for it to go), who still needs a resource
//! being deleted (deletion order), and whether `dependsOn` closes a cycle.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use alustan_shared::Terraform;
use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;

/// A resource by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }

    pub fn of(tf: &Terraform) -> Self {
        Self::new(&tf.namespace().unwrap_or_default(), &tf.name_any())
    }

    fn object_ref(&self) -> ObjectRef<Terraform> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The `dependsOn` entries of `tf`, their namespace defaulted to its own.
pub fn depends_on(tf: &Terraform) -> Vec<Key> {
    tf.needs().into_iter().filter(|n| !n.outputs).map(|n| Key { namespace: n.namespace, name: n.name }).collect()
}

/// Everything `tf` needs: `dependsOn`, and the `Terraform`s whose outputs it reads.
fn needs(tf: &Terraform) -> Vec<Key> {
    tf.needs().into_iter().map(|n| Key { namespace: n.namespace, name: n.name }).collect()
}

#[derive(Debug, Default)]
struct Edges {
    /// `dependsOn` of each resource.
    depends: HashMap<Key, BTreeSet<Key>>,
    /// `dependsOn` and consumed outputs of each resource: what it needs.
    needs: HashMap<Key, BTreeSet<Key>>,
    /// The reverse of `needs`: who needs each resource.
    needed_by: HashMap<Key, BTreeSet<Key>>,
}

/// The dependency index, shared by the watch that feeds it and every reconcile.
#[derive(Debug, Default)]
pub struct Graph(Mutex<Edges>);

impl Graph {
    fn edges(&self) -> std::sync::MutexGuard<'_, Edges> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `tf` as the watch saw it (`gone`: deleted from the cluster) and returns the
    /// resources to wake: those needing it, and what it needed when it is going away or no
    /// longer needs them (their deletion may be waiting for it).
    pub fn observe(&self, tf: &Terraform, gone: bool) -> Vec<ObjectRef<Terraform>> {
        let key = Key::of(tf);
        let mut edges = self.edges();
        let before = edges.needs.remove(&key).unwrap_or_default();
        for old in &before {
            if let Some(set) = edges.needed_by.get_mut(old) {
                set.remove(&key);
                if set.is_empty() {
                    edges.needed_by.remove(old);
                }
            }
        }
        edges.depends.remove(&key);
        if !gone {
            let depends: BTreeSet<Key> = depends_on(tf).into_iter().collect();
            let needs: BTreeSet<Key> = needs(tf).into_iter().collect();
            for needed in &needs {
                edges.needed_by.entry(needed.clone()).or_default().insert(key.clone());
            }
            if !depends.is_empty() {
                edges.depends.insert(key.clone(), depends);
            }
            if !needs.is_empty() {
                edges.needs.insert(key.clone(), needs);
            }
        }
        let mut wake: BTreeSet<Key> = edges.needed_by.get(&key).cloned().unwrap_or_default();
        let now = edges.needs.get(&key).cloned().unwrap_or_default();
        if gone || tf.metadata.deletion_timestamp.is_some() {
            wake.extend(before);
        } else {
            // A dropped edge may release a deletion waiting for this resource.
            wake.extend(before.difference(&now).cloned());
        }
        wake.iter().map(Key::object_ref).collect()
    }

    /// Starts over from every resource (a re-list: deletions missed meanwhile drop out).
    pub fn rebuild(&self, all: &[std::sync::Arc<Terraform>]) {
        *self.edges() = Edges::default();
        for tf in all {
            self.observe(tf, false);
        }
    }

    /// Who needs `key` (depends on it or reads its outputs), in order.
    pub fn needed_by(&self, key: &Key) -> Vec<Key> {
        self.edges().needed_by.get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// A `dependsOn` cycle through `key`, as the path `key → … → key`, if there is one.
    pub fn cycle_through(&self, key: &Key) -> Option<Vec<Key>> {
        let edges = self.edges();
        let mut path = vec![key.clone()];
        let mut visited = BTreeSet::new();
        find_cycle(&edges.depends, key, &mut path, &mut visited).then_some(path)
    }
}

/// Depth-first from the last key of `path`; true (with `path` ending at `target`) on a cycle.
fn find_cycle(
    depends: &HashMap<Key, BTreeSet<Key>>,
    target: &Key,
    path: &mut Vec<Key>,
    visited: &mut BTreeSet<Key>,
) -> bool {
    let Some(current) = path.last().cloned() else { return false };
    for next in depends.get(&current).into_iter().flatten() {
        path.push(next.clone());
        if next == target {
            return true;
        }
        if visited.insert(next.clone()) && find_cycle(depends, target, path, visited) {
            return true;
        }
        path.pop();
    }
    false
}

/// `a → b → a`, for messages.
pub fn show_path(path: &[Key]) -> String {
    path.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(namespace: &str, name: &str, depends: &[&str], consumes: &[&str]) -> Terraform {
        let depends: Vec<serde_json::Value> = depends
            .iter()
            .map(|d| match d.split_once('/') {
                Some((ns, n)) => serde_json::json!({"name": n, "namespace": ns}),
                None => serde_json::json!({"name": d}),
            })
            .collect();
        let consumes: Vec<serde_json::Value> = consumes
            .iter()
            .map(|c| serde_json::json!({"kind": "Terraform", "name": c, "variables": {"TF_VAR_x": "x"}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"},
                     "dependsOn": depends, "variablesFrom": consumes}
        }))
        .unwrap()
    }

    fn names(refs: &[ObjectRef<Terraform>]) -> Vec<String> {
        refs.iter().map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name)).collect()
    }

    #[test]
    fn changes_wake_dependants_and_deletions_wake_dependencies() {
        let graph = Graph::default();
        assert!(graph.observe(&tf("a", "network", &[], &[]), false).is_empty());
        assert!(graph.observe(&tf("a", "cluster", &["network"], &[]), false).is_empty());
        graph.observe(&tf("a", "db", &["b/iam"], &["cluster"]), false);
        assert_eq!(names(&graph.observe(&tf("a", "network", &[], &[]), false)), ["a/cluster"]);
        assert_eq!(names(&graph.observe(&tf("a", "cluster", &["network"], &[]), false)), ["a/db"]);
        assert_eq!(names(&graph.observe(&tf("b", "iam", &[], &[]), false)), ["a/db"], "cross-namespace reference");
        assert_eq!(graph.needed_by(&Key::new("a", "cluster")), [Key::new("a", "db")]);
        // The cluster is deleted: once gone, the network it needed is woken and needed by none.
        let mut deleting = tf("a", "cluster", &["network"], &[]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(names(&graph.observe(&deleting, false)), ["a/db", "a/network"]);
        assert_eq!(names(&graph.observe(&deleting, true)), ["a/db", "a/network"]);
        assert!(graph.needed_by(&Key::new("a", "network")).is_empty());
        // A spec edit dropping a dependency drops its edge, and wakes it (its deletion may wait).
        assert_eq!(names(&graph.observe(&tf("a", "db", &[], &[]), false)), ["a/cluster", "b/iam"]);
        assert!(graph.needed_by(&Key::new("b", "iam")).is_empty());
        // A re-list starts over from what exists.
        graph.rebuild(&[std::sync::Arc::new(tf("a", "app", &["network"], &[]))]);
        assert_eq!(graph.needed_by(&Key::new("a", "network")), [Key::new("a", "app")]);
        assert!(graph.needed_by(&Key::new("a", "cluster")).is_empty());
    }

    #[test]
    fn cycles_are_found_with_their_path() {
        let graph = Graph::default();
        graph.observe(&tf("a", "x", &["y"], &[]), false);
        graph.observe(&tf("a", "y", &["z"], &[]), false);
        assert_eq!(graph.cycle_through(&Key::new("a", "x")), None);
        graph.observe(&tf("a", "z", &["x", "w"], &[]), false);
        let cycle = graph.cycle_through(&Key::new("a", "x")).unwrap();
        assert_eq!(show_path(&cycle), "a/x → a/y → a/z → a/x");
        graph.observe(&tf("a", "self", &["self"], &[]), false);
        assert_eq!(show_path(&graph.cycle_through(&Key::new("a", "self")).unwrap()), "a/self → a/self");
        // Consuming outputs is no dependsOn edge: no cycle through it.
        graph.observe(&tf("a", "p", &[], &["q"]), false);
        graph.observe(&tf("a", "q", &["p"], &[]), false);
        assert_eq!(graph.cycle_through(&Key::new("a", "q")), None);
    }
}

//! Object storage: one global resourceVersion counter (like etcd's revision), objects kept as
//! JSON per resource type, and a bounded history of changes that serves watches and consistent
//! continue tokens.
//!
//! Per the API concepts docs ("Resource versions", "Efficient detection of changes"), a
//! resourceVersion is opaque to clients; here it is the decimal global revision, and a watch from
//! a revision older than the retained history fails with 410 Gone.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use serde_json::Value;
use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::util::meta_mut;

/// An object's key within its resource type: (namespace or "", name).
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// How many of the latest changes keep their serialized watch lines.
const RENDERED_KEPT: usize = 256;

/// One committed change.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub store: String,
    pub key: ObjKey,
    pub kind: EventType,
    /// The object after the change (for deletes: the last state, with the deletion's RV).
    pub obj: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
    /// Its watch event lines already serialized, by (version, event type): every watch of
    /// the same version sends the same bytes, serialized once.
    pub lines: Mutex<Vec<(String, &'static str, Bytes)>>,
}

impl Change {
    /// The event line of this change for `version` and `kind`, made by `render` the first time.
    pub fn rendered(&self, version: &str, kind: &'static str, render: impl FnOnce() -> Bytes) -> Bytes {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, line)) = lines.iter().find(|(v, k, _)| v == version && *k == kind) {
            return line.clone();
        }
        let line = render();
        lines.push((version.to_owned(), kind, line.clone()));
        line
    }
}

struct Watcher {
    store: String,
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<Arc<Change>>,
}

/// What a watch needs to start: replayed history and the live feed.
pub struct WatchStart {
    pub replay: Vec<Arc<Change>>,
    pub rx: mpsc::UnboundedReceiver<Arc<Change>>,
    pub current: Vec<Arc<Value>>,
    pub rv: u64,
}

pub struct Store {
    pub catalog: Catalog,
    rv: u64,
    objects: HashMap<String, BTreeMap<ObjKey, Arc<Value>>>,
    /// uid → (store, key) of every live object, for garbage collection.
    uids: HashMap<String, (String, ObjKey)>,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// Changes up to and including this revision are no longer in `history`.
    compacted: u64,
    watchers: Vec<Watcher>,
    /// store → (label key, value) → keys of the live objects carrying that label: a LIST
    /// selecting `key=value` reads only those instead of scanning every object of the type.
    labeled: HashMap<String, HashMap<(String, String), BTreeSet<ObjKey>>>,
}

/// The requested revision is older than the retained history.
#[derive(Debug, Clone, Copy)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

impl Store {
    pub fn new(catalog: Catalog, history_cap: usize) -> Self {
        Self {
            catalog,
            rv: 1,
            objects: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted: 1,
            watchers: Vec::new(),
            labeled: HashMap::new(),
        }
    }

    /// The current global revision.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, store: &str, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(store).and_then(|m| m.get(key)).cloned()
    }

    /// Objects of a type, sorted by (namespace, name), optionally within one namespace.
    pub fn list(&self, store: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(m) = self.objects.get(store) else { return Vec::new() };
        match namespace {
            Some(ns) => m
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| Arc::clone(v))
                .collect(),
            None => m.values().cloned().collect(),
        }
    }

    /// Objects of a type carrying label `key=value`, sorted by (namespace, name), optionally
    /// within one namespace: [`Store::list`] narrowed by an equality label requirement.
    pub fn list_labeled(&self, store: &str, namespace: Option<&str>, key: &str, value: &str) -> Vec<Arc<Value>> {
        let (Some(index), Some(objects)) = (self.labeled.get(store), self.objects.get(store)) else {
            return Vec::new();
        };
        let Some(keys) = index.get(&(key.to_owned(), value.to_owned())) else { return Vec::new() };
        keys.iter()
            .filter(|(ns, _)| namespace.is_none_or(|want| ns == want))
            .filter_map(|k| objects.get(k).cloned())
            .collect()
    }

    /// Moves `key`'s entries in the label index from `before`'s labels to `after`'s.
    fn index_labels(&mut self, store: &str, key: &ObjKey, before: Option<&Value>, after: Option<&Value>) {
        let pairs = |obj: Option<&Value>| -> BTreeSet<(String, String)> {
            let labels = obj.and_then(super::util::labels).into_iter().flatten();
            labels.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
        };
        let (old, new) = (pairs(before), pairs(after));
        if old == new {
            return;
        }
        let index = self.labeled.entry(store.to_owned()).or_default();
        for pair in old.difference(&new) {
            if let Some(keys) = index.get_mut(pair) {
                keys.remove(key);
                if keys.is_empty() {
                    index.remove(pair);
                }
            }
        }
        for pair in new.difference(&old) {
            index.entry(pair.clone()).or_default().insert(key.clone());
        }
    }

    /// (key, object) pairs of a type, for scans that need keys.
    pub fn entries(&self, store: &str) -> Vec<(ObjKey, Arc<Value>)> {
        self.objects.get(store).map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()).unwrap_or_default()
    }

    /// Every store key holding objects.
    pub fn stores(&self) -> Vec<String> {
        self.objects.keys().cloned().collect()
    }

    /// The live object with this uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<Arc<Value>> {
        let (store, key) = self.uids.get(uid)?;
        self.get(store, key)
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// Commits a create/update (`Some`) or delete (`None`), bumping the revision, recording
    /// history and feeding watchers. Returns the stored (or last) object.
    pub fn write(&mut self, store: &str, key: &ObjKey, new: Option<Value>) -> Option<Arc<Value>> {
        self.commit(store, key, new, None)
    }

    /// Deletes an object whose last state (what the DELETED event carries) is `last`.
    pub fn remove_with(&mut self, store: &str, key: &ObjKey, last: Value) -> Option<Arc<Value>> {
        self.commit(store, key, None, Some(last))
    }

    fn commit(&mut self, store: &str, key: &ObjKey, new: Option<Value>, last: Option<Value>) -> Option<Arc<Value>> {
        let prev = self.get(store, key);
        if new.is_none() && prev.is_none() {
            return None;
        }
        self.rv += 1;
        let rv_str = Value::String(self.rv.to_string());
        let (kind, obj) = if let Some(mut obj) = new {
            meta_mut(&mut obj).insert("resourceVersion".into(), rv_str);
            let obj = Arc::new(obj);
            let map = self.objects.entry(store.to_owned()).or_default();
            map.insert(key.clone(), Arc::clone(&obj));
            let uid = super::util::meta_str(&obj, "uid");
            if !uid.is_empty() {
                self.uids.insert(uid.to_owned(), (store.to_owned(), key.clone()));
            }
            (if prev.is_some() { EventType::Modified } else { EventType::Added }, obj)
        } else {
            let mut last = last.or_else(|| prev.as_deref().cloned()).unwrap_or(Value::Null);
            meta_mut(&mut last).insert("resourceVersion".into(), rv_str);
            if let Some(m) = self.objects.get_mut(store) {
                m.remove(key);
            }
            let uid = super::util::meta_str(&last, "uid");
            self.uids.remove(uid);
            (EventType::Deleted, Arc::new(last))
        };
        let after = (kind != EventType::Deleted).then_some(&*obj);
        self.index_labels(store, key, prev.as_deref(), after);
        let change = Arc::new(Change {
            rv: self.rv,
            store: store.to_owned(),
            key: key.clone(),
            kind,
            obj: Arc::clone(&obj),
            prev,
            lines: Mutex::new(Vec::new()),
        });
        self.history.push_back(Arc::clone(&change));
        // Live watches serialize a change soon after it is committed: an older one's lines are
        // dropped (a late or replaying watch serializes it again) so the history stays small.
        if let Some(old) = self.history.len().checked_sub(RENDERED_KEPT + 1).and_then(|at| self.history.get(at)) {
            old.lines.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        self.watchers.retain(|w| {
            if w.store != change.store || w.namespace.as_ref().is_some_and(|ns| *ns != change.key.0) {
                return !w.tx.is_closed();
            }
            w.tx.send(Arc::clone(&change)).is_ok()
        });
        Some(obj)
    }

    /// Starts a watch: with `since`, replays the history after it (or fails with [`TooOld`]);
    /// without, hands back the current objects for synthetic ADDED events.
    pub fn watch(&mut self, store: &str, namespace: Option<&str>, since: Option<u64>) -> Result<WatchStart, TooOld> {
        let replay = match since {
            Some(rv) if rv < self.compacted => return Err(TooOld { requested: rv, oldest: self.compacted }),
            Some(rv) => self
                .history
                .iter()
                .filter(|c| c.rv > rv && c.store == store && namespace.is_none_or(|ns| ns == c.key.0))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let current = if since.is_none() { self.list(store, namespace) } else { Vec::new() };
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(Watcher { store: store.to_owned(), namespace: namespace.map(str::to_owned), tx });
        Ok(WatchStart { replay, rx, current, rv: self.rv })
    }

    /// The objects of a type as they were at revision `at`, rebuilt by undoing later history.
    pub fn list_at(&self, store: &str, namespace: Option<&str>, at: u64) -> Result<Vec<Arc<Value>>, TooOld> {
        if at >= self.rv {
            return Ok(self.list(store, namespace));
        }
        if at < self.compacted {
            return Err(TooOld { requested: at, oldest: self.compacted });
        }
        let mut map: BTreeMap<ObjKey, Arc<Value>> = self
            .objects
            .get(store)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
            .unwrap_or_default();
        for c in self.history.iter().rev().take_while(|c| c.rv > at) {
            if c.store != store {
                continue;
            }
            match &c.prev {
                Some(p) if c.kind != EventType::Added => {
                    map.insert(c.key.clone(), Arc::clone(p));
                }
                _ => {
                    map.remove(&c.key);
                }
            }
        }
        Ok(map.into_iter().filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns)).map(|(_, v)| v).collect())
    }

    /// Ends every open watch (their feeds close).
    pub fn close_watches(&mut self) {
        self.watchers.clear();
    }

    /// Number of open watches.
    pub fn watch_count(&mut self) -> usize {
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers.len()
    }

    /// Changes the history bound (trimming at once when smaller).
    pub fn set_history_cap(&mut self, cap: usize) {
        self.history_cap = cap.max(1);
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// Drops all history (as etcd compaction does): older revisions then get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(ns: &str, name: &str, labels: &Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels}})
    }

    /// What a scan of every object would select: the index must give exactly that, in order.
    fn scanned(st: &Store, ns: Option<&str>, key: &str, value: &str) -> Vec<Arc<Value>> {
        let carries = |o: &Arc<Value>| super::super::util::labels(o).and_then(|l| l.get(key)?.as_str()) == Some(value);
        st.list("pods", ns).into_iter().filter(carries).collect()
    }

    #[test]
    fn the_label_index_follows_creates_relabels_and_deletes() {
        let mut st = Store::new(Catalog::builtin(), 100);
        let key = |ns: &str, name: &str| (ns.to_owned(), name.to_owned());
        st.write("pods", &key("a", "p1"), Some(pod("a", "p1", &json!({"job-name": "j1", "x": "1"}))));
        st.write("pods", &key("b", "p2"), Some(pod("b", "p2", &json!({"job-name": "j1"}))));
        st.write("pods", &key("a", "p3"), Some(pod("a", "p3", &json!({"job-name": "j2"}))));
        // Relabelled: leaves j2, joins j1; then p1 is deleted.
        st.write("pods", &key("a", "p3"), Some(pod("a", "p3", &json!({"job-name": "j1"}))));
        st.write("pods", &key("a", "p1"), None);
        for (ns, name, value) in [
            (None, "job-name", "j1"),
            (Some("a"), "job-name", "j1"),
            (Some("b"), "job-name", "j1"),
            (None, "job-name", "j2"),
            (None, "x", "1"),
        ] {
            assert_eq!(
                st.list_labeled("pods", ns, name, value),
                scanned(&st, ns, name, value),
                "{ns:?} {name}={value}"
            );
        }
        assert_eq!(st.list_labeled("pods", None, "job-name", "j1").len(), 2);
        assert!(st.list_labeled("pods", None, "job-name", "j2").is_empty());
    }
}

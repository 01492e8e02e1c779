//! Object storage: one global resourceVersion counter (like etcd's revision), objects kept as
//! JSON per resource type, and a bounded history of changes that serves watches and consistent
//! continue tokens.
//!
//! Per the API concepts docs ("Resource versions", "Efficient detection of changes"), a
//! resourceVersion is opaque to clients; here it is the decimal global revision, and a watch from
//! a revision older than the retained history fails with 410 Gone.

use std::collections::{BTreeMap, HashMap, VecDeque};
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

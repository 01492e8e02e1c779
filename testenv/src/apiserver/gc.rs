//! Background garbage collection and namespace cleanup, run promptly after deletions.
//! See <https://kubernetes.io/docs/concepts/architecture/garbage-collection/>: an object whose
//! owners (by uid) are all gone is deleted; dangling references beside a live owner are
//! dropped; an owner deleted in the foreground waits (finalizer `foregroundDeletion`) until its
//! dependents that set `blockOwnerDeletion` are gone (the others are deleted, not waited for). A Terminating namespace is emptied, then removed.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Shared;
use super::catalog::{ResourceDef, Special};
use super::delete::{after_delete, delete_object};
use super::store::{ObjKey, Store};
use super::util::{blocking_owner_uids, finalizers, is_deleting, meta_str, owner_uids};

/// Runs until shutdown, collecting after every notification.
pub async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            () = shared.gc.notified() => {
                let mut st = shared.lock();
                collect(&shared, &mut st);
            }
            _ = shutdown.changed() => return,
        }
    }
}

fn def_for(st: &Store, store: &str) -> Option<Arc<ResourceDef>> {
    st.catalog.all().iter().find(|d| d.store == store && d.special != Special::EventV1).cloned()
}

/// One collection pass, repeated until nothing changes.
pub fn collect(shared: &Shared, st: &mut Store) {
    for _ in 0..100 {
        if !pass(shared, st) {
            return;
        }
    }
}

fn pass(shared: &Shared, st: &mut Store) -> bool {
    let mut changed = false;
    let stores = st.stores();
    // Owners being deleted in the foreground: (store, key, uid).
    let mut foreground: Vec<(String, ObjKey, String)> = Vec::new();
    for store in &stores {
        for (key, obj) in st.entries(store) {
            if is_deleting(&obj) && finalizers(&obj).iter().any(|f| f == "foregroundDeletion") {
                foreground.push((store.clone(), key, meta_str(&obj, "uid").to_owned()));
            }
        }
    }
    let fg_uids: HashSet<&str> = foreground.iter().map(|(_, _, u)| u.as_str()).collect();
    let mut with_blocking_dependents: HashSet<String> = HashSet::new();
    for store in &stores {
        let Some(def) = def_for(st, store) else { continue };
        for (key, obj) in st.entries(store) {
            let owners = owner_uids(&obj);
            with_blocking_dependents.extend(blocking_owner_uids(&obj));
            if owners.is_empty() || is_deleting(&obj) {
                continue;
            }
            let alive = owners.iter().filter(|u| st.uid_exists(u)).count();
            if alive == 0 || owners.iter().any(|u| fg_uids.contains(u.as_str())) {
                let _ = delete_object(shared, st, &def, &key, Some("Background"), false);
                changed = true;
            } else if alive < owners.len() {
                let mut o = (*obj).clone();
                if let Some(Value::Array(refs)) = o.pointer_mut("/metadata/ownerReferences") {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str).is_some_and(|u| st.uid_exists(u)));
                }
                st.write(store, &key, Some(o));
                changed = true;
            }
        }
    }
    for (store, key, uid) in &foreground {
        if with_blocking_dependents.contains(uid) {
            continue;
        }
        if let (Some(def), Some(obj)) = (def_for(st, store), st.get(store, key)) {
            let mut o = (*obj).clone();
            let rest: Vec<String> = finalizers(&o).into_iter().filter(|f| f != "foregroundDeletion").collect();
            o["metadata"]["finalizers"] = json!(rest);
            if rest.is_empty() {
                if let Some(last) = st.remove_with(store, key, o) {
                    after_delete(shared, st, &def, &last);
                }
            } else {
                st.write(store, key, Some(o));
            }
            changed = true;
        }
    }
    changed | namespaces(shared, st)
}

/// Empties Terminating namespaces and removes them once empty.
fn namespaces(shared: &Shared, st: &mut Store) -> bool {
    let mut changed = false;
    for (key, ns) in st.entries("/namespaces") {
        if !is_deleting(&ns) {
            continue;
        }
        let name = key.1.clone();
        let mut remaining = false;
        for store in st.stores() {
            let Some(def) = def_for(st, &store) else { continue };
            if !def.namespaced {
                continue;
            }
            for obj in st.list(&store, Some(&name)) {
                remaining = true;
                if !is_deleting(&obj) {
                    let k = (name.clone(), meta_str(&obj, "name").to_owned());
                    let _ = delete_object(shared, st, &def, &k, Some("Background"), false);
                    changed = true;
                }
            }
        }
        if !remaining {
            st.write("/namespaces", &key, None);
            changed = true;
        }
    }
    changed
}

//! The Secrets `--credential-sources` names, each watched by its name (a `metadata.name` field
//! selector, which RBAC `resourceNames` can allow without granting a list of every Secret)
//! into a store shared by every resource: a deploy reads `status.credentials` from there
//! instead of a GET per Secret. The stores keep key names and the username only: never a
//! password, nor the annotations (`kubectl apply` copies a whole Secret into one).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

use super::gather::CredentialSource;

/// What the watch says of one credential Secret.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Listed: the Secret (stripped) or its absence.
    Known(Option<Box<Secret>>),
    /// The watch has not listed it yet (starting, or not allowed to): read it directly.
    Unknown,
}

/// One store per `(namespace, name)` of the sources' Secrets.
#[derive(Clone, Default)]
pub struct CredentialStores(Vec<(String, String, Store<Secret>)>);

impl CredentialStores {
    /// The Secret `namespace/name` as its watch has it.
    pub fn seen(&self, namespace: &str, name: &str) -> Seen {
        let store = self.0.iter().find(|(ns, n, _)| ns == namespace && n == name).map(|(_, _, store)| store);
        match store {
            Some(store) if is_ready(store) => {
                Seen::Known(store.get(&ObjectRef::new(name).within(namespace)).map(|s| Box::new(Secret::clone(&s))))
            }
            _ => Seen::Unknown,
        }
    }
}

fn is_ready(store: &Store<Secret>) -> bool {
    use futures::FutureExt as _;
    store.wait_until_ready().now_or_never().is_some_and(|ready| ready.is_ok())
}

/// Watches every Secret of `sources`, each once (sources may share one), until the returned
/// tasks are aborted.
pub fn watch(client: &Client, sources: &[CredentialSource]) -> (CredentialStores, Vec<tokio::task::JoinHandle<()>>) {
    use futures::StreamExt as _;
    // Each Secret with the username keys of every source naming it.
    let mut secrets: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        for candidate in &source.secrets {
            let keys = secrets.entry((source.namespace.clone(), candidate.name.clone())).or_default();
            keys.extend(source.username_key.iter().cloned());
        }
    }
    let mut stores = Vec::new();
    let mut tasks = Vec::new();
    for ((namespace, name), username_keys) in secrets {
        let (reader, writer) = reflector::store();
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(api, config)
            .default_backoff()
            .modify(move |secret| keep_key_names(secret, &username_keys))
            .reflect(writer);
        let (ns, secret) = (namespace.clone(), name.clone());
        tasks.push(tokio::spawn(stream.for_each(move |event| {
            if let Err(err) = event {
                tracing::debug!(namespace = ns, secret, error = %err, "a credential Secret's watch failed; it is read directly instead");
            }
            std::future::ready(())
        })));
        stores.push((namespace, name, reader));
    }
    (CredentialStores(stores), tasks)
}

/// A Secret stripped to what `status.credentials` reads: its keys with empty values, but the
/// values of `username_keys` (a username is shown in status).
pub fn keep_key_names(secret: &mut Secret, username_keys: &BTreeSet<String>) {
    secret.metadata.managed_fields = None;
    secret.metadata.annotations = None;
    secret.metadata.labels = None;
    secret.string_data = None;
    for (key, value) in secret.data.iter_mut().flatten() {
        if !username_keys.contains(key) {
            *value = ByteString(Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_key_names_and_the_username_never_a_password() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "grafana", "namespace": "monitoring",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"admin-password\":\"aHVudGVyMg==\"}}"}},
            "data": {"admin-password": "aHVudGVyMg==", "admin-user": "cm9vdA=="},
            "stringData": {"other": "hunter2"}
        }))
        .unwrap();
        // Two sources name this Secret, each with its username key: both values stay.
        keep_key_names(&mut secret, &BTreeSet::from(["admin-user".to_owned(), "absent".to_owned()]));
        let text = serde_json::to_string(&secret).unwrap();
        assert!(!text.contains("aHVudGVyMg") && !text.contains("hunter2"), "{text}");
        let data = secret.data.unwrap();
        assert_eq!(data["admin-password"].0, b"");
        assert_eq!(data["admin-user"].0, b"root");
    }

    #[test]
    fn a_secret_without_a_watch_is_unknown() {
        let stores = CredentialStores::default();
        assert!(matches!(stores.seen("argocd", "argocd-secret"), Seen::Unknown));
    }
}

//! What a deploy installed, gathered after it succeeds: Ingress URLs and references to the
//! admin passwords of well-known tools. Reading is best effort: a missing permission leaves the
//! field empty (and is logged) rather than failing a deploy that succeeded.

use std::collections::{BTreeMap, BTreeSet};

use alustan_shared::{Credential, SecretKeyReference};
use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

use super::credential_watch::{CredentialStores, Seen};

/// Every host of every rule of every Ingress, grouped by the Ingress's namespace, sorted and
/// deduplicated; `https://` when the host is in the Ingress's TLS section. Read from `cache`
/// (the agent's Ingress watch, shared by every resource) once it has listed them all; until
/// then (or without permission to watch) with a LIST.
pub async fn ingress_urls(client: &Client, cache: Option<Store<Ingress>>) -> BTreeMap<String, Vec<String>> {
    if let Some(store) = cache
        && store.wait_until_ready().now_or_never().is_some_and(|ready| ready.is_ok())
    {
        let ingresses: Vec<Ingress> = store.state().iter().map(|ingress| Ingress::clone(ingress)).collect();
        return urls(&ingresses);
    }
    let api: Api<Ingress> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => urls(&list.items),
        Err(err) => {
            tracing::warn!(error = %err, "cannot list Ingresses; status.ingressURLs left empty");
            BTreeMap::new()
        }
    }
}

/// Watches every Ingress into a store holding only what [`urls`] reads (hosts of rules and
/// TLS sections), until the returned task is aborted.
pub fn watch_ingresses(client: Client) -> (Store<Ingress>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<Ingress>::all(client), watcher::Config::default().page_size(100))
        .default_backoff()
        .modify(keep_hosts_only)
        .reflect(writer);
    let task = tokio::spawn(stream.for_each(|event| async move {
        if let Err(err) = event {
            tracing::debug!(error = %err, "the Ingress watch failed; status.ingressURLs are listed instead");
        }
    }));
    (reader, task)
}

/// An Ingress stripped to its namespace, rule hosts and TLS hosts: the cache's shape.
pub fn keep_hosts_only(ingress: &mut Ingress) {
    ingress.metadata.managed_fields = None;
    ingress.metadata.annotations = None;
    ingress.metadata.labels = None;
    ingress.status = None;
    if let Some(spec) = &mut ingress.spec {
        spec.default_backend = None;
        spec.ingress_class_name = None;
        for rule in spec.rules.iter_mut().flatten() {
            rule.http = None;
        }
        for tls in spec.tls.iter_mut().flatten() {
            tls.secret_name = None;
        }
    }
}

pub fn urls(ingresses: &[Ingress]) -> BTreeMap<String, Vec<String>> {
    let mut grouped: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ingress in ingresses {
        let Some(spec) = &ingress.spec else { continue };
        let tls: BTreeSet<&str> =
            spec.tls.iter().flatten().flat_map(|t| t.hosts.iter().flatten()).map(String::as_str).collect();
        for host in spec.rules.iter().flatten().filter_map(|r| r.host.as_deref()) {
            let scheme = if tls.contains(host) { "https" } else { "http" };
            grouped.entry(ingress.namespace().unwrap_or_default()).or_default().insert(format!("{scheme}://{host}"));
        }
    }
    grouped.into_iter().map(|(ns, urls)| (ns, urls.into_iter().collect())).collect()
}

/// Where a tool keeps its admin password (an item of `--credential-sources`, in the Helm
/// value `credentials`'s format): the first of `secrets` present wins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSource {
    /// The key in `status.credentials`.
    pub name: String,
    pub namespace: String,
    pub secrets: Vec<SecretKey>,
    /// A fixed username, or the fallback when `username_key` is absent from the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A key of the same Secret holding the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
}

/// A Secret (in the source's namespace) and its key holding the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

/// Why `--credential-sources` was refused: where, never what (the value is not echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcesError {
    #[error("invalid --credential-sources (CREDENTIAL_SOURCES): {problem} at line {line} column {column}")]
    Json { problem: &'static str, line: usize, column: usize },
    #[error("invalid --credential-sources (CREDENTIAL_SOURCES): item {index}: {problem}")]
    Item { index: usize, problem: &'static str },
}

impl CredentialSource {
    /// The built-in sources, the Helm chart's default `credentials` (`.ci/chart_check.py`
    /// asserts they are equal).
    pub fn defaults() -> Vec<Self> {
        let secret = |name: &str, key: &str| SecretKey { name: name.into(), key: key.into() };
        vec![
            Self {
                name: "argocd".into(),
                namespace: "argocd".into(),
                secrets: vec![
                    secret("argocd-initial-admin-secret", "password"),
                    secret("argocd-secret", "admin.password"),
                ],
                username: Some("admin".into()),
                username_key: None,
            },
            Self {
                name: "grafana".into(),
                namespace: "monitoring".into(),
                secrets: vec![secret("grafana", "admin-password")],
                username: Some("admin".into()),
                username_key: Some("admin-user".into()),
            },
        ]
    }

    /// Parses the JSON array of `--credential-sources`; `[]` disables gathering credentials.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, SourcesError> {
        let sources: Vec<Self> = serde_json::from_str(text).map_err(|err| SourcesError::Json {
            // serde's own message may quote the value: only its category and position are shown.
            problem: match err.classify() {
                serde_json::error::Category::Syntax => "not valid JSON",
                serde_json::error::Category::Eof => "the JSON ends early",
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "not a list of {name, namespace, secrets: [{name, key}], username, usernameKey}"
                }
            },
            line: err.line(),
            column: err.column(),
        })?;
        for (index, source) in sources.iter().enumerate() {
            let problem = if source.name.is_empty() {
                Some("name is empty")
            } else if source.namespace.is_empty() {
                Some("namespace is empty")
            } else if source.secrets.is_empty() {
                Some("secrets is empty")
            } else if source.secrets.iter().any(|s| s.name.is_empty() || s.key.is_empty()) {
                Some("a secret has an empty name or key")
            } else if source.username.is_none() && source.username_key.is_none() {
                Some("set username or usernameKey")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(SourcesError::Item { index, problem });
            }
        }
        Ok(sources)
    }
}

/// Username and Secret key reference of each source found; never a password. Each Secret is
/// read from its watch (`stores`), or with a GET until the watch has listed it.
pub async fn credentials(
    client: &Client,
    sources: &[CredentialSource],
    stores: &CredentialStores,
) -> BTreeMap<String, Credential> {
    let mut found = BTreeMap::new();
    for source in sources {
        let api: Api<Secret> = Api::namespaced(client.clone(), &source.namespace);
        for candidate in &source.secrets {
            let read = match stores.seen(&source.namespace, &candidate.name) {
                Seen::Known(secret) => Ok(secret.map(|secret| *secret)),
                Seen::Unknown => api.get_opt(&candidate.name).await,
            };
            let secret = match read {
                Ok(Some(secret)) => secret,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(
                        source = source.name,
                        namespace = source.namespace,
                        secret = candidate.name,
                        error = %err,
                        "cannot read a credential source's Secret"
                    );
                    continue;
                }
            };
            let data = secret.data.unwrap_or_default();
            if !data.contains_key(&candidate.key) {
                continue;
            }
            // A username is not a secret; it is shown in status.
            let username = source
                .username_key
                .as_ref()
                .and_then(|k| data.get(k))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|name| !name.is_empty())
                .or_else(|| source.username.clone())
                .unwrap_or_default();
            let reference = SecretKeyReference {
                namespace: source.namespace.clone(),
                name: candidate.name.clone(),
                key: candidate.key.clone(),
            };
            found.insert(source.name.clone(), Credential { username, password_secret_ref: reference });
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_group_by_namespace_with_https_for_tls_hosts() {
        let ingress = |ns: &str, hosts: &[&str], tls: &[&str]| -> Ingress {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "i", "namespace": ns},
                "spec": {"rules": hosts.iter().map(|h| serde_json::json!({"host": h})).collect::<Vec<_>>(),
                         "tls": [{"hosts": tls}]}
            }))
            .unwrap()
        };
        let got = urls(&[
            ingress("web", &["b.example.com", "a.example.com"], &["a.example.com"]),
            ingress("web", &["a.example.com"], &[]),
            ingress("argocd", &["cd.example.com"], &["cd.example.com"]),
        ]);
        assert_eq!(
            got,
            BTreeMap::from([
                ("argocd".into(), vec!["https://cd.example.com".into()]),
                (
                    "web".into(),
                    vec!["http://a.example.com".into(), "http://b.example.com".into(), "https://a.example.com".into()]
                ),
            ])
        );
    }

    #[test]
    fn the_defaults_are_the_helm_values_default() {
        let values: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../../charts/alustan/values.yaml")).unwrap();
        let chart: Vec<CredentialSource> = serde_yaml::from_value(values["credentials"].clone()).unwrap();
        assert_eq!(chart, CredentialSource::defaults());
    }

    #[test]
    fn sources_parse_in_the_chart_format() {
        let text =
            r#"[{"name":"vault","namespace":"vault","secrets":[{"name":"root","key":"token"}],"usernameKey":"user"}]"#;
        let sources = CredentialSource::parse_list(text).unwrap();
        assert_eq!(sources[0].username_key.as_deref(), Some("user"));
        assert_eq!(sources[0].username, None);
        assert_eq!(CredentialSource::parse_list("[]").unwrap(), []);
        let round_trip = serde_json::to_string(&CredentialSource::defaults()).unwrap();
        assert_eq!(CredentialSource::parse_list(&round_trip).unwrap(), CredentialSource::defaults());
    }

    #[test]
    fn bad_sources_name_the_flag_and_position_never_the_value() {
        let secret_looking = r#"[{"name":"hunter2-do-not-print","namespace":5}]"#;
        let err = CredentialSource::parse_list(secret_looking).unwrap_err().to_string();
        assert!(err.contains("--credential-sources") && err.contains("line 1 column"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = CredentialSource::parse_list("[{\"name\": \"x\"").unwrap_err();
        assert!(matches!(err, SourcesError::Json { problem: "the JSON ends early", line: 1, .. }), "{err}");
        let err = CredentialSource::parse_list("not json").unwrap_err();
        assert!(matches!(err, SourcesError::Json { problem: "not valid JSON", .. }), "{err}");
        let no_user = r#"[{"name":"a","namespace":"b","secrets":[{"name":"c","key":"d"}]}]"#;
        assert_eq!(
            CredentialSource::parse_list(no_user).unwrap_err(),
            SourcesError::Item { index: 0, problem: "set username or usernameKey" }
        );
    }
}

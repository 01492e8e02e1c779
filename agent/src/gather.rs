//! What a deploy installed, gathered after it succeeds: Ingress URLs and references to the
//! admin passwords of well-known tools. Reading is best effort: a missing permission leaves the
//! field empty (and is logged) rather than failing a deploy that succeeded.

use std::collections::{BTreeMap, BTreeSet};

use alustan_shared::{Credential, SecretKeyReference};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};

/// Every host of every rule of every Ingress, grouped by the Ingress's namespace, sorted and
/// deduplicated; `https://` when the host is in the Ingress's TLS section.
pub async fn ingress_urls(client: &Client) -> BTreeMap<String, Vec<String>> {
    let api: Api<Ingress> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => urls(&list.items),
        Err(err) => {
            tracing::warn!(error = %err, "cannot list Ingresses; status.ingressURLs left empty");
            BTreeMap::new()
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

/// Where a tool keeps its admin password: candidates in order, the first present wins.
struct Known {
    name: &'static str,
    namespace: &'static str,
    /// (Secret, key) candidates.
    passwords: &'static [(&'static str, &'static str)],
    /// A key of the same Secret holding the username, else `default_user`.
    user_key: Option<&'static str>,
    default_user: &'static str,
}

// The defaults of the Helm value `credentials` (not yet configurable).
const KNOWN: &[Known] = &[
    Known {
        name: "argocd",
        namespace: "argocd",
        passwords: &[("argocd-initial-admin-secret", "password"), ("argocd-secret", "admin.password")],
        user_key: None,
        default_user: "admin",
    },
    Known {
        name: "grafana",
        namespace: "monitoring",
        passwords: &[("grafana", "admin-password")],
        user_key: Some("admin-user"),
        default_user: "admin",
    },
];

/// Username and Secret key reference of each known tool found; never a password.
pub async fn credentials(client: &Client) -> BTreeMap<String, Credential> {
    let mut found = BTreeMap::new();
    for known in KNOWN {
        let api: Api<Secret> = Api::namespaced(client.clone(), known.namespace);
        for (secret, key) in known.passwords {
            let Ok(Some(secret_object)) = api.get_opt(secret).await else { continue };
            let data = secret_object.data.unwrap_or_default();
            if !data.contains_key(*key) {
                continue;
            }
            // A username is not a secret; it is shown in status.
            let username = known
                .user_key
                .and_then(|k| data.get(k))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .unwrap_or_else(|| known.default_user.to_owned());
            let reference = SecretKeyReference {
                namespace: known.namespace.to_owned(),
                name: (*secret).to_owned(),
                key: (*key).to_owned(),
            };
            found.insert(known.name.to_owned(), Credential { username, password_secret_ref: reference });
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
}

//! The Pod's ServiceAccount token at `/var/run/secrets/kubernetes.io/serviceaccount`, as the
//! ServiceAccount admission plugin and the kubelet provide it: unless
//! `automountServiceAccountToken` is false on the Pod (or, when the Pod does not say, on the
//! ServiceAccount), the kubelet asks the API server for a token bound to the Pod
//! (`serviceaccounts/{name}/token`) and writes `token` and `namespace` there, read-only.
//! `ca.crt` is left out: the test API server serves plain HTTP.

use std::path::Path;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::sandbox::Mount;

/// Where in-cluster clients look for their credentials.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kubelet asks for a bit over an hour, as the real one does.
const EXPIRATION_SECONDS: i64 = 3607;

/// The token mount for `pod`, `None` when automounting is off; `Err` (why) when the
/// ServiceAccount is missing or the token cannot be issued.
pub async fn mount(client: &kube::Client, pod: &Pod, namespace: &str, dir: &Path) -> Result<Option<Mount>, String> {
    let spec = pod.spec.as_ref();
    let name = account_name(pod);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = match accounts.get_opt(&name).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return Err(format!(
                "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
            ));
        }
        Err(error) => return Err(format!("error looking up service account {namespace}/{name}: {error}")),
    };
    let automount = spec.and_then(|s| s.automount_service_account_token).or(account.automount_service_account_token);
    if automount == Some(false) {
        return Ok(None);
    }
    let token = request_token(client, pod, namespace, &name, None, EXPIRATION_SECONDS).await?;
    let host = dir.join("serviceaccount");
    tokio::fs::create_dir_all(&host).await.map_err(|e| format!("cannot create {}: {e}", host.display()))?;
    for (file, contents) in [("token", token.as_str()), ("namespace", namespace)] {
        let path = host.join(file);
        tokio::fs::write(&path, contents).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(Some(Mount { host, container: MOUNT_PATH.to_owned(), read_only: true }))
}

/// A token for ServiceAccount `namespace/name` bound to `pod` (`serviceaccounts/{name}/token`),
/// for `audience` (the API server's own when `None`); `Err` says why not.
pub async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    namespace: &str,
    name: &str,
    audience: Option<&str>,
    expiration_seconds: i64,
) -> Result<String, String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]),
            expiration_seconds: Some(expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .map_err(|error| format!("cannot get a token for service account {namespace}/{name}: {error}"))?;
    issued
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("the token request for service account {namespace}/{name} returned no token"))
}

/// The Pod's ServiceAccount name (`default` when unset).
pub fn account_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone().or_else(|| s.service_account.clone()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

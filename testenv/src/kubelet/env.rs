//! A container's environment and command line, resolved the way the kubelet does it:
//! image `Env` first, then the container's `env` (with `valueFrom`), then `$(VAR)` expansion
//! in command and args (Kubernetes docs: "Define a command and arguments for a container").

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::image::ImageConfigFile;

/// The default PATH of container runtimes when neither image nor Pod set one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container cannot be configured: becomes `CreateContainerConfigError`.
#[derive(Debug)]
pub struct ConfigError(pub String);

/// The resolved environment, in a stable order (later entries win on duplicates).
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    image: &ImageConfigFile,
    api_server: Option<SocketAddr>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> =
        image.env.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".to_owned(), DEFAULT_PATH.to_owned()));
    }
    env.push(("HOSTNAME".to_owned(), pod.metadata.name.clone().unwrap_or_default()));
    env.push(("HOME".to_owned(), "/root".to_owned()));
    // Every container gets the `kubernetes` Service's variables; the container's own env wins.
    if let Some(addr) = api_server {
        env.push(("KUBERNETES_SERVICE_HOST".to_owned(), addr.ip().to_string()));
        env.push(("KUBERNETES_SERVICE_PORT".to_owned(), addr.port().to_string()));
        env.push(("KUBERNETES_PORT".to_owned(), format!("tcp://{addr}")));
    }
    for var in container.env.iter().flatten() {
        let Some(source) = &var.value_from else {
            let value = expand(var.value.as_deref().unwrap_or(""), &as_map(&env));
            env.push((var.name.clone(), value));
            continue;
        };
        let (kind, name, key, optional, lookup) = if let Some(r) = &source.secret_key_ref {
            ("secret", &r.name, &r.key, r.optional, secret_key(client, namespace, &r.name, &r.key).await?)
        } else if let Some(r) = &source.config_map_key_ref {
            ("configmap", &r.name, &r.key, r.optional, config_map_key(client, namespace, &r.name, &r.key).await?)
        } else if let Some(field) = &source.field_ref {
            env.push((var.name.clone(), field_value(pod, &field.field_path)?));
            continue;
        } else {
            return Err(ConfigError(format!("env {}: unsupported valueFrom source in the test kubelet", var.name)));
        };
        // Kubernetes: an optional reference to a missing object or key leaves the variable unset.
        match (lookup, optional == Some(true)) {
            (Lookup::Found(value), _) => env.push((var.name.clone(), value)),
            (_, true) => {}
            (Lookup::NoObject, false) => return Err(ConfigError(format!("{kind} \"{name}\" not found"))),
            (Lookup::NoKey, false) => {
                return Err(ConfigError(format!("couldn't find key {key} in {kind} {namespace}/{name}")));
            }
        }
    }
    Ok(dedupe(env))
}

/// The value behind a `secretKeyRef` or `configMapKeyRef`.
enum Lookup {
    Found(String),
    NoObject,
    NoKey,
}

async fn secret_key(client: &kube::Client, namespace: &str, name: &str, key: &str) -> Result<Lookup, ConfigError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Ok(Lookup::NoObject),
        Err(error) => return Err(ConfigError(format!("secret \"{name}\": {error}"))),
    };
    let data =
        secret.data.as_ref().and_then(|d| d.get(key)).map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned());
    // stringData is write-only on a real server, but tolerate a server that kept it.
    let value = data.or_else(|| secret.string_data.and_then(|d| d.get(key).cloned()));
    Ok(value.map_or(Lookup::NoKey, Lookup::Found))
}

async fn config_map_key(client: &kube::Client, namespace: &str, name: &str, key: &str) -> Result<Lookup, ConfigError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match maps.get_opt(name).await {
        Ok(Some(map)) => Ok(map.data.and_then(|d| d.get(key).cloned()).map_or(Lookup::NoKey, Lookup::Found)),
        Ok(None) => Ok(Lookup::NoObject),
        Err(error) => Err(ConfigError(format!("configmap \"{name}\": {error}"))),
    }
}

pub(super) fn field_value(pod: &Pod, path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.serviceAccountName" => {
            spec.and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".to_owned())
        }
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
        other => {
            if let Some(key) = other.strip_prefix("metadata.labels['").and_then(|k| k.strip_suffix("']")) {
                meta.labels.as_ref().and_then(|l| l.get(key).cloned()).unwrap_or_default()
            } else if let Some(key) = other.strip_prefix("metadata.annotations['").and_then(|k| k.strip_suffix("']")) {
                meta.annotations.as_ref().and_then(|l| l.get(key).cloned()).unwrap_or_default()
            } else {
                return Err(ConfigError(format!("unsupported fieldRef {other:?} in the test kubelet")));
            }
        }
    })
}

/// The argv: `command` (or the image Entrypoint) followed by `args` (or the image Cmd when
/// neither command nor args are set), with `$(VAR)` expanded.
pub fn argv(container: &Container, image: &ImageConfigFile, env: &[(String, String)]) -> Vec<String> {
    let vars = as_map(env);
    let expand_all = |items: &[String]| items.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    match (&container.command, &container.args) {
        (Some(command), args) => [expand_all(command), expand_all(args.as_deref().unwrap_or_default())].concat(),
        (None, Some(args)) => [image.entrypoint.clone(), expand_all(args)].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    }
}

fn as_map(env: &[(String, String)]) -> BTreeMap<&str, &str> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn dedupe(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

/// `$(VAR)` → its value when defined, `$$(VAR)` → a literal `$(VAR)`, anything else unchanged.
fn expand(text: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(close) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + close];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&tail[..3 + close]),
            }
            rest = &tail[3 + close..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Decodes `.dockerconfigjson` of image pull secrets into (user, password) for `host`.
pub fn docker_credentials(config_json: &[u8], host: &str) -> Option<(String, String)> {
    let config: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    let entry = config.get("auths")?.as_object()?.iter().find(|(key, _)| {
        let key = key.trim_start_matches("https://").trim_start_matches("http://");
        key == host || key.split('/').next() == Some(host)
    })?;
    let entry = entry.1;
    if let (Some(user), Some(password)) =
        (entry.get("username").and_then(|v| v.as_str()), entry.get("password").and_then(|v| v.as_str()))
    {
        return Some((user.to_owned(), password.to_owned()));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(entry.get("auth")?.as_str()?).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = BTreeMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("x$(A)y$(B)", &vars), "x1ytwo");
        assert_eq!(expand("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost: $5", &vars), "cost: $5");
    }

    #[test]
    fn command_and_args_override_entrypoint_and_cmd() {
        let image = ImageConfigFile {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            ..ImageConfigFile::default()
        };
        let env = vec![("X".to_owned(), "42".to_owned())];
        let mut container = Container::default();
        assert_eq!(argv(&container, &image, &env), ["/entry", "default"]);
        container.args = Some(vec!["$(X)".into()]);
        assert_eq!(argv(&container, &image, &env), ["/entry", "42"]);
        container.command = Some(vec!["/bin/sh".into()]);
        assert_eq!(argv(&container, &image, &env), ["/bin/sh", "42"]);
    }

    #[test]
    fn docker_config_auth_is_decoded_for_the_matching_host() {
        let config =
            br#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"other:1":{"username":"u","password":"p"}}}"#;
        assert_eq!(docker_credentials(config, "127.0.0.1:5000"), Some(("user".into(), "pass".into())));
        assert_eq!(docker_credentials(config, "other:1"), Some(("u".into(), "p".into())));
        assert_eq!(docker_credentials(config, "missing:1"), None);
    }
}

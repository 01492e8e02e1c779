//! The real API server's audit log as a [`RequestLog`]: what the embedded server records of
//! every request (verb, resource, user, status), so tests that check who was refused what run
//! unchanged on both backends.

use std::path::Path;

use serde::Deserialize;

use super::ControlPlaneError;
use crate::apiserver::{RequestLog, RequestRecord};

/// Every request at `Metadata` level (never bodies: Secrets stay out of the file), once, when
/// its response is complete (a watch when it ends).
const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
";

/// Writes the policy into `dir` and returns the API server flags that log to `dir/audit.log`.
pub(super) fn apiserver_flags(dir: &Path) -> Result<Vec<String>, ControlPlaneError> {
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, POLICY).map_err(|source| ControlPlaneError::io(&policy, source))?;
    Ok(vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log_path(dir).display()),
        // Written before the response is sent, so a test reads what it just did.
        "--audit-log-mode=blocking".to_owned(),
    ])
}

pub(super) fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("audit.log")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: User,
    #[serde(default)]
    user_agent: String,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    api_group: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: u16,
}

/// The requests the audit log in `dir` holds so far (an unreadable line is skipped: the file
/// may end in a line being written).
pub(super) fn requests(dir: &Path) -> Result<RequestLog, ControlPlaneError> {
    let path = log_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ControlPlaneError::io(&path, source)),
    };
    let log = RequestLog::default();
    for event in text.lines().filter_map(|line| serde_json::from_str::<Event>(line).ok()) {
        log.push(record(event));
    }
    Ok(log)
}

fn record(event: Event) -> RequestRecord {
    let (path, query) = match event.request_uri.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (event.request_uri.clone(), String::new()),
    };
    let method = match event.verb.as_str() {
        "get" | "list" | "watch" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        other => other,
    }
    .to_uppercase();
    let object = event.object_ref.unwrap_or_default();
    RequestRecord {
        method,
        path,
        query,
        verb: event.verb,
        group: object.api_group,
        resource: object.resource,
        subresource: object.subresource,
        namespace: object.namespace,
        name: object.name,
        user_agent: event.user_agent,
        user: event.user.username,
        status: event.response_status.map_or(0, |s| s.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_event_becomes_the_record_the_embedded_server_keeps() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/batch/v1/namespaces/default/jobs/x/status?fieldManager=a","verb":"patch","user":{"username":"system:serviceaccount:alustan:agent","groups":["system:serviceaccounts"]},"userAgent":"kube-rs","objectRef":{"resource":"jobs","namespace":"default","name":"x","apiGroup":"batch","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":403}}"#;
        let r = record(serde_json::from_str(line).unwrap());
        assert_eq!((r.method.as_str(), r.verb.as_str(), r.status), ("PATCH", "patch", 403));
        assert_eq!((r.group.as_str(), r.resource.as_str(), r.subresource.as_str()), ("batch", "jobs", "status"));
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("default", "x"));
        assert_eq!(
            (r.path.as_str(), r.query.as_str()),
            ("/apis/batch/v1/namespaces/default/jobs/x/status", "fieldManager=a")
        );
        assert_eq!(r.user, "system:serviceaccount:alustan:agent");
    }

    #[test]
    fn a_non_resource_request_keeps_its_path_and_lowercase_verb() {
        let line = r#"{"requestURI":"/readyz","verb":"get","user":{"username":"admin"},"responseStatus":{"code":200}}"#;
        let r = record(serde_json::from_str(line).unwrap());
        assert_eq!(
            (r.method.as_str(), r.verb.as_str(), r.path.as_str(), r.resource.as_str()),
            ("GET", "get", "/readyz", "")
        );
    }
}

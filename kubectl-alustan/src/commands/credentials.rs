//! `credentials NAME [--reveal] [-o json|yaml]`: the credential references the deploy reported, passwords
//! masked. `--reveal` reads each Secret with the USER's own credentials; a forbidden one is
//! named (verb, secret, namespace) while the others are still printed, and the exit code is 1.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

use crate::cli::DataFormat;

use crate::errors::{self, CliError};
use crate::kube_client::Connection;

const MASK: &str = "********";

pub async fn run(conn: &Connection, name: &str, reveal: bool, output: Option<DataFormat>) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let credentials = object.status.map(|s| s.credentials).unwrap_or_default();
    if credentials.is_empty() && output.is_none() {
        crate::errln!("no credentials reported for {}/{name}", conn.namespace);
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (credential, entry) in &credentials {
        let r = &entry.password_secret_ref;
        let password = if reveal {
            match read_key(conn, &r.namespace, &r.name, &r.key).await {
                Ok(value) => Some(value),
                Err(problem) => {
                    problems.push(format!("{credential}: {problem}"));
                    None
                }
            }
        } else {
            None
        };
        rows.push((credential, entry, password));
    }
    let text = if let Some(format) = output {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(credential, entry, password)| {
                let mut item = json!({"name": credential, "username": entry.username,
                                          "passwordSecretRef": entry.password_secret_ref});
                if let Some(password) = password {
                    item["password"] = json!(password);
                }
                item
            })
            .collect();
        super::outputs::encode(&list, format)?
    } else {
        let header: Vec<String> = ["NAME", "USERNAME", "PASSWORD", "SECRET"].map(str::to_owned).to_vec();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(credential, entry, password)| {
                let r = &entry.password_secret_ref;
                let shown = match password {
                    Some(value) => value.clone(),
                    None if reveal => "<not revealed>".to_owned(),
                    None => MASK.to_owned(),
                };
                vec![
                    (*credential).clone(),
                    entry.username.clone(),
                    shown,
                    format!("{}/{} key {}", r.namespace, r.name, r.key),
                ]
            })
            .collect();
        super::get::render(&header, &cells)
    };
    crate::out!("{text}");
    if !reveal {
        crate::errln!("passwords masked; --reveal reads them with your own permissions");
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Other(format!("some passwords could not be revealed:\n{}", problems.join("\n"))))
}

/// One key of one Secret, read with the user's credentials.
pub async fn read_key(conn: &Connection, namespace: &str, secret: &str, key: &str) -> Result<String, String> {
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), namespace);
    let found = match api.get(secret).await {
        Ok(found) => found,
        Err(e) if errors::is_not_found(&e) => {
            return Err(format!("Secret \"{secret}\" not found in namespace \"{namespace}\""));
        }
        Err(e) => return Err(format!("Secret \"{secret}\": {}", CliError::api(e, "get", "secrets", Some(namespace)))),
    };
    let bytes = found.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
    let bytes = bytes.or_else(|| found.string_data.as_ref().and_then(|d| d.get(key)).map(|s| s.clone().into_bytes()));
    let Some(bytes) = bytes else {
        return Err(format!("Secret \"{namespace}/{secret}\" has no key \"{key}\""));
    };
    String::from_utf8(bytes).map_err(|_| format!("Secret \"{namespace}/{secret}\" key \"{key}\" is not text"))
}

//! `outputs NAME [-o json|yaml] [--show-sensitive]`: a NAME/FROM/VALUE table of the terraform
//! and post-deploy outputs (the TUI's `o` view shows the same rows), or `status.output` exactly
//! as JSON/YAML. `--show-sensitive` reads the outputs Secret with the USER's own credentials.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;

use crate::cli::DataFormat;
use crate::errors::{self, CliError};
use crate::kube_client::Connection;
use crate::tui::format;

pub async fn run(
    conn: &Connection,
    name: &str,
    output: Option<DataFormat>,
    show_sensitive: bool,
) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let status = object.status.unwrap_or_default();
    let sensitive = match (&status.sensitive_outputs_secret, show_sensitive) {
        (Some(secret), true) => read_sensitive(conn, secret).await?,
        _ => BTreeMap::new(),
    };
    let text = if let Some(format) = output {
        // `status.output` exactly; with --show-sensitive the sensitive ones join it, as
        // `terraform output -json` would list them.
        let mut outputs = status.output.clone();
        outputs.extend(sensitive.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))));
        encode(&outputs, format)?
    } else {
        let mut rows: Vec<Vec<String>> =
            format::output_rows(&status).into_iter().map(|(n, from, v)| vec![n, from.to_owned(), v]).collect();
        rows.extend(sensitive.iter().map(|(n, v)| vec![n.clone(), "sensitive".to_owned(), v.clone()]));
        if rows.is_empty() {
            let state = status.state.map_or("Pending", alustan_shared::State::as_str);
            crate::errln!("no outputs yet for {}/{name} (state: {state})", conn.namespace);
            String::new()
        } else {
            let header = ["NAME", "FROM", "VALUE"].map(str::to_owned).to_vec();
            super::get::render(&header, &rows)
        }
    };
    crate::out!("{text}");
    if let (Some(secret), false) = (&status.sensitive_outputs_secret, show_sensitive) {
        crate::errln!(
            "sensitive outputs are in Secret {}/{secret} (not shown; --show-sensitive reads them with your own permissions)",
            conn.namespace
        );
    }
    Ok(())
}

/// JSON or YAML of any value, for `-o`.
pub fn encode(value: &impl serde::Serialize, format: DataFormat) -> Result<String, CliError> {
    match format {
        DataFormat::Json => serde_json::to_string_pretty(value).map(|t| t + "\n").map_err(|e| e.to_string()),
        DataFormat::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
    }
    .map_err(|e| CliError::Other(format!("encoding: {e}")))
}

/// Every key of the outputs Secret, read with the user's credentials (a 403 names the RBAC).
async fn read_sensitive(conn: &Connection, secret: &str) -> Result<BTreeMap<String, String>, CliError> {
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let found = match api.get(secret).await {
        Ok(found) => found,
        Err(e) if errors::is_not_found(&e) => {
            return Err(CliError::Other(format!(
                "the sensitive outputs Secret \"{secret}\" is not in namespace \"{}\" (deleted, or the agent could not write it)",
                conn.namespace
            )));
        }
        Err(e) => return Err(CliError::api(e, "get", "secrets", Some(&conn.namespace))),
    };
    Ok(found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, bytes)| (key, String::from_utf8_lossy(&bytes.0).into_owned()))
        .collect())
}

//! `outputs NAME [-o json|yaml]`: `status.output` exactly, or a NAME/VALUE table.

use crate::cli::DataFormat;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::tui::format;

pub async fn run(conn: &Connection, name: &str, output: Option<DataFormat>) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let status = object.status.unwrap_or_default();
    let outputs = &status.output;
    let text = match output {
        Some(DataFormat::Json) => serde_json::to_string_pretty(outputs).map(|t| t + "\n").map_err(|e| e.to_string()),
        Some(DataFormat::Yaml) => serde_yaml::to_string(outputs).map_err(|e| e.to_string()),
        None => {
            if outputs.is_empty() {
                let state = status.state.map_or("Pending", alustan_shared::State::as_str);
                crate::errln!("no outputs yet for {}/{name} (state: {state})", conn.namespace);
                return Ok(());
            }
            let header = vec!["NAME".to_owned(), "VALUE".to_owned()];
            let rows: Vec<Vec<String>> = outputs.iter().map(|(k, v)| vec![k.clone(), format::value(v)]).collect();
            Ok(super::get::render(&header, &rows))
        }
    }
    .map_err(|e| CliError::Other(format!("encoding the outputs: {e}")))?;
    crate::out!("{text}");
    if let Some(secret) = &status.sensitive_outputs_secret {
        crate::errln!("sensitive outputs are in Secret {}/{secret} (not shown)", conn.namespace);
    }
    Ok(())
}

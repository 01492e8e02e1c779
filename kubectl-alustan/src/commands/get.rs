//! `get [NAME] [-w] [-o table|wide|yaml|json] [-l SELECTOR]`: kubectl-style columns; `-w`
//! follows a watch (never polls) and prints a row per change.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;

use alustan_shared::Terraform;
use futures::StreamExt as _;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::{RESOURCE, key};
use crate::cli::GetFormat;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::tui::format;

pub async fn run(
    conn: &Connection,
    name: Option<String>,
    watch: bool,
    output: GetFormat,
    selector: Option<String>,
) -> Result<(), CliError> {
    let wide = output == GetFormat::Wide;
    let namespaces = conn.all_namespaces;
    let objects = if let Some(name) = &name {
        vec![super::get(conn, name).await?]
    } else {
        let mut params = ListParams::default();
        if let Some(selector) = &selector {
            params = params.labels(selector);
        }
        let mut items = super::list(conn, &params).await?;
        items.sort_by_key(key);
        items
    };
    match output {
        GetFormat::Json | GetFormat::Yaml => print_data(&objects, name.is_some(), output)?,
        GetFormat::Table | GetFormat::Wide => {
            if objects.is_empty() && !watch {
                crate::errln!(
                    "No resources found{}.",
                    conn.scope().map(|n| format!(" in {n} namespace")).unwrap_or_default()
                );
                return Ok(());
            }
            let now = Timestamp::now();
            let rows: Vec<Vec<String>> = objects.iter().map(|o| row(o, now, namespaces, wide)).collect();
            crate::out!("{}", render(&header(namespaces, wide), &rows));
        }
    }
    if watch { follow(conn, name, selector, &objects, output).await } else { Ok(()) }
}

/// kubectl's header for the chosen columns.
fn header(namespaces: bool, wide: bool) -> Vec<String> {
    let mut columns = Vec::new();
    if namespaces {
        columns.push("NAMESPACE");
    }
    columns.extend(["NAME", "STATE", "VERSION", "READY", "AGE"]);
    if wide {
        columns.push("MESSAGE");
    }
    columns.into_iter().map(str::to_owned).collect()
}

pub fn row(object: &Terraform, now: Timestamp, namespaces: bool, wide: bool) -> Vec<String> {
    let mut cells = Vec::new();
    if namespaces {
        cells.push(object.metadata.namespace.clone().unwrap_or_default());
    }
    cells.push(object.metadata.name.clone().unwrap_or_default());
    cells.push(format::state(object).to_owned());
    cells.push(format::version(object).to_owned());
    cells.push(format::ready(object).to_owned());
    cells.push(format::age_of(object, now));
    if wide {
        cells.push(format::message(object));
    }
    cells
}

/// Columns padded to the widest cell plus three spaces, as kubectl's printer does.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        text.push_str(&line_of(line, &widths));
    }
    text
}

fn line_of(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i == last {
            line.push_str(cell);
        } else {
            let _ = write!(line, "{cell:<width$}   ");
        }
    }
    line.trim_end().to_owned() + "\n"
}

fn print_data(objects: &[Terraform], single: bool, output: GetFormat) -> Result<(), CliError> {
    let value = if single {
        serde_json::to_value(&objects[0])
    } else {
        // kubectl prints several objects as a v1 List.
        serde_json::to_value(objects)
            .map(|items| serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))
    }
    .map_err(|e| CliError::Other(format!("encoding: {e}")))?;
    let text = if output == GetFormat::Json {
        serde_json::to_string_pretty(&value).map(|t| t + "\n").map_err(|e| e.to_string())
    } else {
        serde_yaml::to_string(&value).map_err(|e| e.to_string())
    }
    .map_err(|e| CliError::Other(format!("encoding: {e}")))?;
    crate::out!("{text}");
    Ok(())
}

/// Prints a row for every change after the first listing, until interrupted.
async fn follow(
    conn: &Connection,
    name: Option<String>,
    selector: Option<String>,
    seen: &[Terraform],
    output: GetFormat,
) -> Result<(), CliError> {
    let mut config = watcher::Config::default();
    if let Some(name) = &name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    if let Some(selector) = &selector {
        config = config.labels(selector);
    }
    // Only rows whose resourceVersion differs from what was printed are news.
    let mut versions: HashMap<String, Option<String>> =
        seen.iter().map(|o| (key(o), o.metadata.resource_version.clone())).collect();
    let wide = output == GetFormat::Wide;
    let stream = watcher(super::scoped(conn), config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(next) = stream.next().await {
        let object = match next.map_err(|e| CliError::Other(format!("watch {RESOURCE}: {e}")))? {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let version = object.metadata.resource_version.clone();
                if versions.insert(key(&object), version.clone()) == Some(version) {
                    continue;
                }
                object
            }
            // Like `kubectl get -w`: a deletion prints the object's last state.
            watcher::Event::Delete(object) => {
                versions.remove(&key(&object));
                object
            }
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        match output {
            GetFormat::Json | GetFormat::Yaml => print_data(std::slice::from_ref(&object), true, output)?,
            GetFormat::Table | GetFormat::Wide => {
                let cells = row(&object, Timestamp::now(), conn.all_namespaces, wide);
                let widths: Vec<usize> = header(conn.all_namespaces, wide).iter().map(|h| h.len().max(12)).collect();
                crate::out!("{}", line_of(&cells, &widths));
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

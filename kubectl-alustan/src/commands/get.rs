//! `get [NAME] [-w] [-o FORMAT] [-l SELECTOR] [--show-managed-fields]`: kubectl-style columns
//! (and kubectl's `name`, `jsonpath=`, `custom-columns=` formats); `-w` follows a watch (never
//! polls) and prints a row per change, aligned with the first listing.

use std::collections::HashMap;
use std::fmt::Write as _;

use alustan_shared::Terraform;
use futures::StreamExt as _;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::{RESOURCE, key, template};
use crate::cli::GetFormat;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::tui::format;

/// What `get` prints: which objects, in which format.
#[derive(Debug, Clone)]
pub struct Query {
    pub name: Option<String>,
    pub selector: Option<String>,
    pub output: GetFormat,
    pub show_managed_fields: bool,
}

pub async fn run(conn: &Connection, query: Query, watch: bool) -> Result<(), CliError> {
    let objects = if let Some(name) = &query.name {
        vec![super::get(conn, name).await?]
    } else {
        let mut params = ListParams::default();
        if let Some(selector) = &query.selector {
            params = params.labels(selector);
        }
        let mut items = super::list(conn, &params).await?;
        items.sort_by_key(key);
        items
    };
    if objects.is_empty() && !watch && query.output.is_table() {
        crate::errln!("No resources found{}.", conn.scope().map(|n| format!(" in {n} namespace")).unwrap_or_default());
        return Ok(());
    }
    let mut printer = Printer::new(&query, conn.all_namespaces)?;
    crate::out!("{}", printer.first(&objects, query.name.is_some(), Timestamp::now())?);
    if watch { follow(conn, &query, &objects, &printer).await } else { Ok(()) }
}

/// How rows look: the columns (and their widths, fixed by the first listing so `-w` rows line
/// up with the header) or a data format.
struct Printer {
    output: GetFormat,
    namespaces: bool,
    show_managed_fields: bool,
    header: Vec<String>,
    /// `custom-columns` paths.
    paths: Vec<String>,
    widths: Vec<usize>,
}

impl Printer {
    fn new(query: &Query, namespaces: bool) -> Result<Self, CliError> {
        let (header, paths) = match &query.output {
            GetFormat::CustomColumns(spec) => template::columns(spec).map_err(CliError::Usage)?.into_iter().unzip(),
            output => (header(namespaces, *output == GetFormat::Wide), Vec::new()),
        };
        Ok(Printer {
            output: query.output.clone(),
            namespaces,
            show_managed_fields: query.show_managed_fields,
            header,
            paths,
            widths: Vec::new(),
        })
    }

    fn row(&self, object: &Terraform, now: Timestamp) -> Vec<String> {
        if self.paths.is_empty() {
            return row(object, now, self.namespaces, self.output == GetFormat::Wide);
        }
        let value = serde_json::to_value(object).unwrap_or_default();
        self.paths
            .iter()
            .map(|path| {
                let found: Vec<String> =
                    template::query(&value, path).unwrap_or_default().into_iter().map(template::cell).collect();
                if found.is_empty() { "<none>".to_owned() } else { found.join(",") }
            })
            .collect()
    }

    /// The first listing: a table with its header (whose widths later rows keep), or the data
    /// of every object.
    fn first(&mut self, objects: &[Terraform], single: bool, now: Timestamp) -> Result<String, CliError> {
        if self.output.is_table() {
            let rows: Vec<Vec<String>> = objects.iter().map(|o| self.row(o, now)).collect();
            self.widths = widths(&self.header, &rows);
            // Room for every value a later `-w` row may bring (`Progressing`, `Unknown`).
            for (column, width) in self.header.iter().zip(self.widths.iter_mut()) {
                let least = match column.as_str() {
                    "STATE" if self.paths.is_empty() => "Progressing".len(),
                    "READY" if self.paths.is_empty() => "Unknown".len(),
                    _ => 0,
                };
                *width = (*width).max(least);
            }
            let mut text = line_of(&self.header, &self.widths);
            for row in &rows {
                text.push_str(&line_of(row, &self.widths));
            }
            return Ok(text);
        }
        self.data(objects, single)
    }

    /// One object after a change (`-w`).
    fn next(&self, object: &Terraform, now: Timestamp) -> Result<String, CliError> {
        if self.output.is_table() {
            return Ok(line_of(&self.row(object, now), &self.widths));
        }
        self.data(std::slice::from_ref(object), true)
    }

    fn data(&self, objects: &[Terraform], single: bool) -> Result<String, CliError> {
        let encode = |e: String| CliError::Other(format!("encoding: {e}"));
        let mut values: Vec<serde_json::Value> =
            objects.iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(|e| encode(e.to_string()))?;
        if !self.show_managed_fields {
            values.iter_mut().filter_map(|v| v.get_mut("metadata").and_then(|m| m.as_object_mut())).for_each(|m| {
                m.remove("managedFields");
            });
        }
        if self.output == GetFormat::Name {
            return Ok(objects.iter().fold(String::new(), |mut text, o| {
                let _ = writeln!(text, "{RESOURCE_SINGULAR}/{}", o.metadata.name.as_deref().unwrap_or_default());
                text
            }));
        }
        let value = if single {
            values.into_iter().next().unwrap_or_default()
        } else {
            // kubectl prints several objects as a v1 List.
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
        };
        match &self.output {
            GetFormat::Json => {
                serde_json::to_string_pretty(&value).map(|t| t + "\n").map_err(|e| encode(e.to_string()))
            }
            GetFormat::JsonPath(text) => {
                let template = template::Template::parse(text).map_err(CliError::Usage)?;
                template.render(&value).map_err(CliError::Usage)
            }
            _ => serde_yaml::to_string(&value).map_err(|e| encode(e.to_string())),
        }
    }
}

/// `-o name`'s resource prefix, as kubectl prints it.
const RESOURCE_SINGULAR: &str = "terraform.alustan.io";

/// kubectl's header for the chosen columns.
fn header(namespaces: bool, wide: bool) -> Vec<String> {
    let mut columns = Vec::new();
    if namespaces {
        columns.push("NAMESPACE");
    }
    columns.extend(["NAME", "STATE", "VERSION", "READY", "SUSPENDED", "AGE"]);
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
    cells.push(format::state_label(object));
    cells.push(format::version(object));
    cells.push(format::ready(object).to_owned());
    cells.push(if object.spec.suspend { "True" } else { "False" }.to_owned());
    cells.push(format::age_of(object, now));
    if wide {
        cells.push(format::message(object));
    }
    cells
}

/// Columns padded to the widest cell plus three spaces, as kubectl's printer does.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let widths = widths(header, rows);
    let mut text = String::new();
    for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        text.push_str(&line_of(line, &widths));
    }
    text
}

fn widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    widths
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

/// Prints a row for every change after the first listing, until interrupted.
async fn follow(conn: &Connection, query: &Query, seen: &[Terraform], printer: &Printer) -> Result<(), CliError> {
    let mut config = watcher::Config::default();
    if let Some(name) = &query.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    if let Some(selector) = &query.selector {
        config = config.labels(selector);
    }
    // Only rows whose resourceVersion differs from what was printed are news.
    let mut versions: HashMap<String, Option<String>> =
        seen.iter().map(|o| (key(o), o.metadata.resource_version.clone())).collect();
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
        crate::out!("{}", printer.next(&object, Timestamp::now())?);
    }
    Ok(())
}

//! `describe NAME`: the TUI's describe text (spec, applied version and why, conditions,
//! outputs, URLs, credential references, runs) plus the object's recent Events.

use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

use super::get::render;
use crate::errors::CliError;
use crate::kube_client::Connection;
use crate::tui::ui::describe::describe_body;

pub async fn run(conn: &Connection, name: &str) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let now = Timestamp::now();
    let mut text = body_text(&object, now);
    text.push_str("Events:\n");
    text.push_str(&events(conn, &object, now).await);
    crate::out!("{text}");
    Ok(())
}

/// Everything but the Events, as plain text (the TUI's describe lines without styles).
pub fn body_text(object: &alustan_shared::Terraform, now: Timestamp) -> String {
    let mut text = String::new();
    for line in describe_body(object, now) {
        let plain: String = line.spans.iter().map(|span| span.content.as_ref()).collect();
        // The TUI's hint names its key; here the command is the way.
        let plain = plain.replace("(c shows them;", "(`kubectl alustan credentials NAME --reveal` shows them;");
        text.push_str(plain.trim_end());
        text.push('\n');
    }
    text
}

/// The object's Events, selected by kind, name, namespace and uid as `kubectl describe` does.
async fn events(conn: &Connection, object: &alustan_shared::Terraform, now: Timestamp) -> String {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
    let mut selector = format!(
        "involvedObject.namespace={namespace},involvedObject.kind=Terraform,involvedObject.name={}",
        object.metadata.name.as_deref().unwrap_or_default()
    );
    if let Some(uid) = &object.metadata.uid {
        let _ = write!(selector, ",involvedObject.uid={uid}");
    }
    let api: Api<Event> = Api::namespaced(conn.client.clone(), &namespace);
    let mut items = match api.list(&ListParams::default().fields(&selector)).await {
        Ok(list) => list.items,
        Err(e) => return format!("  (cannot list events: {})\n", CliError::api(e, "list", "events", Some(&namespace))),
    };
    if items.is_empty() {
        return "  <none>\n".to_owned();
    }
    items.sort_by_key(last_seen);
    let header: Vec<String> = ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"].map(str::to_owned).to_vec();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            let age = last_seen(e).map_or_else(|| "<unknown>".to_owned(), |t| crate::tui::format::age(t, now));
            let age = match e.count {
                Some(count) if count > 1 => format!("{age} (x{count})"),
                _ => age,
            };
            vec![
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                age,
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .or_else(|| e.reporting_component.clone())
                    .unwrap_or_default(),
                e.message.clone().unwrap_or_default().replace('\n', " "),
            ]
        })
        .collect();
    render(&header, &rows).lines().fold(String::new(), |mut text, line| {
        let _ = writeln!(text, "  {line}");
        text
    })
}

fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

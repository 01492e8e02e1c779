//! `describe NAME`: the TUI's describe text (spec, applied version and why, conditions,
//! outputs, URLs, credential references, runs) plus the object's recent Events.

use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

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

/// The object's Events folded per reason (latest note, `x4 over 2m`), as text.
async fn events(conn: &Connection, object: &alustan_shared::Terraform, now: Timestamp) -> String {
    match list_events(&conn.client, object).await {
        Ok(events) => crate::events::table(&crate::events::fold(&events), now),
        Err(e) => format!("  (cannot list events: {e})\n"),
    }
}

/// The object's Events, selected by kind, name, namespace and uid as `kubectl describe` does.
pub async fn list_events(client: &kube::Client, object: &alustan_shared::Terraform) -> Result<Vec<Event>, CliError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let mut selector = format!(
        "involvedObject.namespace={namespace},involvedObject.kind=Terraform,involvedObject.name={}",
        object.metadata.name.as_deref().unwrap_or_default()
    );
    if let Some(uid) = &object.metadata.uid {
        let _ = write!(selector, ",involvedObject.uid={uid}");
    }
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    api.list(&ListParams::default().fields(&selector))
        .await
        .map(|list| list.items)
        .map_err(|e| CliError::api(e, "list", "events", Some(&namespace)))
}

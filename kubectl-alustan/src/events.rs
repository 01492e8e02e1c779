//! A resource's Events folded per reason: the latest note, how many times, and over how long
//! (`x4 over 2m`), for `describe` and the TUI's Events pane.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;

use crate::tui::format::age;

/// Every Event of one type and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub type_: String,
    pub reason: String,
    /// The note of the most recent one.
    pub note: String,
    pub from: String,
    /// How many times it happened (a series counts each repeat).
    pub count: i32,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

impl Folded {
    /// kubectl describe's AGE cell: `2m`, or `2m (x4 over 10m)` for a repeated one.
    pub fn age(&self, now: Timestamp) -> String {
        let last = self.last.map_or_else(|| "<unknown>".to_owned(), |t| age(t, now));
        match self.first {
            Some(first) if self.count > 1 => format!("{last} (x{} over {})", self.count, age(first, now)),
            _ => last,
        }
    }
}

/// kubectl describe's Events table, one row per reason, indented by two spaces.
pub fn table(folded: &[Folded], now: Timestamp) -> String {
    if folded.is_empty() {
        return "  <none>\n".to_owned();
    }
    let header: Vec<String> = ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"].map(str::to_owned).to_vec();
    let rows: Vec<Vec<String>> = folded
        .iter()
        .map(|f| vec![f.type_.clone(), f.reason.clone(), f.age(now), f.from.clone(), f.note.clone()])
        .collect();
    crate::commands::get::render(&header, &rows).lines().fold(String::new(), |mut text, line| {
        let _ = writeln!(text, "  {line}");
        text
    })
}

/// Folds Events per (type, reason), oldest reason first by its latest occurrence.
pub fn fold(events: &[Event]) -> Vec<Folded> {
    let mut folded: BTreeMap<(String, String), Folded> = BTreeMap::new();
    for event in events {
        let key = (event.type_.clone().unwrap_or_default(), event.reason.clone().unwrap_or_default());
        let count = event.series.as_ref().and_then(|s| s.count).or(event.count).unwrap_or(1).max(1);
        let (first, last) = (first_seen(event), last_seen(event));
        let entry = folded.entry(key.clone()).or_insert_with(|| Folded {
            type_: key.0,
            reason: key.1,
            note: String::new(),
            from: String::new(),
            count: 0,
            first,
            last: None,
        });
        entry.count += count;
        entry.first = match (entry.first, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if last >= entry.last {
            entry.last = last;
            entry.note = event.message.clone().unwrap_or_default().replace('\n', " ");
            entry.from = event
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| event.reporting_component.clone())
                .unwrap_or_default();
        }
    }
    let mut list: Vec<Folded> = folded.into_values().collect();
    list.sort_by_key(|f| f.last);
    list
}

fn first_seen(event: &Event) -> Option<Timestamp> {
    event
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| first_seen(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(reason: &str, note: &str, at: &str, count: i32) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("e.{at}")}, "involvedObject": {},
            "type": "Normal", "reason": reason, "message": note, "count": count,
            "firstTimestamp": at, "lastTimestamp": at, "source": {"component": "alustan-agent"},
        }))
        .unwrap()
    }

    #[test]
    fn each_reason_shows_its_latest_note_with_count_and_span() {
        let now: Timestamp = "2026-01-10T12:10:00Z".parse().unwrap();
        let events = [
            event("Deploying", "deploying v1.0.1 (new resource)", "2026-01-10T12:00:00Z", 1),
            event("Deploying", "deploying v1.0.4 (new image)", "2026-01-10T12:08:00Z", 1),
            event("Deploying", "deploying v1.0.2 (spec changed)", "2026-01-10T12:03:00Z", 2),
            event("Succeeded", "deployed v1.0.4", "2026-01-10T12:09:00Z", 1),
        ];
        let folded = fold(&events);
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].reason, "Deploying");
        assert_eq!(folded[0].note, "deploying v1.0.4 (new image)");
        assert_eq!(folded[0].age(now), "2m (x4 over 10m)");
        assert_eq!(folded[1].age(now), "60s");
    }
}

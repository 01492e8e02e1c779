//! The list of resources. Only the visible rows are built, so 5,000 rows cost what 50 do.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{frame_block, state_style};
use crate::plans;
use crate::tui::format;
use crate::tui::state::{ObjectKey, SortKey, State};
use alustan_shared::Terraform;

/// Below this many columns the MESSAGE column is dropped rather than squeezed to nothing.
const MIN_MESSAGE: u16 = 12;

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let block = frame_block(&title(state));
    let inner = block.inner(area);
    if state.rows.is_empty() {
        let text = if !state.synced && state.error.is_some() {
            "No data: see the error above.".to_owned()
        } else if !state.synced {
            "Loading Terraform resources…".to_owned()
        } else if state.objects.is_empty() {
            let scope =
                state.header.namespace.as_deref().map_or("any namespace".to_owned(), |ns| format!("namespace {ns}"));
            format!("No Terraform resources in {scope}. `:ns all` looks everywhere.")
        } else {
            format!("Nothing matches the filter `{}` (Esc clears it).", state.filter)
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let height = usize::from(inner.height.saturating_sub(1)); // minus the column header
    let offset = state.visible_offset(height);
    let visible = &state.rows[offset..(offset + height).min(state.rows.len())];
    let show_namespace = state.header.namespace.is_none();

    let objects: Vec<_> = visible.iter().filter_map(|key| Some((key, state.object(key)?))).collect();
    // Columns as wide as their widest visible value, within bounds.
    let widest = |len: &dyn Fn(&(&ObjectKey, &Terraform)) -> usize, min: usize, max: usize| {
        u16::try_from(objects.iter().map(len).max().unwrap_or(0).clamp(min, max)).unwrap_or(u16::MAX)
    };
    let marks = |o: &Terraform| 2 * (usize::from(o.spec.suspend) + usize::from(plans::waiting(o)));
    let name_width = widest(&|(k, o)| k.name.chars().count() + marks(o), 4, 32);
    let state_width = widest(&|(_, o)| format::state_label(o).chars().count(), 11, 19);
    let ns_width = widest(&|(k, _)| k.namespace.chars().count(), 9, 16);
    let columns = |version_width: u16| {
        let mut widths = Vec::new();
        let mut headers = Vec::new();
        if show_namespace {
            widths.push(ns_width);
            headers.push("NAMESPACE");
        }
        widths.extend([name_width, state_width, version_width, 7, 6]);
        headers.extend(["NAME", "STATE", "VERSION", "READY", "AGE"]);
        let used: u16 = widths.iter().sum::<u16>() + u16::try_from(widths.len()).unwrap_or(0) + 2;
        (widths, headers, inner.width.saturating_sub(used) >= MIN_MESSAGE)
    };
    // VERSION names the tag being tried (`v1.0.1→v1.0.3`) unless that would push MESSAGE out.
    let (mut widths, mut headers, mut with_message) =
        columns(widest(&|(_, o)| format::version(o).chars().count(), 7, 14));
    let mut version: fn(&Terraform) -> String = format::version;
    if !with_message {
        (widths, headers, with_message) = columns(widest(&|(_, o)| format::applied(o).chars().count(), 7, 14));
        version = |o| format::applied(o).to_owned();
    }
    if with_message {
        headers.push("MESSAGE");
    }

    let rows = objects.iter().map(|(key, object)| {
        let state_text = format::state_label(object);
        let mut cells = Vec::with_capacity(7);
        if show_namespace {
            cells.push(Cell::from(key.namespace.clone()));
        }
        let suspended = if object.spec.suspend { " ⏸" } else { "" };
        // A plan waiting for approval: `a` approves it.
        let waiting = if plans::waiting(object) { " ●" } else { "" };
        cells.push(Cell::from(format!("{}{suspended}{waiting}", key.name)));
        let style = state_style(&state_text);
        cells.push(Cell::from(state_text).style(style));
        cells.push(Cell::from(version(object)));
        cells.push(Cell::from(format::ready(object).to_owned()));
        cells.push(Cell::from(format::age_of(object, state.now)));
        if with_message {
            cells.push(Cell::from(format::message(object)));
        }
        let row = Row::new(cells);
        if state.recently_changed(key) { row.style(Style::new().bg(Color::Rgb(60, 60, 0))) } else { row }
    });
    let mut constraints: Vec<Constraint> = widths.into_iter().map(Constraint::Length).collect();
    if with_message {
        constraints.push(Constraint::Fill(1));
    }
    let header = Row::new(headers).style(Style::new().fg(Color::White).add_modifier(Modifier::BOLD));
    let table = Table::new(rows, constraints)
        .header(header)
        .block(block)
        .column_spacing(1)
        .highlight_symbol(Line::from("▶ "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut table_state = TableState::default().with_selected(Some(state.selected.saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn title(state: &State) -> String {
    let scope = state.header.namespace.as_deref().unwrap_or("all");
    let arrow = if state.sort_descending { "↑" } else { "↓" };
    let sort = match state.sort {
        SortKey::Name => "name",
        SortKey::Age => "age",
        SortKey::State => "state",
    };
    let filter = if state.filter.is_empty() { String::new() } else { format!(" </{}>", state.filter) };
    format!("Terraforms({scope})[{}/{}]{filter} sort:{sort}{arrow}", state.rows.len(), state.objects.len())
}

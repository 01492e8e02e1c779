//! The outputs and credentials views.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{frame_block, missing, scrolled_text};
use crate::tui::format;
use crate::tui::state::State;

/// What a password looks like until the user asks to see it.
pub const MASK: &str = "********";

fn header(names: &[&'static str]) -> Row<'static> {
    Row::new(names.to_vec()).style(Style::new().fg(Color::White).add_modifier(Modifier::BOLD))
}

/// Outputs as text lines (not a table) so long values wrap under the VALUE column.
pub fn draw_outputs(frame: &mut Frame, area: Rect, state: &State) {
    let Some((key, object)) = state.target().and_then(|k| Some((k, state.object(k)?))) else {
        return missing(frame, area, "Outputs");
    };
    let status = object.status.as_ref();
    let rows = status.map(format::output_rows).unwrap_or_default();
    let name_width = rows.iter().map(|(name, _, _)| name.chars().count()).max().unwrap_or(0).clamp(4, 28) + 2;
    let mut lines = Vec::new();
    if rows.is_empty() {
        lines.push(Line::from("No outputs yet: they appear after a successful deploy."));
    } else {
        let bold = Style::new().fg(Color::White).add_modifier(Modifier::BOLD);
        lines.push(Line::from(vec![
            Span::styled(format!("{:<name_width$}{:<13}", "NAME", "FROM"), bold),
            Span::styled("VALUE", bold),
        ]));
        for (name, from, value) in rows {
            lines.push(Line::from(vec![Span::raw(format!("{name:<name_width$}{from:<13}")), Span::raw(value)]));
        }
    }
    lines.push(Line::default());
    let note = match status.and_then(|s| s.sensitive_outputs_secret.as_deref()) {
        Some(secret) => format!(
            "Sensitive outputs are in Secret {secret}, not shown here (`kubectl alustan outputs {} --show-sensitive`).",
            key.name
        ),
        None => "No sensitive outputs.".to_owned(),
    };
    lines.push(Line::styled(note, Style::new().fg(Color::DarkGray)));
    scrolled_text(frame, area, &format!("Outputs({key})"), lines, state.view().scroll);
}

pub fn draw_credentials(frame: &mut Frame, area: Rect, state: &State) {
    let Some((key, object)) = state.target().and_then(|k| Some((k, state.object(k)?))) else {
        return missing(frame, area, "Credentials");
    };
    let block = frame_block(&format!("Credentials({key})"));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let credentials = object.status.as_ref().map(|s| &s.credentials);
    let [table_area, note_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
    let Some(credentials) = credentials.filter(|c| !c.is_empty()) else {
        frame.render_widget(Paragraph::new("No credentials: the deploy reported none."), table_area);
        return;
    };
    let rows = credentials.iter().map(|(name, cred)| {
        let secret = &cred.password_secret_ref;
        let password = match &state.revealed {
            Some(r) if r.object == *key && r.credential == *name => r.value.clone(),
            _ => MASK.to_owned(),
        };
        Row::new(vec![
            Cell::from(name.clone()),
            Cell::from(cred.username.clone()),
            Cell::from(password),
            Cell::from(format!("{}/{}[{}]", secret.namespace, secret.name, secret.key)),
        ])
    });
    let password_width = state.revealed.as_ref().map_or(8, |r| r.value.chars().count()).clamp(8, 40);
    let widths = [
        Constraint::Length(14),
        Constraint::Length(14),
        Constraint::Length(u16::try_from(password_width).unwrap_or(8)),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header(&["NAME", "USERNAME", "PASSWORD", "SECRET"]))
        .highlight_symbol("▶ ")
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut table_state = TableState::default().with_selected(Some(state.credential));
    frame.render_stateful_widget(table, table_area, &mut table_state);
    let note = "r reveals the selected password after a confirmation; it is read with your own RBAC and hidden again when you leave.";
    frame.render_widget(
        Paragraph::new(note).wrap(Wrap { trim: true }).style(Style::new().fg(Color::DarkGray)),
        note_area,
    );
}

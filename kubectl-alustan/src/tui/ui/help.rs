//! The `?` page, generated from the key table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::{key_style, scrolled_text};
use crate::tui::keys;
use crate::tui::state::State;

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let mut lines = Vec::new();
    for (title, bindings) in keys::help_sections() {
        lines.push(Line::from(Span::styled(title, Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))));
        for binding in bindings {
            let labels = keys::labels(binding.command, binding.scope).join("/");
            let mut spans = vec![Span::styled(format!("  {labels:<12}"), key_style()), Span::raw(binding.help)];
            if binding.mutating && state.readonly {
                spans.push(Span::raw("  [disabled: --readonly]"));
            }
            lines.push(Line::from(spans));
        }
        lines.push(Line::default());
    }
    scrolled_text(frame, area, "Help (j/k scroll, Esc back)", lines, state.view().scroll);
}

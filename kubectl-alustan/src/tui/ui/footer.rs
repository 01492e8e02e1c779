//! The bottom line: the input being typed, else a flash message, else key hints.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::key_style;
use crate::tui::keys::{self, Focus};
use crate::tui::state::{FlashLevel, Input, State};

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let line = if let Some(input) = &state.input {
        let (prompt, text) = match input {
            Input::Filter(text) => ("/", text),
            Input::Command(text) => (":", text),
        };
        Line::from(vec![Span::styled(prompt, key_style()), Span::raw(text.clone()), Span::styled("▏", key_style())])
    } else if let Some(flash) = &state.flash {
        let style = match flash.level {
            FlashLevel::Info => Style::new().fg(Color::Green),
            FlashLevel::Warn => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        };
        Line::from(Span::styled(flash.text.clone(), style))
    } else {
        let focus = if state.confirm.is_some() { Focus::Modal } else { Focus::View(state.view().kind) };
        let hints: Vec<&keys::Binding> = keys::hints(focus, state.readonly).collect();
        let width = |b: &keys::Binding| b.label.chars().count() + b.hint.unwrap_or_default().chars().count() + 4;
        // Help and quit always show; the others in table order while they fit.
        let essential = |b: &keys::Binding| matches!(b.command, keys::Command::Help | keys::Command::Quit);
        let mut room =
            usize::from(area.width).saturating_sub(hints.iter().copied().filter(|b| essential(b)).map(width).sum());
        let mut spans = Vec::new();
        for binding in hints {
            if !essential(binding) {
                if width(binding) > room {
                    continue;
                }
                room -= width(binding);
            }
            spans.push(Span::styled(format!("<{}>", binding.label), key_style()));
            spans.push(Span::raw(format!(" {} ", binding.hint.unwrap_or_default())));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

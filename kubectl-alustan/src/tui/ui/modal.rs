//! The confirmation box drawn over everything else.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::key_style;

pub fn draw(frame: &mut Frame, area: Rect, question: &str) {
    let width = area.width.saturating_sub(4).min(72);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    // Rough wrapped height: enough for the question and the answer line.
    let lines = u16::try_from(question.chars().count().div_ceil(inner_width)).unwrap_or(1);
    let height = (lines + 4).min(area.height);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    let block =
        Block::bordered().title(" Confirm ").border_style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD));
    let text = vec![
        Line::from(question.to_owned()),
        Line::default(),
        Line::from(vec![
            Span::styled("<y>", key_style()),
            Span::raw(" yes   "),
            Span::styled("<n>", key_style()),
            Span::raw(" no"),
        ])
        .centered(),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), popup);
}

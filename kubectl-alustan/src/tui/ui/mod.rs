//! Rendering: every function here reads `&State` and draws; nothing mutates.

pub mod describe;
mod footer;
mod header;
mod help;
mod list;
mod modal;
mod outputs;
mod plan;
mod wrap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

use super::state::{State, ViewKind};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, state: &State) {
    let banner = u16::from(state.error.is_some());
    let [header_area, banner_area, body, footer_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header::draw(frame, header_area, state);
    if let Some(error) = &state.error {
        let style = Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD);
        frame.render_widget(
            Paragraph::new(format!(" ✖ {error}  (Esc in the list dismisses)")).style(style),
            banner_area,
        );
    }
    match state.view().kind {
        ViewKind::List => list::draw(frame, body, state),
        ViewKind::Describe => describe::draw_describe(frame, body, state),
        ViewKind::Yaml => describe::draw_yaml(frame, body, state),
        ViewKind::Logs => describe::draw_logs(frame, body, state),
        ViewKind::Outputs => outputs::draw_outputs(frame, body, state),
        ViewKind::Credentials => outputs::draw_credentials(frame, body, state),
        ViewKind::Plan => plan::draw(frame, body, state),
        ViewKind::Help => help::draw(frame, body, state),
    }
    footer::draw(frame, footer_area, state);
    if let Some(confirm) = &state.confirm {
        modal::draw(frame, frame.area(), &confirm.question);
    }
}

/// The bordered box every view is drawn in, titled k9s style: `Describe(infra/staging)`.
fn frame_block(title: &str) -> Block<'static> {
    Block::bordered()
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::from(format!(" {title} ")).style(Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)))
}

/// Draws scrollable text in a box; the scroll is clamped so the last page stays full.
fn scrolled_text(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, scroll: u16) {
    let inner = frame_block(title).inner(area);
    let lines: Vec<Line<'static>> =
        lines.into_iter().flat_map(|line| wrap::wrap(line, usize::from(inner.width).max(1))).collect();
    let total = lines.len();
    let max = total.saturating_sub(usize::from(inner.height));
    let scroll = usize::from(scroll).min(max);
    // Say where we are when the text does not fit, so hidden lines are not a surprise.
    let block = if max == 0 {
        frame_block(title)
    } else {
        let last = (scroll + usize::from(inner.height)).min(total);
        frame_block(&format!("{title} [{}-{last}/{total}]", scroll + 1))
    };
    let visible: Vec<Line<'static>> = lines.into_iter().skip(scroll).take(usize::from(inner.height)).collect();
    frame.render_widget(Paragraph::new(visible).block(block), area);
}

fn missing(frame: &mut Frame, area: Rect, title: &str) {
    let text = Paragraph::new("This resource is gone: it was deleted, or the watch lost it. Esc goes back.")
        .block(frame_block(title));
    frame.render_widget(text, area);
}

fn key_style() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

fn label_style() -> Style {
    Style::new().fg(Color::Cyan)
}

/// Terraform's colours for what a plan does to a resource.
fn action_style(action: Option<alustan_shared::PlanAction>) -> Style {
    use alustan_shared::PlanAction as A;
    match action {
        Some(A::Create) => Style::new().fg(Color::Green),
        Some(A::Update) => Style::new().fg(Color::Yellow),
        Some(A::Delete) => Style::new().fg(Color::Red),
        Some(A::Replace) => Style::new().fg(Color::Magenta),
        None => Style::new(),
    }
}

fn state_style(state: &str) -> Style {
    let state = state.strip_suffix(" (drifted)").unwrap_or(state);
    match state {
        "Completed" | "Success" => Style::new().fg(Color::Green),
        "Planned" => Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        "Progressing" => Style::new().fg(Color::Yellow),
        "Failed" | "Error" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::new().fg(Color::Gray),
    }
}

//! The Plan view: the latest plan of a resource, each changed address coloured by its action,
//! the run that made it, and the keys that decide it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::{action_style, key_style, missing, scrolled_text};
use crate::plans;
use crate::tui::state::State;

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let Some((key, object)) = state.target().and_then(|k| Some((k, state.object(k)?))) else {
        return missing(frame, area, "Plan");
    };
    let title = format!("Plan({key})");
    let plan = match plans::current(object) {
        Ok(plan) => plan,
        Err(refusal) => {
            let lines = refusal.to_string().lines().map(|l| Line::from(l.to_owned())).collect();
            return scrolled_text(frame, area, &title, lines, state.view().scroll);
        }
    };
    let mut lines: Vec<Line<'static>> = plans::lines(&key.name, plan, state.now, None)
        .into_iter()
        .map(|line| Line::styled(line.text, action_style(line.action)))
        .collect();
    lines.push(Line::default());
    let hint = |key: &'static str, what: &'static str| [Span::styled(key, key_style()), Span::raw(what)];
    let mut keys: Vec<Span<'static>> = hint("l", " opens the plan run's log")
        .into_iter()
        .chain(hint("   a", " approves"))
        .chain(hint("   x", " rejects (both ask first)"))
        .collect();
    if state.readonly {
        keys.truncate(2);
    }
    lines.push(Line::from(keys).style(Style::new().fg(Color::Gray)));
    scrolled_text(frame, area, &title, lines, state.view().scroll);
}

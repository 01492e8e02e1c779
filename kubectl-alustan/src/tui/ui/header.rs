//! The top line: where we are connected and how the agent is doing.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::label_style;
use crate::tui::state::{AgentHealth, State};

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let header = &state.header;
    let namespace = header.namespace.as_deref().unwrap_or("all");
    let agent = header.agent.short(state.now);
    let agent_style = match &header.agent {
        AgentHealth::Leader(leader) if leader.is_up(state.now) => Style::new().fg(Color::Green),
        AgentHealth::Leader(_) => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::new().fg(Color::Yellow),
    };
    let mut spans = vec![
        Span::styled(" alustan ", Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::styled(" ctx:", label_style()),
        Span::raw(header.context.clone()),
    ];
    // Most kubeconfigs name the cluster after the context: say it once.
    if header.cluster != header.context {
        spans.extend([Span::styled(" cluster:", label_style()), Span::raw(header.cluster.clone())]);
    }
    spans.extend([
        Span::styled(" ns:", label_style()),
        Span::raw(namespace.to_owned()),
        Span::styled(" agent: ", label_style()),
        Span::styled(agent, agent_style),
    ]);
    let waiting = state.objects.values().filter(|o| crate::plans::waiting(o)).count();
    if waiting > 0 {
        let plans = if waiting == 1 { "plan" } else { "plans" };
        let style = Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD);
        spans.push(Span::styled(format!(" {waiting} {plans} waiting"), style));
    }
    if state.readonly {
        spans.push(Span::styled(" [readonly]", Style::new().fg(Color::Magenta)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

//! Shared helpers for the TUI tests: states built from the fixtures, key presses, rendering.
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kubectl_alustan::agent::Leader;
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::fixtures::{self, NOW};
use kubectl_alustan::tui::state::{AgentHealth, Header, State};
use kubectl_alustan::tui::update::{Effect, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub fn header() -> Header {
    Header { context: "kind-alustan".to_owned(), cluster: "kind-alustan".to_owned(), namespace: None, agent: leader(2) }
}

/// The agent's Lease as the agent keeps it (held, 15 s), last renewed `renewed_ago` s before NOW.
pub fn leader(renewed_ago: i64) -> AgentHealth {
    AgentHealth::Leader(Leader {
        namespace: "alustan-system".to_owned(),
        lease: "alustan-agent".to_owned(),
        holder: Some("alustan-agent-7d9f-x2".to_owned()),
        renewed: Some(NOW - jiff::SignedDuration::from_secs(renewed_ago)),
        duration: jiff::SignedDuration::from_secs(15),
    })
}

/// A synced state holding `objects`, sized for a `width`×`height` terminal.
pub fn state_of(objects: Vec<alustan_shared::Terraform>, readonly: bool) -> State {
    let mut state = State::new(header(), readonly, NOW);
    update(&mut state, Action::Resize { width: 80, height: 24 });
    update(&mut state, Action::InitialListStarted);
    for object in objects {
        update(&mut state, Action::Applied(Box::new(object)));
    }
    update(&mut state, Action::InitialListDone);
    state
}

/// The four samples, sorted by name: apps/analytics, apps/payments-db, infra/network,
/// infra/staging-cluster.
pub fn samples() -> State {
    state_of(fixtures::samples(), false)
}

pub fn char_key(ch: char) -> Action {
    let modifiers = if ch.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE };
    Action::Key(KeyEvent::new(KeyCode::Char(ch), modifiers))
}

pub fn code(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(ch: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::CONTROL))
}

pub fn press(state: &mut State, action: Action) -> Vec<Effect> {
    update(state, action)
}

pub fn type_text(state: &mut State, text: &str) {
    for ch in text.chars() {
        assert!(update(state, char_key(ch)).is_empty());
    }
}

/// Selects the row showing `name`.
pub fn select(state: &mut State, name: &str) {
    state.selected = state.rows.iter().position(|k| k.name == name).expect("row exists");
}

/// The screen as text, one line per terminal row.
pub fn render(state: &State, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| kubectl_alustan::tui::ui::draw(frame, state)).unwrap();
    terminal.backend().to_string()
}

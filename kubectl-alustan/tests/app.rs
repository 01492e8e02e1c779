//! The terminal loop on `TestBackend` with scripted events: keys reach `update`, effects that
//! need the cluster say they are not implemented, `q` ends the loop.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use kubectl_alustan::tui::app::{Events, run_loop};
use kubectl_alustan::tui::fixtures::NOW;
use kubectl_alustan::tui::state::ViewKind;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Scripted events; `None` entries are ticks. Running out is an error so a loop that fails
/// to quit fails the test instead of hanging.
struct Script(VecDeque<Option<Event>>);

impl Events for Script {
    fn next(&mut self, _timeout: Duration) -> io::Result<Option<Event>> {
        self.0.pop_front().ok_or_else(|| io::Error::other("script exhausted"))
    }
}

fn key(ch: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::NONE))
}

#[test]
fn keys_drive_the_loop_and_q_quits() {
    let mut state = common::samples();
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let mut script = Script(
        [
            Some(key('j')),
            None,
            Some(Event::Resize(100, 30)),
            Some(key('s')),
            Some(key('y')),
            Some(key('d')),
            Some(key('q')),
            Some(key('x')),
        ]
        .into(),
    );
    run_loop(&mut terminal, &mut script, &mut state, || NOW).unwrap();
    assert_eq!(script.0.len(), 1, "stopped at q");
    assert_eq!(state.view().kind, ViewKind::Describe);
    let flash = state.flash.clone().expect("the sync effect reports itself");
    assert!(flash.text.contains("not implemented yet: sync"), "{}", flash.text);
    let screen = terminal.backend().to_string();
    assert!(screen.contains("Describe(apps/payments-db)"), "{screen}");
}

#[test]
fn a_loop_that_never_quits_ends_with_the_input_error() {
    let mut state = common::samples();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let error = run_loop(&mut terminal, &mut Script([Some(key('j'))].into()), &mut state, || NOW).unwrap_err();
    assert!(error.to_string().contains("script exhausted"));
}

//! The terminal loop on `TestBackend` with scripted events: keys reach `update`, effects go to
//! the I/O and its answers come back as actions, `q` ends the loop.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::app::{Events, Io, run_loop};
use kubectl_alustan::tui::fixtures::NOW;
use kubectl_alustan::tui::state::{ObjectKey, ViewKind};
use kubectl_alustan::tui::update::Effect;
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

/// Records effects and answers each with a flash, as the live I/O does.
#[derive(Default)]
struct Recorder {
    effects: Vec<Effect>,
    replies: Vec<Action>,
}

impl Io for Recorder {
    fn poll(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.replies)
    }

    fn perform(&mut self, effect: Effect) {
        self.replies.push(Action::Flash(format!("done: {effect:?}")));
        self.effects.push(effect);
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
    let mut io = Recorder::default();
    run_loop(&mut terminal, &mut script, &mut state, || NOW, &mut io).unwrap();
    assert_eq!(script.0.len(), 1, "stopped at q");
    assert_eq!(state.view().kind, ViewKind::Describe);
    let payments = ObjectKey::new("apps", "payments-db");
    assert_eq!(io.effects, vec![Effect::RequestSync(payments.clone()), Effect::LoadEvents(payments)]);
    let flash = state.flash.clone().expect("the I/O's answer reaches the state");
    assert!(flash.text.contains("done: LoadEvents"), "{}", flash.text);
    let screen = terminal.backend().to_string();
    assert!(screen.contains("Describe(apps/payments-db)"), "{screen}");
}

#[test]
fn a_loop_that_never_quits_ends_with_the_input_error() {
    let mut state = common::samples();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let error =
        run_loop(&mut terminal, &mut Script([Some(key('j'))].into()), &mut state, || NOW, &mut Recorder::default())
            .unwrap_err();
    assert!(error.to_string().contains("script exhausted"));
}

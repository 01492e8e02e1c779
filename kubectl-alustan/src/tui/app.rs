//! The terminal loop: read events, run `update`, perform effects, draw. The loop is generic
//! over the backend and the event source so tests can run it on `TestBackend` with scripted keys.

use std::io;
use std::time::Duration;

use crossterm::event::{self, Event};
use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::Backend;

use super::action::Action;
use super::state::{Header, State};
use super::ui::draw;
use super::update::{Effect, update};

/// How often the clock ticks when nothing happens (ages, flash expiry, highlights).
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot set up the terminal (is this an interactive terminal?): {0}")]
    Setup(#[source] io::Error),
    #[error("reading terminal input failed: {0}")]
    Input(#[source] io::Error),
    #[error("drawing the screen failed: {0}")]
    Draw(String),
}

/// Where terminal events come from.
pub trait Events {
    /// The next event, or `None` when `timeout` passes without one.
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>>;
}

/// The real terminal's events.
pub struct CrosstermEvents;

impl Events for CrosstermEvents {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        if event::poll(timeout)? { event::read().map(Some) } else { Ok(None) }
    }
}

/// Runs the TUI on the real terminal until the user quits. The terminal is restored on every
/// exit path; `ratatui::try_init` also restores it when the process panics.
pub fn run(header: Header, readonly: bool) -> Result<(), AppError> {
    let mut state = State::new(header, readonly, Timestamp::now());
    // Honest about what is missing: there is no watch yet, so no data.
    update(
        &mut state,
        Action::Error(
            "not connected: the cluster watch is not implemented yet (coming with the plugin's cluster I/O)".into(),
        ),
    );
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            ratatui::restore();
            return Err(AppError::Setup(error));
        }
    };
    let result = run_loop(&mut terminal, &mut CrosstermEvents, &mut state, Timestamp::now);
    ratatui::restore();
    result
}

/// Draws, waits for an event (or a tick), updates, performs effects; returns on `Quit`.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    events: &mut impl Events,
    state: &mut State,
    clock: impl Fn() -> Timestamp,
) -> Result<(), AppError> {
    let size = terminal.size().map_err(|e| AppError::Draw(e.to_string()))?;
    update(state, Action::Resize { width: size.width, height: size.height });
    loop {
        terminal.draw(|frame| draw(frame, state)).map_err(|e| AppError::Draw(e.to_string()))?;
        let action = match events.next(TICK).map_err(AppError::Input)? {
            Some(Event::Key(key)) => Action::Key(key),
            Some(Event::Resize(width, height)) => Action::Resize { width, height },
            Some(_) => continue,
            None => Action::Tick(clock()),
        };
        for effect in update(state, action) {
            tracing::debug!(?effect, "effect");
            if effect == Effect::Quit {
                return Ok(());
            }
            let text = format!("not implemented yet: {} (coming with the plugin's cluster I/O)", effect_name(&effect));
            update(state, Action::Flash(text));
        }
    }
}

fn effect_name(effect: &Effect) -> &'static str {
    match effect {
        Effect::RequestSync(_) => "sync",
        Effect::RequestResync(_) => "resync",
        Effect::SetSuspend { suspend: true, .. } => "suspend",
        Effect::SetSuspend { suspend: false, .. } => "resume",
        Effect::RevealSecret { .. } => "reveal",
        Effect::StartLogs { .. } | Effect::StopLogs => "logs",
        Effect::SwitchNamespace(_) => "switching namespace",
        Effect::Quit => "quit",
    }
}

//! The terminal loop: read events, run `update`, perform effects, draw. The loop is generic
//! over the backend and the event source so tests can run it on `TestBackend` with scripted keys.

use std::io;
use std::time::Duration;

use crossterm::event::{self, Event};
use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::Backend;

use super::action::Action;
use super::state::State;
use super::ui::draw;
use super::update::{Effect, update};

/// How often the clock ticks when nothing happens (ages, flash expiry, highlights). It also
/// bounds how long data from the watch waits before it is drawn (the loop blocks on the
/// terminal between ticks), so it is short; ratatui redraws only changed cells.
const TICK: Duration = Duration::from_millis(100);

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

/// Cluster I/O seen from the loop: actions from the watch and effect tasks come in, effects
/// go out. Keeping it behind a trait lets tests run the loop without a cluster.
pub trait Io {
    /// The actions that arrived since the last call; never blocks.
    fn poll(&mut self) -> Vec<Action>;
    /// Starts an effect; its outcome comes back as actions through [`Io::poll`].
    fn perform(&mut self, effect: Effect);
}

/// Runs the TUI on the real terminal until the user quits. The terminal is restored on every
/// exit path; `ratatui::try_init` also restores it when the process panics.
pub fn run(state: &mut State, io: &mut impl Io) -> Result<(), AppError> {
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            ratatui::restore();
            return Err(AppError::Setup(error));
        }
    };
    let result = run_loop(&mut terminal, &mut CrosstermEvents, state, Timestamp::now, io);
    ratatui::restore();
    result
}

/// Draws, applies what the I/O sent, waits for an event (or a tick), updates, performs
/// effects; returns on `Quit`.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    events: &mut impl Events,
    state: &mut State,
    clock: impl Fn() -> Timestamp,
    io: &mut impl Io,
) -> Result<(), AppError> {
    let size = terminal.size().map_err(|e| AppError::Draw(e.to_string()))?;
    update(state, Action::Resize { width: size.width, height: size.height });
    loop {
        for action in coalesce(io.poll()) {
            if perform(update(state, action), io) {
                return Ok(());
            }
        }
        terminal.draw(|frame| draw(frame, state)).map_err(|e| AppError::Draw(e.to_string()))?;
        let action = match events.next(TICK).map_err(AppError::Input)? {
            Some(Event::Key(key)) => Action::Key(key),
            Some(Event::Resize(width, height)) => Action::Resize { width, height },
            Some(_) => continue,
            None => Action::Tick(clock()),
        };
        if perform(update(state, action), io) {
            return Ok(());
        }
    }
}

/// Folds each run of consecutive `Applied` actions into one `AppliedAll`, so a burst of watch
/// events rebuilds the rows once, not once per event; everything else keeps its order.
pub fn coalesce(actions: Vec<Action>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::with_capacity(actions.len());
    for action in actions {
        match (out.last_mut(), action) {
            (Some(Action::AppliedAll(batch)), Action::Applied(object)) => batch.push(*object),
            (_, Action::Applied(object)) => out.push(Action::AppliedAll(vec![*object])),
            (_, action) => out.push(action),
        }
    }
    out
}

/// Hands effects to the I/O; true when one of them is `Quit`.
fn perform(effects: Vec<Effect>, io: &mut impl Io) -> bool {
    for effect in effects {
        tracing::debug!(?effect, "effect");
        if effect == Effect::Quit {
            return true;
        }
        io.perform(effect);
    }
    false
}

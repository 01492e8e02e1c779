//! Everything that can happen to the TUI: keys from the terminal, events from the watch and
//! results of effects. Tasks doing I/O send these; [`super::update::update`] consumes them.

use alustan_shared::Terraform;
use crossterm::event::KeyEvent;
use jiff::Timestamp;

use super::state::{AgentHealth, ObjectKey};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A key press.
    Key(KeyEvent),
    /// The watch saw an object added or changed (boxed: a `Terraform` is large).
    Applied(Box<Terraform>),
    /// The watch saw several objects added or changed since the loop last looked (a burst):
    /// applied in order, the rows rebuilt once.
    AppliedAll(Vec<Terraform>),
    /// The watch saw an object deleted.
    Deleted(ObjectKey),
    /// The watch (re)started its initial listing; objects that do not reappear are gone.
    InitialListStarted,
    /// The initial listing is complete: the list is now authoritative.
    InitialListDone,
    /// A clock tick: expires flash messages and change highlights.
    Tick(Timestamp),
    /// The terminal was resized; the list's height sets what PgUp/PgDn move by.
    Resize { width: u16, height: u16 },
    /// A message for the footer.
    Flash(String),
    /// Something failed (watch, request): shown in the error banner until dismissed or recovered.
    Error(String),
    /// The agent's health, from its Lease (looked up every few seconds).
    AgentHealth(AgentHealth),
    /// The password of a credential, read after the user confirmed.
    SecretRevealed { object: ObjectKey, credential: String, value: String },
    /// A line of the followed run log.
    LogLine(String),
    /// The log stream ended.
    LogEnded,
    /// The Events of an object, folded per reason (for the describe view's Events pane).
    Events { object: ObjectKey, events: Vec<crate::events::Folded> },
}

//! The terminal UI: actions in, a pure update, effects out, rendering from the state alone.

pub mod action;
pub mod app;
pub mod fixtures;
pub mod format;
pub mod keys;
pub mod live;
pub mod state;
pub mod ui;
pub mod update;

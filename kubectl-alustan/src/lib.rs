//! `kubectl alustan`: the command line and the terminal UI's pure core.
//!
//! The TUI follows an Elm-like split so it can be tested without a terminal or a cluster:
//! [`tui::action::Action`]s (keys, watch events) go through a pure [`tui::update::update`] that
//! changes [`tui::state::State`] and returns [`tui::update::Effect`]s (cluster I/O to perform),
//! and [`tui::ui::draw`] renders from the state alone.

pub mod agent;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod errors;
pub mod events;
pub mod kube_client;
pub mod logging;
pub mod outlook;
pub mod output;
pub mod plans;
pub mod tui;

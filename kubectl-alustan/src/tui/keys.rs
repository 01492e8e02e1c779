//! The ONE key table. The key handler looks keys up here, and the help page and the footer
//! hints are generated from it, so they cannot disagree.

use std::fmt::Write as _;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::ViewKind;

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Help,
    Filter,
    Prompt,
    Describe,
    Yaml,
    Outputs,
    Credentials,
    Logs,
    Sync,
    Resync,
    ToggleSuspend,
    /// The Plan view of the resource; approve or reject its current plan (asking first).
    Plan,
    Approve,
    Reject,
    /// In the Plan view: the plan run's log.
    PlanLog,
    Reveal,
    Back,
    Quit,
    ForceQuit,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    SortName,
    SortAge,
    SortState,
    /// In the logs view: the run before / after the one shown.
    OlderRun,
    NewerRun,
    /// In the confirm modal.
    Confirm,
    Cancel,
    /// While typing a filter or command.
    InputApply,
    InputCancel,
    InputDelete,
}

/// When a key applies: in some views, in the confirm modal or while typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every view (not while a modal or the input line has focus).
    Everywhere,
    Views(&'static [ViewKind]),
    Modal,
    Input,
    /// Always, even in a modal or while typing.
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
    /// How the key is written in help and hints.
    pub label: &'static str,
    pub command: Command,
    pub help: &'static str,
    pub scope: Scope,
    /// Changes the cluster: disabled by `--readonly`.
    pub mutating: bool,
    /// The short word shown in the footer hints, for the keys worth a hint.
    pub hint: Option<&'static str>,
}

const LIST: &[ViewKind] = &[ViewKind::List];
const OBJECT: &[ViewKind] = &[ViewKind::List, ViewKind::Describe];
const CREDENTIALS: &[ViewKind] = &[ViewKind::Credentials];
const LOGS: &[ViewKind] = &[ViewKind::Logs];
const PLANS: &[ViewKind] = &[ViewKind::List, ViewKind::Describe, ViewKind::Plan];
const PLAN: &[ViewKind] = &[ViewKind::Plan];

const NONE: KeyModifiers = KeyModifiers::NONE;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

const fn key(code: KeyCode, label: &'static str, command: Command, help: &'static str, scope: Scope) -> Binding {
    Binding { code, modifiers: NONE, label, command, help, scope, mutating: false, hint: None }
}

const fn hint(word: &'static str, binding: Binding) -> Binding {
    Binding { hint: Some(word), ..binding }
}

const fn mutating(binding: Binding) -> Binding {
    Binding { mutating: true, ..binding }
}

const fn with(modifiers: KeyModifiers, binding: Binding) -> Binding {
    Binding { modifiers, ..binding }
}

use Command as C;
use KeyCode as K;
use Scope as S;

const RESYNC: &str = "resync: rescan the registry, then run (asks first)";
const SUSPEND: &str = "suspend or resume (asks first)";
const APPROVE: &str = "approve the current plan: it is applied (asks first, repeating the counts)";
const REJECT: &str = "reject the current plan: nothing is applied (asks first)";

/// Every key binding of the TUI, in help-page order.
pub const KEYS: &[Binding] = &[
    hint("help", key(K::Char('?'), "?", C::Help, "help: this page", S::Everywhere)),
    hint("filter", key(K::Char('/'), "/", C::Filter, "filter by name, namespace, state or version", S::Views(LIST))),
    key(K::Char(':'), ":", C::Prompt, "command: `ns NAME`, `ns all`, `q`", S::Everywhere),
    hint("describe", key(K::Enter, "Enter", C::Describe, "describe the selected resource", S::Views(LIST))),
    key(K::Char('d'), "d", C::Describe, "describe the selected resource", S::Views(OBJECT)),
    hint("yaml", key(K::Char('y'), "y", C::Yaml, "YAML of the resource", S::Views(OBJECT))),
    hint("outputs", key(K::Char('o'), "o", C::Outputs, "terraform outputs", S::Views(OBJECT))),
    hint("creds", key(K::Char('c'), "c", C::Credentials, "credentials (masked)", S::Views(OBJECT))),
    hint(
        "logs",
        key(K::Char('l'), "l", C::Logs, "logs of the latest run (follows on to the next run)", S::Views(OBJECT)),
    ),
    hint("sync", mutating(key(K::Char('s'), "s", C::Sync, "sync: run now (asks first)", S::Views(OBJECT)))),
    hint("resync", with(SHIFT, mutating(key(K::Char('S'), "S", C::Resync, RESYNC, S::Views(OBJECT))))),
    hint("suspend", mutating(key(K::Char(' '), "Space", C::ToggleSuspend, SUSPEND, S::Views(OBJECT)))),
    hint(
        "plan",
        key(K::Char('p'), "p", C::Plan, "the latest plan: counts, changed addresses, its run", S::Views(PLANS)),
    ),
    hint("approve", mutating(key(K::Char('a'), "a", C::Approve, APPROVE, S::Views(PLANS)))),
    hint("reject", mutating(key(K::Char('x'), "x", C::Reject, REJECT, S::Views(PLANS)))),
    hint("plan log", key(K::Char('l'), "l", C::PlanLog, "log of the plan run", S::Views(PLAN))),
    hint(
        "reveal",
        key(K::Char('r'), "r", C::Reveal, "reveal the selected password (asks first)", S::Views(CREDENTIALS)),
    ),
    hint("older run", key(K::Char('['), "[", C::OlderRun, "the run before this one (its log)", S::Views(LOGS))),
    hint("newer run", key(K::Char(']'), "]", C::NewerRun, "the run after this one (its log)", S::Views(LOGS))),
    with(SHIFT, key(K::Char('N'), "N", C::SortName, "sort by name (again: reverse)", S::Views(LIST))),
    with(SHIFT, key(K::Char('A'), "A", C::SortAge, "sort by age, newest first (again: reverse)", S::Views(LIST))),
    with(SHIFT, key(K::Char('T'), "T", C::SortState, "sort by state, failures first (again: reverse)", S::Views(LIST))),
    key(K::Char('j'), "j", C::Down, "down", S::Everywhere),
    key(K::Down, "Down", C::Down, "down", S::Everywhere),
    key(K::Char('k'), "k", C::Up, "up", S::Everywhere),
    key(K::Up, "Up", C::Up, "up", S::Everywhere),
    key(K::PageDown, "PgDn", C::PageDown, "page down", S::Everywhere),
    key(K::PageUp, "PgUp", C::PageUp, "page up", S::Everywhere),
    key(K::Home, "Home", C::Top, "first row / top", S::Everywhere),
    key(K::End, "End", C::Bottom, "last row / bottom", S::Everywhere),
    hint("back", key(K::Esc, "Esc", C::Back, "back (in the list: clear the filter)", S::Everywhere)),
    hint("quit", key(K::Char('q'), "q", C::Quit, "quit", S::Everywhere)),
    with(KeyModifiers::CONTROL, key(K::Char('c'), "Ctrl-c", C::ForceQuit, "quit, from anywhere", S::Always)),
    hint("yes", key(K::Char('y'), "y", C::Confirm, "confirm", S::Modal)),
    key(K::Enter, "Enter", C::Confirm, "confirm", S::Modal),
    hint("no", key(K::Char('n'), "n", C::Cancel, "cancel", S::Modal)),
    key(K::Esc, "Esc", C::Cancel, "cancel", S::Modal),
    hint("apply", key(K::Enter, "Enter", C::InputApply, "apply the filter / run the command", S::Input)),
    hint("clear", key(K::Esc, "Esc", C::InputCancel, "clear the filter / drop the command", S::Input)),
    key(K::Backspace, "Backspace", C::InputDelete, "delete a character", S::Input),
];

/// Which keys have focus: a modal, the input line, or the current view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    View(ViewKind),
    Modal,
    Input,
}

impl Binding {
    pub fn applies(&self, focus: Focus) -> bool {
        match (self.scope, focus) {
            (S::Always, _) | (S::Everywhere, Focus::View(_)) | (S::Modal, Focus::Modal) | (S::Input, Focus::Input) => {
                true
            }
            (S::Views(views), Focus::View(view)) => views.contains(&view),
            _ => false,
        }
    }

    fn matches(&self, event: &KeyEvent) -> bool {
        // Terminals disagree on reporting SHIFT with upper-case letters: compare chars alone.
        let modifiers = match event.code {
            K::Char(_) => event.modifiers - SHIFT,
            _ => event.modifiers,
        };
        event.code == self.code && modifiers == self.modifiers - SHIFT
    }
}

/// The binding for a key press in the given focus, if any.
pub fn lookup(event: &KeyEvent, focus: Focus) -> Option<&'static Binding> {
    KEYS.iter().find(|binding| binding.applies(focus) && binding.matches(event))
}

/// The bindings to list in the footer for a view (`--readonly` hides the mutating ones).
pub fn hints(focus: Focus, readonly: bool) -> impl Iterator<Item = &'static Binding> {
    KEYS.iter().filter(move |b| b.hint.is_some() && b.applies(focus) && !(readonly && b.mutating))
}

/// The help page's sections: a title and the bindings that apply there, one line per command.
pub fn help_sections() -> Vec<(&'static str, Vec<&'static Binding>)> {
    let section = |title, pred: &dyn Fn(&Binding) -> bool| {
        let mut seen = Vec::new();
        let mut out: Vec<&'static Binding> = Vec::new();
        for binding in KEYS.iter().filter(|b| pred(b)) {
            // One line per command and scope: `j`/`Down` share a line in the renderer.
            if !seen.contains(&(binding.command, binding.help)) {
                seen.push((binding.command, binding.help));
                out.push(binding);
            }
        }
        (title, out)
    };
    vec![
        section("Everywhere", &|b| matches!(b.scope, S::Everywhere | S::Always)),
        section("List", &|b| matches!(b.scope, S::Views(v) if v == LIST)),
        section("List and describe", &|b| matches!(b.scope, S::Views(v) if v == OBJECT)),
        section("Plans (list, describe, plan)", &|b| matches!(b.scope, S::Views(v) if v == PLANS)),
        section("Plan", &|b| matches!(b.scope, S::Views(v) if v == PLAN)),
        section("Credentials", &|b| matches!(b.scope, S::Views(v) if v == CREDENTIALS)),
        section("Logs", &|b| matches!(b.scope, S::Views(v) if v == LOGS)),
        section("Confirmation", &|b| b.scope == S::Modal),
        section("Filter and command line", &|b| b.scope == S::Input),
    ]
}

/// All labels of the keys bound to `command` in `scope` (`j`, `Down`).
pub fn labels(command: Command, scope: Scope) -> Vec<&'static str> {
    KEYS.iter().filter(|b| b.command == command && b.scope == scope).map(|b| b.label).collect()
}

/// The key table as Markdown, for the plugin's README (a test keeps the README in sync).
pub fn markdown() -> String {
    let mut out = String::from("| Keys | Where | What |\n|---|---|---|\n");
    for (title, bindings) in help_sections() {
        for binding in bindings {
            let keys: Vec<String> =
                labels(binding.command, binding.scope).iter().map(|label| format!("`{label}`")).collect();
            let readonly = if binding.mutating { " — disabled by `--readonly`" } else { "" };
            // Writing to a String cannot fail.
            let _ = writeln!(out, "| {} | {title} | {}{readonly} |", keys.join(" "), binding.help.replace('|', "\\|"));
        }
    }
    out
}

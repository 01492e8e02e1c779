//! The pure heart of the TUI: `update(&mut State, Action) -> Vec<Effect>`. No I/O here; the
//! effects say what the caller must do (patch an annotation, read a Secret, stream a log).

use alustan_shared::Terraform;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::action::Action;
use super::keys::{self, Command, Focus};
use super::state::{
    Confirm, FLASH_FOR, Flash, FlashLevel, Input, MAX_LOG_LINES, ObjectKey, Revealed, SortKey, State, View, ViewKind,
};

/// I/O for the caller to perform; results come back as actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Set the resync annotation: run now.
    RequestSync(ObjectKey),
    /// Set the rescan annotation (and the resync one): rescan the registry, then run.
    RequestResync(ObjectKey),
    /// Patch `spec.suspend`.
    SetSuspend {
        object: ObjectKey,
        suspend: bool,
    },
    /// Approve or reject plan `plan` (the id the user confirmed), through the command line's
    /// checks: a plan superseded meanwhile is refused.
    Verdict {
        object: ObjectKey,
        verdict: crate::plans::Verdict,
        plan: String,
    },
    /// Read one credential's Secret key with the user's RBAC; answer with `SecretRevealed`.
    RevealSecret {
        object: ObjectKey,
        credential: String,
        secret: alustan_shared::SecretKeyReference,
    },
    /// Stream the pod log of the run `job`; answer with `LogLine`s and `LogEnded`.
    StartLogs {
        object: ObjectKey,
        job: String,
        follow: bool,
    },
    /// Stop the log stream.
    StopLogs,
    /// Restart the watch in another namespace (`None`: all namespaces).
    SwitchNamespace(Option<String>),
    /// List an object's Events; answer with `Events`.
    LoadEvents(ObjectKey),
    Quit,
}

/// Applies an action to the state and returns the effects to perform.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Key(event) => on_key(state, event),
        Action::Applied(object) => {
            let key = ObjectKey::of(&object);
            let changed = applied(state, *object);
            if state.synced {
                state.refresh_rows();
            }
            follow_view(state, &key, changed)
        }
        Action::AppliedAll(objects) => {
            let mut effects = Vec::new();
            for object in objects {
                let key = ObjectKey::of(&object);
                let changed = applied(state, object);
                effects.extend(follow_view(state, &key, changed));
            }
            if state.synced {
                state.refresh_rows();
            }
            effects.dedup();
            effects
        }
        Action::Deleted(key) => {
            state.objects.remove(&key);
            state.changed.remove(&key);
            if state.synced {
                state.refresh_rows();
            }
            Vec::new()
        }
        Action::InitialListStarted => {
            state.relisted = Some(Vec::new());
            Vec::new()
        }
        Action::InitialListDone => {
            if let Some(seen) = state.relisted.take() {
                let seen: std::collections::HashSet<_> = seen.into_iter().collect();
                state.objects.retain(|key, _| seen.contains(key));
            }
            state.synced = true;
            state.error = None;
            state.refresh_rows();
            Vec::new()
        }
        Action::Tick(now) => {
            state.now = now;
            if state.flash.as_ref().is_some_and(|flash| flash.until <= now) {
                state.flash = None;
            }
            let (now, for_) = (state.now, super::state::HIGHLIGHT_FOR);
            state.changed.retain(|_, at| now.duration_since(*at) < for_);
            Vec::new()
        }
        Action::Resize { height, .. } => {
            // Header, banner, table header and footer take about six lines.
            state.page = usize::from(height.saturating_sub(6)).max(1);
            state.offset = state.visible_offset(state.page);
            Vec::new()
        }
        Action::Flash(text) => {
            flash(state, text, FlashLevel::Info);
            Vec::new()
        }
        Action::Error(text) => {
            state.error = Some(text);
            Vec::new()
        }
        Action::AgentHealth(health) => {
            state.header.agent = health;
            Vec::new()
        }
        Action::SecretRevealed { object, credential, value } => {
            // Only show it if the user is still looking at that object's credentials.
            let view = state.view();
            if view.kind == ViewKind::Credentials && view.object.as_ref() == Some(&object) {
                state.revealed = Some(Revealed { object, credential, value });
            }
            Vec::new()
        }
        Action::LogLine(line) => {
            if state.logs.lines.len() >= MAX_LOG_LINES {
                state.logs.lines.remove(0);
            }
            state.logs.lines.push(line);
            Vec::new()
        }
        Action::LogEnded => {
            state.logs.ended = true;
            next_run(state)
        }
        Action::Events { object, events } => {
            state.events = Some((object, events));
            Vec::new()
        }
    }
}

/// Stores a watched object; `true` when it changed after the initial listing.
fn applied(state: &mut State, object: Terraform) -> bool {
    let key = ObjectKey::of(&object);
    if let Some(seen) = state.relisted.as_mut() {
        seen.push(key.clone());
    }
    let old = state.objects.insert(key.clone(), object);
    // Rows that change after the initial listing are highlighted for a moment.
    let changed = state.synced && old.is_some_and(|old| Some(&old) != state.objects.get(&key));
    if changed {
        state.changed.insert(key, state.now);
    }
    // The caller rebuilds the rows once it has applied what came (never during the initial
    // listing: sorting 5,000 rows per event would be quadratic).
    changed
}

/// What the open view does when the object it shows (`key`) changed: describe reloads its
/// Events (a change often comes with one), logs move on to a newer run.
fn follow_view(state: &mut State, key: &ObjectKey, changed: bool) -> Vec<Effect> {
    let view = state.view();
    if !changed || view.object.as_ref() != Some(key) {
        return Vec::new();
    }
    match view.kind {
        ViewKind::Describe => vec![Effect::LoadEvents(key.clone())],
        ViewKind::Logs => next_run(state),
        _ => Vec::new(),
    }
}

pub fn flash(state: &mut State, text: impl Into<String>, level: FlashLevel) {
    state.flash = Some(Flash { text: text.into(), level, until: state.now + FLASH_FOR });
}

fn focus(state: &State) -> Focus {
    if state.confirm.is_some() {
        Focus::Modal
    } else if state.input.is_some() {
        Focus::Input
    } else {
        Focus::View(state.view().kind)
    }
}

fn on_key(state: &mut State, event: KeyEvent) -> Vec<Effect> {
    if event.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let focus = focus(state);
    let Some(binding) = keys::lookup(&event, focus) else {
        if let (Focus::Input, KeyCode::Char(ch)) = (focus, event.code) {
            type_char(state, ch);
        }
        return Vec::new();
    };
    if binding.mutating && state.readonly {
        let what = binding.help.split(':').next().unwrap_or(binding.help);
        flash(
            state,
            format!("read-only mode (--readonly): `{}` ({what}) is disabled", binding.label),
            FlashLevel::Warn,
        );
        return Vec::new();
    }
    run(state, binding.command)
}

fn type_char(state: &mut State, ch: char) {
    match state.input.as_mut() {
        Some(Input::Filter(text)) => {
            text.push(ch);
            // Filter as you type: the list narrows immediately.
            state.filter.clone_from(text);
            state.refresh_rows();
        }
        Some(Input::Command(text)) => text.push(ch),
        None => {}
    }
}

fn run(state: &mut State, command: Command) -> Vec<Effect> {
    match command {
        Command::Quit | Command::ForceQuit => {
            return vec![Effect::Quit];
        }
        Command::Help => push(state, ViewKind::Help, None),
        Command::Filter => state.input = Some(Input::Filter(state.filter.clone())),
        Command::Prompt => state.input = Some(Input::Command(String::new())),
        Command::Describe => return open(state, ViewKind::Describe),
        Command::Yaml => return open(state, ViewKind::Yaml),
        Command::Outputs => return open(state, ViewKind::Outputs),
        Command::Credentials => return open(state, ViewKind::Credentials),
        Command::Logs => return open(state, ViewKind::Logs),
        Command::Sync | Command::Resync => {
            let (agent, now, resync) = (state.header.agent.clone(), state.now, command == Command::Resync);
            ask(state, |key, object| {
                let question = crate::outlook::question(&key.to_string(), object, &agent, now, resync);
                (question, if resync { Effect::RequestResync(key) } else { Effect::RequestSync(key) })
            });
        }
        Command::ToggleSuspend => ask(state, |key, object| {
            let suspended = object.spec.suspend;
            let question = if suspended {
                match object.resume_runs() {
                    Some(why) => format!("Resume {key}? {why}."),
                    None => format!(
                        "Resume {key}? Nothing runs now: its inputs are unchanged since the last successful deploy."
                    ),
                }
            } else {
                format!("Suspend {key}? No runs (deploys, drift correction, resyncs) until resumed.")
            };
            (question, Effect::SetSuspend { object: key, suspend: !suspended })
        }),
        Command::Plan => return open(state, ViewKind::Plan),
        Command::Approve => verdict(state, crate::plans::Verdict::Approve),
        Command::Reject => verdict(state, crate::plans::Verdict::Reject),
        Command::PlanLog => return plan_log(state),
        Command::Reveal => reveal(state),
        Command::Back => return back(state),
        Command::Up => move_by(state, -1),
        Command::Down => move_by(state, 1),
        Command::PageUp => move_by(state, -page(state)),
        Command::PageDown => move_by(state, page(state)),
        Command::Top => move_by(state, isize::MIN / 2),
        Command::Bottom => move_by(state, isize::MAX / 2),
        Command::SortName => sort(state, SortKey::Name),
        Command::SortAge => sort(state, SortKey::Age),
        Command::SortState => sort(state, SortKey::State),
        Command::OlderRun => return pick_run(state, true),
        Command::NewerRun => return pick_run(state, false),
        Command::Confirm => {
            if let Some(confirm) = state.confirm.take() {
                return vec![confirm.effect];
            }
        }
        Command::Cancel => state.confirm = None,
        Command::InputApply => return apply_input(state),
        Command::InputCancel => {
            if let Some(Input::Filter(_)) = state.input {
                state.filter.clear();
                state.refresh_rows();
            }
            state.input = None;
        }
        Command::InputDelete => match state.input.as_mut() {
            Some(Input::Filter(text)) => {
                text.pop();
                state.filter.clone_from(text);
                state.refresh_rows();
            }
            Some(Input::Command(text)) => {
                text.pop();
            }
            None => {}
        },
    }
    Vec::new()
}

fn page(state: &State) -> isize {
    isize::try_from(state.page).unwrap_or(1)
}

fn push(state: &mut State, kind: ViewKind, object: Option<ObjectKey>) {
    state.views.push(View { kind, object, scroll: 0 });
}

/// Opens a view about the target object (the list's selection or the current view's object).
fn open(state: &mut State, kind: ViewKind) -> Vec<Effect> {
    let Some(key) = state.target().cloned() else {
        flash(state, "nothing selected", FlashLevel::Warn);
        return Vec::new();
    };
    state.credential = 0;
    state.revealed = None;
    push(state, kind, Some(key.clone()));
    if kind == ViewKind::Logs {
        return show_run(state, &key, 0);
    }
    if kind == ViewKind::Describe {
        // Never show another object's Events while this one's load.
        state.events = None;
        return vec![Effect::LoadEvents(key)];
    }
    Vec::new()
}

/// The history of the object a view is about (newest first).
fn history<'a>(state: &'a State, key: &ObjectKey) -> &'a [alustan_shared::RunRecord] {
    state.object(key).and_then(|o| o.status.as_ref()).map(|s| s.history.as_slice()).unwrap_or_default()
}

/// Shows the log of run `run` (0: the latest) from its start.
fn show_run(state: &mut State, key: &ObjectKey, run: usize) -> Vec<Effect> {
    let job = history(state, key).get(run).map(|r| r.job_name.clone());
    state.logs = super::state::Logs { run, job: job.clone(), ..super::state::Logs::default() };
    if let Some(view) = state.view_mut() {
        view.scroll = 0;
    }
    if let Some(job) = job {
        vec![Effect::StartLogs { object: key.clone(), job, follow: true }]
    } else {
        state.logs.ended = true;
        Vec::new()
    }
}

/// `[` / `]`: the run before or after the one shown.
fn pick_run(state: &mut State, older: bool) -> Vec<Effect> {
    let Some(key) = state.view().object.clone() else { return Vec::new() };
    let runs = history(state, &key).len();
    let shown = state.logs.job.as_ref().and_then(|job| history(state, &key).iter().position(|r| &r.job_name == job));
    let at = shown.unwrap_or(state.logs.run);
    let run = if older { (at + 1).min(runs.saturating_sub(1)) } else { at.saturating_sub(1) };
    if shown == Some(run) {
        flash(state, if older { "no older run recorded" } else { "this is the latest run" }, FlashLevel::Info);
        return Vec::new();
    }
    show_run(state, &key, run)
}

/// Following the latest run: once its log ended and a newer run started (the post-deploy after
/// the deploy, the next attempt), its log follows on, after a separator line.
fn next_run(state: &mut State) -> Vec<Effect> {
    let Some(key) = state.view().object.clone() else { return Vec::new() };
    let Some(newest) = history(state, &key).first() else { return Vec::new() };
    if !state.logs.ended || state.logs.run != 0 || state.logs.job.as_deref() == Some(newest.job_name.as_str()) {
        return Vec::new();
    }
    let (job, title) = (newest.job_name.clone(), run_title(newest));
    state.logs.lines.push(format!("— next run: {title} —"));
    state.logs.ended = false;
    state.logs.job = Some(job.clone());
    vec![Effect::StartLogs { object: key, job, follow: true }]
}

/// `Deploy 1.0.3 Failed`: what a run did, with which tag, and how it ended.
pub fn run_title(run: &alustan_shared::RunRecord) -> String {
    format!("{:?} {} {:?}", run.action, run.tag.as_deref().unwrap_or("-"), run.result)
}

fn ask(state: &mut State, make: impl FnOnce(ObjectKey, &Terraform) -> (String, Effect)) {
    let Some((key, object)) = state.target().and_then(|key| Some((key.clone(), state.object(key)?))) else {
        flash(state, "nothing selected", FlashLevel::Warn);
        return;
    };
    let (question, effect) = make(key, object);
    state.confirm = Some(Confirm { question, effect });
}

/// `a` / `x`: asks to approve or reject the current plan, repeating its counts; says why not
/// when there is nothing to decide (the same checks as the command line).
fn verdict(state: &mut State, verdict: crate::plans::Verdict) {
    let Some((key, object)) = state.target().and_then(|key| Some((key.clone(), state.object(key)?))) else {
        flash(state, "nothing selected", FlashLevel::Warn);
        return;
    };
    match crate::plans::check(object, verdict, None) {
        Ok(plan) => {
            let question = crate::plans::question(verdict, &key.to_string(), plan);
            let effect = Effect::Verdict { object: key, verdict, plan: plan.id.clone() };
            state.confirm = Some(Confirm { question, effect });
        }
        Err(refusal) => {
            let text = refusal.to_string();
            flash(state, text.lines().next().unwrap_or_default().to_owned(), FlashLevel::Warn);
        }
    }
}

/// In the Plan view: the log of the run that made the plan shown.
fn plan_log(state: &mut State) -> Vec<Effect> {
    let Some(key) = state.view().object.clone() else { return Vec::new() };
    let job = state.object(&key).and_then(|o| o.status.as_ref()).and_then(|s| s.plan.as_ref()).map(|p| &p.job_name);
    let Some(run) = job.and_then(|job| history(state, &key).iter().position(|r| &r.job_name == job)) else {
        flash(state, "the plan run is not in the run history (older runs are dropped)", FlashLevel::Warn);
        return Vec::new();
    };
    push(state, ViewKind::Logs, Some(key.clone()));
    show_run(state, &key, run)
}

fn reveal(state: &mut State) {
    let Some(key) = state.view().object.clone() else { return };
    let credential = state
        .object(&key)
        .and_then(|object| object.status.as_ref())
        .and_then(|status| status.credentials.iter().nth(state.credential))
        .map(|(name, credential)| (name.clone(), credential.password_secret_ref.clone()));
    let Some((name, secret)) = credential else {
        flash(state, "no credential to reveal", FlashLevel::Warn);
        return;
    };
    let question = format!(
        "Reveal the password of `{name}` ({}/{} key {})? It will be shown on screen.",
        secret.namespace, secret.name, secret.key
    );
    state.confirm = Some(Confirm { question, effect: Effect::RevealSecret { object: key, credential: name, secret } });
}

fn back(state: &mut State) -> Vec<Effect> {
    if state.views.len() <= 1 {
        // In the list, Esc clears the filter (k9s does the same).
        if !state.filter.is_empty() {
            state.filter.clear();
            state.refresh_rows();
        } else if state.error.is_some() {
            state.error = None;
        }
        return Vec::new();
    }
    let left = state.views.pop().map(|view| view.kind);
    // A revealed password never outlives its view.
    state.revealed = None;
    if left == Some(ViewKind::Logs) { vec![Effect::StopLogs] } else { Vec::new() }
}

fn move_by(state: &mut State, delta: isize) {
    let kind = state.view().kind;
    match kind {
        ViewKind::List => {
            let last = state.rows.len().saturating_sub(1);
            state.selected = state.selected.saturating_add_signed(delta).min(last);
            state.offset = state.visible_offset(state.page);
        }
        ViewKind::Credentials => {
            let count = state
                .target()
                .and_then(|k| state.object(k))
                .and_then(|o| o.status.as_ref())
                .map_or(0, |s| s.credentials.len());
            state.credential = state.credential.saturating_add_signed(delta).min(count.saturating_sub(1));
            state.revealed = None;
        }
        ViewKind::Logs => {
            // Logs follow the tail: the scroll counts lines back from the newest, 0 = following.
            let max = state.logs.lines.len().saturating_sub(state.page);
            if let Some(view) = state.views.last_mut() {
                let back = isize::try_from(view.scroll).unwrap_or(0).saturating_sub(delta).max(0);
                view.scroll = u16::try_from(usize::try_from(back).unwrap_or(0).min(max)).unwrap_or(u16::MAX);
            }
        }
        _ => {
            // Detail views scroll; the renderer clamps to the text's length.
            if let Some(view) = state.view_mut() {
                let scroll = isize::try_from(view.scroll).unwrap_or(0).saturating_add(delta).max(0);
                view.scroll = u16::try_from(scroll).unwrap_or(u16::MAX);
            }
        }
    }
}

fn sort(state: &mut State, key: SortKey) {
    if state.sort == key {
        state.sort_descending = !state.sort_descending;
    } else {
        state.sort = key;
        state.sort_descending = false;
    }
    state.refresh_rows();
}

fn apply_input(state: &mut State) -> Vec<Effect> {
    match state.input.take() {
        Some(Input::Filter(text)) => {
            state.filter = text;
            state.refresh_rows();
            Vec::new()
        }
        Some(Input::Command(text)) => run_command(state, text.trim()),
        None => Vec::new(),
    }
}

/// `:` commands, k9s style.
fn run_command(state: &mut State, text: &str) -> Vec<Effect> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("q" | "quit" | "q!"), None, None) => {
            vec![Effect::Quit]
        }
        (Some("ns" | "namespace"), Some(namespace), None) => {
            let namespace = (!matches!(namespace, "all" | "-A" | "*")).then(|| namespace.to_owned());
            state.header.namespace.clone_from(&namespace);
            state.objects.clear();
            state.changed.clear();
            state.rows.clear();
            state.selected = 0;
            state.offset = 0;
            state.synced = false;
            state.views.truncate(1);
            vec![Effect::SwitchNamespace(namespace)]
        }
        (Some("help"), None, None) => {
            push(state, ViewKind::Help, None);
            Vec::new()
        }
        (None, _, _) => Vec::new(),
        _ => {
            flash(state, format!("unknown command `{text}`: try `ns NAME`, `ns all`, `help` or `q`"), FlashLevel::Warn);
            Vec::new()
        }
    }
}

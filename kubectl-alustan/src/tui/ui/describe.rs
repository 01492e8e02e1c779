//! The describe, YAML and logs views: scrollable text about one resource.

use alustan_shared::{RegistryScan, RejectionReason, RunRecord, Terraform, TerraformStatus};
use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{action_style, frame_block, label_style, missing, scrolled_text, state_style};

/// The changed addresses describe lists (`show-plan` and the Plan view list them all).
const PLAN_CHANGES_SHOWN: usize = 5;
use crate::events::Folded;
use crate::tui::format;
use crate::tui::state::State;

pub fn draw_describe(frame: &mut Frame, area: Rect, state: &State) {
    let Some((key, object)) = state.target().and_then(|k| Some((k, state.object(k)?))) else {
        return missing(frame, area, "Describe");
    };
    let events = state.events.as_ref().filter(|(of, _)| of == key).map(|(_, events)| events.as_slice());
    let mut lines = describe(object, events, state.now);
    let relations = crate::commands::tree::relation_lines(object, state.objects.values());
    if !relations.is_empty() {
        lines.push(section("Dependencies"));
        lines.extend(relations.into_iter().map(|l| Line::from(format!("  {l}"))));
    }
    scrolled_text(frame, area, &format!("Describe({key})"), lines, state.view().scroll);
}

pub fn draw_yaml(frame: &mut Frame, area: Rect, state: &State) {
    let Some((key, object)) = state.target().and_then(|k| Some((k, state.object(k)?))) else {
        return missing(frame, area, "YAML");
    };
    let mut object = object.clone();
    // managedFields are noise for a reader; `kubectl get -o yaml` users hide them too.
    object.metadata.managed_fields = None;
    let text = serde_yaml::to_string(&object).unwrap_or_else(|e| format!("cannot render YAML: {e}"));
    let lines = text.lines().map(|l| Line::from(l.to_owned())).collect();
    scrolled_text(frame, area, &format!("YAML({key})"), lines, state.view().scroll);
}

/// The logs view follows the newest lines unless scrolled back (`k`, `PgUp`; `End` follows).
pub fn draw_logs(frame: &mut Frame, area: Rect, state: &State) {
    let height = usize::from(frame_block("").inner(area).height);
    let mut lines: Vec<Line> = state.logs.lines.iter().map(|l| Line::from(l.as_str())).collect();
    if state.logs.lines.is_empty() && !state.logs.ended {
        lines.push(Line::from("Waiting for the run's log…"));
    }
    if state.logs.job.is_none() {
        lines.push(Line::from("No runs yet: the agent has not started a Job for it (describe says why)."));
    }
    if state.logs.ended {
        lines.push(Line::styled("— log ended —", Style::new().fg(Color::DarkGray)));
    }
    let max_back = lines.len().saturating_sub(height);
    let back = usize::from(state.view().scroll).min(max_back);
    let target = state.target().map(ToString::to_string).unwrap_or_default();
    let title = format!("Logs({target}) {}", run_label(state));
    let title = if back == 0 { format!("{title} [following]") } else { format!("{title} [{back} back]") };
    let visible: Vec<Line> = lines.into_iter().skip(max_back - back).take(height).collect();
    frame.render_widget(Paragraph::new(visible).block(frame_block(&title)), area);
}

/// `1/3 Deploy 1.0.3 Failed 15m` (run 1 of 3, started 15m ago): which run the log is of
/// (`[` and `]` pick another).
fn run_label(state: &State) -> String {
    let history = state
        .target()
        .and_then(|key| state.object(key))
        .and_then(|o| o.status.as_ref())
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    let found = state.logs.job.as_ref().and_then(|job| history.iter().position(|r| &r.job_name == job));
    match found {
        Some(at) => {
            let run = &history[at];
            let age = format::age(run.start_time.0, state.now);
            format!("{}/{} {} {age}", at + 1, history.len(), crate::tui::update::run_title(run))
        }
        None => "no runs".to_owned(),
    }
}

fn field(label: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![Span::styled(format!("{label:<15}"), label_style()), Span::raw(value.into())])
}

fn section(title: &str) -> Line<'static> {
    Line::from(Span::styled(title.to_owned(), Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)))
}

fn short_digest(digest: &str) -> String {
    // sha256: plus 12 hex digits identifies an image as `docker images` does.
    digest.char_indices().nth(19).map_or_else(|| digest.to_owned(), |(i, _)| format!("{}…", &digest[..i]))
}

/// Every line of the describe view (pure: tests may read it directly); `events`: `None` while
/// they load.
pub fn describe(object: &Terraform, events: Option<&[Folded]>, now: Timestamp) -> Vec<Line<'static>> {
    let mut lines = describe_body(object, now);
    lines.push(section("Events"));
    match events {
        Some(events) => lines.extend(crate::events::table(events, now).lines().map(|l| Line::from(l.to_owned()))),
        None => lines.push(Line::from("  (loading…)")),
    }
    lines
}

/// The describe lines without Events (the command line appends the real ones).
pub fn describe_body(object: &Terraform, now: Timestamp) -> Vec<Line<'static>> {
    let spec = &object.spec;
    let registry = &spec.container_registry;
    let mut lines = vec![
        field("Name:", object.metadata.name.clone().unwrap_or_default()),
        field("Namespace:", object.metadata.namespace.clone().unwrap_or_default()),
        field("Age:", format::age_of(object, now)),
        field("Suspended:", if spec.suspend { "yes: no runs until resumed" } else { "no" }),
        field("Image:", registry.image_name.clone()),
        field("Constraint:", registry.policy_description()),
        field(
            "Scripts:",
            format!(
                "deploy `{}`, destroy {}",
                spec.scripts.deploy,
                spec.scripts
                    .destroy
                    .as_deref()
                    .map_or("(none: deletion leaves the infrastructure)".to_owned(), |d| format!("`{d}`"))
            ),
        ),
    ];
    if let Some(post) = &spec.post_deploy {
        let args: Vec<String> = post.args.iter().map(|(k, v)| format!("--{k}=${v}")).collect();
        lines.push(field("Post-deploy:", format!("`{}` {}", post.script, args.join(" "))));
    }
    if !spec.variables.is_empty() {
        let names: Vec<&str> = spec.variables.keys().map(String::as_str).collect();
        lines.push(field("Variables:", names.join(", ")));
    }
    lines.extend(crate::commands::tree::spec_lines(object).into_iter().map(|(label, value)| field(label, value)));
    if let Some(plan) = &spec.scripts.plan {
        let approval = spec.approval.unwrap_or_default();
        let drift = spec.drift.map_or_else(|| "Correct (default)".to_owned(), |d| format!("{d:?}"));
        lines.push(field("Plans:", format!("`{plan}`, approval {approval:?}, drift {drift}")));
    }
    if let Some(interval) = &spec.sync_interval {
        lines.push(field("Sync interval:", interval.clone()));
    }
    if let Some(sa) = &spec.service_account_name {
        lines.push(field("Account:", sa.clone()));
    }
    lines.push(Line::default());
    match &object.status {
        Some(status) => describe_status(&mut lines, status, object.metadata.name.as_deref().unwrap_or_default(), now),
        None => lines.push(field("State:", "Pending: the agent has not written a status yet")),
    }
    lines
}

fn describe_status(lines: &mut Vec<Line<'static>>, status: &TerraformStatus, name: &str, now: Timestamp) {
    let state = status.state.map_or("Pending", alustan_shared::State::as_str);
    lines.push(Line::from(vec![
        Span::styled(format!("{:<15}", "State:"), label_style()),
        Span::styled(state, state_style(state)),
    ]));
    if let Some(message) = &status.message {
        let mut message_lines = message.lines();
        lines.push(field("Message:", message_lines.next().unwrap_or_default().to_owned()));
        lines.extend(message_lines.map(|l| Line::from(format!("{:15}{l}", ""))));
    }
    match &status.applied {
        Some(applied) => {
            let at = applied.applied_at.as_ref().map(|t| format!(", {}", format::time(t, now))).unwrap_or_default();
            lines.push(field("Applied:", format!("{} {}{at}", applied.tag, short_digest(&applied.digest))));
        }
        None => lines.push(field("Applied:", "nothing yet")),
    }
    if let Some(scan) = &status.last_scan {
        describe_scan(lines, scan, now);
    }
    if let Some(plan) = &status.plan {
        lines.push(section("Plan (latest)"));
        lines.extend(
            crate::plans::lines(name, plan, now, Some(PLAN_CHANGES_SHOWN))
                .into_iter()
                .map(|l| Line::styled(format!("  {}", l.text), action_style(l.action))),
        );
    }
    if !status.conditions.is_empty() {
        lines.push(section("Conditions"));
        lines.push(Line::styled(
            format!("  {:<12}{:<8}{:<18}{:<7}MESSAGE", "TYPE", "STATUS", "REASON", "AGE"),
            label_style(),
        ));
        for c in &status.conditions {
            let age = format::age(c.last_transition_time.0, now);
            let cells = format!("  {:<12}{:<8}{:<18}{:<7}", c.type_, c.status, c.reason, age);
            // The conditions usually repeat the status message: said once, above.
            let message = if !c.message.is_empty() && status.message.as_deref() == Some(c.message.as_str()) {
                "(the message above)"
            } else {
                c.message.as_str()
            };
            row_with_message(lines, &cells, message);
        }
    }
    if !status.output.is_empty() || status.sensitive_outputs_secret.is_some() {
        lines.push(section("Outputs"));
        for (name, value) in &status.output {
            lines.push(Line::from(format!("  {name} = {}", format::value(value))));
        }
        if let Some(secret) = &status.sensitive_outputs_secret {
            lines.push(Line::from(format!("  (sensitive outputs: Secret {secret})")));
        }
    }
    if !status.ingress_urls.is_empty() {
        lines.push(section("Ingress URLs"));
        for (namespace, urls) in &status.ingress_urls {
            lines.push(Line::from(format!("  {namespace}: {}", urls.join(", "))));
        }
    }
    if !status.credentials.is_empty() {
        lines.push(section("Credentials (c shows them; passwords stay in their Secrets)"));
        for (name, cred) in &status.credentials {
            let r = &cred.password_secret_ref;
            lines.push(Line::from(format!(
                "  {name}: user {}, password in {}/{} key {}",
                cred.username, r.namespace, r.name, r.key
            )));
        }
    }
    if let Some(output) = &status.post_deploy_output {
        lines.push(section("Post-deploy output"));
        let pretty = serde_json::to_string_pretty(output).unwrap_or_else(|_| output.to_string());
        lines.extend(pretty.lines().map(|l| Line::from(format!("  {l}"))));
    }
    describe_runs(lines, &status.history, name, now);
}

/// WHY this version: what the last registry scan saw and chose.
fn describe_scan(lines: &mut Vec<Line<'static>>, scan: &RegistryScan, now: Timestamp) {
    lines.push(section("Why this version (last registry scan)"));
    lines.push(field("  Scanned:", format!("{} {}", scan.image, format::time(&scan.time, now))));
    lines.push(field(
        "  Constraint:",
        format!("{} matched {} of {} tags", scan.constraint, scan.matching_count, scan.tag_count),
    ));
    if !scan.newest_matching.is_empty() {
        lines.push(field("  Newest:", scan.newest_matching.join(", ")));
    }
    if !scan.rejected.is_empty() {
        let rejected: Vec<String> = scan
            .rejected
            .iter()
            .map(|r| {
                let why = match r.reason {
                    RejectionReason::NotSemver => "not semver",
                    RejectionReason::OutsideConstraint => "outside constraint",
                    RejectionReason::Prerelease => "prerelease",
                    RejectionReason::FilteredOut => "filtered out",
                    RejectionReason::NotNumerical => "not numerical",
                };
                format!("{} ({why})", r.tag)
            })
            .collect();
        lines.push(field("  Rejected:", rejected.join(", ")));
    }
    let selected = match (&scan.selected_tag, &scan.selected_digest) {
        (Some(tag), Some(digest)) => format!("{tag} {}", short_digest(digest)),
        (Some(tag), None) => tag.clone(),
        (None, _) => "none: no tag satisfies the constraint".to_owned(),
    };
    lines.push(field("  Selected:", selected));
}

fn describe_runs(lines: &mut Vec<Line<'static>>, history: &[RunRecord], name: &str, now: Timestamp) {
    if history.is_empty() {
        return;
    }
    lines.push(section("Runs (newest first)"));
    lines.push(Line::styled(
        format!("  {:<12}{:<10}{:<10}{:<8}{:<9}MESSAGE", "ACTION", "RESULT", "TAG", "AGE", "TOOK"),
        label_style(),
    ));
    // One log tail in full (the newest run's that has one); the others say where theirs is.
    let mut tail_shown = false;
    for (index, run) in history.iter().enumerate() {
        let action = format!("{:?}", run.action);
        let result = format!("{:?}", run.result);
        let took =
            run.completion_time.as_ref().map_or_else(|| "-".to_owned(), |end| format::elapsed(run.start_time.0, end.0));
        let cells = format!(
            "  {action:<12}{result:<10}{:<10}{:<8}{took:<9}",
            run.tag.as_deref().unwrap_or("-"),
            format::age(run.start_time.0, now),
        );
        let message = run.message.as_deref().unwrap_or("");
        let more = message.lines().count().saturating_sub(1);
        if more > 0 && std::mem::replace(&mut tail_shown, true) {
            let first = message.lines().next().unwrap_or_default();
            let hint = format!("{first} (+{more} log lines: `kubectl alustan logs {name} --run {}`)", index + 1);
            row_with_message(lines, &cells, &hint);
        } else {
            row_with_message(lines, &cells, message);
        }
    }
}

/// A table row ending in a message that may span lines (failure messages quote log tails):
/// its later lines start under its first, as `kubectl describe` indents multi-line values.
fn row_with_message(lines: &mut Vec<Line<'static>>, cells: &str, message: &str) {
    let indent = " ".repeat(cells.chars().count());
    let mut message_lines = message.lines();
    lines.push(Line::from(format!("{cells}{}", message_lines.next().unwrap_or_default())));
    lines.extend(message_lines.map(|l| Line::from(format!("{indent}{l}"))));
}

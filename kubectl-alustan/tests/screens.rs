//! Golden screens: each view rendered with `TestBackend` at 80×24, 160×45 and 200×50, compared with
//! the committed insta snapshots (`tests/snapshots/`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{char_key, press, render, samples, select, state_of};
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::state::State;

const SIZES: [(u16, u16); 3] = [(80, 24), (160, 45), (200, 50)];

/// Snapshots `prepare(state)` at both sizes, as `<name>_<width>x<height>`.
fn screens(name: &str, make: impl Fn() -> State, prepare: impl Fn(&mut State)) {
    for (width, height) in SIZES {
        let mut state = make();
        press(&mut state, Action::Resize { width, height });
        prepare(&mut state);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), render(&state, width, height));
    }
}

#[test]
fn list() {
    screens("list", samples, |state| select(state, "network"));
}

/// The header when the agent's Lease was last renewed 3 minutes ago.
#[test]
fn list_agent_stale() {
    screens(
        "list_agent_stale",
        || {
            let mut state = samples();
            state.header.agent = common::leader(180);
            state
        },
        |_| {},
    );
}

#[test]
fn list_one_namespace() {
    screens(
        "list_namespace",
        || {
            let infra = kubectl_alustan::tui::fixtures::samples()
                .into_iter()
                .filter(|o| o.metadata.namespace.as_deref() == Some("infra"))
                .collect();
            let mut state = state_of(infra, false);
            state.header.namespace = Some("infra".to_owned());
            state
        },
        |_| {},
    );
}

#[test]
fn empty_list() {
    screens(
        "empty",
        || {
            let mut state = state_of(Vec::new(), false);
            state.header.namespace = Some("infra".to_owned());
            state
        },
        |_| {},
    );
}

#[test]
fn describe() {
    screens("describe", samples, |state| {
        select(state, "staging-cluster");
        press(state, char_key('d'));
    });
}

/// The describe view's Events pane, scrolled to: each reason once, its latest note, `xN over`.
#[test]
fn describe_events() {
    screens("describe_events", samples, |state| {
        select(state, "network");
        press(state, char_key('d'));
        let event = |reason: &str, type_: &str, note: &str, minutes_ago: i64, count: i32| {
            let at = (kubectl_alustan::tui::fixtures::NOW - jiff::SignedDuration::from_mins(minutes_ago)).to_string();
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("network.{minutes_ago}")}, "involvedObject": {},
                "type": type_, "reason": reason, "message": note, "count": count,
                "firstTimestamp": at, "lastTimestamp": at, "source": {"component": "alustan-agent"},
            }))
            .unwrap()
        };
        let events: Vec<k8s_openapi::api::core::v1::Event> = vec![
            event("Deploying", "Normal", "deploying v1.0.1 (new resource)", 40, 1),
            event("Deploying", "Normal", "deploying v1.0.3 (new image)", 15, 1),
            event("ScriptFailed", "Warning", "deploy failed: exit code 1: Error: VpcLimitExceeded", 10, 3),
        ];
        let object = kubectl_alustan::tui::state::ObjectKey::new("infra", "network");
        press(state, Action::Events { object, events: kubectl_alustan::events::fold(&events) });
        press(state, common::code(crossterm::event::KeyCode::End));
    });
}

#[test]
fn describe_failed() {
    screens("describe_failed", samples, |state| {
        select(state, "network");
        press(state, char_key('d'));
    });
}

#[test]
fn outputs() {
    screens("outputs", samples, |state| {
        select(state, "staging-cluster");
        press(state, char_key('o'));
    });
}

#[test]
fn credentials_masked() {
    screens("credentials", samples, |state| {
        select(state, "staging-cluster");
        press(state, char_key('c'));
    });
}

#[test]
fn help() {
    screens("help", samples, |state| {
        press(state, char_key('?'));
    });
}

#[test]
fn error_banner() {
    screens("error", samples, |state| {
        press(
            state,
            Action::Error("watch failed: terraforms.alustan.io is forbidden: User \"alice\" cannot watch".to_owned()),
        );
    });
}

#[test]
fn confirm_modal() {
    screens("confirm", samples, |state| {
        select(state, "staging-cluster");
        press(state, char_key('s'));
    });
}

/// The agent's Lease is 16 s old: the question says nothing runs, not "A run starts now".
#[test]
fn confirm_sync_while_the_agent_is_stale() {
    screens(
        "confirm_agent_stale",
        || {
            let mut state = samples();
            state.header.agent = common::leader(16);
            state
        },
        |state| {
            select(state, "staging-cluster");
            press(state, char_key('s'));
        },
    );
}

#[test]
fn readonly_flash() {
    screens(
        "readonly",
        || state_of(kubectl_alustan::tui::fixtures::samples(), true),
        |state| {
            press(state, char_key('s'));
        },
    );
}

#[test]
fn masked_unless_revealed() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, char_key('c'));
    let screen = render(&state, 80, 24);
    assert!(screen.contains("********"));
    assert!(!screen.contains("s3cr3t"));
    press(
        &mut state,
        Action::SecretRevealed {
            object: kubectl_alustan::tui::state::ObjectKey::new("infra", "staging-cluster"),
            credential: "argocd".into(),
            value: "s3cr3t".into(),
        },
    );
    let screen = render(&state, 80, 24);
    assert!(screen.contains("s3cr3t"));
    assert_eq!(screen.matches("********").count(), 1, "only the revealed one is shown");
}

#[test]
fn help_lists_every_key_of_the_table() {
    let mut state = samples();
    press(&mut state, char_key('?'));
    let screen = render(&state, 200, 100);
    for binding in kubectl_alustan::tui::keys::KEYS {
        assert!(screen.contains(binding.label), "help lacks `{}`", binding.label);
        assert!(screen.contains(binding.help), "help lacks `{}`", binding.help);
    }
}

#[test]
fn every_view_survives_tiny_and_odd_terminal_sizes() {
    let prepare: [&dyn Fn(&mut State); 9] = [
        &|_| {},
        &|s| press(s, char_key('?')).clear(),
        &|s| press(s, char_key('d')).clear(),
        &|s| press(s, char_key('y')).clear(),
        &|s| press(s, char_key('o')).clear(),
        &|s| press(s, char_key('c')).clear(),
        &|s| press(s, char_key('l')).clear(),
        &|s| press(s, char_key('s')).clear(),
        &|s| press(s, Action::Error("e".repeat(300))).clear(),
    ];
    for (width, height) in [(1, 1), (10, 3), (20, 5), (40, 10), (60, 15), (300, 8)] {
        for step in prepare {
            let mut state = samples();
            select(&mut state, "staging-cluster");
            press(&mut state, Action::Resize { width, height });
            step(&mut state);
            render(&state, width, height);
        }
    }
}

#[test]
fn changed_rows_are_highlighted_until_they_fade() {
    let mut state = samples();
    let mut changed = kubectl_alustan::tui::fixtures::progressing();
    changed.status.as_mut().unwrap().message = Some("deploying v2.4.1".to_owned());
    press(&mut state, Action::Applied(Box::new(changed)));
    let background = |state: &State| {
        let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
        terminal.draw(|frame| kubectl_alustan::tui::ui::draw(frame, state)).unwrap();
        // Screen row 4 is apps/payments-db (after header, border, column names, analytics).
        let buffer = terminal.backend().buffer().clone();
        assert!(buffer.cell((13, 4)).unwrap().symbol() == "p", "payments-db is on row 4");
        buffer.cell((13, 4)).unwrap().bg
    };
    assert_ne!(background(&state), ratatui::style::Color::Reset);
    press(&mut state, Action::Tick(kubectl_alustan::tui::fixtures::NOW + jiff::SignedDuration::from_secs(5)));
    assert_eq!(background(&state), ratatui::style::Color::Reset);
}

#[test]
fn logs_show_the_newest_lines_until_scrolled_back() {
    let mut state = samples();
    select(&mut state, "payments-db");
    press(&mut state, char_key('l'));
    for i in 0..50 {
        press(&mut state, Action::LogLine(format!("line {i}")));
    }
    let screen = render(&state, 80, 24);
    assert!(screen.contains("[following]") && screen.contains("line 49") && !screen.contains("line 10 "));
    press(&mut state, char_key('k'));
    let screen = render(&state, 80, 24);
    assert!(
        screen.contains("1/1 Deploy v2.4.0 Running 90s [1 back]")
            && screen.contains("line 48")
            && !screen.contains("line 49"),
        "{screen}"
    );
}

/// The four samples and `apps/checkout`, whose plan waits for approval: marked in the list and
/// counted in the header; `infra/staging-cluster` drifted.
fn with_a_plan() -> State {
    let mut objects = kubectl_alustan::tui::fixtures::samples();
    objects.push(kubectl_alustan::tui::fixtures::planned());
    if let Some(status) = objects[0].status.as_mut() {
        let drift = "drift found by plan p-1: 0 to add, 1 to change, 0 to destroy, 0 to replace";
        status.conditions.push(
            serde_json::from_value(serde_json::json!({
            "type": "Drifted", "status": "True", "reason": "DriftDetected", "message": drift,
            "lastTransitionTime": "2026-01-10T11:00:00Z"}))
            .unwrap(),
        );
    }
    common::state_of(objects, false)
}

#[test]
fn list_with_a_planned_and_a_drifted_resource() {
    screens("list_planned", with_a_plan, |state| select(state, "checkout"));
}

#[test]
fn plan_view() {
    screens("plan", with_a_plan, |state| {
        select(state, "checkout");
        press(state, char_key('p'));
    });
}

#[test]
fn approve_confirmation_repeats_the_counts() {
    screens("confirm_approve", with_a_plan, |state| {
        select(state, "checkout");
        press(state, char_key('p'));
        press(state, char_key('a'));
    });
}

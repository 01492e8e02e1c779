//! Golden screens: each view rendered with `TestBackend` at 80×24 and 200×50, compared with
//! the committed insta snapshots (`tests/snapshots/`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{char_key, press, render, samples, select, state_of};
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::state::State;

const SIZES: [(u16, u16); 2] = [(80, 24), (200, 50)];

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

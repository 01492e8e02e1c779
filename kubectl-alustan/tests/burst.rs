//! A burst of watch events: the loop folds what arrived since the last frame (`coalesce`) and
//! `update` rebuilds the rows once for all of it, with the same result as one at a time.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::state_of;
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::app::coalesce;
use kubectl_alustan::tui::fixtures;
use kubectl_alustan::tui::state::{ObjectKey, SortKey};
use kubectl_alustan::tui::update::update;

fn names(action: &Action) -> Vec<String> {
    match action {
        Action::Applied(object) => vec![object.metadata.name.clone().unwrap()],
        Action::AppliedAll(objects) => objects.iter().map(|o| o.metadata.name.clone().unwrap()).collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn coalesce_folds_runs_of_applied_and_keeps_everything_else_in_order() {
    let objects = fixtures::many(5);
    let applied = |i: usize| Action::Applied(Box::new(objects[i].clone()));
    let deleted = Action::Deleted(ObjectKey::new("team-00", "stack-00000"));
    let folded =
        coalesce(vec![applied(0), applied(1), deleted.clone(), applied(2), Action::LogEnded, applied(3), applied(4)]);
    let shape: Vec<Vec<String>> = folded.iter().map(names).collect();
    assert_eq!(
        shape,
        [
            vec!["stack-00000".to_owned(), "stack-00001".to_owned()],
            vec![format!("{deleted:?}")],
            vec!["stack-00002".to_owned()],
            vec!["LogEnded".to_owned()],
            vec!["stack-00003".to_owned(), "stack-00004".to_owned()],
        ]
    );
    assert!(matches!(folded[0], Action::AppliedAll(_)) && matches!(folded[4], Action::AppliedAll(_)));
}

#[test]
fn a_folded_burst_leaves_the_same_list_as_one_event_at_a_time() {
    let objects = fixtures::many(300);
    let samples = fixtures::samples();
    let changes: Vec<_> = (0..120)
        .map(|e| {
            let mut changed = objects[(e * 37) % objects.len()].clone();
            changed.status.clone_from(&samples[(e + 1) % samples.len()].status);
            changed
        })
        .collect();
    let mut one_by_one = state_of(objects.clone(), false);
    let mut batched = state_of(objects, false);
    for state in [&mut one_by_one, &mut batched] {
        state.sort = SortKey::State; // rows move when states change
        state.selected = 42;
        state.refresh_rows();
    }
    for changed in changes.clone() {
        update(&mut one_by_one, Action::Applied(Box::new(changed)));
    }
    for action in coalesce(changes.into_iter().map(|c| Action::Applied(Box::new(c))).collect()) {
        update(&mut batched, action);
    }
    assert_eq!(batched.rows, one_by_one.rows);
    assert_eq!(batched.selected_key(), one_by_one.selected_key());
    let highlighted = |state: &kubectl_alustan::tui::state::State| {
        let mut keys: Vec<ObjectKey> = state.changed.keys().cloned().collect();
        keys.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        keys
    };
    assert_eq!(highlighted(&batched), highlighted(&one_by_one));
    assert!(!batched.changed.is_empty(), "the changed rows are highlighted");
}

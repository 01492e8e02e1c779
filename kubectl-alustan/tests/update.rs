//! `update` for every key of the key table, and for the data events.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{char_key, code, ctrl, leader, press, samples, select, state_of, type_text};
use crossterm::event::{KeyCode, KeyEvent};
use jiff::SignedDuration;
use kubectl_alustan::plans::Verdict;
use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::fixtures::{self, NOW};
use kubectl_alustan::tui::keys::{KEYS, Scope};
use kubectl_alustan::tui::state::{AgentHealth, FlashLevel, Input, ObjectKey, SortKey, State, View, ViewKind};
use kubectl_alustan::tui::update::{Effect, update};

fn staging() -> ObjectKey {
    ObjectKey::new("infra", "staging-cluster")
}

fn top(state: &State) -> (ViewKind, Option<ObjectKey>) {
    (state.view().kind, state.view().object.clone())
}

/// Every binding of the table does something observable where it applies (the specific tests
/// below check what).
#[test]
fn every_binding_is_wired() {
    for binding in KEYS {
        let mut state = state_of(fixtures::many(40), false);
        state.selected = 10;
        state.filter = "stack".to_owned(); // so Esc in the list has something to clear
        match binding.scope {
            Scope::Modal => {
                press(&mut state, char_key('s'));
            }
            Scope::Input => {
                press(&mut state, char_key('/'));
                type_text(&mut state, "ab");
            }
            Scope::Views(views) => {
                let view = views[0];
                if view != ViewKind::List {
                    let object = if view == ViewKind::Credentials { Some(staging()) } else { state.target().cloned() };
                    state = samples();
                    state.views.push(View { kind: view, object, scroll: 3 });
                }
            }
            Scope::Everywhere | Scope::Always => {}
        }
        let before = state.clone();
        let event = KeyEvent::new(binding.code, binding.modifiers);
        let effects = update(&mut state, Action::Key(event));
        assert!(state != before || !effects.is_empty(), "`{}` ({:?}) did nothing", binding.label, binding.command);
    }
}

#[test]
fn help_key_opens_help_and_esc_returns() {
    let mut state = samples();
    assert!(press(&mut state, char_key('?')).is_empty());
    assert_eq!(top(&state), (ViewKind::Help, None));
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.view().kind, ViewKind::List);
}

#[test]
fn slash_filters_as_you_type_enter_keeps_esc_clears() {
    let mut state = samples();
    press(&mut state, char_key('/'));
    assert_eq!(state.input, Some(Input::Filter(String::new())));
    type_text(&mut state, "infrx");
    press(&mut state, code(KeyCode::Backspace));
    assert_eq!(state.input, Some(Input::Filter("infr".to_owned())));
    assert_eq!(state.rows.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["network", "staging-cluster"]);
    // While typing, letters are text, not commands: `q` did not quit above.
    press(&mut state, code(KeyCode::Enter));
    assert_eq!((state.input.clone(), state.filter.as_str(), state.rows.len()), (None, "infr", 2));
    // Filtering also matches states.
    press(&mut state, char_key('/'));
    press(&mut state, code(KeyCode::Esc));
    assert_eq!((state.input.clone(), state.filter.as_str(), state.rows.len()), (None, "", 4));
    state.filter = "failed".to_owned();
    state.refresh_rows();
    assert_eq!(state.rows, [ObjectKey::new("infra", "network")]);
    // Esc in the list clears an applied filter.
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.rows.len(), 4);
}

#[test]
fn colon_commands_switch_namespace_and_quit() {
    let mut state = samples();
    press(&mut state, char_key(':'));
    type_text(&mut state, "ns apps");
    assert_eq!(press(&mut state, code(KeyCode::Enter)), [Effect::SwitchNamespace(Some("apps".to_owned()))]);
    assert_eq!(state.header.namespace.as_deref(), Some("apps"));
    assert!(!state.synced && state.objects.is_empty(), "the watch restarts from scratch");

    press(&mut state, char_key(':'));
    type_text(&mut state, "ns all");
    assert_eq!(press(&mut state, code(KeyCode::Enter)), [Effect::SwitchNamespace(None)]);
    assert_eq!(state.header.namespace, None);

    press(&mut state, char_key(':'));
    type_text(&mut state, "help");
    press(&mut state, code(KeyCode::Enter));
    assert_eq!(state.view().kind, ViewKind::Help);

    press(&mut state, char_key(':'));
    type_text(&mut state, "bogus");
    assert!(press(&mut state, code(KeyCode::Enter)).is_empty());
    assert_eq!(state.flash.as_ref().map(|f| f.level), Some(FlashLevel::Warn));

    press(&mut state, char_key(':'));
    type_text(&mut state, "ns");
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.input, None, "Esc drops the command");

    press(&mut state, char_key(':'));
    type_text(&mut state, "q");
    assert_eq!(press(&mut state, code(KeyCode::Enter)), [Effect::Quit]);
}

#[test]
fn enter_and_d_describe_the_selection() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, code(KeyCode::Enter));
    assert_eq!(top(&state), (ViewKind::Describe, Some(staging())));
    press(&mut state, code(KeyCode::Esc));
    press(&mut state, char_key('d'));
    assert_eq!(top(&state), (ViewKind::Describe, Some(staging())));
}

#[test]
fn y_o_c_l_open_views_from_the_list_and_from_describe() {
    for (key, kind) in [('y', ViewKind::Yaml), ('o', ViewKind::Outputs), ('c', ViewKind::Credentials)] {
        let mut state = samples();
        select(&mut state, "staging-cluster");
        assert!(press(&mut state, char_key(key)).is_empty());
        assert_eq!(top(&state), (kind, Some(staging())));
        // From describe, the view is about the described object even if the list moved.
        let mut state = samples();
        select(&mut state, "staging-cluster");
        press(&mut state, char_key('d'));
        state.selected = 0;
        press(&mut state, char_key(key));
        assert_eq!(top(&state), (kind, Some(staging())));
    }
    let mut state = samples();
    select(&mut state, "network");
    let network = ObjectKey::new("infra", "network");
    let job = "staging-cluster-deploy-900".to_owned();
    assert_eq!(press(&mut state, char_key('l')), [Effect::StartLogs { object: network.clone(), job, follow: true }]);
    assert_eq!(top(&state), (ViewKind::Logs, Some(network)));
    press(&mut state, Action::LogLine("terraform apply".to_owned()));
    press(&mut state, Action::LogEnded);
    assert_eq!((state.logs.lines.len(), state.logs.ended), (1, true));
    assert_eq!(press(&mut state, code(KeyCode::Esc)), [Effect::StopLogs]);
}

#[test]
fn s_asks_then_syncs_and_n_or_esc_cancel() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    assert!(press(&mut state, char_key('s')).is_empty(), "nothing happens before the answer");
    let confirm = state.confirm.clone().expect("a confirmation modal");
    assert!(confirm.question.contains("infra/staging-cluster"));
    assert_eq!(confirm.effect, Effect::RequestSync(staging()));
    // In the modal `y` answers; it does not open the YAML view.
    assert_eq!(press(&mut state, char_key('y')), [Effect::RequestSync(staging())]);
    assert_eq!((state.confirm.is_none(), state.view().kind), (true, ViewKind::List));

    for cancel in [char_key('n'), code(KeyCode::Esc)] {
        press(&mut state, char_key('s'));
        assert!(press(&mut state, cancel).is_empty());
        assert!(state.confirm.is_none());
    }
    press(&mut state, char_key('s'));
    assert_eq!(press(&mut state, code(KeyCode::Enter)), [Effect::RequestSync(staging())]);
}

#[test]
fn shift_s_asks_then_resyncs() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, char_key('S'));
    assert_eq!(state.confirm.as_ref().map(|c| &c.effect), Some(&Effect::RequestResync(staging())));
    assert_eq!(press(&mut state, char_key('y')), [Effect::RequestResync(staging())]);
}

#[test]
fn space_suspends_or_resumes_after_asking() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, char_key(' '));
    assert!(state.confirm.as_ref().unwrap().question.starts_with("Suspend"));
    assert_eq!(press(&mut state, char_key('y')), [Effect::SetSuspend { object: staging(), suspend: true }]);
    // apps/analytics is suspended in the fixtures: Space resumes it.
    select(&mut state, "analytics");
    press(&mut state, char_key(' '));
    let question = &state.confirm.as_ref().unwrap().question;
    // The question says whether resuming starts a run (the agent's rule, from its history).
    assert!(
        question.starts_with("Resume") && (question.contains("deploy") || question.contains("Nothing runs now")),
        "{question}"
    );
    assert_eq!(
        press(&mut state, char_key('y')),
        [Effect::SetSuspend { object: ObjectKey::new("apps", "analytics"), suspend: false }]
    );
}

#[test]
fn readonly_disables_mutating_keys_with_a_flash() {
    let mut state = state_of(fixtures::samples(), true);
    for key in ['s', 'S', ' ', 'a', 'x'] {
        state.flash = None;
        assert!(press(&mut state, char_key(key)).is_empty());
        assert!(state.confirm.is_none(), "`{key}` must not even ask");
        let flash = state.flash.clone().expect("a flash explains why");
        assert!(flash.text.contains("--readonly"), "{}", flash.text);
    }
    // Reading stays allowed.
    press(&mut state, char_key('d'));
    assert_eq!(state.view().kind, ViewKind::Describe);
}

#[test]
fn r_reveals_one_password_after_confirmation_and_leaving_forgets_it() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, char_key('c'));
    press(&mut state, char_key('j')); // second credential: grafana
    press(&mut state, char_key('r'));
    let Some(Effect::RevealSecret { credential, secret, .. }) = state.confirm.as_ref().map(|c| c.effect.clone()) else {
        panic!("expected a RevealSecret confirmation")
    };
    assert_eq!(
        (credential.as_str(), secret.name.as_str(), secret.key.as_str()),
        ("grafana", "grafana-admin", "admin-password")
    );
    assert_eq!(press(&mut state, char_key('y')).len(), 1);
    assert_eq!(state.revealed, None, "nothing shown until the value arrives");
    press(&mut state, Action::SecretRevealed { object: staging(), credential, value: "s3cr3t".to_owned() });
    assert_eq!(state.revealed.as_ref().map(|r| r.value.as_str()), Some("s3cr3t"));
    // Moving the selection hides it again; so does leaving the view.
    press(&mut state, char_key('k'));
    assert_eq!(state.revealed, None);
    press(&mut state, Action::SecretRevealed { object: staging(), credential: "argocd".into(), value: "x".into() });
    assert!(state.revealed.is_some());
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.revealed, None);
    // A value arriving after the user left is dropped.
    press(&mut state, Action::SecretRevealed { object: staging(), credential: "argocd".into(), value: "x".into() });
    assert_eq!(state.revealed, None);
}

#[test]
fn esc_goes_back_and_dismisses_the_error_banner_in_the_list() {
    let mut state = samples();
    press(&mut state, char_key('d'));
    press(&mut state, char_key('y'));
    assert_eq!(state.views.len(), 3);
    press(&mut state, code(KeyCode::Esc));
    press(&mut state, code(KeyCode::Esc));
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.views.len(), 1, "the list is never popped");
    press(&mut state, Action::Error("watch failed: connection refused".to_owned()));
    assert!(state.error.is_some());
    press(&mut state, code(KeyCode::Esc));
    assert_eq!(state.error, None);
}

#[test]
fn q_quits_and_ctrl_c_quits_from_anywhere() {
    let mut state = samples();
    assert_eq!(press(&mut state, char_key('q')), [Effect::Quit]);
    let mut state = samples();
    press(&mut state, char_key('s'));
    assert_eq!(press(&mut state, ctrl('c')), [Effect::Quit], "from the modal");
    let mut state = samples();
    press(&mut state, char_key('/'));
    assert!(press(&mut state, char_key('q')).is_empty(), "`q` is text in the filter");
    assert_eq!(press(&mut state, ctrl('c')), [Effect::Quit], "from the filter");
}

#[test]
fn list_navigation_keys() {
    let mut state = state_of(fixtures::many(100), false);
    let page = state.page;
    assert_eq!(page, 18, "24 rows minus header, borders and footer");
    let moves = [
        (char_key('j'), 1),
        (code(KeyCode::Down), 2),
        (char_key('k'), 1),
        (code(KeyCode::Up), 0),
        (code(KeyCode::Up), 0),
        (code(KeyCode::PageDown), page),
        (code(KeyCode::PageDown), 2 * page),
        (code(KeyCode::PageUp), page),
        (code(KeyCode::End), 99),
        (char_key('j'), 99),
        (code(KeyCode::Home), 0),
    ];
    for (action, selected) in moves {
        let label = format!("{action:?}");
        press(&mut state, action);
        assert_eq!(state.selected, selected, "{label}");
        assert!(state.offset <= state.selected && state.selected < state.offset + page, "selection visible");
    }
}

#[test]
fn navigation_keys_scroll_detail_views() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, char_key('d'));
    let scrolls = [
        (char_key('j'), 1),
        (code(KeyCode::Down), 2),
        (char_key('k'), 1),
        (code(KeyCode::Up), 0),
        (code(KeyCode::Up), 0),
        (code(KeyCode::PageDown), 18),
        (code(KeyCode::PageUp), 0),
        (code(KeyCode::End), u16::MAX),
        (code(KeyCode::Home), 0),
    ];
    for (action, scroll) in scrolls {
        press(&mut state, action);
        assert_eq!(state.view().scroll, scroll);
    }
}

#[test]
fn sort_keys_and_reverse() {
    let mut state = samples();
    let names = |s: &State| s.rows.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&state), ["analytics", "payments-db", "network", "staging-cluster"]);
    press(&mut state, char_key('A'));
    assert_eq!((state.sort, state.sort_descending), (SortKey::Age, false));
    assert_eq!(names(&state), ["payments-db", "analytics", "staging-cluster", "network"], "newest first");
    press(&mut state, char_key('A'));
    assert_eq!(names(&state), ["network", "staging-cluster", "analytics", "payments-db"], "again: oldest first");
    press(&mut state, char_key('T'));
    assert_eq!(
        names(&state),
        ["analytics", "network", "payments-db", "staging-cluster"],
        "Error, Failed, Progressing, Completed"
    );
    select(&mut state, "network");
    press(&mut state, char_key('N'));
    press(&mut state, char_key('N'));
    assert_eq!((state.sort, state.sort_descending), (SortKey::Name, true));
    assert_eq!(names(&state), ["staging-cluster", "network", "payments-db", "analytics"]);
    assert_eq!(state.selected_key().map(|k| k.name.as_str()), Some("network"), "the selection follows its object");
}

#[test]
fn changes_after_the_initial_list_are_highlighted_then_fade() {
    let mut state = samples();
    assert!(state.changed.is_empty(), "the initial listing highlights nothing");
    let mut changed = fixtures::progressing();
    changed.status.as_mut().unwrap().state = Some(alustan_shared::State::Completed);
    press(&mut state, Action::Applied(Box::new(changed)));
    let key = ObjectKey::new("apps", "payments-db");
    assert!(state.recently_changed(&key));
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(2)));
    assert!(state.recently_changed(&key));
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(4)));
    assert!(!state.recently_changed(&key) && state.changed.is_empty());
}

#[test]
fn new_and_deleted_objects_update_rows_keeping_the_selection_valid() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    press(&mut state, Action::Applied(Box::new(fixtures::terraform("apps", "aaa", 10))));
    assert_eq!(state.rows.len(), 5);
    assert_eq!(state.selected_key(), Some(&staging()));
    press(&mut state, Action::Deleted(staging()));
    assert_eq!(state.rows.len(), 4);
    assert_eq!(state.selected, 3, "clamped to the last row");
}

#[test]
fn relisting_drops_objects_that_vanished() {
    let mut state = samples();
    press(&mut state, Action::InitialListStarted);
    press(&mut state, Action::Applied(Box::new(fixtures::completed())));
    press(&mut state, Action::Error("watch restarted".to_owned()));
    press(&mut state, Action::InitialListDone);
    assert_eq!(state.rows, [staging()]);
    assert_eq!(state.error, None, "a completed listing clears the banner");
}

#[test]
fn flash_expires_on_tick_and_health_reaches_the_header() {
    let mut state = samples();
    press(&mut state, Action::Flash("sync requested".to_owned()));
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(3)));
    assert!(state.flash.is_some());
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(5)));
    assert!(state.flash.is_none());
    let health = kubectl_alustan::tui::state::AgentHealth::Forbidden { namespace: None };
    press(&mut state, Action::AgentHealth(health.clone()));
    assert_eq!(state.header.agent, health);
}

#[test]
fn agent_health_from_a_lease_is_set_by_its_action() {
    let mut state = State::new(common::header(), false, NOW);
    state.header.agent = AgentHealth::Unknown;
    assert_eq!(state.header.agent.short(state.now), "?", "before the first look-up");
    assert!(press(&mut state, Action::AgentHealth(leader(2))).is_empty(), "no I/O asked for");
    assert_eq!(state.header.agent, leader(2));
    assert_eq!(state.header.agent.short(state.now), "up");
    press(&mut state, Action::AgentHealth(leader(180)));
    assert_eq!(state.header.agent.short(state.now), "stale 3m");
    press(&mut state, Action::AgentHealth(AgentHealth::NotFound { namespace: Some("ops".to_owned()) }));
    assert_eq!(state.header.agent.short(state.now), "?");
}

/// Up or stale is judged at every tick from the Lease's times: an agent that stops renewing goes
/// stale on screen even when no new look-up arrives (e.g. the API server stopped answering).
#[test]
fn ticks_turn_an_unrenewed_lease_stale() {
    let mut state = samples();
    press(&mut state, Action::AgentHealth(leader(2)));
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(12)));
    assert_eq!(state.header.agent.short(state.now), "up", "renewed 14 s ago, lease lasts 15 s");
    press(&mut state, Action::Tick(NOW + SignedDuration::from_secs(13)));
    assert_eq!(state.header.agent.short(state.now), "stale 15s");
    // A fresh look-up (the agent renewed meanwhile) brings it back.
    let mut renewed = leader(0);
    if let AgentHealth::Leader(l) = &mut renewed {
        l.renewed = Some(NOW + SignedDuration::from_secs(12));
    }
    press(&mut state, Action::AgentHealth(renewed));
    assert_eq!(state.header.agent.short(state.now), "up");
}

#[test]
fn actions_with_nothing_selected_flash_instead_of_failing() {
    let mut state = state_of(Vec::new(), false);
    for key in ['d', 'y', 'o', 'c', 'l', 's', 'S', ' '] {
        state.flash = None;
        assert!(press(&mut state, char_key(key)).is_empty());
        assert_eq!((state.views.len(), state.confirm.is_none()), (1, true));
        assert!(state.flash.is_some(), "`{key}`");
    }
}

#[test]
fn log_lines_are_bounded() {
    let mut state = samples();
    for i in 0..(kubectl_alustan::tui::state::MAX_LOG_LINES + 10) {
        press(&mut state, Action::LogLine(format!("line {i}")));
    }
    assert_eq!(state.logs.lines.len(), kubectl_alustan::tui::state::MAX_LOG_LINES);
    assert_eq!(state.logs.lines[0], "line 10");
}

#[test]
fn logs_follow_the_tail_and_scroll_back() {
    let mut state = samples();
    press(&mut state, char_key('l'));
    for i in 0..100 {
        press(&mut state, Action::LogLine(format!("line {i}")));
    }
    assert_eq!(state.view().scroll, 0, "following");
    press(&mut state, char_key('k'));
    press(&mut state, code(KeyCode::Up));
    assert_eq!(state.view().scroll, 2, "two lines back from the newest");
    press(&mut state, char_key('j'));
    assert_eq!(state.view().scroll, 1);
    press(&mut state, code(KeyCode::Home));
    assert_eq!(usize::from(state.view().scroll), 100 - state.page, "the oldest page");
    press(&mut state, code(KeyCode::End));
    assert_eq!(state.view().scroll, 0, "following again");
}

/// `[` and `]` pick the run whose log is shown (its Job), within the history.
#[test]
fn brackets_pick_the_run_whose_log_is_shown() {
    let mut state = samples();
    select(&mut state, "staging-cluster");
    let staging = staging();
    let start = |job: &str| [Effect::StartLogs { object: staging.clone(), job: job.to_owned(), follow: true }];
    assert_eq!(press(&mut state, char_key('l')), start("staging-cluster-postdeploy-7260"));
    assert_eq!(press(&mut state, char_key('[')), start("staging-cluster-deploy-7800"));
    assert_eq!(press(&mut state, char_key('[')), start("staging-cluster-deploy-90000"));
    assert_eq!(press(&mut state, char_key('[')), []);
    assert_eq!(state.flash.as_ref().map(|f| f.text.as_str()), Some("no older run recorded"));
    assert_eq!(press(&mut state, char_key(']')), start("staging-cluster-deploy-7800"));
    assert_eq!(state.logs.run, 1);
}

/// Following the latest run: when its log ends and a newer run started, that one's log
/// follows under a separator naming it; an older run picked with `[` does not move on.
#[test]
fn following_moves_on_to_the_next_run() {
    let mut state = samples();
    select(&mut state, "payments-db");
    press(&mut state, char_key('l'));
    press(&mut state, Action::LogLine("deploying".to_owned()));
    assert_eq!(press(&mut state, Action::LogEnded), []);
    // The agent starts the post-deploy: a newer run at the head of the history.
    let mut object = state.object(&ObjectKey::new("apps", "payments-db")).unwrap().clone();
    let mut post = object.status.as_ref().unwrap().history[0].clone();
    post.job_name = "payments-db-postdeploy-1".to_owned();
    post.action = alustan_shared::RunAction::PostDeploy;
    object.status.as_mut().unwrap().history.insert(0, post);
    let effects = press(&mut state, Action::Applied(Box::new(object)));
    let payments = ObjectKey::new("apps", "payments-db");
    let job = "payments-db-postdeploy-1".to_owned();
    assert_eq!(effects, [Effect::StartLogs { object: payments, job, follow: true }]);
    assert_eq!(state.logs.lines, ["deploying", "— next run: PostDeploy v2.4.0 Running —"]);
    assert!(!state.logs.ended);
}

fn with_a_plan(readonly: bool) -> State {
    let mut objects = fixtures::samples();
    objects.push(fixtures::planned());
    let mut state = state_of(objects, readonly);
    select(&mut state, "checkout");
    state
}

fn checkout() -> ObjectKey {
    ObjectKey::new("apps", "checkout")
}

#[test]
fn p_opens_the_plan_view_of_the_selection_and_l_there_opens_the_plan_runs_log() {
    let mut state = with_a_plan(false);
    assert!(press(&mut state, char_key('p')).is_empty());
    assert_eq!(top(&state), (ViewKind::Plan, Some(checkout())));
    // `l` in the Plan view: the plan run's log (the first run of the history here).
    let effects = press(&mut state, char_key('l'));
    assert_eq!(top(&state), (ViewKind::Logs, Some(checkout())));
    assert_eq!(
        effects,
        [Effect::StartLogs { object: checkout(), job: "checkout-plan-7c1e9a".to_owned(), follow: true }]
    );
    assert_eq!(press(&mut state, code(KeyCode::Esc)), [Effect::StopLogs]);
    assert_eq!(state.view().kind, ViewKind::Plan);
}

#[test]
fn a_asks_repeating_the_counts_then_approves_that_plan_id() {
    let mut state = with_a_plan(false);
    assert!(press(&mut state, char_key('a')).is_empty(), "nothing happens before the answer");
    let confirm = state.confirm.clone().expect("a confirmation modal");
    assert_eq!(
        confirm.question,
        "Approve plan p-7c1e9a of apps/checkout: 2 to add, 1 to change, 1 to destroy, 1 to replace?"
    );
    let approve = Effect::Verdict { object: checkout(), verdict: Verdict::Approve, plan: "p-7c1e9a".to_owned() };
    assert_eq!(press(&mut state, char_key('y')), [approve]);
    // `n` cancels: nothing is written.
    press(&mut state, char_key('a'));
    assert!(press(&mut state, char_key('n')).is_empty());
    assert!(state.confirm.is_none());
}

#[test]
fn x_asks_then_rejects_from_the_plan_view_too() {
    let mut state = with_a_plan(false);
    press(&mut state, char_key('p'));
    press(&mut state, char_key('x'));
    assert!(
        state
            .confirm
            .as_ref()
            .is_some_and(|c| c.question.starts_with("Reject plan p-7c1e9a of apps/checkout: 2 to add"))
    );
    let reject = Effect::Verdict { object: checkout(), verdict: Verdict::Reject, plan: "p-7c1e9a".to_owned() };
    assert_eq!(press(&mut state, char_key('y')), [reject]);
}

#[test]
fn a_on_a_resource_with_nothing_to_approve_says_why_and_asks_nothing() {
    let mut state = with_a_plan(false);
    select(&mut state, "staging-cluster");
    assert!(press(&mut state, char_key('a')).is_empty());
    assert!(state.confirm.is_none());
    let flash = state.flash.clone().expect("a flash says why");
    assert_eq!(flash.level, FlashLevel::Warn);
    assert!(flash.text.contains("has no plan script"), "{}", flash.text);
    // An applied plan: nothing to approve either.
    let mut applied = fixtures::planned();
    if let Some(plan) = applied.status.as_mut().and_then(|s| s.plan.as_mut()) {
        plan.decision = alustan_shared::PlanDecision::Applied;
    }
    press(&mut state, Action::Applied(Box::new(applied)));
    select(&mut state, "checkout");
    press(&mut state, char_key('x'));
    assert!(state.confirm.is_none());
    assert!(state.flash.as_ref().is_some_and(|f| f.text.contains("nothing to reject: plan p-7c1e9a")));
}

#[test]
fn readonly_still_opens_the_plan_view() {
    let mut state = with_a_plan(true);
    press(&mut state, char_key('p'));
    assert_eq!(top(&state), (ViewKind::Plan, Some(checkout())));
}

//! `kubectl alustan describe`'s text: multi-line messages (failure messages quote log tails)
//! stay under their field or column, as `kubectl describe` indents them, instead of starting
//! at the left margin and breaking the layout. Golden text in tests/snapshots.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use kubectl_alustan::commands::describe::body_text;
use kubectl_alustan::tui::fixtures::{self, NOW};

/// `infra/network` whose failed run and Ready condition quote the script's log tail too.
fn failed_with_log_tails() -> alustan_shared::Terraform {
    let mut object = fixtures::failed();
    let status = object.status.as_mut().unwrap();
    let tail = "deploy exited 1\nError: creating EC2 VPC: VpcLimitExceeded\n  with aws_vpc.main";
    status.history[0].message = Some(tail.to_owned());
    tail.clone_into(&mut status.conditions[0].message);
    object
}

#[test]
fn multi_line_messages_are_indented_under_their_field_and_column() {
    let text = body_text(&failed_with_log_tails(), NOW);
    insta::assert_snapshot!(text);
}

/// The golden text's layout rule, checked independently of the snapshot: every continuation line
/// of a message starts exactly where the message's first line started.
#[test]
fn continuation_lines_start_at_the_message_column() {
    let text = body_text(&failed_with_log_tails(), NOW);
    let lines: Vec<&str> = text.lines().collect();
    for first in ["Message:", "  Ready", "  Deploy"] {
        let at = lines.iter().position(|l| l.starts_with(first)).expect(first);
        let column = lines[at].find("deploy exited 1").expect("the message's first line");
        assert_eq!(lines[at + 1].find("Error:"), Some(column), "{first}:\n{text}");
        assert!(lines[at + 1][..column].trim().is_empty(), "{first}:\n{text}");
        assert_eq!(lines[at + 2].find("with aws_vpc.main"), Some(column + 2), "{first}:\n{text}");
    }
}

/// A failure's text is said once: the status message (the cause) once, the conditions point at
/// it, and only the newest run shows its log tail whole; older runs say where theirs is.
#[test]
fn a_failure_is_told_once() {
    let mut object = fixtures::failed();
    let status = object.status.as_mut().unwrap();
    let cause = "deploy failed: exit code 1: Error: InvalidVpc.Range (see `kubectl alustan logs network`)";
    status.message = Some(cause.to_owned());
    for condition in &mut status.conditions {
        cause.clone_into(&mut condition.message);
    }
    let tail = "deploy failed (network-deploy-1): exit code 1: Initializing the backend...\nError: InvalidVpc.Range\n  with aws_vpc.main";
    status.history[0].message = Some(tail.to_owned());
    let older = status.history[0].clone();
    status.history.push(older);
    let text = body_text(&object, NOW);
    assert_eq!(text.matches("InvalidVpc.Range (see").count(), 1, "{text}");
    assert_eq!(text.matches("with aws_vpc.main").count(), 1, "{text}");
    assert_eq!(text.matches("(the message above)").count(), 2, "{text}");
    assert!(text.contains("(+2 log lines: `kubectl alustan logs network --run 2`)"), "{text}");
}

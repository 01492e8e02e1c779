//! Plans as the plugin sees them: which plan an approval or a rejection may name, and how a
//! plan reads. Pure, so the command line and the TUI refuse and word things the same way.

use alustan_shared::meta::{APPROVE_PLAN, REJECT_PLAN};
use alustan_shared::{PlanAction, PlanDecision, PlanStatus, Terraform, conditions};
use jiff::Timestamp;

use crate::tui::format;

/// Approving or rejecting a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    /// The annotation that carries it to the agent.
    pub fn annotation(self) -> &'static str {
        match self {
            Verdict::Approve => APPROVE_PLAN,
            Verdict::Reject => REJECT_PLAN,
        }
    }

    /// `approve` / `reject`: the command, and the verb in messages.
    pub fn verb(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        }
    }
}

/// Why a plan cannot be approved or rejected (nothing is written then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "terraform {key} has no plan script (spec.scripts.plan), so it has no plans\n  fix: set spec.scripts.plan to the image's plan script (the README's plan contract says what it writes)"
    )]
    NoPlanScript { key: String },
    #[error("terraform {key} has no plan yet\n  fix: `kubectl alustan plan {name}` requests one")]
    NoPlan { key: String, name: String },
    /// The id named is not the current plan's (a newer plan superseded it). `about`: the
    /// current plan's decision and counts.
    #[error(
        "plan {wanted} is not the current plan of terraform {key}: the current plan is {current} ({about}); nothing was written\n  fix: read it with `kubectl alustan show-plan {name}`, then `kubectl alustan {} {name} --plan {current}`",
        verdict.verb()
    )]
    Stale { key: String, name: String, verdict: Verdict, wanted: String, current: String, about: String },
    #[error("nothing to {}: plan {id} of terraform {key} {why}", verdict.verb())]
    Nothing { key: String, verdict: Verdict, id: String, why: String },
}

/// The latest plan, or why there is none.
pub fn current(object: &Terraform) -> Result<&PlanStatus, Refusal> {
    let key = crate::commands::key(object);
    let name = object.metadata.name.clone().unwrap_or_default();
    object.status.as_ref().and_then(|s| s.plan.as_ref()).ok_or_else(|| {
        if object.spec.scripts.plan.is_none() { Refusal::NoPlanScript { key } } else { Refusal::NoPlan { key, name } }
    })
}

/// The plan `verdict` may name on `object`: the current one (`wanted`, when given, must be its
/// id), while it waits for a decision (`Pending`, or drift `Detected`).
pub fn check<'a>(object: &'a Terraform, verdict: Verdict, wanted: Option<&str>) -> Result<&'a PlanStatus, Refusal> {
    let plan = current(object)?;
    let key = crate::commands::key(object);
    let name = object.metadata.name.clone().unwrap_or_default();
    if let Some(wanted) = wanted.filter(|wanted| *wanted != plan.id) {
        return Err(Refusal::Stale {
            key,
            name,
            verdict,
            wanted: wanted.to_owned(),
            current: plan.id.clone(),
            about: format!("{:?}: {}", plan.decision, plan.counts_text()),
        });
    }
    let why = match plan.decision {
        PlanDecision::Pending | PlanDecision::Detected => return Ok(plan),
        PlanDecision::Approved => "is approved already: its deploy runs or ran".to_owned(),
        PlanDecision::Applied => "is applied already".to_owned(),
        PlanDecision::Rejected => format!("was rejected; `kubectl alustan plan {name}` plans again"),
        PlanDecision::NoChanges => "has no changes: it needs no approval".to_owned(),
        PlanDecision::Superseded => {
            format!("was superseded before it was applied; `kubectl alustan plan {name}` plans again")
        }
    };
    Err(Refusal::Nothing { key, verdict, id: plan.id.clone(), why })
}

/// The TUI's confirmation: `Approve plan ID of ns/name: 2 to add, …?` (the counts repeated).
pub fn question(verdict: Verdict, key: &str, plan: &PlanStatus) -> String {
    let verb = match verdict {
        Verdict::Approve => "Approve",
        Verdict::Reject => "Reject",
    };
    format!("{verb} plan {} of {key}: {}?", plan.id, plan.counts_text())
}

/// Terraform's marker of an action: `+` create, `~` update, `-` delete, `±` replace.
pub fn marker(action: PlanAction) -> char {
    match action {
        PlanAction::Create => '+',
        PlanAction::Update => '~',
        PlanAction::Delete => '-',
        PlanAction::Replace => '±',
    }
}

/// Whether a resource's latest plan waits for someone to approve it.
pub fn waiting(object: &Terraform) -> bool {
    object.status.as_ref().and_then(|s| s.plan.as_ref()).is_some_and(|p| p.decision == PlanDecision::Pending)
}

/// Whether the last plan of the applied inputs found drift (`Drifted=True`).
pub fn drifted(object: &Terraform) -> bool {
    object
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::DRIFTED))
        .is_some_and(|c| c.status == conditions::TRUE)
}

/// One line of a plan's text: what it says, and the action it is about (for its colour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLine {
    pub text: String,
    pub action: Option<PlanAction>,
}

impl PlanLine {
    fn plain(text: String) -> Self {
        Self { text, action: None }
    }
}

/// `show-plan`'s text (the TUI's Plan view shows the same): what was planned, when and why,
/// the counts, each changed address (`limit` of them, `None`: all) and what to do next.
pub fn lines(name: &str, plan: &PlanStatus, now: Timestamp, limit: Option<usize>) -> Vec<PlanLine> {
    let field = |label: &str, value: String| PlanLine::plain(format!("{label:<11}{value}"));
    let image = match (&plan.tag, &plan.digest) {
        (Some(tag), Some(digest)) => format!("{tag} {}", short(digest)),
        (Some(tag), None) => tag.clone(),
        (None, Some(digest)) => short(digest),
        (None, None) => "-".to_owned(),
    };
    let mut out = vec![
        field("Plan:", format!("{} ({:?})", plan.id, plan.decision)),
        field("Trigger:", format!("{:?} (generation {})", plan.trigger, plan.generation)),
        field("Image:", image),
        field("Time:", format::time(&plan.time, now)),
        field("Job:", plan.job_name.clone()),
        field("Changes:", plan.counts_text()),
    ];
    let shown = limit.unwrap_or(usize::MAX);
    out.extend(plan.changes.iter().take(shown).map(|change| PlanLine {
        text: format!("  {} {}", marker(change.action), change.address),
        action: Some(change.action),
    }));
    let hidden = plan.changes.len().saturating_sub(shown) + usize::try_from(plan.changes_omitted).unwrap_or(0);
    if hidden > 0 {
        out.push(PlanLine::plain(format!("  … and {hidden} more")));
    }
    out.push(PlanLine::plain(next_step(name, plan)));
    out
}

/// What to do about the plan, by its decision.
fn next_step(name: &str, plan: &PlanStatus) -> String {
    let id = &plan.id;
    match plan.decision {
        PlanDecision::Pending | PlanDecision::Detected => format!(
            "Approve with `kubectl alustan approve {name} --plan {id}`, or reject with `kubectl alustan reject {name} --plan {id}`."
        ),
        PlanDecision::Approved => "Approved: its deploy runs or ran.".to_owned(),
        PlanDecision::Applied => "Applied.".to_owned(),
        PlanDecision::Rejected => format!("Rejected: nothing applied; `kubectl alustan plan {name}` plans again."),
        PlanDecision::NoChanges => "No changes: nothing to approve.".to_owned(),
        PlanDecision::Superseded => {
            format!("Superseded before it was applied; `kubectl alustan plan {name}` plans again.")
        }
    }
}

fn short(digest: &str) -> String {
    // sha256: plus 12 hex digits, as `docker images` shows an image.
    digest.char_indices().nth(19).map_or_else(|| digest.to_owned(), |(i, _)| format!("{}…", &digest[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alustan_shared::{PlanCounts, PlanTrigger, PlannedChange};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn plan(decision: PlanDecision) -> PlanStatus {
        PlanStatus {
            id: "p-2f4a".into(),
            job_name: "web-plan-1".into(),
            generation: 4,
            tag: Some("1.0.3".into()),
            digest: None,
            trigger: PlanTrigger::Change,
            time: Time(crate::tui::fixtures::NOW),
            counts: PlanCounts { create: 2, update: 1, delete: 1, replace: 1 },
            changes: vec![
                PlannedChange { address: "aws_instance.web[0]".into(), action: PlanAction::Create },
                PlannedChange { address: "aws_s3_bucket.logs".into(), action: PlanAction::Update },
                PlannedChange { address: "aws_iam_role.old".into(), action: PlanAction::Delete },
                PlannedChange { address: "aws_db_instance.main".into(), action: PlanAction::Replace },
            ],
            changes_omitted: 1,
            artifact_digest: None,
            artifact_secret: None,
            decision,
        }
    }

    fn object(plan: Option<PlanStatus>, script: bool) -> Terraform {
        let mut object = crate::tui::fixtures::terraform("apps", "web", 60);
        object.spec.scripts.plan = script.then(|| "plan".to_owned());
        object.status = Some(alustan_shared::TerraformStatus { plan, ..Default::default() });
        object
    }

    #[test]
    fn the_current_pending_or_detected_plan_may_be_approved_or_rejected() {
        for decision in [PlanDecision::Pending, PlanDecision::Detected] {
            let object = object(Some(plan(decision)), true);
            for verdict in [Verdict::Approve, Verdict::Reject] {
                assert_eq!(check(&object, verdict, None).map(|p| p.id.as_str()), Ok("p-2f4a"));
                assert_eq!(check(&object, verdict, Some("p-2f4a")).map(|p| p.id.as_str()), Ok("p-2f4a"));
            }
        }
    }

    #[test]
    fn a_stale_id_is_refused_naming_the_current_one() {
        let object = object(Some(plan(PlanDecision::Pending)), true);
        let refusal = check(&object, Verdict::Approve, Some("p-old")).unwrap_err();
        let text = refusal.to_string();
        assert!(matches!(refusal, Refusal::Stale { .. }));
        assert!(text.contains("plan p-old is not the current plan of terraform apps/web"), "{text}");
        assert!(
            text.contains("the current plan is p-2f4a (Pending: 2 to add, 1 to change, 1 to destroy, 1 to replace)")
        );
        assert!(text.contains("`kubectl alustan approve web --plan p-2f4a`"), "{text}");
    }

    #[test]
    fn decided_plans_and_missing_plans_have_nothing_to_approve() {
        for (decision, why) in [
            (PlanDecision::NoChanges, "has no changes"),
            (PlanDecision::Applied, "is applied already"),
            (PlanDecision::Rejected, "was rejected; `kubectl alustan plan web` plans again"),
            (PlanDecision::Approved, "is approved already"),
        ] {
            let text = check(&object(Some(plan(decision)), true), Verdict::Reject, None).unwrap_err().to_string();
            assert!(text.starts_with("nothing to reject: plan p-2f4a of terraform apps/web"), "{text}");
            assert!(text.contains(why), "{decision:?}: {text}");
        }
        let none = check(&object(None, true), Verdict::Approve, None).unwrap_err();
        assert!(none.to_string().contains("`kubectl alustan plan web` requests one"), "{none}");
        let no_script = check(&object(None, false), Verdict::Approve, None).unwrap_err();
        assert!(matches!(no_script, Refusal::NoPlanScript { .. }), "{no_script}");
    }

    #[test]
    fn plan_text_marks_each_action_counts_the_omitted_and_says_how_to_approve() {
        let text: Vec<String> = lines("web", &plan(PlanDecision::Pending), crate::tui::fixtures::NOW, Some(3))
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(text[0], "Plan:      p-2f4a (Pending)");
        assert_eq!(text[5], "Changes:   2 to add, 1 to change, 1 to destroy, 1 to replace");
        assert_eq!(text[6..9], ["  + aws_instance.web[0]", "  ~ aws_s3_bucket.logs", "  - aws_iam_role.old"]);
        // One listed but not shown, one the agent omitted.
        assert_eq!(text[9], "  … and 2 more");
        assert!(text[10].contains("`kubectl alustan approve web --plan p-2f4a`"), "{}", text[10]);
        let all = lines("web", &plan(PlanDecision::Applied), crate::tui::fixtures::NOW, None);
        assert!(all.iter().any(|l| l.text == "  ± aws_db_instance.main" && l.action == Some(PlanAction::Replace)));
        assert_eq!(all.last().map(|l| l.text.as_str()), Some("Applied."));
    }
}

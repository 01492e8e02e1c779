//! What a plan run hands back, and what of it the agent keeps.
//!
//! The plan Job's wrapper bundles the summary (`$ALUSTAN_PLAN`) and the plan file
//! (`$ALUSTAN_PLAN_FILE`, optional) into its outputs file — the summary's size in bytes on the
//! first line, the summary, then the plan file — so the pair reaches the agent sealed like any
//! outputs (see [`crate::runs::seal`]): the plan file holds the values of every variable and
//! resource attribute, secrets included. Of the summary only each changed resource's address
//! and action are kept; values in it (a whole `terraform show -json` is accepted) are dropped.

use alustan_shared::{PlanAction, PlanCounts, PlannedChange};
use serde::Deserialize;

/// Changed resources listed in `status.plan.changes` (the counts cover all of them).
pub const LISTED_CHANGES: usize = 100;

/// Why a plan run's result cannot be used. Never quotes the summary (it may hold values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan script wrote no summary to $ALUSTAN_PLAN (write `terraform show -json PLANFILE` there)")]
    NoSummary,
    #[error("the plan bundle is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the plan summary in $ALUSTAN_PLAN is not JSON (line {line}, column {column}); write `terraform show -json PLANFILE` there"
    )]
    NotJson { line: usize, column: usize },
    #[error(
        "the plan summary in $ALUSTAN_PLAN has no `resource_changes` list (the format of `terraform show -json PLANFILE`)"
    )]
    NoResourceChanges,
    #[error("resource change {index} of the plan summary has no `address` string")]
    NoAddress { index: usize },
    #[error(
        "resource change {address:?} of the plan summary has unknown actions {actions:?} (expected Terraform's: no-op, create, read, update, delete)"
    )]
    UnknownActions { address: String, actions: Vec<String> },
}

/// A plan run's result, as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub counts: PlanCounts,
    /// At most [`LISTED_CHANGES`], in the summary's order.
    pub changes: Vec<PlannedChange>,
    /// Changed resources beyond those listed.
    pub omitted: usize,
    /// The plan file, when the script wrote one.
    pub artifact: Option<Vec<u8>>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(f, "{} to add, {} to change, {} to destroy, {} to replace", c.create, c.update, c.delete, c.replace)
    }
}

#[derive(Deserialize)]
struct Summary {
    resource_changes: Option<Vec<serde_json::Value>>,
}

/// Reads the bundle a plan run printed (unsealed).
pub fn read_bundle(bundle: &[u8]) -> Result<Plan, PlanError> {
    if bundle.is_empty() {
        return Err(PlanError::NoSummary);
    }
    let newline = bundle.iter().position(|b| *b == b'\n').ok_or(PlanError::Malformed("no size line"))?;
    let size: usize = std::str::from_utf8(&bundle[..newline])
        .ok()
        .and_then(|line| line.trim().parse().ok())
        .ok_or(PlanError::Malformed("the size line is not a number"))?;
    let rest = &bundle[newline + 1..];
    if size == 0 {
        return Err(PlanError::NoSummary);
    }
    if size > rest.len() {
        return Err(PlanError::Malformed("the summary is shorter than its size line says"));
    }
    let (summary, artifact) = rest.split_at(size);
    let mut plan = read_summary(summary)?;
    plan.artifact = (!artifact.is_empty()).then(|| artifact.to_vec());
    Ok(plan)
}

/// The changes a summary lists: `resource_changes[].address` and `.change.actions` (or
/// `.actions`); `no-op` and `read` are not changes.
pub fn read_summary(summary: &[u8]) -> Result<Plan, PlanError> {
    let parsed: Summary =
        serde_json::from_slice(summary).map_err(|err| PlanError::NotJson { line: err.line(), column: err.column() })?;
    let entries = parsed.resource_changes.ok_or(PlanError::NoResourceChanges)?;
    let mut plan = Plan::default();
    for (index, entry) in entries.iter().enumerate() {
        let address = entry.get("address").and_then(|a| a.as_str()).ok_or(PlanError::NoAddress { index })?;
        let actions = entry.get("change").and_then(|c| c.get("actions")).or_else(|| entry.get("actions"));
        let actions: Vec<String> = actions
            .and_then(|a| a.as_array())
            .map(|list| list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let Some(action) = action_of(&actions).map_err(|()| PlanError::UnknownActions {
            address: address.chars().take(200).collect(),
            actions: actions.iter().map(|a| a.chars().take(20).collect()).collect(),
        })?
        else {
            continue;
        };
        let count = match action {
            PlanAction::Create => &mut plan.counts.create,
            PlanAction::Update => &mut plan.counts.update,
            PlanAction::Delete => &mut plan.counts.delete,
            PlanAction::Replace => &mut plan.counts.replace,
        };
        *count += 1;
        if plan.changes.len() < LISTED_CHANGES {
            plan.changes.push(PlannedChange { address: address.chars().take(512).collect(), action });
        } else {
            plan.omitted += 1;
        }
    }
    Ok(plan)
}

/// Terraform's action lists: `["no-op"]`, `["read"]`, `["create"]`, `["update"]`, `["delete"]`,
/// `["delete", "create"]` and `["create", "delete"]` (replace). `None`: no change.
fn action_of(actions: &[String]) -> Result<Option<PlanAction>, ()> {
    let words: Vec<&str> = actions.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["no-op" | "read"] => Ok(None),
        ["create"] => Ok(Some(PlanAction::Create)),
        ["update"] => Ok(Some(PlanAction::Update)),
        ["delete"] => Ok(Some(PlanAction::Delete)),
        ["delete", "create"] | ["create", "delete"] => Ok(Some(PlanAction::Replace)),
        _ => Err(()),
    }
}

/// The id of the plan made by Job `job` with this result: `{generation}-{hash}` of the Job
/// and the plan's content, so a re-plan gets a new id even when it plans the same changes.
pub fn plan_id(job: &str, generation: i64, summary_digest: &str) -> String {
    format!("{generation}-{}", &alustan_shared::fingerprint(&[job, summary_digest])[..8])
}

/// SHA-256 of `bytes`, as `sha256:hex`.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(summary: &str, artifact: &[u8]) -> Vec<u8> {
        let mut out = format!("{}\n{summary}", summary.len()).into_bytes();
        out.extend_from_slice(artifact);
        out
    }

    #[test]
    fn a_terraform_show_json_is_counted_by_action_and_its_values_dropped() {
        let summary = r#"{"format_version":"1.2","resource_changes":[
            {"address":"aws_vpc.main","change":{"actions":["create"],"after":{"cidr":"10.0.0.0/16"}}},
            {"address":"aws_db.main","change":{"actions":["update"],"after":{"password":"hunter2"}}},
            {"address":"aws_subnet.a","change":{"actions":["delete","create"]}},
            {"address":"aws_subnet.b","change":{"actions":["create","delete"]}},
            {"address":"aws_old.x","change":{"actions":["delete"]}},
            {"address":"data.aws_ami.x","change":{"actions":["read"]}},
            {"address":"aws_same.y","change":{"actions":["no-op"]}}]}"#;
        let plan = read_bundle(&bundle(summary, b"PK\x03\x04 plan file")).unwrap();
        assert_eq!(plan.counts, PlanCounts { create: 1, update: 1, delete: 1, replace: 2 });
        assert_eq!(plan.to_string(), "1 to add, 1 to change, 1 to destroy, 2 to replace");
        assert_eq!(plan.changes.len(), 5);
        assert_eq!(plan.changes[2], PlannedChange { address: "aws_subnet.a".into(), action: PlanAction::Replace });
        assert_eq!(plan.artifact.as_deref(), Some(&b"PK\x03\x04 plan file"[..]));
        assert!(!format!("{plan:?}").contains("hunter2"), "values are never kept");
    }

    #[test]
    fn the_short_form_and_an_empty_plan_are_read() {
        let plan = read_summary(br#"{"resource_changes":[{"address":"a.b","actions":["update"]}]}"#).unwrap();
        assert_eq!(plan.counts.update, 1);
        let empty = read_bundle(&bundle(r#"{"resource_changes":[]}"#, b"")).unwrap();
        assert_eq!((empty.counts.total(), empty.artifact), (0, None));
    }

    #[test]
    fn only_the_first_hundred_changes_are_listed_and_all_are_counted() {
        let entries: Vec<String> =
            (0..130).map(|i| format!(r#"{{"address":"r.n{i}","change":{{"actions":["create"]}}}}"#)).collect();
        let plan = read_summary(format!(r#"{{"resource_changes":[{}]}}"#, entries.join(",")).as_bytes()).unwrap();
        assert_eq!((plan.counts.create, plan.changes.len(), plan.omitted), (130, LISTED_CHANGES, 30));
    }

    #[test]
    fn bad_summaries_are_named_errors_that_quote_no_value() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "wrote no summary"),
            (b"0\n", "wrote no summary"),
            (b"12\nshort", "shorter than its size line"),
            (b"x\n{}", "size line is not a number"),
            (b"11\nnot json!!!", "is not JSON (line 1, column 2)"),
            (b"2\n{}", "no `resource_changes` list"),
        ];
        for (input, expected) in cases {
            let error = read_bundle(input).unwrap_err().to_string();
            assert!(error.contains(expected), "{input:?}: {error}");
        }
        let secret = r#"{"resource_changes":[{"change":{"after":{"password":"hunter2"}}}]}"#;
        let error = read_summary(secret.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("resource change 0") && !error.contains("hunter2"), "{error}");
        let odd = read_summary(br#"{"resource_changes":[{"address":"a.b","actions":["explode"]}]}"#).unwrap_err();
        assert!(odd.to_string().contains("unknown actions"), "{odd}");
    }

    #[test]
    fn plan_ids_differ_per_job_and_content() {
        assert_eq!(plan_id("j", 3, "d1"), plan_id("j", 3, "d1"));
        assert_ne!(plan_id("j", 3, "d1"), plan_id("j2", 3, "d1"));
        assert_ne!(plan_id("j", 3, "d1"), plan_id("j", 3, "d2"));
        assert!(plan_id("j", 3, "d1").starts_with("3-"));
    }
}

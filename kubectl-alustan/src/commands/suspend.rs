//! `suspend NAME|--all`, `resume NAME|--all`: merge-patch `spec.suspend`. Unlike sync this IS
//! a spec change, so GitOps tools may revert it: say so.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use kube::api::ListParams;
use serde_json::json;

use crate::cli::Target;
use crate::errors::CliError;
use crate::kube_client::Connection;

const GITOPS_HINT: &str = "note: this changed spec.suspend in the cluster; if Argo CD or Flux manages this resource it may revert it — make the change in git to keep it";

pub async fn run(conn: &Connection, target: Target, suspend: bool) -> Result<(), CliError> {
    let verb = if suspend { "suspend" } else { "resume" };
    let names: Vec<(String, String)> = if let Some(name) = target.name {
        vec![(conn.namespace.clone(), name)]
    } else {
        let all = super::list(conn, &ListParams::default()).await?;
        let names: Vec<(String, String)> = all
            .iter()
            .filter(|o| o.spec.suspend != suspend)
            .filter_map(|o| Some((o.metadata.namespace.clone()?, o.metadata.name.clone()?)))
            .collect();
        if names.is_empty() {
            let already = if suspend { "suspended" } else { "running (none is suspended)" };
            crate::outln!("nothing to {verb}: every resource in scope is already {already}");
            return Ok(());
        }
        let scope = conn.scope().map_or_else(|| "every namespace".to_owned(), |n| format!("namespace {n}"));
        let effect = if suspend {
            String::new()
        } else {
            let runs = all.iter().filter(|o| o.spec.suspend && o.resume_runs().is_some()).count();
            format!(
                " {runs} will start a deploy (inputs changed or a sync was requested meanwhile), the others run nothing until something changes."
            )
        };
        confirm(&format!("{verb} {} terraform(s) in {scope}?{effect}", names.len()), target.yes)?;
        names
    };
    for (namespace, name) in names {
        let conn = conn.in_namespace(&namespace);
        let patched = super::merge_patch(&conn, &name, &json!({"spec": {"suspend": suspend}})).await?;
        let done = if suspend { "suspended" } else { "resumed" };
        let effect = match (suspend, patched.resume_runs()) {
            (true, _) => String::new(),
            (false, Some(why)) => format!(": {why}"),
            (false, None) => ": nothing runs now, its inputs are unchanged since the last successful deploy".to_owned(),
        };
        crate::outln!("terraform {}/{name} {done}{effect}", conn.namespace);
    }
    crate::errln!("{GITOPS_HINT}");
    Ok(())
}

/// Asks on a terminal; elsewhere `--yes` is the answer (a script cannot be asked).
fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!("{question} stdin is not a terminal, so pass --yes to confirm")));
    }
    crate::output::stderr(format_args!("{question} [y/N] "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| CliError::Other(format!("reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(CliError::Other("cancelled".into())) }
}

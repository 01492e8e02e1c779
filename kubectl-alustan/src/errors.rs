//! Errors that say what went wrong AND what to do about it, and their exit codes
//! (0 ok, 1 error, 2 usage — the same as kubectl).

use std::fmt::Write as _;

/// Every failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no usable cluster configuration: {0}\n  fix: pass --kubeconfig PATH, set $KUBECONFIG, or create ~/.kube/config (`kubectl config view` shows what kubectl uses)"
    )]
    Config(String),
    #[error(
        "the Terraform CRD (terraforms.alustan.io) is not installed in this cluster\n  fix: install it with `kubectl apply -f crds/terraform.yaml` from the alustan repository, or `helm install alustan <alustan chart>` (the chart installs it too)"
    )]
    CrdMissing,
    #[error(
        "forbidden: you may not {verb} {resource}{}\n  fix: ask a cluster admin for a Role (or ClusterRole) granting `{verb}` on `{resource}`{}; `kubectl auth can-i {verb} {resource}{}` checks it\n  server said: {message}",
        in_namespace(namespace.as_deref()),
        in_namespace(namespace.as_deref()),
        namespace.as_deref().map(|n| format!(" -n {n}")).unwrap_or_default()
    )]
    Forbidden { verb: String, resource: String, namespace: Option<String>, message: String },
    /// `namespace`: `None` when every namespace was searched (`-A`); `elsewhere`: namespaces
    /// holding that exact name.
    #[error(
        "terraform \"{name}\" not found {}{}",
        in_namespace(namespace.as_deref()).trim_start(),
        not_found_hint(namespace.as_deref(), similar, elsewhere)
    )]
    NotFound { name: String, namespace: Option<String>, similar: Vec<String>, elsewhere: Vec<String> },
    /// `--context`/`--cluster`/`--user` names an entry the kubeconfig does not have.
    #[error(
        "{kind} \"{name}\" is not in the kubeconfig{}\n  fix: pass one of them with --{kind}; `kubectl config {}` lists them",
        listed(known),
        if *kind == "context" { "get-contexts" } else { "view" }
    )]
    NoSuchEntry { kind: &'static str, name: String, known: Vec<String> },
    /// The server refused a label selector (`-l`).
    #[error(
        "invalid label selector \"{selector}\": {message}\n  fix: write it as kubectl does: `key=value`, `key!=value`, `key in (a,b)`, `key notin (a)`, `key`, `!key`, joined with commas"
    )]
    BadSelector { selector: String, message: String },
    #[error("{0}")]
    Usage(String),
    /// The run the command waited for ended badly (exit 1).
    #[error("{0}")]
    RunFailed(String),
    /// `--wait` ran out of time (exit 3).
    #[error("timed out after {0}; the run may still be going: `kubectl alustan describe` shows its state")]
    Timeout(String),
    /// `--wait` on a suspended resource: no run can start (exit 4).
    #[error("{0}")]
    Suspended(String),
    /// `--wait` on a resource whose spec the agent refused: no run can start (exit 5).
    #[error("{0}")]
    InvalidSpec(String),
    /// `--wait` while no agent holds its Lease: no run can start (exit 6).
    #[error("{0}")]
    AgentDown(String),
    #[error(
        "cannot reach the cluster to {what}: {source}\n  fix: check the context (`kubectl config current-context`, --context) and that the API server answers (`kubectl cluster-info`)"
    )]
    Unreachable {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused a request: what it said (its message and reason, never a dump).
    #[error("cannot {what}: {message}")]
    Api { what: String, message: String },
    /// An approval or rejection the current plan does not allow (exit 7 for a stale id).
    #[error(transparent)]
    Plan(Box<crate::plans::Refusal>),
    #[error("{0}")]
    Other(String),
}

fn in_namespace(namespace: Option<&str>) -> String {
    namespace.map_or_else(|| " in any namespace".to_owned(), |n| format!(" in namespace \"{n}\""))
}

fn listed(known: &[String]) -> String {
    if known.is_empty() { " (it has none)".to_owned() } else { format!(" (it has: {})", known.join(", ")) }
}

/// What to try next: the namespaces holding that name, else close names, else how to list.
fn not_found_hint(namespace: Option<&str>, similar: &[String], elsewhere: &[String]) -> String {
    if !elsewhere.is_empty() {
        let flags: Vec<String> = elsewhere.iter().map(|n| format!("-n {n}")).collect();
        return format!("\n  it exists in namespace {}: add {}", elsewhere.join(", "), flags.join(" or "));
    }
    if similar.is_empty() {
        let list = if namespace.is_some() { "get" } else { "get -A" };
        return format!("\n  fix: `kubectl alustan {list}` lists the names there");
    }
    let mut text = String::from("\n  did you mean:");
    for name in similar {
        let _ = write!(text, " {name}");
    }
    text
}

/// Every exit code and what it means, for the README (a test keeps them in sync).
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "success (and `--help`, `--version`); also a closed stdout (piped into `head`): the command ends quietly"),
    (
        1,
        "an error; for `sync`/`resync`/`plan`/`approve --wait`: the run ended `Failed` or `Error`; `approve`/`reject` with no plan waiting for a decision",
    ),
    (2, "usage: an unknown command or flag, a bad flag value, `--all` without `--yes` off a terminal"),
    (3, "`--wait`: timed out (`--timeout`); the run may still be going"),
    (4, "`--wait`: the resource is suspended, so no run starts (the request is kept)"),
    (5, "`--wait`: the agent refused the resource's spec (`Stalled`, `InvalidSpec`), so no run starts"),
    (6, "`--wait`: the agent is not running (its Lease is stale or absent), so no run starts"),
    (7, "`approve`/`reject --plan ID`: ID is not the current plan (a newer plan superseded it); nothing was written"),
];

/// [`EXIT_CODES`] as a Markdown table.
pub fn exit_codes_markdown() -> String {
    let mut text = String::from("| Exit code | Meaning |\n|---|---|\n");
    for (code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "| `{code}` | {meaning} |");
    }
    text
}

impl CliError {
    /// kubectl's convention (2 for usage errors, 1 for everything else), plus one code per
    /// reason a `--wait` ended without a run (README, "Errors and exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Timeout(_) => 3,
            CliError::Suspended(_) => 4,
            CliError::InvalidSpec(_) => 5,
            CliError::AgentDown(_) => 6,
            CliError::Plan(refusal) if matches!(**refusal, crate::plans::Refusal::Stale { .. }) => 7,
            _ => 1,
        }
    }

    /// Turns an API error into one naming the verb, resource and namespace it concerned.
    pub fn api(error: kube::Error, verb: &str, resource: &str, namespace: Option<&str>) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 403 => CliError::Forbidden {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                namespace: namespace.map(str::to_owned),
                message: status.message.clone(),
            },
            kube::Error::Api(status) => CliError::Api {
                what: format!("{verb} {resource}{}", in_namespace(namespace)),
                message: format!("{} ({} {})", status.message, status.code, status.reason),
            },
            _ => CliError::Unreachable { what: format!("{verb} {resource}{}", in_namespace(namespace)), source: error },
        }
    }
}

impl From<crate::plans::Refusal> for CliError {
    fn from(refusal: crate::plans::Refusal) -> Self {
        CliError::Plan(Box::new(refusal))
    }
}

/// Whether an error is a 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Names that look like `wanted` (shared prefix, containment or a small edit distance), best first.
pub fn similar_names<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|name| {
            let distance = edit_distance(wanted, name);
            let close = distance <= wanted.len().max(3) / 3 + 1 || name.contains(wanted) || wanted.contains(name);
            close.then_some((distance, name))
        })
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(5).map(|(_, name)| name.to_owned()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names_are_close_ones() {
        let names = ["staging", "stagin-eu", "production", "dev"];
        assert_eq!(similar_names("stagng", names), vec!["staging"]);
        assert_eq!(similar_names("stagin", names), vec!["staging", "stagin-eu"]);
        assert!(similar_names("zzzzzz", names).is_empty());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::CrdMissing.exit_code(), 1);
        assert_eq!(CliError::RunFailed("x".into()).exit_code(), 1);
        assert_eq!(CliError::Timeout("x".into()).exit_code(), 3);
        assert_eq!(CliError::Suspended("x".into()).exit_code(), 4);
        assert_eq!(CliError::InvalidSpec("x".into()).exit_code(), 5);
        assert_eq!(CliError::AgentDown("x".into()).exit_code(), 6);
    }
}

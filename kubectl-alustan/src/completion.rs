//! Dynamic completion for `kubectl alustan <TAB>`: kubectl (1.26+) runs
//! `kubectl_complete-alustan ARGS… PARTIAL` and expects Cobra's protocol: one candidate per
//! line (`value<TAB>description`), then `:DIRECTIVE` (4 = no file completion). Names of
//! Terraforms and namespaces come from the cluster, with the flags typed so far.

use clap::CommandFactory;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;

use crate::cli::{Cli, KubeFlags};

/// Cobra's `ShellCompDirectiveNoFileComp`.
const NO_FILE_COMPLETION: u8 = 4;

/// Flags that take a value: the word after them is that value, not a positional.
const VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--context",
    "--kubeconfig",
    "--cluster",
    "--user",
    "--as",
    "-o",
    "--output",
    "-l",
    "--selector",
    "--timeout",
    "--run",
    "--cache-dir",
    "--agent-namespace",
    "--plan",
];

/// Subcommands whose first positional is a Terraform name.
const TAKES_NAME: &[&str] = &[
    "get",
    "describe",
    "tree",
    "sync",
    "resync",
    "plan",
    "approve",
    "reject",
    "show-plan",
    "outputs",
    "credentials",
    "logs",
    "suspend",
    "resume",
];

/// The candidates for the last word of `words` (which may be empty), Cobra-formatted.
pub async fn complete(words: &[String]) -> String {
    let (partial, typed) = words.split_last().map_or(("", &[][..]), |(last, rest)| (last.as_str(), rest));
    let command = Cli::command();
    let mut positionals = Vec::new();
    let mut flags = KubeFlags::default();
    let mut previous: Option<&str> = None;
    for word in typed {
        match previous.take() {
            Some("-n" | "--namespace") => flags.namespace = Some(word.clone()),
            Some("--context") => flags.context = Some(word.clone()),
            Some("--kubeconfig") => flags.kubeconfig = Some(word.into()),
            Some("--cluster") => flags.cluster = Some(word.clone()),
            Some("--user") => flags.user = Some(word.clone()),
            Some(_) => {}
            None if VALUE_FLAGS.contains(&word.as_str()) => previous = Some(word),
            None if word == "-A" || word == "--all-namespaces" => flags.all_namespaces = true,
            None if word.starts_with('-') => {}
            None => positionals.push(word.as_str()),
        }
    }
    let subcommand = positionals.first().copied();
    let candidates: Vec<(String, String)> = match (previous, subcommand) {
        (Some("-n" | "--namespace" | "--agent-namespace"), _) => namespaces(&flags).await,
        (Some("-o" | "--output"), _) => {
            crate::cli::GET_FORMATS.iter().map(|v| ((*v).to_owned(), String::new())).collect()
        }
        (Some(_), _) => Vec::new(),
        _ if partial.starts_with('-') => flag_names(&command, subcommand),
        (None, None) => command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (s.get_name().to_owned(), s.get_about().map(ToString::to_string).unwrap_or_default()))
            .collect(),
        (None, Some(sub)) if TAKES_NAME.contains(&sub) && positionals.len() == 1 => terraforms(&flags).await,
        (None, Some(_)) => Vec::new(),
    };
    let mut out = String::new();
    for (value, about) in candidates.into_iter().filter(|(value, _)| value.starts_with(partial)) {
        out.push_str(&value);
        if !about.is_empty() {
            out.push('\t');
            out.push_str(about.lines().next().unwrap_or_default());
        }
        out.push('\n');
    }
    out.push(':');
    out.push_str(&NO_FILE_COMPLETION.to_string());
    out.push('\n');
    out
}

fn flag_names(command: &clap::Command, subcommand: Option<&str>) -> Vec<(String, String)> {
    let scoped = subcommand.and_then(|name| command.find_subcommand(name)).unwrap_or(command);
    scoped
        .get_arguments()
        .chain(command.get_arguments().filter(|a| a.is_global_set()))
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            Some((format!("--{}", a.get_long()?), a.get_help().map(ToString::to_string).unwrap_or_default()))
        })
        .collect()
}

/// Names in scope; completion must never fail loudly, so errors give no candidates.
async fn terraforms(flags: &KubeFlags) -> Vec<(String, String)> {
    let Ok(conn) = crate::kube_client::connect(flags).await else { return Vec::new() };
    let Ok(items) = crate::commands::list(&conn, &ListParams::default()).await else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|o| {
            let state = crate::tui::format::state(&o).to_owned();
            Some((o.metadata.name?, state))
        })
        .collect()
}

async fn namespaces(flags: &KubeFlags) -> Vec<(String, String)> {
    let Ok(conn) = crate::kube_client::connect(flags).await else { return Vec::new() };
    let api: Api<Namespace> = Api::all(conn.client);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().filter_map(|n| Some((n.metadata.name?, String::new()))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn plan_commands_and_the_plan_flag_are_offered() {
        let out = complete(&words("")).await;
        for command in ["plan\t", "approve\t", "reject\t", "show-plan\t"] {
            assert!(out.lines().any(|l| l.starts_with(command)), "{command}: {out}");
        }
        let out = complete(&words("approve web --p")).await;
        assert!(out.starts_with("--plan\tThe plan id"), "{out}");
        // The word after --plan is its value: no Terraform names (and no cluster look-up).
        assert_eq!(complete(&words("approve web --plan ")).await, ":4\n");
    }

    #[test]
    fn shell_scripts_complete_the_plan_commands() {
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "kubectl-alustan", &mut script);
        let script = String::from_utf8_lossy(&script);
        for command in ["plan", "approve", "reject", "show-plan"] {
            assert!(script.contains(&format!("kubectl__alustan,{command})")), "{command}");
        }
    }

    #[tokio::test]
    async fn agent_namespace_is_offered_and_takes_a_value() {
        let out = complete(&words("version --agent")).await;
        assert!(out.starts_with("--agent-namespace\tWhere the alustan agent runs"), "{out}");
        // The word after it is its value, not the subcommand: subcommands are still offered.
        let out = complete(&words("--agent-namespace ops ")).await;
        assert!(out.lines().any(|l| l.starts_with("version\t")), "{out}");
    }
}

//! The command line: kubectl's global flags plus the plugin's subcommands.
//!
//! kubectl runs `kubectl-alustan` for `kubectl alustan …`, so help and completions are written
//! for `kubectl alustan` (`bin_name`), and the global flags mean what they mean to kubectl.

use std::path::PathBuf;
use std::time::Duration;

use alustan_shared::duration::parse_duration;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// See, trigger, resync and inspect alustan `Terraform` resources.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "kubectl-alustan", bin_name = "kubectl alustan", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeFlags,

    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's connection flags, accepted before or after the subcommand like kubectl does.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeFlags {
    /// The namespace (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// All namespaces (wins over --namespace, as in kubectl)
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,

    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// Username to impersonate
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Where the alustan agent runs (its Lease, Deployment and Pods); default: every namespace
    #[arg(long, global = true, value_name = "NAMESPACE")]
    pub agent_namespace: Option<String>,

    /// kubectl's discovery cache directory: accepted so `kubectl alustan … --cache-dir D`
    /// works (kubectl refuses flags before a plugin's name); the plugin has no such cache.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl KubeFlags {
    /// The namespace to scope to: `None` means all namespaces; `Some(None)` the context's default.
    pub fn scope(&self) -> Option<Option<&str>> {
        if self.all_namespaces { None } else { Some(self.namespace.as_deref()) }
    }
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List Terraform resources: state, applied version, ready, age
    Get {
        /// One resource by name (default: all in scope)
        name: Option<String>,
        /// Stream changes after the first listing
        #[arg(short = 'w', long)]
        watch: bool,
        /// Output format: table, wide, yaml, json, name, jsonpath=TEMPLATE, custom-columns=HEADER:PATH,…
        #[arg(short = 'o', long, value_name = "FORMAT", value_parser = parse_get_format, default_value = "table")]
        output: GetFormat,
        /// Label selector, e.g. `team=platform,env!=prod`
        #[arg(short = 'l', long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// Keep metadata.managedFields in -o yaml|json (hidden by default, as kubectl does)
        #[arg(long)]
        show_managed_fields: bool,
    },
    /// Show a resource in detail: applied image and why, conditions, outputs, runs, events
    Describe { name: String },
    /// Show the dependency graph around a resource (dependsOn, variablesFrom) with states
    Tree { name: String },
    /// Trigger a run now (sets the resync annotation)
    Sync {
        name: String,
        /// Follow the run's log and progress until it ends (exit codes: README)
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. `90s`, `10m`, `1h30m`
        #[arg(long, requires = "wait", value_parser = parse_duration, default_value = "30m")]
        timeout: Duration,
    },
    /// Rescan the registry (bypassing its cache), then run
    Resync {
        name: String,
        /// Follow the run's log and progress until it ends (exit codes: README)
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. `90s`, `10m`, `1h30m`
        #[arg(long, requires = "wait", value_parser = parse_duration, default_value = "30m")]
        timeout: Duration,
    },
    /// Request a plan now (sets the plan annotation); nothing is applied until it is approved
    Plan {
        name: String,
        /// Follow the plan run until it ends, then print the plan (exit codes: README)
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. `90s`, `10m`, `1h30m`
        #[arg(long, requires = "wait", value_parser = parse_duration, default_value = "30m")]
        timeout: Duration,
    },
    /// Approve the current plan (it is then applied); refuses a plan id that is not the current one
    Approve(Approve),
    /// Reject the current plan (nothing is applied); refuses a plan id that is not the current one
    Reject {
        name: String,
        /// The plan id (`status.plan.id`, shown by show-plan); refused unless it is the current plan
        #[arg(long, value_name = "ID")]
        plan: Option<String>,
    },
    /// Print the latest plan: counts, each changed address, and how to approve it
    ShowPlan {
        name: String,
        /// Output format (default: text); json and yaml print status.plan
        #[arg(short = 'o', long, value_enum)]
        output: Option<DataFormat>,
    },
    /// Print the terraform and post-deploy outputs of the last successful deploy
    Outputs {
        name: String,
        /// Output format (default: a NAME/FROM/VALUE table)
        #[arg(short = 'o', long, value_enum)]
        output: Option<DataFormat>,
        /// Read the sensitive outputs' Secret with your own RBAC and print them too
        #[arg(long)]
        show_sensitive: bool,
    },
    /// List credential references of the tools a deploy installed; passwords masked
    Credentials {
        name: String,
        /// Read the referenced Secrets with your own RBAC and print the passwords
        #[arg(long)]
        reveal: bool,
        /// Output format (default: a table)
        #[arg(short = 'o', long, value_enum)]
        output: Option<DataFormat>,
    },
    /// Print the log of the latest (or an earlier) run's pod
    Logs {
        name: String,
        /// Which run, counting back from the latest (1 = latest)
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_run)]
        run: u32,
        /// Keep streaming the log
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Stop every run of a resource (sets spec.suspend)
    #[command(group(ArgGroup::new("target").required(true).args(["name", "all"])))]
    Suspend(Target),
    /// Let a suspended resource run again
    #[command(group(ArgGroup::new("target").required(true).args(["name", "all"])))]
    Resume(Target),
    /// Print the plugin version (and the agent's, when reachable)
    Version,
    /// Open the terminal UI: a live list with describe, outputs, credentials, logs, sync
    Tui {
        /// Disable every key that changes the cluster
        #[arg(long)]
        readonly: bool,
    },
    /// Print a shell completion script
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

/// `suspend`/`resume` act on one resource or, with a confirmation prompt, on all in scope.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: Option<String>,
    /// Every resource in scope (asks for confirmation)
    #[arg(long)]
    pub all: bool,
    /// Skip the confirmation of --all (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
}

/// `approve`: which plan, and whether to follow its deploy.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Approve {
    pub name: String,
    /// The plan id (`status.plan.id`, shown by show-plan); refused unless it is the current plan
    #[arg(long, value_name = "ID")]
    pub plan: Option<String>,
    /// Follow the deploy of the approved plan until it ends (exit codes: README)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. `90s`, `10m`, `1h30m`
    #[arg(long, requires = "wait", value_parser = parse_duration, default_value = "30m")]
    pub timeout: Duration,
}

/// `get -o`: kubectl's formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetFormat {
    Table,
    Wide,
    Yaml,
    Json,
    /// `terraform.alustan.io/NAME` per line.
    Name,
    /// `jsonpath=TEMPLATE` (checked when parsed).
    JsonPath(String),
    /// `custom-columns=HEADER:PATH,…` (checked when parsed).
    CustomColumns(String),
}

impl GetFormat {
    /// Whether rows are printed as a table (with a header).
    pub fn is_table(&self) -> bool {
        matches!(self, GetFormat::Table | GetFormat::Wide | GetFormat::CustomColumns(_))
    }
}

/// The `-o` values `get` takes, for errors and completion.
pub const GET_FORMATS: &[&str] = &["table", "wide", "yaml", "json", "name", "jsonpath=", "custom-columns="];

fn parse_get_format(text: &str) -> Result<GetFormat, String> {
    let format = match text {
        "table" => GetFormat::Table,
        "wide" => GetFormat::Wide,
        "yaml" => GetFormat::Yaml,
        "json" => GetFormat::Json,
        "name" => GetFormat::Name,
        _ => {
            if let Some(template) = text.strip_prefix("jsonpath=") {
                crate::commands::template::Template::parse(template)?;
                GetFormat::JsonPath(template.to_owned())
            } else if let Some(columns) = text.strip_prefix("custom-columns=") {
                crate::commands::template::columns(columns)?;
                GetFormat::CustomColumns(columns.to_owned())
            } else {
                return Err(format!(
                    "`{text}` is not an output format; use one of: {}",
                    GET_FORMATS
                        .iter()
                        .map(|f| if f.ends_with('=') { format!("{f}…") } else { (*f).to_owned() })
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    };
    Ok(format)
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Json,
    Yaml,
}

/// `--run N`: 1 is the latest run, 2 the one before, …
fn parse_run(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("runs count back from 1 (the latest run); 2 is the one before it".to_owned()),
        Ok(run) => Ok(run),
        Err(_) => Err(format!("`{text}` is not a run number: 1 is the latest run, 2 the one before it")),
    }
}

/// The process exit code of a parse failure: 0 for `--help`/`--version`, 2 for usage errors.
pub fn exit_code(error: &clap::Error) -> u8 {
    u8::try_from(error.exit_code()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-alustan").chain(line.split_whitespace()))
    }

    fn ok(line: &str) -> Cli {
        match parse(line) {
            Ok(cli) => cli,
            Err(e) => panic!("`{line}` should parse: {e}"),
        }
    }

    fn usage_error(line: &str) {
        match parse(line) {
            Ok(cli) => panic!("`{line}` should be rejected, got {cli:?}"),
            Err(e) => assert_eq!(exit_code(&e), 2, "`{line}`: {e}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
        assert_eq!(Cli::command().get_bin_name(), Some("kubectl alustan"));
    }

    #[test]
    fn get_all_namespaces_wide_with_selector() {
        let cli = ok("get -A -o wide -l team=platform");
        assert!(cli.kube.all_namespaces);
        assert_eq!(cli.kube.scope(), None);
        assert_eq!(
            cli.command,
            Command::Get {
                name: None,
                watch: false,
                output: GetFormat::Wide,
                selector: Some("team=platform".into()),
                show_managed_fields: false
            }
        );
    }

    #[test]
    fn global_flags_before_and_after_the_subcommand() {
        let cli = ok("--context kind-dev -n infra get staging -w --kubeconfig /tmp/kc --as alice --user u --cluster c");
        assert_eq!(cli.kube.context.as_deref(), Some("kind-dev"));
        assert_eq!(cli.kube.scope(), Some(Some("infra")));
        assert_eq!(cli.kube.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(cli.kube.as_user.as_deref(), Some("alice"));
        assert_eq!(cli.kube.user.as_deref(), Some("u"));
        assert_eq!(cli.kube.cluster.as_deref(), Some("c"));
        assert!(
            matches!(cli.command, Command::Get { name: Some(ref n), watch: true, output: GetFormat::Table, .. } if n == "staging")
        );
    }

    #[test]
    fn all_namespaces_wins_over_namespace() {
        assert_eq!(ok("get -n a -A").kube.scope(), None);
        assert_eq!(ok("get").kube.scope(), Some(None));
    }

    #[test]
    fn sync_wait_timeout() {
        assert_eq!(
            ok("sync staging --wait --timeout 1h30m").command,
            Command::Sync { name: "staging".into(), wait: true, timeout: Duration::from_secs(5400) }
        );
        assert_eq!(
            ok("sync staging").command,
            Command::Sync { name: "staging".into(), wait: false, timeout: Duration::from_secs(1800) }
        );
        usage_error("sync staging --timeout 5m"); // --timeout means nothing without --wait
        usage_error("sync staging --wait --timeout 5 minutes");
        usage_error("sync");
    }

    #[test]
    fn resync_outputs_credentials_logs() {
        assert_eq!(
            ok("resync a --wait --timeout 2m").command,
            Command::Resync { name: "a".into(), wait: true, timeout: Duration::from_secs(120) }
        );
        assert_eq!(
            ok("outputs a -o json").command,
            Command::Outputs { name: "a".into(), output: Some(DataFormat::Json), show_sensitive: false }
        );
        assert_eq!(
            ok("outputs a --show-sensitive").command,
            Command::Outputs { name: "a".into(), output: None, show_sensitive: true }
        );
        usage_error("outputs a -o wide");
        assert_eq!(
            ok("credentials a --reveal -o json").command,
            Command::Credentials { name: "a".into(), reveal: true, output: Some(DataFormat::Json) }
        );
        assert_eq!(ok("logs a --run 3 -f").command, Command::Logs { name: "a".into(), run: 3, follow: true });
        assert_eq!(ok("logs a").command, Command::Logs { name: "a".into(), run: 1, follow: false });
        usage_error("logs a --run 0");
    }

    #[test]
    fn plan_approve_reject_show_plan() {
        assert_eq!(
            ok("plan a --wait --timeout 5m").command,
            Command::Plan { name: "a".into(), wait: true, timeout: Duration::from_secs(300) }
        );
        let approve = |plan: Option<&str>, wait| Approve {
            name: "a".into(),
            plan: plan.map(str::to_owned),
            wait,
            timeout: Duration::from_secs(1800),
        };
        assert_eq!(ok("approve a --plan p-1 --wait").command, Command::Approve(approve(Some("p-1"), true)));
        assert_eq!(ok("approve a").command, Command::Approve(approve(None, false)));
        assert_eq!(ok("reject a --plan p-1").command, Command::Reject { name: "a".into(), plan: Some("p-1".into()) });
        usage_error("reject a --wait");
        assert_eq!(
            ok("show-plan a -o json").command,
            Command::ShowPlan { name: "a".into(), output: Some(DataFormat::Json) }
        );
        usage_error("approve");
        usage_error("approve a --timeout 1m");
        usage_error("show-plan a -o wide");
    }

    #[test]
    fn suspend_and_resume_need_a_name_or_all() {
        assert_eq!(
            ok("suspend a").command,
            Command::Suspend(Target { name: Some("a".into()), all: false, yes: false })
        );
        assert_eq!(ok("resume --all -A").command, Command::Resume(Target { name: None, all: true, yes: false }));
        assert_eq!(ok("suspend --all --yes").command, Command::Suspend(Target { name: None, all: true, yes: true }));
        usage_error("suspend");
        usage_error("resume a --all");
    }

    #[test]
    fn version_tui_completion() {
        assert_eq!(ok("version").command, Command::Version);
        assert_eq!(ok("version --agent-namespace ops").kube.agent_namespace.as_deref(), Some("ops"));
        assert_eq!(ok("--agent-namespace ops tui").kube.agent_namespace.as_deref(), Some("ops"));
        assert_eq!(ok("tui --readonly").command, Command::Tui { readonly: true });
        assert_eq!(ok("completion zsh").command, Command::Completion { shell: clap_complete::Shell::Zsh });
        usage_error("completion tcsh");
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        usage_error("");
        usage_error("frobnicate");
        usage_error("get -o xml");
        let help = parse("--help").err().map(|e| exit_code(&e));
        assert_eq!(help, Some(0));
    }

    #[test]
    fn sync_timeout_takes_go_durations_and_refuses_others() {
        assert!(
            matches!(ok("sync a --wait --timeout 1h2m3s").command, Command::Sync { timeout, .. } if timeout == Duration::from_secs(3723))
        );
        usage_error("sync a --wait --timeout 1d");
        usage_error("sync a --wait --timeout 10");
    }
}

//! `kubectl-alustan`, run by kubectl as `kubectl alustan …`.
//!
//! Exit codes: 0 ok, 1 error, 2 usage. The commands that talk to the cluster are not built yet;
//! they say so and exit 1 rather than pretend to work.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kubectl_alustan::cli::{self, Cli, Command};
use kubectl_alustan::tui::app;
use kubectl_alustan::tui::state::{AgentHealth, Header};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = error.print();
            return ExitCode::from(cli::exit_code(&error));
        }
    };
    match cli.command {
        Command::Completion { shell } => {
            let mut command = Cli::command();
            let mut stdout = std::io::stdout().lock();
            clap_complete::generate(shell, &mut command, "kubectl-alustan", &mut stdout);
            if stdout.flush().is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Tui { readonly } => tui(&cli.kube, readonly),
        Command::Version => {
            // The agent's version needs the cluster; the plugin's own is known here.
            println!("kubectl-alustan {}", env!("CARGO_PKG_VERSION"));
            eprintln!("agent version: not implemented yet (coming with the plugin's cluster I/O)");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!(
                "kubectl alustan: not implemented yet: {} (coming with the plugin's cluster I/O). Meanwhile: kubectl get {}.{}",
                command_name(&other),
                alustan_shared::PLURAL,
                alustan_shared::GROUP,
            );
            ExitCode::FAILURE
        }
    }
}

/// The TUI; its header names what the flags select (the kubeconfig is not read yet).
fn tui(flags: &cli::KubeFlags, readonly: bool) -> ExitCode {
    let log = kubectl_alustan::logging::to_file();
    tracing::info!(readonly, "tui starting");
    let context = flags.context.clone().unwrap_or_else(|| "(current)".to_owned());
    let header = Header {
        cluster: flags.cluster.clone().unwrap_or_else(|| context.clone()),
        context,
        namespace: flags.scope().map(|namespace| namespace.unwrap_or("(default)").to_owned()),
        agent: AgentHealth::Unknown,
    };
    match app::run(header, readonly) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "tui failed");
            let log = log.map(|path| format!(" (log: {})", path.display())).unwrap_or_default();
            eprintln!("kubectl alustan tui: {error}{log}");
            ExitCode::FAILURE
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Get { .. } => "get",
        Command::Describe { .. } => "describe",
        Command::Sync { .. } => "sync",
        Command::Resync { .. } => "resync",
        Command::Outputs { .. } => "outputs",
        Command::Credentials { .. } => "credentials",
        Command::Logs { .. } => "logs",
        Command::Suspend(_) => "suspend",
        Command::Resume(_) => "resume",
        Command::Version => "version",
        Command::Tui { .. } => "tui",
        Command::Completion { .. } => "completion",
    }
}

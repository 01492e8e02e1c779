//! `kubectl-alustan`, run by kubectl as `kubectl alustan …`.
//!
//! Exit codes: 0 ok, 1 error, 2 usage. The commands that talk to the cluster are not built yet;
//! they say so and exit 1 rather than pretend to work.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kubectl_alustan::cli::{self, Cli, Command};

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

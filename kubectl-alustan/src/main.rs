//! `kubectl-alustan`, run by kubectl as `kubectl alustan …`.
//!
//! Exit codes: 0 ok, 1 error, 2 usage (as kubectl).

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kubectl_alustan::cli::{self, Cli, Command};
use kubectl_alustan::errors::CliError;
use kubectl_alustan::tui::live;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = error.print();
            return ExitCode::from(cli::exit_code(&error));
        }
    };
    if let Command::Completion { shell } = cli.command {
        let mut command = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "kubectl-alustan", &mut script);
        kubectl_alustan::output::stdout_bytes(&script);
        return ExitCode::SUCCESS;
    }
    // Two workers are plenty for a CLI; the TUI's loop runs on this thread, its I/O on them.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::Other(format!("cannot start the async runtime: {error}"))),
    };
    let result = match cli.command {
        Command::Tui { readonly } => live::run(&runtime, &cli.kube, readonly),
        _ => runtime.block_on(kubectl_alustan::commands::run(cli)),
    };
    // Log follows and watches may still hold connections: do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &CliError) -> ExitCode {
    kubectl_alustan::errln!("error: {error}");
    ExitCode::from(error.exit_code())
}

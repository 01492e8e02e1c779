//! `kubectl alustan`. Unfinished: the CLI and the terminal UI arrive with their own issue; until
//! then the binary says so and exits non-zero rather than pretend to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "kubectl-alustan {}: not built yet — the CLI and terminal UI are still to come (see the project's open issues). \
         Meanwhile: kubectl get {}.{}",
        env!("CARGO_PKG_VERSION"),
        alustan_shared::PLURAL,
        alustan_shared::GROUP,
    );
    ExitCode::FAILURE
}

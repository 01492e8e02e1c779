//! `alustan-agent`. Unfinished: the reconcile loop, registry scanning and Jobs arrive with their
//! own issues; until then the binary says so and exits non-zero rather than pretend to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "alustan-agent {}: not built yet — registry scanning and reconcile are still to come (see the project's open issues). \
         The CRD it will serve is {}/{} {}.",
        env!("CARGO_PKG_VERSION"),
        alustan_shared::GROUP,
        alustan_shared::VERSION,
        alustan_shared::PLURAL,
    );
    ExitCode::FAILURE
}

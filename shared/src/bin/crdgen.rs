//! Prints the generated CRD (default) or the README's CR reference (`crdgen reference`).
//!
//! `cargo run -p alustan-shared --bin crdgen > crds/terraform.yaml`

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let text = match std::env::args().nth(1).as_deref() {
        None | Some("crd") => match alustan_shared::crd::terraform_crd_yaml() {
            Ok(yaml) => yaml,
            Err(error) => {
                eprintln!("crdgen: cannot serialise the CRD: {error}");
                return ExitCode::FAILURE;
            }
        },
        Some("reference") => alustan_shared::crd::reference_markdown(),
        Some(other) => {
            eprintln!("crdgen: unknown argument {other:?}; usage: crdgen [crd|reference]");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = std::io::stdout().write_all(text.as_bytes()) {
        eprintln!("crdgen: cannot write: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

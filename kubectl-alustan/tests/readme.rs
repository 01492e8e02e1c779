//! The README's generated tables (keys, exit codes) come from the code, and every flag of every
//! command is documented; these tests fail when the README is stale.
//! `ALUSTAN_UPDATE_DOCS=1 cargo test -p kubectl-alustan --test readme` rewrites the tables.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use clap::CommandFactory as _;

fn readme_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// Checks (or with `ALUSTAN_UPDATE_DOCS` rewrites) the README between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->`.
fn generated_section(name: &str, expected: &str) {
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start_marker, end_marker) = (format!("<!-- {name}:start -->\n"), format!("<!-- {name}:end -->"));
    let start = readme.find(&start_marker).expect("README has the start marker") + start_marker.len();
    let end = readme.find(&end_marker).expect("README has the end marker");
    if readme[start..end] == *expected {
        return;
    }
    if std::env::var_os("ALUSTAN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{expected}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    panic!("README.md's {name} table is stale: run ALUSTAN_UPDATE_DOCS=1 cargo test -p kubectl-alustan --test readme");
}

#[test]
fn readme_key_table_matches_the_code() {
    generated_section("keys", &kubectl_alustan::tui::keys::markdown());
}

#[test]
fn readme_exit_codes_match_the_code() {
    generated_section("exit-codes", &kubectl_alustan::errors::exit_codes_markdown());
}

#[test]
fn readme_documents_every_flag_of_every_command() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let command = kubectl_alustan::cli::Cli::command();
    let mut missing = Vec::new();
    for sub in std::iter::once(&command).chain(command.get_subcommands()) {
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            if !readme.contains(&format!("--{long}")) {
                missing.push(format!("{} --{long}", sub.get_name()));
            }
        }
        if sub.get_name() != command.get_name() && !readme.contains(&format!("\n{} ", sub.get_name())) {
            missing.push(format!("the command {}", sub.get_name()));
        }
    }
    assert!(missing.is_empty(), "README.md does not document: {missing:?}");
}

//! The README's key table is generated from the key table; this test fails when it is stale.
//! `ALUSTAN_UPDATE_DOCS=1 cargo test -p kubectl-alustan --test readme` rewrites it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

const START: &str = "<!-- keys:start -->\n";
const END: &str = "<!-- keys:end -->";

#[test]
fn readme_key_table_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(START).expect("README has the keys:start marker") + START.len();
    let end = readme.find(END).expect("README has the keys:end marker");
    let expected = kubectl_alustan::tui::keys::markdown();
    if readme[start..end] == expected {
        return;
    }
    if std::env::var_os("ALUSTAN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{expected}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    panic!("README.md's key table is stale: run ALUSTAN_UPDATE_DOCS=1 cargo test -p kubectl-alustan --test readme");
}

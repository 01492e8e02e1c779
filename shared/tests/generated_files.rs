//! The checked-in CRD (and the Helm chart's copy) and the README's CR reference are generated from the Rust types; these
//! tests fail when either is stale, and prove the original example still means what it says.

use std::path::PathBuf;

use alustan_shared::{RegistryProvider, Terraform, crd};

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

const REGENERATE: &str = "regenerate with `make generate`";

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let generated = crd::terraform_crd_yaml().expect("CRD serialises");
    assert!(read("crds/terraform.yaml") == generated, "crds/terraform.yaml is stale: {REGENERATE}");
}

#[test]
fn helm_chart_crd_matches_the_rust_types() {
    let generated = crd::terraform_crd_yaml().expect("CRD serialises");
    assert!(
        read("charts/alustan/crds/terraform.yaml") == generated,
        "charts/alustan/crds/terraform.yaml differs from the generated CRD: {REGENERATE} (it writes both copies)"
    );
}

#[test]
fn readme_cr_reference_matches_the_rust_types() {
    let readme = read("README.md");
    let start = "<!-- crd-reference:start -->\n";
    let end = "<!-- crd-reference:end -->";
    let from = readme.find(start).expect("README has the crd-reference start marker") + start.len();
    let to = readme.find(end).expect("README has the crd-reference end marker");
    assert!(readme[from..to] == crd::reference_markdown(), "README.md's CR reference is stale: {REGENERATE}");
}

#[test]
fn original_example_deserialises_into_the_types() {
    let example: Terraform = serde_yaml::from_str(&read("examples/staging-cluster.yaml")).expect("example parses");
    assert_eq!(example.metadata.name.as_deref(), Some("staging-cluster"));
    let spec = &example.spec;
    assert_eq!(spec.variables["TF_VAR_vpc_cidr"], "10.1.0.0/16");
    assert_eq!(spec.variables["TF_VAR_provision_cluster"], "true");
    assert_eq!(spec.scripts.deploy, "deploy");
    assert_eq!(spec.scripts.destroy.as_deref(), Some("destroy -c"));
    let post = spec.post_deploy.as_ref().expect("postDeploy");
    assert_eq!(post.script, "aws-resource");
    // Args are kept sorted by name: the documented, stable order of `--name=value` arguments.
    let args: Vec<(&str, &str)> = post.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(args, [("region", "TF_VAR_region"), ("workspace", "TF_VAR_workspace")]);
    let registry = &spec.container_registry;
    assert_eq!(registry.provider, Some(RegistryProvider::Docker));
    assert_eq!(registry.image_name, "alustan/infrastructure");
    assert_eq!(registry.semantic_version, "~1.0.0");
    assert!(!spec.suspend && spec.service_account_name.is_none() && spec.sync_interval.is_none());
    assert!(example.status.is_none());
}

#[test]
fn optional_destroy_and_post_deploy_may_be_omitted() {
    let yaml = "apiVersion: alustan.io/v1alpha1\nkind: Terraform\nmetadata: {name: keep}\nspec:\n  scripts: {deploy: deploy}\n  containerRegistry: {imageName: ghcr.io/org/infra, semanticVersion: '^1'}\n";
    let minimal: Terraform = serde_yaml::from_str(yaml).expect("minimal spec parses");
    assert!(minimal.spec.scripts.destroy.is_none());
    assert!(minimal.spec.post_deploy.is_none());
    assert!(minimal.spec.variables.is_empty());
    assert!(minimal.spec.container_registry.provider.is_none());
    // Serialising back must not invent fields the user did not write (GitOps diffs stay clean).
    let round_trip = serde_json::to_value(&minimal.spec).expect("serialises");
    assert_eq!(
        round_trip,
        serde_json::json!({"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "ghcr.io/org/infra", "semanticVersion": "^1"}})
    );
}

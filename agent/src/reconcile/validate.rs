//! What can be checked in the spec before any Job runs, each failure naming the field to fix:
//! script strings that cannot be split, variable names Kubernetes refuses as environment
//! variable names, post-deploy arguments naming undefined variables, a bad `syncInterval`.
//! Names derived from the resource's name never fail: they are shortened with a hash where a
//! Kubernetes limit needs it (see `alustan_shared::meta`).

use std::collections::BTreeMap;
use std::time::Duration;

use alustan_shared::TerraformSpec;

use crate::error::{Error, Result};

/// The longest environment variable value list we accept for one resource: the Job object
/// carries every variable and must stay well under etcd's 1.5 MiB object limit.
const VARIABLES_MAX_BYTES: usize = 512 * 1024;

/// Checks everything a deploy (and its post-deploy) needs.
pub fn for_deploy(spec: &TerraformSpec) -> Result<()> {
    script("spec.scripts.deploy", &spec.scripts.deploy)?;
    plans(spec)?;
    variables(&spec.variables)?;
    if let Some(post) = &spec.post_deploy {
        script("spec.postDeploy.script", &post.script)?;
        post_deploy_args(&post.args, &spec.variables)?;
    }
    Ok(())
}

/// `approval: Manual` and drift detection plan, so they need a plan script (the CRD says so
/// too, on API servers with CEL).
fn plans(spec: &TerraformSpec) -> Result<()> {
    match &spec.scripts.plan {
        Some(plan) => script("spec.scripts.plan", plan),
        None if spec.approval == Some(alustan_shared::Approval::Manual) => Err(Error::invalid_spec(
            "spec.approval",
            "Manual needs spec.scripts.plan (the script that plans, so there is a plan to approve)",
        )),
        None if matches!(spec.drift, Some(alustan_shared::DriftMode::Detect | alustan_shared::DriftMode::Correct)) => {
            Err(Error::invalid_spec(
                "spec.drift",
                "Detect and Correct need spec.scripts.plan (drift is found by planning)",
            ))
        }
        None => Ok(()),
    }
}

/// Checks what a destroy needs (none of it when there is no destroy script).
pub fn for_destroy(spec: &TerraformSpec) -> Result<()> {
    let Some(destroy) = &spec.scripts.destroy else { return Ok(()) };
    script("spec.scripts.destroy", destroy)?;
    variables(&spec.variables)
}

/// `spec.syncInterval`, or `default` when unset.
pub fn sync_interval(spec: &TerraformSpec, default: Duration) -> Result<Duration> {
    match &spec.sync_interval {
        Some(text) => alustan_shared::duration::parse_duration(text)
            .map_err(|err| Error::invalid_spec("spec.syncInterval", err.to_string())),
        None => Ok(default),
    }
}

/// A script string splits shell-like into a non-empty command.
fn script(field: &str, text: &str) -> Result<()> {
    script_words(field, text).map(drop)
}

/// The words of script string `text` (spec field `field`): a command and its arguments.
pub fn script_words(field: &str, text: &str) -> Result<Vec<String>> {
    match shell_words::split(text) {
        Ok(words) if words.is_empty() => Err(Error::invalid_spec(field, "the script is empty")),
        Ok(words) => Ok(words),
        Err(err) => {
            Err(Error::invalid_spec(field, format!("cannot split {text:?} into words: {err} (check the quotes)")))
        }
    }
}

/// Kubernetes' rule for environment variable names (`C_IDENTIFIER` with `-` and `.`), which
/// every API server version accepts.
fn env_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A variable name (spec field `field`) a run can carry and the agent does not own.
pub fn variable_name(field: &str, name: &str) -> Result<()> {
    if !env_name_ok(name) {
        return Err(Error::invalid_spec(
            field,
            "not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)",
        ));
    }
    if name.starts_with("ALUSTAN_") {
        return Err(Error::invalid_spec(
            field,
            "names starting with ALUSTAN_ are the agent's own (see the README's run contract)",
        ));
    }
    Ok(())
}

fn variables(variables: &BTreeMap<String, String>) -> Result<()> {
    for name in variables.keys() {
        variable_name(&format!("spec.variables[{name:?}]"), name)?;
    }
    let size: usize = variables.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > VARIABLES_MAX_BYTES {
        return Err(Error::invalid_spec(
            "spec.variables",
            format!("{size} bytes in all, more than the {VARIABLES_MAX_BYTES} a run's Job can carry"),
        ));
    }
    Ok(())
}

fn post_deploy_args(args: &BTreeMap<String, String>, variables: &BTreeMap<String, String>) -> Result<()> {
    post_deploy_flags(args, variables).map(drop)
}

/// `--name=value` in ascending order of name; each value from the variable the arg names.
pub fn post_deploy_flags(args: &BTreeMap<String, String>, variables: &BTreeMap<String, String>) -> Result<Vec<String>> {
    args.iter()
        .map(|(name, variable)| match variables.get(variable) {
            Some(value) => Ok(format!("--{name}={value}")),
            None => Err(Error::invalid_spec(
                format!("spec.postDeploy.args.{name}"),
                format!("names variable {variable}, which spec.variables does not define"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &serde_json::Value) -> TerraformSpec {
        let mut value = serde_json::json!({
            "variables": {"TF_VAR_region": "eu"}, "scripts": {"deploy": "deploy", "destroy": "destroy -c"},
            "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}
        });
        for (key, field) in extra.as_object().unwrap() {
            value[key] = field.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn field_of(result: Result<()>) -> String {
        match result {
            Err(Error::InvalidSpec { field, .. }) => field,
            other => panic!("expected an InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_spec_passes() {
        for_deploy(&spec(&serde_json::json!({}))).unwrap();
        for_destroy(&spec(&serde_json::json!({}))).unwrap();
    }

    #[test]
    fn unsplittable_or_empty_scripts_name_their_field() {
        let unbalanced = spec(&serde_json::json!({"scripts": {"deploy": "deploy 'oops", "destroy": "destroy \"x"}}));
        assert_eq!(field_of(for_deploy(&unbalanced)), "spec.scripts.deploy");
        assert_eq!(field_of(for_destroy(&unbalanced)), "spec.scripts.destroy");
        let empty = spec(&serde_json::json!({"scripts": {"deploy": "   "}}));
        assert_eq!(field_of(for_deploy(&empty)), "spec.scripts.deploy");
        let post = spec(&serde_json::json!({"postDeploy": {"script": "'", "args": {}}}));
        assert_eq!(field_of(for_deploy(&post)), "spec.postDeploy.script");
    }

    #[test]
    fn variable_names_must_be_environment_variable_names_and_not_ours() {
        for bad in ["1ST", "has space", "a=b", "", "ALUSTAN_OUTPUTS"] {
            let spec = spec(&serde_json::json!({"variables": {bad: "v"}}));
            assert!(field_of(for_deploy(&spec)).starts_with("spec.variables["), "{bad}");
        }
        let huge = spec(&serde_json::json!({"variables": {"TF_VAR_big": "x".repeat(VARIABLES_MAX_BYTES)}}));
        assert_eq!(field_of(for_deploy(&huge)), "spec.variables");
    }

    #[test]
    fn post_deploy_args_are_sorted_by_name_and_need_their_variable() {
        let args =
            BTreeMap::from([("workspace".into(), "TF_VAR_ws".into()), ("region".into(), "TF_VAR_region".into())]);
        let vars = BTreeMap::from([("TF_VAR_ws".into(), "staging".into()), ("TF_VAR_region".into(), "eu".into())]);
        assert_eq!(post_deploy_flags(&args, &vars).unwrap(), ["--region=eu", "--workspace=staging"]);
        let missing = post_deploy_flags(&args, &BTreeMap::new()).unwrap_err().to_string();
        assert!(missing.contains("spec.postDeploy.args.region: names variable TF_VAR_region"), "{missing}");
    }

    #[test]
    fn a_bad_sync_interval_names_its_field() {
        let bad = spec(&serde_json::json!({"syncInterval": "soon"}));
        assert!(
            matches!(sync_interval(&bad, Duration::ZERO), Err(Error::InvalidSpec { field, .. }) if field == "spec.syncInterval")
        );
    }
}

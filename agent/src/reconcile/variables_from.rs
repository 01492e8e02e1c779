//! `spec.variablesFrom`: variables read from another `Terraform`'s outputs, a ConfigMap or a
//! Secret, before a run.
//!
//! # Rules (README-ready)
//!
//! - `kind: Terraform`: each named output is looked up in the producer's `status.output`
//!   (non-sensitive) and then in its outputs Secret (`status.sensitiveOutputsSecret`,
//!   sensitive). A string output is used as is; lists, maps and numbers as their JSON text.
//! - `kind: ConfigMap` / `kind: Secret`: a key of the object's data, in the resource's own
//!   namespace. Secret values are sensitive.
//! - Sensitive values reach the run through its own seal Secret (an env `secretKeyRef`), never
//!   the Job spec, the consumer's status, Events or logs. Errors name outputs and keys, never
//!   values.
//! - A missing object, output or key is an error naming it and listing the names that exist;
//!   nothing runs until it is fixed (it is retried, and a producer's change wakes the consumer).
//! - The values read are part of the run's inputs fingerprint (a one-way digest, never the
//!   values): when a consumed value changes, the deploy runs again, once, as for a spec edit.
//!   A producer's change wakes its consumers at once; ConfigMaps and Secrets are not watched
//!   (least privilege), their changes are read at the next reconcile (`syncInterval` at most).

use std::collections::BTreeMap;
use std::fmt;

use alustan_shared::{VariablesFrom, VariablesSourceKind};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::dependencies::check_namespace;
use super::pass::Pass;
use crate::error::{Error, Result};
use crate::graph::Key;

/// Values of the variables `spec.variablesFrom` fills.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// From a `Terraform`'s status and ConfigMaps: may appear in the Job spec.
    pub plain: BTreeMap<String, String>,
    /// From Secrets: only ever in the run's seal Secret.
    pub sensitive: BTreeMap<String, String>,
}

/// Names only: values must never reach a log line through `Debug`.
impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("plain", &self.plain.keys().collect::<Vec<_>>())
            .field("sensitive", &self.sensitive.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resolved {
    /// A one-way digest of every name and value (sensitive ones included, salted with the
    /// resource's uid), for the run's inputs fingerprint.
    pub fn fingerprint(&self, uid: &str) -> String {
        let mut parts: Vec<&str> = vec![uid];
        for (kind, values) in [("plain", &self.plain), ("sensitive", &self.sensitive)] {
            parts.push(kind);
            for (name, value) in values {
                parts.extend([name.as_str(), value.as_str()]);
            }
        }
        alustan_shared::fingerprint(&parts)
    }

    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.sensitive.is_empty()
    }
}

/// The error of entry `index`.
fn source_error(index: usize, message: impl fmt::Display) -> Error {
    Error::VariablesFrom(format!("spec.variablesFrom[{index}]: {message}"))
}

/// `names` for a message: `a, b` or `none`.
fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// An output value as a variable: strings as they are, anything else as JSON text.
fn output_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Secret data as text; a value that is not UTF-8 is an error naming the key.
fn secret_text(index: usize, object: &str, key: &str, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        source_error(index, format!("{object} key {key:?} is not UTF-8 text; it cannot be an environment variable"))
    })
}

/// Checks what can be checked without reading anything: kinds, namespaces, names.
pub fn validate(spec: &alustan_shared::TerraformSpec) -> Result<()> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, source) in spec.variables_from.iter().enumerate() {
        if source.namespace.is_some() && source.kind != VariablesSourceKind::Terraform {
            return Err(Error::invalid_spec(
                format!("spec.variablesFrom[{index}].namespace"),
                "only kind Terraform may name another namespace; ConfigMaps and Secrets are read from this resource's namespace",
            ));
        }
        for name in source.variables.keys() {
            super::validate::variable_name(&format!("spec.variablesFrom[{index}].variables[{name:?}]"), name)?;
            if spec.variables.contains_key(name) {
                return Err(Error::invalid_spec(
                    format!("spec.variablesFrom[{index}].variables[{name:?}]"),
                    "is also set in spec.variables; set it in one place",
                ));
            }
            if let Some(first) = seen.insert(name, index) {
                return Err(Error::invalid_spec(
                    format!("spec.variablesFrom[{index}].variables[{name:?}]"),
                    format!("is also filled by spec.variablesFrom[{first}]; fill it from one source"),
                ));
            }
        }
    }
    Ok(())
}

impl Pass<'_> {
    /// Reads every `variablesFrom` value.
    pub async fn resolve_variables(&self) -> Result<Resolved> {
        validate(&self.tf.spec)?;
        let mut resolved = Resolved::default();
        for (index, source) in self.tf.spec.variables_from.iter().enumerate() {
            match source.kind {
                VariablesSourceKind::Terraform => self.read_terraform_outputs(index, source, &mut resolved).await?,
                VariablesSourceKind::ConfigMap => self.read_config_map(index, source, &mut resolved).await?,
                VariablesSourceKind::Secret => self.read_secret(index, source, &mut resolved).await?,
            }
        }
        Ok(resolved)
    }

    async fn read_terraform_outputs(
        &self,
        index: usize,
        source: &VariablesFrom,
        resolved: &mut Resolved,
    ) -> Result<()> {
        let key = Key::new(source.namespace.as_deref().unwrap_or(&self.namespace), &source.name);
        let allowed = self.ctx.config.allow_cross_namespace_refs;
        check_namespace(&format!("spec.variablesFrom[{index}].namespace"), &self.namespace, &key, allowed)?;
        let Some(producer) = self.ctx.cached(&key) else {
            return Err(source_error(
                index,
                format!("Terraform {key} does not exist (or is in a namespace the agent does not watch)"),
            ));
        };
        let status = producer.status.clone().unwrap_or_default();
        let mut sensitive: Option<BTreeMap<String, k8s_openapi::ByteString>> = None;
        for (variable, output) in &source.variables {
            if let Some(value) = status.output.get(output) {
                resolved.plain.insert(variable.clone(), output_text(value));
                continue;
            }
            if sensitive.is_none() {
                sensitive = Some(match &status.sensitive_outputs_secret {
                    Some(name) => {
                        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
                        secrets.get_opt(name).await?.and_then(|s| s.data).unwrap_or_default()
                    }
                    None => BTreeMap::new(),
                });
            }
            let sensitive = sensitive.as_ref().map_or_else(BTreeMap::new, Clone::clone);
            match sensitive.get(output) {
                Some(bytes) => {
                    let text = secret_text(index, &format!("the outputs Secret of Terraform {key}"), output, &bytes.0)?;
                    resolved.sensitive.insert(variable.clone(), text);
                }
                None => {
                    return Err(source_error(
                        index,
                        format!(
                            "Terraform {key} has no output {output:?} (its outputs: {}; sensitive: {}){}",
                            listed(status.output.keys()),
                            listed(sensitive.keys()),
                            if status.applied.is_none() {
                                "; it has not deployed yet: add it to dependsOn to wait for it"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `kind` object `name` of this namespace, with how messages name it.
    async fn named<K>(&self, index: usize, kind: &str, name: &str) -> Result<(K, String)>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let object = format!("{kind} {}/{name}", self.namespace);
        match self.api::<K>().get_opt(name).await? {
            Some(found) => Ok((found, object)),
            None => Err(source_error(index, format!("{object} does not exist"))),
        }
    }

    async fn read_config_map(&self, index: usize, source: &VariablesFrom, resolved: &mut Resolved) -> Result<()> {
        let (config_map, object) = self.named::<ConfigMap>(index, "ConfigMap", &source.name).await?;
        let data = config_map.data.unwrap_or_default();
        for (variable, _, value) in pick(index, &object, &data, source)? {
            resolved.plain.insert(variable.clone(), value.clone());
        }
        Ok(())
    }

    async fn read_secret(&self, index: usize, source: &VariablesFrom, resolved: &mut Resolved) -> Result<()> {
        let (secret, object) = self.named::<Secret>(index, "Secret", &source.name).await?;
        let data = secret.data.unwrap_or_default();
        for (variable, key, bytes) in pick(index, &object, &data, source)? {
            let text = secret_text(index, &object, key, &bytes.0)?;
            resolved.sensitive.insert(variable.clone(), text);
        }
        Ok(())
    }
}

/// Each variable of `source` with its key and value in `data` (of `object`), or the error
/// naming the first missing key and listing the keys there are.
fn pick<'s, 'd, V>(
    index: usize,
    object: &str,
    data: &'d BTreeMap<String, V>,
    source: &'s VariablesFrom,
) -> Result<Vec<(&'s String, &'s str, &'d V)>> {
    source
        .variables
        .iter()
        .map(|(variable, key)| match data.get(key) {
            Some(value) => Ok((variable, key.as_str(), value)),
            None => {
                Err(source_error(index, format!("{object} has no key {key:?} (its keys: {})", listed(data.keys()))))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> alustan_shared::TerraformSpec {
        let mut spec = serde_json::json!({
            "variables": {"TF_VAR_region": "eu"}, "scripts": {"deploy": "deploy"},
            "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}
        });
        spec["variablesFrom"] = extra;
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn sources_are_checked_before_anything_is_read() {
        let ok =
            serde_json::json!([{"kind": "Terraform", "name": "network", "variables": {"TF_VAR_vpc_id": "vpc_id"}}]);
        assert!(validate(&spec(ok)).is_ok());
        let message = |extra| validate(&spec(extra)).unwrap_err().to_string();
        assert_eq!(
            message(
                serde_json::json!([{"kind": "ConfigMap", "name": "c", "namespace": "o", "variables": {"TF_VAR_a": "a"}}])
            ),
            "spec.variablesFrom[0].namespace: only kind Terraform may name another namespace; ConfigMaps and Secrets are read from this resource's namespace"
        );
        assert!(
            message(serde_json::json!([{"kind": "Secret", "name": "s", "variables": {"TF_VAR_region": "r"}}]))
                .ends_with("is also set in spec.variables; set it in one place")
        );
        let twice = serde_json::json!([
            {"kind": "Secret", "name": "s", "variables": {"TF_VAR_a": "a"}},
            {"kind": "ConfigMap", "name": "c", "variables": {"TF_VAR_a": "a"}}
        ]);
        assert!(message(twice).contains("is also filled by spec.variablesFrom[0]"));
        assert!(
            message(serde_json::json!([{"kind": "Secret", "name": "s", "variables": {"1BAD": "a"}}])).contains("1BAD")
        );
    }

    #[test]
    fn the_fingerprint_changes_with_any_value_and_debug_shows_no_value() {
        let mut resolved = Resolved::default();
        resolved.plain.insert("TF_VAR_vpc_id".into(), "vpc-1".into());
        resolved.sensitive.insert("TF_VAR_password".into(), "hunter2".into());
        let before = resolved.fingerprint("uid");
        assert_eq!(resolved.fingerprint("uid"), before, "stable");
        let mut changed = resolved.clone();
        changed.sensitive.insert("TF_VAR_password".into(), "hunter3".into());
        assert_ne!(changed.fingerprint("uid"), before);
        let mut moved = Resolved::default();
        moved.sensitive.insert("TF_VAR_vpc_id".into(), "vpc-1".into());
        moved.sensitive.insert("TF_VAR_password".into(), "hunter2".into());
        assert_ne!(moved.fingerprint("uid"), before, "where a value comes from counts");
        let debug = format!("{resolved:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("vpc-1"), "{debug}");
        assert!(debug.contains("TF_VAR_password"));
        assert_eq!(output_text(&serde_json::json!(["a", "b"])), r#"["a","b"]"#);
        assert_eq!(output_text(&serde_json::json!("vpc-1")), "vpc-1");
    }
}

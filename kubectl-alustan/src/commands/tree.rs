//! `tree NAME`: the dependency graph around a resource, like `flux tree`: what it needs
//! (`dependsOn`, and the resources whose outputs `variablesFrom` reads), recursively, then
//! what needs it, each with its state and readiness.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use alustan_shared::{Need, Terraform, VariablesSourceKind, conditions};
use kube::api::ListParams;
use kube::{Api, ResourceExt as _};

use crate::errors::CliError;
use crate::kube_client::Connection;

pub async fn run(conn: &Connection, name: &str) -> Result<(), CliError> {
    let root = super::get(conn, name).await?;
    let mut all = super::list(conn, &ListParams::default()).await?;
    // Needs outside the listed scope (another namespace) are read one by one; one that cannot
    // be read shows as not found.
    let mut pending: Vec<Need> = root.needs();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    while let Some(need) = pending.pop() {
        if !seen.insert((need.namespace.clone(), need.name.clone())) {
            continue;
        }
        if let Some(found) = find(&all, &need.namespace, &need.name) {
            pending.extend(found.needs());
            continue;
        }
        let api: Api<Terraform> = Api::namespaced(conn.client.clone(), &need.namespace);
        if let Ok(Some(found)) = api.get_opt(&need.name).await {
            pending.extend(found.needs());
            all.push(found);
        }
    }
    print!("{}", render(&root, &all));
    Ok(())
}

fn find<'a>(all: &'a [Terraform], namespace: &str, name: &str) -> Option<&'a Terraform> {
    all.iter().find(|tf| tf.namespace().as_deref() == Some(namespace) && tf.name_any() == name)
}

fn key(tf: &Terraform) -> String {
    format!("{}/{}", tf.namespace().unwrap_or_default(), tf.name_any())
}

/// `Success, Ready` or `Progressing, not Ready (DependencyNotReady)`.
fn summary(tf: Option<&Terraform>) -> String {
    let Some(tf) = tf else { return "not found".to_owned() };
    let status = tf.status.as_ref();
    let state = status.and_then(|s| s.state).map_or("Pending", alustan_shared::State::as_str);
    let ready = status.and_then(|s| conditions::find(&s.conditions, conditions::READY));
    let readiness = match ready {
        Some(c) if c.status == conditions::TRUE && c.observed_generation == tf.metadata.generation => {
            "Ready".to_owned()
        }
        Some(c) => format!("not Ready ({})", c.reason),
        None => "not Ready".to_owned(),
    };
    format!("{state}, {readiness}")
}

/// The tree: `root`, what it needs below it, then what needs it.
pub fn render(root: &Terraform, all: &[Terraform]) -> String {
    let mut out = format!("{}  {}\n", key(root), summary(Some(root)));
    let mut path = vec![key(root)];
    write_needs(&mut out, root, all, "", &mut path);
    let mut path = vec![key(root)];
    let needed_by = dependants(root, all);
    if !needed_by.is_empty() {
        out.push_str("needed by:\n");
        write_dependants(&mut out, &needed_by, all, "", &mut path);
    }
    out
}

fn write_needs(out: &mut String, tf: &Terraform, all: &[Terraform], indent: &str, path: &mut Vec<String>) {
    let needs = tf.needs();
    for (index, need) in needs.iter().enumerate() {
        let last = index + 1 == needs.len();
        let (branch, deeper) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        let name = format!("{}/{}", need.namespace, need.name);
        let via = if need.outputs { "reads outputs of" } else { "depends on" };
        let found = find(all, &need.namespace, &need.name);
        if path.contains(&name) {
            let _ = writeln!(out, "{indent}{branch}{via} {name}  (cycle)");
            continue;
        }
        let _ = writeln!(out, "{indent}{branch}{via} {name}  {}", summary(found));
        if let Some(found) = found {
            path.push(name);
            write_needs(out, found, all, &format!("{indent}{deeper}"), path);
            path.pop();
        }
    }
}

fn dependants<'a>(tf: &Terraform, all: &'a [Terraform]) -> Vec<&'a Terraform> {
    let (namespace, name) = (tf.namespace().unwrap_or_default(), tf.name_any());
    all.iter().filter(|other| other.needs().iter().any(|n| n.namespace == namespace && n.name == name)).collect()
}

fn write_dependants(
    out: &mut String,
    needed_by: &[&Terraform],
    all: &[Terraform],
    indent: &str,
    path: &mut Vec<String>,
) {
    for (index, tf) in needed_by.iter().enumerate() {
        let last = index + 1 == needed_by.len();
        let (branch, deeper) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        let name = key(tf);
        if path.contains(&name) {
            let _ = writeln!(out, "{indent}{branch}{name}  (cycle)");
            continue;
        }
        let _ = writeln!(out, "{indent}{branch}{name}  {}", summary(Some(tf)));
        path.push(name);
        write_dependants(out, &dependants(tf, all), all, &format!("{indent}{deeper}"), path);
        path.pop();
    }
}

/// Describe's lines about the spec: what it depends on, and where each `variablesFrom`
/// variable comes from (label, value).
pub fn spec_lines(tf: &Terraform) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    let depends: Vec<String> =
        tf.needs().into_iter().filter(|n| !n.outputs).map(|n| format!("{}/{}", n.namespace, n.name)).collect();
    if !depends.is_empty() {
        lines.push(("Depends on:", depends.join(", ")));
    }
    let own = tf.namespace().unwrap_or_default();
    for source in &tf.spec.variables_from {
        for (variable, key) in &source.variables {
            let from = match source.kind {
                VariablesSourceKind::Terraform => {
                    let namespace = source.namespace.as_deref().unwrap_or(&own);
                    format!("output {key} of Terraform {namespace}/{}", source.name)
                }
                VariablesSourceKind::ConfigMap => format!("key {key} of ConfigMap {}", source.name),
                VariablesSourceKind::Secret => format!("key {key} of Secret {} (sensitive)", source.name),
            };
            lines.push(("Variable from:", format!("{variable} ← {from}")));
        }
    }
    lines
}

/// The TUI describe's Dependencies section: each need and each dependant with its state.
pub fn relation_lines<'a>(tf: &Terraform, all: impl Iterator<Item = &'a Terraform>) -> Vec<String> {
    let everything: Vec<Terraform> = all.cloned().collect();
    let needs = tf.needs().into_iter().map(|n| {
        let via = if n.outputs { "reads outputs of" } else { "depends on" };
        format!("{via} {}/{}  {}", n.namespace, n.name, summary(find(&everything, &n.namespace, &n.name)))
    });
    let needed_by =
        dependants(tf, &everything).into_iter().map(|d| format!("needed by {}  {}", key(d), summary(Some(d))));
    needs.chain(needed_by).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(name: &str, spec: &serde_json::Value, ready: Option<(&str, &str)>) -> Terraform {
        let mut value = serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": name, "namespace": "default", "generation": 1},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}}
        });
        for (k, v) in spec.as_object().unwrap() {
            value["spec"][k] = v.clone();
        }
        if let Some((status, reason)) = ready {
            value["status"] = serde_json::json!({"state": if status == "True" { "Success" } else { "Progressing" },
                "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "",
                                "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn tree_shows_needs_recursively_then_dependants_with_states() {
        let network = tf("network", &serde_json::json!({}), Some(("True", "Succeeded")));
        let cluster = tf(
            "cluster",
            &serde_json::json!({"dependsOn": [{"name": "network"}, {"name": "iam", "namespace": "security"}],
                                "variablesFrom": [{"kind": "Terraform", "name": "network", "variables": {"TF_VAR_vpc_id": "vpc_id"}}]}),
            Some(("True", "Succeeded")),
        );
        let app =
            tf("app", &serde_json::json!({"dependsOn": [{"name": "cluster"}]}), Some(("False", "DependencyNotReady")));
        let all = [network, cluster.clone(), app];
        assert_eq!(
            render(&cluster, &all),
            "default/cluster  Success, Ready\n\
             ├── depends on default/network  Success, Ready\n\
             ├── depends on security/iam  not found\n\
             └── reads outputs of default/network  Success, Ready\n\
             needed by:\n\
             └── default/app  Progressing, not Ready (DependencyNotReady)\n"
        );
        assert_eq!(
            relation_lines(&cluster, all.iter()),
            [
                "depends on default/network  Success, Ready",
                "depends on security/iam  not found",
                "reads outputs of default/network  Success, Ready",
                "needed by default/app  Progressing, not Ready (DependencyNotReady)"
            ]
        );
        assert_eq!(
            spec_lines(&cluster),
            [
                ("Depends on:", "default/network, security/iam".to_owned()),
                ("Variable from:", "TF_VAR_vpc_id ← output vpc_id of Terraform default/network".to_owned())
            ]
        );
        let top = &all[0];
        assert_eq!(
            render(top, &all),
            "default/network  Success, Ready\n\
             needed by:\n\
             └── default/cluster  Success, Ready\n    \
                 └── default/app  Progressing, not Ready (DependencyNotReady)\n"
        );
    }

    #[test]
    fn cycles_are_marked_not_followed() {
        let a = tf("a", &serde_json::json!({"dependsOn": [{"name": "b"}]}), None);
        let b = tf("b", &serde_json::json!({"dependsOn": [{"name": "a"}]}), None);
        let all = [a.clone(), b];
        assert_eq!(
            render(&a, &all),
            "default/a  Pending, not Ready\n\
             └── depends on default/b  Pending, not Ready\n    \
                 └── depends on default/a  (cycle)\n\
             needed by:\n\
             └── default/b  Pending, not Ready\n    \
                 └── default/a  (cycle)\n"
        );
    }
}

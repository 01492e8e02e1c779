//! `spec.dependsOn`: the facts [`super::decide`] needs (is every dependency Ready at its
//! current generation?), cycles, the cross-namespace opt-in, and deletion order.
//!
//! # Rules (README-ready)
//!
//! - A resource runs (deploy, post-deploy, drift correction) only when every `dependsOn`
//!   entry exists and is `Ready` at its current generation (its Ready condition is `True` and
//!   describes `metadata.generation`). While one is not, status says which and why (reason
//!   `DependencyNotReady`) and nothing starts; the dependency's change wakes it (a watch, no
//!   polling). A resource already up to date stays Ready meanwhile.
//! - A `dependsOn` cycle is an `Error` naming the cycle (`a → b → a`), until the spec changes.
//! - A reference to another namespace (`dependsOn` or `variablesFrom`) is refused unless the
//!   agent runs with `--allow-cross-namespace-refs` (Helm value `allowCrossNamespaceRefs`).
//! - **Deletion order.** Deleting a resource that others still need (through `dependsOn` or
//!   `variablesFrom`) *waits* — its destroy does not start — until they are gone, with status
//!   naming them (reason `DependantsExist`): deleting a whole layer (`kubectl delete -f dir/`)
//!   then destroys it top-down, and a network is never destroyed under a live cluster. The
//!   `alustan.io/skip-destroy: "true"` annotation releases it at once (nothing is destroyed).
//!   A resource with nothing to destroy (no destroy script, nothing applied) does not wait, nor
//!   do members of a `dependsOn` cycle for each other (they would wait forever).

use alustan_shared::conditions::{self, reason};
use alustan_shared::{State, Terraform};
use kube::runtime::controller::Action;

use super::pass::Pass;
use super::status::Phase;
use crate::error::{Error, Result};
use crate::graph::{self, Key};

/// Whether `tf` is Ready at its current generation; otherwise why not.
pub fn readiness(tf: &Terraform) -> Result<(), String> {
    let generation = tf.metadata.generation;
    let status = tf.status.as_ref();
    let ready = status.and_then(|s| conditions::find(&s.conditions, conditions::READY));
    match ready {
        None => Err("not Ready yet (never reconciled)".to_owned()),
        Some(c) if c.status != conditions::TRUE => Err(format!("not Ready ({})", c.reason)),
        Some(c) if c.observed_generation != generation => Err(format!(
            "Ready describes generation {}, not its current generation {}",
            c.observed_generation.unwrap_or_default(),
            generation.unwrap_or_default()
        )),
        Some(_) => Ok(()),
    }
}

/// Refuses a reference from `own` namespace to `target` unless cross-namespace references are
/// allowed.
pub fn check_namespace(field: &str, own: &str, target: &Key, allowed: bool) -> Result<()> {
    if target.namespace == own || allowed {
        return Ok(());
    }
    Err(Error::invalid_spec(
        field,
        format!(
            "refers to {target} in another namespace; cross-namespace references are off (they read another team's outputs): \
             run the agent with --allow-cross-namespace-refs (Helm value allowCrossNamespaceRefs=true) to allow them"
        ),
    ))
}

impl Pass<'_> {
    /// Checks `dependsOn` (namespaces, cycles) and records in [`Pass::waiting_for`] the first
    /// dependency that is not Ready.
    pub fn check_dependencies(&mut self) -> Result<()> {
        let allowed = self.ctx.config.allow_cross_namespace_refs;
        let dependencies = graph::depends_on(self.tf);
        for (index, dependency) in dependencies.iter().enumerate() {
            check_namespace(&format!("spec.dependsOn[{index}].namespace"), &self.namespace, dependency, allowed)?;
        }
        if dependencies.is_empty() {
            return Ok(());
        }
        if let Some(cycle) = self.ctx.graph.cycle_through(&Key::of(self.tf)) {
            return Err(Error::invalid_spec(
                "spec.dependsOn",
                format!("dependency cycle {}: remove one of these dependsOn entries", graph::show_path(&cycle)),
            ));
        }
        for dependency in dependencies {
            let why = match self.ctx.cached(&dependency) {
                None => Err("does not exist (or is in a namespace the agent does not watch)".to_owned()),
                Some(tf) => readiness(&tf),
            };
            if let Err(why) = why {
                self.waiting_for = Some(format!("{dependency}: {why}"));
                return Ok(());
            }
        }
        Ok(())
    }

    /// Says in status that a run waits for a dependency.
    pub fn wait_for_dependency(&mut self, dependency: &str) -> Action {
        let message = format!("waiting for dependency {dependency}");
        // A resource deployed before stays Success/Completed while it waits; anything else
        // (an earlier error, nothing yet) is waiting, not failed.
        let state = match self.status.state {
            Some(state @ (State::Success | State::Completed)) => state,
            _ => State::Progressing,
        };
        self.summarize(state, Phase::Reconciling, reason::DEPENDENCY_NOT_READY, &message);
        // The dependency's change wakes this resource; this is the net under a lost wake.
        Action::requeue(self.ctx.config.sync_interval)
    }

    /// Deletion order: `Some` (the error keeping the finalizer) while others need this
    /// resource, with status naming them.
    pub fn dependants_block_deletion(&mut self) -> Option<Error> {
        // Nothing to destroy: nothing to destroy too early.
        if self.tf.spec.scripts.destroy.is_none() || self.status.applied.is_none() {
            return None;
        }
        let key = Key::of(self.tf);
        // Members of a dependsOn cycle through this resource would wait for each other forever.
        let cycle = self.ctx.graph.cycle_through(&key).unwrap_or_default();
        let dependants: Vec<Key> = self.ctx.graph.needed_by(&key).into_iter().filter(|d| !cycle.contains(d)).collect();
        if dependants.is_empty() {
            return None;
        }
        let names: Vec<String> = dependants.iter().map(ToString::to_string).collect();
        let message = format!(
            "deletion waits for the resources that depend on this one to be deleted first: {} (dependsOn or variablesFrom). \
             Set annotation {}=true to release it without destroying",
            names.join(", "),
            alustan_shared::meta::SKIP_DESTROY
        );
        self.summarize(State::Progressing, Phase::Reconciling, reason::DEPENDANTS_EXIST, &message);
        Some(Error::DeletionPending { retry_in: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ready(generation: i64, ready: Option<(&str, i64)>) -> Terraform {
        let conditions: Vec<serde_json::Value> = ready
            .map(|(status, observed)| {
                serde_json::json!({"type": "Ready", "status": status, "reason": "Deploying", "message": "",
                                   "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z"})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
            "metadata": {"name": "network", "namespace": "a", "generation": generation},
            "spec": {"scripts": {"deploy": "deploy"}, "containerRegistry": {"imageName": "x/y", "semanticVersion": "^1"}},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn ready_means_ready_at_the_current_generation() {
        assert_eq!(readiness(&with_ready(2, Some(("True", 2)))), Ok(()));
        assert_eq!(readiness(&with_ready(2, None)), Err("not Ready yet (never reconciled)".to_owned()));
        assert_eq!(readiness(&with_ready(2, Some(("False", 2)))), Err("not Ready (Deploying)".to_owned()));
        assert_eq!(
            readiness(&with_ready(3, Some(("True", 2)))),
            Err("Ready describes generation 2, not its current generation 3".to_owned())
        );
    }

    #[test]
    fn another_namespace_needs_the_opt_in() {
        let other = Key::new("team-b", "network");
        assert!(check_namespace("spec.dependsOn[0].namespace", "team-b", &other, false).is_ok());
        assert!(check_namespace("spec.dependsOn[0].namespace", "team-a", &other, true).is_ok());
        let refused = check_namespace("spec.dependsOn[0].namespace", "team-a", &other, false).unwrap_err();
        assert!(refused.needs_change());
        assert!(
            refused
                .to_string()
                .starts_with("spec.dependsOn[0].namespace: refers to team-b/network in another namespace"),
            "{refused}"
        );
        assert!(refused.to_string().contains("--allow-cross-namespace-refs"));
    }
}

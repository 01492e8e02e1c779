//! One reconcile pass of one resource: what it read (the resource, the status it starts from)
//! and what it will write, so the steps share one receiver instead of threading
//! `(tf, ctx, status, generation, …)` through every call.

use alustan_shared::{State, Terraform, TerraformStatus};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt as _};

use super::status::{self, Phase, summarize};
use crate::context::Context;
use crate::error::{Error, Result};

/// The longest Event note (the API server refuses larger ones; status has the whole message).
const NOTE_CHARS: usize = 1000;

pub struct Pass<'a> {
    pub tf: &'a Terraform,
    pub ctx: &'a Context,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: i64,
    /// The spec's inputs fingerprint (what its runs apply).
    pub fingerprint: String,
    /// The status the pass started from (the agent's last write when the cache lags behind it).
    before: TerraformStatus,
    /// The resourceVersions `before` is newer than (see [`status::Basis`]).
    basis: status::Basis,
    /// The status the pass will write.
    pub status: TerraformStatus,
    /// The first `dependsOn` entry not Ready, and why (see [`super::dependencies`]).
    pub waiting_for: Option<String>,
    /// The values `spec.variablesFrom` read for the pass's run (see [`super::variables_from`]).
    pub resolved: super::variables_from::Resolved,
}

impl<'a> Pass<'a> {
    pub fn new(tf: &'a Terraform, ctx: &'a Context) -> Result<Self> {
        let namespace = tf.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
        let uid = tf.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let (before, basis) = status::current(&ctx.written, tf);
        Ok(Self {
            tf,
            ctx,
            name: tf.name_any(),
            namespace,
            uid,
            generation: tf.metadata.generation.unwrap_or_default(),
            fingerprint: tf.spec.inputs_fingerprint(),
            status: before.clone(),
            before,
            basis,
            waiting_for: None,
            resolved: super::variables_from::Resolved::default(),
        })
    }

    /// Reads `spec.variablesFrom` and folds the values into the inputs fingerprint, so a
    /// changed value is a change of inputs. `tolerate`: a failure is only logged (a dependency
    /// is not Ready: its outputs may not exist yet, and nothing runs anyway).
    pub async fn read_variables_from(&mut self, tolerate: bool) -> Result<()> {
        if self.tf.spec.variables_from.is_empty() {
            return Ok(());
        }
        match self.resolve_variables().await {
            Ok(resolved) => {
                let spec = self.tf.spec.inputs_fingerprint();
                self.fingerprint = alustan_shared::fingerprint(&[&spec, &resolved.fingerprint(&self.uid)]);
                self.resolved = resolved;
                Ok(())
            }
            // A dependency not Ready yet may not have the output yet: the run waits for it,
            // and what is still missing once it is Ready is reported then.
            Err(err) if tolerate => {
                tracing::debug!(error = %err, "variablesFrom not readable while a dependency is not Ready");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// An API of the resource's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    /// The metadata of an object the resource owns (a Secret of its outputs or plan): its
    /// namespace, the resource as controller, the agent's labels.
    pub fn owned_metadata(&self, name: &str) -> kube::api::ObjectMeta {
        use alustan_shared::meta;
        kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            owner_references: self.tf.controller_owner_ref(&()).map(|o| vec![o]),
            labels: Some(std::collections::BTreeMap::from([
                (meta::LABEL_MANAGED_BY.to_owned(), meta::MANAGED_BY_VALUE.to_owned()),
                (meta::LABEL_TERRAFORM.to_owned(), meta::terraform_label_value(&self.name)),
            ])),
            ..kube::api::ObjectMeta::default()
        }
    }

    /// Sets state, message, `observedGeneration` and the kstatus conditions together.
    pub fn summarize(&mut self, state: State, phase: Phase, reason: &str, message: &str) {
        summarize(&mut self.status, self.generation, state, phase, reason, message);
    }

    /// Whether condition `type_` has status `value`.
    pub fn condition_is(&self, type_: &str, value: &str) -> bool {
        alustan_shared::conditions::find(&self.status.conditions, type_).is_some_and(|c| c.status == value)
    }

    /// Says what is going on without touching state or `Ready` (they keep describing the last
    /// run): the message and the `Reconciling` condition only.
    pub fn note(&mut self, reconciling: &str, reason: &str, message: &str) {
        self.status.message = Some(message.to_owned());
        self.status.observed_generation = Some(self.generation);
        let conditions = alustan_shared::conditions::RECONCILING;
        super::status::set_condition(&mut self.status, conditions, reconciling, reason, message, self.generation);
    }

    /// Whether the status this pass started from already says `message`.
    pub fn said(&self, message: &str) -> bool {
        self.before.message.as_deref() == Some(message)
    }

    /// Publishes an Event; failing to is logged, never fatal (a terminating namespace refuses
    /// Events too: status still tells).
    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(NOTE_CHARS).collect()),
            action: action.into(),
            secondary: None,
        };
        // kube's recorder folds a repeat of the same reason into the FIRST note: progress
        // (Normal) Events go through a fresh recorder, so "deploying v1.0.4" is not shown as
        // the first deploy's "deploying v1.0.1".
        let fresh;
        let recorder = if type_ == EventType::Normal {
            fresh = kube::runtime::events::Recorder::new(self.ctx.client.clone(), self.ctx.reporter.clone());
            &fresh
        } else {
            &self.ctx.recorder
        };
        if let Err(err) = recorder.publish(&event, &self.tf.object_ref(&())).await {
            tracing::warn!(error = %err, "cannot publish event");
        }
    }

    /// A Warning Event, unless the status this pass started from already said `message` (kube's
    /// recorder would fold a repeat into the first Event's series anyway).
    pub async fn warn_once(&self, reason: &str, action: &str, message: &str) {
        if !self.said(message) {
            self.event(EventType::Warning, reason, action, message).await;
        }
    }

    /// Writes the status if it changed (one write per pass at most).
    pub async fn write(&mut self) -> Result<()> {
        let api: Api<Terraform> = self.api();
        status::write(&api, self.tf, &self.ctx.written, (&self.before, &mut self.basis), &self.status).await?;
        self.before = self.status.clone();
        Ok(())
    }
}

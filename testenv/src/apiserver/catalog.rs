//! The resource types the server serves: built-in kinds plus those registered by CRDs.

use std::sync::Arc;

use serde_json::Value;

/// Built-in kinds whose writes need kind-specific rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    Namespace,
    Pod,
    Job,
    Secret,
    /// core/v1 events: the storage form of both event APIs.
    Event,
    /// events.k8s.io/v1 events, converted to and from the core form.
    EventV1,
    Crd,
    SelfSubjectAccessReview,
}

/// An `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One version of a resource.
#[derive(Debug, Clone)]
pub struct VersionDef {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// The CRD's `openAPIV3Schema` (custom resources only).
    pub schema: Option<Value>,
    pub columns: Vec<Column>,
    /// Whether the `status` subresource exists.
    pub status: bool,
}

/// A resource type (group + plural) and how it behaves.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub versions: Vec<VersionDef>,
    /// Subresources besides `status` (`log` for pods, `token` for service accounts).
    pub extra_subresources: Vec<&'static str>,
    pub verbs: Vec<&'static str>,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Defined by a CRD (schema validation, pruning, 415 for strategic merge patch).
    pub custom: bool,
    pub special: Special,
    /// The storage key; both event APIs share one.
    pub store: String,
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceDef {
    /// A served version by name.
    pub fn version(&self, name: &str) -> Option<&VersionDef> {
        self.versions.iter().find(|v| v.served && v.name == name)
    }

    /// The `apiVersion` string for a version: `v1` or `group/version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_owned() } else { format!("{}/{version}", self.group) }
    }

    /// The preferred (storage, else first served) version.
    pub fn preferred_version(&self) -> Option<&VersionDef> {
        self.versions.iter().find(|v| v.served && v.storage).or_else(|| self.versions.iter().find(|v| v.served))
    }

    /// The error target for an object name.
    pub fn target<'a>(&'a self, name: &'a str) -> super::status::Target<'a> {
        super::status::Target { group: &self.group, resource: &self.plural, kind: &self.kind, name }
    }
}

/// All resource types, in registration order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    defs: Vec<Arc<ResourceDef>>,
    /// Bumped on every change, used as the OpenAPI hash.
    pub generation: u64,
}

struct Builtin {
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
    special: Special,
}

#[allow(clippy::fn_params_excessive_bools, clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
    special: Special,
) -> Builtin {
    Builtin { group, plural, singular: "", kind, namespaced, short, status, generation, special }
}

const BUILTINS: &[Builtin] = &[
    b("", "namespaces", "Namespace", false, &["ns"], true, false, Special::Namespace),
    b("", "configmaps", "ConfigMap", true, &["cm"], false, false, Special::None),
    b("", "secrets", "Secret", true, &[], false, false, Special::Secret),
    b("", "serviceaccounts", "ServiceAccount", true, &["sa"], false, false, Special::None),
    b("", "pods", "Pod", true, &["po"], true, false, Special::Pod),
    b("", "events", "Event", true, &["ev"], false, false, Special::Event),
    b("events.k8s.io", "events", "Event", true, &["ev"], false, false, Special::EventV1),
    b("batch", "jobs", "Job", true, &[], true, true, Special::Job),
    b("networking.k8s.io", "ingresses", "Ingress", true, &["ing"], true, true, Special::None),
    b("coordination.k8s.io", "leases", "Lease", true, &[], false, false, Special::None),
    b("rbac.authorization.k8s.io", "roles", "Role", true, &[], false, false, Special::None),
    b("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", true, &[], false, false, Special::None),
    b("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false, &[], false, false, Special::None),
    b(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
        false,
        Special::None,
    ),
    b(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        true,
        Special::Crd,
    ),
    b(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
        false,
        false,
        Special::SelfSubjectAccessReview,
    ),
];

impl Catalog {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        let defs = BUILTINS
            .iter()
            .map(|bi| {
                let categories = match bi.plural {
                    "pods" | "jobs" => vec!["all".to_owned()],
                    "customresourcedefinitions" => vec!["api-extensions".to_owned()],
                    _ => Vec::new(),
                };
                let verbs =
                    if bi.special == Special::SelfSubjectAccessReview { vec!["create"] } else { ALL_VERBS.to_vec() };
                let store =
                    if bi.plural == "events" { "/events".to_owned() } else { format!("{}/{}", bi.group, bi.plural) };
                let singular = if bi.singular.is_empty() { bi.kind.to_lowercase() } else { bi.singular.to_owned() };
                Arc::new(ResourceDef {
                    group: bi.group.to_owned(),
                    plural: bi.plural.to_owned(),
                    singular,
                    kind: bi.kind.to_owned(),
                    namespaced: bi.namespaced,
                    short_names: bi.short.iter().map(|s| (*s).to_owned()).collect(),
                    categories,
                    versions: vec![VersionDef {
                        name: "v1".into(),
                        served: true,
                        storage: true,
                        schema: None,
                        columns: Vec::new(),
                        status: bi.status,
                    }],
                    extra_subresources: match bi.plural {
                        "pods" => vec!["binding", "log"],
                        "serviceaccounts" => vec!["token"],
                        _ => Vec::new(),
                    },
                    verbs,
                    generation: bi.generation,
                    custom: false,
                    special: bi.special,
                    store,
                })
            })
            .collect();
        Self { defs, generation: 1 }
    }

    /// The resource serving `plural` at `group/version`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs.iter().find(|d| d.group == group && d.plural == plural && d.version(version).is_some()).cloned()
    }

    /// Every resource type.
    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// Groups with their served versions, core group first (as `""`).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            let idx = if let Some(i) = out.iter().position(|(g, _)| *g == d.group) {
                i
            } else {
                out.push((d.group.clone(), Vec::new()));
                out.len() - 1
            };
            for v in d.versions.iter().filter(|v| v.served) {
                if !out[idx].1.contains(&v.name) {
                    out[idx].1.push(v.name.clone());
                }
            }
        }
        out
    }

    /// Adds or replaces a custom resource type (by group + plural).
    pub fn register(&mut self, def: ResourceDef) {
        self.defs.retain(|d| !(d.group == def.group && d.plural == def.plural));
        self.defs.push(Arc::new(def));
        self.generation += 1;
    }

    /// Removes a custom resource type.
    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.defs.retain(|d| !(d.custom && d.group == group && d.plural == plural));
        self.generation += 1;
    }
}

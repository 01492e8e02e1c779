//! Annotations, labels, the finalizer and the field manager shared by the agent and the plugin.
//!
//! Annotations are how people (and `kubectl alustan`) talk to the agent without touching the
//! spec, so GitOps tools (Argo CD, Flux) that own the spec never see a diff.

/// Request a run now: set it to any new token (the plugin uses an RFC 3339 time). The agent runs
/// `deploy` once per distinct token and echoes the token into `status.lastHandledReconcileAt`.
pub const RESYNC_REQUESTED_AT: &str = "alustan.io/reconcile-requested-at";

/// Flux's equivalent of [`RESYNC_REQUESTED_AT`], honoured too so `flux reconcile`-style tooling
/// works unchanged.
pub const FLUX_RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Request a registry rescan (bypassing the shared scan cache) before the next decision. Echoed
/// into `status.lastHandledRescanAt`.
pub const RESCAN_REQUESTED_AT: &str = "alustan.io/rescan-requested-at";

/// Set to `"true"` on a `Terraform` being deleted to release it without running its destroy
/// script (the infrastructure is left in place). An explicit operator escape hatch.
pub const SKIP_DESTROY: &str = "alustan.io/skip-destroy";

/// The finalizer the agent puts on every `Terraform` so deletion can run the destroy script.
pub const FINALIZER: &str = "alustan.io/finalizer";

/// The field manager the agent uses for server-side apply of status and Jobs.
pub const FIELD_MANAGER: &str = "alustan-agent";

/// Standard label naming the tool that manages an object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on everything the agent creates.
pub const MANAGED_BY_VALUE: &str = "alustan";
/// Label on Jobs, Pods and Secrets: the name of the owning `Terraform`.
pub const LABEL_TERRAFORM: &str = "alustan.io/terraform";
/// Label on Jobs and Pods: the run's action (`deploy`, `post-deploy`, `destroy`).
pub const LABEL_ACTION: &str = "alustan.io/action";
/// Label on Jobs and Pods: the `metadata.generation` of the `Terraform` the run was made for.
pub const LABEL_GENERATION: &str = "alustan.io/generation";

/// Environment variable, set in every run, naming the file a script may write
/// `terraform output -json` into.
pub const ENV_OUTPUTS_FILE: &str = "ALUSTAN_OUTPUTS";

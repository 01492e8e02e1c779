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

/// The labels of the agent's Pods, Deployment and leader-election Lease (the Helm chart's
/// selector labels, without `app.kubernetes.io/instance`, the release name the user chose):
/// the agent writes them on its Lease, `kubectl alustan` finds the agent by them.
pub const AGENT_LABELS: [(&str, &str); 2] =
    [("app.kubernetes.io/name", "alustan"), ("app.kubernetes.io/component", "agent")];
/// Label on Jobs, Pods and Secrets: the name of the owning `Terraform`.
pub const LABEL_TERRAFORM: &str = "alustan.io/terraform";
/// Label on Jobs and Pods: the run's action (`deploy`, `post-deploy`, `destroy`).
pub const LABEL_ACTION: &str = "alustan.io/action";
/// Label on Jobs and Pods: the `metadata.generation` of the `Terraform` the run was made for.
pub const LABEL_GENERATION: &str = "alustan.io/generation";

/// Environment variable, set in every run, naming the file a script may write
/// `terraform output -json` into.
pub const ENV_OUTPUTS_FILE: &str = "ALUSTAN_OUTPUTS";

/// Start of the line that opens the outputs block in a run's log; the Job name and
/// [`MARKER_SUFFIX`] follow (see [`outputs_markers`]).
pub const OUTPUTS_BEGIN_PREFIX: &str = "=== alustan outputs begin ";
/// Start of the line that closes the outputs block.
pub const OUTPUTS_END_PREFIX: &str = "=== alustan outputs end ";
/// End of both marker lines.
pub const MARKER_SUFFIX: &str = " ===";

/// The lines around the outputs block in the log of Job `job`. Naming the Job means a block
/// printed by anything else in the log (a nested run's output, say) is never mistaken for it.
pub fn outputs_markers(job: &str) -> (String, String) {
    (format!("{OUTPUTS_BEGIN_PREFIX}{job}{MARKER_SUFFIX}"), format!("{OUTPUTS_END_PREFIX}{job}{MARKER_SUFFIX}"))
}

/// Environment variable, set in every run, naming the read-only file holding the run's
/// one-time pad: the outputs block is combined with it (XOR), so sensitive outputs never reach the log.
pub const ENV_SEAL_FILE: &str = "ALUSTAN_SEAL";
/// The key of the pad in the seal Secret (and so the file name in its volume).
pub const SEAL_KEY: &str = "pad";
/// Bytes of pad per run: the largest outputs file a run may print.
pub const SEAL_BYTES: usize = 64 * 1024;

/// The Secret holding the pad of Job `job` (owned by the Job, collected with it).
pub fn seal_secret_name(job: &str) -> String {
    format!("{job}-seal")
}

/// First word of a sealed block's first line, followed by the outputs file's size in bytes;
/// hex lines of the sealed bytes follow.
pub const SEALED_HEADER: &str = "sealed";
/// First word of the only line of a block whose outputs file was larger than the pad,
/// followed by its size and the pad's: nothing of the file is printed.
pub const OVERSIZE_HEADER: &str = "oversize";

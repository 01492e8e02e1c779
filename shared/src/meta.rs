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

/// Request a plan now (any new token; the plugin uses an RFC 3339 time): the plan script runs
/// and its result waits in `status.plan`, applied only once approved. Echoed into
/// `status.lastHandledPlanAt`.
pub const PLAN_REQUESTED_AT: &str = "alustan.io/plan-requested-at";

/// Approve a plan: its id, exactly as `status.plan.id` says. Any other id approves nothing
/// (a newer plan superseded it).
pub const APPROVE_PLAN: &str = "alustan.io/approve-plan";

/// Reject a plan: its id. Nothing is applied until the inputs change or a plan is requested.
pub const REJECT_PLAN: &str = "alustan.io/reject-plan";

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
/// Label on Jobs, Pods and Secrets: the owning `Terraform`'s name, as
/// [`terraform_label_value`] fits it into a label value.
pub const LABEL_TERRAFORM: &str = "alustan.io/terraform";
/// Label on Jobs and Pods: the run's action (`deploy`, `post-deploy`, `destroy`, `plan`).
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

/// Environment variable, set in plan runs, naming the file the plan script writes its JSON
/// summary into (the `resource_changes` of `terraform show -json`).
pub const ENV_PLAN: &str = "ALUSTAN_PLAN";
/// Environment variable naming the plan file: in a plan run where to write it (optional), in
/// a deploy of an approved plan the read-only file to apply.
pub const ENV_PLAN_FILE: &str = "ALUSTAN_PLAN_FILE";
/// Bytes of pad of a plan run: the largest summary and plan file together. The pair reaches
/// the agent sealed through the log (hex, twice the size) and is kept in a Secret (at most
/// 1 MiB).
pub const PLAN_SEAL_BYTES: usize = 512 * 1024;
/// Annotation on a resource's plan Secret: the id of the plan it holds.
pub const PLAN_ID_ANNOTATION: &str = "alustan.io/plan-id";
/// The key of the plan file in the plan Secret.
pub const PLAN_KEY: &str = "plan";

/// The Secret holding a resource's latest plan file (owned by the resource).
pub fn plan_secret_name(name: &str) -> String {
    fit(name, "-plan", NAME_MAX)
}

/// The longest label value Kubernetes accepts.
pub const LABEL_VALUE_MAX: usize = 63;
/// The longest object name Kubernetes accepts (a DNS subdomain).
pub const NAME_MAX: usize = 253;

/// The value of [`LABEL_TERRAFORM`] for a resource named `name`: the name itself when it fits a
/// label value (63 characters), else its head and a hash of the whole name, so every resource
/// name, up to the 253 characters Kubernetes allows, gives a valid and distinct label.
pub fn terraform_label_value(name: &str) -> String {
    fit(name, "", LABEL_VALUE_MAX)
}

/// The Secret holding a resource's sensitive outputs: `{name}-outputs`, shortened with a hash of
/// the name when that would be longer than an object name may be.
pub fn outputs_secret_name(name: &str) -> String {
    fit(name, "-outputs", NAME_MAX)
}

/// `{name}{suffix}` when it is at most `max` long, else `{head}-{hash}{suffix}` of exactly
/// `max`: the head cut where it ends in an alphanumeric character (names and label values must).
fn fit(name: &str, suffix: &str, max: usize) -> String {
    if name.len() + suffix.len() <= max {
        return format!("{name}{suffix}");
    }
    let hash = crate::fingerprint(&[name]);
    let room = max.saturating_sub(suffix.len() + hash.len() + 1);
    let head: String = name.chars().take(room).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_kubernetes_limits_and_stay_distinct() {
        assert_eq!(terraform_label_value("staging"), "staging");
        assert_eq!(outputs_secret_name("staging"), "staging-outputs");
        let long = "a".repeat(253);
        let other = format!("{}b", "a".repeat(252));
        let label = terraform_label_value(&long);
        assert!(label.len() <= LABEL_VALUE_MAX, "{label}");
        assert!(label.ends_with(|c: char| c.is_ascii_alphanumeric()));
        assert_ne!(label, terraform_label_value(&other));
        let secret = outputs_secret_name(&long);
        assert!(secret.len() <= NAME_MAX && secret.ends_with("-outputs"), "{secret}");
        assert_ne!(secret, outputs_secret_name(&other));
        // A head cut on a dash or dot never leaves it at the end.
        let dashed = format!("{}-{}", "a".repeat(40), "b".repeat(60));
        assert!(!terraform_label_value(&dashed).contains("--"));
    }
}

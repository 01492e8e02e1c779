//! The agent as the plugin sees it: its health from the leader-election Lease it renews, and its
//! version from its Deployment (else a Pod). Both are found by the chart's labels.
//!
//! Health is judged the way the agents themselves judge a Lease: the leader is up while
//! `renewTime + leaseDurationSeconds` is in the future and `holderIdentity` is set (an agent
//! shutting down releases the Lease by clearing it).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::errors::{CliError, is_not_found};
use crate::tui::format::age;

/// [`alustan_shared::meta::AGENT_LABELS`] as a label selector (a test keeps them equal).
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=alustan,app.kubernetes.io/component=agent";
/// The Lease resource, as `kubectl auth can-i` names it.
pub const LEASES: &str = "leases.coordination.k8s.io";
/// The agent's lease duration, assumed when a Lease does not say.
pub const DEFAULT_LEASE_DURATION: SignedDuration = SignedDuration::from_secs(15);
/// How to install the agent, for the not-found hint.
pub const INSTALL_HINT: &str = "helm install alustan charts/alustan -n alustan-system --create-namespace";

/// What one agent Lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub namespace: String,
    pub lease: String,
    /// The leader's Pod name (`host_pid` outside a cluster); `None` once released.
    pub holder: Option<String>,
    pub renewed: Option<Timestamp>,
    pub duration: SignedDuration,
}

impl Leader {
    pub fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            namespace: lease.metadata.namespace.clone().unwrap_or_default(),
            lease: lease.metadata.name.clone().unwrap_or_default(),
            holder: spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty()),
            renewed: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .map_or(DEFAULT_LEASE_DURATION, |s| SignedDuration::from_secs(i64::from(s))),
        }
    }

    /// Whether a leader holds the Lease at `now`.
    pub fn is_up(&self, now: Timestamp) -> bool {
        self.holder.is_some() && self.renewed.is_some_and(|renewed| renewed + self.duration > now)
    }
}

/// The agent's health, as far as the user's credentials let us see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AgentHealth {
    /// Not looked up yet.
    #[default]
    Unknown,
    /// The Lease was found; [`Leader::is_up`] tells up from stale at any moment.
    Leader(Leader),
    /// No Lease with the agent's labels (`namespace`: the one searched, `None`: all).
    NotFound { namespace: Option<String> },
    /// The user may not list Leases there.
    Forbidden { namespace: Option<String> },
    /// The look-up failed otherwise (one line).
    Failed(String),
}

impl AgentHealth {
    /// The text after `agent: ` in `kubectl alustan version` (a hint may follow on more lines).
    pub fn describe(&self, now: Timestamp) -> String {
        match self {
            AgentHealth::Unknown => "unknown (not looked up)".to_owned(),
            AgentHealth::Leader(leader) => describe_leader(leader, now),
            AgentHealth::NotFound { namespace } => format!(
                "not found (no Lease labelled {AGENT_SELECTOR} {})\n  is the agent installed? `{INSTALL_HINT}`; \
                 if it runs in a namespace you cannot list cluster-wide, pass --agent-namespace NS",
                where_(namespace.as_deref())
            ),
            AgentHealth::Forbidden { namespace } => format!(
                "unknown: you may not list {LEASES} {} (`kubectl auth can-i list {LEASES} {}`){}",
                where_(namespace.as_deref()),
                namespace.as_deref().map_or_else(|| "-A".to_owned(), |n| format!("-n {n}")),
                if namespace.is_none() { "; --agent-namespace NS looks in one namespace only" } else { "" }
            ),
            AgentHealth::Failed(why) => format!("unknown ({why})"),
        }
    }

    /// The TUI header's form: `up`, `stale 3m`, `?`.
    pub fn short(&self, now: Timestamp) -> String {
        match self {
            AgentHealth::Leader(leader) if leader.is_up(now) => "up".to_owned(),
            AgentHealth::Leader(leader) => {
                leader.renewed.map_or_else(|| "stale".to_owned(), |renewed| format!("stale {}", age(renewed, now)))
            }
            _ => "?".to_owned(),
        }
    }
}

fn describe_leader(leader: &Leader, now: Timestamp) -> String {
    let renewed = leader.renewed.map(|r| format!("renewed {} ago", age(r, now)));
    match (&leader.holder, renewed) {
        (Some(holder), Some(renewed)) if leader.is_up(now) => format!("up (leader {holder}, {renewed})"),
        (Some(holder), Some(renewed)) => format!("stale (last {renewed} by {holder})"),
        (None, Some(renewed)) => format!("stale (no leader: the Lease was released; last {renewed})"),
        (Some(holder), None) => format!("stale (held by {holder} but never renewed)"),
        (None, None) => "stale (no leader, never renewed)".to_owned(),
    }
}

fn where_(namespace: Option<&str>) -> String {
    namespace.map_or_else(|| "in any namespace".to_owned(), |n| format!("in namespace \"{n}\""))
}

/// Looks the agent's Lease up (in `namespace`, else everywhere); with several, the most recently
/// renewed one is the live one.
pub async fn health(client: &Client, namespace: Option<&str>) -> AgentHealth {
    let params = ListParams::default().labels(AGENT_SELECTOR);
    match api::<Lease>(client, namespace).list(&params).await {
        Ok(list) => list
            .items
            .iter()
            .map(Leader::from_lease)
            .max_by_key(|leader| leader.renewed)
            .map_or_else(|| AgentHealth::NotFound { namespace: namespace.map(str::to_owned) }, AgentHealth::Leader),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            AgentHealth::Forbidden { namespace: namespace.map(str::to_owned) }
        }
        Err(error) => {
            tracing::warn!(%error, "agent lease look-up failed");
            let error = CliError::api(error, "list", LEASES, namespace);
            AgentHealth::Failed(error.to_string().lines().next().unwrap_or_default().to_owned())
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// `version (namespace/name)` of the agent from its Deployment, else a Pod, or why it is unknown.
pub async fn version(client: &Client, namespace: Option<&str>) -> Result<String, String> {
    let params = ListParams::default().labels(AGENT_SELECTOR);
    // A 403 or a missing apps/v1 here is not final: the Pods may still say.
    if let Ok(list) = api::<Deployment>(client, namespace).list(&params).await
        && let Some(d) = list.items.first()
    {
        let image = d.spec.template.spec.as_ref().and_then(|s| s.containers.first());
        return Ok(version_of(&d.metadata, image.and_then(|c| c.image.as_deref())));
    }
    match api::<Pod>(client, namespace).list(&params).await {
        Ok(list) => list
            .items
            .first()
            .map(|p| {
                version_of(
                    &p.metadata,
                    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.as_deref()),
                )
            })
            .ok_or_else(|| format!("not found (no Deployment or Pod labelled {AGENT_SELECTOR} {})", where_(namespace))),
        Err(error) if is_not_found(&error) => Err(format!("unknown ({error})")),
        Err(error) => {
            let error = CliError::api(error, "list", "pods", namespace);
            Err(format!("unknown ({})", error.to_string().lines().next().unwrap_or_default()))
        }
    }
}

/// The version label if set, else the image tag.
fn version_of(meta: &ObjectMeta, image: Option<&str>) -> String {
    let label = meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/version")).cloned();
    let tag = image.and_then(|i| i.rsplit_once(':')).map(|(_, tag)| tag.to_owned());
    let version = label.or(tag).unwrap_or_else(|| "(unknown version)".to_owned());
    format!(
        "{version} ({}/{})",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_is_the_labels_the_agent_writes() {
        let labels: Vec<String> = alustan_shared::meta::AGENT_LABELS.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(AGENT_SELECTOR, labels.join(","));
    }

    const NOW: Timestamp = Timestamp::constant(1_768_046_400, 0);

    fn leader(holder: Option<&str>, renewed_ago: Option<i64>) -> Leader {
        Leader {
            namespace: "alustan-system".to_owned(),
            lease: "alustan-agent".to_owned(),
            holder: holder.map(str::to_owned),
            renewed: renewed_ago.map(|s| NOW - SignedDuration::from_secs(s)),
            duration: DEFAULT_LEASE_DURATION,
        }
    }

    #[test]
    fn a_lease_renewed_within_its_duration_is_up() {
        let health = AgentHealth::Leader(leader(Some("alustan-agent-7d9f-x2"), Some(2)));
        assert_eq!(health.describe(NOW), "up (leader alustan-agent-7d9f-x2, renewed 2s ago)");
        assert_eq!(health.short(NOW), "up");
    }

    #[test]
    fn a_lease_past_renew_time_plus_duration_is_stale() {
        let health = AgentHealth::Leader(leader(Some("alustan-agent-7d9f-x2"), Some(180)));
        assert_eq!(health.describe(NOW), "stale (last renewed 3m ago by alustan-agent-7d9f-x2)");
        assert_eq!(health.short(NOW), "stale 3m");
        // Exactly at expiry the leader is gone (the agents' own rule: valid while before it).
        let at_expiry = AgentHealth::Leader(leader(Some("a"), Some(15)));
        assert_eq!(at_expiry.short(NOW), "stale 15s");
    }

    #[test]
    fn a_released_or_never_renewed_lease_is_stale() {
        assert!(AgentHealth::Leader(leader(None, Some(1))).describe(NOW).starts_with("stale (no leader"));
        assert_eq!(AgentHealth::Leader(leader(Some("a"), None)).short(NOW), "stale");
    }

    #[test]
    fn not_found_and_forbidden_say_what_to_do() {
        let everywhere = AgentHealth::NotFound { namespace: None }.describe(NOW);
        assert!(everywhere.contains("in any namespace") && everywhere.contains(INSTALL_HINT), "{everywhere}");
        assert!(everywhere.contains("--agent-namespace"), "{everywhere}");
        let forbidden = AgentHealth::Forbidden { namespace: Some("ops".to_owned()) }.describe(NOW);
        assert!(forbidden.contains("may not list leases.coordination.k8s.io in namespace \"ops\""), "{forbidden}");
        assert!(forbidden.contains("kubectl auth can-i list leases.coordination.k8s.io -n ops"), "{forbidden}");
        assert_eq!(AgentHealth::Forbidden { namespace: None }.short(NOW), "?");
        assert_eq!(AgentHealth::Unknown.short(NOW), "?");
    }
}

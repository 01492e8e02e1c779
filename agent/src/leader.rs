//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both act.
//!
//! kube-rs has no elector; this one follows client-go's `leaderelection` semantics: a Lease
//! of `lease_duration` (15 s) renewed every `retry_period` (2 s); a leader that has not renewed
//! within `renew_deadline` (10 s) gives up. A candidate takes the Lease only when it is absent,
//! expired (`renewTime + leaseDurationSeconds < now`) or released (empty `holderIdentity`).
//! Writes carry the `resourceVersion` read, so of two candidates racing one gets a 409 and
//! loses. Only `get`, `create` and `update` of the one named Lease are used (the chart's Role).
//! Unlike client-go, seeing another holder while leading steps down at once (no waiting for
//! the deadline): acting for 10 s beside a new leader is what the election is there to prevent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// The Lease's labels, by which `kubectl alustan` finds it.
pub const LABELS: [(&str, &str); 2] = alustan_shared::meta::AGENT_LABELS;

/// Which Lease, who we are, and client-go's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    pub lease_name: String,
    pub namespace: String,
    /// `holderIdentity` while leading: the Pod name, else `{hostname}_{pid}`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            lease_name: lease_name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// From the flags: `--lease-name`, `--lease-namespace` (else the client's default
    /// namespace) and the process identity.
    pub fn from_config(config: &crate::config::Config, client: &Client) -> Self {
        let namespace = config.lease_namespace.as_deref().unwrap_or_else(|| client.default_namespace());
        Self::new(&config.lease_name, namespace, &process_identity())
    }
}

/// `POD_NAME`, else `{hostname}_{pid}`.
pub fn process_identity() -> String {
    let host = hostname::get().map_or_else(|_| "unknown".to_owned(), |h| h.to_string_lossy().into_owned());
    identity(std::env::var("POD_NAME").ok().as_deref(), &host, std::process::id())
}

fn identity(pod_name: Option<&str>, host: &str, pid: u32) -> String {
    match pod_name {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("{host}_{pid}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the leader election Lease {namespace}/{name}: {reason}")]
    Lost { namespace: String, name: String, reason: String },
    /// The controller task ended abnormally (a panic): the process must not exit cleanly.
    #[error("the controller stopped unexpectedly while leading: {0}")]
    ControllerCrashed(String),
}

/// What one look at the Lease allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// No Lease: create it, holding it.
    Create(Lease),
    /// Ours to renew, or free to take: write this (it carries the `resourceVersion` read).
    Update(Lease),
    /// Someone else holds it until `expires`.
    Held { holder: String, expires: jiff::Timestamp },
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// The holder of a Lease; `None` when released (empty) or never held.
pub fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).filter(|h| !h.is_empty())
}

/// Decides from the Lease as read (pure: the election's rules in one place).
pub fn claim(current: Option<&Lease>, config: &ElectionConfig, now: jiff::Timestamp) -> Claim {
    let Some(lease) = current else {
        let labels: BTreeMap<String, String> = LABELS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let metadata = ObjectMeta {
            name: Some(config.lease_name.clone()),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        };
        let spec = LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            lease_duration_seconds: Some(seconds(config.lease_duration)),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        };
        return Claim::Create(Lease { metadata, spec: Some(spec) });
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let ours = holder(lease) == Some(config.identity.as_str());
    if let (Some(other), false) = (holder(lease), ours) {
        let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
        let expires =
            spec.renew_time.as_ref().map_or(jiff::Timestamp::MIN, |t| t.0.saturating_add(duration).unwrap_or(t.0));
        if expires >= now {
            return Claim::Held { holder: other.to_owned(), expires };
        }
    }
    let mut updated = lease.clone();
    let labels = updated.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in LABELS {
        labels.insert(key.to_owned(), value.to_owned());
    }
    let spec = updated.spec.get_or_insert_with(LeaseSpec::default);
    if !ours {
        // Taking over (released or expired): a new term.
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        spec.holder_identity = Some(config.identity.clone());
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds(config.lease_duration));
    Claim::Update(updated)
}

/// Campaigns for, holds and releases one Lease.
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
}

impl Elector {
    pub fn new(client: Client, config: ElectionConfig) -> Self {
        Self { api: Api::namespaced(client, &config.namespace), config }
    }

    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// One round: `Ok(Ok(()))` when we hold the Lease afterwards, `Ok(Err(holder))` when
    /// someone else does (`None`: someone won a write race, a 409).
    async fn try_acquire_or_renew(&self) -> Result<Result<(), Option<String>>, kube::Error> {
        let current = self.api.get_opt(&self.config.lease_name).await?;
        let written = match claim(current.as_ref(), &self.config, jiff::Timestamp::now()) {
            Claim::Held { holder, expires } => {
                tracing::debug!(holder, %expires, lease = self.config.lease_name, "the Lease is held");
                return Ok(Err(Some(holder)));
            }
            Claim::Create(lease) => self.api.create(&PostParams::default(), &lease).await,
            Claim::Update(lease) => self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await,
        };
        match written {
            Ok(_) => Ok(Ok(())),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Err(None)),
            Err(err) => Err(err),
        }
    }

    /// Tries every `retry_period` until this process holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Ok(())) => return,
                Ok(Err(_)) => {}
                Err(err) => tracing::warn!(
                    lease = self.config.lease_name,
                    namespace = self.config.namespace,
                    error = %err,
                    "cannot read or write the leader election Lease"
                ),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every `retry_period` while leading; returns why leadership was lost: another
    /// holder seen, or no successful renewal within `renew_deadline`.
    pub async fn keep_leading(&self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let left = self.config.renew_deadline.saturating_sub(renewed.elapsed());
            let reason = match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Ok(()))) => {
                    renewed = Instant::now();
                    continue;
                }
                Ok(Ok(Err(Some(holder)))) => return self.lost(format!("{holder} holds it now")),
                Ok(Ok(Err(None))) => "another writer changed it".to_owned(),
                Ok(Err(err)) => err.to_string(),
                Err(_) => "the renewal timed out".to_owned(),
            };
            if renewed.elapsed() >= self.config.renew_deadline {
                return self.lost(format!("not renewed within {:?}: {reason}", self.config.renew_deadline));
            }
            tracing::warn!(lease = self.config.lease_name, reason, "cannot renew the Lease; retrying");
        }
    }

    fn lost(&self, reason: String) -> LeaderError {
        LeaderError::Lost { namespace: self.config.namespace.clone(), name: self.config.lease_name.clone(), reason }
    }

    /// Gives the Lease up (empty `holderIdentity`, as client-go's `ReleaseOnCancel`) so a
    /// standby takes over at once instead of after expiry. Only if we still hold it.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else { return Ok(()) };
        if holder(&lease) != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(jiff::Timestamp::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> ElectionConfig {
        ElectionConfig::new("alustan-agent", "alustan", identity)
    }

    fn held(holder: &str, renewed_secs_ago: i64, transitions: i32) -> Lease {
        let now = jiff::Timestamp::now();
        Lease {
            metadata: ObjectMeta {
                name: Some("alustan-agent".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(100))),
                renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(renewed_secs_ago))),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn an_absent_lease_is_created_held_and_labelled() {
        let now = jiff::Timestamp::now();
        let Claim::Create(lease) = claim(None, &config("me"), now) else { panic!("expected Create") };
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!((spec.acquire_time, spec.renew_time), (Some(MicroTime(now)), Some(MicroTime(now))));
        assert_eq!(spec.lease_transitions, Some(0));
        let labels = lease.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "alustan");
        assert_eq!(labels["app.kubernetes.io/component"], "agent");
    }

    #[test]
    fn a_live_lease_of_another_holder_is_left_alone() {
        let claimed = claim(Some(&held("other", 5, 3)), &config("me"), jiff::Timestamp::now());
        assert!(matches!(claimed, Claim::Held { ref holder, .. } if holder == "other"), "{claimed:?}");
    }

    #[test]
    fn an_expired_lease_is_taken_with_a_new_term_and_the_version_read() {
        let now = jiff::Timestamp::now();
        let Claim::Update(lease) = claim(Some(&held("dead", 16, 3)), &config("me"), now) else { panic!() };
        assert_eq!(lease.metadata.resource_version.as_deref(), Some("7"), "optimistic concurrency");
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(lease.metadata.labels.unwrap()["app.kubernetes.io/component"], "agent");
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let Claim::Update(lease) = claim(Some(&held("", 0, 1)), &config("me"), jiff::Timestamp::now()) else {
            panic!()
        };
        assert_eq!(lease.spec.unwrap().lease_transitions, Some(2));
    }

    #[test]
    fn our_own_lease_is_renewed_in_the_same_term() {
        let now = jiff::Timestamp::now();
        let before = held("me", 2, 3);
        let Claim::Update(lease) = claim(Some(&before), &config("me"), now) else { panic!() };
        let (old, new) = (before.spec.unwrap(), lease.spec.unwrap());
        assert_eq!(new.acquire_time, old.acquire_time);
        assert_eq!(new.lease_transitions, Some(3));
        assert_eq!(new.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn identity_is_the_pod_name_else_host_and_pid() {
        assert_eq!(identity(Some("alustan-agent-7d9f-x2"), "node", 1), "alustan-agent-7d9f-x2");
        assert_eq!(identity(Some(""), "node", 42), "node_42");
        assert_eq!(identity(None, "node", 42), "node_42");
    }
}

//! The registry step of a pass: which image the constraint picks now. Failures the spec did not
//! cause (a registry down, a Secret missing) back off per resource (see [`super::backoff`]);
//! those only a spec change can fix are `Stalled` at once.

use std::time::Duration;

use alustan_shared::{RegistryScan, State, conditions::reason, meta};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::backoff::{self, Gate};
use super::pass::Pass;
use super::status::Phase;
use crate::registry::{
    ChosenImage, Constraint, DockerConfig, ImageRef, OwnedScanRequest, ScanError, ScanPoll, ScanReport, SecretSource,
    WaiterId, credentials_for,
};

/// A background scan shorter than this shows nothing in status.
const QUIET_SCAN: Duration = Duration::from_secs(5);

/// A scan's answer, or the scan still running in the background.
enum Polled {
    Report(Box<ScanReport>),
    Pending { since: jiff::Timestamp, queued: bool },
}

/// What the registry step gave.
pub enum Scanned {
    Chosen(ChosenImage),
    /// No image: status says why; look again after the action.
    Reported(Action),
}

impl Pass<'_> {
    /// Scans (or reuses a fresh listing of) the resource's repository and picks the image.
    pub async fn scan_registry(&mut self, max_age: Duration) -> Scanned {
        let trigger = backoff::Trigger {
            generation: self.generation,
            rescan: self.tf.annotations().get(meta::RESCAN_REQUESTED_AT).cloned(),
        };
        let last_failure = self.ctx.scan_failures.get(&self.uid);
        if let Gate::Wait(after) =
            backoff::gate(last_failure.as_ref(), &trigger, self.ctx.retry(), jiff::Timestamp::now())
        {
            return Scanned::Reported(Action::requeue(after));
        }
        let handled_rescan = self.status.last_handled_rescan_at.clone();
        let scanned = match self.scan(max_age).await {
            Ok(Polled::Pending { since, queued }) => return Scanned::Reported(self.scanning(since, queued)),
            Ok(Polled::Report(report)) => Ok(*report),
            Err(err) => Err(err),
        };
        self.ctx.metrics.registry_scanned(&scanned);
        let report = match scanned {
            Ok(report) => {
                self.ctx.scan_failures.clear(&self.uid);
                report
            }
            Err(err) if backoff::retried(&err) => {
                return Scanned::Reported(self.registry_error(trigger, &err.to_string()).await);
            }
            Err(err) => return Scanned::Reported(self.stalled(reason::INVALID_SPEC, &err.to_string()).await),
        };
        let scanned = report.to_status();
        // A handled rescan request always shows its scan.
        let rescanned = self.status.last_handled_rescan_at != handled_rescan;
        if rescanned || !recorded_scan_holds(self.status.last_scan.as_ref(), &scanned, max_age, jiff::Timestamp::now())
        {
            self.status.last_scan = Some(scanned);
        }
        match report.chosen() {
            Ok(chosen) => Scanned::Chosen(chosen.clone()),
            Err(err) => Scanned::Reported(self.stalled(reason::REGISTRY_ERROR, &err.to_string()).await),
        }
    }

    /// Something only a change can fix: Error, Stalled, a Warning Event (once per message).
    pub async fn stalled(&mut self, why: &str, message: &str) -> Action {
        if !self.said(message) || self.status.state != Some(State::Error) {
            self.event(kube::runtime::events::EventType::Warning, why, "Reconcile", message).await;
        }
        self.summarize(State::Error, Phase::Stalled, why, message);
        Action::requeue(self.ctx.config.sync_interval)
    }

    /// A scan failure a spec change did not cause: Error, a Warning Event, and the next scan
    /// after a delay that grows with each failure in a row.
    async fn registry_error(&mut self, trigger: backoff::Trigger, error: &str) -> Action {
        let retry = self.ctx.retry();
        let failure = self.ctx.scan_failures.record(&self.uid, trigger, jiff::Timestamp::now());
        let delay = failure.delay(retry);
        let phase = if failure.stalled(retry) { Phase::Stalled } else { Phase::Reconciling };
        self.summarize(State::Error, phase, reason::REGISTRY_ERROR, &failure.message(error, retry));
        // kube's recorder folds repeats (same type, reason and action) into one event series
        // counting them, keeping the first note: the status message has the current count.
        self.event(kube::runtime::events::EventType::Warning, reason::REGISTRY_ERROR, "Scan", error).await;
        Action::requeue(delay)
    }

    /// A scan still running in the background: a quick one writes nothing (the wake comes
    /// soon); one that takes a while says so in status.
    fn scanning(&mut self, since: jiff::Timestamp, queued: bool) -> Action {
        let waited = Duration::try_from(jiff::Timestamp::now().duration_since(since)).unwrap_or_default();
        if waited < QUIET_SCAN {
            return Action::requeue(QUIET_SCAN);
        }
        let image = &self.tf.spec.container_registry.image_name;
        let message = if queued {
            format!("waiting for a free scan slot of {image}'s registry (busy with other scans) since {since}")
        } else {
            format!("scanning {image} since {since}")
        };
        // Ready and state keep describing the last run: a slow registry is no reason to flap.
        self.note(alustan_shared::conditions::TRUE, reason::SCANNING, &message);
        // The scan's end wakes the resource; this is the net under a lost wake.
        Action::requeue(self.ctx.config.scan_deadline + QUIET_SCAN)
    }

    async fn scan(&mut self, max_age: Duration) -> Result<Polled, ScanError> {
        let registry = &self.tf.spec.container_registry;
        let image = ImageRef::parse(&registry.image_name, registry.provider)?;
        let constraint = Constraint::from_registry(registry)?;
        let resource_config = match &registry.secret_ref {
            Some(secret) => Some(self.read_docker_config(&secret.name).await?),
            None => None,
        };
        let credentials = credentials_for(resource_config.as_ref(), self.ctx.docker_config.as_ref(), image.registry())?;
        let rescan = self.tf.annotations().get(meta::RESCAN_REQUESTED_AT).cloned();
        let force = rescan.is_some() && rescan != self.status.last_handled_rescan_at;
        let request = OwnedScanRequest { image, credentials, constraint, max_age, force };
        let polled = self.ctx.scanner.poll(request, WaiterId::new(&self.uid), self.ctx.scan_waker(self.tf));
        let report = match polled {
            ScanPoll::Pending { since, queued } => return Ok(Polled::Pending { since, queued }),
            ScanPoll::Ready(result) => result?,
        };
        if force {
            self.status.last_handled_rescan_at = rescan;
        }
        Ok(Polled::Report(Box::new(report)))
    }

    async fn read_docker_config(&self, name: &str) -> Result<DockerConfig, ScanError> {
        let source = SecretSource::SecretRef { namespace: self.namespace.clone(), name: name.to_owned() };
        let malformed = |reason: String| ScanError::MalformedSecret { secret: source.clone(), reason };
        let secrets: Api<Secret> = self.api();
        let secret = match secrets.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => return Err(malformed("the Secret does not exist".into())),
            Err(err) => return Err(malformed(format!("cannot read it: {err}"))),
        };
        let data = secret.data.unwrap_or_default();
        let bytes = data.get(".dockerconfigjson").ok_or_else(|| malformed("it has no .dockerconfigjson key".into()))?;
        DockerConfig::parse(source.clone(), &bytes.0)
    }
}

/// Whether `status.lastScan` may stay as it is after a scan found `scanned`: the same result
/// (everything but the time) from a scan younger than the sync interval. So a restarted agent,
/// whose first scans are new listings, rewrites no status; `lastScan.time` moves on once per
/// interval, with the periodic rescan.
fn recorded_scan_holds(
    recorded: Option<&RegistryScan>,
    scanned: &RegistryScan,
    interval: Duration,
    now: jiff::Timestamp,
) -> bool {
    let Some(recorded) = recorded else { return false };
    let fresh = jiff::SignedDuration::try_from(interval)
        .ok()
        .and_then(|interval| recorded.time.0.checked_add(interval).ok())
        .is_some_and(|due| due > now);
    fresh && RegistryScan { time: scanned.time.clone(), ..recorded.clone() } == *scanned
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn scan_at(time: &str, digest: &str) -> RegistryScan {
        RegistryScan {
            time: Time(time.parse().unwrap()),
            image: "registry.example/infra".into(),
            constraint: "^1".into(),
            tag_count: 2,
            matching_count: 2,
            newest_matching: vec!["v1.1.0".into()],
            rejected: Vec::new(),
            selected_tag: Some("v1.1.0".into()),
            selected_digest: Some(digest.into()),
        }
    }

    #[test]
    fn a_recorded_scan_holds_while_fresh_and_equal_but_for_its_time() {
        let hour = Duration::from_secs(3600);
        let recorded = scan_at("2025-01-01T10:00:00Z", "sha256:a");
        let now: jiff::Timestamp = "2025-01-01T10:30:00Z".parse().unwrap();
        let later = scan_at("2025-01-01T10:29:00Z", "sha256:a");
        assert!(recorded_scan_holds(Some(&recorded), &later, hour, now));
        // A different result, an interval gone by, or nothing recorded: the new scan is written.
        assert!(!recorded_scan_holds(Some(&recorded), &scan_at("2025-01-01T10:29:00Z", "sha256:b"), hour, now));
        let next_interval: jiff::Timestamp = "2025-01-01T11:00:01Z".parse().unwrap();
        assert!(!recorded_scan_holds(Some(&recorded), &later, hour, next_interval));
        assert!(!recorded_scan_holds(None, &later, hour, now));
    }
}

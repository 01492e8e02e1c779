//! A Job recorder for the run-safety e2e tests: a watch on the Jobs of one `Terraform` (label
//! `alustan.io/terraform=<name>`) that records every Job's name, action, generation, image,
//! creation, start and completion times, and when the watch saw it appear and end.
//!
//! "Active" is judged on the order of the watch's events, not on timestamps (the API server
//! writes whole seconds): one watch stream delivers a namespace's changes in `resourceVersion`
//! order, so Job B created after the event that finished Job A is a fact, never a timing guess.
//! A Job counts as active from its creation until its `Complete`/`Failed` condition is `True`, or
//! until it is deleted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alustan_shared::meta;
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

/// One Job of the resource, as the watch saw it.
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub name: String,
    /// The `alustan.io/action` label: `deploy`, `post-deploy` or `destroy`.
    pub action: String,
    /// The `alustan.io/generation` label: the resource generation the run was made for.
    pub generation: Option<i64>,
    /// The image of the Job's container.
    pub image: String,
    /// `metadata.creationTimestamp`, `status.startTime`, and `status.completionTime` (or the
    /// finishing condition's transition time, or when the watch saw it deleted).
    pub created: Option<jiff::Timestamp>,
    pub started: Option<jiff::Timestamp>,
    pub finished: Option<jiff::Timestamp>,
    /// `Complete`, `Failed` or `Deleted` once it ended.
    pub outcome: Option<String>,
    /// Sequence number of the watch event that first showed the Job.
    pub seen: u64,
    /// Sequence number of the watch event that first showed it finished or deleted.
    pub ended: Option<u64>,
}

impl JobRecord {
    pub fn is_active(&self) -> bool {
        self.ended.is_none()
    }
}

#[derive(Default)]
struct Log {
    sequence: u64,
    /// By Job uid.
    jobs: BTreeMap<String, JobRecord>,
}

impl Log {
    fn apply(&mut self, job: &Job, deleted: bool) {
        self.sequence += 1;
        let sequence = self.sequence;
        let uid = job.metadata.uid.clone().unwrap_or_else(|| job.name_any());
        let labels = job.labels();
        let record = self.jobs.entry(uid).or_insert_with(|| JobRecord {
            name: job.name_any(),
            action: labels.get(meta::LABEL_ACTION).cloned().unwrap_or_default(),
            generation: labels.get(meta::LABEL_GENERATION).and_then(|g| g.parse().ok()),
            image: job
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            created: job.metadata.creation_timestamp.as_ref().map(|t| t.0),
            started: None,
            finished: None,
            outcome: None,
            seen: sequence,
            ended: None,
        });
        let status = job.status.clone().unwrap_or_default();
        record.started = record.started.or(status.start_time.map(|t| t.0));
        if record.ended.is_some() {
            return;
        }
        let finish = status
            .conditions
            .iter()
            .flatten()
            .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True");
        if let Some(condition) = finish {
            record.ended = Some(sequence);
            record.outcome = Some(condition.type_.clone());
            record.finished =
                status.completion_time.map(|t| t.0).or(condition.last_transition_time.as_ref().map(|t| t.0));
        } else if deleted {
            record.ended = Some(sequence);
            record.outcome = Some("Deleted".into());
            record.finished = Some(jiff::Timestamp::now());
        }
    }
}

/// Records the Jobs of one resource until dropped.
pub struct JobRecorder {
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JobRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobRecorder {
    /// Starts watching Jobs labelled `alustan.io/terraform=<resource>` in `default`; returns once
    /// the watch's initial list is done, so no Job created afterwards can be missed.
    pub async fn start(client: &Client, resource: &str) -> Self {
        let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
        let config = watcher::Config::default().labels(&format!("{}={resource}", meta::LABEL_TERRAFORM));
        let log = Arc::new(Mutex::new(Log::default()));
        let (ready, listed) = tokio::sync::oneshot::channel::<()>();
        let writer = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut ready = Some(ready);
            let mut events = watcher(jobs, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let mut log = writer.lock().unwrap();
                match event {
                    watcher::Event::Apply(job) | watcher::Event::InitApply(job) => log.apply(&job, false),
                    watcher::Event::Delete(job) => log.apply(&job, true),
                    watcher::Event::InitDone => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    watcher::Event::Init => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), listed)
            .await
            .expect("the Job watch did not list within 30 s")
            .expect("the Job watch ended");
        Self { log, task }
    }

    /// Every Job seen so far, in the order they appeared.
    pub fn records(&self) -> Vec<JobRecord> {
        let mut records: Vec<JobRecord> = self.log.lock().unwrap().jobs.values().cloned().collect();
        records.sort_by_key(|r| r.seen);
        records
    }

    /// The records once `check` holds (polls; panics with the timeline after `limit`).
    pub async fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&[JobRecord]) -> bool) -> Vec<JobRecord> {
        let start = Instant::now();
        loop {
            let records = self.records();
            if check(&records) {
                return records;
            }
            assert!(start.elapsed() < limit, "timed out waiting for {what}; Jobs:\n{}", timeline(&records));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first Job of `action`, once it exists (at most 60 s).
    pub async fn first(&self, action: &str) -> JobRecord {
        let what = format!("a {action} Job");
        let records = self.wait_for(&what, Duration::from_secs(60), |r| r.iter().any(|j| j.action == action)).await;
        records.into_iter().find(|j| j.action == action).unwrap()
    }
}

/// One line per Job: name, action, generation, events seen/ended, times, outcome.
pub fn timeline(records: &[JobRecord]) -> String {
    let time = |t: &Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let mut text = String::new();
    for r in records {
        let ended = r.ended.map_or_else(|| "active".to_owned(), |e| format!("#{e}"));
        let _ = writeln!(
            text,
            "  {} action={} generation={:?} seen=#{} ended={ended} created={} started={} finished={} outcome={} image={}",
            r.name,
            r.action,
            r.generation,
            r.seen,
            time(&r.created),
            time(&r.started),
            time(&r.finished),
            r.outcome.as_deref().unwrap_or("-"),
            r.image,
        );
    }
    text
}

/// The pairs of Jobs active at once: a Job that appeared before an earlier one ended (by the
/// watch's event order).
pub fn overlaps(records: &[JobRecord]) -> Vec<String> {
    let mut overlaps = Vec::new();
    for (i, later) in records.iter().enumerate() {
        for earlier in &records[..i] {
            if earlier.ended.is_none_or(|ended| ended > later.seen) {
                overlaps.push(format!("{} started while {} was active", later.name, earlier.name));
            }
        }
    }
    overlaps
}

/// No two Jobs of the resource were active at once.
pub fn assert_no_overlap(records: &[JobRecord]) {
    let overlaps = overlaps(records);
    assert!(overlaps.is_empty(), "Jobs of one resource overlapped: {overlaps:#?}\nJobs:\n{}", timeline(records));
}

/// A scenario's premise: Job `job` still runs after `what` (else the scenario proves nothing).
pub async fn assert_still_running(jobs: &Api<Job>, job: &str, what: &str) {
    let status = jobs.get(job).await.unwrap().status.unwrap_or_default();
    let finished = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"));
    assert!(!finished, "premise: {job} must still run after {what}; make the deploy sleep longer");
}

/// How many Jobs ran per action.
pub fn runs_by_action(records: &[JobRecord]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for r in records {
        *runs.entry(r.action.clone()).or_default() += 1;
    }
    runs
}

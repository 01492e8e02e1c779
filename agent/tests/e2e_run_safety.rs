//! One run at a time per stack (issue 12, "Run safety" and "Proof"), end to end on testenv: a
//! deploy script that sleeps, a change arriving while it runs, and a Job recorder proving that no
//! two Jobs of the resource were active at once and that the number of runs is the expected one
//! (the running one finishes, then the newest inputs run once).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)] // each test binary uses some of the shared helpers
mod e2e;
#[path = "support/job_recorder.rs"]
mod job_recorder;

use std::future::Future;
use std::time::{Duration, Instant};

use alustan_shared::{RunResult, State, Terraform, conditions, meta};
use e2e::Agent;
use job_recorder::{
    JobRecord, JobRecorder, assert_no_overlap, assert_still_running, overlaps, runs_by_action, timeline,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

/// Sleeps `TF_VAR_sleep` seconds (long enough for changes to arrive during the run), then
/// writes outputs naming the variable and tag it ran with.
const DEPLOY: &str = r#"sleep "${TF_VAR_sleep:-6}"
echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
cat > "$ALUSTAN_OUTPUTS" <<JSON
{"marker":{"value":"${TF_VAR_marker:-none}","sensitive":false,"type":"string"},"tag":{"value":"$ALUSTAN_TAG","sensitive":false,"type":"string"}}
JSON
"#;
const DESTROY: &str = "sleep 1\necho destroyed\n";
const NAME: &str = "stack";

/// Runs a test body with an upper bound, so no scenario can wait forever.
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(300), test).await.expect("the test ran for over 300 s");
}

/// An agent, and a recorder of the Jobs of [`NAME`] started before the resource exists.
async fn start() -> (Agent, JobRecorder) {
    let agent = Agent::start(&[("deploy", DEPLOY), ("destroy", DESTROY)]).await;
    let recorder = JobRecorder::start(&agent.client, NAME).await;
    (agent, recorder)
}

/// The example with only a deploy script (one Job per run), `TF_VAR_marker=v1`.
fn resource(agent: &Agent, sleep: u32) -> Terraform {
    let mut tf = agent.example();
    tf.metadata.name = Some(NAME.into());
    tf.spec.post_deploy = None;
    tf.spec.scripts.destroy = None;
    tf.spec.variables.insert("TF_VAR_marker".into(), "v1".into());
    tf.spec.variables.insert("TF_VAR_sleep".into(), sleep.to_string());
    tf
}

async fn patch(agent: &Agent, patch: serde_json::Value) {
    agent.terraforms.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

async fn annotate(agent: &Agent, key: &str, value: &str) {
    patch(agent, json!({"metadata": {"annotations": {key: value}}})).await;
}

/// A spec edit (a new generation): new `TF_VAR_marker` and `TF_VAR_sleep`.
async fn edit(agent: &Agent, marker: &str, sleep: u32) {
    patch(agent, json!({"spec": {"variables": {"TF_VAR_marker": marker, "TF_VAR_sleep": sleep.to_string()}}})).await;
}

/// Waits (at most 30 s) until the agent's ServiceAccount opened more `terraforms` lists or
/// watches than `before`: a (re)started controller is watching.
async fn wait_controller_watching(agent: &Agent, before: usize) {
    let start = Instant::now();
    loop {
        if controller_lists(agent) > before {
            // Its first reconcile follows the initial list.
            return tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no controller started watching within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn controller_lists(agent: &Agent) -> usize {
    agent.env.requests().count(|r| {
        r.user.starts_with("system:serviceaccount:")
            && r.resource == "terraforms"
            && matches!(r.verb.as_str(), "list" | "watch")
    })
}

/// Polls (at most 75 s) until `check` holds and no Job is active, then for a quiet 3 s in which
/// both must stay so. Returns the last resource and whether it settled; returns early once two
/// Jobs overlapped and all ended (the caller's assertion then shows the whole timeline).
async fn settle(agent: &Agent, recorder: &JobRecorder, check: impl Fn(&Terraform) -> bool) -> (Terraform, bool) {
    let start = Instant::now();
    let idle = || recorder.records().iter().all(|r| !r.is_active());
    loop {
        let tf = agent.terraforms.get(NAME).await.unwrap();
        if check(&tf) && idle() {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let tf = agent.terraforms.get(NAME).await.unwrap();
            if check(&tf) && idle() {
                return (tf, true);
            }
        }
        let overlapped = !overlaps(&recorder.records()).is_empty();
        if start.elapsed() > Duration::from_secs(75) || (overlapped && idle()) {
            return (tf, false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn deploys(records: &[JobRecord]) -> usize {
    runs_by_action(records).get("deploy").copied().unwrap_or(0)
}

/// `Success` of the resource's current generation, which is `generation`, with its marker.
fn applied(generation: i64, marker: &'static str) -> impl Fn(&Terraform) -> bool {
    move |tf| {
        let status = tf.status.clone().unwrap_or_default();
        tf.metadata.generation == Some(generation)
            && status.observed_generation == Some(generation)
            && status.state == Some(State::Success)
            && status.output.get("marker").and_then(|m| m.as_str()) == Some(marker)
    }
}

/// The run history as JSON (so fields the status type lacks today fail here, not at build).
fn history(tf: &Terraform) -> Vec<serde_json::Value> {
    let status = serde_json::to_value(tf.status.as_ref().unwrap()).unwrap();
    status["history"].as_array().cloned().unwrap_or_default()
}

/// Every history record carries the generation and digest its Job ran with.
fn assert_history_inputs(tf: &Terraform, records: &[JobRecord]) {
    for run in history(tf) {
        let job = run["jobName"].as_str().unwrap();
        let Some(record) = records.iter().find(|r| r.name == job) else { continue };
        assert_eq!(run["generation"].as_i64(), record.generation, "history lacks the generation {job} applied: {run}");
        let digest = run["digest"].as_str().unwrap_or("<none>");
        assert!(record.image.ends_with(digest), "history lacks the digest {job} applied: {run}");
    }
}

/// The status message while newer inputs wait behind a running run: `Reconciling=True` and a
/// message saying it waits.
fn waiting_message(tf: &Terraform) -> Option<String> {
    let status = tf.status.as_ref()?;
    let reconciling = conditions::find(&status.conditions, conditions::RECONCILING)?;
    let message = format!("{} / {}", reconciling.message, status.message.as_deref().unwrap_or_default());
    (reconciling.status == "True" && message.to_lowercase().contains("waiting")).then_some(message)
}

/// Polls the status for [`waiting_message`] until `until` or until Job `job` ended.
async fn watch_waiting(agent: &Agent, recorder: &JobRecorder, job: &str, until: Instant) -> Option<String> {
    while Instant::now() < until && recorder.records().iter().any(|r| r.name == job && r.is_active()) {
        if let Some(message) = waiting_message(&agent.terraforms.get(NAME).await.unwrap()) {
            return Some(message);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_syncs_2s_apart_never_overlap_and_collapse_into_one_run() {
    bounded(Box::pin(async {
        let (agent, recorder) = start().await;
        agent.create(&resource(&agent, 6)).await;
        // Two sync requests while the initial deploy runs: one more run after it.
        let first = recorder.first("deploy").await;
        annotate(&agent, meta::RESYNC_REQUESTED_AT, "sync-1").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        annotate(&agent, meta::RESYNC_REQUESTED_AT, "sync-2").await;
        assert_still_running(&agent.jobs, &first.name, "the second sync").await;
        let handled = |token: &'static str| {
            move |tf: &Terraform| {
                let status = tf.status.clone().unwrap_or_default();
                status.last_handled_reconcile_at.as_deref() == Some(token) && status.state == Some(State::Success)
            }
        };
        let (tf, settled) = settle(&agent, &recorder, handled("sync-2")).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        assert_eq!(deploys(&records), 2, "the initial deploy, then one for both syncs:\n{}", timeline(&records));
        assert!(settled, "sync-2 was not handled: {:#?}", tf.status);
        let sync_2 = history(&tf)[0].clone();

        // The issue's reproduction on an idle stack: sync; sleep 2; sync.
        let before = deploys(&records);
        let asked = Instant::now();
        annotate(&agent, meta::RESYNC_REQUESTED_AT, "sync-3").await;
        let third = recorder.wait_for("sync-3's run", Duration::from_secs(30), |r| deploys(r) > before).await;
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(asked.elapsed())).await;
        annotate(&agent, meta::RESYNC_REQUESTED_AT, "sync-4").await;
        assert_still_running(&agent.jobs, &third.last().unwrap().name, "sync-4").await;
        let (tf, settled) = settle(&agent, &recorder, handled("sync-4")).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        assert_eq!(deploys(&records), before + 2, "one run per sync on an idle stack:\n{}", timeline(&records));
        assert!(settled, "sync-4 was not handled: {:#?}", tf.status);
        assert_eq!(sync_2["token"], "sync-2", "the history lacks the token the run applied: {sync_2}");
        assert_eq!(history(&tf)[0]["token"], "sync-4", "the history lacks the token the run applied");
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_two_spec_edits_during_a_run_wait_then_the_newest_runs_once() {
    bounded(Box::pin(async {
        let (agent, recorder) = start().await;
        agent.create(&resource(&agent, 6)).await;
        let first = recorder.first("deploy").await;
        // The newer inputs sleep 1 s: run at once, they would end before the first run, whose
        // outputs would then overwrite theirs (the issue's worst case).
        let edited = Instant::now();
        edit(&agent, "v2", 1).await;
        // Status says generation 2 waits while the first run goes.
        let mut waiting = watch_waiting(&agent, &recorder, &first.name, edited + Duration::from_secs(2)).await;
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(edited.elapsed())).await;
        edit(&agent, "v3", 1).await;
        assert_still_running(&agent.jobs, &first.name, "the second edit").await;
        if waiting.is_none() {
            waiting = watch_waiting(&agent, &recorder, &first.name, Instant::now() + Duration::from_secs(60)).await;
        }
        let (tf, settled) = settle(&agent, &recorder, applied(3, "v3")).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        assert_eq!(deploys(&records), 2, "the first run, then the newest inputs once:\n{}", timeline(&records));
        assert_eq!(records.last().unwrap().generation, Some(3), "the second run is not of the newest inputs");
        assert!(settled, "generation 3 (v3) is not what status says was applied: {:#?}", tf.status);
        // The superseded run's record stays in the history.
        let status = tf.status.clone().unwrap();
        assert!(status.history.iter().any(|r| r.job_name == first.name && r.result == RunResult::Succeeded));
        assert!(
            waiting.is_some(),
            "while {} ran, status never said newer inputs were waiting (Reconciling=True, \"waiting\"); now: {:#?}",
            first.name,
            status.conditions
        );
        assert_history_inputs(&tf, &records);
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_a_new_tag_pushed_during_a_run_is_deployed_after_it() {
    bounded(Box::pin(async {
        let (agent, recorder) = start().await;
        agent.create(&resource(&agent, 6)).await;
        let first = recorder.first("deploy").await;
        // v1.0.2's deploy is quicker: run at once, the older run would end last and overwrite it.
        let quick = DEPLOY.replacen(r#"sleep "${TF_VAR_sleep:-6}""#, "sleep 1", 1);
        agent.push_other("v1.0.2", &[("deploy", &quick)]).await;
        annotate(&agent, meta::RESCAN_REQUESTED_AT, "rescan-1").await;
        assert_still_running(&agent.jobs, &first.name, "the push and the rescan request").await;
        let new_tag = |tf: &Terraform| {
            let status = tf.status.clone().unwrap_or_default();
            status.applied.is_some_and(|a| a.tag == "v1.0.2") && status.state == Some(State::Success)
        };
        let (tf, settled) = settle(&agent, &recorder, new_tag).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        assert_eq!(deploys(&records), 2, "v1.0.1, then v1.0.2:\n{}", timeline(&records));
        assert!(settled, "v1.0.2 is not what status says was applied: {:#?}", tf.status);
        let status = tf.status.unwrap();
        assert_eq!(status.applied.unwrap().image, records[1].image);
        assert_eq!(status.output["tag"], "v1.0.2");
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_delete_during_a_deploy_destroys_after_it_ends() {
    bounded(Box::pin(async {
        let (agent, recorder) = start().await;
        let mut tf = resource(&agent, 6);
        tf.spec.scripts.destroy = Some("destroy".into());
        agent.create(&tf).await;
        let first = recorder.first("deploy").await;
        agent.terraforms.delete(NAME, &DeleteParams::default()).await.unwrap();
        assert_still_running(&agent.jobs, &first.name, "the deletion").await;
        agent.wait_gone(NAME).await;
        // A quiet period: no Job may start for the released resource.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        let runs = runs_by_action(&records);
        assert_eq!((runs.get("deploy"), runs.get("destroy")), (Some(&1), Some(&1)), "{}", timeline(&records));
        let (deploy, destroy) = (&records[0], &records[1]);
        assert_eq!(deploy.outcome.as_deref(), Some("Complete"), "{}", timeline(&records));
        assert_eq!(destroy.outcome.as_deref(), Some("Complete"), "{}", timeline(&records));
        assert_eq!(destroy.image, deploy.image, "destroy must use the image just deployed");
    }))
    .await;
}

/// How the agent is killed mid-run in (e).
enum Kill {
    /// The in-process controller task aborted.
    Task,
    /// The `alustan-agent` binary, killed with `SIGKILL`.
    Process,
}

/// (e): the agent killed during a run, the spec edited while it is down, then restarted: the
/// running Job is adopted (its result recorded), then generation 2 runs once.
async fn killed_during_a_run(kill: Kill) {
    let (mut agent, recorder) = start().await;
    let log = agent.env.work_dir().join("agent-binary.log");
    let mut binary = None;
    if let Kill::Process = kill {
        agent.stop_unelected().await;
        binary = Some(agent.spawn_binary(&log));
    }
    agent.create(&resource(&agent, 10)).await;
    let first = recorder.first("deploy").await;
    let lists = controller_lists(&agent);
    match binary.take() {
        Some(mut child) => child.kill().await.unwrap(),
        None => agent.stop_unelected().await,
    }
    edit(&agent, "v2", 2).await;
    match kill {
        Kill::Process => binary = Some(agent.spawn_binary(&log)),
        Kill::Task => agent.restart().await,
    }
    wait_controller_watching(&agent, lists).await;
    assert_still_running(&agent.jobs, &first.name, "the restart").await;
    let (tf, settled) = settle(&agent, &recorder, applied(2, "v2")).await;
    let records = recorder.records();
    assert_no_overlap(&records);
    assert_eq!(deploys(&records), 2, "the adopted run, then generation 2 once:\n{}", timeline(&records));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    assert!(settled, "generation 2 was not applied: {:#?}\nthe binary's last log lines: {tail:#?}", tf.status);
    let status = tf.status.unwrap();
    assert!(
        status.history.iter().any(|r| r.job_name == first.name && r.result == RunResult::Succeeded),
        "the adopted run's result is not in the history: {:#?}",
        status.history
    );
    drop(binary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_agent_killed_during_a_run_adopts_it_then_runs_the_edit_once() {
    bounded(Box::pin(killed_during_a_run(Kill::Task))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_agent_binary_sigkilled_during_a_run_adopts_it_then_runs_the_edit_once() {
    bounded(Box::pin(killed_during_a_run(Kill::Process))).await;
}

/// The Lease holder once `check` holds (at most 40 s).
async fn wait_holder(agent: &Agent, check: impl Fn(&str) -> bool) -> String {
    let (name, namespace) = Agent::lease_location().await;
    let leases: Api<Lease> = Api::namespaced(agent.client.clone(), &namespace);
    let start = Instant::now();
    loop {
        let lease = leases.get_opt(&name).await.unwrap();
        let holder = lease.and_then(|l| l.spec?.holder_identity).unwrap_or_default();
        if check(&holder) {
            return holder;
        }
        assert!(start.elapsed() < Duration::from_secs(40), "timed out waiting for the Lease holder; last {holder:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_leader_hand_over_during_a_run_adopts_it_without_a_duplicate() {
    bounded(Box::pin(async {
        let (mut agent, recorder) = start().await;
        agent.stop_unelected().await;
        let mut a = agent.spawn_elected("agent-a").await;
        let mut b = agent.spawn_elected("agent-b").await;
        let leader = wait_holder(&agent, |h| !h.is_empty()).await;
        let (leading, standby) = if leader == a.identity { (&mut a, &b) } else { (&mut b, &a) };
        agent.create(&resource(&agent, 10)).await;
        let first = recorder.first("deploy").await;
        let lists = controller_lists(&agent);
        leading.stop();
        tokio::time::timeout(Duration::from_secs(30), &mut leading.task).await.unwrap().unwrap().unwrap();
        wait_holder(&agent, |h| h == standby.identity).await;
        wait_controller_watching(&agent, lists).await;
        assert_still_running(&agent.jobs, &first.name, "the hand-over").await;
        let (tf, settled) = settle(&agent, &recorder, applied(1, "v1")).await;
        let records = recorder.records();
        assert_no_overlap(&records);
        assert_eq!(deploys(&records), 1, "the new leader adopts the run, no duplicate:\n{}", timeline(&records));
        assert!(settled, "the run was not recorded as applied: {:#?}", tf.status);
        let history = tf.status.unwrap().history;
        assert_eq!(history.len(), 1, "{history:#?}");
        assert_eq!((history[0].job_name.as_str(), history[0].result), (first.name.as_str(), RunResult::Succeeded));
    }))
    .await;
}

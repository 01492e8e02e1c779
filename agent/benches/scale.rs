//! The agent at scale (issues 5 and 17), printed beside its goals (never asserted):
//!
//! 1. the floor: the testenv kubelet running, without the agent, the very Jobs the agent would
//!    create (built by `runs::jobs::build`: the seal wrapper; a deploy's pad Secret, built by
//!    `runs::start::seal_secret`, created first and mounted), a deploy then (with post-deploy)
//!    a post-deploy Job per resource;
//! 2. the real `alustan-agent` binary, a separate process, against N `Terraform`s sharing
//!    10 images (instant `deploy` scripts writing a tiny outputs JSON; with post-deploy an
//!    instant `post` script printing its JSON): time until all are `Completed` (`Success`
//!    without post-deploy), requests and writes per resource, tag listings the registry saw
//!    (through a counting proxy) and the agent's metric, the agent's peak RSS (`VmHWM`, and the
//!    highest sampled `VmRSS`);
//! 3. API writes by the agent's user during a quiet period after convergence, per resource per
//!    sync interval when the quiet period crosses one;
//! 4. the same after killing and restarting the agent (a restart must not rewrite statuses).
//!
//! Run: `make bench-scale` (the shipped `release` binary) or `cargo bench -p alustan-agent
//! --bench scale` (the bench profile's). Knobs: `SCALE_CRS=1000,10000` (one run per count, and
//! the ratio of the last to the first), `SCALE_POST_DEPLOY=0` (deploy only),
//! `SCALE_SYNC_INTERVAL=30s` with `SCALE_QUIET_SECS=40` (a quiet period that crosses an
//! interval; default 1h and 20 s), `SCALE_SKIP_FLOOR=1`, `SCALE_AGENT_BIN=PATH` (the binary to
//! run; `make bench-scale` sets the release one).

#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::error::Error;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alustan_testenv::apiserver::{ApiServerOptions, RequestRecord, UserInfo};
use alustan_testenv::registry::ImageConfig;
use alustan_testenv::{TestEnv, TestEnvOptions};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{ListParams, PostParams};
use proxy::Proxy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const IMAGES: usize = 10;
const AGENT_USER: &str = "alustan-agent-bench";
const AGENT_TOKEN: &str = "alustan-agent-bench-token";
/// How long any wait may take before the bench gives up (an error, not a missed goal).
const TIMEOUT: Duration = Duration::from_secs(900);
/// Parallel creates, as a GitOps tool applying many manifests would send them.
const CREATE_CONCURRENCY: usize = 16;

fn env_number(name: &str, default: u64) -> BoxResult<u64> {
    match std::env::var(name) {
        Ok(text) => Ok(text.parse().map_err(|err| format!("{name}={text:?}: {err}"))?),
        Err(_) => Ok(default),
    }
}

/// What one run measures.
#[derive(Clone)]
struct Settings {
    quiet: Duration,
    post_deploy: bool,
    sync_interval: String,
    agent_bin: std::path::PathBuf,
    /// Which build `agent_bin` is, for the printout.
    profile: String,
}

/// A run's figures, to compare runs of different sizes.
struct Figures {
    took: Duration,
    rss_mib: f64,
}

fn main() -> BoxResult<()> {
    alustan_agent::registry::install_crypto_provider();
    let counts: Vec<usize> = std::env::var("SCALE_CRS")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .map(|n| n.trim().parse::<usize>().map_err(|err| format!("SCALE_CRS={n:?}: {err}")))
        .collect::<Result<_, _>>()?;
    let skip_floor = env_number("SCALE_SKIP_FLOOR", 0)? != 0;
    let (agent_bin, profile) = match std::env::var_os("SCALE_AGENT_BIN") {
        Some(path) => (std::path::PathBuf::from(&path), format!("{} (SCALE_AGENT_BIN)", Path::new(&path).display())),
        None => (
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_alustan-agent")),
            "the bench profile's build (optimised, no LTO; `make bench-scale` runs the release binary)".to_owned(),
        ),
    };
    let settings = Settings {
        quiet: Duration::from_secs(env_number("SCALE_QUIET_SECS", 20)?),
        post_deploy: env_number("SCALE_POST_DEPLOY", 1)? != 0,
        sync_interval: std::env::var("SCALE_SYNC_INTERVAL").unwrap_or_else(|_| "1h".into()),
        agent_bin,
        profile,
    };
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        let mut runs: Vec<(usize, Figures)> = Vec::new();
        for &crs in &counts {
            let scripts = if settings.post_deploy { "instant deploy and post-deploy scripts" } else { "instant deploy scripts" };
            println!("scale: {crs} Terraforms sharing {IMAGES} images, {scripts}");
            let floor = if skip_floor { None } else { Some(floor(crs, settings.post_deploy).await?) };
            runs.push((crs, agent_run(crs, &settings, floor).await?));
        }
        if let (Some((small, first)), Some((large, last))) = (runs.first(), runs.last())
            && large > small
        {
            println!(
                "scale {large}/{small}: time ratio {:.2} (goal ≤ 11 for 10000/1000), peak RSS {:.1} MiB at {large} (goal < 100 MiB at 10000)",
                last.took.as_secs_f64() / first.took.as_secs_f64(),
                last.rss_mib
            );
        }
        Ok(())
    })
}

/// A `TestEnv` whose registry is reached through a counting proxy (by the agent and the
/// kubelet alike), with `IMAGES` repositories of one instant `deploy` script each.
struct Stack {
    env: TestEnv,
    proxy: Proxy,
    /// (repository, manifest digest) per image.
    images: Vec<(String, String)>,
}

async fn stack() -> BoxResult<Stack> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy_host = listener.local_addr()?.to_string();
    let api = ApiServerOptions {
        tokens: vec![(AGENT_TOKEN.into(), UserInfo::user(AGENT_USER, &["system:masters"]))],
        ..ApiServerOptions::default()
    };
    let options = TestEnvOptions { api, insecure_registries: vec![proxy_host], ..TestEnvOptions::default() };
    let env = TestEnv::start_with(options).await?;
    let proxy = Proxy::start_on(listener, env.registry().host_port());
    let mut images = Vec::new();
    for i in 0..IMAGES {
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("deploy");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '{{\"endpoint\":{{\"value\":\"https://infra-{i}.example\",\"type\":\"string\",\"sensitive\":false}}}}' > \"$ALUSTAN_OUTPUTS\"\n"
            ),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let post = dir.path().join("post");
        std::fs::write(&post, format!("#!/bin/sh\necho '{{\"outputs\":{{\"dns\":\"infra-{i}.example\"}}}}'\n"))?;
        std::fs::set_permissions(&post, std::fs::Permissions::from_mode(0o755))?;
        let repo = format!("bench/infra-{i}");
        let config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
        let digest = env.registry().push_dir(&repo, &["v1.0.0", "v1.1.0"], dir.path(), &config).await?;
        images.push((repo, digest));
    }
    Ok(Stack { env, proxy, images })
}

/// Polls `count` (once a second) until it reaches `target`; returns the time since `started`.
async fn wait_until<F, Fut>(what: &str, started: Instant, target: usize, mut count: F) -> BoxResult<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BoxResult<usize>>,
{
    loop {
        let done = count().await?;
        if done >= target {
            return Ok(started.elapsed());
        }
        if started.elapsed() > TIMEOUT {
            return Err(format!("timed out waiting for {what}: {done} of {target}").into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The Terraform of resource `i` on `image` (`host/repo`).
fn terraform(i: usize, image: &str, post_deploy: bool) -> BoxResult<alustan_shared::Terraform> {
    let mut spec = serde_json::json!({
        "variables": {"TF_VAR_index": i.to_string()},
        "scripts": {"deploy": "deploy"},
        "containerRegistry": {"provider": "oci", "imageName": image, "semanticVersion": "^1"},
    });
    if post_deploy {
        spec["postDeploy"] = serde_json::json!({"script": "post"});
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
        "metadata": {"name": format!("scale-{i}"), "namespace": "default"},
        "spec": spec,
    }))?)
}

/// The agent's Job for `action` of resource `i`, built by the agent's own code; without owner
/// references (no `Terraform` owns it here, and the collector would delete it).
fn agent_shaped(stack: &Stack, i: usize, action: alustan_shared::RunAction) -> BoxResult<Job> {
    use alustan_agent::runs::jobs::{self, JobSettings, RunSpec};
    let (repo, digest) = &stack.images[i % IMAGES];
    let host = stack.proxy.host_port();
    let mut tf = terraform(i, &format!("{host}/{repo}"), true)?;
    tf.metadata.uid = Some(format!("floor-{i}"));
    tf.metadata.generation = Some(1);
    let inputs = tf.spec.inputs_fingerprint();
    let image = format!("{host}/{repo}@{digest}");
    let script = if action == alustan_shared::RunAction::Deploy { "deploy" } else { "post" };
    let key = jobs::run_key(&format!("floor-{i}"), 1, digest, None);
    let run = RunSpec {
        action,
        name: jobs::job_name(&format!("scale-{i}"), action, &key, 0),
        script,
        extra_args: Vec::new(),
        image: &image,
        tag: "v1.1.0",
        inputs: &inputs,
        token: None,
        variables: &alustan_agent::reconcile::variables_from::Resolved::default(),
        plan: None,
        trigger: None,
    };
    let settings =
        JobSettings { active_deadline_seconds: 3600, ttl_seconds_after_finished: 3600, ..JobSettings::default() };
    let mut job = jobs::build(&tf, &run, &settings)?;
    job.metadata.owner_references = None;
    Ok(job)
}

/// Step 1: the kubelet alone runs the agent's Jobs for `crs` resources: each resource's pad
/// Secret and deploy Job, then (with post-deploy) its post-deploy Job once the deploy
/// succeeded, as the agent sequences them; the time until every last Job succeeded.
async fn floor(crs: usize, post_deploy: bool) -> BoxResult<Duration> {
    use alustan_shared::RunAction;
    let stack = stack().await?;
    let client = stack.env.client()?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    // As `runs::start` does: a deploy's seal Secret (the pad a first deploy gets), then the Job.
    let start_run = async |i: usize, action: RunAction| -> BoxResult<String> {
        let job = agent_shaped(&stack, i, action)?;
        let pad = alustan_agent::runs::jobs::mounts_pad(&job)
            .then(|| alustan_agent::runs::seal::Pad::generate(alustan_agent::runs::seal::pad_bytes(None)))
            .transpose()?;
        if let Some(secret) = alustan_agent::runs::start::seal_secret(&job, pad.as_ref(), &BTreeMap::new())? {
            secrets.create(&PostParams::default(), &secret).await?;
        }
        let created = jobs.create(&PostParams::default(), &job).await?;
        Ok(created.metadata.name.unwrap_or_default())
    };
    let started = Instant::now();
    futures::stream::iter(0..crs)
        .map(|i| start_run(i, RunAction::Deploy))
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<String>>()
        .await?;
    let mut succeeded_jobs: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Which resource each deploy Job belongs to: its `alustan.io/terraform` label.
    let resource_of = |job: &Job| -> Option<usize> {
        job.metadata.labels.as_ref()?.get(alustan_shared::meta::LABEL_TERRAFORM)?.strip_prefix("scale-")?.parse().ok()
    };
    let succeeded = |job: &Job| job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0;
    let action_of =
        |job: &Job| job.metadata.labels.as_ref().and_then(|l| l.get(alustan_shared::meta::LABEL_ACTION)).cloned();
    let mut done = 0;
    let mut events = kube::runtime::watcher(jobs.clone(), kube::runtime::watcher::Config::default()).boxed();
    let last_action = if post_deploy { "post-deploy" } else { "deploy" };
    while done < crs {
        let event = tokio::time::timeout(TIMEOUT.saturating_sub(started.elapsed()), events.try_next())
            .await
            .map_err(|_| format!("timed out: {done} of {crs} resources finished on the floor"))??
            .ok_or("the Job watch ended")?;
        let (kube::runtime::watcher::Event::Apply(job) | kube::runtime::watcher::Event::InitApply(job)) = event else {
            continue;
        };
        let (Some(i), Some(action), true) = (resource_of(&job), action_of(&job), succeeded(&job)) else { continue };
        let name = job.metadata.name.clone().unwrap_or_default();
        if !succeeded_jobs.insert(name) {
            continue; // seen succeeded before
        }
        if action == last_action {
            done += 1;
        } else {
            start_run(i, RunAction::PostDeploy).await?;
        }
    }
    let took = started.elapsed();
    let runs = if post_deploy { "deploy then post-deploy Jobs" } else { "deploy Jobs" };
    println!(
        "  floor: the testenv kubelet runs the agent's {runs} for {crs} resources, without the agent, in {took:.1?}"
    );
    Ok(took)
}

/// The agent binary running as its own process, its RSS sampled every 100 ms.
struct AgentProcess {
    child: tokio::process::Child,
    pid: u32,
    metrics: std::net::SocketAddr,
    sampled_peak_kib: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl AgentProcess {
    async fn start(stack: &Stack, settings: &Settings, log: &Path) -> BoxResult<Self> {
        let kubeconfig = stack.env.kubeconfig_for(AGENT_USER, AGENT_TOKEN)?;
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = tokio::process::Command::new(&settings.agent_bin)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("LOG_LEVEL")
            .args(["--insecure-registry", &stack.proxy.host_port(), "--sync-interval", &settings.sync_interval])
            .arg("--leader-elect=false")
            .args(["--metrics-addr", &metrics.to_string()])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the agent exited at once")?;
        let sampled_peak_kib = Arc::new(AtomicU64::new(0));
        let peak = Arc::clone(&sampled_peak_kib);
        let sampler = tokio::spawn(async move {
            loop {
                // Ends with the process (its /proc entry goes away).
                let Ok(kib) = proc_status_kib(pid, "VmRSS") else { break };
                peak.fetch_max(kib, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let agent = Self { child, pid, metrics, sampled_peak_kib, sampler };
        let started = Instant::now();
        while !agent.http_get("/readyz").await.is_ok_and(|body| body.starts_with("ok")) {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the agent did not become ready within 60 s (see its log)".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(agent)
    }

    /// The body of a GET on the agent's metrics server.
    async fn http_get(&self, path: &str) -> BoxResult<String> {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n").as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
    }

    /// A counter or gauge from `/metrics` (summed over labels).
    async fn metric(&self, name: &str) -> BoxResult<f64> {
        let text = self.http_get("/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// `VmHWM` (peak RSS since start) and the highest sampled `VmRSS`, in MiB.
    fn rss_mib(&self) -> BoxResult<(f64, f64)> {
        let mib = |kib: u64| f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0;
        Ok((mib(proc_status_kib(self.pid, "VmHWM")?), mib(self.sampled_peak_kib.load(Ordering::Relaxed))))
    }

    /// Kills the process abruptly (as a crash or an evicted Pod would).
    async fn kill(mut self) -> BoxResult<()> {
        self.sampler.abort();
        self.child.kill().await?;
        Ok(())
    }
}

/// A `kB` line of `/proc/PID/status`.
fn proc_status_kib(pid: u32, field: &str) -> BoxResult<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).ok_or("no such field")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// Done: `Completed` with post-deploy, else `Success`, at the current generation.
fn finished(tf: &alustan_shared::Terraform, post_deploy: bool) -> bool {
    let Some(status) = &tf.status else { return false };
    let want = if post_deploy { alustan_shared::State::Completed } else { alustan_shared::State::Success };
    status.observed_generation == tf.metadata.generation && status.state == Some(want)
}

const WRITE_VERBS: [&str; 6] = ["create", "update", "patch", "delete", "deletecollection", "apply"];

/// The agent's API requests among `records`: total, and writes by verb and resource.
fn agent_requests(records: &[RequestRecord]) -> (usize, BTreeMap<String, usize>) {
    let (total, by_kind) = requests_by_kind(records);
    let writes =
        by_kind.into_iter().filter(|(what, _)| WRITE_VERBS.iter().any(|verb| what.starts_with(verb))).collect();
    (total, writes)
}

/// The agent's API requests among `records`: total, and counts by `verb resource[/subresource]`.
fn requests_by_kind(records: &[RequestRecord]) -> (usize, BTreeMap<String, usize>) {
    let mine: Vec<&RequestRecord> = records.iter().filter(|r| r.user == AGENT_USER).collect();
    let mut by_kind = BTreeMap::new();
    for r in &mine {
        let what =
            if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
        *by_kind.entry(format!("{} {what}", r.verb)).or_insert(0) += 1;
    }
    (mine.len(), by_kind)
}

fn write_total(writes: &BTreeMap<String, usize>) -> usize {
    writes.values().sum()
}

/// `n` per resource of `crs`.
fn per_resource(n: usize, crs: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX)) / f64::from(u32::try_from(crs.max(1)).unwrap_or(u32::MAX))
}

/// Step 3: the agent's writes while nothing changes, per resource per sync interval when the
/// quiet period crosses one.
async fn quiet_period(stack: &Stack, settings: &Settings, crs: usize) -> BoxResult<()> {
    let per = |n: usize| per_resource(n, crs);
    let mark = stack.env.requests().records().len();
    tokio::time::sleep(settings.quiet).await;
    let (requests, writes) = agent_requests(&stack.env.requests().records()[mark..]);
    let interval =
        alustan_shared::duration::parse_duration(&settings.sync_interval).unwrap_or(Duration::from_secs(3600));
    let intervals = settings.quiet.as_secs_f64() / interval.as_secs_f64();
    let status_writes =
        writes.iter().filter(|(what, _)| what.ends_with("terraforms/status")).map(|(_, n)| n).sum::<usize>();
    if intervals >= 1.0 {
        println!(
            "    quiet {:?} = {intervals:.1} sync intervals: {} API writes {writes:?}, {requests} requests; status writes {:.2} per Terraform per interval  (goal ≤ 1 beyond its drift run's own objects)",
            settings.quiet,
            write_total(&writes),
            per(status_writes) / intervals
        );
    } else {
        println!(
            "    quiet {:?} after convergence (no sync interval crossed): {} API writes {writes:?}, {requests} requests  (goal 0)",
            settings.quiet,
            write_total(&writes)
        );
    }

    Ok(())
}

/// Steps 2 to 4.
async fn agent_run(crs: usize, settings: &Settings, floor: Option<Duration>) -> BoxResult<Figures> {
    let stack = stack().await?;
    let log = stack.env.work_dir().join("agent.log");
    let terraforms: Api<alustan_shared::Terraform> = Api::namespaced(stack.env.client()?, "default");
    let agent = AgentProcess::start(&stack, settings, &log).await?;
    let host = stack.proxy.host_port();
    let listings_before = stack.proxy.count("/tags/list");
    let started = Instant::now();
    futures::stream::iter(0..crs)
        .map(|i| {
            let image = format!("{host}/{}", stack.images[i % IMAGES].0);
            let terraforms = terraforms.clone();
            async move {
                let tf = terraform(i, &image, settings.post_deploy)?;
                terraforms.create(&PostParams::default(), &tf).await.map_err(Box::<dyn Error>::from)
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    let state = if settings.post_deploy { "Completed" } else { "Success" };
    let took = wait_until(&format!("every Terraform to be {state}"), started, crs, || async {
        Ok(terraforms
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|tf| finished(tf, settings.post_deploy))
            .count())
    })
    .await?;
    let proxy_listings = stack.proxy.count("/tags/list") - listings_before;
    let metric_listings = agent.metric("alustan_registry_listings_total").await?;
    let (hwm, sampled) = agent.rss_mib()?;
    let (requests, writes) = agent_requests(&stack.env.requests().records());
    let per = |n: usize| per_resource(n, crs);
    println!("  agent: {}, a separate process, --sync-interval {}", settings.profile, settings.sync_interval);
    println!("    created {crs} Terraforms in {created:.1?} ({CREATE_CONCURRENCY} in parallel)");
    let ratio = floor
        .map(|f| format!("; {:.2}x the floor, goal ≤ 1.2x", took.as_secs_f64() / f.as_secs_f64()))
        .unwrap_or_default();
    println!("    all {state} after {took:.1?}  (goal < 30 s for 1000{ratio})");
    println!(
        "    tag listings: {proxy_listings} seen by the registry, {metric_listings} by the agent's metric  (goal exactly {IMAGES})"
    );
    println!("    peak RSS: {hwm:.1} MiB (VmHWM), highest sample {sampled:.1} MiB  (goal < 40 MiB)");
    println!(
        "    API requests while converging: {requests} ({:.1} per resource, goal ≤ 10), writes {} ({:.1} per resource, goal ≤ 5) {writes:?}",
        per(requests),
        write_total(&writes),
        per(write_total(&writes))
    );

    let (_, by_kind) = requests_by_kind(&stack.env.requests().records());
    let reads: Vec<String> = by_kind
        .iter()
        .filter(|(what, _)| !WRITE_VERBS.iter().any(|verb| what.starts_with(verb)))
        .map(|(what, n)| format!("{what} {:.1}", per(*n)))
        .collect();
    println!("    reads per resource: {}", reads.join(", "));

    quiet_period(&stack, settings, crs).await?;

    agent.kill().await?;
    let mark = stack.env.requests().records().len();
    let listings_before = stack.proxy.count("/tags/list");
    let restarted = Instant::now();
    let agent = AgentProcess::start(&stack, settings, &log).await?;
    let reconciled = wait_until("the restarted agent to reconcile every Terraform", restarted, crs, || async {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small counter
        Ok(agent.metric("alustan_reconcile_duration_seconds_count").await? as usize)
    })
    .await?;
    tokio::time::sleep(settings.quiet).await;
    let (requests, writes) = agent_requests(&stack.env.requests().records()[mark..]);
    let (restart_hwm, _) = agent.rss_mib()?;
    println!(
        "    restart: every Terraform reconciled after {reconciled:.1?}; in that and {:?} more: {} API writes {writes:?}, {requests} requests, {} tag listings, peak RSS {restart_hwm:.1} MiB  (goal 0 writes)",
        settings.quiet,
        write_total(&writes),
        stack.proxy.count("/tags/list") - listings_before,
    );
    agent.kill().await?;
    Ok(Figures { took, rss_mib: hwm })
}

//! The agent at scale (issue 5), printed beside its goals (never asserted):
//!
//! 1. the floor: the testenv kubelet running N trivial Jobs without the agent;
//! 2. the real `alustan-agent` binary, a separate process, against N `Terraform`s sharing
//!    10 images (instant `deploy` scripts writing a tiny outputs JSON): time until all are
//!    Ready, tag listings the registry saw (through a counting proxy) and the agent's metric,
//!    the agent's peak RSS (`VmHWM`, and the highest sampled `VmRSS`);
//! 3. API writes by the agent's user during a quiet period after convergence;
//! 4. the same after killing and restarting the agent (a restart must not rewrite statuses).
//!
//! Run: `cargo bench -p alustan-agent --bench scale`; `SCALE_CRS=200` for a smaller run,
//! `SCALE_QUIET_SECS` for the quiet periods (default 20), `SCALE_SKIP_FLOOR=1` to skip step 1.

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
const SYNC_INTERVAL: &str = "1h";

fn env_number(name: &str, default: u64) -> BoxResult<u64> {
    match std::env::var(name) {
        Ok(text) => Ok(text.parse().map_err(|err| format!("{name}={text:?}: {err}"))?),
        Err(_) => Ok(default),
    }
}

fn main() -> BoxResult<()> {
    alustan_agent::registry::install_crypto_provider();
    let crs = usize::try_from(env_number("SCALE_CRS", 1000)?)?;
    let quiet = Duration::from_secs(env_number("SCALE_QUIET_SECS", 20)?);
    let skip_floor = env_number("SCALE_SKIP_FLOOR", 0)? != 0;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        println!("scale: {crs} Terraforms sharing {IMAGES} images, instant deploy scripts");
        let floor = if skip_floor { None } else { Some(floor(crs).await?) };
        agent_run(crs, quiet, floor).await
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

/// Step 1: the kubelet alone runs `crs` Jobs shaped like the agent's (image by digest, an
/// emptyDir for outputs, the script plus printing its outputs).
async fn floor(crs: usize) -> BoxResult<Duration> {
    let stack = stack().await?;
    let host = stack.proxy.host_port();
    let jobs: Api<Job> = Api::namespaced(stack.env.client()?, "default");
    let started = Instant::now();
    futures::stream::iter(0..crs)
        .map(|i| {
            let (repo, digest) = &stack.images[i % IMAGES];
            let job: serde_json::Result<Job> = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("floor-{i}")},
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "volumes": [{"name": "outputs", "emptyDir": {}}],
                    "containers": [{
                        "name": "run",
                        "image": format!("{host}/{repo}@{digest}"),
                        "command": ["/bin/sh", "-c", "./deploy && cat \"$ALUSTAN_OUTPUTS\""],
                        "env": [{"name": "ALUSTAN_OUTPUTS", "value": "/alustan/outputs.json"}],
                        "volumeMounts": [{"name": "outputs", "mountPath": "/alustan"}],
                    }],
                }}},
            }));
            let jobs = jobs.clone();
            async move { jobs.create(&PostParams::default(), &job?).await.map_err(Box::<dyn Error>::from) }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let took = wait_until("the floor's Jobs to succeed", started, crs, || async {
        let list = jobs.list(&ListParams::default()).await?;
        Ok(list.items.iter().filter(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0).count())
    })
    .await?;
    println!("  floor: the testenv kubelet runs {crs} such Jobs without the agent in {took:.1?}");
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
    async fn start(stack: &Stack, log: &Path) -> BoxResult<Self> {
        let kubeconfig = stack.env.kubeconfig_for(AGENT_USER, AGENT_TOKEN)?;
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-agent"))
            .env("KUBECONFIG", kubeconfig)
            .env_remove("LOG_LEVEL")
            .args(["--insecure-registry", &stack.proxy.host_port(), "--sync-interval", SYNC_INTERVAL])
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

fn terraform(i: usize, image: &str) -> BoxResult<alustan_shared::Terraform> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
        "metadata": {"name": format!("scale-{i}"), "namespace": "default"},
        "spec": {
            "variables": {"TF_VAR_index": i.to_string()},
            "scripts": {"deploy": "deploy"},
            "containerRegistry": {"provider": "oci", "imageName": image, "semanticVersion": "^1"},
        },
    }))?)
}

fn ready(tf: &alustan_shared::Terraform) -> bool {
    let Some(status) = &tf.status else { return false };
    status.observed_generation == tf.metadata.generation
        && alustan_shared::conditions::find(&status.conditions, alustan_shared::conditions::READY)
            .is_some_and(|c| c.status == "True")
}

const WRITE_VERBS: [&str; 6] = ["create", "update", "patch", "delete", "deletecollection", "apply"];

/// The agent's API requests among `records`: total, and writes by verb and resource.
fn agent_requests(records: &[RequestRecord]) -> (usize, BTreeMap<String, usize>) {
    let mine: Vec<&RequestRecord> = records.iter().filter(|r| r.user == AGENT_USER).collect();
    let mut writes = BTreeMap::new();
    for r in mine.iter().filter(|r| WRITE_VERBS.contains(&r.verb.as_str())) {
        let what =
            if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
        *writes.entry(format!("{} {what}", r.verb)).or_insert(0) += 1;
    }
    (mine.len(), writes)
}

fn write_total(writes: &BTreeMap<String, usize>) -> usize {
    writes.values().sum()
}

/// Steps 2 to 4.
async fn agent_run(crs: usize, quiet: Duration, floor: Option<Duration>) -> BoxResult<()> {
    let stack = stack().await?;
    let log = stack.env.work_dir().join("agent.log");
    let terraforms: Api<alustan_shared::Terraform> = Api::namespaced(stack.env.client()?, "default");
    let agent = AgentProcess::start(&stack, &log).await?;
    let host = stack.proxy.host_port();
    let listings_before = stack.proxy.count("/tags/list");
    let started = Instant::now();
    futures::stream::iter(0..crs)
        .map(|i| {
            let image = format!("{host}/{}", stack.images[i % IMAGES].0);
            let terraforms = terraforms.clone();
            async move {
                terraforms.create(&PostParams::default(), &terraform(i, &image)?).await.map_err(Box::<dyn Error>::from)
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    let took = wait_until("every Terraform to be Ready", started, crs, || async {
        Ok(terraforms.list(&ListParams::default()).await?.items.iter().filter(|tf| ready(tf)).count())
    })
    .await?;
    let proxy_listings = stack.proxy.count("/tags/list") - listings_before;
    let metric_listings = agent.metric("alustan_registry_listings_total").await?;
    let (hwm, sampled) = agent.rss_mib()?;
    let (requests, writes) = agent_requests(&stack.env.requests().records());
    println!("  agent (release build, separate process, --sync-interval {SYNC_INTERVAL}):");
    println!("    created {crs} Terraforms in {created:.1?} ({CREATE_CONCURRENCY} in parallel)");
    let ratio = floor.map(|f| format!(", {:.2}x the floor", took.as_secs_f64() / f.as_secs_f64())).unwrap_or_default();
    println!("    all Ready after {took:.1?}  (goal < 30 s for 1000{ratio})");
    println!(
        "    tag listings: {proxy_listings} seen by the registry, {metric_listings} by the agent's metric  (goal exactly {IMAGES})"
    );
    println!("    peak RSS: {hwm:.1} MiB (VmHWM), highest sample {sampled:.1} MiB  (goal < 40 MiB)");
    println!("    API requests while converging: {requests}, writes {} {writes:?}", write_total(&writes));

    let mark = stack.env.requests().records().len();
    tokio::time::sleep(quiet).await;
    let (requests, writes) = agent_requests(&stack.env.requests().records()[mark..]);
    println!(
        "    quiet {quiet:?} after convergence: {} API writes {writes:?}, {requests} requests  (goal ≤ 1 per Terraform per sync interval; 0 expected before {SYNC_INTERVAL})",
        write_total(&writes)
    );

    agent.kill().await?;
    let mark = stack.env.requests().records().len();
    let listings_before = stack.proxy.count("/tags/list");
    let restarted = Instant::now();
    let agent = AgentProcess::start(&stack, &log).await?;
    let reconciled = wait_until("the restarted agent to reconcile every Terraform", restarted, crs, || async {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small counter
        Ok(agent.metric("alustan_reconcile_duration_seconds_count").await? as usize)
    })
    .await?;
    tokio::time::sleep(quiet).await;
    let (requests, writes) = agent_requests(&stack.env.requests().records()[mark..]);
    let (hwm, _) = agent.rss_mib()?;
    println!(
        "    restart: every Terraform reconciled after {reconciled:.1?}; in that and {quiet:?} more: {} API writes {writes:?}, {requests} requests, {} tag listings, peak RSS {hwm:.1} MiB  (goal 0 writes)",
        write_total(&writes),
        stack.proxy.count("/tags/list") - listings_before,
    );
    agent.kill().await?;
    Ok(())
}

//! `kubectl alustan get -A` with 1,000 Terraforms against `kubectl get terraforms -A` on the
//! same testenv, in the same run, as users run them: the plugin through kubectl's plugin lookup
//! (`kubectl alustan …` finds `kubectl-alustan` on PATH), resources with the status the agent
//! writes (conditions, applied image, last scan with rejected tags, run history, outputs), the
//! two commands interleaved run by run (so machine noise hits both alike), kubectl with a cold
//! discovery cache (a new `--cache-dir` per run) and a warm one. Goal: ratio ≤ 1.0 against warm
//! kubectl. Prints medians of 7 runs; asserts nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use alustan_shared::Terraform;
use alustan_testenv::{TestEnv, TestEnvOptions};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const COUNT: usize = 1_000;
const RUNS: usize = 7;

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

/// The status the agent writes after a deploy (the e2e tests' `completed_status`), made
/// distinct per resource.
fn status(i: usize) -> Value {
    let mut status = e2e_support::completed_status("default");
    status["message"] = json!(format!("post-deploy of v1.0.{} succeeded", i % 7));
    status["output"]["cluster_name"] = json!(format!("cluster-{i}"));
    status["output"]["endpoint"] = json!(format!("https://10.0.{}.{}:6443", i / 250, i % 250));
    status["ingressURLs"]["argocd"] = json!([format!("https://argocd.cluster-{i}.example.com")]);
    status
}

/// `kubectl` with `args`, the plugin's directory first on PATH (kubectl's plugin lookup finds
/// `kubectl-alustan` there); `cache`: kubectl's own discovery cache (the plugin has none).
fn kubectl(kubeconfig: &Path, cache: Option<&Path>, args: &[&str]) -> tokio::process::Command {
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-alustan")).parent().unwrap();
    let path = format!("{}:{}", plugin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = tokio::process::Command::new("kubectl");
    command.args(args).arg("--kubeconfig").arg(kubeconfig).env("PATH", path).env_remove("KUBECONFIG");
    if let Some(cache) = cache {
        command.arg("--cache-dir").arg(cache);
    }
    command
}

async fn timed(mut command: tokio::process::Command) -> Duration {
    let start = Instant::now();
    let out = command.output().await.unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
        let api: Api<Terraform> = Api::namespaced(env.client().unwrap(), "default");
        for i in 0..COUNT {
            let name = format!("tf-{i:04}");
            let object: Terraform = serde_json::from_value(json!({
                "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
                "metadata": {"name": name, "namespace": "default", "labels": {"team": "platform"}},
                "spec": {"variables": {"TF_VAR_region": "eu-west-1", "TF_VAR_index": i.to_string()},
                         "scripts": {"deploy": "deploy", "destroy": "destroy -c"},
                         "postDeploy": {"script": "aws-resource", "args": {"region": "TF_VAR_region"}},
                         "containerRegistry": {"provider": "oci", "imageName": "registry.example/alustan/infrastructure", "semanticVersion": "~1.0.0"}},
            }))
            .unwrap();
            api.create(&PostParams::default(), &object).await.unwrap();
            let patch = Patch::Merge(json!({"status": status(i)}));
            api.patch_status(&name, &PatchParams::default(), &patch).await.unwrap();
        }
        let warm = tempfile::tempdir().unwrap();
        let kubeconfig = env.kubeconfig();
        // Fills the warm cache once (kubectl's discovery), as a user's second command finds it.
        timed(kubectl(kubeconfig, Some(warm.path()), &["get", "terraforms", "-A"])).await;
        let (mut plugin, mut kubectl_warm, mut kubectl_cold) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            plugin.push(timed(kubectl(kubeconfig, None, &["alustan", "get", "-A"])).await);
            kubectl_warm.push(timed(kubectl(kubeconfig, Some(warm.path()), &["get", "terraforms", "-A"])).await);
            let cold = tempfile::tempdir().unwrap();
            kubectl_cold.push(timed(kubectl(kubeconfig, Some(cold.path()), &["get", "terraforms", "-A"])).await);
        }
        let (plugin, warm, cold) = (median(plugin), median(kubectl_warm), median(kubectl_cold));
        println!("get -A, {COUNT} Terraforms with the agent's status, median of {RUNS} interleaved runs:");
        println!("  kubectl alustan get -A (plugin lookup): {:.1} ms", ms(plugin));
        println!("  kubectl get terraforms -A, warm cache:  {:.1} ms", ms(warm));
        println!("  kubectl get terraforms -A, cold cache:  {:.1} ms", ms(cold));
        println!(
            "  ratio plugin/kubectl: {:.2} against warm (goal ≤ 1.0), {:.2} against cold",
            plugin.as_secs_f64() / warm.as_secs_f64(),
            plugin.as_secs_f64() / cold.as_secs_f64()
        );
    });
}

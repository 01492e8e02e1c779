//! `kubectl alustan get -A` with 1,000 Terraforms against `kubectl get terraforms -A` on the
//! same testenv, same run. Goal: ratio ≤ 1.0. Prints figures (medians of 7 runs); asserts nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alustan_shared::Terraform;
use alustan_testenv::{TestEnv, TestEnvOptions};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const COUNT: usize = 1_000;
const RUNS: usize = 7;

async fn median(mut command: impl FnMut() -> tokio::process::Command) -> Duration {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = command().output().await.unwrap();
        times.push(start.elapsed());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    times.sort();
    times[RUNS / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
        let api: Api<Terraform> = Api::namespaced(env.client().unwrap(), "default");
        for i in 0..COUNT {
            let object: Terraform = serde_json::from_value(json!({
                "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
                "metadata": {"name": format!("tf-{i:04}"), "namespace": "default"},
                "spec": {"scripts": {"deploy": "deploy"},
                         "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"}},
            }))
            .unwrap();
            api.create(&PostParams::default(), &object).await.unwrap();
        }
        let cache = tempfile::tempdir().unwrap();
        let plugin = median(|| {
            let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-alustan"));
            c.args(["get", "-A", "--kubeconfig"]).arg(env.kubeconfig());
            c
        })
        .await;
        let kubectl = median(|| {
            let mut c = tokio::process::Command::new("kubectl");
            c.args(["get", "terraforms", "-A", "--kubeconfig"])
                .arg(env.kubeconfig())
                .arg("--cache-dir")
                .arg(cache.path());
            c
        })
        .await;
        println!(
            "get -A, {COUNT} Terraforms: kubectl-alustan {:.1} ms, kubectl {:.1} ms, ratio {:.2} (goal ≤ 1.0)",
            plugin.as_secs_f64() * 1000.0,
            kubectl.as_secs_f64() * 1000.0,
            plugin.as_secs_f64() / kubectl.as_secs_f64()
        );
    });
}

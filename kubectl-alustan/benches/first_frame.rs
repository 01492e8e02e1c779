//! `kubectl alustan tui` in a real terminal (tmux) against testenv, 50 Terraforms: the time
//! from starting the binary to its first frame (the header is drawn: connected, CRD checked),
//! and to the first frame listing the resources (the watch's initial list arrived and was
//! drawn). Baseline in the same run: the same tmux round trip for `sh -c 'echo …'`, so tmux's
//! own start-up and screen polling cancel out. Goal (issue 6): first frame < 150 ms.
//! Prints figures (medians of 7); asserts nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alustan_shared::Terraform;
use alustan_testenv::{TestEnv, TestEnvOptions};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const RUNS: usize = 7;

async fn tmux(socket: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("tmux").args(["-L", socket]).args(args).output().await.unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `command` in a fresh tmux server and returns when each marker was first on screen.
async fn time_to_screen(socket: &str, command: &str, markers: &[&str]) -> Vec<Duration> {
    let started = Instant::now();
    tmux(socket, &["new-session", "-d", "-s", "bench", "-x", "120", "-y", "36", command]).await;
    let mut seen: Vec<Option<Duration>> = vec![None; markers.len()];
    while seen.iter().any(Option::is_none) {
        let screen = tmux(socket, &["capture-pane", "-p", "-t", "bench"]).await;
        for (slot, marker) in seen.iter_mut().zip(markers) {
            if slot.is_none() && screen.contains(marker) {
                *slot = Some(started.elapsed());
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{markers:?} never all appeared; the screen:\n{screen}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tmux(socket, &["kill-server"]).await;
    seen.into_iter().flatten().collect()
}

/// Medians per marker over RUNS fresh tmux servers (a killed server may hold its socket a
/// moment, so each run gets its own).
async fn medians(socket: &str, command: &str, markers: &[&str]) -> Vec<Duration> {
    let mut runs = Vec::new();
    for run in 0..RUNS {
        runs.push(time_to_screen(&format!("{socket}-{run}"), command, markers).await);
    }
    (0..markers.len())
        .map(|i| {
            let mut times: Vec<Duration> = runs.iter().map(|r| r[i]).collect();
            times.sort();
            times[RUNS / 2]
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let env = TestEnv::start_with(TestEnvOptions { kubelet: false, ..TestEnvOptions::default() }).await.unwrap();
        let api: Api<Terraform> = Api::namespaced(env.client().unwrap(), "default");
        for i in 0..50 {
            let object: Terraform = serde_json::from_value(json!({
                "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
                "metadata": {"name": format!("frame-{i:02}"), "namespace": "default"},
                "spec": {"scripts": {"deploy": "deploy"},
                         "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"}},
            }))
            .unwrap();
            api.create(&PostParams::default(), &object).await.unwrap();
        }
        let socket = format!("alustan-bench-{}", std::process::id());
        let log = env.work_dir().join("tui.log");
        let tui = format!(
            "ALUSTAN_LOG_FILE={} {} tui --kubeconfig {}; sleep 30",
            log.display(),
            env!("CARGO_BIN_EXE_kubectl-alustan"),
            env.kubeconfig().display()
        );
        let plugin = medians(&format!("{socket}-tui"), &tui, &["ctx:", "frame-"]).await;
        let baseline = medians(&format!("{socket}-baseline"), "sh -c 'echo frame-00; sleep 30'", &["frame-"]).await[0];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("tui with 50 Terraforms (medians of {RUNS}; tmux baseline {:.1} ms subtracted):", ms(baseline));
        println!("  start to first frame      : {:>6.1} ms (goal < 150 ms)", ms(plugin[0].saturating_sub(baseline)));
        println!("  start to resources listed : {:>6.1} ms", ms(plugin[1].saturating_sub(baseline)));
    });
}

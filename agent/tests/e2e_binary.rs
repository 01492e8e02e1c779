//! The `alustan-agent` binary's start-up check: without the CRD it stops at once with a hint.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use alustan_testenv::{TestEnv, TestEnvOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_binary_exits_with_a_hint() {
    let env = TestEnv::start_with(TestEnvOptions { crds_dir: None, kubelet: false, ..TestEnvOptions::default() })
        .await
        .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-agent"))
            .env("KUBECONFIG", env.kubeconfig())
            .env_remove("LOG_LEVEL")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("kubectl apply -f crds/terraform.yaml"), "{log}");
    // JSON log lines.
    let line = log.lines().last().unwrap();
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["level"], "ERROR");
}

//! The `alustan-agent` binary's start-up checks: without the CRD it stops at once with a hint;
//! a bad `CREDENTIAL_SOURCES` stops it naming the flag, never echoing the value.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use alustan_testenv::{TestEnv, TestEnvOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_binary_exits_with_a_hint() {
    let output = run_without_crd(&[]).await;
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("kubectl apply -f crds/terraform.yaml"), "{log}");
    // JSON log lines.
    let line = log.lines().last().unwrap();
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["level"], "ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credential_sources_stop_the_binary_naming_the_flag_in_text_logs() {
    let output = run_without_crd(&[
        ("LOG_FORMAT", "text"),
        ("CREDENTIAL_SOURCES", r#"[{"name": "hunter2-not-for-logs", "namespace": 7}]"#),
    ])
    .await;
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    let line = log.lines().last().unwrap();
    assert!(line.contains("ERROR") && line.contains("--credential-sources (CREDENTIAL_SOURCES)"), "{log}");
    assert!(line.contains("line 1 column"), "{log}");
    assert!(!log.contains("hunter2"), "the value was echoed: {log}");
    assert!(serde_json::from_str::<serde_json::Value>(line).is_err(), "LOG_FORMAT=text wrote JSON: {line}");
}

/// Runs the binary with `vars` against an API server without the CRD; it must stop by itself.
async fn run_without_crd(vars: &[(&str, &str)]) -> std::process::Output {
    let env = TestEnv::start_with(TestEnvOptions { crds_dir: None, kubelet: false, ..TestEnvOptions::default() })
        .await
        .unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-agent"));
    command.env("KUBECONFIG", env.kubeconfig()).env_remove("LOG_LEVEL").envs(vars.iter().copied());
    tokio::time::timeout(Duration::from_secs(30), command.output()).await.unwrap().unwrap()
}

//! The harness: parallel `TestEnv`s with our CRDs installed, usable by the real kubectl, and
//! the `alustan-testenv serve` binary that the demo builds on.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers may panic

mod apiserver_support;

use std::path::Path;
use std::time::Duration;

use alustan_testenv::TestEnv;
use apiserver_support::kubectl;

#[tokio::test]
async fn parallel_environments_are_independent_and_have_the_crd_installed() {
    let (first, second) = tokio::join!(TestEnv::start(), TestEnv::start());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.server_url(), second.server_url());
    assert_ne!(first.registry().host_port(), second.registry().host_port());
    assert_ne!(first.kubeconfig(), second.kubeconfig());

    let cache = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/staging-cluster.yaml");
    let (ok, _, err) = kubectl(first.kubeconfig(), cache.path(), &["apply", "-f", example.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = kubectl(first.kubeconfig(), cache.path(), &["get", "altf"]).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "VERSION", "READY", "AGE"]);
    assert!(out.contains("staging-cluster"));
    // `date` columns are ages, as the real API server renders them (kubectl prints cells as is).
    let age = out.lines().find(|l| l.starts_with("staging-cluster")).unwrap().split_whitespace().last().unwrap();
    assert!(age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(), "AGE {age:?}");

    // The other environment saw nothing of it.
    let cache2 = tempfile::tempdir().unwrap();
    let (ok, out, err) = kubectl(second.kubeconfig(), cache2.path(), &["get", "terraforms.alustan.io", "-A"]).await;
    assert!(ok, "{err}");
    assert!(!out.contains("staging-cluster"), "{out}");
}

#[tokio::test]
async fn serve_prints_exports_works_for_kubectl_and_stops_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let (mut child, kubeconfig, registry) = apiserver_support::serve(&[], work.path(), Duration::from_secs(30)).await;
    let (kubeconfig, registry) = (kubeconfig.as_str(), registry.as_str());
    assert!(Path::new(kubeconfig).is_absolute() && Path::new(kubeconfig).exists());
    assert!(registry.starts_with("127.0.0.1:"));

    let (ok, out, err) = kubectl(Path::new(kubeconfig), &work.path().join("cache"), &["get", "crd"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("terraforms.alustan.io"), "{out}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("serve stops on SIGTERM").unwrap();
    assert!(status.success(), "{status}");
    assert!(tokio::net::TcpStream::connect(registry).await.is_err(), "the registry must stop with serve");
}

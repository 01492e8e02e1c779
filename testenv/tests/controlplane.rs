//! The real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built
//! from the pinned Go modules) started on loopback by `alustan_testenv::controlplane`.
//!
//! Ignored by default: the first build of the binaries takes a long time. Run with
//! `make test-real` (which builds them first, cached) or
//! `cargo test -p alustan-testenv --test controlplane -- --ignored`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code may panic

mod apiserver_support;

use std::path::Path;
use std::time::Duration;

use alustan_shared::Terraform;
use alustan_testenv::controlplane::ControlPlane;
use apiserver_support::kubectl;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still show, so read its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[tokio::test]
#[ignore = "needs the real control plane binaries (slow first build): run `make test-real`"]
async fn real_control_plane_serves_kube_rs_and_kubectl_with_our_crd_and_stops_on_drop() {
    let control_plane = ControlPlane::start().await.unwrap();
    eprintln!("real control plane {} up in {:?}", control_plane.server_url(), control_plane.started_in());
    let client = control_plane.client().await.unwrap();
    let version = client.apiserver_version().await.unwrap();
    eprintln!("kube-apiserver {}", version.git_version);
    assert_eq!(version.major, "1");

    // kube-rs lists the namespaces the real API server creates for itself.
    let namespaces: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for expected in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.iter().any(|n| n == expected), "{expected} missing from {namespaces:?}");
    }

    // Our CRD is installed: a Terraform from the examples is accepted by kube-rs…
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/staging-cluster.yaml"))
            .unwrap();
    let mut terraform: Terraform = serde_yaml::from_str(&example).unwrap();
    terraform.metadata.name = Some("from-kube-rs".to_owned());
    let terraforms: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let created = terraforms.create(&PostParams::default(), &terraform).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());

    // …and by kubectl, which also reads it back with the CRD's printer columns.
    let cache = tempfile::tempdir().unwrap();
    let kubeconfig = control_plane.kubeconfig();
    let (ok, out, err) = kubectl(kubeconfig, cache.path(), &["get", "--raw", "/readyz"]).await;
    assert!(ok && out.trim() == "ok", "{out}{err}");
    let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/staging-cluster.yaml");
    let (ok, _, err) = kubectl(kubeconfig, cache.path(), &["apply", "-f", example_path.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = kubectl(kubeconfig, cache.path(), &["get", "altf"]).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "VERSION", "READY", "AGE"]);
    assert!(out.contains("staging-cluster") && out.contains("from-kube-rs"), "{out}");

    // Drop stops every process of the control plane.
    let pids = control_plane.pids();
    assert_eq!(
        pids.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    );
    let work_dir = control_plane.work_dir().to_path_buf();
    drop(client);
    drop(control_plane);
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} (pid {pid}) still runs after drop");
    }
    assert!(!work_dir.exists(), "the temp dir {} was left behind", work_dir.display());
}

#[tokio::test]
#[ignore = "needs the real control plane binaries (slow first build): run `make test-real`"]
async fn minted_users_are_authorized_by_rbac_and_the_controllers_run() {
    let control_plane = ControlPlane::start().await.unwrap();
    let admin = control_plane.client().await.unwrap();

    // A user with a client certificate but no binding is authenticated, and forbidden.
    let alice = control_plane.client_for("alice", &["alustan-viewers"]).await.unwrap();
    let as_alice: Api<Terraform> = Api::namespaced(alice.clone(), "default");
    match as_alice.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(status.message.contains("User \"alice\""), "{}", status.message);
        }
        other => panic!("alice listed terraforms without a binding: {other:?}"),
    }

    // A ClusterRole bound to her group lets her list them (RBAC sees the certificate's O).
    let role = ClusterRole {
        metadata: kube::api::ObjectMeta { name: Some("terraform-viewer".into()), ..Default::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["alustan.io".into()]),
            resources: Some(vec!["terraforms".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone()).create(&PostParams::default(), &role).await.unwrap();
    let binding = ClusterRoleBinding {
        metadata: kube::api::ObjectMeta { name: Some("terraform-viewers".into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "terraform-viewer".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: "alustan-viewers".into(),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone()).create(&PostParams::default(), &binding).await.unwrap();
    // RBAC's informer takes a moment to see the binding.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match as_alice.list(&ListParams::default()).await {
            Ok(list) => {
                assert!(list.items.is_empty());
                break;
            }
            Err(error) => assert!(tokio::time::Instant::now() < deadline, "still denied: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Listing is all she got.
    let denied = as_alice.delete_collection(&kube::api::DeleteParams::default(), &ListParams::default()).await;
    assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "{denied:?}");

    // The controller-manager runs: a new namespace gets its `default` ServiceAccount and the
    // `kube-root-ca.crt` ConfigMap with our CA.
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta { name: Some("team-a".into()), ..Default::default() },
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), "team-a");
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin, "team-a");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let root_ca = maps.get_opt("kube-root-ca.crt").await.unwrap();
        let account = accounts.get_opt("default").await.unwrap();
        if let (Some(root_ca), Some(_)) = (root_ca, account) {
            let pem = root_ca.data.unwrap_or_default().remove("ca.crt").unwrap_or_default();
            assert_eq!(pem.trim(), control_plane.pki().ca_pem().trim());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "team-a got no default ServiceAccount and root CA");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the real control plane binaries (slow first build): run `make test-real`"]
async fn serve_with_the_real_control_plane_prints_exports_and_stops_everything_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let (mut child, kubeconfig, registry) =
        apiserver_support::serve(&["--control-plane", "real"], &work.path().join("env"), Duration::from_secs(180))
            .await;
    let (kubeconfig, registry) = (kubeconfig.as_str(), registry.as_str());

    let cache = work.path().join("cache");
    let (ok, out, err) = kubectl(Path::new(kubeconfig), &cache, &["version", "-o", "json"]).await;
    assert!(ok, "{err}");
    let version: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.34.4", "{out}");
    let (ok, out, err) = kubectl(Path::new(kubeconfig), &cache, &["get", "crd"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("terraforms.alustan.io"), "{out}");
    let server = std::fs::read_to_string(kubeconfig).unwrap();
    let api = server.lines().find_map(|l| l.trim().strip_prefix("server: https://")).unwrap().to_owned();

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("serve stops on SIGTERM").unwrap();
    assert!(status.success(), "{status}");
    assert!(tokio::net::TcpStream::connect(registry).await.is_err(), "the registry must stop with serve");
    assert!(tokio::net::TcpStream::connect(&api).await.is_err(), "kube-apiserver must stop with serve");
}

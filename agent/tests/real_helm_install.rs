//! `helm install`, for real (issue 13, item 5): the chart rendered with the real Helm engine
//! (`.ci/render_chart.py`, every template) and applied to the real Kubernetes control plane;
//! the built `alustan-agent` pushed as the chart's image, so the Deployment, its `ReplicaSet` and
//! Pod run it on testenv's process kubelet (the cluster's Node) with nothing but its mounted
//! ServiceAccount token (in-cluster config); a `Terraform` deployed and destroyed by that agent;
//! and the chart's RBAC checked for least privilege with the agent's own identity. A second
//! test runs the `make demo` samples through the same install.
//!
//! Ignored by default (needs the control plane binaries and the venv of `make deps`):
//! `make test-real`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code may panic

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alustan_shared::{State, Terraform, conditions};
use alustan_testenv::TestEnv;
use alustan_testenv::registry::ImageConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;

/// The release namespace `.ci/render_chart.py` renders into (as the README installs it).
const RELEASE_NAMESPACE: &str = "alustan-system";
/// Where the chart's image runs the agent: the Dockerfile's ENTRYPOINT (the chart sets no command).
const AGENT_PATH: &str = "usr/local/bin/alustan-agent";
const IAC_REPO: &str = "alustan/infrastructure";

const DEPLOY: &str = r#"echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
cat > "$ALUSTAN_OUTPUTS" <<'JSON'
{"cluster_name":{"value":"helm-real","sensitive":false,"type":"string"},"db_password":{"value":"hunter2-s3cret","sensitive":true,"type":"string"}}
JSON
"#;
const DESTROY: &str = "echo \"destroying with $*\"\n";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ALUSTAN_VENV").map_or_else(
        || Path::new(&std::env::var_os("HOME").expect("HOME is set")).join(".cache/alustan/venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run `make deps` (or set ALUSTAN_VENV)", python.display());
    python
}

/// Every template of the chart, rendered by the real Helm engine with `values`.
async fn render_chart(values: &serde_json::Value, dir: &Path) -> Vec<serde_json::Value> {
    let values_file = dir.join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(values).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/render_chart.py");
    let output = tokio::process::Command::new(venv_python())
        .arg(&script)
        .arg("--values")
        .arg(&values_file)
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "rendering the chart failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The chart's `crds/` (Helm installs them before the templates): one CRD.
fn chart_crd() -> serde_json::Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/alustan/crds/terraform.yaml"))
            .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Server-side apply of one object, as `kubectl apply --server-side` (field manager `helm`).
async fn apply(client: &Client, object: &serde_json::Value) -> String {
    let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let types = object.types.clone().unwrap();
    let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &types.kind));
    let api: Api<DynamicObject> = match &object.metadata.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let name = object.name_any();
    api.patch(&name, &PatchParams::apply("helm").force(), &Patch::Apply(&object)).await.unwrap_or_else(|error| {
        panic!("applying {} {name}: {error}", types.kind);
    });
    format!("{}/{name}", types.kind)
}

fn executable(path: &Path, body: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A free TCP port on the host (the process kubelet's containers share the host network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

async fn eventually<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The agent Pod's log, for failure messages.
async fn agent_log(client: &Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let mut text = String::new();
    for pod in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        let log = pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap_or_else(|e| e.to_string());
        let _ = writeln!(text, "--- {} ---\n{log}", pod.name_any());
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane binaries and the venv of `make deps`: run `make test-real`"]
async fn helm_chart_installs_on_a_real_control_plane_and_its_in_cluster_agent_deploys_and_destroys() {
    let env = TestEnv::start_real().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = env.client().unwrap();
    let registry = env.registry().host_port().to_owned();

    push_images(&env, work.path()).await;
    let account = helm_install(&client, &registry, work.path()).await;
    agent_runs_in_cluster(&client, &account).await;
    deploy_and_destroy(&client, &registry).await;
    least_privilege(&env, &account).await;

    // The chart's RBAC refused the in-cluster agent nothing it tried.
    let log = agent_log(&client).await;
    eprintln!(
        "agent log, {} lines; first ones:\n{}",
        log.lines().count(),
        log.lines().take(6).collect::<Vec<_>>().join("\n")
    );
    assert!(!log.to_lowercase().contains("forbidden"), "the agent was refused a request:\n{log}");
}

/// The agent image: the built binary where the Dockerfile puts it, as its ENTRYPOINT.
async fn push_agent_image(env: &TestEnv, work: &Path) {
    let image_dir = work.join("agent-image");
    executable(&image_dir.join(AGENT_PATH), &std::fs::read(env!("CARGO_BIN_EXE_alustan-agent")).unwrap());
    let config = ImageConfig { entrypoint: vec![format!("/{AGENT_PATH}")], ..ImageConfig::default() };
    env.registry().push_dir("alustan/alustan-agent", &["test"], &image_dir, &config).await.unwrap();
}

/// The agent image and the IaC image the Terraform names.
async fn push_images(env: &TestEnv, work: &Path) {
    push_agent_image(env, work).await;
    let iac_dir = work.join("iac-image");
    executable(&iac_dir.join("deploy"), format!("#!/bin/sh\n{DEPLOY}").as_bytes());
    executable(&iac_dir.join("destroy"), format!("#!/bin/sh\n{DESTROY}").as_bytes());
    let config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
    env.registry().push_dir(IAC_REPO, &["v1.0.0"], &iac_dir, &config).await.unwrap();
}

/// `helm install alustan charts/alustan -n alustan-system --create-namespace --set …`: every
/// object applied; returns the agent's ServiceAccount name.
async fn helm_install(client: &Client, registry: &str, work: &Path) -> String {
    // `helm install alustan charts/alustan -n alustan-system --create-namespace --set …`.
    let metrics_port = free_port();
    let values = json!({
        "image": {"repository": format!("{registry}/alustan/alustan-agent"), "tag": "test"},
        "insecureRegistries": [registry],
        "syncInterval": "1h",
        "retry": {"base": "1s", "max": "2s", "attempts": 2},
        "log": {"level": "info,alustan_agent=debug", "format": "text"},
        "metrics": {"port": metrics_port},
    });
    let objects = render_chart(&values, work).await;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": RELEASE_NAMESPACE}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    let mut applied = Vec::new();
    for object in std::iter::once(&chart_crd()).chain(&objects) {
        applied.push(apply(client, object).await);
    }
    eprintln!("applied: {applied:?}");
    for kind in
        ["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    {
        assert!(applied.iter().any(|a| a.starts_with(&format!("{kind}/"))), "no {kind} in {applied:?}");
    }
    assert!(applied.iter().any(|a| a.starts_with("Deployment/")) && applied.iter().any(|a| a.starts_with("Service/")));
    objects.iter().find(|o| o["kind"] == "ServiceAccount").unwrap()["metadata"]["name"].as_str().unwrap().to_owned()
}

/// The Deployment's Pod runs on our Node as the chart's ServiceAccount, and reaches the API
/// server from inside the Pod.
async fn agent_runs_in_cluster(client: &Client, account: &str) {
    // The Deployment's Pod runs on our Node, as the chart's ServiceAccount.
    let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let pod = eventually("the agent Pod running", Duration::from_secs(90), async || {
        let list = pods.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let pod = list.items.into_iter().next().ok_or("no Pod yet")?;
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Running" { Ok(pod) } else { Err(format!("phase {phase}: {:?}", pod.status)) }
    })
    .await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("alustan-node"));
    assert_eq!(spec.service_account_name.as_deref(), Some(account));
    assert!(pod.owner_references().iter().any(|o| o.kind == "ReplicaSet"), "{:?}", pod.owner_references());

    // It won the election under its Pod name: it reached the API server from inside the Pod.
    let leases: Api<Lease> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    eventually("the agent's Lease", Duration::from_secs(60), async || {
        let holder =
            leases.get_opt("alustan-agent").await.map_err(|e| e.to_string())?.and_then(|l| l.spec?.holder_identity);
        if holder.as_deref() == Some(pod.name_any().as_str()) {
            Ok(())
        } else {
            Err(format!("holder {holder:?}\n{}", agent_log(client).await))
        }
    })
    .await;
}

/// A Terraform deployed, then deleted, by the in-cluster agent.
async fn deploy_and_destroy(client: &Client, registry: &str) {
    // A Terraform, deployed by the in-cluster agent.
    let terraforms: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let tf: Terraform = serde_json::from_value(json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform",
        "metadata": {"name": "helm-real", "namespace": "default"},
        "spec": {
            "scripts": {"deploy": "deploy", "destroy": "destroy -c"},
            "containerRegistry": {"provider": "oci", "imageName": format!("{registry}/{IAC_REPO}"), "semanticVersion": ">=1.0.0"},
        },
    }))
    .unwrap();
    terraforms.create(&PostParams::default(), &tf).await.unwrap();
    let done = eventually("the Terraform deployed", Duration::from_secs(120), async || {
        let tf = terraforms.get("helm-real").await.map_err(|e| e.to_string())?;
        let status = tf.status.clone().unwrap_or_default();
        // Success: deployed; Completed when a postDeploy also ran (this one has none).
        if matches!(status.state, Some(State::Success | State::Completed)) {
            return Ok(tf);
        }
        if matches!(status.state, Some(State::Failed | State::Error)) {
            panic!("the run ended {:?}: {status:#?}\n{}", status.state, agent_log(client).await);
        }
        Err(format!("{status:?}"))
    })
    .await;
    let status = done.status.clone().unwrap();
    eprintln!("status: state={:?} output={:?} applied={:?}", status.state, status.output, status.applied);
    assert_eq!(status.output.get("cluster_name"), Some(&json!("helm-real")));
    assert!(!serde_json::to_string(&status).unwrap().contains("hunter2"), "a sensitive value leaked into status");
    let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
    assert_eq!(ready.status, conditions::TRUE);
    assert_eq!(status.applied.as_ref().unwrap().tag, "v1.0.0");
    let secret_name = status.sensitive_outputs_secret.clone().unwrap();
    let secret = Api::<Secret>::namespaced(client.clone(), "default").get(&secret_name).await.unwrap();
    assert_eq!(secret.data.unwrap()["db_password"].0, b"hunter2-s3cret");

    // Deleting it runs destroy, then the agent releases it. The destroy Job and its Pod are
    // garbage-collected with their owner right after, so its log is caught while waiting.
    terraforms.delete("helm-real", &DeleteParams::default()).await.unwrap();
    let job_pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut destroy_log = None;
    eventually("the Terraform released", Duration::from_secs(120), async || {
        for pod in job_pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
            let log = job_pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap_or_default();
            if log.contains("destroying with -c") {
                destroy_log = Some(format!("{}: {}", pod.name_any(), log.trim()));
            }
        }
        match terraforms.get_opt("helm-real").await {
            Ok(None) => Ok(()),
            Ok(Some(tf)) => Err(format!("{:?}", tf.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("helm-real"))
        .filter_map(|e| e.reason)
        .collect();
    eprintln!("events of helm-real: {reasons:?}; destroy Pod log: {destroy_log:?}");
    assert!(reasons.iter().any(|r| r == "Destroying") && reasons.iter().any(|r| r == "Destroyed"), "{reasons:?}");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    // The agent never deletes Jobs: the real garbage collector removes them with their owner.
    eventually("the Jobs garbage-collected", Duration::from_secs(60), async || {
        let left = jobs.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
        if left == 0 { Ok(()) } else { Err(format!("{left} Jobs left")) }
    })
    .await;
}

/// Least privilege: what the agent's ServiceAccount may not do (and a little of what it may).
async fn least_privilege(env: &TestEnv, account: &str) {
    let user = format!("system:serviceaccount:{RELEASE_NAMESPACE}:{account}");
    let agent = env.control_plane().unwrap().client_for(&user, &["system:serviceaccounts"]).await.unwrap();
    let forbidden = |result: Result<(), kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    };
    let system_secrets: Api<Secret> = Api::namespaced(agent.clone(), "kube-system");
    forbidden(system_secrets.list(&ListParams::default()).await.map(drop), "list Secrets in kube-system");
    forbidden(
        system_secrets.watch(&kube::api::WatchParams::default(), "0").await.map(drop),
        "watch Secrets in kube-system",
    );
    // `get` by name is granted cluster-wide on purpose (rbac.yaml: registry Secrets named by
    // resources in any namespace, credential sources in argocd/monitoring): a missing name is
    // 404, not 403.
    match system_secrets.get("no-such-secret").await {
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        other => panic!("get a Secret by name in kube-system: expected 404, got {other:?}"),
    }
    let agent_jobs: Api<Job> = Api::namespaced(agent.clone(), "default");
    forbidden(agent_jobs.delete("anything", &DeleteParams::default()).await.map(drop), "delete a Job");
    forbidden(
        agent_jobs.delete_collection(&DeleteParams::default(), &ListParams::default()).await.map(drop),
        "delete every Job",
    );
    // What it is granted works with the same identity.
    Api::<Terraform>::all(agent.clone()).list(&ListParams::default()).await.unwrap();
    agent_jobs.list(&ListParams::default()).await.unwrap();
}

/// The samples of `make demo` (demo/terraforms, the image in demo/image under the demo's tags),
/// handled by the chart's in-cluster agent: each reaches the state its
/// `demo.alustan.io/expected-state` annotation names, and deleting dev/dev-sandbox runs its
/// destroy script before it is released (what `NO_TUI=1 demo/run.sh` checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane binaries and the venv of `make deps`: run `make test-real`"]
async fn demo_samples_reach_their_states_with_the_chart_installed_agent() {
    let env = TestEnv::start_real().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = env.client().unwrap();
    let registry = env.registry().host_port().to_owned();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    push_agent_image(&env, work.path()).await;
    let config = ImageConfig { working_dir: Some("/".into()), ..ImageConfig::default() };
    let tags = [
        "v0.9.0",
        "v1.0.0",
        "v1.0.1",
        "v1.1.0",
        "v2.0.0-rc.1",
        "v2.0.0",
        "latest",
        "v1.2.2.2022-01-15t161730814Z.9eabf5b5",
        "v1.2.2.2022-01-16t090000000Z.1c2d3e4f",
        "v1.3.0.2022-01-17t090000000Z.aaaaaaaa",
    ];
    env.registry().push_dir(IAC_REPO, &tags, &demo.join("image"), &config).await.unwrap();
    let account = helm_install(&client, &registry, work.path()).await;
    agent_runs_in_cluster(&client, &account).await;

    // staging-cluster's deploy creates the argocd and monitoring namespaces, Secrets and Ingresses
    // through the API (demo/image/lib.sh): its Jobs run as the ServiceAccount demo/rbac.yaml
    // grants that (on a real cluster a namespace's `default` may do nothing), applied first as
    // demo/run.sh does. Not the agent's grant: it only runs the Jobs.
    let rbac = std::fs::read_to_string(demo.join("rbac.yaml")).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&rbac) {
        let object: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        apply(&client, &object).await;
    }

    let mut samples: Vec<(String, String, String)> = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(demo.join("terraforms")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap().replace("${ALUSTAN_REGISTRY}", &registry);
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            if object.is_null() {
                continue;
            }
            apply(&client, &object).await;
            if object["kind"] == "Terraform" {
                let meta = &object["metadata"];
                let expected = meta["annotations"]["demo.alustan.io/expected-state"].as_str().unwrap();
                let field = |name: &str| meta[name].as_str().unwrap().to_owned();
                samples.push((field("namespace"), field("name"), expected.to_owned()));
            }
        }
    }
    assert_eq!(samples.len(), 9, "{samples:?}");

    let terraforms: Api<Terraform> = Api::all(client.clone());
    let settled = eventually("every demo sample in its expected state", Duration::from_secs(240), async || {
        let list = terraforms.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        let mut wrong = Vec::new();
        for (namespace, name, expected) in &samples {
            let tf = list.items.iter().find(|t| t.namespace().as_deref() == Some(namespace) && &t.name_any() == name);
            let status = tf.and_then(|t| t.status.clone()).unwrap_or_default();
            let state = status.state.map(|s| format!("{s:?}")).unwrap_or_default();
            // A plan waiting for approval stays Reconciling (kstatus: not done) and is settled.
            let reconciling = conditions::find(&status.conditions, "Reconciling").is_some_and(|c| c.status == "True")
                && state != "Planned";
            if &state != expected || reconciling {
                wrong
                    .push(format!("{namespace}/{name}: expected {expected}, is {state:?} (reconciling {reconciling})"));
            }
            seen.push(format!("{namespace}/{name}={state}"));
        }
        if wrong.is_empty() { Ok(seen) } else { Err(format!("{wrong:?}\n{}", agent_log(&client).await)) }
    })
    .await;
    eprintln!("demo samples: {settled:?}");
    // What staging-cluster's deploy installed, found by the agent's cluster-wide reads.
    let staging = Api::<Terraform>::namespaced(client.clone(), "default").get("staging-cluster").await.unwrap();
    let status = staging.status.unwrap();
    assert!(status.credentials.contains_key("argocd") && status.credentials.contains_key("grafana"), "{status:?}");
    assert!(status.ingress_urls.contains_key("argocd") && status.ingress_urls.contains_key("monitoring"), "{status:?}");
    assert!(status.post_deploy_output.is_some(), "{status:?}");

    let dev: Api<Terraform> = Api::namespaced(client.clone(), "dev");
    dev.delete("dev-sandbox", &DeleteParams::default()).await.unwrap();
    eventually("dev/dev-sandbox released", Duration::from_secs(60), async || match dev.get_opt("dev-sandbox").await {
        Ok(None) => Ok(()),
        Ok(Some(tf)) => Err(format!("{:?}", tf.status)),
        Err(e) => Err(e.to_string()),
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "dev");
    let reasons: Vec<String> =
        events.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    eprintln!("events in dev: {reasons:?}");
    assert!(reasons.iter().any(|r| r == "Destroyed"), "{reasons:?}");
    let log = agent_log(&client).await;
    assert!(!log.to_lowercase().contains("forbidden"), "the agent was refused a request:\n{log}");
}

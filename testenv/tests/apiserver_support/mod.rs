//! Helpers shared by the apiserver integration tests.
#![allow(dead_code, clippy::missing_panics_doc, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alustan_testenv::apiserver::{ApiServer, ApiServerOptions, RequestLog};
use alustan_testenv::{Backend, TestEnv, TestEnvOptions};
use tokio::io::AsyncWriteExt as _;

pub const EXAMPLE_CR: &str = r#"apiVersion: alustan.io/v1alpha1
kind: Terraform
metadata: {name: staging-cluster}
spec:
  variables: {TF_VAR_provision_cluster: "true", TF_VAR_vpc_cidr: "10.1.0.0/16"}
  scripts: {deploy: deploy, destroy: destroy -c}
  postDeploy: {script: aws-resource, args: {workspace: TF_VAR_workspace, region: TF_VAR_region}}
  containerRegistry: {provider: docker, imageName: alustan/infrastructure, semanticVersion: "~1.0.0"}
"#;

/// Runs the real kubectl against `kubeconfig` with its own discovery cache: (success, stdout,
/// stderr).
pub async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `alustan-testenv serve` with `args` (and `--work-dir work`), running until dropped or sent
/// SIGTERM, and the two paths it exports once ready: (child, kubeconfig, registry `host:port`).
pub async fn serve(args: &[&str], work: &Path, ready_within: Duration) -> (tokio::process::Child, String, String) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-testenv"))
        .arg("serve")
        .args(args)
        .arg("--work-dir")
        .arg(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let read = async {
        let first = lines.next_line().await.unwrap().unwrap();
        let second = lines.next_line().await.unwrap().unwrap();
        (first, second)
    };
    let (kubeconfig_line, registry_line) = tokio::time::timeout(ready_within, read).await.expect("serve became ready");
    let kubeconfig = kubeconfig_line.strip_prefix("export KUBECONFIG=").expect("first line exports KUBECONFIG");
    let registry =
        registry_line.strip_prefix("export ALUSTAN_REGISTRY=").expect("second line exports ALUSTAN_REGISTRY");
    (child, kubeconfig.to_owned(), registry.to_owned())
}

pub fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

/// A server with our CRDs loaded, a temp dir, and a kubeconfig in it: the embedded one, or the
/// real control plane under `ALUSTAN_CONTROL_PLANE=real` (the differential conformance run,
/// `.ci/conformance_diff.py`, runs every test on both).
pub struct Env {
    pub stack: TestEnv,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub async fn env() -> Env {
    env_with(ApiServerOptions::default()).await
}

pub async fn env_with(opts: ApiServerOptions) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = TestEnvOptions {
        api: opts,
        kubelet: false,
        crds_dir: Some(crds_dir()),
        work_dir: Some(dir.path().join("env")),
        ..TestEnvOptions::default()
    };
    let stack = TestEnv::start_with(options).await.expect("start the API server");
    let kubeconfig = stack.kubeconfig().to_path_buf();
    Env { stack, dir, kubeconfig }
}

impl Env {
    /// The admin's client (on the embedded server: a request without credentials, which is the
    /// options' `anonymous` identity, an admin by default).
    pub fn client(&self) -> kube::Client {
        self.stack.client().expect("admin client")
    }

    /// A client sending no credentials.
    pub fn anonymous(&self) -> kube::Client {
        self.stack.anonymous_client().expect("anonymous client")
    }

    /// A client authenticating with `token` (one of the options' tokens, or one issued).
    pub fn client_for(&self, token: &str) -> kube::Client {
        self.stack.client_for(token).expect("token client")
    }

    pub fn requests(&self) -> RequestLog {
        self.stack.requests()
    }

    pub fn is_real(&self) -> bool {
        self.stack.backend() == Backend::Real
    }

    /// The embedded server, for what only it can do (`needs` says what); a test calling this
    /// is listed in `conformance-divergences.txt` and left out of the real run.
    pub fn embedded(&self, needs: &str) -> &ApiServer {
        self.stack.embedded().unwrap_or_else(|| panic!("this test needs the embedded server's {needs}"))
    }

    /// Makes kubectl (`kubectl_cmd` and friends) authenticate as `user` with `token`.
    pub fn kubectl_as(&mut self, user: &str, token: &str) {
        self.kubeconfig = self.stack.kubeconfig_for(user, token).expect("kubeconfig");
    }
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn kubectl_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn kubectl_in(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self.kubectl_cmd(args).spawn().expect("spawn kubectl");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .expect("kubectl output");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_in(args, "").await
    }

    /// Runs kubectl and fails the test unless it succeeds.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(out.ok, "kubectl {args:?} failed:\n{}\n{}", out.stdout, out.stderr);
        out.stdout
    }
}

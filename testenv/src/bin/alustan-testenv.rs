//! `alustan-testenv`: the test environment from the command line.
//!
//! - `serve`: run the API server (our CRDs installed), a registry and the process kubelet until
//!   Ctrl-C or SIGTERM; once ready, print `export KUBECONFIG=…` and `export ALUSTAN_REGISTRY=…`
//!   on stdout so `eval "$(alustan-testenv serve)"`-style scripts work. `--control-plane real`
//!   runs the real Kubernetes control plane (etcd, kube-apiserver, controller-manager,
//!   scheduler; built once by `testenv/controlplane/build.sh`) instead of the embedded server.
//! - `push`: build an image whose filesystem is a directory and push it under every tag.

use std::path::PathBuf;
use std::process::ExitCode;

use alustan_testenv::registry::{Credentials, ImageConfig, PushRequest, PushTarget, push_command};
use alustan_testenv::{Backend, TestEnv, TestEnvOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "alustan-testenv", version, about = "alustan's test environment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the test API server, a local registry and the process kubelet until Ctrl-C/SIGTERM.
    Serve(ServeArgs),
    /// Build an image whose filesystem is DIR (file modes kept) and push it under every tag.
    Push(PushArgs),
}

/// Which API server `serve` runs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ControlPlaneKind {
    /// testenv's own in-process API server (fast, no build needed).
    Embedded,
    /// The real etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
    Real,
}

#[derive(Args)]
struct ServeArgs {
    /// The API server to run.
    #[arg(long, value_enum, default_value = "embedded", env = "ALUSTAN_CONTROL_PLANE")]
    control_plane: ControlPlaneKind,
    /// API server port on 127.0.0.1 (random when absent).
    #[arg(long)]
    port: Option<u16>,
    /// Registry port on 127.0.0.1 (random when absent).
    #[arg(long)]
    registry_port: Option<u16>,
    /// Directory for the kubeconfig and the kubelet's files (a temp dir when absent).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Directory of CRDs to install (default: the repository's `crds/`).
    #[arg(long)]
    crds: Option<PathBuf>,
}

#[derive(Args)]
struct PushArgs {
    /// Registry `host:port`; loopback registries are spoken to over plain HTTP.
    #[arg(long, env = "ALUSTAN_REGISTRY")]
    registry: String,
    /// Repository name, e.g. `team/infra`.
    #[arg(long)]
    repo: String,
    /// A tag to push (repeat for several; all point at the same manifest).
    #[arg(long = "tag", required = true)]
    tags: Vec<String>,
    /// Registry user (HTTP basic auth).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Registry password.
    #[arg(long, env = "ALUSTAN_REGISTRY_PASSWORD", requires = "user", hide_env_values = true)]
    password: Option<String>,
    /// Use plain HTTP even for a non-loopback registry.
    #[arg(long)]
    plain_http: bool,
    /// Image entrypoint, one argument per flag.
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Image command (arguments to the entrypoint), one per flag.
    #[arg(long, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Image environment variable `KEY=value` (repeatable).
    #[arg(long)]
    env: Vec<String>,
    /// Image working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// The directory that becomes the image's filesystem.
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Push(args) => push(args).await,
    }
}

async fn start(args: ServeArgs) -> Result<TestEnv, alustan_testenv::TestEnvError> {
    let backend = match args.control_plane {
        ControlPlaneKind::Embedded => Backend::Embedded,
        ControlPlaneKind::Real => Backend::Real,
    };
    let mut options = TestEnvOptions { backend: Some(backend), ..TestEnvOptions::default() };
    options.api.port = args.port.unwrap_or(0);
    options.registry.port = args.registry_port;
    options.work_dir = args.work_dir.map(absolute);
    if let Some(crds) = args.crds {
        options.crds_dir = Some(crds);
    }
    TestEnv::start_with(options).await
}

async fn serve(args: ServeArgs) -> ExitCode {
    let env = match start(args).await {
        Ok(env) => env,
        Err(err) => {
            eprintln!("alustan-testenv serve: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("export KUBECONFIG={}", env.kubeconfig().display());
    println!("export ALUSTAN_REGISTRY={}", env.registry().host_port());
    eprintln!(
        "alustan-testenv: API server {} and registry {} are up; Ctrl-C stops them",
        env.server_url(),
        env.registry().host_port()
    );
    match wait_for_stop().await {
        Ok(signal) => eprintln!("alustan-testenv: {signal}, stopping"),
        Err(err) => {
            eprintln!("alustan-testenv serve: cannot listen for signals: {err}");
            return ExitCode::FAILURE;
        }
    }
    drop(env);
    ExitCode::SUCCESS
}

async fn wait_for_stop() -> std::io::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|()| "interrupted"),
        _ = terminate.recv() => Ok("terminated"),
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

async fn push(args: PushArgs) -> ExitCode {
    let credentials = args.user.zip(args.password).map(|(user, password)| Credentials::new(user, password));
    let mut target = PushTarget::new(args.registry, credentials);
    target.plain_http |= args.plain_http;
    let request = PushRequest {
        target,
        repo: args.repo,
        tags: args.tags,
        dir: args.dir,
        config: ImageConfig { entrypoint: args.entrypoint, cmd: args.cmd, env: args.env, working_dir: args.workdir },
    };
    match push_command(&request).await {
        Ok(digest) => {
            // stdout: the pullable reference by digest, for scripts; the tags go to stderr.
            println!("{}/{}@{digest}", request.target.registry, request.repo);
            match request.tags.len() {
                n if n <= 10 => eprintln!("tagged: {}", request.tags.join(", ")),
                n => eprintln!("tagged {n} tags"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("alustan-testenv push: {err}");
            ExitCode::FAILURE
        }
    }
}

//! `alustan-testenv`: the test environment from the command line.
//!
//! - `push`: build an image whose filesystem is a directory and push it under every tag.

use std::path::PathBuf;
use std::process::ExitCode;

use alustan_testenv::registry::{Credentials, ImageConfig, PushRequest, PushTarget, push_command};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "alustan-testenv", version, about = "alustan's test environment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image whose filesystem is DIR (file modes kept) and push it under every tag.
    Push(PushArgs),
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
        Command::Push(args) => push(args).await,
    }
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
